//! The gateway: resolves the route a request names, forwards it to a target (weighted, then the
//! fallbacks in order on failure), and records what each call used and cost.
//!
//! A request stays JSON and only `model` (to the target's name) and, for a stream,
//! `stream_options.include_usage` (always on upstream, so usage is always known) are rewritten;
//! everything else passes through. A streamed answer is re-framed event by event: the
//! usage-only chunk the gateway asked for on the caller's behalf is dropped before the caller
//! sees it.

use std::collections::{BTreeMap, VecDeque};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures_core::Stream;
use http_body_util::{BodyDataStream, BodyExt, Limited};
use serde_json::{Value, json};

use causeway_store::{LlmCall, MetaStore};
use causeway_types::{Clock, SystemClock};

use crate::cache::{Assembler, Cache, CacheKey, CachedAnswer, HitKind};
use crate::config::{GatewayConfig, ProviderConfig, ProviderKind, RouteConfig, RouteTarget};
use crate::error::{Error, Result};
use crate::guardrails::{Guardrails, StreamGuard, Verdict};
use crate::ledger::Ledger;
use crate::limits::{Caller, Limiter};
use crate::local::LocalModels;
use crate::metrics::{
    CacheLabels, CallLabels, GatewayMetrics, LimitLabels, ProviderLabels, RouteLabels, RouterLabels, TokenLabels,
    VerdictLabels,
};
use crate::price::{Cost, PriceTable};
use crate::prompts::{Prompt, PromptReference};
use crate::sse::{SseEvent, SseScanner};
use crate::traces::{Exporter, SpanFacts};
use crate::upstream::{AnswerBody, Upstream, UpstreamAnswer};
use crate::usage::Usage;

/// The route that answers any model no other route names (`name = "*"`), forwarding the model
/// name as the caller wrote it.
pub const ANY_MODEL: &str = "*";

/// The name of the embedded chat model's provider and route that `causeway gateway
/// --local-model FILE` serves.
pub const LOCAL: &str = "local";

/// The route of the embedded embedding model that `--local-embedding DIR` serves.
pub const LOCAL_EMBEDDING: &str = "local-embedding";

/// What `causeway gateway` serves without a project: with `upstreams`, one catch-all route to
/// `upstreams[0]`, the rest its fallbacks in order; with `local_model` (a GGUF file) the route
/// [`LOCAL`], with `local_embedding` (a sentence-transformers directory) the route
/// [`LOCAL_EMBEDDING`], each a provider of the same name answering in process on `threads` worker
/// threads of its own.
pub fn command_line(
    upstreams: &[String],
    local_model: Option<&str>,
    local_embedding: Option<&str>,
    threads: usize,
) -> GatewayConfig {
    let mut providers: Vec<ProviderConfig> = upstreams
        .iter()
        .enumerate()
        .map(|(index, url)| ProviderConfig {
            name: format!("upstream-{}", index + 1),
            kind: ProviderKind::Openai,
            base_url: Some(url.clone()),
            api_key_env: None,
            model_file: None,
            embedding_dir: None,
            threads: None,
            timeout_ms: None,
            retries: None,
        })
        .collect();
    let mut routes: Vec<RouteConfig> = providers
        .split_first()
        .map(|(first, rest)| RouteConfig {
            name: ANY_MODEL.to_string(),
            targets: vec![RouteTarget { provider: first.name.clone(), model: None, weight: None }],
            fallbacks: rest.iter().map(|provider| provider.name.clone()).collect(),
            escalation: None,
        })
        .into_iter()
        .collect();
    let mut local_routes = Vec::new();
    for (name, model_file, embedding_dir) in [(LOCAL, local_model, None), (LOCAL_EMBEDDING, None, local_embedding)] {
        if model_file.is_none() && embedding_dir.is_none() {
            continue;
        }
        providers.push(ProviderConfig {
            name: name.to_string(),
            kind: ProviderKind::Local,
            base_url: None,
            api_key_env: None,
            model_file: model_file.map(str::to_string),
            embedding_dir: embedding_dir.map(str::to_string),
            threads: Some(threads),
            timeout_ms: None,
            retries: None,
        });
        local_routes.push(RouteConfig {
            name: name.to_string(),
            targets: vec![RouteTarget { provider: name.to_string(), model: None, weight: None }],
            fallbacks: Vec::new(),
            escalation: None,
        });
    }
    routes.splice(0..0, local_routes);
    GatewayConfig { providers, routes, ..GatewayConfig::default() }
}

/// The largest whole (not streamed) answer read from an upstream.
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// What one call used, as the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRecord {
    /// When it ended (epoch ms).
    pub at_ms: i64,
    /// Who made it.
    pub caller: Caller,
    /// `chat` or `embeddings`.
    pub operation: &'static str,
    /// How long it took, in milliseconds.
    pub latency_ms: u64,
    /// The route the caller asked for.
    pub route: String,
    /// The provider that answered.
    pub provider: String,
    /// The model name sent to it.
    pub model: String,
    /// The tokens, when the upstream reported them.
    pub usage: Option<Usage>,
    /// What they cost.
    pub cost: Cost,
    /// The price table's version the cost comes from.
    pub prices: String,
    /// What the guardrails found, on the request and on the answer.
    pub verdicts: Vec<Verdict>,
    /// The prompt version a prompt-named request used (`name/version`).
    pub prompt: Option<String>,
    /// The span's trace id.
    pub trace_id: String,
    /// The span's id.
    pub span_id: String,
    /// What the span says beyond these fields.
    pub facts: SpanFacts,
}

impl UsageRecord {
    /// The record as the store keeps it.
    pub fn as_call(&self) -> LlmCall {
        let usage = self.usage.unwrap_or_default();
        LlmCall {
            at_ms: self.at_ms,
            tenant: self.caller.tenant.clone(),
            key: self.caller.key.clone(),
            route: self.route.clone(),
            provider: self.provider.clone(),
            model: self.model.clone(),
            operation: self.operation.to_string(),
            usage_known: self.usage.is_some(),
            prompt_tokens: usage.prompt_tokens,
            cached_tokens: usage.cached_tokens,
            completion_tokens: usage.completion_tokens,
            cost_picodollars: match self.cost {
                Cost::Priced(picodollars) => Some(u64::try_from(picodollars).unwrap_or(u64::MAX)),
                Cost::Unpriced => None,
            },
            prices: self.prices.clone(),
            latency_ms: self.latency_ms,
            prompt: self.prompt.clone().unwrap_or_default(),
            trace_id: self.trace_id.clone(),
            span_id: self.span_id.clone(),
            attributes_json: Value::Object(self.attributes()).to_string(),
        }
    }

