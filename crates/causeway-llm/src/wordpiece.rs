//! BERT's WordPiece tokenizer as Hugging Face's `tokenizers` runs it for a `tokenizer.json` with a
//! `BertNormalizer` and `BertPreTokenizer`: control characters dropped, whitespace made spaces,
//! CJK ideographs spaced apart, accents stripped (NFD, marks removed) and text lowercased when the
//! file says so; words split at whitespace and around each punctuation character; then each word
//! the longest vocabulary pieces first (`##` continuing), `[UNK]` when it cannot be covered.

use std::collections::HashMap;

use serde_json::Value;
use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, GeneralCategoryGroup, UnicodeGeneralCategory};

use crate::error::{Error, Result};

/// A WordPiece tokenizer.
#[derive(Debug)]
pub struct WordPiece {
    vocabulary: HashMap<String, u32>,
    unknown: u32,
    /// `[CLS]` and `[SEP]`, around every text.
    classify: u32,
    separate: u32,
    prefix: String,
    max_word_characters: usize,
    lowercase: bool,
    strip_accents: bool,
}

impl WordPiece {
    /// The tokenizer a `tokenizer.json` describes.
    pub fn from_tokenizer_json(json: &Value) -> Result<Self> {
        let model = &json["model"];
        if model["type"].as_str() != Some("WordPiece") {
            return Err(Error::Unsupported(format!(
                "tokenizer model `{}` (the built-in embedder reads WordPiece, BERT's)",
                model["type"].as_str().unwrap_or("none")
            )));
        }
        let vocabulary: HashMap<String, u32> = model["vocab"]
            .as_object()
            .ok_or_else(|| Error::Format("tokenizer.json has no model.vocab".into()))?
            .iter()
            .filter_map(|(token, id)| Some((token.clone(), u32::try_from(id.as_u64()?).ok()?)))
            .collect();
        let id = |token: &str| {
            vocabulary.get(token).copied().ok_or_else(|| Error::Format(format!("the vocabulary has no `{token}`")))
        };
        let unknown = id(model["unk_token"].as_str().unwrap_or("[UNK]"))?;
        let (classify, separate) = (id("[CLS]")?, id("[SEP]")?);
        let normalizer = &json["normalizer"];
        if !normalizer.is_null() && normalizer["type"].as_str() != Some("BertNormalizer") {
            return Err(Error::Unsupported(format!(
                "normalizer `{}` (the built-in embedder reads BertNormalizer)",
                normalizer["type"].as_str().unwrap_or("unknown")
            )));
        }
        let lowercase = normalizer["lowercase"].as_bool().unwrap_or(true);
        // `strip_accents: null` follows `lowercase`, as in Hugging Face's BertNormalizer.
        let strip_accents = normalizer["strip_accents"].as_bool().unwrap_or(lowercase);
        Ok(Self {
            unknown,
            classify,
            separate,
            prefix: model["continuing_subword_prefix"].as_str().unwrap_or("##").to_string(),
            max_word_characters: model["max_input_chars_per_word"].as_u64().unwrap_or(100) as usize,
            lowercase,
            strip_accents,
            vocabulary,
        })
    }

    /// `text` as ids between `[CLS]` and `[SEP]`, at most `limit` ids in all.
    pub fn encode(&self, text: &str, limit: usize) -> Vec<u32> {
        let mut ids = vec![self.classify];
        for word in words(&self.normalize(text)) {
            self.encode_word(&word, &mut ids);
        }
        ids.truncate(limit.saturating_sub(1).max(1));
        ids.push(self.separate);
        ids
    }

    fn normalize(&self, text: &str) -> String {
        let mut cleaned = String::with_capacity(text.len());
        for character in text.chars() {
            if character == '\0' || character == '\u{fffd}' || is_control(character) {
                continue;
            }
            if is_cjk(character) {
                cleaned.push(' ');
                cleaned.push(character);
                cleaned.push(' ');
            } else if is_whitespace(character) {
                cleaned.push(' ');
            } else {
                cleaned.push(character);
            }
        }
        if self.strip_accents {
            cleaned = cleaned.nfd().filter(|c| c.general_category() != GeneralCategory::NonspacingMark).collect();
        }
        if self.lowercase { cleaned.to_lowercase() } else { cleaned }
    }

    fn encode_word(&self, word: &str, ids: &mut Vec<u32>) {
        let characters: Vec<(usize, char)> = word.char_indices().collect();
        if characters.len() > self.max_word_characters {
            ids.push(self.unknown);
            return;
        }
        let mut pieces = Vec::new();
        let mut start = 0;
        while start < characters.len() {
            let mut end = characters.len();
            let mut found = None;
            while end > start {
                let from = characters[start].0;
                let to = characters.get(end).map_or(word.len(), |(at, _)| *at);
                let piece =
                    if start > 0 { format!("{}{}", self.prefix, &word[from..to]) } else { word[from..to].to_string() };
                if let Some(id) = self.vocabulary.get(&piece) {
                    found = Some(*id);
                    break;
                }
                end -= 1;
            }
            let Some(id) = found else {
                ids.push(self.unknown);
                return;
            };
            pieces.push(id);
            start = end;
        }
        ids.extend(pieces);
    }
}

/// Words: split at whitespace, each punctuation character a word of its own.
fn words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    for character in text.chars() {
        if character.is_whitespace() {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
        } else if is_punctuation(character) {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            words.push(character.to_string());
        } else {
            current.push(character);
        }
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

fn is_whitespace(character: char) -> bool {
    matches!(character, ' ' | '\t' | '\n' | '\r') || character.general_category() == GeneralCategory::SpaceSeparator
}

fn is_control(character: char) -> bool {
    if matches!(character, '\t' | '\n' | '\r') {
        return false;
    }
    matches!(
        character.general_category(),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::PrivateUse
            | GeneralCategory::Surrogate
            | GeneralCategory::Unassigned
    )
}

fn is_punctuation(character: char) -> bool {
    let code = character as u32;
    (33..=47).contains(&code)
        || (58..=64).contains(&code)
        || (91..=96).contains(&code)
        || (123..=126).contains(&code)
        || character.general_category_group() == GeneralCategoryGroup::Punctuation
}

fn is_cjk(character: char) -> bool {
    matches!(character as u32,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F | 0x2B820..=0x2CEAF | 0xF900..=0xFAFF | 0x2F800..=0x2FA1F)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokenizer() -> WordPiece {
        let vocabulary =
            ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "hello", ",", "world", "!", "cafe", "un", "##aff", "##able", "中"];
        let vocab: serde_json::Map<String, Value> =
            vocabulary.iter().enumerate().map(|(id, token)| (token.to_string(), Value::from(id))).collect();
        let json = serde_json::json!({
            "normalizer": {"type": "BertNormalizer", "lowercase": true, "strip_accents": null},
            "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                      "max_input_chars_per_word": 100, "vocab": vocab},
        });
        WordPiece::from_tokenizer_json(&json).unwrap()
    }

    #[test]
    fn normalizes_splits_and_takes_the_longest_pieces() {
        let tokenizer = tokenizer();
        assert_eq!(tokenizer.encode("Héllo, WORLD!", 512), [2, 4, 5, 6, 7, 3]);
        assert_eq!(tokenizer.encode("unaffable café\u{200b}", 512), [2, 9, 10, 11, 8, 3]);
        assert_eq!(tokenizer.encode("unknownword 中", 512), [2, 1, 12, 3]);
        assert_eq!(tokenizer.encode("hello hello hello", 3), [2, 4, 3], "truncated to the limit, [SEP] kept");
    }
}
