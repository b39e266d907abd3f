//! The answer cache: an exact cache keyed by the whole request, and a semantic cache that finds a
//! stored answer whose request means nearly the same (cosine similarity of embeddings above a
//! threshold), both per tenant and route, both only for deterministic requests (`temperature`
//! 0; embeddings always). Bounded in entries, expired by age on the time it is given.
//!
//! It stores the provider's answer as a whole chat completion (a stream is assembled first), so
//! a hit is served whole or replayed as a stream whichever the caller asks, and goes through the
//! output guardrails again. Answers with tool calls or several choices are not stored.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use causeway_types::Span;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::usage::Usage;

/// `[gateway.cache]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Answer identical deterministic requests from the cache (default true).
    #[serde(default)]
    pub exact: Option<bool>,
    /// How long an answer is kept (default `1h`).
    #[serde(default)]
    pub ttl: Option<Span>,
    /// How many answers are kept at most, the least recently used dropped first (default 10,000).
    #[serde(default)]
    pub max_entries: Option<usize>,
    /// The routes cached (default: every route).
    #[serde(default)]
    pub routes: Option<Vec<String>>,
    /// Answer requests that mean nearly the same from the cache.
    #[serde(default)]
    pub semantic: Option<SemanticConfig>,
}

/// `[gateway.cache.semantic]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SemanticConfig {
    /// The route that embeds a request's text (`local-embedding`, or any embeddings route).
    pub embedding_route: String,
    /// The least cosine similarity that counts as the same request (default 0.95).
    #[serde(default)]
    pub threshold: Option<f64>,
}

impl Eq for SemanticConfig {}

impl CacheConfig {
    /// What is wrong with the section, given the routes that exist.
    pub fn check(&self, routes: &[&str]) -> Result<(), String> {
        if self.max_entries == Some(0) {
            return Err("cache max_entries must be at least 1".into());
        }
        if self.ttl.is_some_and(|ttl| ttl.millis() == 0) {
            return Err("cache ttl must be longer than 0 (leave [gateway.cache] out for no cache)".into());
        }
        if let Some(semantic) = &self.semantic {
            if !routes.contains(&semantic.embedding_route.as_str()) {
                return Err(format!(
                    "cache.semantic.embedding_route `{}` is not a route (routes: {})",
                    semantic.embedding_route,
                    routes.join(", ")
                ));
            }
            if semantic.threshold.is_some_and(|threshold| !(threshold > 0.0 && threshold <= 1.0)) {
                return Err("cache.semantic.threshold must be above 0 and at most 1 (0.95 is a good start)".into());
            }
        }
        Ok(())
    }
}

/// How a request was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HitKind {
    /// The same request.
    Exact,
    /// A request that means nearly the same.
    Semantic,
}

impl HitKind {
    /// Its name in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exact => "exact",
            Self::Semantic => "semantic",
        }
    }
}

/// A stored answer.
#[derive(Debug, Clone)]
pub struct CachedAnswer {
    /// The whole chat completion (or embeddings answer) as the provider gave it.
    pub body: Bytes,
    /// The model that answered.
    pub model: String,
    /// What it used.
    pub usage: Option<Usage>,
}

struct Entry {
    answer: CachedAnswer,
    stored_ms: i64,
    used: u64,
    /// The tenant and route, and the request's embedding, for semantic lookups.
    scope: String,
    embedding: Option<Vec<f32>>,
}

/// The cache.
pub struct Cache {
    exact: bool,
    ttl_ms: i64,
    max_entries: usize,
    routes: Option<Vec<String>>,
    semantic: Option<(String, f32)>,
    entries: Mutex<(HashMap<[u8; 32], Entry>, u64)>,
}

/// What identifies a cacheable request: its key, its scope, and the text a semantic lookup embeds.
#[derive(Debug, Clone)]
pub struct CacheKey {
    /// A hash of the tenant, the route and the request (without how it is delivered).
    pub key: [u8; 32],
    /// The tenant and route.
    pub scope: String,
    /// The request's messages as text (for the semantic cache).
    pub text: String,
}

impl Cache {
    /// The cache `config` describes.
    pub fn new(config: &CacheConfig) -> Self {
        Self {
            exact: config.exact.unwrap_or(true),
            ttl_ms: config.ttl.map_or(3_600_000, |ttl| ttl.millis()),
            max_entries: config.max_entries.unwrap_or(10_000),
            routes: config.routes.clone(),
            semantic: config
                .semantic
                .as_ref()
                .map(|semantic| (semantic.embedding_route.clone(), semantic.threshold.unwrap_or(0.95) as f32)),
            entries: Mutex::new((HashMap::new(), 0)),
        }
    }