    /// The span's attributes: OpenTelemetry's GenAI conventions, then Causeway's own.
    pub fn attributes(&self) -> serde_json::Map<String, Value> {
        let mut attributes = self.facts.request.clone();
        let mut set = |key: &str, value: Value| {
            attributes.insert(key.to_string(), value);
        };
        set("gen_ai.operation.name", json!(self.operation));
        set("gen_ai.provider.name", json!(self.provider));
        set("gen_ai.request.model", json!(self.route));
        set("gen_ai.response.model", json!(self.facts.response_model.clone().unwrap_or_else(|| self.model.clone())));
        if let Some(usage) = self.usage {
            set("gen_ai.usage.input_tokens", json!(usage.prompt_tokens));
            set("gen_ai.usage.output_tokens", json!(usage.completion_tokens));
            set("causeway.usage.cached_tokens", json!(usage.cached_tokens));
        }
        if !self.facts.finish_reasons.is_empty() {
            set("gen_ai.response.finish_reasons", json!(self.facts.finish_reasons));
        }
        set("causeway.tenant", json!(self.caller.tenant));
        set("causeway.key", json!(self.caller.key));
        set("causeway.model", json!(self.model));
        set("causeway.cost", json!(self.cost.to_string()));
        if let Some(prompt) = &self.prompt {
            set("causeway.prompt", json!(prompt));
        }
        if !self.verdicts.is_empty() {
            let verdicts: Vec<String> = self
                .verdicts
                .iter()
                .map(|verdict| {
                    format!(
                        "{}:{}:{}:{}",
                        verdict.rule,
                        verdict.stage.as_str(),
                        verdict.action.as_str(),
                        verdict.findings
                    )
                })
                .collect();
            set("causeway.guardrails", json!(verdicts));
        }
        attributes
    }
}

/// A chat answer: whole, or a stream of server-sent events.
pub enum ChatAnswer {
    /// The upstream's status and body.
    Whole {
        /// HTTP status.
        status: u16,
        /// JSON body.
        body: Bytes,
    },
    /// A stream (status 200), re-framed event by event.
    Stream(Box<EventStream>),
}

/// The gateway's state: its configuration, prices, upstreams, limits and ledger.
pub struct Gateway {
    routes: Vec<RouteConfig>,
    providers: BTreeMap<String, Provider>,
    prices: Arc<PriceTable>,
    limiter: Arc<Mutex<Limiter>>,
    guardrails: Arc<Guardrails>,
    cache: Option<Arc<Cache>>,
    /// Where spans are sent besides the store.
    exporter: Option<Exporter>,
    /// The metadata store (the ledger's, and the prompt registry's), once given.
    meta: Option<Arc<MetaStore>>,
    ledger: Arc<Ledger>,
    clock: Arc<dyn Clock>,
    metrics: GatewayMetrics,
    turn: AtomicU64,
}

/// The provider name the ledger shows for answers from the cache.
pub const CACHE_PROVIDER: &str = "cache";

/// Where a miss's answer is stored once it has arrived.
type StoreAs = (Arc<Cache>, CacheKey, Option<Vec<f32>>);

/// Who answers a target: a remote OpenAI-compatible server or the embedded model.
enum Provider {
    Remote(Upstream),
    Local(LocalModels),
}

impl Provider {
    fn name(&self) -> &str {
        match self {
            Self::Remote(upstream) => upstream.name(),
            Self::Local(local) => local.name(),
        }
    }

    /// Sends `request` to `path`: serialized for a remote server, read as it is by the embedded
    /// models.
    async fn post(&self, path: &str, request: &Value) -> Result<UpstreamAnswer> {
        match self {
            Self::Remote(upstream) => {
                let body = serde_json::to_vec(request).map_err(|error| Error::Invalid(error.to_string()))?;
                upstream.post_json(path, Bytes::from(body)).await
            }
            Self::Local(local) => local.post_json(path, request).await,
        }
    }
}

/// One attempt's destination.
struct Target<'a> {
    upstream: &'a Provider,
    model: String,
}

impl Gateway {
    /// A gateway for `config` (checked whole; API keys read from the environment now).
    pub fn new(config: &GatewayConfig) -> Result<Self> {
        let prices = config.validate()?;
        let mut providers = BTreeMap::new();
        for provider in &config.providers {
            let built = match provider.kind {
                ProviderKind::Openai => Provider::Remote(Upstream::new(provider)?),
                ProviderKind::Local => Provider::Local(LocalModels::new(provider)?),
            };
            providers.insert(provider.name.clone(), built);
        }
        let metrics = GatewayMetrics::default();
        let exporter =
            config.traces.as_ref().and_then(|traces| Exporter::new(traces, metrics.trace_export_failed.clone()));
        let ledger = match &exporter {
            Some(exporter) => Ledger::start(None, Some(exporter.clone()), metrics.ledger_dropped.clone())
                .map_err(|error| Error::Ledger(error.to_string()))?,
            None => Ledger::default(),
        };
        Ok(Self {
            exporter,
            routes: config.routes.clone(),
            providers,
            prices: Arc::new(prices),
            limiter: Arc::new(Mutex::new(Limiter::new(config))),
            guardrails: Arc::new(Guardrails::new(&config.guardrails).map_err(Error::Config)?),
            cache: config.cache.as_ref().map(|cache| Arc::new(Cache::new(cache))),
            meta: None,
            ledger: Arc::new(ledger),
            clock: Arc::new(SystemClock),
            metrics,
            turn: AtomicU64::new(0),
        })
    }

