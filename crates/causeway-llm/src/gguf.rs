//! GGUF files (llama.cpp's model format, version 2 and 3): the metadata and the tensors' places,
//! read from bytes held in memory. It owns the format's layout and nothing of what a tensor
//! means; [`crate::llama`] decides that.

use std::collections::BTreeMap;

use crate::error::{Error, Result};

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Any unsigned integer type.
    Unsigned(u64),
    /// Any signed integer type.
    Signed(i64),
    /// `f32` or `f64`.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A UTF-8 string.
    Text(String),
    /// An array of values of one type.
    Array(Vec<Value>),
}

impl Value {
    /// The value as a non-negative integer, if it is one.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Self::Unsigned(value) => Some(*value),
            Self::Signed(value) => u64::try_from(*value).ok(),
            _ => None,
        }
    }

    /// The value as a float, if it is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Float(value) => Some(*value),
            Self::Unsigned(value) => Some(*value as f64),
            Self::Signed(value) => Some(*value as f64),
            _ => None,
        }
    }

    /// The value as text, if it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Text(text) => Some(text),
            _ => None,
        }
    }
}

/// How a tensor's numbers are stored (ggml's type ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorType {
    /// 32-bit floats.
    F32,
    /// 16-bit floats.
    F16,
    /// Blocks of 32: an f16 scale and 32 signed bytes.
    Q8_0,
    /// Blocks of 32: an f16 scale, an f16 minimum and 32 four-bit values.
    Q4_1,
    /// Any other ggml type, by id (not computed with here).
    Other(u32),
}

impl TensorType {
    fn from_id(id: u32) -> Self {
        match id {
            0 => Self::F32,
            1 => Self::F16,
            3 => Self::Q4_1,
            8 => Self::Q8_0,
            other => Self::Other(other),
        }
    }

    /// Bytes taken by `elements` values, when the type's layout is known here.
    pub fn bytes_for(self, elements: usize) -> Option<usize> {
        match self {
            Self::F32 => elements.checked_mul(4),
            Self::F16 => elements.checked_mul(2),
            Self::Q8_0 => elements.is_multiple_of(32).then_some(elements / 32 * 34),
            Self::Q4_1 => elements.is_multiple_of(32).then_some(elements / 32 * 20),
            Self::Other(_) => None,
        }
    }
}

/// Where one tensor's data lies.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// Its dimensions, innermost (the row length) first, as ggml orders them.
    pub dimensions: Vec<usize>,
    /// Its storage type.
    pub kind: TensorType,
    /// Its first byte, from the start of the file.
    pub start: usize,
    /// Its length in bytes (`None` when the type's layout is unknown here).
    pub length: Option<usize>,
}

impl TensorInfo {
    /// The number of values.
    pub fn elements(&self) -> usize {
        self.dimensions.iter().product()
    }
}

/// A parsed GGUF file: metadata by key and tensors by name, over the file's bytes.
#[derive(Debug)]
pub struct Gguf {
    /// The metadata.
    pub metadata: BTreeMap<String, Value>,
    /// The tensors.
    pub tensors: BTreeMap<String, TensorInfo>,
}

/// The largest array or string length believed (a corrupt length must not allocate the machine).
const MAX_LENGTH: u64 = 1 << 32;

