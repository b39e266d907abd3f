//! The byte-level BPE tokenizer of a GGUF model (`tokenizer.ggml.model = "gpt2"`), built from the
//! file's own vocabulary and merges: text is split as the model's pre-tokenizer does (digits one by
//! one, then GPT-2's pattern), each piece's bytes mapped to GPT-2's printable characters, and
//! pairs merged by rank. Control tokens (`<|im_start|>`) are never produced from text: a caller's
//! words cannot open a turn of their own.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::gguf::{Gguf, Value};

/// Token type id of a control token in `tokenizer.ggml.token_type`.
const CONTROL: u64 = 3;

/// A model's tokenizer.
#[derive(Debug)]
pub struct Tokenizer {
    tokens: Vec<String>,
    control: Vec<bool>,
    ids: HashMap<String, u32>,
    /// (left, right) → (rank, merged).
    merges: HashMap<(u32, u32), (u32, u32)>,
    /// A byte's token, through GPT-2's byte-to-character map.
    byte_tokens: [u32; 256],
    /// A character of GPT-2's map back to its byte.
    char_bytes: HashMap<char, u8>,
    digits_apart: bool,
}

impl Tokenizer {
    /// The tokenizer the file describes.
    pub fn from_gguf(gguf: &Gguf) -> Result<Self> {
        let model = gguf.require_str("tokenizer.ggml.model")?;
        if model != "gpt2" {
            return Err(Error::Unsupported(format!(
                "tokenizer `{model}` (only byte-level BPE, `gpt2`, is built in; llama's SentencePiece is not)"
            )));
        }
        let pre = gguf.metadata.get("tokenizer.ggml.pre").and_then(Value::as_str).unwrap_or("default");
        let digits_apart = match pre {
            "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva" => true,
            "gpt-2" | "gpt2" | "default" | "olmo" | "mpt" | "jais" => false,
            other => {
                return Err(Error::Unsupported(format!(
                    "pre-tokenizer `{other}` (built in: smollm, starcoder and gpt-2's families)"
                )));
            }
        };
        let tokens = strings(gguf.require("tokenizer.ggml.tokens")?, "tokenizer.ggml.tokens")?;
        let control = match gguf.metadata.get("tokenizer.ggml.token_type") {
            Some(Value::Array(types)) => types.iter().map(|kind| kind.as_u64() == Some(CONTROL)).collect(),
            _ => vec![false; tokens.len()],
        };
        let mut ids = HashMap::with_capacity(tokens.len());
        for (id, token) in tokens.iter().enumerate() {
            ids.insert(token.clone(), id_of(id)?);
        }
        let unicode = byte_to_unicode();
        let mut byte_tokens = [0u32; 256];
        let mut char_bytes = HashMap::with_capacity(256);
        // A byte the vocabulary lacks (SmolLM2 has no token for some control characters) becomes
        // the unknown token, as Hugging Face's BPE without byte fallback does.
        let unknown = gguf.metadata.get("tokenizer.ggml.unknown_token_id").and_then(Value::as_u64).unwrap_or(0);
        let unknown = u32::try_from(unknown).unwrap_or(0);
        let mut known_bytes = 0;
        for (byte, character) in unicode.iter().enumerate() {
            let id = ids.get(&character.to_string()).copied();
            known_bytes += usize::from(id.is_some());
            byte_tokens[byte] = id.unwrap_or(unknown);
            char_bytes.insert(*character, byte as u8);
        }
        if known_bytes < 128 {
            return Err(Error::Format(format!(
                "the vocabulary has tokens for only {known_bytes} of 256 bytes: not a byte-level BPE"
            )));
        }
        let merge_list = strings(gguf.require("tokenizer.ggml.merges")?, "tokenizer.ggml.merges")?;
        let mut merges = HashMap::with_capacity(merge_list.len());
        for (rank, merge) in merge_list.iter().enumerate() {
            let Some((left, right)) = merge.split_once(' ') else {
                return Err(Error::Format(format!("merge {rank} `{merge}` is not two tokens")));
            };
            let (Some(&left_id), Some(&right_id), Some(&merged)) =
                (ids.get(left), ids.get(right), ids.get(&format!("{left}{right}")))
            else {
                return Err(Error::Format(format!("merge {rank} `{merge}` names tokens the vocabulary lacks")));
            };
            merges.entry((left_id, right_id)).or_insert((id_of(rank)?, merged));
        }
        Ok(Self { tokens, control, ids, merges, byte_tokens, char_bytes, digits_apart })
    }

    /// The number of tokens.
    pub fn vocabulary_size(&self) -> usize {
        self.tokens.len()
    }

    /// A token's id by its exact text (a control token such as `<|im_start|>`).
    pub fn token(&self, text: &str) -> Option<u32> {
        self.ids.get(text).copied()
    }

    /// Whether `id` is a control token (never printed).
    pub fn is_control(&self, id: u32) -> bool {
        self.control.get(id as usize).copied().unwrap_or(false)
    }