    /// The gateway reading time from `clock` (limits, the ledger's times).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Writes every call to `meta`'s ledger from now on, and starts today's spend limits from
    /// what it holds (so a restart forgets no spend). Blocking: call it before serving.
    pub fn keep_ledger_in(&mut self, meta: Arc<MetaStore>) -> Result<()> {
        let now_ms = self.clock.now_ms();
        let midnight = now_ms - now_ms.rem_euclid(86_400_000);
        let spent = meta.llm_spend_since(midnight).map_err(|error| Error::Ledger(error.to_string()))?;
        if let Ok(mut limiter) = self.limiter.lock() {
            for (_, key, picodollars) in spent {
                let caller = limiter.caller(&key);
                limiter.charge(&caller, 0, u128::from(picodollars), now_ms);
            }
        }
        self.meta = Some(meta.clone());
        self.ledger = Arc::new(
            Ledger::start(Some(meta), self.exporter.clone(), self.metrics.ledger_dropped.clone())
                .map_err(|error| Error::Ledger(error.to_string()))?,
        );
        Ok(())
    }

    /// Writes what the ledger still holds to the store and stops its writer (a graceful stop).
    pub fn close(&self) {
        self.ledger.close();
    }

    /// Who `key` (an API key's name, or `anonymous`) is: it and its tenant.
    pub fn caller(&self, key: &str) -> Caller {
        self.limiter
            .lock()
            .map(|limiter| limiter.caller(key))
            .unwrap_or_else(|_| Caller { tenant: crate::config::DEFAULT_TENANT.to_string(), key: key.to_string() })
    }

    /// Admits a call by `caller` or refuses it with what limit it is over.
    fn admit(&self, caller: &Caller) -> Result<()> {
        let now_ms = self.clock.now_ms();
        let verdict = match self.limiter.lock() {
            Ok(mut limiter) => limiter.admit(caller, now_ms),
            Err(_) => Ok(()),
        };
        verdict.map_err(|refusal| {
            let labels = LimitLabels { tenant: caller.tenant.clone(), limit: refusal.limit.to_string() };
            self.metrics.limited.get_or_create(&labels).inc();
            Error::Limited { message: refusal.message, retry_after_seconds: refusal.retry_after_seconds }
        })
    }

    /// `GET /v1/models`: the routes callers can name (not `*`).
    pub fn models(&self) -> Value {
        let data: Vec<Value> = self
            .routes
            .iter()
            .filter(|route| route.name != ANY_MODEL)
            .map(|route| json!({"id": route.name, "object": "model", "created": 0, "owned_by": "causeway"}))
            .collect();
        json!({"object": "list", "data": data})
    }

    /// The routes' names, as configured (`*` included).
    pub fn route_names(&self) -> Vec<String> {
        self.routes.iter().map(|route| route.name.clone()).collect()
    }

    /// The gateway's metrics (register them in a server's registry, or render them alone).
    pub fn metrics(&self) -> &GatewayMetrics {
        &self.metrics
    }

    /// What the most recent calls (up to [`crate::ledger::RECENT_CALLS`]) used and cost, oldest first.
    pub fn ledger(&self) -> Vec<UsageRecord> {
        self.ledger.recent()
    }