    /// The route that embeds requests for the semantic cache, if there is one.
    pub fn embedding_route(&self) -> Option<&str> {
        self.semantic.as_ref().map(|(route, _)| route.as_str())
    }

    /// The key of `request` to `route` by `tenant`, when it may be cached: deterministic (a chat
    /// request at `temperature` 0 with one choice; any embeddings request) on a cached route.
    pub fn key(&self, tenant: &str, route: &str, operation: &str, request: &Value) -> Option<CacheKey> {
        if self.routes.as_ref().is_some_and(|routes| !routes.iter().any(|cached| cached == route)) {
            return None;
        }
        if operation == "chat" {
            let deterministic = request.get("temperature").and_then(Value::as_f64) == Some(0.0)
                && request.get("n").and_then(Value::as_u64).unwrap_or(1) == 1;
            if !deterministic {
                return None;
            }
        }
        // How the answer is delivered is not part of what is asked.
        let mut asked = request.clone();
        if let Some(object) = asked.as_object_mut() {
            for delivery in ["stream", "stream_options", "user", "model"] {
                object.remove(delivery);
            }
        }
        let scope = format!("{tenant}\u{0}{route}\u{0}{operation}");
        let mut hasher = blake3::Hasher::new();
        hasher.update(scope.as_bytes());
        hasher.update(&[0]);
        hasher.update(asked.to_string().as_bytes());
        let text = request_text(request);
        Some(CacheKey { key: *hasher.finalize().as_bytes(), scope, text })
    }

    /// The stored answer for `key`, exactly.
    pub fn exact(&self, key: &CacheKey, now_ms: i64) -> Option<CachedAnswer> {
        if !self.exact {
            return None;
        }
        let mut guard = self.entries.lock().ok()?;
        let (entries, clock) = &mut *guard;
        *clock += 1;
        let entry = entries.get_mut(&key.key)?;
        if now_ms - entry.stored_ms >= self.ttl_ms {
            entries.remove(&key.key);
            return None;
        }
        entry.used = *clock;
        Some(entry.answer.clone())
    }

    /// The stored answer in `key`'s scope whose request's embedding is the most similar to
    /// `embedding`, if it is similar enough.
    pub fn similar(&self, key: &CacheKey, embedding: &[f32], now_ms: i64) -> Option<CachedAnswer> {
        let (_, threshold) = self.semantic.as_ref()?;
        let mut guard = self.entries.lock().ok()?;
        let (entries, clock) = &mut *guard;
        *clock += 1;
        let mut best: Option<(f32, [u8; 32])> = None;
        for (hash, entry) in entries.iter() {
            if entry.scope != key.scope || now_ms - entry.stored_ms >= self.ttl_ms {
                continue;
            }
            let Some(stored) = &entry.embedding else { continue };
            if stored.len() != embedding.len() {
                continue;
            }
            let similarity = cosine(stored, embedding);
            if similarity >= *threshold && best.is_none_or(|(found, _)| similarity > found) {
                best = Some((similarity, *hash));
            }
        }
        let (_, hash) = best?;
        let entry = entries.get_mut(&hash)?;
        entry.used = *clock;
        Some(entry.answer.clone())
    }

    /// Stores `answer` under `key` (and its embedding), dropping the least recently used answer
    /// when full.
    pub fn store(&self, key: &CacheKey, answer: CachedAnswer, embedding: Option<Vec<f32>>, now_ms: i64) {
        let Ok(mut guard) = self.entries.lock() else { return };
        let (entries, clock) = &mut *guard;
        *clock += 1;
        if entries.len() >= self.max_entries && !entries.contains_key(&key.key) {
            let oldest = entries.iter().min_by_key(|(_, entry)| entry.used).map(|(hash, _)| *hash);
            if let Some(oldest) = oldest {
                entries.remove(&oldest);
            }
        }
        entries.insert(key.key, Entry { answer, stored_ms: now_ms, used: *clock, scope: key.scope.clone(), embedding });
    }

