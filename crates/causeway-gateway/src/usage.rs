//! Token usage as OpenAI-compatible upstreams report it, read from a whole answer or a stream's
//! chunks (`usage` is `null` on every chunk but the last when `stream_options.include_usage` is
//! set; vLLM may send `choices: null` beside it).

use serde_json::Value;

/// What one call used, in tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Tokens of the prompt, cached ones included.
    pub prompt_tokens: u64,
    /// Of those, the ones the provider served from its prompt cache (priced apart).
    pub cached_tokens: u64,
    /// Tokens generated.
    pub completion_tokens: u64,
    /// Of those, reasoning tokens (for the record; priced as output).
    pub reasoning_tokens: u64,
}

impl Usage {
    /// The usage in an answer or chunk (`{"usage": {...}}`), if it carries one. Counts that are
    /// missing are 0; counts that are not whole non-negative numbers make the usage unreadable
    /// (`None`) rather than wrong.
    pub fn from_answer(answer: &Value) -> Option<Self> {
        let usage = answer.get("usage")?.as_object()?;
        let count = |value: Option<&Value>| -> Option<u64> {
            match value {
                None | Some(Value::Null) => Some(0),
                Some(value) => value.as_u64(),
            }
        };
        let detail = |section: &str, key: &str| count(usage.get(section).and_then(|details| details.get(key)));
        let prompt_tokens = count(usage.get("prompt_tokens"))?;
        let cached_tokens = detail("prompt_tokens_details", "cached_tokens")?;
        if cached_tokens > prompt_tokens {
            return None;
        }
        Some(Self {
            prompt_tokens,
            cached_tokens,
            completion_tokens: count(usage.get("completion_tokens"))?,
            reasoning_tokens: detail("completion_tokens_details", "reasoning_tokens")?,
        })
    }

    /// The usage in a stream's `data:` payload (`[DONE]` and non-JSON carry none).
    pub fn from_chunk(data: &str) -> Option<Self> {
        if data == "[DONE]" {
            return None;
        }
        serde_json::from_str::<Value>(data).ok().as_ref().and_then(Self::from_answer)
    }

    /// Whether a chunk is the usage-only one `include_usage` adds (no choices, a usage): the
    /// gateway drops it when it asked for usage on the caller's behalf.
    pub fn is_usage_only_chunk(chunk: &Value) -> bool {
        let no_choices = match chunk.get("choices") {
            None | Some(Value::Null) => true,
            Some(Value::Array(choices)) => choices.is_empty(),
            Some(_) => false,
        };
        no_choices && chunk.get("usage").is_some_and(Value::is_object)
    }

    /// Prompt tokens not served from the cache.
    pub fn uncached_prompt_tokens(&self) -> u64 {
        self.prompt_tokens - self.cached_tokens.min(self.prompt_tokens)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_openai_usage_with_details_and_refuses_nonsense() {
        let answer = json!({"usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150,
            "prompt_tokens_details": {"cached_tokens": 100}, "completion_tokens_details": {"reasoning_tokens": 12}}});
        let usage = Usage::from_answer(&answer).expect("usage");
        assert_eq!(
            usage,
            Usage { prompt_tokens: 120, cached_tokens: 100, completion_tokens: 30, reasoning_tokens: 12 }
        );
        assert_eq!(usage.uncached_prompt_tokens(), 20);
        assert_eq!(
            Usage::from_answer(&json!({"usage": {"prompt_tokens": 5, "completion_tokens": 1}})),
            Some(Usage { prompt_tokens: 5, completion_tokens: 1, ..Usage::default() })
        );
        for nonsense in [
            json!({"usage": null}),
            json!({}),
            json!({"usage": {"prompt_tokens": -1}}),
            json!({"usage": {"prompt_tokens": 1.5}}),
            json!({"usage": {"prompt_tokens": 3, "prompt_tokens_details": {"cached_tokens": 4}}}),
        ] {
            assert_eq!(Usage::from_answer(&nonsense), None, "{nonsense}");
        }
    }

    #[test]
    fn finds_the_usage_chunk_of_a_stream() {
        assert_eq!(Usage::from_chunk("[DONE]"), None);
        assert_eq!(Usage::from_chunk("{\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}"), None);
        let last = "{\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2}}";
        assert_eq!(Usage::from_chunk(last).map(|usage| usage.completion_tokens), Some(2));
        let parsed: Value = serde_json::from_str(last).expect("json");
        assert!(Usage::is_usage_only_chunk(&parsed));
        assert!(Usage::is_usage_only_chunk(&json!({"choices": null, "usage": {"prompt_tokens": 1}})), "vLLM's shape");
        assert!(!Usage::is_usage_only_chunk(&json!({"choices": [{"delta": {}}], "usage": {"prompt_tokens": 1}})));
        assert!(!Usage::is_usage_only_chunk(&json!({"choices": [], "usage": null})));
    }
}