    /// `POST /v1/chat/completions` from the API key named `key`.
    pub async fn chat(&self, key: &str, body: &[u8]) -> Result<ChatAnswer> {
        let caller = self.caller(key);
        let (mut request, requested) = decode(body)?;
        self.admit(&caller)?;
        let prompt = self.render_prompt(&mut request).await?;
        let verdicts = self.check_request(&requested, &mut request)?;
        let Some(object) = request.as_object_mut() else {
            return Err(Error::Invalid("the request body must be a JSON object".into()));
        };
        let stream = object.get("stream").and_then(Value::as_bool).unwrap_or(false);
        let caller_wants_usage = object
            .get("stream_options")
            .and_then(|options| options.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if stream {
            let options = object.entry("stream_options").or_insert_with(|| json!({}));
            if let Some(options) = options.as_object_mut() {
                options.insert("include_usage".into(), Value::Bool(true));
            }
        }
        let (found, store_as) = self.look_up(&caller, &requested, "chat", &request).await;
        let (answer, mut record) = match found {
            Some(hit) => {
                // A stored body is JSON the provider gave (checked when it was stored).
                let body = if stream {
                    crate::cache::replay_as_stream(&serde_json::from_slice(&hit.body).unwrap_or_default())
                } else {
                    hit.body.clone()
                };
                let content_type = if stream { "text/event-stream" } else { "application/json" };
                let answer = UpstreamAnswer {
                    status: 200,
                    content_type: Some(content_type.into()),
                    body: AnswerBody::whole(body),
                };
                (answer, self.cache_recorder(&requested, &hit, caller, "chat"))
            }
            None => self.chat_upstream(&mut request, &requested, caller, stream).await?,
        };
        record.verdicts = verdicts;
        record.store_as = store_as;
        record.prompt = prompt;
        record.facts.request = SpanFacts::from_request(&request);
        let is_stream = answer.content_type.as_deref().is_some_and(|kind| kind.starts_with("text/event-stream"));
        if stream && is_stream && answer.status == 200 {
            let guard = Guardrails::stream(&self.guardrails, &requested);
            let storing = record.store_as.is_some();
            let mut events = EventStream::new(answer.body, !caller_wants_usage, record, guard);
            if storing {
                events.assembler = Some(Assembler::new());
            }
            return Ok(ChatAnswer::Stream(Box::new(events)));
        }
        if self.guardrails.checks_output(&requested) {
            record.output_rules = Some((self.guardrails.clone(), requested.clone()));
        }
        let (status, body) = record.whole(answer).await?;
        Ok(ChatAnswer::Whole { status, body })
    }

    /// `POST /v1/embeddings` from the API key named `key`: forwarded whole; usage recorded.
    pub async fn embeddings(&self, key: &str, body: &[u8]) -> Result<(u16, Bytes)> {
        let caller = self.caller(key);
        let (mut request, requested) = decode(body)?;
        self.admit(&caller)?;
        let verdicts = self.check_request(&requested, &mut request)?;
        let (found, store_as) = self.look_up(&caller, &requested, "embeddings", &request).await;
        let (answer, mut record) = match found {
            Some(hit) => {
                let body = AnswerBody::whole(hit.body.clone());
                let answer = UpstreamAnswer { status: 200, content_type: Some("application/json".into()), body };
                (answer, self.cache_recorder(&requested, &hit, caller, "embeddings"))
            }
            None => self.forward("/embeddings", &mut request, &requested, caller, "embeddings").await?,
        };
        record.verdicts = verdicts;
        record.store_as = store_as;
        record.whole(answer).await
    }

    /// A prompt-named request (`prompt`, `variables`) turned into messages from the prompt
    /// registry — the prompt's first, then any the request has; the version used, or `None`
    /// when the request names no prompt.
    async fn render_prompt(&self, request: &mut Value) -> Result<Option<String>> {
        let Some(object) = request.as_object_mut() else { return Ok(None) };
        let Some(named) = object.remove("prompt") else { return Ok(None) };
        let variables = match object.remove("variables") {
            None | Some(Value::Null) => serde_json::Map::new(),
            Some(Value::Object(variables)) => variables,
            Some(_) => return Err(Error::Invalid("`variables` must be an object of names and values".into())),
        };
        let Some(named) = named.as_str() else {
            return Err(Error::Invalid("`prompt` must be text such as \"summarize@production\"".into()));
        };
        let reference = PromptReference::parse(named).map_err(Error::Invalid)?;
        let Some(meta) = self.meta.clone() else {
            return Err(Error::Invalid(
                "this gateway has no prompt registry: prompt-named requests need a project's store \
                 (`causeway server`, or `causeway gateway --dir PROJECT`)"
                    .into(),
            ));
        };
        let prompt = tokio::task::spawn_blocking(move || Prompt::load(&meta, &reference))
            .await
            .map_err(|error| Error::Ledger(error.to_string()))?
            .map_err(Error::NotFound)?;
        let mut messages = prompt.render(&variables).map_err(Error::Invalid)?;
        if let Some(Value::Array(more)) = object.remove("messages") {
            messages.extend(more);
        }
        object.insert("messages".into(), Value::Array(messages));
        Ok(Some(prompt.label()))
    }

    /// Sends a chat request to its route: straight to its targets, or through the route's cost
    /// router — to the larger model when a rule says so before the small one is asked, or after
    /// it answered (its whole answer judged; the small call is recorded either way).
    async fn chat_upstream(
        &self,
        request: &mut Value,
        requested: &str,
        caller: Caller,
        stream: bool,
    ) -> Result<(UpstreamAnswer, Recorder)> {
        let route = self.route(requested)?;
        let Some(escalation) = &route.escalation else {
            return self.forward("/chat/completions", request, requested, caller, "chat").await;
        };
        let large_model = escalation.model.clone().unwrap_or_else(|| requested.to_string());
        let decided = |tier: &str, reason: &str| {
            let labels = RouterLabels { route: route.name.clone(), tier: tier.into(), reason: reason.into() };
            self.metrics.router_decisions.get_or_create(&labels).inc();
        };
        if let Some(reason) = escalation.before(request) {
            decided("large", reason.as_str());
            return self.forward_to_large(request, route, escalation, &large_model, caller).await;
        }
        if stream || !escalation.judges_answers() {
            let (answer, mut record) = self.forward("/chat/completions", request, requested, caller, "chat").await?;
            record.compare_with = Some(large_model);
            decided("small", "answered");
            return Ok((answer, record));
        }
        let caller_wants_logprobs = request.get("logprobs").and_then(Value::as_bool).unwrap_or(false);
        if escalation.confidence_below.is_some()
            && let Some(object) = request.as_object_mut()
        {
            object.insert("logprobs".into(), Value::Bool(true));
        }
        let (answer, mut record) =
            self.forward("/chat/completions", request, requested, caller.clone(), "chat").await?;
        let (status, content_type) = (answer.status, answer.content_type.clone());
        let body = read_whole(answer.body).await.map_err(|error| record.failed(error))?;
        let mut parsed = serde_json::from_slice::<Value>(&body).ok();
        if status == 200
            && let Some(reason) = parsed.as_ref().and_then(|answer| escalation.after(answer))
        {
            decided("large", reason.as_str());
            // The small model's answer is paid for and set aside.
            let usage = parsed.as_ref().and_then(Usage::from_answer);
            if let Some(Cost::Priced(picodollars)) = usage.map(|usage| self.prices.cost(&record.model, &usage)) {
                let labels = RouteLabels { route: route.name.clone() };
                self.metrics.router_overhead.get_or_create(&labels).inc_by(picodollars as f64 / 1e12);
            }
            record.record(usage);
            if !caller_wants_logprobs && let Some(object) = request.as_object_mut() {
                object.remove("logprobs");
            }
            return self.forward_to_large(request, route, escalation, &large_model, caller).await;
        }
        decided("small", "answered");
        record.compare_with = Some(large_model);
        // Log-probabilities the router asked for, not the caller, are taken out again.
        let body = match parsed.as_mut() {
            Some(answer) if !caller_wants_logprobs && escalation.confidence_below.is_some() => {
                for choice in answer.get_mut("choices").and_then(Value::as_array_mut).into_iter().flatten() {
                    choice["logprobs"] = Value::Null;
                }
                Bytes::from(answer.to_string())
            }
            _ => body,
        };
        Ok((UpstreamAnswer { status, content_type, body: AnswerBody::whole(body) }, record))
    }

    /// Sends a chat request to the route's larger model, then to its fallbacks.
    async fn forward_to_large(
        &self,
        request: &mut Value,
        route: &RouteConfig,
        escalation: &crate::router::EscalationConfig,
        model: &str,
        caller: Caller,
    ) -> Result<(UpstreamAnswer, Recorder)> {
        let mut targets: Vec<Target<'_>> = self
            .providers
            .get(&escalation.provider)
            .map(|upstream| Target { upstream, model: model.to_string() })
            .into_iter()
            .collect();
        targets.extend(self.fallback_targets(route, &route.name));
        self.forward_with("/chat/completions", request, route, targets, caller, "chat").await
    }

    /// The cache's answer to `request`, if it has one (exactly, or — for chat — by meaning), and
    /// otherwise where to store the answer that is about to be fetched.
    async fn look_up(
        &self,
        caller: &Caller,
        route: &str,
        operation: &str,
        request: &Value,
    ) -> (Option<CachedAnswer>, Option<StoreAs>) {
        let Some(cache) = &self.cache else { return (None, None) };
        let Some(key) = cache.key(&caller.tenant, route, operation, request) else { return (None, None) };
        let count = |kind: HitKind, outcome: &str| {
            let labels = CacheLabels { route: route.to_string(), kind: kind.as_str().into(), outcome: outcome.into() };
            self.metrics.cache_lookups.get_or_create(&labels).inc();
        };
        if let Some(answer) = cache.exact(&key, self.clock.now_ms()) {
            count(HitKind::Exact, "hit");
            return (Some(answer), None);
        }
        count(HitKind::Exact, "miss");
        let mut embedding = None;
        if let (Some(embedding_route), "chat") = (cache.embedding_route(), operation) {
            embedding = self.embed(caller, embedding_route, &key.text).await;
            if let Some(vector) = &embedding {
                if let Some(answer) = cache.similar(&key, vector, self.clock.now_ms()) {
                    count(HitKind::Semantic, "hit");
                    return (Some(answer), None);
                }
                count(HitKind::Semantic, "miss");
            }
        }
        (None, Some((cache.clone(), key, embedding)))
    }

    /// `text` embedded by the route `route` (recorded as the caller's call), or `None` when it
    /// cannot be (then only the exact cache is used).
    async fn embed(&self, caller: &Caller, route: &str, text: &str) -> Option<Vec<f32>> {
        let mut request = json!({"model": route, "input": text, "encoding_format": "float"});
        let (answer, record) =
            self.forward("/embeddings", &mut request, route, caller.clone(), "embeddings").await.ok()?;
        let (status, body) = record.whole(answer).await.ok()?;
        if status != 200 {
            return None;
        }
        let answer: Value = serde_json::from_slice(&body).ok()?;
        answer["data"][0]["embedding"]
            .as_array()?
            .iter()
            .map(|value| value.as_f64().map(|value| value as f32))
            .collect()
    }

    /// The recorder of an answer from the cache: the provider `cache`, nothing spent.
    fn cache_recorder(&self, route: &str, answer: &CachedAnswer, caller: Caller, operation: &'static str) -> Recorder {
        let mut recorder = self.recorder(route, CACHE_PROVIDER, &answer.model, Instant::now(), caller, operation);
        recorder.from_cache = true;
        recorder
    }

    /// The input guardrails on a request for `route`: redacted in place, or refused.
    fn check_request(&self, route: &str, request: &mut Value) -> Result<Vec<Verdict>> {
        match self.guardrails.check_request(route, request) {
            Ok(verdicts) => {
                count_verdicts(&self.metrics, &verdicts);
                Ok(verdicts)
            }
            Err(blocked) => {
                count_verdicts(&self.metrics, &blocked.verdicts);
                Err(Error::Blocked(blocked.message))
            }
        }
    }

    /// Sends `request` to the route `requested` names: to its target chosen by weight, then to
    /// its fallbacks while the attempt fails or answers 5xx. The first other answer, and who gave it.
    async fn forward(
        &self,
        path: &str,
        request: &mut Value,
        requested: &str,
        caller: Caller,
        operation: &'static str,
    ) -> Result<(UpstreamAnswer, Recorder)> {
        let route = self.route(requested)?;
        self.forward_with(path, request, route, self.targets(route, requested), caller, operation).await
    }

    /// Sends `request` to each of `targets` in turn until one answers below 500.
    async fn forward_with(
        &self,
        path: &str,
        request: &mut Value,
        route: &RouteConfig,
        targets: Vec<Target<'_>>,
        caller: Caller,
        operation: &'static str,
    ) -> Result<(UpstreamAnswer, Recorder)> {
        let started = Instant::now();
        let mut last_error = None;
        let mut last_provider = String::new();
        for target in targets {
            set_model(request, &target.model);
            match target.upstream.post(path, request).await {
                Ok(answer) if answer.status < 500 => {
                    let recorder =
                        self.recorder(&route.name, target.upstream.name(), &target.model, started, caller, operation);
                    return Ok((answer, recorder));
                }
                Ok(answer) => {
                    last_error = Some(Error::Upstream {
                        provider: target.upstream.name().to_string(),
                        message: format!("answered {}", answer.status),
                    })
                }
                Err(error) => last_error = Some(error),
            }
            last_provider = target.upstream.name().to_string();
            let labels = ProviderLabels { route: route.name.clone(), provider: last_provider.clone() };
            self.metrics.failed_attempts.get_or_create(&labels).inc();
        }
        self.metrics
            .failed_calls
            .get_or_create(&ProviderLabels { route: route.name.clone(), provider: last_provider })
            .inc();
        Err(last_error.unwrap_or_else(|| Error::Invalid(format!("route `{}` has no target", route.name))))
    }

    /// A recorder of a call on `route` answered by `provider` with `model`.
    fn recorder(
        &self,
        route: &str,
        provider: &str,
        model: &str,
        started: Instant,
        caller: Caller,
        operation: &'static str,
    ) -> Recorder {
        Recorder {
            ledger: self.ledger.clone(),
            limiter: self.limiter.clone(),
            clock: self.clock.clone(),
            caller,
            operation,
            verdicts: Vec::new(),
            output_rules: None,
            store_as: None,
            from_cache: false,
            compare_with: None,
            prompt: None,
            facts: SpanFacts::default(),
            metrics: self.metrics.clone(),
            started,
            prices: self.prices.clone(),
            route: route.to_string(),
            provider: provider.to_string(),
            model: model.to_string(),
        }
    }

    fn route(&self, requested: &str) -> Result<&RouteConfig> {
        self.routes
            .iter()
            .find(|route| route.name == requested)
            .or_else(|| self.routes.iter().find(|route| route.name == ANY_MODEL))
            .ok_or_else(|| {
                let known: Vec<&str> = self.routes.iter().map(|route| route.name.as_str()).collect();
                Error::NotFound(format!(
                    "no route is named `{requested}`; the gateway answers: {}",
                    if known.is_empty() { "nothing yet".to_string() } else { known.join(", ") }
                ))
            })
    }

    /// The route's targets in the order they are tried: one chosen by weight (turn by turn, so
    /// shares are exact over every run of the weights' sum), then the fallbacks.
    fn targets<'a>(&'a self, route: &RouteConfig, requested: &str) -> Vec<Target<'a>> {
        let total: u64 = route.targets.iter().map(|target| u64::from(target.weight.unwrap_or(1))).sum();
        let mut order = Vec::new();
        if total > 0 {
            let mut turn = self.turn.fetch_add(1, Ordering::Relaxed) % total;
            for target in &route.targets {
                let weight = u64::from(target.weight.unwrap_or(1));
                if turn < weight {
                    if let Some(upstream) = self.providers.get(&target.provider) {
                        let model = target.model.clone().unwrap_or_else(|| requested.to_string());
                        order.push(Target { upstream, model });
                    }
                    break;
                }
                turn -= weight;
            }
        }
        order.extend(self.fallback_targets(route, requested));
        order
    }

    /// A route's fallbacks, in order.
    fn fallback_targets<'a>(&'a self, route: &RouteConfig, requested: &str) -> Vec<Target<'a>> {
        let mut order = Vec::new();
        for fallback in &route.fallbacks {
            if let Some(upstream) = self.providers.get(fallback) {
                let model = route
                    .targets
                    .iter()
                    .find(|target| &target.provider == fallback)
                    .and_then(|target| target.model.clone())
                    .unwrap_or_else(|| requested.to_string());
                order.push(Target { upstream, model });
            }
        }
        order
    }
}

