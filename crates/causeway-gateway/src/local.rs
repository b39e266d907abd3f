//! The embedded provider (`kind = "local"`): a GGUF chat model and a sentence-embedding model run
//! in this process by `causeway-llm`, answering OpenAI's chat completions — whole or streamed as
//! server-sent events in OpenAI's own chunk shape — and embeddings (floats or base64), so the
//! rest of the gateway treats it as any upstream.
//!
//! Generation is blocking CPU work, so it never runs on the async runtime: each of the provider's
//! `threads` is a worker that runs one generation at a time on that one thread (on a busy machine
//! more threads per generation are slower, llmops.md §3). A request is checked and its prompt
//! rendered before it waits for a worker, so a bad request is answered at once; a caller who goes
//! away stops its generation at the next token.

use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use causeway_llm::{ChatModel, Embedder, Generation, Message};
use hyper::body::{Body, Frame};
use serde_json::{Value, json};

use crate::config::ProviderConfig;
use crate::error::{Error, Result};
use crate::upstream::{AnswerBody, BodyError, UpstreamAnswer};

/// Requests that may wait for a worker before the provider answers "busy".
const QUEUE_LENGTH: usize = 256;

/// The tokens an answer may have when the request sets no `max_tokens`.
pub const DEFAULT_MAX_TOKENS: usize = 512;

/// The most texts one embeddings request may carry (OpenAI's limit).
const MAX_INPUTS: usize = 2048;

/// Work waiting for a worker.
enum Job {
    Chat { prompt: Vec<u32>, generation: Generation, output: Output },
    Embed { texts: Vec<String>, model: String, base64: bool, reply: tokio::sync::oneshot::Sender<Bytes> },
}

/// The models a worker runs.
struct Models {
    chat: Option<ChatModel>,
    embedder: Option<Embedder>,
}

/// Where a job's answer goes.
enum Output {
    Whole { model: String, id: String, logprobs: bool, reply: tokio::sync::oneshot::Sender<Bytes> },
    Stream { model: String, id: String, include_usage: bool, chunks: tokio::sync::mpsc::Sender<Bytes> },
}

/// The embedded models and their workers.
pub struct LocalModels {
    name: String,
    models: Arc<Models>,
    jobs: mpsc::SyncSender<Job>,
    calls: AtomicU64,
}

impl std::fmt::Debug for LocalModels {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("LocalModels").field("name", &self.name).finish_non_exhaustive()
    }
}

impl LocalModels {
    /// Loads the provider's `model_file` (chat) and `embedding_dir` (embeddings) and starts its
    /// `threads` workers (default 1).
    pub fn new(provider: &ProviderConfig) -> Result<Self> {
        let cannot_load = |path: &Path, error: causeway_llm::Error, what: &str| {
            Error::Config(format!(
                "provider `{}`: cannot load {}: {error} (scripts/llm-models.sh {what})",
                provider.name,
                path.display()
            ))
        };
        let chat = match provider.model_file.as_deref().map(expand_home) {
            Some(path) => Some(
                ChatModel::open(&path).map_err(|error| cannot_load(&path, error, "installs SmolLM2-135M-Instruct"))?,
            ),
            None => None,
        };
        let embedder = match provider.embedding_dir.as_deref().map(expand_home) {
            Some(path) => Some(
                Embedder::open(&path)
                    .map_err(|error| cannot_load(&path, error, "embedding installs all-MiniLM-L6-v2"))?,
            ),
            None => None,
        };
        if chat.is_none() && embedder.is_none() {
            return Err(Error::Config(format!(
                "provider `{}` (kind = \"local\") needs `model_file` or `embedding_dir`",
                provider.name
            )));
        }
        let models = Arc::new(Models { chat, embedder });
        let (jobs, queue) = mpsc::sync_channel::<Job>(QUEUE_LENGTH);
        let queue = Arc::new(Mutex::new(queue));
        for index in 0..provider.threads.unwrap_or(1).max(1) {
            let (models, queue) = (models.clone(), queue.clone());
            std::thread::Builder::new()
                .name(format!("{}-{index}", provider.name))
                .spawn(move || work(&models, &queue))
                .map_err(|error| {
                    Error::Config(format!("provider `{}`: cannot start a worker: {error}", provider.name))
                })?;
        }
        Ok(Self { name: provider.name.clone(), models, jobs, calls: AtomicU64::new(0) })
    }

