//! A small document tree for model files: JSON (tolerating the bare `NaN` and `Infinity` XGBoost
//! writes in statistics) and XGBoost's Universal Binary JSON. Numbers keep their text (JSON) or
//! their stored width (UBJSON), so an `f32` reads back with exactly its bits.

use crate::error::{Error, Result};

/// A parsed value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Document {
    Null,
    Bool(bool),
    /// A JSON number's text.
    Number(String),
    Integer(i64),
    Float32(f32),
    Float64(f64),
    Text(String),
    Array(Vec<Document>),
    Object(Vec<(String, Document)>),
}

fn malformed(what: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("malformed model file: {what}"))
}

impl Document {
    /// The member `key` of an object.
    pub(crate) fn get(&self, key: &str) -> Option<&Document> {
        match self {
            Self::Object(members) => members.iter().find(|(name, _)| name == key).map(|(_, value)| value),
            _ => None,
        }
    }

    /// The member at `path` (keys separated by `/`), or an error naming it.
    pub(crate) fn at(&self, path: &str) -> Result<&Document> {
        path.split('/')
            .try_fold(self, |document, key| document.get(key))
            .ok_or_else(|| malformed(format!("`{path}` is missing")))
    }

    pub(crate) fn as_array(&self, what: &str) -> Result<&[Document]> {
        match self {
            Self::Array(items) => Ok(items),
            _ => Err(malformed(format!("`{what}` is not an array"))),
        }
    }

    /// A string, or a number's text.
    pub(crate) fn as_text(&self, what: &str) -> Result<String> {
        match self {
            Self::Text(text) | Self::Number(text) => Ok(text.clone()),
            Self::Integer(number) => Ok(number.to_string()),
            _ => Err(malformed(format!("`{what}` is not text"))),
        }
    }

    pub(crate) fn as_i64(&self, what: &str) -> Result<i64> {
        match self {
            Self::Integer(number) => Ok(*number),
            Self::Number(text) | Self::Text(text) => {
                text.trim().parse().map_err(|_| malformed(format!("`{what}` is not an integer: {text}")))
            }
            Self::Float32(number) if number.fract() == 0.0 => Ok(*number as i64),
            Self::Float64(number) if number.fract() == 0.0 => Ok(*number as i64),
            Self::Bool(flag) => Ok(i64::from(*flag)),
            _ => Err(malformed(format!("`{what}` is not an integer"))),
        }
    }

    /// An `f32`, parsed from its text with correct rounding (so written `f32`s keep their bits).
    pub(crate) fn as_f32(&self, what: &str) -> Result<f32> {
        match self {
            Self::Float32(number) => Ok(*number),
            Self::Float64(number) => Ok(*number as f32),
            Self::Integer(number) => Ok(*number as f32),
            Self::Number(text) | Self::Text(text) => {
                parse_f32(text).ok_or_else(|| malformed(format!("`{what}` is not a number: {text}")))
            }
            _ => Err(malformed(format!("`{what}` is not a number"))),
        }
    }

    /// Each element of an array as an `i64`.
    pub(crate) fn integers(&self, what: &str) -> Result<Vec<i64>> {
        self.as_array(what)?.iter().map(|item| item.as_i64(what)).collect()
    }

    /// Each element of an array as an `f32`.
    pub(crate) fn floats(&self, what: &str) -> Result<Vec<f32>> {
        self.as_array(what)?.iter().map(|item| item.as_f32(what)).collect()
    }
}

fn parse_f32(text: &str) -> Option<f32> {
    match text.trim() {
        "NaN" | "nan" => Some(f32::NAN),
        "Infinity" | "inf" => Some(f32::INFINITY),
        "-Infinity" | "-inf" => Some(f32::NEG_INFINITY),
        other => other.parse().ok(),
    }
}

/// Parses JSON text (plus bare `NaN`, `Infinity`, `-Infinity`).
pub(crate) fn parse_json(bytes: &[u8]) -> Result<Document> {
    let mut parser = JsonParser { bytes, position: 0, depth: 0 };
    let document = parser.value()?;
    parser.skip_whitespace();
    if parser.position != bytes.len() {
        return Err(malformed(format!("unexpected data at byte {}", parser.position)));
    }
    Ok(document)
}

/// Nesting deeper than this is refused (model files nest a handful of levels).
const MAX_DEPTH: usize = 64;

struct JsonParser<'a> {
    bytes: &'a [u8],
    position: usize,
    depth: usize,
}

