//! The cost router: a route's own targets are the small model, tried first; a rule sends the
//! request to a larger model instead — before the small one is asked (a long prompt, a keyword)
//! or after it answered (its mean token probability below a bound, or a phrase such as "I don't
//! know" in its answer). Pure decisions over JSON; the gateway makes the calls and counts the
//! share escalated and the money saved.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `escalation = { … }` of a route.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationConfig {
    /// The larger model's provider.
    pub provider: String,
    /// The model name sent to it (default: the route's name).
    #[serde(default)]
    pub model: Option<String>,
    /// Before the small model: the user and tool messages are longer than this many characters.
    #[serde(default)]
    pub prompt_longer_than: Option<usize>,
    /// Before: a user message holds one of these words or phrases (whole words, any case).
    #[serde(default)]
    pub keywords: Vec<String>,
    /// After (whole answers): the small model's mean token probability, from `logprobs`, is
    /// below this (between 0 and 1).
    #[serde(default)]
    pub confidence_below: Option<f64>,
    /// After (whole answers): the small model's answer holds one of these phrases (any case).
    #[serde(default)]
    pub answer_phrases: Vec<String>,
}

impl Eq for EscalationConfig {}

/// Why a request went to the larger model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The prompt was long.
    PromptLength,
    /// It held a keyword.
    Keyword,
    /// The small model was unsure.
    LowConfidence,
    /// The small model's answer held an escalation phrase.
    AnswerPhrase,
}

impl Reason {
    /// Its name in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PromptLength => "prompt_length",
            Self::Keyword => "keyword",
            Self::LowConfidence => "low_confidence",
            Self::AnswerPhrase => "answer_phrase",
        }
    }
}

impl EscalationConfig {
    /// What is wrong with it, given the providers that exist.
    pub fn check(&self, route: &str, providers: &[&str]) -> Result<(), String> {
        if !providers.contains(&self.provider.as_str()) {
            return Err(format!("route `{route}` escalates to provider `{}`, which is not defined", self.provider));
        }
        if self.prompt_longer_than.is_none()
            && self.keywords.is_empty()
            && self.confidence_below.is_none()
            && self.answer_phrases.is_empty()
        {
            return Err(format!(
                "route `{route}`: `escalation` has no rule; give prompt_longer_than, keywords, confidence_below or answer_phrases"
            ));
        }
        if self.confidence_below.is_some_and(|bound| !(bound > 0.0 && bound < 1.0)) {
            return Err(format!("route `{route}`: escalation confidence_below must be between 0 and 1"));
        }
        Ok(())
    }

    /// Whether a rule judges the small model's answer (which must then be read whole).
    pub fn judges_answers(&self) -> bool {
        self.confidence_below.is_some() || !self.answer_phrases.is_empty()
    }

    /// Whether the request goes to the larger model before the small one is asked.
    pub fn before(&self, request: &Value) -> Option<Reason> {
        let texts = caller_texts(request);
        if self
            .prompt_longer_than
            .is_some_and(|limit| texts.iter().map(|text| text.chars().count()).sum::<usize>() > limit)
        {
            return Some(Reason::PromptLength);
        }
        let lowered: Vec<String> = texts.iter().map(|text| text.to_lowercase()).collect();
        let has_keyword = self.keywords.iter().any(|keyword| {
            let keyword = keyword.to_lowercase();
            lowered.iter().any(|text| contains_word(text, &keyword))
        });
        has_keyword.then_some(Reason::Keyword)
    }

    /// Whether the small model's whole answer sends the request on to the larger model.
    pub fn after(&self, answer: &Value) -> Option<Reason> {
        let choice = &answer["choices"][0];
        if let Some(bound) = self.confidence_below
            && let Some(confidence) = confidence(choice)
            && confidence < bound
        {
            return Some(Reason::LowConfidence);
        }
        let text = choice["message"]["content"].as_str().unwrap_or_default().to_lowercase();
        let phrase = self.answer_phrases.iter().any(|phrase| text.contains(&phrase.to_lowercase()));
        phrase.then_some(Reason::AnswerPhrase)
    }
}

