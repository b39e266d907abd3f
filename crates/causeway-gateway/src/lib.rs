//! The LLM gateway without an HTTP server: what sits between a caller of the OpenAI API and the
//! providers that answer it — the configuration of providers, routes and prices, routing by
//! weight with fallbacks to OpenAI-compatible upstreams (a client, `upstream`) and to the
//! embedded model (`local`: `causeway-llm` on worker threads, answering as an OpenAI server
//! would), the exact cost of a call and its ledger, reading usage out of answers and
//! server-sent-event streams, Prometheus metrics of calls, tokens, cost and latency (`metrics`), limits per tenant and key
//! (`limits`: requests and tokens per minute, dollars per day, a pure state machine on the time
//! it is given), and the ledger of calls in the metadata store (`ledger`, written by a thread of
//! its own); later caches, guardrails, prompt rendering and traces
//! (`docs/plans/llm-gateway.md`).
//!
//! It knows no web framework: `causeway-server`'s OpenAI adapter decodes a request, calls this
//! crate and encodes what it returns. A request is kept as JSON and forwarded untouched except
//! where the gateway decides something, so fields it does not know pass through.

pub mod cache;
pub mod config;
mod error;
pub mod gateway;
pub mod guardrails;
pub mod ledger;
pub mod limits;
pub mod local;
pub mod metrics;
pub mod price;
pub mod prompts;
pub mod router;
pub mod sse;
pub mod traces;
pub mod upstream;
pub mod usage;

pub use config::GatewayConfig;
pub use error::{Error, Result};
pub use gateway::{ChatAnswer, Gateway, UsageRecord};
pub use limits::Caller;
pub use price::{Cost, PriceTable};
pub use sse::SseScanner;
pub use usage::Usage;
