//! Sentence embeddings with a BERT encoder (all-MiniLM-L6-v2 and its kin, as sentence-transformers
//! saves them: `config.json`, `tokenizer.json`, `model.safetensors`, `modules.json`,
//! `1_Pooling/config.json`): WordPiece ids, embeddings and LayerNorm, per layer self-attention
//! and a GELU feed-forward each with a residual and LayerNorm, then mean (or `[CLS]`) pooling and,
//! when the pipeline has a `Normalize` module, unit length. 32-bit floats throughout.
//!
//! Runs on the calling thread only, like [`crate::llama`].

use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::safetensors::SafeTensors;
use crate::wordpiece::WordPiece;

/// How token vectors become one sentence vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pooling {
    Mean,
    Classify,
}

struct Linear {
    weight: Vec<f32>,
    bias: Vec<f32>,
    inputs: usize,
}

impl Linear {
    fn load(tensors: &SafeTensors<'_>, name: &str, outputs: usize, inputs: usize) -> Result<Self> {
        Ok(Self {
            weight: tensors.floats(&format!("{name}.weight"), &[outputs, inputs])?,
            bias: tensors.floats(&format!("{name}.bias"), &[outputs])?,
            inputs,
        })
    }

    /// `outputs[t] = W · inputs[t] + b` for every token, each weight row read once for all.
    fn apply(&self, inputs: &[Vec<f32>], outputs: &mut [Vec<f32>]) {
        for (row, (weights, bias)) in self.weight.chunks_exact(self.inputs).zip(&self.bias).enumerate() {
            for (input, output) in inputs.iter().zip(outputs.iter_mut()) {
                output[row] = dot(weights, input) + bias;
            }
        }
    }
}

struct Norm {
    weight: Vec<f32>,
    bias: Vec<f32>,
}

impl Norm {
    fn load(tensors: &SafeTensors<'_>, name: &str, width: usize) -> Result<Self> {
        Ok(Self {
            weight: tensors.floats(&format!("{name}.weight"), &[width])?,
            bias: tensors.floats(&format!("{name}.bias"), &[width])?,
        })
    }

    fn apply(&self, values: &mut [f32], epsilon: f32) {
        let count = values.len() as f32;
        let mean = values.iter().sum::<f32>() / count;
        let variance = values.iter().map(|value| (value - mean) * (value - mean)).sum::<f32>() / count;
        let inverse = 1.0 / (variance + epsilon).sqrt();
        for ((value, weight), bias) in values.iter_mut().zip(&self.weight).zip(&self.bias) {
            *value = (*value - mean) * inverse * weight + bias;
        }
    }
}

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attention_output: Linear,
    attention_norm: Norm,
    intermediate: Linear,
    output: Linear,
    output_norm: Norm,
}

/// A loaded sentence-embedding model.
pub struct Embedder {
    tokenizer: WordPiece,
    words: Vec<f32>,
    positions: Vec<f32>,
    token_type: Vec<f32>,
    embedding_norm: Norm,
    layers: Vec<Layer>,
    width: usize,
    heads: usize,
    feed_forward: usize,
    epsilon: f32,
    max_tokens: usize,
    pooling: Pooling,
    normalize: bool,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Embedder")
            .field("width", &self.width)
            .field("layers", &self.layers.len())
            .finish_non_exhaustive()
    }
}

fn read_json(path: &Path) -> Result<Value> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io { path: path.display().to_string(), source })?;
    serde_json::from_slice(&bytes).map_err(|error| Error::Format(format!("{} is not JSON: {error}", path.display())))
}

fn optional_json(path: &Path) -> Result<Option<Value>> {
    if path.exists() { read_json(path).map(Some) } else { Ok(None) }
}