    /// How many answers are stored.
    pub fn len(&self) -> usize {
        self.entries.lock().map(|guard| guard.0.len()).unwrap_or(0)
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn cosine(left: &[f32], right: &[f32]) -> f32 {
    let (mut dot, mut left_norm, mut right_norm) = (0.0f32, 0.0f32, 0.0f32);
    for (a, b) in left.iter().zip(right) {
        dot += a * b;
        left_norm += a * a;
        right_norm += b * b;
    }
    if left_norm == 0.0 || right_norm == 0.0 { 0.0 } else { dot / (left_norm.sqrt() * right_norm.sqrt()) }
}

/// A chat request's messages as `role: text` lines, or an embeddings request's input.
fn request_text(request: &Value) -> String {
    let mut text = String::new();
    for message in request.get("messages").and_then(Value::as_array).into_iter().flatten() {
        let role = message.get("role").and_then(Value::as_str).unwrap_or_default();
        let content = match message.get("content") {
            Some(Value::String(content)) => content.clone(),
            Some(Value::Array(parts)) => {
                parts.iter().filter_map(|part| part.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join(" ")
            }
            _ => String::new(),
        };
        text.push_str(role);
        text.push_str(": ");
        text.push_str(&content);
        text.push('\n');
    }
    if let Some(input) = request.get("input") {
        text.push_str(&input.to_string());
    }
    text
}

/// Whether a whole chat answer may be stored: one choice with text, no tool calls.
pub fn storable(answer: &Value) -> bool {
    let Some(choices) = answer.get("choices").and_then(Value::as_array) else { return false };
    let [choice] = choices.as_slice() else { return false };
    let message = &choice["message"];
    message["content"].is_string() && message.get("tool_calls").is_none_or(Value::is_null)
}

/// A stored whole chat completion replayed as server-sent events: the role, the text, the
/// finish reason, the usage (a caller who did not ask for it does not see it) and `[DONE]`.
pub fn replay_as_stream(answer: &Value) -> Bytes {
    let head = |choices: Value| {
        json!({"id": answer["id"], "object": "chat.completion.chunk", "created": answer["created"],
            "model": answer["model"], "choices": choices})
    };
    let choice = &answer["choices"][0];
    let mut events = Vec::new();
    events.push(head(json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}])));
    events.push(head(json!([{"index": 0, "delta": {"content": choice["message"]["content"]}, "finish_reason": null}])));
    events.push(head(json!([{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}])));
    if answer.get("usage").is_some_and(Value::is_object) {
        let mut usage = head(json!([]));
        usage["usage"] = answer["usage"].clone();
        events.push(usage);
    }
    let mut text = String::new();
    for event in events {
        text.push_str("data: ");
        text.push_str(&event.to_string());
        text.push_str("\n\n");
    }
    text.push_str("data: [DONE]\n\n");
    Bytes::from(text)
}

/// A stream's pieces assembled into the whole chat completion it stands for.
#[derive(Debug, Default)]
pub struct Assembler {
    text: String,
    finish_reason: Option<String>,
    skeleton: Option<Value>,
    usage: Option<Value>,
    storable: bool,
}

impl Assembler {
    /// An assembler for a stream that may be stored.
    pub fn new() -> Self {
        Self { storable: true, ..Self::default() }
    }

    /// Takes one chunk as the provider sent it.
    pub fn take(&mut self, chunk: &Value) {
        if self.skeleton.is_none() {
            self.skeleton = Some(
                json!({"id": chunk["id"], "object": "chat.completion", "created": chunk["created"], "model": chunk["model"]}),
            );
        }
        if chunk.get("usage").is_some_and(Value::is_object) {
            self.usage = Some(chunk["usage"].clone());
        }
        for choice in chunk.get("choices").and_then(Value::as_array).into_iter().flatten() {
            if choice.get("index").and_then(Value::as_u64).unwrap_or(0) != 0 || !choice["delta"]["tool_calls"].is_null()
            {
                self.storable = false;
            }
            if let Some(text) = choice["delta"]["content"].as_str() {
                self.text.push_str(text);
            }
            if let Some(reason) = choice["finish_reason"].as_str() {
                self.finish_reason = Some(reason.to_string());
            }
        }
    }