impl Gguf {
    /// Parses the header of `bytes` (the whole file) and checks every tensor lies inside it.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let mut reader = Reader { bytes, position: 0 };
        if reader.take(4)? != b"GGUF" {
            return Err(Error::Format("not a GGUF file (it does not begin with `GGUF`)".into()));
        }
        let version = reader.u32()?;
        if !(2..=3).contains(&version) {
            return Err(Error::Unsupported(format!("GGUF version {version} (versions 2 and 3 are read)")));
        }
        let tensor_count = reader.u64()?;
        let metadata_count = reader.u64()?;
        let mut metadata = BTreeMap::new();
        for _ in 0..metadata_count {
            let key = reader.string()?;
            let kind = reader.u32()?;
            let value = reader.value(kind)?;
            metadata.insert(key, value);
        }
        let mut placed = Vec::new();
        for _ in 0..tensor_count {
            let name = reader.string()?;
            let rank = reader.u32()?;
            if rank > 4 {
                return Err(Error::Format(format!("tensor `{name}` has {rank} dimensions (at most 4)")));
            }
            let mut dimensions = Vec::new();
            for _ in 0..rank {
                dimensions.push(to_usize(reader.u64()?)?);
            }
            let kind = TensorType::from_id(reader.u32()?);
            let offset = to_usize(reader.u64()?)?;
            placed.push((name, dimensions, kind, offset));
        }
        let alignment = metadata.get("general.alignment").and_then(Value::as_u64).unwrap_or(32);
        let alignment = to_usize(alignment.max(1))?;
        let data_start = reader.position.div_ceil(alignment) * alignment;
        let mut tensors = BTreeMap::new();
        for (name, dimensions, kind, offset) in placed {
            let elements: usize = dimensions.iter().product();
            let length = kind.bytes_for(elements);
            let start = data_start
                .checked_add(offset)
                .ok_or_else(|| Error::Format(format!("tensor `{name}` lies beyond the file")))?;
            if let Some(length) = length
                && start.checked_add(length).is_none_or(|end| end > bytes.len())
            {
                return Err(Error::Format(format!(
                    "tensor `{name}` ends beyond the file ({} bytes): the file is truncated",
                    bytes.len()
                )));
            }
            tensors.insert(name, TensorInfo { dimensions, kind, start, length });
        }
        Ok(Self { metadata, tensors })
    }

    /// A metadata value, or an error naming the missing key.
    pub fn require(&self, key: &str) -> Result<&Value> {
        self.metadata.get(key).ok_or_else(|| Error::Format(format!("the model file has no `{key}`")))
    }

    /// A metadata integer.
    pub fn require_usize(&self, key: &str) -> Result<usize> {
        let value = self.require(key)?;
        value.as_u64().map(to_usize).transpose()?.ok_or_else(|| Error::Format(format!("`{key}` is not an integer")))
    }

    /// A metadata string.
    pub fn require_str(&self, key: &str) -> Result<&str> {
        self.require(key)?.as_str().ok_or_else(|| Error::Format(format!("`{key}` is not a string")))
    }

    /// A tensor's place, or an error naming the missing tensor.
    pub fn tensor(&self, name: &str) -> Result<&TensorInfo> {
        self.tensors.get(name).ok_or_else(|| Error::Format(format!("the model file has no tensor `{name}`")))
    }
}

fn to_usize(value: u64) -> Result<usize> {
    usize::try_from(value).map_err(|_| Error::Format(format!("{value} does not fit this machine's sizes")))
}