/// A request's JSON and the model (route) it names.
fn decode(body: &[u8]) -> Result<(Value, String)> {
    let request: Value = serde_json::from_slice(body)
        .map_err(|error| Error::Invalid(format!("the request body is not JSON: {error}")))?;
    match request.get("model") {
        Some(Value::String(model)) => {
            let model = model.clone();
            Ok((request, model))
        }
        _ => Err(Error::Invalid("`model` is required: name a route (GET /v1/models lists them)".into())),
    }
}

/// The request as sent to a target: its `model` the target's.
fn set_model(request: &mut Value, model: &str) {
    if let Some(object) = request.as_object_mut() {
        object.insert("model".into(), Value::String(model.to_string()));
    }
}

/// Writes one call's usage and cost to the ledger, and charges them to the caller's limits.
struct Recorder {
    ledger: Arc<Ledger>,
    limiter: Arc<Mutex<Limiter>>,
    clock: Arc<dyn Clock>,
    caller: Caller,
    operation: &'static str,
    verdicts: Vec<Verdict>,
    /// The output guardrails for a whole answer, and the route they are for.
    output_rules: Option<(Arc<Guardrails>, String)>,
    /// Where the answer goes in the cache, on a miss.
    store_as: Option<StoreAs>,
    /// Whether the answer came from the cache (nothing spent).
    from_cache: bool,
    /// The cost router's larger model, when the small one answered: what it saved is counted.
    compare_with: Option<String>,
    /// The prompt version a prompt-named request used.
    prompt: Option<String>,
    /// What the span says: the request's parameters, the answer's model and finish reasons.
    facts: SpanFacts,
    metrics: GatewayMetrics,
    started: Instant,
    prices: Arc<PriceTable>,
    route: String,
    provider: String,
    model: String,
}