impl Embedder {
    /// Reads the model saved in `directory`.
    pub fn open(directory: &Path) -> Result<Self> {
        let config = read_json(&directory.join("config.json"))?;
        let number = |key: &str| {
            config[key]
                .as_u64()
                .map(|value| value as usize)
                .ok_or_else(|| Error::Format(format!("{}/config.json has no `{key}`", directory.display())))
        };
        if config["model_type"].as_str().is_some_and(|kind| kind != "bert") {
            return Err(Error::Unsupported(format!(
                "model type `{}` (the built-in embedder runs BERT encoders such as all-MiniLM-L6-v2)",
                config["model_type"].as_str().unwrap_or_default()
            )));
        }
        let activation = config["hidden_act"].as_str().unwrap_or("gelu");
        if activation != "gelu" {
            return Err(Error::Unsupported(format!("activation `{activation}` (the built-in embedder has `gelu`)")));
        }
        let (width, heads, depth) =
            (number("hidden_size")?, number("num_attention_heads")?, number("num_hidden_layers")?);
        let (feed_forward, vocabulary, positions) =
            (number("intermediate_size")?, number("vocab_size")?, number("max_position_embeddings")?);
        let types = config["type_vocab_size"].as_u64().unwrap_or(2) as usize;
        if heads == 0 || !width.is_multiple_of(heads) {
            return Err(Error::Format(format!("{heads} heads do not divide a width of {width}")));
        }
        let epsilon = config["layer_norm_eps"].as_f64().unwrap_or(1e-12) as f32;
        let tokenizer = WordPiece::from_tokenizer_json(&read_json(&directory.join("tokenizer.json"))?)?;
        let modules = optional_json(&directory.join("modules.json"))?;
        let normalize = modules.as_ref().and_then(Value::as_array).is_some_and(|modules| {
            modules.iter().any(|module| module["type"].as_str().is_some_and(|kind| kind.ends_with(".Normalize")))
        });
        let pooling = match optional_json(&directory.join("1_Pooling/config.json"))? {
            Some(pooling) if pooling["pooling_mode_cls_token"].as_bool() == Some(true) => Pooling::Classify,
            Some(pooling) if pooling["pooling_mode_mean_tokens"].as_bool() == Some(false) => {
                return Err(Error::Unsupported(
                    "pooling other than mean or [CLS] (the built-in embedder has those two)".into(),
                ));
            }
            _ => Pooling::Mean,
        };
        let max_tokens = optional_json(&directory.join("sentence_bert_config.json"))?
            .and_then(|config| config["max_seq_length"].as_u64())
            .map_or(positions, |length| length as usize)
            .min(positions);
        let path = directory.join("model.safetensors");
        let bytes = std::fs::read(&path).map_err(|source| Error::Io { path: path.display().to_string(), source })?;
        let tensors = SafeTensors::parse(&bytes)?;
        let mut layers = Vec::with_capacity(depth);
        for index in 0..depth {
            let name = |part: &str| format!("encoder.layer.{index}.{part}");
            layers.push(Layer {
                query: Linear::load(&tensors, &name("attention.self.query"), width, width)?,
                key: Linear::load(&tensors, &name("attention.self.key"), width, width)?,
                value: Linear::load(&tensors, &name("attention.self.value"), width, width)?,
                attention_output: Linear::load(&tensors, &name("attention.output.dense"), width, width)?,
                attention_norm: Norm::load(&tensors, &name("attention.output.LayerNorm"), width)?,
                intermediate: Linear::load(&tensors, &name("intermediate.dense"), feed_forward, width)?,
                output: Linear::load(&tensors, &name("output.dense"), width, feed_forward)?,
                output_norm: Norm::load(&tensors, &name("output.LayerNorm"), width)?,
            });
        }
        Ok(Self {
            tokenizer,
            words: tensors.floats("embeddings.word_embeddings.weight", &[vocabulary, width])?,
            positions: tensors.floats("embeddings.position_embeddings.weight", &[positions, width])?,
            token_type: tensors.floats("embeddings.token_type_embeddings.weight", &[types, width])?,
            embedding_norm: Norm::load(&tensors, "embeddings.LayerNorm", width)?,
            layers,
            width,
            heads,
            feed_forward,
            epsilon,
            max_tokens,
            pooling,
            normalize,
        })
    }

    /// The length of its vectors.
    pub fn dimensions(&self) -> usize {
        self.width
    }

    /// `text`'s tokens, `[CLS]` and `[SEP]` included, truncated to the model's maximum.
    pub fn tokenize(&self, text: &str) -> Vec<u32> {
        self.tokenizer.encode(text, self.max_tokens)
    }

    /// `text`'s vector and the tokens it took.
    pub fn embed(&self, text: &str) -> (Vec<f32>, usize) {
        let ids = self.tokenize(text);
        (self.embed_ids(&ids), ids.len())
    }

