//! The built-in engine's speed on one thread, for `bench/llm/local-model.sh`:
//! `generation_speed MODEL.gguf RUNS TOKENS` prints the rendered prompt's token ids, then one JSON
//! line per run with the time to the first token and the tokens per second after it.
#![allow(clippy::expect_used, clippy::unwrap_used, reason = "a benchmark")]

use std::time::Instant;

use causeway_llm::{ChatModel, Generation, Message};

fn main() {
    let arguments: Vec<String> = std::env::args().collect();
    let model = ChatModel::open(std::path::Path::new(&arguments[1])).expect("the model loads");
    let runs: usize = arguments[2].parse().expect("RUNS");
    let tokens: usize = arguments[3].parse().expect("TOKENS");
    let messages = vec![Message { role: "user".into(), content: "Write a long story about a cat.".into() }];
    let prompt = model.render(&messages);
    println!("{prompt:?}");
    let generation = Generation { max_tokens: tokens, temperature: 0.0, top_p: 1.0, seed: 0, stop: Vec::new() };
    for _ in 0..runs {
        let started = Instant::now();
        let mut first = None;
        let outcome = model
            .generate_from(&prompt, &generation, |_| {
                first.get_or_insert_with(|| started.elapsed());
                true
            })
            .expect("it answers");
        let total = started.elapsed();
        let first = first.unwrap_or(total);
        let after = outcome.completion_tokens.saturating_sub(1) as f64 / (total - first).as_secs_f64();
        println!(
            "{{\"first_token_ms\": {:.1}, \"tokens_per_second\": {after:.2}, \"tokens\": {}}}",
            first.as_secs_f64() * 1000.0,
            outcome.completion_tokens
        );
    }
}
