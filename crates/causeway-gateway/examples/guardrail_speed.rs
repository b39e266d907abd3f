//! How long the guardrails take per 1,000 tokens: every built-in detector plus a 50-word banned
//! list on a request's text, and the same rules on a streamed answer fed in 4-byte deltas
//! (the hold-back's rescans included). Prints medians and p99s over many runs.
//!
//! `cargo run --release -p causeway-gateway --example guardrail_speed [RUNS]`
//!
//! A token is taken as four bytes of English (OpenAI's rule of thumb); the text is 4,000 bytes
//! of prose with an email, a phone number and a card number in it.
#![allow(clippy::expect_used, clippy::unwrap_used, reason = "a benchmark fails loudly")]

use std::time::Instant;

use causeway_gateway::guardrails::{Action, Detector, Guardrails, GuardrailsConfig, RuleConfig, Stage};
use serde_json::json;

fn rules() -> std::sync::Arc<Guardrails> {
    let mut rules: Vec<RuleConfig> = Detector::ALL
        .iter()
        .map(|detector| RuleConfig {
            name: detector.as_str().to_string(),
            detect: detector.as_str().to_string(),
            action: if *detector == Detector::PromptInjection { Action::Flag } else { Action::Redact },
            on: Some(vec![Stage::Input, Stage::Output]),
            routes: None,
            words: Vec::new(),
            schema: None,
        })
        .collect();
    rules.push(RuleConfig {
        name: "banned".into(),
        detect: "words".into(),
        action: Action::Redact,
        on: None,
        routes: None,
        words: (0..50).map(|index| format!("forbidden{index}")).collect(),
        schema: None,
    });
    std::sync::Arc::new(Guardrails::new(&GuardrailsConfig { hold_back_bytes: None, rules }).expect("rules"))
}

fn text() -> String {
    let sentence = "The quarterly report shows steady growth in every region, and the team expects the \
                    new pipeline to cut latency further next year. ";
    let mut text = String::new();
    while text.len() < 4_000 {
        text.push_str(sentence);
        if text.len() > 1_000 && !text.contains('@') {
            text.push_str("Write to jane.doe@example.com or call +1 (415) 555-2671. ");
        }
        if text.len() > 2_500 && !text.contains("4242") {
            text.push_str("The card 4242 4242 4242 4242 was declined. ");
        }
    }
    text.truncate(4_000);
    text
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    let runs: usize = std::env::args().nth(1).and_then(|runs| runs.parse().ok()).unwrap_or(2_000);
    let rules = rules();
    let text = text();
    let tokens = text.len() as f64 / 4.0;
    let mut input = Vec::with_capacity(runs);
    let mut stream = Vec::with_capacity(runs);
    for _ in 0..runs {
        let mut request = json!({"messages": [{"role": "user", "content": text}]});
        let started = Instant::now();
        let verdicts = rules.check_request("chat", &mut request).expect("not blocked");
        input.push(started.elapsed().as_secs_f64() * 1e3 * 1_000.0 / tokens);
        assert!(!verdicts.is_empty());

        let mut guard = Guardrails::stream(&rules, "chat").expect("output rules");
        let started = Instant::now();
        let mut out = 0;
        for piece in text.as_bytes().chunks(4) {
            out += guard.delta(0, std::str::from_utf8(piece).expect("ascii")).expect("not blocked").len();
        }
        out += guard.finish(0).expect("not blocked").len();
        stream.push(started.elapsed().as_secs_f64() * 1e3 * 1_000.0 / tokens);
        assert!(out > 3_000);
    }
    // Each detector alone over the whole text: where the time goes.
    let mut alone = Vec::new();
    for detector in Detector::ALL {
        let started = Instant::now();
        for _ in 0..200 {
            std::hint::black_box(detector.find(std::hint::black_box(&text)));
        }
        alone.push(format!("{} {:.1} µs", detector.as_str(), started.elapsed().as_secs_f64() * 1e6 / 200.0));
    }
    println!("each detector over the 4,000 bytes: {}", alone.join(", "));
    for (name, times) in [("request (whole text)", &mut input), ("stream (4-byte deltas)", &mut stream)] {
        times.sort_by(f64::total_cmp);
        println!(
            "guardrails, {name}: median {:.3} ms, p99 {:.3} ms per 1,000 tokens ({runs} runs, {} rules)",
            quantile(times, 0.5),
            quantile(times, 0.99),
            Detector::ALL.len() + 1
        );
    }
}
