//! Traces: every call is a span with OpenTelemetry's GenAI attributes (`gen_ai.operation.name`,
//! `gen_ai.provider.name`, `gen_ai.request.model`, `gen_ai.response.model`, token usage, finish
//! reasons, request parameters) and Causeway's own (`causeway.*`: tenant, key, route, cost,
//! prompt version, guardrail verdicts). The span is the call's ledger row in the store; when
//! `[gateway.traces] otlp_endpoint` is set, the ledger's writer also sends the spans over
//! OTLP/HTTP as JSON (`POST {endpoint}/v1/traces`).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use causeway_store::LlmCall;
use prometheus_client::metrics::counter::Counter;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// `[gateway.traces]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracesConfig {
    /// An OTLP/HTTP receiver (`http://127.0.0.1:4318`; `/v1/traces` is added unless given).
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    /// The `service.name` of the spans (default `causeway`).
    #[serde(default)]
    pub service_name: Option<String>,
}

impl TracesConfig {
    /// What is wrong with the section.
    pub fn check(&self) -> Result<(), String> {
        match &self.otlp_endpoint {
            Some(url) if !(url.starts_with("http://") || url.starts_with("https://")) => {
                Err(format!("traces.otlp_endpoint `{url}` must begin with http:// or https://"))
            }
            _ => Ok(()),
        }
    }
}

/// A new span's trace and span ids: 16 and 8 bytes in hex, from a per-process secret and a
/// counter (unique within the process, unguessable across processes).
pub fn new_ids() -> (String, String) {
    static SEED: OnceLock<String> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = SEED.get_or_init(|| {
        causeway_store::random_hex(16).unwrap_or_else(|_| format!("{:?}", std::time::SystemTime::now()))
    });
    let mut hasher = blake3::Hasher::new();
    hasher.update(seed.as_bytes());
    hasher.update(&COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    let digest = hasher.finalize();
    let bytes = digest.as_bytes();
    (causeway_store::hex(&bytes[..16]), causeway_store::hex(&bytes[16..24]))
}

/// What a span says beyond the ledger's columns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpanFacts {
    /// The model the answer names.
    pub response_model: Option<String>,
    /// Each choice's finish reason.
    pub finish_reasons: Vec<String>,
    /// `temperature`, `max_tokens`, `top_p` as the request gave them.
    pub request: Map<String, Value>,
}

impl SpanFacts {
    /// The request parameters the GenAI conventions name, read from a request.
    pub fn from_request(request: &Value) -> Map<String, Value> {
        let mut parameters = Map::new();
        for (field, attribute) in [
            ("temperature", "gen_ai.request.temperature"),
            ("top_p", "gen_ai.request.top_p"),
            ("max_tokens", "gen_ai.request.max_tokens"),
            ("max_completion_tokens", "gen_ai.request.max_tokens"),
            ("seed", "gen_ai.request.seed"),
        ] {
            if let Some(value) = request.get(field).filter(|value| value.is_number()) {
                parameters.insert(attribute.into(), value.clone());
            }
        }
        parameters
    }

    /// Reads the response model and finish reasons of a whole answer or a stream's chunk.
    pub fn take_answer(&mut self, answer: &Value) {
        if self.response_model.is_none()
            && let Some(model) = answer.get("model").and_then(Value::as_str)
        {
            self.response_model = Some(model.to_string());
        }
        for choice in answer.get("choices").and_then(Value::as_array).into_iter().flatten() {
            if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                self.finish_reasons.push(reason.to_string());
            }
        }
    }
}

/// Sends spans to an OTLP/HTTP receiver.
#[derive(Clone)]
pub struct Exporter {
    url: String,
    service: String,
    agent: ureq::Agent,
    failed: Counter,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Exporter").field("url", &self.url).finish()
    }
}

impl Exporter {
    /// The exporter `config` asks for, if any; `failed` counts spans that could not be sent.
    pub fn new(config: &TracesConfig, failed: Counter) -> Option<Self> {
        let endpoint = config.otlp_endpoint.as_ref()?.trim_end_matches('/');
        let url = if endpoint.ends_with("/v1/traces") { endpoint.to_string() } else { format!("{endpoint}/v1/traces") };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        Some(Self { url, service: config.service_name.clone().unwrap_or_else(|| "causeway".into()), agent, failed })
    }