impl Recorder {
    /// Reads a whole answer and records its usage when it succeeded.
    async fn whole(self, answer: UpstreamAnswer) -> Result<(u16, Bytes)> {
        let body = read_whole(answer.body).await.map_err(|error| self.failed(error))?;
        let mut recorder = self;
        let mut body = body;
        if answer.status == 200 {
            let parsed = serde_json::from_slice::<Value>(&body).ok();
            if let Some(parsed) = &parsed {
                recorder.facts.take_answer(parsed);
            }
            let usage = parsed.as_ref().and_then(Usage::from_answer);
            if let (Some((cache, key, embedding)), Some(stored)) = (recorder.store_as.take(), parsed.as_ref())
                && (recorder.operation == "embeddings" || crate::cache::storable(stored))
            {
                let answer = CachedAnswer { body: body.clone(), model: recorder.model.clone(), usage };
                cache.store(&key, answer, embedding, recorder.clock.now_ms());
            }
            if let (Some((rules, route)), Some(mut parsed)) = (recorder.output_rules.take(), parsed) {
                let verdicts = rules.check_answer(&route, &mut parsed);
                if !verdicts.is_empty() {
                    count_verdicts(&recorder.metrics, &verdicts);
                    recorder.verdicts.extend(verdicts);
                    body =
                        Bytes::from(serde_json::to_vec(&parsed).map_err(|error| recorder.failed(error.to_string()))?);
                }
            }
            recorder.record(usage);
        }
        Ok((answer.status, body))
    }

    fn failed(&self, message: String) -> Error {
        Error::Upstream { provider: self.provider.clone(), message }
    }

    /// Notes a stream's first event.
    fn first_event(&self) {
        let labels = ProviderLabels { route: self.route.clone(), provider: self.provider.clone() };
        self.metrics.first_token.get_or_create(&labels).observe(self.started.elapsed().as_secs_f64());
    }

