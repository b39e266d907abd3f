//! Just enough of the protobuf wire format to read an ONNX model's graph: fields by number,
//! varints, fixed-width numbers and length-delimited bytes, repeated fields packed or not.

use crate::error::{Error, Result};

fn malformed(what: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("malformed ONNX file: {what}"))
}

/// One field's payload.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Payload<'a> {
    Varint(u64),
    Fixed64([u8; 8]),
    Bytes(&'a [u8]),
    Fixed32([u8; 4]),
}

/// The fields of one message, in order, as (field number, payload).
pub(crate) fn fields(message: &[u8]) -> Result<Vec<(u32, Payload<'_>)>> {
    let mut fields = Vec::new();
    let mut position = 0;
    while position < message.len() {
        let key = varint(message, &mut position)?;
        let number = u32::try_from(key >> 3).map_err(|_| malformed("field number"))?;
        let payload = match key & 7 {
            0 => Payload::Varint(varint(message, &mut position)?),
            1 => Payload::Fixed64(take(message, &mut position, 8)?.try_into().map_err(|_| malformed("fixed64"))?),
            2 => {
                let length = usize::try_from(varint(message, &mut position)?).map_err(|_| malformed("length"))?;
                Payload::Bytes(take(message, &mut position, length)?)
            }
            5 => Payload::Fixed32(take(message, &mut position, 4)?.try_into().map_err(|_| malformed("fixed32"))?),
            other => return Err(malformed(format!("wire type {other}"))),
        };
        fields.push((number, payload));
    }
    Ok(fields)
}

fn take<'a>(bytes: &'a [u8], position: &mut usize, count: usize) -> Result<&'a [u8]> {
    let end = position.checked_add(count).filter(|end| *end <= bytes.len()).ok_or_else(|| malformed("truncated"))?;
    let slice = &bytes[*position..end];
    *position = end;
    Ok(slice)
}

fn varint(bytes: &[u8], position: &mut usize) -> Result<u64> {
    let mut value = 0_u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*position).ok_or_else(|| malformed("truncated varint"))?;
        *position += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(malformed("varint longer than 10 bytes"))
}

/// The payloads of field `number`.
pub(crate) fn all<'a>(fields: &[(u32, Payload<'a>)], number: u32) -> impl Iterator<Item = Payload<'a>> {
    fields.iter().filter(move |(field, _)| *field == number).map(|(_, payload)| *payload)
}

/// The last `bytes` payload of field `number` (protobuf's rule for a non-repeated field).
pub(crate) fn bytes<'a>(fields: &[(u32, Payload<'a>)], number: u32) -> Option<&'a [u8]> {
    all(fields, number)
        .filter_map(|payload| match payload {
            Payload::Bytes(bytes) => Some(bytes),
            _ => None,
        })
        .last()
}

/// Field `number` as text.
pub(crate) fn text(fields: &[(u32, Payload<'_>)], number: u32) -> String {
    bytes(fields, number).map(|bytes| String::from_utf8_lossy(bytes).into_owned()).unwrap_or_default()
}

/// Field `number` as a (signed, two's complement) integer.
pub(crate) fn integer(fields: &[(u32, Payload<'_>)], number: u32) -> Option<i64> {
    all(fields, number)
        .filter_map(|payload| match payload {
            Payload::Varint(value) => Some(value as i64),
            _ => None,
        })
        .last()
}

/// A repeated integer field, packed or not.
pub(crate) fn integers(fields: &[(u32, Payload<'_>)], number: u32) -> Result<Vec<i64>> {
    let mut values = Vec::new();
    for payload in all(fields, number) {
        match payload {
            Payload::Varint(value) => values.push(value as i64),
            Payload::Bytes(packed) => {
                let mut position = 0;
                while position < packed.len() {
                    values.push(varint(packed, &mut position)? as i64);
                }
            }
            _ => return Err(malformed(format!("field {number} is not an integer list"))),
        }
    }
    Ok(values)
}

/// A repeated `float` field, packed or not.
pub(crate) fn floats(fields: &[(u32, Payload<'_>)], number: u32) -> Result<Vec<f32>> {
    let mut values = Vec::new();
    for payload in all(fields, number) {
        match payload {
            Payload::Fixed32(bytes) => values.push(f32::from_le_bytes(bytes)),
            Payload::Bytes(packed) if packed.len() % 4 == 0 => {
                values.extend(
                    packed.chunks_exact(4).map(|chunk| f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]])),
                );
            }
            _ => return Err(malformed(format!("field {number} is not a float list"))),
        }
    }
    Ok(values)
}

/// A repeated `double` field, packed or not.
pub(crate) fn doubles(fields: &[(u32, Payload<'_>)], number: u32) -> Result<Vec<f64>> {
    let mut values = Vec::new();
    for payload in all(fields, number) {
        match payload {
            Payload::Fixed64(bytes) => values.push(f64::from_le_bytes(bytes)),
            Payload::Bytes(packed) if packed.len() % 8 == 0 => values
                .extend(packed.chunks_exact(8).map(|chunk| f64::from_le_bytes(chunk.try_into().unwrap_or([0; 8])))),
            _ => return Err(malformed(format!("field {number} is not a double list"))),
        }
    }
    Ok(values)
}

/// A repeated bytes field as text.
pub(crate) fn strings(fields: &[(u32, Payload<'_>)], number: u32) -> Vec<String> {
    all(fields, number)
        .filter_map(|payload| match payload {
            Payload::Bytes(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_varints_packed_and_unpacked_lists_and_refuses_truncation() {
        // field 1 varint 300; field 8 packed [1, 2]; field 8 unpacked 3; field 7 fixed32 1.5; field 4 "ab"
        let mut message = vec![0x08, 0xac, 0x02, 0x42, 0x02, 0x01, 0x02, 0x40, 0x03, 0x3d];
        message.extend_from_slice(&1.5_f32.to_le_bytes());
        message.extend_from_slice(&[0x22, 0x02, b'a', b'b']);
        let parsed = fields(&message).expect("parses");
        assert_eq!(integer(&parsed, 1), Some(300));
        assert_eq!(integers(&parsed, 8).expect("ints"), vec![1, 2, 3]);
        assert_eq!(floats(&parsed, 7).expect("floats"), vec![1.5]);
        assert_eq!(text(&parsed, 4), "ab");
        assert!(fields(&message[..message.len() - 1]).is_err());
        assert!(fields(&[0x08, 0xff]).is_err());
    }
}