/// Little-endian reading with bounds checks.
struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, length: usize) -> Result<&'a [u8]> {
        let end = self.position.checked_add(length).filter(|end| *end <= self.bytes.len());
        let Some(end) = end else {
            return Err(Error::Format(format!("the file ends inside its header (at byte {})", self.position)));
        };
        let slice = &self.bytes[self.position..end];
        self.position = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut array = [0; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn length(&mut self) -> Result<usize> {
        let length = self.u64()?;
        if length > MAX_LENGTH {
            return Err(Error::Format(format!("a length of {length} in the header: the file is corrupt")));
        }
        to_usize(length)
    }

    fn string(&mut self) -> Result<String> {
        let length = self.length()?;
        let bytes = self.take(length)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| Error::Format("a header string is not UTF-8".into()))
    }

    fn value(&mut self, kind: u32) -> Result<Value> {
        Ok(match kind {
            0 => Value::Unsigned(u64::from(self.array::<1>()?[0])),
            1 => Value::Signed(i64::from(i8::from_le_bytes(self.array()?))),
            2 => Value::Unsigned(u64::from(u16::from_le_bytes(self.array()?))),
            3 => Value::Signed(i64::from(i16::from_le_bytes(self.array()?))),
            4 => Value::Unsigned(u64::from(self.u32()?)),
            5 => Value::Signed(i64::from(i32::from_le_bytes(self.array()?))),
            6 => Value::Float(f64::from(f32::from_le_bytes(self.array()?))),
            7 => Value::Bool(self.array::<1>()?[0] != 0),
            8 => Value::Text(self.string()?),
            9 => {
                let item_kind = self.u32()?;
                let length = self.length()?;
                let mut items = Vec::with_capacity(length.min(1 << 20));
                for _ in 0..length {
                    items.push(self.value(item_kind)?);
                }
                Value::Array(items)
            }
            10 => Value::Unsigned(self.u64()?),
            11 => Value::Signed(i64::from_le_bytes(self.array()?)),
            12 => Value::Float(f64::from_le_bytes(self.array()?)),
            other => return Err(Error::Format(format!("unknown metadata type {other} in the header"))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A GGUF file with the given metadata and one F32 tensor `t` of `values`.
    pub(crate) fn file(metadata: &[(&str, u32, Vec<u8>)], values: &[f32]) -> Vec<u8> {
        let mut bytes = b"GGUF".to_vec();
        bytes.extend(3u32.to_le_bytes());
        bytes.extend(1u64.to_le_bytes());
        bytes.extend((metadata.len() as u64).to_le_bytes());
        for (key, kind, value) in metadata {
            bytes.extend((key.len() as u64).to_le_bytes());
            bytes.extend(key.as_bytes());
            bytes.extend(kind.to_le_bytes());
            bytes.extend(value);
        }
        bytes.extend(1u64.to_le_bytes());
        bytes.push(b't');
        bytes.extend(1u32.to_le_bytes());
        bytes.extend((values.len() as u64).to_le_bytes());
        bytes.extend(0u32.to_le_bytes());
        bytes.extend(0u64.to_le_bytes());
        while !bytes.len().is_multiple_of(32) {
            bytes.push(0);
        }
        for value in values {
            bytes.extend(value.to_le_bytes());
        }
        bytes
    }

    fn text(value: &str) -> Vec<u8> {
        let mut bytes = (value.len() as u64).to_le_bytes().to_vec();
        bytes.extend(value.as_bytes());
        bytes
    }

    #[test]
    fn reads_metadata_and_places_tensors_after_the_aligned_header() {
        let mut array = 8u32.to_le_bytes().to_vec();
        array.extend(2u64.to_le_bytes());
        array.extend(text("a"));
        array.extend(text("b"));
        let bytes = file(
            &[
                ("general.architecture", 8, text("llama")),
                ("llama.block_count", 4, 30u32.to_le_bytes().to_vec()),
                ("llama.rope.freq_base", 6, 100000f32.to_le_bytes().to_vec()),
                ("tokenizer.ggml.tokens", 9, array),
            ],
            &[1.0, 2.0],
        );
        let gguf = Gguf::parse(&bytes).unwrap();
        assert_eq!(gguf.require_str("general.architecture").unwrap(), "llama");
        assert_eq!(gguf.require_usize("llama.block_count").unwrap(), 30);
        assert_eq!(gguf.require("llama.rope.freq_base").unwrap().as_f64(), Some(100000.0));
        assert_eq!(
            gguf.require("tokenizer.ggml.tokens").unwrap(),
            &Value::Array(vec![Value::Text("a".into()), Value::Text("b".into())])
        );
        let tensor = gguf.tensor("t").unwrap();
        assert_eq!(tensor.start % 32, 0);
        assert_eq!(tensor.length, Some(8));
        assert_eq!(&bytes[tensor.start..tensor.start + 4], &1f32.to_le_bytes());
    }

    #[test]
    fn refuses_truncated_and_foreign_files_with_what_is_wrong() {
        let bytes = file(&[], &[1.0, 2.0]);
        let truncated = Gguf::parse(&bytes[..bytes.len() - 1]).unwrap_err().to_string();
        assert!(truncated.contains("truncated"), "{truncated}");
        let header_cut = Gguf::parse(&bytes[..20]).unwrap_err().to_string();
        assert!(header_cut.contains("ends inside its header"), "{header_cut}");
        let foreign = Gguf::parse(b"PK\x03\x04 not a model").unwrap_err().to_string();
        assert!(foreign.contains("not a GGUF file"), "{foreign}");
        let missing = Gguf::parse(&bytes).unwrap().tensor("blk.0.attn_q.weight").unwrap_err().to_string();
        assert_eq!(missing, "the model file has no tensor `blk.0.attn_q.weight`");
    }
}
