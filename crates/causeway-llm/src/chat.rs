//! A chat model: a GGUF file's llama weights, tokenizer and ChatML template together, and
//! generation — sampling (greedy at temperature 0, else temperature and nucleus with a seeded
//! generator), stop sequences held back until they cannot match, text streamed as whole UTF-8.

use crate::error::{Error, Result};
use crate::gguf::{Gguf, Value};
use crate::llama::{Llama, softmax};
use crate::tokenizer::Tokenizer;

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// `system`, `user`, `assistant`, `tool`…
    pub role: String,
    /// Its text.
    pub content: String,
}

/// How to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// The most tokens to generate.
    pub max_tokens: usize,
    /// 0 for greedy decoding.
    pub temperature: f32,
    /// Nucleus sampling's probability mass (1 keeps every token).
    pub top_p: f32,
    /// The seed of the sampler's generator.
    pub seed: u64,
    /// Texts that end the answer (not included in it).
    pub stop: Vec<String>,
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// The model ended its turn or a stop sequence appeared.
    Stop,
    /// `max_tokens` or the context was reached.
    Length,
    /// The receiver of the text went away.
    Cancelled,
}

impl Finish {
    /// OpenAI's `finish_reason`.
    pub fn as_openai(self) -> &'static str {
        match self {
            Self::Stop | Self::Cancelled => "stop",
            Self::Length => "length",
        }
    }
}

/// What a generation used and why it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Tokens of the rendered conversation.
    pub prompt_tokens: usize,
    /// Tokens generated.
    pub completion_tokens: usize,
    /// Why it ended.
    pub finish: Finish,
    /// Each generated token (the end token included) and its log-probability under the
    /// model's distribution (before temperature): what OpenAI's `logprobs` reports.
    pub tokens: Vec<(u32, f32)>,
}

/// A loaded chat model.
#[derive(Debug)]
pub struct ChatModel {
    llama: Llama,
    tokenizer: Tokenizer,
    turn_start: u32,
    turn_end: u32,
    /// Tokens that end the model's turn.
    end_tokens: Vec<u32>,
    default_system: Option<String>,
}