    /// `text` as tokens; control tokens' texts inside it are ordinary text.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut output = Vec::new();
        for piece in pieces(text, self.digits_apart) {
            self.encode_piece(piece, &mut output);
        }
        output
    }

    fn encode_piece(&self, piece: &str, output: &mut Vec<u32>) {
        let mut symbols: Vec<u32> = piece.bytes().map(|byte| self.byte_tokens[usize::from(byte)]).collect();
        loop {
            let best = symbols
                .windows(2)
                .enumerate()
                .filter_map(|(at, pair)| {
                    self.merges.get(&(pair[0], pair[1])).map(|(rank, merged)| (*rank, at, *merged))
                })
                .min();
            let Some((_, at, merged)) = best else { break };
            symbols[at] = merged;
            symbols.remove(at + 1);
        }
        output.extend(symbols);
    }

    /// The bytes token `id` stands for (nothing for control tokens and unknown ids).
    pub fn decode(&self, id: u32, output: &mut Vec<u8>) {
        if self.is_control(id) {
            return;
        }
        if let Some(token) = self.tokens.get(id as usize) {
            for character in token.chars() {
                match self.char_bytes.get(&character) {
                    Some(byte) => output.push(*byte),
                    None => output.extend(character.to_string().as_bytes()),
                }
            }
        }
    }
}

fn id_of(index: usize) -> Result<u32> {
    u32::try_from(index).map_err(|_| Error::Format("the vocabulary has over 2³² tokens".into()))
}

fn strings(value: &Value, key: &str) -> Result<Vec<String>> {
    match value {
        Value::Array(items) => items
            .iter()
            .map(|item| {
                item.as_str().map(str::to_string).ok_or_else(|| Error::Format(format!("`{key}` holds a non-string")))
            })
            .collect(),
        _ => Err(Error::Format(format!("`{key}` is not an array"))),
    }
}

/// GPT-2's map from bytes to printable characters: printable Latin-1 stays, the rest is shifted
/// past 255 in order.
fn byte_to_unicode() -> [char; 256] {
    let mut map = ['\0'; 256];
    let mut shifted = 0u32;
    for byte in 0..=255u8 {
        let printable = matches!(byte, b'!'..=b'~' | 0xa1..=0xac | 0xae..=0xff);
        let code = if printable {
            u32::from(byte)
        } else {
            shifted += 1;
            255 + shifted
        };
        map[usize::from(byte)] = char::from_u32(code).unwrap_or('\0');
    }
    map
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Letter,
    Number,
    Space,
    Other,
}

fn class(character: char) -> Class {
    if character.is_alphabetic() {
        Class::Letter
    } else if character.is_numeric() {
        Class::Number
    } else if character.is_whitespace() {
        Class::Space
    } else {
        Class::Other
    }
}

/// `text` split as the pre-tokenizer does: (when `digits_apart`) every digit alone, then GPT-2's
/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
fn pieces(text: &str, digits_apart: bool) -> Vec<&str> {
    let mut output = Vec::new();
    if digits_apart {
        let mut start = 0;
        for (at, character) in text.char_indices() {
            if character.is_numeric() {
                gpt2_pieces(&text[start..at], &mut output);
                output.push(&text[at..at + character.len_utf8()]);
                start = at + character.len_utf8();
            }
        }
        gpt2_pieces(&text[start..], &mut output);
    } else {
        gpt2_pieces(text, &mut output);
    }
    output
}

fn gpt2_pieces<'a>(text: &'a str, output: &mut Vec<&'a str>) {
    let characters: Vec<(usize, char)> = text.char_indices().collect();
    let end_of = |index: usize| characters.get(index).map_or(text.len(), |(at, _)| *at);
    let mut index = 0;
    while index < characters.len() {
        let (start, character) = characters[index];
        let rest = &text[start..];
        if character == '\'' {
            let contraction = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"].into_iter().find(|c| rest.starts_with(c));
            if let Some(contraction) = contraction {
                output.push(&rest[..contraction.len()]);
                index += contraction.len();
                continue;
            }
        }
        let mut next = index;
        let leading_space =
            character == ' ' && characters.get(index + 1).is_some_and(|(_, c)| class(*c) != Class::Space);
        if leading_space {
            next += 1;
        }
        let run_class = class(characters[next].1);
        if run_class == Class::Space {
            let mut stop = next;
            while stop < characters.len() && class(characters[stop].1) == Class::Space {
                stop += 1;
            }
            // `\s+(?!\S)`: a run of spaces before a word leaves its last space to the word.
            if stop < characters.len() && stop - next > 1 {
                stop -= 1;
            }
            output.push(&text[start..end_of(stop)]);
            index = stop;
            continue;
        }
        let mut stop = next;
        while stop < characters.len() && class(characters[stop].1) == run_class {
            stop += 1;
        }
        output.push(&text[start..end_of(stop)]);
        index = stop;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_splits_as_the_smollm_pre_tokenizer_does() {
        assert_eq!(pieces("Hello world", true), ["Hello", " world"]);
        assert_eq!(pieces("it's 2026!", true), ["it", "'s", " ", "2", "0", "2", "6", "!"]);
        assert_eq!(pieces("a   b\n\nc ", true), ["a", "  ", " b", "\n", "\n", "c", " "]);
        assert_eq!(pieces("x  ?!", false), ["x", " ", " ?!"]);
        assert_eq!(pieces("héllo wörld", false), ["héllo", " wörld"]);
        assert_eq!(pieces("123", false), ["123"]);
        assert!(pieces("", true).is_empty());
    }

    #[test]
    fn gpt2_byte_map_covers_every_byte_once() {
        let map = byte_to_unicode();
        let distinct: std::collections::HashSet<char> = map.iter().copied().collect();
        assert_eq!(distinct.len(), 256);
        assert_eq!(map[usize::from(b' ')], 'Ġ');
        assert_eq!(map[usize::from(b'\n')], 'Ċ');
        assert_eq!(map[usize::from(b'A')], 'A');
    }
}
