//! safetensors files (Hugging Face's weights format): an 8-byte little-endian header length, a JSON
//! header naming each tensor's type, shape and byte range, then the data. Only 32-bit float
//! tensors are read as numbers; which tensor is which belongs to [`crate::bert`].

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::{Error, Result};

/// One tensor's type, shape and bytes' place in the data section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `F32`, `F16`, `I64`…
    pub dtype: String,
    /// Its dimensions, outermost first.
    pub shape: Vec<usize>,
    start: usize,
    end: usize,
}

/// A parsed safetensors file over its bytes.
#[derive(Debug)]
pub struct SafeTensors<'a> {
    entries: BTreeMap<String, Entry>,
    data: &'a [u8],
}

/// The largest header believed (a corrupt length must not allocate the machine).
const MAX_HEADER: u64 = 100 * 1024 * 1024;

impl<'a> SafeTensors<'a> {
    /// Parses `bytes` (the whole file) and checks every tensor lies inside it.
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        let Some((length, rest)) = bytes.split_first_chunk::<8>() else {
            return Err(Error::Format("not a safetensors file (shorter than its header length)".into()));
        };
        let length = u64::from_le_bytes(*length);
        if length > MAX_HEADER || length as usize > rest.len() {
            return Err(Error::Format(format!("a safetensors header of {length} bytes: not a safetensors file")));
        }
        let (header, data) = rest.split_at(length as usize);
        let header: BTreeMap<String, Value> = serde_json::from_slice(header)
            .map_err(|error| Error::Format(format!("the safetensors header is not JSON: {error}")))?;
        let mut entries = BTreeMap::new();
        for (name, value) in header {
            if name == "__metadata__" {
                continue;
            }
            let dtype = value.get("dtype").and_then(Value::as_str).unwrap_or_default().to_string();
            let shape = value
                .get("shape")
                .and_then(Value::as_array)
                .map(|shape| shape.iter().filter_map(Value::as_u64).map(|size| size as usize).collect::<Vec<_>>());
            let offsets = value.get("data_offsets").and_then(Value::as_array).map(|offsets| {
                offsets.iter().filter_map(Value::as_u64).map(|offset| offset as usize).collect::<Vec<_>>()
            });
            let (Some(shape), Some([start, end])) =
                (shape, offsets.as_deref().and_then(|o| <[usize; 2]>::try_from(o).ok()))
            else {
                return Err(Error::Format(format!("tensor `{name}` has no shape or data offsets")));
            };
            if start > end || end > data.len() {
                return Err(Error::Format(format!("tensor `{name}` lies beyond the file: it is truncated")));
            }
            entries.insert(name, Entry { dtype, shape, start, end });
        }
        Ok(Self { entries, data })
    }

    /// A tensor's entry, or an error naming it.
    pub fn entry(&self, name: &str) -> Result<&Entry> {
        self.entries.get(name).ok_or_else(|| Error::Format(format!("the weights have no tensor `{name}`")))
    }

    /// A 32-bit float tensor of exactly `shape`, as floats.
    pub fn floats(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let entry = self.entry(name)?;
        if entry.dtype != "F32" {
            return Err(Error::Unsupported(format!(
                "tensor `{name}` is {}; the built-in engine reads F32 weights",
                entry.dtype
            )));
        }
        if entry.shape != shape {
            return Err(Error::Format(format!(
                "tensor `{name}` is {:?}, the model's config says {shape:?}",
                entry.shape
            )));
        }
        let bytes = &self.data[entry.start..entry.end];
        if bytes.len() != shape.iter().product::<usize>() * 4 {
            return Err(Error::Format(format!("tensor `{name}`'s bytes do not fit its shape")));
        }
        Ok(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str, data: &[u8]) -> Vec<u8> {
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend(header.as_bytes());
        bytes.extend(data);
        bytes
    }

    #[test]
    fn reads_float_tensors_by_name_and_shape() {
        let data: Vec<u8> = [1.5f32, -2.0, 3.0, 4.0].iter().flat_map(|value| value.to_le_bytes()).collect();
        let bytes =
            file(r#"{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}"#, &data);
        let tensors = SafeTensors::parse(&bytes).unwrap();
        assert_eq!(tensors.floats("w", &[2, 2]).unwrap(), [1.5, -2.0, 3.0, 4.0]);
        assert!(tensors.floats("w", &[4]).unwrap_err().to_string().contains("config says [4]"));
        assert!(tensors.floats("b", &[2]).unwrap_err().to_string().contains("no tensor `b`"));
    }

    #[test]
    fn refuses_truncated_and_foreign_files() {
        let bytes = file(r#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, &[0; 8]);
        assert!(SafeTensors::parse(&bytes).unwrap_err().to_string().contains("truncated"));
        assert!(SafeTensors::parse(b"GGUF\x03\0\0\0\0\0\0\0").unwrap_err().to_string().contains("not a safetensors"));
    }
}