    fn embed_ids(&self, ids: &[u32]) -> Vec<f32> {
        let width = self.width;
        let head_width = width / self.heads;
        let count = ids.len();
        let vocabulary = self.words.len() / width;
        let mut states: Vec<Vec<f32>> = ids
            .iter()
            .enumerate()
            .map(|(position, id)| {
                let id = (*id as usize).min(vocabulary.saturating_sub(1));
                let word = &self.words[id * width..(id + 1) * width];
                let place = &self.positions[position * width..(position + 1) * width];
                let mut state: Vec<f32> =
                    word.iter().zip(place).zip(&self.token_type[..width]).map(|((w, p), t)| w + p + t).collect();
                self.embedding_norm.apply(&mut state, self.epsilon);
                state
            })
            .collect();
        let mut queries = vec![vec![0f32; width]; count];
        let mut keys = vec![vec![0f32; width]; count];
        let mut values = vec![vec![0f32; width]; count];
        let mut context = vec![vec![0f32; width]; count];
        let mut projected = vec![vec![0f32; width]; count];
        let mut wide = vec![vec![0f32; self.feed_forward]; count];
        let mut scores = vec![0f32; count];
        let scale = 1.0 / (head_width as f32).sqrt();
        for layer in &self.layers {
            layer.query.apply(&states, &mut queries);
            layer.key.apply(&states, &mut keys);
            layer.value.apply(&states, &mut values);
            for (query, output) in queries.iter().zip(context.iter_mut()) {
                for head in 0..self.heads {
                    let span = head * head_width..(head + 1) * head_width;
                    for (score, key) in scores.iter_mut().zip(&keys) {
                        *score = dot(&query[span.clone()], &key[span.clone()]) * scale;
                    }
                    crate::llama::softmax(&mut scores);
                    let output = &mut output[span.clone()];
                    output.fill(0.0);
                    for (weight, value) in scores.iter().zip(&values) {
                        for (out, v) in output.iter_mut().zip(&value[span.clone()]) {
                            *out += weight * v;
                        }
                    }
                }
            }
            layer.attention_output.apply(&context, &mut projected);
            for (state, attention) in states.iter_mut().zip(&projected) {
                for (s, a) in state.iter_mut().zip(attention) {
                    *s += a;
                }
                layer.attention_norm.apply(state, self.epsilon);
            }
            layer.intermediate.apply(&states, &mut wide);
            for row in wide.iter_mut() {
                row.iter_mut().for_each(|value| *value = gelu(*value));
            }
            layer.output.apply(&wide, &mut projected);
            for (state, output) in states.iter_mut().zip(&projected) {
                for (s, o) in state.iter_mut().zip(output) {
                    *s += o;
                }
                layer.output_norm.apply(state, self.epsilon);
            }
        }
        let mut pooled = match self.pooling {
            Pooling::Classify => states[0].clone(),
            Pooling::Mean => {
                let mut sum = vec![0f32; width];
                for state in &states {
                    sum.iter_mut().zip(state).for_each(|(s, v)| *s += v);
                }
                let count = (count as f32).max(1e-9);
                sum.iter_mut().for_each(|s| *s /= count);
                sum
            }
        };
        if self.normalize {
            let norm = pooled.iter().map(|value| value * value).sum::<f32>().sqrt().max(1e-12);
            pooled.iter_mut().for_each(|value| *value /= norm);
        }
        pooled
    }
}

/// The exact GELU, `x·Φ(x)`.
fn gelu(value: f32) -> f32 {
    0.5 * value * (1.0 + erf(value / std::f32::consts::SQRT_2))
}

/// The error function (Abramowitz and Stegun 7.1.26, in f64: absolute error below 1.5e-7).
fn erf(value: f32) -> f32 {
    let x = f64::from(value.abs());
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let polynomial =
        t * (0.254_829_592 + t * (-0.284_496_736 + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let result = (1.0 - polynomial * (-x * x).exp()) as f32;
    if value < 0.0 { -result } else { result }
}

/// A dot product in eight lanes (so the compiler vectorizes it).
fn dot(left: &[f32], right: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (left_chunks, right_chunks) = (left.chunks_exact(8), right.chunks_exact(8));
    let tail: f32 = left_chunks.remainder().iter().zip(right_chunks.remainder()).map(|(a, b)| a * b).sum();
    for (a, b) in left_chunks.zip(right_chunks) {
        for lane in 0..8 {
            lanes[lane] += a[lane] * b[lane];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gelu_matches_its_exact_values() {
        // 0.5·x·(1 + erf(x/√2)) computed in f64.
        for (x, expected) in
            [(0.0, 0.0), (1.0, 0.841_344_7), (-1.0, -0.158_655_25), (2.5, 2.484_475), (-3.0, -0.004_049_8)]
        {
            assert!((gelu(x) - expected).abs() < 2e-6, "gelu({x}) = {} not {expected}", gelu(x));
        }
    }

    #[test]
    fn dot_products_cover_the_tail() {
        let left: Vec<f32> = (0..19).map(|i| i as f32).collect();
        let right = vec![1.0; 19];
        assert_eq!(dot(&left, &right), 171.0);
    }
}