    /// The provider's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Answers `POST {path}` with `request` (already rewritten for this provider) as an
    /// OpenAI-compatible server would: 400 with OpenAI's error shape for what the model cannot do.
    pub async fn post_json(&self, path: &str, request: &Value) -> Result<UpstreamAnswer> {
        match path {
            "/chat/completions" => match &self.models.chat {
                Some(model) => self.chat(model, request).await,
                None => Ok(refusal(404, &format!("provider `{}` has no chat model: give it `model_file`", self.name))),
            },
            "/embeddings" => match &self.models.embedder {
                Some(embedder) => self.embeddings(embedder, request).await,
                None => Ok(refusal(
                    404,
                    &format!("provider `{}` has no embedding model: give it `embedding_dir`", self.name),
                )),
            },
            other => Ok(refusal(
                404,
                &format!("provider `{}` serves /chat/completions and /embeddings, not {other}", self.name),
            )),
        }
    }

    async fn chat(&self, model: &ChatModel, request: &Value) -> Result<UpstreamAnswer> {
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        let parsed = match parse(request, call) {
            Ok(parsed) => parsed,
            Err(message) => return Ok(refusal(400, &message)),
        };
        let prompt = model.render(&parsed.messages);
        if prompt.len() >= model.context() {
            return Ok(refusal(
                400,
                &format!("the conversation is {} tokens; the model's context holds {}", prompt.len(), model.context()),
            ));
        }
        let id = format!("chatcmpl-local-{call:x}");
        let name = parsed.model;
        if parsed.stream {
            let (chunks, receiver) = tokio::sync::mpsc::channel(64);
            let output = Output::Stream { model: name, id, include_usage: parsed.include_usage, chunks };
            self.submit(Job::Chat { prompt, generation: parsed.generation, output })?;
            return Ok(UpstreamAnswer {
                status: 200,
                content_type: Some("text/event-stream".into()),
                body: AnswerBody::new(Chunks { receiver }),
            });
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.submit(Job::Chat {
            prompt,
            generation: parsed.generation,
            output: Output::Whole { model: name, id, logprobs: parsed.logprobs, reply },
        })?;
        let body = answer.await.map_err(|_| self.failed("the generation stopped without an answer"))?;
        Ok(UpstreamAnswer { status: 200, content_type: Some("application/json".into()), body: AnswerBody::whole(body) })
    }

    async fn embeddings(&self, embedder: &Embedder, request: &Value) -> Result<UpstreamAnswer> {
        let (texts, base64) = match parse_embeddings(request, embedder.dimensions()) {
            Ok(parsed) => parsed,
            Err(message) => return Ok(refusal(400, &message)),
        };
        let model = request.get("model").and_then(Value::as_str).unwrap_or("local").to_string();
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.submit(Job::Embed { texts, model, base64, reply })?;
        let body = answer.await.map_err(|_| self.failed("the embedding stopped without an answer"))?;
        Ok(UpstreamAnswer { status: 200, content_type: Some("application/json".into()), body: AnswerBody::whole(body) })
    }

    fn submit(&self, job: Job) -> Result<()> {
        self.jobs.try_send(job).map_err(|error| match error {
            mpsc::TrySendError::Full(_) => self.failed(&format!(
                "{QUEUE_LENGTH} requests are waiting for the model already; try again shortly, or give it more `threads`"
            )),
            mpsc::TrySendError::Disconnected(_) => self.failed("its workers have stopped"),
        })
    }

    fn failed(&self, message: &str) -> Error {
        Error::Upstream { provider: self.name.clone(), message: message.to_string() }
    }
}

/// `~/x` under `$HOME`.
fn expand_home(file: &str) -> std::path::PathBuf {
    match (file.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => Path::new(file).to_path_buf(),
    }
}

/// A worker: one job at a time, on this thread.
fn work(models: &Models, queue: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        match job {
            Ok(Job::Chat { prompt, generation, output }) => {
                if let Some(model) = &models.chat {
                    run(model, &prompt, &generation, output);
                }
            }
            Ok(Job::Embed { texts, model, base64, reply }) => {
                if let Some(embedder) = &models.embedder {
                    let _ = reply.send(embed(embedder, &texts, &model, base64));
                }
            }
            Err(_) => return,
        }
    }
}

