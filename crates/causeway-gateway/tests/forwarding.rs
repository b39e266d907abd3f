//! The gateway in front of a stand-in OpenAI-compatible upstream (an axum server in this test
//! that answers as vLLM does, recording what it was sent): the model rewritten to the target's,
//! usage always asked for upstream and the usage-only chunk hidden from a caller who did not ask,
//! usage and cost in the ledger, weights shared exactly, fallbacks on a dead upstream.
//!
//! The stand-in is not a model: the real local model behind the official `openai` client is the
//! next milestone (docs/plans/llm-gateway.md §5); this checks the forwarding itself.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used, reason = "tests fail loudly")]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::Response;
use axum::routing::post;
use causeway_gateway::config::{GatewayConfig, ProviderConfig, ProviderKind, RouteConfig, RouteTarget};
use causeway_gateway::price::{Cost, PriceEntry};
use causeway_gateway::{ChatAnswer, Gateway, Usage};
use futures_core::Stream;
use serde_json::{Value, json};

type Seen = Arc<Mutex<Vec<Value>>>;

async fn completions(State((name, seen)): State<(String, Seen)>, body: Bytes) -> Response {
    let request: Value = serde_json::from_slice(&body).expect("json");
    seen.lock().expect("lock").push(request.clone());
    let model = request["model"].as_str().unwrap_or_default().to_string();
    let usage = json!({"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15,
        "prompt_tokens_details": {"cached_tokens": 2}});
    if request["stream"].as_bool() == Some(true) {
        let mut text = String::new();
        for word in ["Hello", " from", &format!(" {name}")] {
            let chunk = json!({"id": "c1", "object": "chat.completion.chunk", "model": model,
                "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": null}], "usage": null});
            text.push_str(&format!("data: {chunk}\n\n"));
        }
        let finish = json!({"id": "c1", "object": "chat.completion.chunk", "model": model,
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": null});
        text.push_str(&format!("data: {finish}\n\n"));
        if request["stream_options"]["include_usage"].as_bool() == Some(true) {
            // vLLM's shape: `choices: null` beside the usage.
            text.push_str(&format!(
                "data: {}\n\n",
                json!({"id": "c1", "object": "chat.completion.chunk", "choices": null, "usage": usage})
            ));
        }
        text.push_str("data: [DONE]\n\n");
        return Response::builder()
            .header(header::CONTENT_TYPE, "text/event-stream")
            .body(Body::from(text))
            .expect("response");
    }
    let answer = json!({"id": "c1", "object": "chat.completion", "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": format!("Hello from {name}")}, "finish_reason": "stop"}],
        "usage": usage});
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(answer.to_string()))
        .expect("response")
}

