//! The llama architecture's forward pass on the CPU (SmolLM2, Llama, and others GGUF calls
//! `llama`): token embeddings, per block RMS norm, grouped-query attention with rotary positions
//! (ggml's adjacent-pair rotation, which GGUF's converted weights expect), a SwiGLU feed-forward,
//! then the output projection (tied to the embeddings when the file has no `output.weight`).
//!
//! It runs on the calling thread only: how many threads serve a model is the caller's choice
//! (one generation per thread), never a pool that contends with the rest of the machine.

use crate::error::{Error, Result};
use crate::gguf::{Gguf, TensorType};
use crate::quant::{Matrix, Quantized};

/// The shape of a llama model, from its metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaShape {
    /// Transformer blocks.
    pub blocks: usize,
    /// Width of the residual stream.
    pub width: usize,
    /// Width of the feed-forward layer.
    pub feed_forward: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (fewer than `heads` for grouped-query attention).
    pub kv_heads: usize,
    /// Positions the model was trained for.
    pub context: usize,
    /// RMS norm epsilon.
    pub epsilon: f32,
    /// Rotary base frequency.
    pub rope_base: f32,
    /// Tokens in the vocabulary.
    pub vocabulary: usize,
}

impl LlamaShape {
    fn head_width(&self) -> usize {
        self.width / self.heads
    }

    fn kv_width(&self) -> usize {
        self.head_width() * self.kv_heads
    }
}

struct Block {
    attention_norm: Vec<f32>,
    query: Matrix,
    key: Matrix,
    value: Matrix,
    attention_output: Matrix,
    feed_forward_norm: Vec<f32>,
    gate: Matrix,
    up: Matrix,
    down: Matrix,
}

/// A loaded llama model (its weights only; a conversation's state is a [`Session`]).
pub struct Llama {
    shape: LlamaShape,
    embeddings: Matrix,
    blocks: Vec<Block>,
    output_norm: Vec<f32>,
    /// `None` when tied to the embeddings.
    output: Option<Matrix>,
    /// The rotary frequencies, one per pair of a head's values.
    frequencies: Vec<f32>,
}

impl std::fmt::Debug for Llama {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Llama").field("shape", &self.shape).finish_non_exhaustive()
    }
}

/// One conversation's keys and values so far (the KV cache).
#[derive(Debug, Clone)]
pub struct Session {
    keys: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
    position: usize,
}

impl Session {
    /// Positions consumed so far.
    pub fn position(&self) -> usize {
        self.position
    }
}