/// OpenAI's embeddings answer for `texts`.
fn embed(embedder: &Embedder, texts: &[String], model: &str, base64: bool) -> Bytes {
    let mut tokens = 0;
    let data: Vec<Value> = texts
        .iter()
        .enumerate()
        .map(|(index, text)| {
            let (vector, used) = embedder.embed(text);
            tokens += used;
            let embedding = if base64 {
                let bytes: Vec<u8> = vector.iter().flat_map(|value| value.to_le_bytes()).collect();
                Value::String(causeway_types::base64::encode(&bytes))
            } else {
                Value::from(vector)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    let answer = json!({"object": "list", "data": data, "model": model,
                        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}});
    Bytes::from(answer.to_string())
}

/// Reads OpenAI's embeddings request: the texts and whether vectors go out as base64.
fn parse_embeddings(request: &Value, dimensions: usize) -> std::result::Result<(Vec<String>, bool), String> {
    let texts = match request.get("input") {
        Some(Value::String(text)) => vec![text.clone()],
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
            items.iter().filter_map(Value::as_str).map(str::to_string).collect()
        }
        Some(Value::Array(_)) => {
            return Err("`input` must be text: the local embedding model reads strings, not token ids".into());
        }
        _ => return Err("`input` must be a string or an array of strings".into()),
    };
    if texts.is_empty() {
        return Err("`input` is empty: send at least one text".into());
    }
    if texts.len() > MAX_INPUTS {
        return Err(format!("`input` holds {} texts; at most {MAX_INPUTS} per request", texts.len()));
    }
    let base64 = match request.get("encoding_format").and_then(Value::as_str) {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => return Err(format!("`encoding_format` is `{other}`; it must be `float` or `base64`")),
    };
    if let Some(asked) = request.get("dimensions").and_then(Value::as_u64)
        && asked as usize != dimensions
    {
        return Err(format!("the local embedding model gives {dimensions} dimensions, not {asked}"));
    }
    Ok((texts, base64))
}

fn run(model: &ChatModel, prompt: &[u32], generation: &Generation, output: Output) {
    let created = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs());
    match output {
        Output::Whole { model: name, id, logprobs, reply } => {
            let mut text = String::new();
            let outcome = model.generate_from(prompt, generation, |piece| {
                text.push_str(piece);
                !reply.is_closed()
            });
            let body = match outcome {
                Ok(outcome) => {
                    // OpenAI's shape, without alternatives (`top_logprobs` is not offered).
                    let logprobs = logprobs.then(|| {
                        let content: Vec<Value> = outcome
                            .tokens
                            .iter()
                            .map(|(token, logprob)| {
                                json!({"token": model.token_text(*token), "logprob": logprob, "bytes": null, "top_logprobs": []})
                            })
                            .collect();
                        json!({"content": content})
                    });
                    json!({
                        "id": id, "object": "chat.completion", "created": created, "model": name,
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": null},
                                     "logprobs": logprobs, "finish_reason": outcome.finish.as_openai()}],
                        "usage": usage(outcome.prompt_tokens, outcome.completion_tokens),
                    })
                }
                Err(error) => openai_error(&error.to_string()),
            };
            let _ = reply.send(Bytes::from(body.to_string()));
        }
        Output::Stream { model: name, id, include_usage, chunks } => {
            let null_usage = include_usage.then_some(Value::Null);
            let chunk = |delta: Value, finish: Value| {
                let mut chunk = json!({
                    "id": id, "object": "chat.completion.chunk", "created": created, "model": name,
                    "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
                });
                if let (Some(object), Some(usage)) = (chunk.as_object_mut(), &null_usage) {
                    object.insert("usage".into(), usage.clone());
                }
                event(&chunk)
            };
            let send = |bytes: Bytes| chunks.blocking_send(bytes).is_ok();
            if !send(chunk(json!({"role": "assistant", "content": ""}), Value::Null)) {
                return;
            }
            let outcome =
                model.generate_from(prompt, generation, |piece| send(chunk(json!({"content": piece}), Value::Null)));
            match outcome {
                Ok(outcome) => {
                    if !send(chunk(json!({}), json!(outcome.finish.as_openai()))) {
                        return;
                    }
                    if include_usage {
                        let last = json!({
                            "id": id, "object": "chat.completion.chunk", "created": created, "model": name,
                            "choices": [], "usage": usage(outcome.prompt_tokens, outcome.completion_tokens),
                        });
                        if !send(event(&last)) {
                            return;
                        }
                    }
                }
                Err(error) => {
                    if !send(event(&openai_error(&error.to_string()))) {
                        return;
                    }
                }
            }
            send(Bytes::from_static(b"data: [DONE]\n\n"));
        }
    }
}