    fn record(self, usage: Option<Usage>) {
        let priced = usage.map_or(Cost::Unpriced, |usage| self.prices.cost(&self.model, &usage));
        // An answer from the cache cost nothing; what it would have cost is what it saved.
        let cost = if self.from_cache {
            if let Cost::Priced(picodollars) = priced {
                let labels = RouteLabels { route: self.route.clone() };
                self.metrics.cache_saved.get_or_create(&labels).inc_by(picodollars as f64 / 1e12);
            }
            Cost::Priced(0)
        } else {
            priced
        };
        if let (Some(large), Some(usage), Cost::Priced(small)) = (&self.compare_with, usage, cost)
            && let Cost::Priced(instead) = self.prices.cost(large, &usage)
            && instead > small
        {
            let labels = RouteLabels { route: self.route.clone() };
            self.metrics.router_saved.get_or_create(&labels).inc_by((instead - small) as f64 / 1e12);
        }
        let call = CallLabels { route: self.route.clone(), provider: self.provider.clone(), model: self.model.clone() };
        self.metrics.calls.get_or_create(&call).inc();
        let provider = ProviderLabels { route: self.route.clone(), provider: self.provider.clone() };
        self.metrics.latency.get_or_create(&provider).observe(self.started.elapsed().as_secs_f64());
        if let Some(usage) = usage {
            let uncached = usage.prompt_tokens.saturating_sub(usage.cached_tokens);
            for (kind, count) in
                [("prompt", uncached), ("cached", usage.cached_tokens), ("completion", usage.completion_tokens)]
            {
                let labels = TokenLabels {
                    route: self.route.clone(),
                    provider: self.provider.clone(),
                    model: self.model.clone(),
                    kind: kind.to_string(),
                };
                self.metrics.tokens.get_or_create(&labels).inc_by(count);
            }
        }
        match cost {
            Cost::Priced(picodollars) => {
                self.metrics.cost.get_or_create(&call).inc_by(picodollars as f64 / 1e12);
            }
            Cost::Unpriced => {
                self.metrics.unpriced.get_or_create(&call).inc();
            }
        }
        let at_ms = self.clock.now_ms();
        let (trace_id, span_id) = crate::traces::new_ids();
        if let Ok(mut limiter) = self.limiter.lock() {
            let tokens = if self.from_cache {
                0
            } else {
                usage.map_or(0, |usage| usage.prompt_tokens + usage.completion_tokens)
            };
            let picodollars = match cost {
                Cost::Priced(picodollars) => picodollars,
                Cost::Unpriced => 0,
            };
            limiter.charge(&self.caller, tokens, picodollars, at_ms);
        }
        let record = UsageRecord {
            at_ms,
            caller: self.caller,
            operation: self.operation,
            latency_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            route: self.route,
            provider: self.provider,
            model: self.model,
            usage,
            cost,
            prices: self.prices.version().to_string(),
            verdicts: self.verdicts,
            prompt: self.prompt,
            trace_id,
            span_id,
            facts: self.facts,
        };
        self.ledger.push(record);
    }
}

/// A whole answer's body, up to [`MAX_ANSWER_BYTES`].
async fn read_whole(body: AnswerBody) -> std::result::Result<Bytes, String> {
    Limited::new(body, MAX_ANSWER_BYTES)
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .map_err(|error| format!("reading the answer: {error}"))
}

/// Counts verdicts at `/metrics`.
fn count_verdicts(metrics: &GatewayMetrics, verdicts: &[Verdict]) {
    for verdict in verdicts {
        let labels = VerdictLabels {
            rule: verdict.rule.clone(),
            stage: verdict.stage.as_str().to_string(),
            action: verdict.action.as_str().to_string(),
        };
        metrics.guardrail_verdicts.get_or_create(&labels).inc();
    }
}

/// Whether a stream's chunk carries the answer's first output: text, a tool call or the end
/// (the opening chunk with only the role does not; it comes before any token).
fn carries_output(chunk: &Value) -> bool {
    let Some(choice) = chunk.get("choices").and_then(|choices| choices.get(0)) else { return false };
    let delta = &choice["delta"];
    delta["content"].as_str().is_some_and(|text| !text.is_empty())
        || delta["tool_calls"].is_array()
        || choice["finish_reason"].is_string()
}

/// A streamed answer passed on event by event, reading usage on the way.
pub struct EventStream {
    body: BodyDataStream<AnswerBody>,
    scanner: SseScanner,
    ready: VecDeque<Bytes>,
    drop_usage_chunk: bool,
    usage: Option<Usage>,
    recorder: Option<Recorder>,
    seen_event: bool,
    /// The output guardrails, when any rule checks this route's answers.
    guard: Option<StreamGuard>,
    /// The last chunk's `id`, `object`, `created` and `model`, for chunks the gateway writes.
    skeleton: Value,
    /// The choices whose text is still held back (ended by the gateway at `[DONE]`).
    open_choices: Vec<usize>,
    /// Whether a guardrail ended the answer (the upstream's rest is not read).
    blocked: bool,
    /// The answer assembled for the cache, on a miss that may be stored.
    assembler: Option<Assembler>,
}

impl EventStream {
    fn new(body: AnswerBody, drop_usage_chunk: bool, recorder: Recorder, guard: Option<StreamGuard>) -> Self {
        Self {
            body: body.into_data_stream(),
            scanner: SseScanner::default(),
            ready: VecDeque::new(),
            drop_usage_chunk,
            usage: None,
            recorder: Some(recorder),
            seen_event: false,
            guard,
            skeleton: json!({"object": "chat.completion.chunk"}),
            open_choices: Vec::new(),
            blocked: false,
            assembler: None,
        }
    }

    /// A chunk the gateway writes, shaped as the upstream's.
    fn chunk(&self, choices: Vec<Value>) -> String {
        let mut chunk = self.skeleton.clone();
        chunk["choices"] = Value::Array(choices);
        chunk.to_string()
    }