impl Llama {
    /// The model in `gguf` over `bytes` (the whole file).
    pub fn load(gguf: &Gguf, bytes: &[u8]) -> Result<Self> {
        let architecture = gguf.require_str("general.architecture")?;
        if architecture != "llama" {
            return Err(Error::Unsupported(format!(
                "architecture `{architecture}` (the built-in engine runs `llama`: SmolLM2, Llama, TinyLlama)"
            )));
        }
        let key = |name: &str| format!("llama.{name}");
        let heads = gguf.require_usize(&key("attention.head_count"))?;
        let shape = LlamaShape {
            blocks: gguf.require_usize(&key("block_count"))?,
            width: gguf.require_usize(&key("embedding_length"))?,
            feed_forward: gguf.require_usize(&key("feed_forward_length"))?,
            heads,
            kv_heads: gguf.require_usize(&key("attention.head_count_kv")).unwrap_or(heads),
            context: gguf.require_usize(&key("context_length"))?,
            epsilon: gguf.require(&key("attention.layer_norm_rms_epsilon"))?.as_f64().unwrap_or(1e-5) as f32,
            rope_base: gguf.metadata.get(&key("rope.freq_base")).and_then(|value| value.as_f64()).unwrap_or(10_000.0)
                as f32,
            vocabulary: gguf.tensor("token_embd.weight")?.dimensions.get(1).copied().unwrap_or(0),
        };
        if shape.heads == 0
            || shape.kv_heads == 0
            || !shape.width.is_multiple_of(shape.heads)
            || !shape.heads.is_multiple_of(shape.kv_heads)
        {
            return Err(Error::Format(format!(
                "{} heads, {} key/value heads and width {} do not fit together",
                shape.heads, shape.kv_heads, shape.width
            )));
        }
        if !shape.head_width().is_multiple_of(2) {
            return Err(Error::Format(format!("a head width of {} cannot be rotated in pairs", shape.head_width())));
        }
        let matrix = |name: &str, rows: usize, columns: usize| -> Result<Matrix> {
            let matrix = Matrix::load(name, gguf.tensor(name)?, bytes)?;
            if matrix.rows() != rows || matrix.columns() != columns {
                return Err(Error::Format(format!(
                    "`{name}` is {}×{}, the shape says {rows}×{columns}",
                    matrix.rows(),
                    matrix.columns()
                )));
            }
            Ok(matrix)
        };
        let vector = |name: &str| -> Result<Vec<f32>> {
            let tensor = gguf.tensor(name)?;
            if tensor.kind != TensorType::F32 || tensor.elements() != shape.width {
                return Err(Error::Format(format!("`{name}` is not {} 32-bit floats", shape.width)));
            }
            let data = tensor
                .length
                .and_then(|length| bytes.get(tensor.start..tensor.start + length))
                .ok_or_else(|| Error::Format(format!("`{name}`'s data lies outside the file")))?;
            Ok(data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
        };
        let (width, kv_width, feed_forward) = (shape.width, shape.kv_width(), shape.feed_forward);
        let mut blocks = Vec::with_capacity(shape.blocks);
        for index in 0..shape.blocks {
            let name = |part: &str| format!("blk.{index}.{part}.weight");
            blocks.push(Block {
                attention_norm: vector(&name("attn_norm"))?,
                query: matrix(&name("attn_q"), width, width)?,
                key: matrix(&name("attn_k"), kv_width, width)?,
                value: matrix(&name("attn_v"), kv_width, width)?,
                attention_output: matrix(&name("attn_output"), width, width)?,
                feed_forward_norm: vector(&name("ffn_norm"))?,
                gate: matrix(&name("ffn_gate"), feed_forward, width)?,
                up: matrix(&name("ffn_up"), feed_forward, width)?,
                down: matrix(&name("ffn_down"), width, feed_forward)?,
            });
        }
        let embeddings = matrix("token_embd.weight", shape.vocabulary, width)?;
        let output = match gguf.tensors.contains_key("output.weight") {
            true => Some(matrix("output.weight", shape.vocabulary, width)?),
            false => None,
        };
        let half = shape.head_width() / 2;
        let frequencies =
            (0..half).map(|pair| shape.rope_base.powf(-((2 * pair) as f32) / shape.head_width() as f32)).collect();
        Ok(Self { output_norm: vector("output_norm.weight")?, shape, embeddings, blocks, output, frequencies })
    }

    /// The model's shape.
    pub fn shape(&self) -> &LlamaShape {
        &self.shape
    }

    /// An empty conversation.
    pub fn session(&self) -> Session {
        Session { keys: vec![Vec::new(); self.shape.blocks], values: vec![Vec::new(); self.shape.blocks], position: 0 }
    }

    /// Feeds `tokens` (a prompt, or the last sampled token) and returns the logits that follow
    /// the last of them.
    pub fn forward(&self, session: &mut Session, tokens: &[u32]) -> Result<Vec<f32>> {
        let shape = &self.shape;
        if tokens.is_empty() {
            return Err(Error::Invalid("nothing to feed the model".into()));
        }
        if session.position + tokens.len() > shape.context {
            return Err(Error::Invalid(format!(
                "{} tokens exceed the model's context of {}",
                session.position + tokens.len(),
                shape.context
            )));
        }
        let (width, kv_width, head_width) = (shape.width, shape.kv_width(), shape.head_width());
        let count = tokens.len();
        let mut residual = vec![vec![0f32; width]; count];
        for (row, &token) in residual.iter_mut().zip(tokens) {
            if token as usize >= shape.vocabulary {
                return Err(Error::Invalid(format!("token {token} is outside the vocabulary")));
            }
            self.embeddings.row(token as usize, row);
        }
        let mut normed = vec![0f32; width];
        let mut quantized = vec![Quantized::default(); count];
        let mut queries = vec![vec![0f32; width]; count];
        let mut keys = vec![vec![0f32; kv_width]; count];
        let mut values = vec![vec![0f32; kv_width]; count];
        let mut attended = vec![vec![0f32; width]; count];
        let mut projected = vec![vec![0f32; width]; count];
        let mut gates = vec![vec![0f32; shape.feed_forward]; count];
        let mut ups = vec![vec![0f32; shape.feed_forward]; count];
        let mut wide_quantized = vec![Quantized::default(); count];
        let mut scores = Vec::new();
        let group = shape.heads / shape.kv_heads;
        let scale = 1.0 / (head_width as f32).sqrt();
        for (index, block) in self.blocks.iter().enumerate() {
            for (row, quantized) in residual.iter().zip(quantized.iter_mut()) {
                rms_norm(row, &block.attention_norm, shape.epsilon, &mut normed);
                quantized.quantize(&normed);
            }
            block.query.multiply(&quantized, &mut queries);
            block.key.multiply(&quantized, &mut keys);
            block.value.multiply(&quantized, &mut values);
            for (offset, (query, key)) in queries.iter_mut().zip(keys.iter_mut()).enumerate() {
                let position = session.position + offset;
                self.rotate(query, position);
                self.rotate(key, position);
            }
            let cached_keys = &mut session.keys[index];
            let cached_values = &mut session.values[index];
            for (key, value) in keys.iter().zip(&values) {
                cached_keys.extend_from_slice(key);
                cached_values.extend_from_slice(value);
            }
            for (offset, (query, output)) in queries.iter().zip(attended.iter_mut()).enumerate() {
                let visible = session.position + offset + 1;
                for head in 0..shape.heads {
                    let kv_head = head / group;
                    let query = &query[head * head_width..(head + 1) * head_width];
                    scores.clear();
                    for position in 0..visible {
                        let start = position * kv_width + kv_head * head_width;
                        let key = &cached_keys[start..start + head_width];
                        scores.push(dot(query, key) * scale);
                    }
                    softmax(&mut scores);
                    let output = &mut output[head * head_width..(head + 1) * head_width];
                    output.fill(0.0);
                    for (position, weight) in scores.iter().enumerate() {
                        let start = position * kv_width + kv_head * head_width;
                        let value = &cached_values[start..start + head_width];
                        for (out, v) in output.iter_mut().zip(value) {
                            *out += weight * v;
                        }
                    }
                }
            }
            for (row, quantized) in attended.iter().zip(quantized.iter_mut()) {
                quantized.quantize(row);
            }
            block.attention_output.multiply(&quantized, &mut projected);
            for ((row, attention), quantized) in residual.iter_mut().zip(&projected).zip(quantized.iter_mut()) {
                for (r, a) in row.iter_mut().zip(attention) {
                    *r += a;
                }
                rms_norm(row, &block.feed_forward_norm, shape.epsilon, &mut normed);
                quantized.quantize(&normed);
            }
            block.gate.multiply(&quantized, &mut gates);
            block.up.multiply(&quantized, &mut ups);
            for ((gate, up), quantized) in gates.iter_mut().zip(&ups).zip(wide_quantized.iter_mut()) {
                for (g, u) in gate.iter_mut().zip(up) {
                    *g = *g / (1.0 + (-*g).exp()) * u;
                }
                quantized.quantize(gate);
            }
            block.down.multiply(&wide_quantized, &mut projected);
            for (row, down) in residual.iter_mut().zip(&projected) {
                for (r, d) in row.iter_mut().zip(down) {
                    *r += d;
                }
            }
        }
        session.position += count;
        let last = &residual[count - 1];
        rms_norm(last, &self.output_norm, shape.epsilon, &mut normed);
        let mut input = Quantized::default();
        input.quantize(&normed);
        let mut logits = vec![vec![0f32; shape.vocabulary]];
        self.output.as_ref().unwrap_or(&self.embeddings).multiply(std::slice::from_ref(&input), &mut logits);
        Ok(logits.pop().unwrap_or_default())
    }

    /// Rotates each adjacent pair of every head's values by its frequency at `position`.
    fn rotate(&self, vector: &mut [f32], position: usize) {
        let head_width = self.shape.head_width();
        for head in vector.chunks_exact_mut(head_width) {
            for (pair, frequency) in head.chunks_exact_mut(2).zip(&self.frequencies) {
                let (sin, cos) = (position as f32 * frequency).sin_cos();
                let (a, b) = (pair[0], pair[1]);
                pair[0] = a * cos - b * sin;
                pair[1] = a * sin + b * cos;
            }
        }
    }
}

fn dot(left: &[f32], right: &[f32]) -> f32 {
    left.iter().zip(right).map(|(a, b)| a * b).sum()
}

fn rms_norm(input: &[f32], weight: &[f32], epsilon: f32, output: &mut [f32]) {
    let mean_square = input.iter().map(|value| value * value).sum::<f32>() / input.len() as f32;
    let inverse = 1.0 / (mean_square + epsilon).sqrt();
    for ((out, value), w) in output.iter_mut().zip(input).zip(weight) {
        *out = value * inverse * w;
    }
}

/// Turns scores into probabilities in place.
pub fn softmax(values: &mut [f32]) {
    let largest = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut total = 0.0;
    for value in values.iter_mut() {
        *value = (*value - largest).exp();
        total += *value;
    }
    if total > 0.0 {
        for value in values.iter_mut() {
            *value /= total;
        }
    }
}