    /// Sends `calls` as one OTLP request (blocking: the ledger's writer thread calls it).
    pub fn export(&self, calls: &[LlmCall]) {
        if calls.is_empty() {
            return;
        }
        let body = otlp_body(&self.service, calls).to_string();
        let outcome = self.agent.post(&self.url).header("content-type", "application/json").send(body.as_bytes());
        let why = match outcome {
            Ok(response) if response.status().is_success() => return,
            Ok(response) => format!("HTTP {}", response.status().as_u16()),
            Err(error) => error.to_string(),
        };
        self.failed.inc_by(calls.len() as u64);
        tracing::warn!(url = %self.url, %why, spans = calls.len(), "LLM trace spans could not be exported");
    }
}

/// An OTLP attribute value from JSON.
fn otlp_value(value: &Value) -> Value {
    match value {
        Value::String(text) => json!({"stringValue": text}),
        Value::Bool(flag) => json!({"boolValue": flag}),
        Value::Number(number) if number.is_i64() || number.is_u64() => json!({"intValue": number.to_string()}),
        Value::Number(number) => json!({"doubleValue": number.as_f64()}),
        Value::Array(items) => json!({"arrayValue": {"values": items.iter().map(otlp_value).collect::<Vec<_>>()}}),
        other => json!({"stringValue": other.to_string()}),
    }
}

/// The OTLP/JSON `ExportTraceServiceRequest` for `calls`.
pub fn otlp_body(service: &str, calls: &[LlmCall]) -> Value {
    let spans: Vec<Value> = calls
        .iter()
        .map(|call| {
            let attributes: Map<String, Value> = serde_json::from_str(&call.attributes_json).unwrap_or_default();
            let end_ns = u128::try_from(call.at_ms).unwrap_or(0) * 1_000_000;
            let start_ns = end_ns.saturating_sub(u128::from(call.latency_ms) * 1_000_000);
            json!({
                "traceId": call.trace_id,
                "spanId": call.span_id,
                "name": format!("{} {}", call.operation, call.route),
                "kind": 3,
                "startTimeUnixNano": start_ns.to_string(),
                "endTimeUnixNano": end_ns.to_string(),
                "attributes": attributes.iter().map(|(key, value)| json!({"key": key, "value": otlp_value(value)})).collect::<Vec<_>>(),
                "status": {"code": 1},
            })
        })
        .collect();
    json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeSpans": [{"scope": {"name": "causeway-gateway", "version": env!("CARGO_PKG_VERSION")}, "spans": spans}],
    }]})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_hex_of_the_right_length_and_never_repeat() {
        let (trace, span) = new_ids();
        assert_eq!((trace.len(), span.len()), (32, 16));
        assert!(trace.bytes().chain(span.bytes()).all(|byte| byte.is_ascii_hexdigit()));
        let ids: std::collections::BTreeSet<String> = (0..1000).map(|_| new_ids().0).collect();
        assert_eq!(ids.len(), 1000);
    }

    #[test]
    fn spans_encode_as_otlp_json() {
        let call = LlmCall {
            at_ms: 2_000,
            tenant: "t".into(),
            key: "k".into(),
            route: "chat".into(),
            provider: "p".into(),
            model: "m".into(),
            operation: "chat".into(),
            usage_known: true,
            prompt_tokens: 5,
            cached_tokens: 0,
            completion_tokens: 2,
            cost_picodollars: None,
            prices: String::new(),
            latency_ms: 500,
            prompt: String::new(),
            trace_id: "0".repeat(32),
            span_id: "1".repeat(16),
            attributes_json: json!({"gen_ai.usage.input_tokens": 5, "gen_ai.response.finish_reasons": ["stop"], "gen_ai.request.temperature": 0.5}).to_string(),
        };
        let body = otlp_body("svc", &[call]);
        let span = &body["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(
            (span["startTimeUnixNano"].as_str(), span["endTimeUnixNano"].as_str()),
            (Some("1500000000"), Some("2000000000"))
        );
        assert_eq!(span["name"], "chat chat");
        let attributes = span["attributes"].as_array().expect("attributes");
        assert!(attributes.contains(&json!({"key": "gen_ai.usage.input_tokens", "value": {"intValue": "5"}})));
        assert!(attributes.contains(&json!({"key": "gen_ai.request.temperature", "value": {"doubleValue": 0.5}})));
        assert!(attributes.contains(
            &json!({"key": "gen_ai.response.finish_reasons", "value": {"arrayValue": {"values": [{"stringValue": "stop"}]}}})
        ));
        assert_eq!(body["resourceSpans"][0]["resource"]["attributes"][0]["value"]["stringValue"], "svc");
    }
}