async fn upstream(name: &str) -> (SocketAddr, Seen) {
    let seen: Seen = Arc::default();
    let app =
        Router::new().route("/v1/chat/completions", post(completions)).with_state((name.to_string(), seen.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (address, seen)
}

fn provider(name: &str, address: SocketAddr) -> ProviderConfig {
    ProviderConfig {
        name: name.into(),
        kind: ProviderKind::Openai,
        base_url: Some(format!("http://{address}/v1")),
        api_key_env: None,
        model_file: None,
        embedding_dir: None,
        threads: None,
        timeout_ms: Some(5_000),
        retries: None,
    }
}

async fn collect(mut stream: impl Stream<Item = Result<Bytes, causeway_gateway::Error>> + Unpin) -> String {
    let mut text = String::new();
    while let Some(piece) = std::future::poll_fn(|context| std::pin::Pin::new(&mut stream).poll_next(context)).await {
        text.push_str(std::str::from_utf8(&piece.expect("a piece")).expect("utf-8"));
    }
    text
}

#[tokio::test]
async fn forwards_streams_and_answers_recording_usage_and_cost() {
    let (address, seen) = upstream("vllm").await;
    let config = GatewayConfig {
        providers: vec![provider("vllm", address)],
        routes: vec![RouteConfig {
            name: "chat".into(),
            targets: vec![RouteTarget { provider: "vllm".into(), model: Some("qwen".into()), weight: None }],
            fallbacks: vec![],
            escalation: None,
        }],
        prices: vec![PriceEntry {
            model: "qwen".into(),
            input: "1".into(),
            cached_input: Some("0.5".into()),
            output: "2".into(),
        }],
        tenants: vec![],
        ..GatewayConfig::default()
    };
    let gateway = Gateway::new(&config).expect("gateway");

    let whole = gateway
        .chat(
            "anonymous",
            br#"{"model": "chat", "messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function"}]}"#,
        )
        .await
        .expect("answer");
    let ChatAnswer::Whole { status, body } = whole else { panic!("a whole answer") };
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).expect("json")["choices"][0]["message"]["content"],
        "Hello from vllm"
    );
    {
        let seen = seen.lock().expect("lock");
        assert_eq!(seen[0]["model"], "qwen", "the route's target model is sent");
        assert_eq!(seen[0]["tools"], json!([{"type": "function"}]), "unknown fields pass through");
        assert!(seen[0].get("stream_options").is_none(), "nothing added to a whole request");
    }

    // A stream whose caller did not ask for usage: asked upstream, hidden from the caller.
    let ChatAnswer::Stream(events) =
        gateway.chat("anonymous", br#"{"model": "chat", "messages": [], "stream": true}"#).await.expect("stream")
    else {
        panic!("a stream")
    };
    let text = collect(events).await;
    assert!(text.contains("\"content\":\" vllm\"") && text.ends_with("data: [DONE]\n\n"), "{text}");
    assert!(!text.contains("prompt_tokens"), "the usage chunk the gateway asked for is not passed on: {text}");
    assert_eq!(seen.lock().expect("lock")[1]["stream_options"]["include_usage"], true);

    // A caller who asked gets it.
    let asked = br#"{"model": "chat", "messages": [], "stream": true, "stream_options": {"include_usage": true}}"#;
    let ChatAnswer::Stream(events) = gateway.chat("anonymous", asked).await.expect("stream") else {
        panic!("a stream")
    };
    assert!(collect(events).await.contains("\"prompt_tokens\":12"));

    let ledger = gateway.ledger();
    assert_eq!(ledger.len(), 3, "{ledger:?}");
    let usage = Usage { prompt_tokens: 12, cached_tokens: 2, completion_tokens: 3, reasoning_tokens: 0 };
    for record in &ledger {
        assert_eq!((record.route.as_str(), record.provider.as_str(), record.model.as_str()), ("chat", "vllm", "qwen"));
        assert_eq!(record.usage, Some(usage));
        // 10 × $1 + 2 × $0.5 + 3 × $2 per million = 17 micro-dollars.
        assert_eq!(record.cost, Cost::Priced(17_000_000));
    }
    let error = gateway.chat("anonymous", br#"{"model": "other", "messages": []}"#).await.err().expect("no such route");
    assert!(error.to_string().contains("no route is named `other`; the gateway answers: chat"), "{error}");
}

#[tokio::test]
async fn weights_share_exactly_and_a_dead_upstream_falls_back() {
    let (first, first_seen) = upstream("first").await;
    let (second, second_seen) = upstream("second").await;
    // A port nobody listens on: bound, then released.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind").local_addr().expect("address");
    let config = GatewayConfig {
        providers: vec![provider("first", first), provider("second", second), provider("dead", dead)],
        routes: vec![
            RouteConfig {
                name: "shared".into(),
                targets: vec![
                    RouteTarget { provider: "first".into(), model: None, weight: Some(3) },
                    RouteTarget { provider: "second".into(), model: None, weight: Some(1) },
                ],
                fallbacks: vec![],
                escalation: None,
            },
            RouteConfig {
                name: "fragile".into(),
                targets: vec![RouteTarget { provider: "dead".into(), model: None, weight: None }],
                fallbacks: vec!["second".into()],
                escalation: None,
            },
        ],
        prices: vec![],
        tenants: vec![],
        ..GatewayConfig::default()
    };
    let gateway = Gateway::new(&config).expect("gateway");
    for _ in 0..8 {
        gateway.chat("anonymous", br#"{"model": "shared", "messages": []}"#).await.expect("answer");
    }
    assert_eq!((first_seen.lock().expect("lock").len(), second_seen.lock().expect("lock").len()), (6, 2));
    let ChatAnswer::Whole { body, .. } =
        gateway.chat("anonymous", br#"{"model": "fragile", "messages": []}"#).await.expect("fallback")
    else {
        panic!("a whole answer")
    };
    assert!(String::from_utf8_lossy(&body).contains("Hello from second"));
    let unpriced = gateway.ledger().last().map(|record| record.cost);
    assert_eq!(unpriced, Some(Cost::Unpriced), "no price for the model: unpriced, not $0");
}

#[tokio::test]
async fn metrics_count_calls_tokens_cost_and_failures() {
    let (address, _) = upstream("vllm").await;
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind").local_addr().expect("address");
    let config = GatewayConfig {
        providers: vec![provider("vllm", address), provider("dead", dead)],
        routes: vec![RouteConfig {
            name: "chat".into(),
            // The fallback is sent the route's name as the model, priced below.
            targets: vec![RouteTarget { provider: "dead".into(), model: None, weight: None }],
            fallbacks: vec!["vllm".into()],
            escalation: None,
        }],
        prices: vec![PriceEntry {
            model: "chat".into(),
            input: "1".into(),
            cached_input: Some("0.5".into()),
            output: "2".into(),
        }],
        tenants: vec![],
        ..GatewayConfig::default()
    };
    let gateway = Gateway::new(&config).expect("gateway");
    gateway.chat("anonymous", br#"{"model": "chat", "messages": []}"#).await.expect("answer");
    let ChatAnswer::Stream(events) =
        gateway.chat("anonymous", br#"{"model": "chat", "messages": [], "stream": true}"#).await.expect("stream")
    else {
        panic!("a stream")
    };
    collect(events).await;
    let text = gateway.metrics().render();
    let labels = r#"route="chat",provider="vllm",model="chat""#;
    for line in [
        format!("causeway_llm_calls_total{{{labels}}} 2"),
        format!("causeway_llm_tokens_total{{{labels},kind=\"prompt\"}} 20"),
        format!("causeway_llm_tokens_total{{{labels},kind=\"cached\"}} 4"),
        format!("causeway_llm_tokens_total{{{labels},kind=\"completion\"}} 6"),
        "causeway_llm_failed_attempts_total{route=\"chat\",provider=\"dead\"} 2".to_string(),
        "causeway_llm_time_to_first_token_seconds_count{route=\"chat\",provider=\"vllm\"} 1".to_string(),
        "causeway_llm_latency_seconds_count{route=\"chat\",provider=\"vllm\"} 2".to_string(),
    ] {
        assert!(text.lines().any(|got| got == line), "no `{line}` in\n{text}");
    }
    // Two calls of 17 micro-dollars.
    let cost: f64 = text
        .lines()
        .find_map(|line| line.strip_prefix(&format!("causeway_llm_cost_dollars_total{{{labels}}} ")))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no cost in\n{text}"));
    assert!((cost - 0.000_034).abs() < 1e-15, "{cost}");
    assert!(!text.contains("causeway_llm_unpriced_calls_total{"), "every call was priced:\n{text}");
}

/// Limits per tenant and key on a clock the test moves, with the ledger in a real store: a
/// spend limit refuses with 429's `Retry-After` until midnight UTC, survives a restart (the
/// spend is read back from the ledger), and lets calls through again the next day.
#[tokio::test]
async fn spend_and_request_limits_hold_across_a_restart() {
    use causeway_gateway::config::{LimitsConfig, TenantConfig};
    use causeway_store::{MetaStore, UsageDimension};
    use causeway_types::ManualClock;

    let (address, _) = upstream("vllm").await;
    let config = GatewayConfig {
        providers: vec![provider("vllm", address)],
        routes: vec![RouteConfig {
            name: "chat".into(),
            targets: vec![RouteTarget { provider: "vllm".into(), model: None, weight: None }],
            fallbacks: vec![],
            escalation: None,
        }],
        // 17 micro-dollars a call (10 prompt, 2 cached, 3 completion tokens).
        prices: vec![PriceEntry {
            model: "chat".into(),
            input: "1".into(),
            cached_input: Some("0.5".into()),
            output: "2".into(),
        }],
        tenants: vec![TenantConfig {
            name: "apps".into(),
            keys: vec!["app".into()],
            limits: Some(LimitsConfig { dollars_per_day: Some("0.00003".into()), ..LimitsConfig::default() }),
            key_limits: Some(LimitsConfig { requests_per_minute: Some(60), ..LimitsConfig::default() }),
        }],
        ..GatewayConfig::default()
    };
    let directory = tempfile::tempdir().expect("tempdir");
    let meta = Arc::new(MetaStore::open(&directory.path().join("meta.db")).expect("store"));
    let day = 86_400_000;
    let clock = ManualClock::new(100 * day + day / 2);
    let request = br#"{"model": "chat", "messages": []}"#;

    let mut gateway = Gateway::new(&config).expect("gateway").with_clock(Arc::new(clock.clone()));
    gateway.keep_ledger_in(meta.clone()).expect("ledger");
    assert_eq!(gateway.caller("app").tenant, "apps");
    gateway.chat("app", request).await.expect("17 of 30 micro-dollars");
    gateway.chat("app", request).await.expect("34: over, but the call began under");
    let refused = gateway.chat("app", request).await.err().expect("over the day's budget");
    let causeway_gateway::Error::Limited { message, retry_after_seconds } = &refused else { panic!("{refused}") };
    assert_eq!(*retry_after_seconds, 43_200, "until midnight UTC");
    assert!(message.contains("tenant `apps` has spent its $0.000030 for today"), "{message}");
    gateway.chat("anonymous", request).await.expect("the default tenant has no limits");
    let text = gateway.metrics().render();
    assert!(text.contains(r#"causeway_llm_limited_requests_total{tenant="apps",limit="dollars_per_day"} 1"#), "{text}");
    gateway.close();
    let by_key = meta.llm_usage(0, i64::MAX, &[UsageDimension::Tenant, UsageDimension::Key]).expect("usage");
    let rows: Vec<(Vec<String>, u64, u64)> =
        by_key.iter().map(|total| (total.group.clone(), total.calls, total.priced_picodollars)).collect();
    assert_eq!(
        rows,
        vec![
            (vec!["apps".to_string(), "app".into()], 2, 34_000_000),
            (vec!["default".to_string(), "anonymous".into()], 1, 17_000_000),
        ],
        "every call reached the store, refused ones excepted"
    );

    // A restart reads today's spend back.
    let mut restarted = Gateway::new(&config).expect("gateway").with_clock(Arc::new(clock.clone()));
    restarted.keep_ledger_in(meta.clone()).expect("ledger");
    assert!(matches!(restarted.chat("app", request).await, Err(causeway_gateway::Error::Limited { .. })));
    clock.set(101 * day);
    restarted.chat("app", request).await.expect("a new day, a new budget");
    restarted.close();
}

/// Output guardrails on a real stream from the stand-in upstream: a redaction reaches the
/// caller in place of the word, whole or streamed; a block ends the stream as OpenAI's content
/// filter does, before the word is sent; verdicts go to the ledger and `/metrics`.
#[tokio::test]
async fn output_guardrails_redact_and_block_streams() {
    use causeway_gateway::guardrails::{Action, GuardrailsConfig, RuleConfig, Stage};

    let (address, _) = upstream("vllm").await;
    let route = |name: &str| RouteConfig {
        name: name.into(),
        targets: vec![RouteTarget { provider: "vllm".into(), model: None, weight: None }],
        fallbacks: vec![],
        escalation: None,
    };
    let rule = |name: &str, action: Action, route: &str| RuleConfig {
        name: name.into(),
        detect: "words".into(),
        action,
        on: Some(vec![Stage::Output]),
        routes: Some(vec![route.into()]),
        words: vec!["vllm".into()],
        schema: None,
    };
    let config = GatewayConfig {
        providers: vec![provider("vllm", address)],
        routes: vec![route("chat"), route("strict")],
        guardrails: GuardrailsConfig {
            hold_back_bytes: Some(8),
            rules: vec![rule("hide", Action::Redact, "chat"), rule("refuse", Action::Block, "strict")],
        },
        ..GatewayConfig::default()
    };
    let gateway = Gateway::new(&config).expect("gateway");
    let ChatAnswer::Whole { body, .. } =
        gateway.chat("anonymous", br#"{"model": "chat", "messages": []}"#).await.expect("answer")
    else {
        panic!("a whole answer")
    };
    let answer: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(answer["choices"][0]["message"]["content"], "Hello from [REMOVED]");

    let deltas = |text: &str| -> String {
        text.lines()
            .filter_map(|line| line.strip_prefix("data: "))
            .filter_map(|data| serde_json::from_str::<Value>(data).ok())
            .filter_map(|chunk| chunk["choices"][0]["delta"]["content"].as_str().map(str::to_string))
            .collect()
    };
    let ChatAnswer::Stream(events) =
        gateway.chat("anonymous", br#"{"model": "chat", "messages": [], "stream": true}"#).await.expect("stream")
    else {
        panic!("a stream")
    };
    let text = collect(events).await;
    assert_eq!(deltas(&text), "Hello from [REMOVED]", "{text}");
    assert!(!text.contains("vllm") && text.ends_with("data: [DONE]\n\n"), "{text}");

    let ChatAnswer::Stream(events) =
        gateway.chat("anonymous", br#"{"model": "strict", "messages": [], "stream": true}"#).await.expect("stream")
    else {
        panic!("a stream")
    };
    let text = collect(events).await;
    assert!(!text.contains("vllm"), "{text}");
    assert!(text.contains(r#""finish_reason":"content_filter""#) && text.ends_with("data: [DONE]\n\n"), "{text}");
    let verdicts: Vec<(String, String)> = gateway
        .ledger()
        .iter()
        .flat_map(|record| {
            record.verdicts.iter().map(|verdict| (verdict.rule.clone(), verdict.action.as_str().to_string()))
        })
        .collect();
    assert_eq!(
        verdicts,
        vec![
            ("hide".to_string(), "redact".to_string()),
            ("hide".into(), "redact".into()),
            ("refuse".into(), "block".into())
        ]
    );
    let metrics = gateway.metrics().render();
    assert!(
        metrics.contains(r#"causeway_llm_guardrail_verdicts_total{rule="refuse",stage="output",action="block"} 1"#),
        "{metrics}"
    );
}

/// The answer cache in front of the stand-in: a deterministic request is answered once by the
/// upstream and then from the cache, whole or replayed as a stream; a streamed answer is
/// assembled and stored for a whole request; non-deterministic requests and other tenants'
/// are not served from it; hits cost nothing and count what they saved.
#[tokio::test]
async fn the_exact_cache_answers_repeats_whole_and_streamed() {
    use causeway_gateway::cache::CacheConfig;
    use causeway_gateway::config::TenantConfig;

    let (address, seen) = upstream("vllm").await;
    let config = GatewayConfig {
        providers: vec![provider("vllm", address)],
        routes: vec![RouteConfig {
            name: "chat".into(),
            targets: vec![RouteTarget { provider: "vllm".into(), model: None, weight: None }],
            fallbacks: vec![],
            escalation: None,
        }],
        prices: vec![PriceEntry { model: "chat".into(), input: "1".into(), cached_input: None, output: "2".into() }],
        tenants: vec![TenantConfig { name: "other".into(), keys: vec!["stranger".into()], ..TenantConfig::default() }],
        cache: Some(CacheConfig { exact: None, ttl: None, max_entries: None, routes: None, semantic: None }),
        ..GatewayConfig::default()
    };
    let gateway = Gateway::new(&config).expect("gateway");
    let calls = || seen.lock().expect("lock").len();
    let whole = |body: &Bytes| -> String {
        let answer: Value = serde_json::from_slice(body).expect("json");
        answer["choices"][0]["message"]["content"].as_str().unwrap_or_default().to_string()
    };
    let asked = br#"{"model": "chat", "temperature": 0, "messages": [{"role": "user", "content": "hi"}]}"#;
    for round in 0..2 {
        let ChatAnswer::Whole { body, .. } = gateway.chat("anonymous", asked).await.expect("answer") else {
            panic!("whole")
        };
        assert_eq!(whole(&body), "Hello from vllm");
        assert_eq!(calls(), 1, "round {round}: the upstream answered once");
    }
    let streamed =
        br#"{"model": "chat", "temperature": 0, "stream": true, "messages": [{"role": "user", "content": "hi"}]}"#;
    let ChatAnswer::Stream(events) = gateway.chat("anonymous", streamed).await.expect("stream") else {
        panic!("a stream")
    };
    let text = collect(events).await;
    assert!(text.contains(r#""content":"Hello from vllm""#) && text.ends_with("data: [DONE]\n\n"), "{text}");
    assert!(!text.contains("prompt_tokens"), "the usage chunk only for callers who ask: {text}");
    assert_eq!(calls(), 1, "replayed from the cache");
    let last = gateway.ledger().last().cloned().expect("a record");
    assert_eq!((last.provider.as_str(), last.cost), ("cache", Cost::Priced(0)));

    gateway.chat("stranger", asked).await.expect("answer");
    assert_eq!(calls(), 2, "another tenant's cache");
    gateway
        .chat("anonymous", br#"{"model": "chat", "messages": [{"role": "user", "content": "hi"}]}"#)
        .await
        .expect("answer");
    assert_eq!(calls(), 3, "the default temperature is not deterministic");

    // A streamed answer, assembled, answers the same request whole.
    let fresh =
        br#"{"model": "chat", "temperature": 0, "stream": true, "messages": [{"role": "user", "content": "hello"}]}"#;
    let ChatAnswer::Stream(events) = gateway.chat("anonymous", fresh).await.expect("stream") else {
        panic!("a stream")
    };
    collect(events).await;
    assert_eq!(calls(), 4);
    let again = br#"{"model": "chat", "temperature": 0, "messages": [{"role": "user", "content": "hello"}]}"#;
    let ChatAnswer::Whole { body, .. } = gateway.chat("anonymous", again).await.expect("answer") else {
        panic!("whole")
    };
    assert_eq!((whole(&body), calls()), ("Hello from vllm".to_string(), 4));

    let metrics = gateway.metrics().render();
    assert!(
        metrics.contains(r#"causeway_llm_cache_lookups_total{route="chat",kind="exact",outcome="hit"} 3"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"causeway_llm_cache_lookups_total{route="chat",kind="exact",outcome="miss"} 3"#),
        "{metrics}"
    );
    // Each hit saved 10 prompt (2 cached, priced as input) + 3 completion tokens: 18 micro-dollars.
    let saved: f64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix(r#"causeway_llm_cache_saved_dollars_total{route="chat"} "#))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no savings in\n{metrics}"));
    assert!((saved - 3.0 * 0.000_018).abs() < 1e-12, "{saved}");
}

/// The cost router between two stand-ins: the small model answers what no rule sends on; a
/// keyword or a long prompt goes to the large one directly; an answer phrase sends it on after
/// the small one answered (both calls recorded); decisions, savings and the discarded small
/// answer's cost are metrics.
#[tokio::test]
async fn the_cost_router_escalates_on_its_rules_and_counts_what_it_saved() {
    use causeway_gateway::router::EscalationConfig;

    let (small, small_seen) = upstream("small").await;
    let (large, large_seen) = upstream("large").await;
    let escalating = |name: &str, escalation: EscalationConfig| RouteConfig {
        name: name.into(),
        targets: vec![RouteTarget { provider: "small".into(), model: Some("tiny".into()), weight: None }],
        fallbacks: vec![],
        escalation: Some(escalation),
    };
    let price = |model: &str, input: &str, output: &str| PriceEntry {
        model: model.into(),
        input: input.into(),
        cached_input: None,
        output: output.into(),
    };
    let config = GatewayConfig {
        providers: vec![provider("small", small), provider("large", large)],
        routes: vec![
            escalating(
                "smart",
                EscalationConfig {
                    provider: "large".into(),
                    model: Some("big".into()),
                    prompt_longer_than: Some(40),
                    keywords: vec!["contract".into()],
                    ..EscalationConfig::default()
                },
            ),
            escalating(
                "picky",
                EscalationConfig {
                    provider: "large".into(),
                    model: Some("big".into()),
                    answer_phrases: vec!["FROM SMALL".into()],
                    ..EscalationConfig::default()
                },
            ),
        ],
        prices: vec![price("tiny", "0.1", "0.1"), price("big", "1", "2")],
        ..GatewayConfig::default()
    };
    let gateway = Gateway::new(&config).expect("gateway");
    let content = |answer: ChatAnswer| -> String {
        let ChatAnswer::Whole { body, .. } = answer else { panic!("whole") };
        let answer: Value = serde_json::from_slice(&body).expect("json");
        answer["choices"][0]["message"]["content"].as_str().unwrap_or_default().to_string()
    };
    let ask = |route: &str, text: &str| {
        json!({"model": route, "messages": [{"role": "user", "content": text}]}).to_string().into_bytes()
    };
    let counts = || (small_seen.lock().expect("lock").len(), large_seen.lock().expect("lock").len());

    assert_eq!(content(gateway.chat("anonymous", &ask("smart", "hi")).await.expect("answer")), "Hello from small");
    assert_eq!(counts(), (1, 0));
    assert_eq!(large_seen.lock().expect("lock").len(), 0);
    let answer = gateway.chat("anonymous", &ask("smart", "Please review this Contract.")).await.expect("answer");
    assert_eq!(content(answer), "Hello from large");
    assert_eq!(counts(), (1, 1), "a keyword goes to the large model first");
    assert_eq!(large_seen.lock().expect("lock")[0]["model"], "big");
    gateway.chat("anonymous", &ask("smart", &"long ".repeat(10))).await.expect("answer");
    assert_eq!(counts(), (1, 2), "so does a long prompt");
    let answer = gateway.chat("anonymous", &ask("picky", "hi")).await.expect("answer");
    assert_eq!(content(answer), "Hello from large", "the small answer held the phrase");
    assert_eq!(counts(), (2, 3), "both were asked");
    let providers: Vec<String> = gateway.ledger().iter().map(|record| record.provider.clone()).collect();
    assert_eq!(providers, ["small", "large", "large", "small", "large"]);

    let metrics = gateway.metrics().render();
    for line in [
        r#"causeway_llm_router_decisions_total{route="smart",tier="small",reason="answered"} 1"#,
        r#"causeway_llm_router_decisions_total{route="smart",tier="large",reason="keyword"} 1"#,
        r#"causeway_llm_router_decisions_total{route="smart",tier="large",reason="prompt_length"} 1"#,
        r#"causeway_llm_router_decisions_total{route="picky",tier="large",reason="answer_phrase"} 1"#,
    ] {
        assert!(metrics.contains(line), "no `{line}` in\n{metrics}");
    }
    let dollars = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{name}{{route=")).and_then(|rest| rest.split_once("} ")))
            .and_then(|(_, value)| value.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
    };
    // 12 prompt and 3 completion tokens: 18 micro-dollars on `big`, 1.5 on `tiny`.
    assert!((dollars("causeway_llm_router_saved_dollars_total") - 0.000_016_5).abs() < 1e-12);
    assert!((dollars("causeway_llm_router_overhead_dollars_total") - 0.000_001_5).abs() < 1e-12);
}

/// Every call is a span: in the store with OpenTelemetry's GenAI attributes, and sent over
/// OTLP/HTTP to a receiver (an axum server in this test recording what it is sent) when the
/// ledger's writer flushes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_spans_in_the_store_and_at_an_otlp_receiver() {
    use causeway_gateway::traces::TracesConfig;
    use causeway_store::MetaStore;

    let (address, _) = upstream("vllm").await;
    let received: Seen = Arc::default();
    let receiver = Router::new()
        .route(
            "/v1/traces",
            post(|State(seen): State<Seen>, body: Bytes| async move {
                seen.lock().expect("lock").push(serde_json::from_slice(&body).expect("OTLP JSON"));
                "{}"
            }),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let receiver_address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, receiver).await });
    let config = GatewayConfig {
        providers: vec![provider("vllm", address)],
        routes: vec![RouteConfig {
            name: "chat".into(),
            targets: vec![RouteTarget { provider: "vllm".into(), model: Some("qwen".into()), weight: None }],
            fallbacks: vec![],
            escalation: None,
        }],
        traces: Some(TracesConfig {
            otlp_endpoint: Some(format!("http://{receiver_address}")),
            service_name: Some("gateway-under-test".into()),
        }),
        ..GatewayConfig::default()
    };
    let directory = tempfile::tempdir().expect("tempdir");
    let meta = Arc::new(MetaStore::open(&directory.path().join("meta.db")).expect("store"));
    let mut gateway = Gateway::new(&config).expect("gateway");
    gateway.keep_ledger_in(meta.clone()).expect("ledger");
    let gateway = Arc::new(gateway);
    gateway
        .chat("anonymous", br#"{"model": "chat", "temperature": 0.2, "max_tokens": 9, "messages": []}"#)
        .await
        .expect("answer");
    let ChatAnswer::Stream(events) =
        gateway.chat("anonymous", br#"{"model": "chat", "messages": [], "stream": true}"#).await.expect("stream")
    else {
        panic!("a stream")
    };
    collect(events).await;
    let closing = gateway.clone();
    tokio::task::spawn_blocking(move || closing.close()).await.expect("closed");

    let stored = meta.llm_calls(0, 10).expect("calls");
    assert_eq!(stored.len(), 2);
    let whole: Value = serde_json::from_str(&stored[1].attributes_json).expect("attributes");
    for (key, expected) in [
        ("gen_ai.operation.name", json!("chat")),
        ("gen_ai.provider.name", json!("vllm")),
        ("gen_ai.request.model", json!("chat")),
        ("gen_ai.response.model", json!("qwen")),
        ("gen_ai.usage.input_tokens", json!(12)),
        ("gen_ai.usage.output_tokens", json!(3)),
        ("gen_ai.response.finish_reasons", json!(["stop"])),
        ("gen_ai.request.temperature", json!(0.2)),
        ("gen_ai.request.max_tokens", json!(9)),
        ("causeway.tenant", json!("default")),
    ] {
        assert_eq!(whole[key], expected, "{key} in {whole}");
    }
    let streamed: Value = serde_json::from_str(&stored[0].attributes_json).expect("attributes");
    assert_eq!(streamed["gen_ai.response.finish_reasons"], json!(["stop"]), "{streamed}");
    assert_ne!(stored[0].trace_id, stored[1].trace_id);

    let requests = received.lock().expect("lock").clone();
    let spans: Vec<&Value> = requests
        .iter()
        .flat_map(|request| request["resourceSpans"][0]["scopeSpans"][0]["spans"].as_array().into_iter().flatten())
        .collect();
    assert_eq!(spans.len(), 2, "{requests:?}");
    assert_eq!(
        requests[0]["resourceSpans"][0]["resource"]["attributes"][0]["value"]["stringValue"],
        "gateway-under-test"
    );
    let ids: Vec<&str> = spans.iter().filter_map(|span| span["traceId"].as_str()).collect();
    assert!(ids.contains(&stored[0].trace_id.as_str()) && ids.contains(&stored[1].trace_id.as_str()));
    let attributes = spans[0]["attributes"].as_array().expect("attributes");
    assert!(
        attributes.contains(&json!({"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}})),
        "{attributes:?}"
    );
}
