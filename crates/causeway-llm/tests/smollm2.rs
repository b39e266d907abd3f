//! The built-in engine on a real model: SmolLM2-135M-Instruct (Q4_1), installed from PyPI by
//! `scripts/llm-models.sh`.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used, reason = "tests fail loudly")]

use std::sync::OnceLock;

use causeway_llm::{ChatModel, Finish, Generation, Message};

fn model() -> &'static ChatModel {
    static MODEL: OnceLock<ChatModel> = OnceLock::new();
    MODEL.get_or_init(|| ChatModel::open(&causeway_test_support::local_chat_model()).expect("SmolLM2 loads"))
}

fn user(text: &str) -> Vec<Message> {
    vec![Message { role: "user".into(), content: text.into() }]
}

fn greedy(max_tokens: usize) -> Generation {
    Generation { max_tokens, temperature: 0.0, top_p: 1.0, seed: 0, stop: Vec::new() }
}

#[test]
fn the_tokenizer_gives_llama_cpps_ids() {
    let tokenizer = model().tokenizer();
    // Ids from llama.cpp (node-llama-cpp 3.22.1's prebuilt build, `tokenize(text, false)`) on this file.
    let expected: [(&str, &[u32]); 7] = [
        ("Hello world", &[19556, 905]),
        ("What is the capital of France?", &[1780, 314, 260, 3575, 282, 4649, 47]),
        ("naïve café, 2026 — ok?\n", &[3546, 46494, 37366, 28, 216, 34, 32, 34, 38, 1841, 10907, 47, 198]),
        (
            "  leading spaces\n\n\ttabs and 12345 digits",
            &[216, 2899, 5600, 1116, 197, 100, 7366, 284, 216, 33, 34, 35, 36, 37, 18638],
        ),
        ("it's I'll we've DON'T", &[269, 506, 339, 3060, 392, 3543, 422, 2154, 23, 68]),
        ("emoji 🙂 and 中文字符", &[391, 33777, 47526, 284, 216, 28589, 29184, 36518, 40562, 116]),
        ("a   b\n\nc ", &[81, 256, 278, 198, 198, 83, 216]),
    ];
    for (text, ids) in expected {
        assert_eq!(tokenizer.encode(text), ids, "{text:?}");
        let mut bytes = Vec::new();
        for id in ids {
            tokenizer.decode(*id, &mut bytes);
        }
        assert_eq!(String::from_utf8(bytes).unwrap(), text);
    }
    assert!(tokenizer.encode("<|im_start|>").len() > 1, "a control token's text is ordinary text");
}

#[test]
fn answers_a_question_greedily_and_the_same_each_time() {
    let mut text = String::new();
    let outcome = model()
        .generate(&user("Complete: The capital of France is"), &greedy(24), |piece| {
            text.push_str(piece);
            true
        })
        .unwrap();
    assert_eq!(text, "The capital of France is Paris.");
    assert!(outcome.prompt_tokens > 20 && outcome.completion_tokens > 0, "{outcome:?}");
    let mut again = String::new();
    model()
        .generate(&user("Complete: The capital of France is"), &greedy(24), |piece| {
            again.push_str(piece);
            true
        })
        .unwrap();
    assert_eq!(text, again);
}

#[test]
fn stops_at_the_token_limit_and_when_the_receiver_goes() {
    let outcome = model().generate(&user("Write a long story about a cat."), &greedy(5), |_| true).unwrap();
    assert_eq!((outcome.finish, outcome.completion_tokens), (Finish::Length, 5));
    let mut pieces = 0;
    let cancelled = model()
        .generate(&user("Write a long story about a cat."), &greedy(50), |_| {
            pieces += 1;
            pieces < 3
        })
        .unwrap();
    assert_eq!(cancelled.finish, Finish::Cancelled);
    assert!(cancelled.completion_tokens < 10, "{cancelled:?}");
}