    /// The whole answer, if the stream ended properly and may be stored.
    pub fn finish(self) -> Option<Value> {
        let (true, Some(reason), Some(mut answer)) = (self.storable, self.finish_reason, self.skeleton) else {
            return None;
        };
        answer["choices"] =
            json!([{"index": 0, "message": {"role": "assistant", "content": self.text}, "finish_reason": reason}]);
        if let Some(usage) = self.usage {
            answer["usage"] = usage;
        }
        Some(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(semantic: bool) -> Cache {
        Cache::new(&CacheConfig {
            exact: None,
            ttl: Some(Span::from_millis(1_000)),
            max_entries: Some(2),
            routes: None,
            semantic: semantic.then(|| SemanticConfig { embedding_route: "embed".into(), threshold: Some(0.9) }),
        })
    }

    fn answer(text: &str) -> CachedAnswer {
        CachedAnswer { body: Bytes::from(text.to_string()), model: "m".into(), usage: None }
    }

    #[test]
    fn only_deterministic_requests_have_keys_and_delivery_is_not_part_of_them() {
        let cache = cache(false);
        let asked = json!({"model": "chat", "temperature": 0, "messages": [{"role": "user", "content": "hi"}]});
        let streamed = json!({"model": "other", "temperature": 0, "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "hi"}]});
        let key = cache.key("t", "chat", "chat", &asked).expect("temperature 0");
        assert_eq!(cache.key("t", "chat", "chat", &streamed).map(|other| other.key), Some(key.key));
        assert_ne!(cache.key("u", "chat", "chat", &asked).map(|other| other.key), Some(key.key), "per tenant");
        assert!(cache.key("t", "chat", "chat", &json!({"messages": []})).is_none(), "the default temperature is 1");
        assert!(cache.key("t", "chat", "chat", &json!({"temperature": 0.7, "messages": []})).is_none());
        assert!(cache.key("t", "chat", "chat", &json!({"temperature": 0, "n": 2, "messages": []})).is_none());
        assert!(cache.key("t", "embed", "embeddings", &json!({"input": "x"})).is_some(), "embeddings always");
    }

    #[test]
    fn entries_expire_and_the_least_recently_used_goes_first() {
        let cache = cache(false);
        let key = |text: &str| cache.key("t", "r", "embeddings", &json!({"input": text})).expect("key");
        cache.store(&key("a"), answer("A"), None, 0);
        cache.store(&key("b"), answer("B"), None, 0);
        assert!(cache.exact(&key("a"), 10).is_some(), "a used last");
        cache.store(&key("c"), answer("C"), None, 10);
        assert!(cache.exact(&key("b"), 10).is_none(), "b was the least recently used");
        assert_eq!(cache.exact(&key("a"), 999).map(|found| found.body), Some(Bytes::from("A")));
        assert!(cache.exact(&key("a"), 1_000).is_none(), "expired after the ttl");
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn similar_requests_hit_above_the_threshold_in_their_scope_only() {
        let cache = cache(true);
        let key =
            |tenant: &str, text: &str| cache.key(tenant, "r", "embeddings", &json!({"input": text})).expect("key");
        cache.store(&key("t", "a"), answer("A"), Some(vec![1.0, 0.0]), 0);
        assert!(cache.similar(&key("t", "b"), &[0.95, 0.1], 1).is_some(), "cos 0.994");
        assert!(cache.similar(&key("t", "b"), &[0.6, 0.8], 1).is_none(), "cos 0.6");
        assert!(cache.similar(&key("other", "b"), &[1.0, 0.0], 1).is_none(), "another tenant's");
    }

    #[test]
    fn a_stream_assembles_into_the_answer_it_replays_as() {
        let chunks = [
            json!({"id": "c", "created": 1, "model": "m", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]}),
            json!({"id": "c", "created": 1, "model": "m", "choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": null}]}),
            json!({"id": "c", "created": 1, "model": "m", "choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]}),
            json!({"id": "c", "created": 1, "model": "m", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}),
        ];
        let mut assembler = Assembler::new();
        chunks.iter().for_each(|chunk| assembler.take(chunk));
        let whole = assembler.finish().expect("storable");
        assert_eq!(whole["choices"][0]["message"]["content"], "Hello");
        assert!(storable(&whole));
        let replayed = String::from_utf8(replay_as_stream(&whole).to_vec()).expect("utf-8");
        let mut again = Assembler::new();
        for data in replayed.lines().filter_map(|line| line.strip_prefix("data: ")).filter(|data| *data != "[DONE]") {
            again.take(&serde_json::from_str(data).expect("json"));
        }
        assert_eq!(again.finish(), Some(whole));
        let mut tools = Assembler::new();
        tools.take(&json!({"choices": [{"index": 0, "delta": {"tool_calls": [{}]}, "finish_reason": "tool_calls"}]}));
        assert_eq!(tools.finish(), None, "tool calls are not stored");
    }
}