/// The mean probability of a choice's tokens (the geometric mean: `exp` of the mean
/// log-probability), when its answer carries `logprobs`.
pub fn confidence(choice: &Value) -> Option<f64> {
    let logprobs: Vec<f64> =
        choice["logprobs"]["content"].as_array()?.iter().filter_map(|token| token["logprob"].as_f64()).collect();
    if logprobs.is_empty() {
        return None;
    }
    Some((logprobs.iter().sum::<f64>() / logprobs.len() as f64).exp())
}

/// The texts of a chat request's user and tool messages.
fn caller_texts(request: &Value) -> Vec<String> {
    let mut texts = Vec::new();
    for message in request.get("messages").and_then(Value::as_array).into_iter().flatten() {
        if !matches!(message.get("role").and_then(Value::as_str), Some("user" | "tool")) {
            continue;
        }
        match message.get("content") {
            Some(Value::String(text)) => texts.push(text.clone()),
            Some(Value::Array(parts)) => {
                texts.extend(
                    parts.iter().filter_map(|part| part.get("text").and_then(Value::as_str)).map(str::to_string),
                );
            }
            _ => {}
        }
    }
    texts
}

fn contains_word(text: &str, word: &str) -> bool {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(offset) = text[from..].find(word) {
        let (start, end) = (from + offset, from + offset + word.len());
        let before = start == 0 || !bytes[start - 1].is_ascii_alphanumeric();
        let after = end >= bytes.len() || !bytes[end].is_ascii_alphanumeric();
        if before && after {
            return true;
        }
        from = start + 1;
        while !text.is_char_boundary(from) {
            from += 1;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn escalation() -> EscalationConfig {
        EscalationConfig {
            provider: "big".into(),
            model: None,
            prompt_longer_than: Some(40),
            keywords: vec!["contract".into(), "legal advice".into()],
            confidence_below: Some(0.5),
            answer_phrases: vec!["I don't know".into()],
        }
    }

    #[test]
    fn rules_decide_before_and_after_the_small_model() {
        let rules = escalation();
        let ask = |text: &str| json!({"messages": [{"role": "system", "content": "a long system prompt that is not counted at all"}, {"role": "user", "content": text}]});
        assert_eq!(rules.before(&ask("hi")), None);
        assert_eq!(rules.before(&ask("Is this Contract binding?")), Some(Reason::Keyword));
        assert_eq!(rules.before(&ask("contractors are late")), None, "whole words");
        assert_eq!(rules.before(&ask(&"x".repeat(41))), Some(Reason::PromptLength));
        let answer = |text: &str, logprobs: &[f64]| {
            let content: Vec<Value> =
                logprobs.iter().map(|logprob| json!({"token": "t", "logprob": logprob})).collect();
            json!({"choices": [{"message": {"content": text}, "logprobs": {"content": content}}]})
        };
        assert_eq!(rules.after(&answer("Paris.", &[-0.1, -0.2])), None);
        assert_eq!(rules.after(&answer("Paris.", &[-1.0, -1.0])), Some(Reason::LowConfidence), "e^-1 = 0.37");
        assert_eq!(rules.after(&answer("Sorry, I DON'T KNOW.", &[-0.1])), Some(Reason::AnswerPhrase));
        assert_eq!(
            rules.after(&json!({"choices": [{"message": {"content": "ok"}}]})),
            None,
            "no logprobs: no judgement"
        );
        assert!(rules.check("r", &["big"]).is_ok());
        assert!(rules.check("r", &["small"]).expect_err("unknown").contains("provider `big`"));
        let empty = EscalationConfig { provider: "big".into(), ..EscalationConfig::default() };
        assert!(empty.check("r", &["big"]).expect_err("no rule").contains("has no rule"));
    }
}