impl JsonParser<'_> {
    fn skip_whitespace(&mut self) {
        while self.bytes.get(self.position).is_some_and(u8::is_ascii_whitespace) {
            self.position += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_whitespace();
        self.bytes.get(self.position).copied()
    }

    fn expect(&mut self, byte: u8) -> Result<()> {
        if self.peek() == Some(byte) {
            self.position += 1;
            Ok(())
        } else {
            Err(malformed(format!("expected `{}` at byte {}", byte as char, self.position)))
        }
    }

    fn literal(&mut self, word: &str) -> bool {
        if self.bytes[self.position..].starts_with(word.as_bytes()) {
            self.position += word.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self) -> Result<Document> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(malformed("nested too deeply"));
        }
        let value = match self.peek() {
            Some(b'{') => {
                self.position += 1;
                let mut members = Vec::new();
                if self.peek() == Some(b'}') {
                    self.position += 1;
                } else {
                    loop {
                        let key = self.string()?;
                        self.expect(b':')?;
                        members.push((key, self.value()?));
                        match self.peek() {
                            Some(b',') => self.position += 1,
                            Some(b'}') => {
                                self.position += 1;
                                break;
                            }
                            _ => return Err(malformed(format!("expected `,` or `}}` at byte {}", self.position))),
                        }
                    }
                }
                Document::Object(members)
            }
            Some(b'[') => {
                self.position += 1;
                let mut items = Vec::new();
                if self.peek() == Some(b']') {
                    self.position += 1;
                } else {
                    loop {
                        items.push(self.value()?);
                        match self.peek() {
                            Some(b',') => self.position += 1,
                            Some(b']') => {
                                self.position += 1;
                                break;
                            }
                            _ => return Err(malformed(format!("expected `,` or `]` at byte {}", self.position))),
                        }
                    }
                }
                Document::Array(items)
            }
            Some(b'"') => Document::Text(self.string()?),
            Some(b't') if self.literal("true") => Document::Bool(true),
            Some(b'f') if self.literal("false") => Document::Bool(false),
            Some(b'n') if self.literal("null") => Document::Null,
            Some(b'N') if self.literal("NaN") => Document::Number("NaN".into()),
            Some(b'I') if self.literal("Infinity") => Document::Number("Infinity".into()),
            Some(b'-') if self.literal("-Infinity") => Document::Number("-Infinity".into()),
            Some(byte) if byte == b'-' || byte.is_ascii_digit() => {
                let start = self.position;
                while self
                    .bytes
                    .get(self.position)
                    .is_some_and(|byte| byte.is_ascii_digit() || matches!(byte, b'-' | b'+' | b'.' | b'e' | b'E'))
                {
                    self.position += 1;
                }
                Document::Number(String::from_utf8_lossy(&self.bytes[start..self.position]).into_owned())
            }
            _ => return Err(malformed(format!("unexpected byte at {}", self.position))),
        };
        self.depth -= 1;
        Ok(value)
    }

    fn string(&mut self) -> Result<String> {
        self.expect(b'"')?;
        let mut text = Vec::new();
        loop {
            let Some(&byte) = self.bytes.get(self.position) else {
                return Err(malformed("unterminated string"));
            };
            self.position += 1;
            match byte {
                b'"' => break,
                b'\\' => {
                    let Some(&escaped) = self.bytes.get(self.position) else {
                        return Err(malformed("unterminated escape"));
                    };
                    self.position += 1;
                    match escaped {
                        b'n' => text.push(b'\n'),
                        b't' => text.push(b'\t'),
                        b'r' => text.push(b'\r'),
                        b'b' => text.push(8),
                        b'f' => text.push(12),
                        b'u' => {
                            let hex = self
                                .bytes
                                .get(self.position..self.position + 4)
                                .ok_or_else(|| malformed("short \\u escape"))?;
                            self.position += 4;
                            let code = u32::from_str_radix(&String::from_utf8_lossy(hex), 16)
                                .map_err(|_| malformed("bad \\u escape"))?;
                            let character = char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER);
                            text.extend_from_slice(character.to_string().as_bytes());
                        }
                        other => text.push(other),
                    }
                }
                other => text.push(other),
            }
        }
        Ok(String::from_utf8_lossy(&text).into_owned())
    }
}

/// Parses XGBoost's Universal Binary JSON (big-endian; typed and counted arrays without a closing
/// `]`; object keys as a length and bytes).
pub(crate) fn parse_ubjson(bytes: &[u8]) -> Result<Document> {
    let mut parser = UbjsonParser { bytes, position: 0, depth: 0 };
    let marker = parser.byte()?;
    parser.value(marker)
}

struct UbjsonParser<'a> {
    bytes: &'a [u8],
    position: usize,
    depth: usize,
}