fn usage(prompt: usize, completion: usize) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}

fn event(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

fn openai_error(message: &str) -> Value {
    json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}})
}

/// An answer refusing the request, as an OpenAI-compatible server words it.
fn refusal(status: u16, message: &str) -> UpstreamAnswer {
    let body = Bytes::from(openai_error(message).to_string());
    UpstreamAnswer { status, content_type: Some("application/json".into()), body: AnswerBody::whole(body) }
}

/// What a chat request asks of the model.
#[derive(Debug, PartialEq)]
struct Parsed {
    model: String,
    messages: Vec<Message>,
    generation: Generation,
    stream: bool,
    include_usage: bool,
    /// Whether the answer carries each token's log-probability (`logprobs: true`).
    logprobs: bool,
}

/// Reads OpenAI's chat request; the error is the message a 400 carries. `call` seeds the
/// sampler of a request that names no `seed`.
fn parse(request: &Value, call: u64) -> std::result::Result<Parsed, String> {
    let model = request.get("model").and_then(Value::as_str).unwrap_or("local").to_string();
    let Some(items) = request.get("messages").and_then(Value::as_array) else {
        return Err("`messages` must be an array of {role, content}".into());
    };
    if items.is_empty() {
        return Err("`messages` is empty: send at least one message".into());
    }
    if request.get("tools").and_then(Value::as_array).is_some_and(|tools| !tools.is_empty()) {
        return Err(format!(
            "the local model `{model}` cannot call tools: route requests with `tools` to a provider whose model can"
        ));
    }
    if request.get("n").and_then(Value::as_u64).is_some_and(|n| n != 1) {
        return Err("the local model answers one choice per request (`n` = 1)".into());
    }
    let mut messages = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let role =
            item.get("role").and_then(Value::as_str).ok_or_else(|| format!("messages[{index}] has no `role`"))?;
        let role = if role == "developer" { "system" } else { role };
        let content = match item.get("content") {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Array(parts)) => {
                let mut text = String::new();
                for part in parts {
                    match (part.get("type").and_then(Value::as_str), part.get("text").and_then(Value::as_str)) {
                        (Some("text"), Some(part)) => text.push_str(part),
                        (kind, _) => {
                            return Err(format!(
                                "messages[{index}] has a `{}` part: the local model reads text only",
                                kind.unwrap_or("untyped")
                            ));
                        }
                    }
                }
                text
            }
            None | Some(Value::Null) => String::new(),
            Some(_) => return Err(format!("messages[{index}].content must be a string or an array of text parts")),
        };
        messages.push(Message { role: role.to_string(), content });
    }
    let number = |key: &str| request.get(key).and_then(Value::as_f64);
    let temperature = number("temperature").unwrap_or(1.0);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(format!("`temperature` is {temperature}; it must be between 0 and 2"));
    }
    let top_p = number("top_p").unwrap_or(1.0);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(format!("`top_p` is {top_p}; it must be above 0 and at most 1"));
    }
    let max_tokens = match request.get("max_completion_tokens").or_else(|| request.get("max_tokens")) {
        None | Some(Value::Null) => DEFAULT_MAX_TOKENS,
        Some(value) => match value.as_u64() {
            Some(tokens) if tokens > 0 => usize::try_from(tokens).unwrap_or(usize::MAX),
            _ => return Err("`max_tokens` must be a positive integer".into()),
        },
    };
    let stop = match request.get("stop") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(stop)) => vec![stop.clone()],
        Some(Value::Array(stops)) if stops.len() <= 4 && stops.iter().all(Value::is_string) => {
            stops.iter().filter_map(Value::as_str).map(str::to_string).collect()
        }
        Some(_) => return Err("`stop` must be a string or an array of up to 4 strings".into()),
    };
    let seed = match request.get("seed") {
        None | Some(Value::Null) => call.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5eed,
        Some(value) => value
            .as_u64()
            .or_else(|| value.as_i64().map(|seed| seed as u64))
            .ok_or_else(|| "`seed` must be an integer".to_string())?,
    };
    let stream = request.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let include_usage = request
        .get("stream_options")
        .and_then(|options| options.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if request.get("top_logprobs").and_then(Value::as_u64).is_some_and(|count| count > 0) {
        return Err(
            "the local model gives each token's log-probability (`logprobs`), not alternatives (`top_logprobs`)".into(),
        );
    }
    let logprobs = request.get("logprobs").and_then(Value::as_bool).unwrap_or(false);
    Ok(Parsed {
        model,
        messages,
        generation: Generation { max_tokens, temperature: temperature as f32, top_p: top_p as f32, seed, stop },
        stream,
        include_usage,
        logprobs,
    })
}

