//! The gateway's Prometheus metrics (`causeway_llm_*`): calls by outcome, tokens by kind, cost in
//! dollars and unpriced calls, each per route, provider and model; failed attempts per provider;
//! time to the answer and, for streams, to the first event. It owns their names and labels; the
//! gateway decides when to record, and a server decides which registry renders them.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// A call's route, provider and model (the name sent to the provider).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct CallLabels {
    /// The route the caller named.
    pub route: String,
    /// The provider that answered.
    pub provider: String,
    /// The model sent to it.
    pub model: String,
}

/// [`CallLabels`] and what kind of tokens.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct TokenLabels {
    /// The route.
    pub route: String,
    /// The provider.
    pub provider: String,
    /// The model.
    pub model: String,
    /// `prompt` (not cached), `cached` (prompt tokens served from the provider's cache) or `completion`.
    pub kind: String,
}

/// A route and a provider.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ProviderLabels {
    /// The route.
    pub route: String,
    /// The provider.
    pub provider: String,
}

/// A tenant and the limit it was over.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct LimitLabels {
    /// The caller's tenant (configured names and `default`: bounded).
    pub tenant: String,
    /// `requests_per_minute`, `tokens_per_minute` or `dollars_per_day`.
    pub limit: String,
}

/// A guardrail rule's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct VerdictLabels {
    /// The rule's name (configured: bounded).
    pub rule: String,
    /// `input` or `output`.
    pub stage: String,
    /// `block`, `redact` or `flag`.
    pub action: String,
}

/// A cache lookup.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct CacheLabels {
    /// The route.
    pub route: String,
    /// `exact` or `semantic`.
    pub kind: String,
    /// `hit` or `miss`.
    pub outcome: String,
}

/// A route alone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RouteLabels {
    /// The route.
    pub route: String,
}

/// A cost router's decision.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RouterLabels {
    /// The route.
    pub route: String,
    /// `small` or `large`.
    pub tier: String,
    /// `answered` (small), or why it escalated: `prompt_length`, `keyword`, `low_confidence`, `answer_phrase`.
    pub reason: String,
}

/// The gateway's metric families (clones share their values).
#[derive(Debug, Clone)]
pub struct GatewayMetrics {
    /// Calls answered (any status below 500), per route, provider and model.
    pub calls: Family<CallLabels, Counter>,
    /// Tokens, per kind.
    pub tokens: Family<TokenLabels, Counter>,
    /// Dollars, from the versioned price table.
    pub cost: Family<CallLabels, Counter<f64, AtomicU64>>,
    /// Answered calls whose model has no price (or whose usage was not reported).
    pub unpriced: Family<CallLabels, Counter>,
    /// Attempts that failed (unreachable, timed out, 5xx), per route and provider.
    pub failed_attempts: Family<ProviderLabels, Counter>,
    /// Requests no provider answered, per route.
    pub failed_calls: Family<ProviderLabels, Counter>,
    /// Seconds until the whole answer (or a stream's end).
    pub latency: Family<ProviderLabels, Histogram>,
    /// Seconds until a stream's first event.
    pub first_token: Family<ProviderLabels, Histogram>,
    /// Requests refused for being over a limit (answered 429).
    pub limited: Family<LimitLabels, Counter>,
    /// Guardrail verdicts (a rule that found something), per rule, stage and action.
    pub guardrail_verdicts: Family<VerdictLabels, Counter>,
    /// Cache lookups, per route, kind and outcome (the hit rate is hits over lookups).
    pub cache_lookups: Family<CacheLabels, Counter>,
    /// Dollars the cache's answers would have cost, per route.
    pub cache_saved: Family<RouteLabels, Counter<f64, AtomicU64>>,
    /// The cost routers' decisions (the share escalated is `large` over all).
    pub router_decisions: Family<RouterLabels, Counter>,
    /// Dollars the small model's answers saved against the larger model's prices, per route.
    pub router_saved: Family<RouteLabels, Counter<f64, AtomicU64>>,
    /// Dollars spent on small-model answers set aside for the larger model's, per route.
    pub router_overhead: Family<RouteLabels, Counter<f64, AtomicU64>>,
    /// Spans the OTLP receiver did not take.
    pub trace_export_failed: Counter,
    /// Calls the ledger's store never got (its queue full, or its writes failing to the end).
    pub ledger_dropped: Counter,
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        let seconds = || Histogram::new(exponential_buckets(0.000_5, 2.0, 18));
        Self {
            calls: Family::default(),
            tokens: Family::default(),
            cost: Family::default(),
            unpriced: Family::default(),
            failed_attempts: Family::default(),
            failed_calls: Family::default(),
            latency: Family::new_with_constructor(seconds),
            first_token: Family::new_with_constructor(seconds),
            limited: Family::default(),
            guardrail_verdicts: Family::default(),
            ledger_dropped: Counter::default(),
            trace_export_failed: Counter::default(),
            cache_lookups: Family::default(),
            router_decisions: Family::default(),
            router_saved: Family::default(),
            router_overhead: Family::default(),
            cache_saved: Family::default(),
        }
    }
}