impl UbjsonParser<'_> {
    fn take(&mut self, count: usize) -> Result<&[u8]> {
        let end = self
            .position
            .checked_add(count)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| malformed("truncated UBJSON"))?;
        let slice = &self.bytes[self.position..end];
        self.position = end;
        Ok(slice)
    }

    fn byte(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut buffer = [0u8; N];
        buffer.copy_from_slice(self.take(N)?);
        Ok(buffer)
    }

    /// An integer written with its own marker (a length or a count).
    fn integer(&mut self) -> Result<i64> {
        let marker = self.byte()?;
        match self.scalar(marker)? {
            Document::Integer(number) => Ok(number),
            _ => Err(malformed("expected an integer length")),
        }
    }

    fn length(&mut self) -> Result<usize> {
        let length = self.integer()?;
        usize::try_from(length)
            .ok()
            .filter(|length| *length <= self.bytes.len())
            .ok_or_else(|| malformed(format!("impossible length {length}")))
    }

    fn scalar(&mut self, marker: u8) -> Result<Document> {
        Ok(match marker {
            b'i' => Document::Integer(i64::from(i8::from_be_bytes(self.array()?))),
            b'U' => Document::Integer(i64::from(self.byte()?)),
            b'I' => Document::Integer(i64::from(i16::from_be_bytes(self.array()?))),
            b'l' => Document::Integer(i64::from(i32::from_be_bytes(self.array()?))),
            b'L' => Document::Integer(i64::from_be_bytes(self.array()?)),
            b'd' => Document::Float32(f32::from_be_bytes(self.array()?)),
            b'D' => Document::Float64(f64::from_be_bytes(self.array()?)),
            b'C' => Document::Text((self.byte()? as char).to_string()),
            b'T' => Document::Bool(true),
            b'F' => Document::Bool(false),
            b'Z' => Document::Null,
            b'S' => {
                let length = self.length()?;
                Document::Text(String::from_utf8_lossy(self.take(length)?).into_owned())
            }
            other => return Err(malformed(format!("unknown UBJSON marker `{}`", other as char))),
        })
    }

    fn value(&mut self, marker: u8) -> Result<Document> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(malformed("nested too deeply"));
        }
        let value = match marker {
            b'{' => {
                let mut members = Vec::new();
                loop {
                    if self.bytes.get(self.position) == Some(&b'}') {
                        self.position += 1;
                        break;
                    }
                    let length = self.length()?;
                    let key = String::from_utf8_lossy(self.take(length)?).into_owned();
                    let marker = self.byte()?;
                    members.push((key, self.value(marker)?));
                }
                Document::Object(members)
            }
            b'[' => {
                let mut element_type = None;
                if self.bytes.get(self.position) == Some(&b'$') {
                    self.position += 1;
                    element_type = Some(self.byte()?);
                }
                let count = if self.bytes.get(self.position) == Some(&b'#') {
                    self.position += 1;
                    Some(self.length()?)
                } else {
                    None
                };
                let mut items = Vec::with_capacity(count.unwrap_or(0).min(1 << 20));
                match (count, element_type) {
                    (Some(count), Some(element)) => {
                        for _ in 0..count {
                            items.push(self.scalar(element)?);
                        }
                    }
                    (Some(count), None) => {
                        for _ in 0..count {
                            let marker = self.byte()?;
                            items.push(self.value(marker)?);
                        }
                    }
                    (None, _) => loop {
                        let marker = self.byte()?;
                        if marker == b']' {
                            break;
                        }
                        items.push(self.value(marker)?);
                    },
                }
                Document::Array(items)
            }
            other => self.scalar(other)?,
        };
        self.depth -= 1;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keeps_number_text_and_tolerates_non_finite_values() {
        let document =
            parse_json(br#"{"a": [0.1, -2E-1, NaN, Infinity], "b": {"c": "x\"y"}, "d": 7}"#).expect("parses");
        let floats = document.at("a").and_then(|array| array.floats("a")).expect("floats");
        assert_eq!(floats[0].to_bits(), 0.1_f32.to_bits());
        assert_eq!(floats[1], -0.2_f32);
        assert!(floats[2].is_nan() && floats[3] == f32::INFINITY);
        assert_eq!(document.at("b/c").and_then(|text| text.as_text("c")).expect("text"), "x\"y");
        assert_eq!(document.at("d").and_then(|number| number.as_i64("d")).expect("int"), 7);
        assert!(parse_json(b"{\"a\": [1, 2}").is_err());
        assert!(parse_json(&[b'['; 200]).is_err(), "depth is capped");
    }

    #[test]
    fn ubjson_reads_typed_and_counted_arrays() {
        let mut bytes = vec![b'{'];
        let key = |bytes: &mut Vec<u8>, name: &str| {
            bytes.push(b'L');
            bytes.extend_from_slice(&(name.len() as i64).to_be_bytes());
            bytes.extend_from_slice(name.as_bytes());
        };
        key(&mut bytes, "typed");
        bytes.extend_from_slice(b"[$d#L");
        bytes.extend_from_slice(&2_i64.to_be_bytes());
        bytes.extend_from_slice(&1.5_f32.to_be_bytes());
        bytes.extend_from_slice(&(-0.25_f32).to_be_bytes());
        key(&mut bytes, "mixed");
        bytes.extend_from_slice(b"[#L");
        bytes.extend_from_slice(&2_i64.to_be_bytes());
        bytes.extend_from_slice(&[b'i', 3, b'S', b'L']);
        bytes.extend_from_slice(&1_i64.to_be_bytes());
        bytes.push(b'7');
        bytes.push(b'}');
        let document = parse_ubjson(&bytes).expect("parses");
        assert_eq!(document.at("typed").and_then(|array| array.floats("typed")).expect("floats"), vec![1.5, -0.25]);
        let mixed = document.at("mixed").and_then(|array| array.as_array("mixed")).expect("array");
        assert_eq!(mixed, &[Document::Integer(3), Document::Text("7".into())]);
        assert!(parse_ubjson(&bytes[..bytes.len() - 6]).is_err(), "truncated input is an error");
    }
}