/// A stream's body: the chunks a worker sends, as they come.
struct Chunks {
    receiver: tokio::sync::mpsc::Receiver<Bytes>,
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, BodyError>>> {
        self.receiver.poll_recv(context).map(|chunk| chunk.map(|chunk| Ok(Frame::data(chunk))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_read_as_openai_defines_them() {
        let request = json!({
            "model": "local", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "developer", "content": "Be brief."},
                         {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]},
                         {"role": "assistant", "content": null}],
            "temperature": 0, "max_tokens": 7, "stop": "\n", "seed": 42,
        });
        let parsed = parse(&request, 0).unwrap();
        assert_eq!(parsed.messages[0], Message { role: "system".into(), content: "Be brief.".into() });
        assert_eq!(parsed.messages[1].content, "Hi there");
        assert_eq!(parsed.messages[2].content, "");
        assert_eq!(
            parsed.generation,
            Generation { max_tokens: 7, temperature: 0.0, top_p: 1.0, seed: 42, stop: vec!["\n".into()] }
        );
        assert!(parsed.stream && parsed.include_usage);
        let defaults = parse(&json!({"model": "local", "messages": [{"role": "user", "content": "x"}]}), 3).unwrap();
        assert_eq!((defaults.generation.max_tokens, defaults.generation.temperature), (DEFAULT_MAX_TOKENS, 1.0));
        assert_ne!(
            defaults.generation.seed,
            parse(&json!({"messages": [{"role": "user", "content": "x"}]}), 4).unwrap().generation.seed
        );
    }

    #[test]
    fn embedding_requests_are_read_and_refused_as_openai_defines_them() {
        assert_eq!(parse_embeddings(&json!({"input": "a"}), 384), Ok((vec!["a".to_string()], false)));
        assert_eq!(
            parse_embeddings(&json!({"input": ["a", "b"], "encoding_format": "base64", "dimensions": 384}), 384),
            Ok((vec!["a".to_string(), "b".to_string()], true))
        );
        let refused = |request: Value| parse_embeddings(&request, 384).unwrap_err();
        assert!(refused(json!({"input": [[1, 2]]})).contains("not token ids"));
        assert!(refused(json!({"input": []})).contains("empty"));
        assert!(refused(json!({"input": "a", "dimensions": 256})).contains("384 dimensions, not 256"));
        assert!(refused(json!({"input": "a", "encoding_format": "int8"})).contains("`float` or `base64`"));
        assert!(refused(json!({})).contains("string or an array"));
    }

    #[test]
    fn what_the_model_cannot_do_is_refused_with_the_reason() {
        let refused = |request: Value| parse(&request, 0).unwrap_err();
        let user = json!([{"role": "user", "content": "x"}]);
        assert!(refused(json!({"messages": []})).contains("empty"));
        assert!(
            refused(json!({"model": "local", "messages": user, "tools": [{"type": "function"}]}))
                .contains("cannot call tools")
        );
        assert!(refused(json!({"messages": user, "n": 2})).contains("one choice"));
        assert!(refused(json!({"messages": user, "temperature": 3})).contains("between 0 and 2"));
        assert!(refused(json!({"messages": user, "max_tokens": 0})).contains("positive integer"));
        assert!(
            refused(json!({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})).contains("text only")
        );
        assert!(refused(json!({"messages": user, "stop": ["a", "b", "c", "d", "e"]})).contains("up to 4"));
    }
}