impl GatewayMetrics {
    /// Registers every family in `registry` under `llm_` (a registry prefixed `causeway` gives
    /// `causeway_llm_…`).
    pub fn register(&self, registry: &mut Registry) {
        let registry = registry.sub_registry_with_prefix("llm");
        registry.register("calls", "LLM calls answered, per route, provider and model", self.calls.clone());
        registry.register(
            "tokens",
            "Tokens, per route, provider, model and kind (prompt, cached, completion)",
            self.tokens.clone(),
        );
        registry.register(
            "cost_dollars",
            "Cost in dollars from the price table, per route, provider and model",
            self.cost.clone(),
        );
        registry.register(
            "unpriced_calls",
            "Answered calls without a price or reported usage (never counted as $0)",
            self.unpriced.clone(),
        );
        registry.register(
            "failed_attempts",
            "Attempts that failed (unreachable, timed out, 5xx), per route and provider",
            self.failed_attempts.clone(),
        );
        registry.register(
            "failed_calls",
            "Requests no provider answered, per route (provider: the last tried)",
            self.failed_calls.clone(),
        );
        registry.register("latency_seconds", "Time to the whole answer or a stream's end", self.latency.clone());
        registry.register("time_to_first_token_seconds", "Time to a stream's first event", self.first_token.clone());
        registry.register(
            "limited_requests",
            "Requests refused with 429 for being over a limit, per tenant and limit",
            self.limited.clone(),
        );
        registry.register(
            "guardrail_verdicts",
            "Guardrail rules that found something, per rule, stage (input, output) and action (block, redact, flag)",
            self.guardrail_verdicts.clone(),
        );
        registry.register(
            "cache_lookups",
            "Answer-cache lookups, per route, kind (exact, semantic) and outcome (hit, miss)",
            self.cache_lookups.clone(),
        );
        registry.register(
            "cache_saved_dollars",
            "What the answers served from the cache would have cost, per route",
            self.cache_saved.clone(),
        );
        registry.register(
            "router_decisions",
            "Cost-router decisions, per route, tier (small, large) and reason",
            self.router_decisions.clone(),
        );
        registry.register(
            "router_saved_dollars",
            "What the small model's answers saved against the larger model's prices, per route",
            self.router_saved.clone(),
        );
        registry.register(
            "router_overhead_dollars",
            "What small-model answers set aside for the larger model's cost, per route",
            self.router_overhead.clone(),
        );
        registry.register(
            "trace_export_failed_spans",
            "Spans the OTLP receiver did not take (unreachable or refusing)",
            self.trace_export_failed.clone(),
        );
        registry.register(
            "ledger_dropped_calls",
            "Calls the ledger's store never got (its queue full, or its writes failing); 0 unless the store is in trouble",
            self.ledger_dropped.clone(),
        );
    }

    /// The families alone in the text exposition format (`causeway gateway`'s `/metrics`).
    pub fn render(&self) -> String {
        let mut registry = Registry::with_prefix("causeway");
        self.register(&mut registry);
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &registry).is_err() {
            text.clear();
        }
        text
    }
}