    /// Passes a chunk's text deltas through the output guardrails: the chunk to send, or `None`
    /// when they end the answer (then the content-filter chunk and `[DONE]` are queued).
    fn guarded(&mut self, data: &str, chunk: Option<Value>) -> Option<String> {
        let Some(guard) = self.guard.as_mut() else { return Some(data.to_string()) };
        if data == "[DONE]" {
            let mut flushed = Vec::new();
            for index in std::mem::take(&mut self.open_choices) {
                match guard.finish(index) {
                    Some(text) if !text.is_empty() => {
                        flushed.push(json!({"index": index, "delta": {"content": text}, "finish_reason": null}));
                    }
                    Some(_) => {}
                    None => {
                        self.end_filtered(index);
                        return None;
                    }
                }
            }
            if !flushed.is_empty() {
                let chunk = self.chunk(flushed);
                self.push(None, &chunk);
            }
            return Some(data.to_string());
        }
        let Some(mut chunk) = chunk else { return Some(data.to_string()) };
        for key in ["id", "object", "created", "model", "system_fingerprint"] {
            if let Some(value) = chunk.get(key) {
                self.skeleton[key] = value.clone();
            }
        }
        let Some(choices) = chunk.get_mut("choices").and_then(Value::as_array_mut) else {
            return Some(data.to_string());
        };
        let mut changed = false;
        for (position, choice) in choices.iter_mut().enumerate() {
            let index = choice.get("index").and_then(Value::as_u64).map_or(position, |index| index as usize);
            let mut text = None;
            if let Some(content) = choice.get("delta").and_then(|delta| delta.get("content")).and_then(Value::as_str) {
                if !self.open_choices.contains(&index) {
                    self.open_choices.push(index);
                }
                match guard.delta(index, content) {
                    Some(passed) => text = Some(passed),
                    None => {
                        self.end_filtered(index);
                        return None;
                    }
                }
            }
            if choice.get("finish_reason").is_some_and(Value::is_string) {
                self.open_choices.retain(|open| *open != index);
                match guard.finish(index) {
                    Some(rest) => text = Some(text.unwrap_or_default() + &rest),
                    None => {
                        self.end_filtered(index);
                        return None;
                    }
                }
            }
            if let (Some(text), Some(delta)) = (text, choice.get_mut("delta")) {
                delta["content"] = Value::String(text);
                changed = true;
            }
        }
        Some(if changed { chunk.to_string() } else { data.to_string() })
    }

    /// Ends the answer as OpenAI's content filter does: choice `index` finishes with
    /// `content_filter`, then `[DONE]`; the upstream's rest is not read.
    fn end_filtered(&mut self, index: usize) {
        let chunk = self.chunk(vec![json!({"index": index, "delta": {}, "finish_reason": "content_filter"})]);
        self.push(None, &chunk);
        self.push(None, "[DONE]");
        self.blocked = true;
        if let (Some(guard), Some(recorder)) = (&self.guard, self.recorder.as_mut()) {
            recorder.verdicts.extend(guard.verdicts().iter().cloned());
            count_verdicts(&recorder.metrics, guard.verdicts());
        }
        self.guard = None;
    }

    /// Frames one event.
    fn push(&mut self, name: Option<&str>, data: &str) {
        let mut framed = String::with_capacity(data.len() + 16);
        if let Some(name) = name {
            framed.push_str("event: ");
            framed.push_str(name);
            framed.push('\n');
        }
        for line in data.split('\n') {
            framed.push_str("data: ");
            framed.push_str(line);
            framed.push('\n');
        }
        framed.push('\n');
        self.ready.push_back(Bytes::from(framed));
    }

    fn take(&mut self, event: SseEvent) {
        if self.blocked {
            return;
        }
        // One parse per event, shared by all that read it: the span's facts, the cache's
        // assembler, the first-token clock, the usage, the guardrails.
        let chunk = if event.data == "[DONE]" { None } else { serde_json::from_str::<Value>(&event.data).ok() };
        if let Some(chunk) = &chunk {
            if let Some(recorder) = self.recorder.as_mut() {
                recorder.facts.take_answer(chunk);
            }
            if let Some(assembler) = self.assembler.as_mut() {
                assembler.take(chunk);
            }
            if !self.seen_event && carries_output(chunk) {
                self.seen_event = true;
                if let Some(recorder) = &self.recorder {
                    recorder.first_event();
                }
            }
            if let Some(usage) = Usage::from_answer(chunk) {
                self.usage = Some(usage);
                if self.drop_usage_chunk && Usage::is_usage_only_chunk(chunk) {
                    return;
                }
            }
        }
        if let Some(data) = self.guarded(&event.data, chunk) {
            self.push(event.event.as_deref(), &data);
        }
    }

    /// Ends a stream that failed: what it used so far is recorded, and the error names the provider.
    fn broken(&mut self, message: String) -> Error {
        let error = match &self.recorder {
            Some(recorder) => recorder.failed(message),
            None => Error::Upstream { provider: "upstream".into(), message },
        };
        self.finish();
        error
    }

    /// A stream that ended properly, assembled, into the cache.
    fn store_assembled(&mut self) {
        let (Some(assembler), Some(recorder)) = (self.assembler.take(), self.recorder.as_mut()) else { return };
        let (Some((cache, key, embedding)), Some(answer)) = (recorder.store_as.take(), assembler.finish()) else {
            return;
        };
        let usage = Usage::from_answer(&answer);
        let stored = CachedAnswer { body: Bytes::from(answer.to_string()), model: recorder.model.clone(), usage };
        cache.store(&key, stored, embedding, recorder.clock.now_ms());
    }

    fn finish(&mut self) {
        self.scanner.finish();
        if let Some(mut recorder) = self.recorder.take() {
            if let Some(guard) = self.guard.take() {
                recorder.verdicts.extend(guard.verdicts().iter().cloned());
                count_verdicts(&recorder.metrics, guard.verdicts());
            }
            recorder.record(self.usage);
        }
    }
}

impl Stream for EventStream {
    type Item = std::result::Result<Bytes, Error>;

    fn poll_next(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(ready) = self.ready.pop_front() {
                return Poll::Ready(Some(Ok(ready)));
            }
            if self.recorder.is_none() {
                return Poll::Ready(None);
            }
            if self.blocked {
                // What the upstream would still send is not read; dropping it stops the generation.
                self.finish();
                continue;
            }
            match Pin::new(&mut self.body).poll_next(context) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => match self.scanner.feed(&chunk) {
                    Ok(events) => events.into_iter().for_each(|event| self.take(event)),
                    Err(error) => return Poll::Ready(Some(Err(self.broken(error.to_string())))),
                },
                Poll::Ready(Some(Err(error))) => {
                    return Poll::Ready(Some(Err(self.broken(format!("the stream broke: {error}")))));
                }
                Poll::Ready(None) => {
                    self.store_assembled();
                    self.finish();
                }
            }
        }
    }
}