impl ChatModel {
    /// Reads the model in the GGUF file at `path`.
    pub fn open(path: &std::path::Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io { path: path.display().to_string(), source })?;
        Self::from_bytes(&bytes)
    }

    /// The model in a GGUF file's bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let gguf = Gguf::parse(bytes)?;
        let tokenizer = Tokenizer::from_gguf(&gguf)?;
        let template = gguf.metadata.get("tokenizer.chat_template").and_then(Value::as_str).unwrap_or("");
        let (Some(turn_start), Some(turn_end)) = (tokenizer.token("<|im_start|>"), tokenizer.token("<|im_end|>"))
        else {
            return Err(Error::Unsupported(
                "the model has no ChatML tokens (<|im_start|>, <|im_end|>): only ChatML chat models are built in"
                    .into(),
            ));
        };
        let mut end_tokens = vec![turn_end];
        if let Some(eos) = gguf.metadata.get("tokenizer.ggml.eos_token_id").and_then(Value::as_u64) {
            end_tokens.push(u32::try_from(eos).unwrap_or(turn_end));
        }
        if let Some(end_of_text) = tokenizer.token("<|endoftext|>") {
            end_tokens.push(end_of_text);
        }
        let llama = Llama::load(&gguf, bytes)?;
        if llama.shape().vocabulary != tokenizer.vocabulary_size() {
            return Err(Error::Format(format!(
                "the embeddings have {} rows but the vocabulary {} tokens",
                llama.shape().vocabulary,
                tokenizer.vocabulary_size()
            )));
        }
        Ok(Self { llama, tokenizer, turn_start, turn_end, end_tokens, default_system: default_system(template) })
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The positions one conversation may use.
    pub fn context(&self) -> usize {
        self.llama.shape().context
    }

    /// `messages` rendered as ChatML tokens, ending with the assistant's turn opened.
    pub fn render(&self, messages: &[Message]) -> Vec<u32> {
        let mut tokens = Vec::new();
        let mut turn = |role: &str, content: &str| {
            tokens.push(self.turn_start);
            tokens.extend(self.tokenizer.encode(&format!("{role}\n{content}")));
            tokens.push(self.turn_end);
            tokens.extend(self.tokenizer.encode("\n"));
        };
        if let Some(system) = &self.default_system
            && messages.first().is_none_or(|first| first.role != "system")
        {
            turn("system", system);
        }
        for message in messages {
            turn(&message.role, &message.content);
        }
        tokens.push(self.turn_start);
        tokens.extend(self.tokenizer.encode("assistant\n"));
        tokens
    }

    /// Answers `messages`, giving each piece of text to `emit` as it is decided (whole UTF-8
    /// characters; a stop sequence's prefix is held back until it cannot be one). `emit`
    /// returning `false` cancels.
    pub fn generate(
        &self,
        messages: &[Message],
        generation: &Generation,
        emit: impl FnMut(&str) -> bool,
    ) -> Result<Outcome> {
        self.generate_from(&self.render(messages), generation, emit)
    }

    /// [`Self::generate`] from a prompt already rendered by [`Self::render`].
    pub fn generate_from(
        &self,
        prompt: &[u32],
        generation: &Generation,
        mut emit: impl FnMut(&str) -> bool,
    ) -> Result<Outcome> {
        let prompt_tokens = prompt.len();
        if prompt_tokens >= self.context() {
            return Err(Error::Invalid(format!(
                "the conversation is {prompt_tokens} tokens; the model's context holds {}",
                self.context()
            )));
        }
        let mut session = self.llama.session();
        let mut logits = self.llama.forward(&mut session, prompt)?;
        let mut sampler = Sampler::new(generation);
        let mut text = TextOut::new(&generation.stop);
        let mut completion_tokens = 0;
        let mut tokens = Vec::new();
        let finish = loop {
            if completion_tokens >= generation.max_tokens || session.position() >= self.context() {
                break Finish::Length;
            }
            let normalizer = log_sum_exp(&logits);
            let token = if sampler.is_greedy() {
                sampler.sample(&mut logits)
            } else {
                // Sampling scales the logits: keep them for the log-probability.
                let mut scaled = logits.clone();
                sampler.sample(&mut scaled)
            };
            tokens.push((token, logits.get(token as usize).map_or(f32::NEG_INFINITY, |logit| logit - normalizer)));
            completion_tokens += 1;
            if self.end_tokens.contains(&token) {
                break Finish::Stop;
            }
            let mut bytes = Vec::new();
            self.tokenizer.decode(token, &mut bytes);
            match text.push(&bytes) {
                Pushed::Text(piece) if !piece.is_empty() && !emit(&piece) => break Finish::Cancelled,
                Pushed::Stopped(piece) => {
                    if !piece.is_empty() {
                        emit(&piece);
                    }
                    return Ok(Outcome { prompt_tokens, completion_tokens, finish: Finish::Stop, tokens });
                }
                _ => {}
            }
            logits = self.llama.forward(&mut session, &[token])?;
        };
        let rest = text.finish();
        if !rest.is_empty() && finish != Finish::Cancelled {
            emit(&rest);
        }
        Ok(Outcome { prompt_tokens, completion_tokens, finish, tokens })
    }

    /// A token's text (lossy where a token is part of a UTF-8 character).
    pub fn token_text(&self, token: u32) -> String {
        let mut bytes = Vec::new();
        self.tokenizer.decode(token, &mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// `ln Σ exp(logit)`, computed stably.
fn log_sum_exp(logits: &[f32]) -> f32 {
    let largest = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !largest.is_finite() {
        return largest;
    }
    largest + logits.iter().map(|logit| (logit - largest).exp()).sum::<f32>().ln()
}

/// The system line a ChatML template adds when the conversation has none (SmolLM2's
/// "You are a helpful AI assistant named SmolLM…"), read from the template itself.
fn default_system(template: &str) -> Option<String> {
    if !template.contains("!= 'system'") {
        return None;
    }
    let start = template.find("<|im_start|>system\n")? + "<|im_start|>system\n".len();
    let length = template[start..].find("<|im_end|>")?;
    Some(template[start..start + length].to_string())
}

/// Picks tokens from logits.
struct Sampler {
    temperature: f32,
    top_p: f32,
    state: u64,
}

impl Sampler {
    fn new(generation: &Generation) -> Self {
        Self { temperature: generation.temperature, top_p: generation.top_p, state: generation.seed }
    }

    /// SplitMix64, as a float in [0, 1).
    fn next_unit(&mut self) -> f32 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 40) as f32 / (1u64 << 24) as f32
    }

    fn is_greedy(&self) -> bool {
        self.temperature <= 0.0 || !self.temperature.is_finite()
    }

    fn sample(&mut self, logits: &mut [f32]) -> u32 {
        if self.temperature <= 0.0 || !self.temperature.is_finite() {
            return argmax(logits);
        }
        for logit in logits.iter_mut() {
            *logit /= self.temperature;
        }
        softmax(logits);
        let mut ranked: Vec<(u32, f32)> =
            logits.iter().enumerate().map(|(id, probability)| (id as u32, *probability)).collect();
        ranked.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut kept = 0.0;
        let mut cut = ranked.len();
        for (index, (_, probability)) in ranked.iter().enumerate() {
            kept += probability;
            if kept >= self.top_p {
                cut = index + 1;
                break;
            }
        }
        let ranked = &ranked[..cut];
        let total: f32 = ranked.iter().map(|(_, probability)| probability).sum();
        let mut target = self.next_unit() * total;
        for (id, probability) in ranked {
            target -= probability;
            if target <= 0.0 {
                return *id;
            }
        }
        ranked.last().map_or(0, |(id, _)| *id)
    }
}

fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (id, logit) in logits.iter().enumerate() {
        if *logit > logits[best] {
            best = id;
        }
    }
    best as u32
}

enum Pushed {
    Text(String),
    Stopped(String),
}

/// Turns token bytes into text: whole UTF-8 characters only, stop sequences cut off.
struct TextOut<'a> {
    stop: &'a [String],
    pending_bytes: Vec<u8>,
    held: String,
}

impl<'a> TextOut<'a> {
    fn new(stop: &'a [String]) -> Self {
        Self { stop, pending_bytes: Vec::new(), held: String::new() }
    }

    fn push(&mut self, bytes: &[u8]) -> Pushed {
        self.pending_bytes.extend_from_slice(bytes);
        let valid = match std::str::from_utf8(&self.pending_bytes) {
            Ok(text) => text.len(),
            Err(error) if error.error_len().is_none() => error.valid_up_to(),
            // A byte that can never become a character: replaced, as a lossy decoder does.
            Err(_) => self.pending_bytes.len(),
        };
        let decoded: Vec<u8> = self.pending_bytes.drain(..valid).collect();
        self.held.push_str(&String::from_utf8_lossy(&decoded));
        for stop in self.stop.iter().filter(|stop| !stop.is_empty()) {
            if let Some(at) = self.held.find(stop.as_str()) {
                return Pushed::Stopped(self.held[..at].to_string());
            }
        }
        // Keep back the longest tail that begins some stop sequence.
        let mut keep = 0;
        for stop in self.stop {
            for (at, _) in self.held.char_indices() {
                if stop.starts_with(&self.held[at..]) {
                    keep = keep.max(self.held.len() - at);
                    break;
                }
            }
        }
        let release = self.held.len() - keep;
        let text = self.held[..release].to_string();
        self.held.drain(..release);
        Pushed::Text(text)
    }

    fn finish(&mut self) -> String {
        let mut rest = std::mem::take(&mut self.held);
        rest.push_str(&String::from_utf8_lossy(&self.pending_bytes));
        rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(stop: &[&str], pieces: &[&[u8]]) -> (Vec<String>, Option<String>, String) {
        let stop: Vec<String> = stop.iter().map(|s| s.to_string()).collect();
        let mut out = TextOut::new(&stop);
        let mut emitted = Vec::new();
        for piece in pieces {
            match out.push(piece) {
                Pushed::Text(text) => emitted.push(text),
                Pushed::Stopped(text) => return (emitted, Some(text), String::new()),
            }
        }
        let rest = out.finish();
        (emitted, None, rest)
    }

    #[test]
    fn characters_split_across_tokens_come_out_whole() {
        let (emitted, stopped, rest) = texts(&[], &[b"caf", &[0xc3], &[0xa9], b"!"]);
        assert_eq!(emitted, ["caf", "", "é", "!"]);
        assert_eq!((stopped, rest), (None, String::new()));
    }

    #[test]
    fn stop_sequences_are_held_back_and_cut_off() {
        let (emitted, stopped, _) = texts(&["\n\nUser:"], &[b"Paris.", b"\n", b"\nUs", b"er: hi"]);
        assert_eq!(emitted, ["Paris.", "", ""]);
        assert_eq!(stopped.as_deref(), Some(""));
        let (emitted, stopped, rest) = texts(&["STOP"], &[b"a S", b"T", b"x"]);
        assert_eq!(emitted, ["a ", "", "STx"]);
        assert_eq!((stopped, rest), (None, String::new()));
    }

    #[test]
    fn sampling_is_greedy_at_zero_and_reproducible_with_a_seed() {
        let generation = |temperature, seed| Generation { max_tokens: 1, temperature, top_p: 1.0, seed, stop: vec![] };
        let logits = vec![0.1, 2.0, 1.9, -3.0];
        assert_eq!(Sampler::new(&generation(0.0, 1)).sample(&mut logits.clone()), 1);
        let draws = |seed| {
            let mut sampler = Sampler::new(&generation(1.0, seed));
            (0..32).map(|_| sampler.sample(&mut logits.clone())).collect::<Vec<_>>()
        };
        assert_eq!(draws(7), draws(7));
        assert_ne!(draws(7), draws(8));
        assert!(draws(7).contains(&2), "a near-tie is sometimes chosen: {:?}", draws(7));
        let mut nucleus = Sampler::new(&Generation { top_p: 0.4, ..generation(1.0, 3) });
        assert!((0..32).all(|_| nucleus.sample(&mut logits.clone()) == 1), "top_p 0.4 keeps only the best (p = 0.49)");
    }

    #[test]
    fn the_default_system_line_comes_from_the_template() {
        let template = "{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are SmolLM<|im_end|>\n' }}";
        assert_eq!(default_system(template).as_deref(), Some("You are SmolLM"));
        assert_eq!(default_system("{{ messages }}"), None);
    }
}
