//! Standard base64 (RFC 4648, padded): ONNX graphs' bytes inside JSON artifacts, and the
//! gateway's `encoding_format = "base64"` embeddings.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// `bytes` as padded base64.
pub fn encode(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let word =
            chunk.iter().enumerate().fold(0_u32, |word, (index, byte)| word | u32::from(*byte) << (16 - 8 * index));
        for position in 0..4 {
            if position <= chunk.len() {
                text.push(char::from(ALPHABET[((word >> (18 - 6 * position)) & 63) as usize]));
            } else {
                text.push('=');
            }
        }
    }
    text
}

/// The bytes `text` encodes, or `None` when it holds a character outside the alphabet.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    let trimmed = text.trim_end_matches('=');
    let mut bytes = Vec::with_capacity(trimmed.len() * 3 / 4);
    let (mut word, mut bits) = (0_u32, 0);
    for character in trimmed.bytes() {
        let value = ALPHABET.iter().position(|known| *known == character)? as u32;
        word = (word << 6) | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            bytes.push((word >> bits) as u8);
            word &= (1 << bits) - 1;
        }
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_length_and_gives_rfc_4648s_examples() {
        for length in 0..40_usize {
            let bytes: Vec<u8> = (0..length).map(|index| (index * 37 % 256) as u8).collect();
            let text = encode(&bytes);
            assert_eq!(text.len(), length.div_ceil(3) * 4);
            assert_eq!(decode(&text), Some(bytes));
        }
        assert_eq!(encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(encode(b"fo"), "Zm8=");
        assert_eq!(decode("Zm9vYg=="), Some(b"foob".to_vec()));
        assert_eq!(decode("Zm9v!"), None);
    }
}
