//! Quantized weight matrices and the kernels that multiply them: ggml's `Q4_1` and `Q8_0` blocks
//! of 32, repacked at load into scales and quants apart so the inner loop is integer only, and
//! activations quantized to 8 bits per block of 32 before each product (as llama.cpp does).
//!
//! It owns the numbers' layout and arithmetic; which matrix is which belongs to [`crate::llama`].

use crate::error::{Error, Result};
use crate::gguf::{TensorInfo, TensorType};

/// Values per quantization block.
pub const BLOCK: usize = 32;

/// An IEEE half-precision number's value.
pub fn f16_to_f32(bits: u16) -> f32 {
    let sign = u32::from(bits >> 15) << 31;
    let exponent = u32::from((bits >> 10) & 0x1f);
    let mantissa = u32::from(bits & 0x3ff);
    let magnitude = match (exponent, mantissa) {
        (0, 0) => 0,
        (0, _) => {
            // Subnormal: normalise the mantissa.
            let shift = mantissa.leading_zeros() - 21;
            let mantissa = (mantissa << shift) & 0x3ff;
            ((127 - 15 + 1 - shift) << 23) | (mantissa << 13)
        }
        (0x1f, _) => 0x7f80_0000 | (mantissa << 13),
        _ => ((exponent + 127 - 15) << 23) | (mantissa << 13),
    };
    f32::from_bits(sign | magnitude)
}

/// How a matrix's quants are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// Four bits per value, two per byte (value `j` low nibble of byte `j`, value `j + 16` high),
    /// with a scale and a minimum per block.
    Q4_1,
    /// One signed byte per value, with a scale per block.
    Q8_0,
}

/// A weight matrix of `rows` × `columns`, each row quantized in blocks of 32.
#[derive(Debug, Clone)]
pub struct Matrix {
    rows: usize,
    columns: usize,
    layout: Layout,
    /// One per block, row by row.
    scales: Vec<f32>,
    /// One per block for `Q4_1` (empty for `Q8_0`).
    minimums: Vec<f32>,
    /// 16 bytes per block for `Q4_1`, 32 for `Q8_0`.
    quants: Vec<u8>,
}

impl Matrix {
    /// The matrix `name` stored in `tensor` of `bytes` (the whole file), repacked.
    pub fn load(name: &str, tensor: &TensorInfo, bytes: &[u8]) -> Result<Self> {
        let [columns, rows] = tensor.dimensions[..] else {
            return Err(Error::Format(format!("`{name}` is not a matrix ({:?})", tensor.dimensions)));
        };
        if !columns.is_multiple_of(BLOCK) {
            return Err(Error::Format(format!("`{name}` has rows of {columns}, not a multiple of {BLOCK}")));
        }
        let (layout, block_bytes) = match tensor.kind {
            TensorType::Q4_1 => (Layout::Q4_1, 20),
            TensorType::Q8_0 => (Layout::Q8_0, 34),
            other => {
                return Err(Error::Unsupported(format!(
                    "`{name}` is stored as {other:?}; this engine computes with Q4_1 and Q8_0 (quantize the model to Q4_1)"
                )));
            }
        };
        let blocks = rows * columns / BLOCK;
        let data = tensor
            .length
            .and_then(|length| bytes.get(tensor.start..tensor.start + length))
            .filter(|data| data.len() == blocks * block_bytes)
            .ok_or_else(|| Error::Format(format!("`{name}`'s data does not fit its size")))?;
        let mut scales = Vec::with_capacity(blocks);
        let mut minimums = Vec::new();
        let mut quants = Vec::with_capacity(blocks * (block_bytes - 4));
        for block in data.chunks_exact(block_bytes) {
            scales.push(f16_to_f32(u16::from_le_bytes([block[0], block[1]])));
            match layout {
                Layout::Q4_1 => {
                    minimums.push(f16_to_f32(u16::from_le_bytes([block[2], block[3]])));
                    quants.extend_from_slice(&block[4..]);
                }
                Layout::Q8_0 => quants.extend_from_slice(&block[2..]),
            }
        }
        Ok(Self { rows, columns, layout, scales, minimums, quants })
    }

    /// Output rows (the length of a product).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input columns (the length of a vector it multiplies).
    pub fn columns(&self) -> usize {
        self.columns
    }

    /// Row `row` as floats (an embedding lookup).
    pub fn row(&self, row: usize, output: &mut [f32]) {
        let blocks = self.columns / BLOCK;
        for block in 0..blocks {
            let index = row * blocks + block;
            let scale = self.scales[index];
            let values = &mut output[block * BLOCK..(block + 1) * BLOCK];
            match self.layout {
                Layout::Q4_1 => {
                    let minimum = self.minimums[index];
                    let quants = &self.quants[index * 16..(index + 1) * 16];
                    for (j, &byte) in quants.iter().enumerate() {
                        values[j] = scale * f32::from(byte & 0x0f) + minimum;
                        values[j + 16] = scale * f32::from(byte >> 4) + minimum;
                    }
                }
                Layout::Q8_0 => {
                    let quants = &self.quants[index * 32..(index + 1) * 32];
                    for (value, &byte) in values.iter_mut().zip(quants) {
                        *value = scale * f32::from(byte as i8);
                    }
                }
            }
        }
    }

    /// `output[t][r] = row r · inputs[t]` for every input, each row read once for all of them.
    pub fn multiply(&self, inputs: &[Quantized], outputs: &mut [Vec<f32>]) {
        let blocks = self.columns / BLOCK;
        for row in 0..self.rows {
            let scales = &self.scales[row * blocks..(row + 1) * blocks];
            match self.layout {
                Layout::Q4_1 => {
                    let minimums = &self.minimums[row * blocks..(row + 1) * blocks];
                    let quants = &self.quants[row * blocks * 16..(row + 1) * blocks * 16];
                    for (input, output) in inputs.iter().zip(outputs.iter_mut()) {
                        output[row] = dot_q4_1(scales, minimums, quants, input);
                    }
                }
                Layout::Q8_0 => {
                    let quants = &self.quants[row * blocks * 32..(row + 1) * blocks * 32];
                    for (input, output) in inputs.iter().zip(outputs.iter_mut()) {
                        output[row] = dot_q8_0(scales, quants, input);
                    }
                }
            }
        }
    }
}

/// A vector quantized to 8 bits per value in blocks of 32.
#[derive(Debug, Clone, Default)]
pub struct Quantized {
    scales: Vec<f32>,
    /// Per block: the scale times the sum of its quants (the block's sum, as quantized).
    sums: Vec<f32>,
    quants: Vec<i8>,
}

impl Quantized {
    /// Quantizes `values` (a multiple of 32 long) into `self`, reusing its buffers.
    pub fn quantize(&mut self, values: &[f32]) {
        self.scales.clear();
        self.sums.clear();
        self.quants.clear();
        for block in values.chunks(BLOCK) {
            let largest = block.iter().fold(0f32, |largest, value| largest.max(value.abs()));
            let scale = largest / 127.0;
            let inverse = if scale > 0.0 { 1.0 / scale } else { 0.0 };
            let mut sum = 0i32;
            for value in block {
                let quant = (value * inverse).round().clamp(-127.0, 127.0) as i8;
                sum += i32::from(quant);
                self.quants.push(quant);
            }
            self.scales.push(scale);
            self.sums.push(scale * sum as f32);
        }
    }
}

fn dot_q4_1(scales: &[f32], minimums: &[f32], quants: &[u8], input: &Quantized) -> f32 {
    let mut total = 0f32;
    let blocks = scales.iter().zip(minimums).zip(quants.chunks_exact(16));
    let inputs = input.scales.iter().zip(&input.sums).zip(input.quants.chunks_exact(32));
    for (((scale, minimum), weights), ((input_scale, input_sum), activations)) in blocks.zip(inputs) {
        let (Ok(weights), Ok(activations)) = (<&[u8; 16]>::try_from(weights), <&[i8; 32]>::try_from(activations))
        else {
            continue;
        };
        total += scale * input_scale * block_q4_1(weights, activations) as f32 + minimum * input_sum;
    }
    total
}

/// One block's integer product, written over fixed-size arrays in lanes so the compiler
/// vectorizes it (products fit in 16 bits: 15 × 127).
#[inline(always)]
fn block_q4_1(weights: &[u8; 16], activations: &[i8; 32]) -> i32 {
    let mut lanes = [0i32; 8];
    for j in 0..16 {
        let low = i16::from(weights[j] & 0x0f) * i16::from(activations[j]);
        let high = i16::from(weights[j] >> 4) * i16::from(activations[j + 16]);
        lanes[j % 8] += i32::from(low) + i32::from(high);
    }
    lanes.iter().sum()
}

fn dot_q8_0(scales: &[f32], quants: &[u8], input: &Quantized) -> f32 {
    let mut total = 0f32;
    let blocks = scales.iter().zip(quants.chunks_exact(32));
    let inputs = input.scales.iter().zip(input.quants.chunks_exact(32));
    for ((scale, weights), (input_scale, activations)) in blocks.zip(inputs) {
        let (Ok(weights), Ok(activations)) = (<&[u8; 32]>::try_from(weights), <&[i8; 32]>::try_from(activations))
        else {
            continue;
        };
        total += scale * input_scale * block_q8_0(weights, activations) as f32;
    }
    total
}

/// One block's integer product (products fit in 16 bits: 127 × 127).
#[inline(always)]
fn block_q8_0(weights: &[u8; 32], activations: &[i8; 32]) -> i32 {
    let mut lanes = [0i32; 8];
    for j in 0..32 {
        let product = i16::from(weights[j] as i8) * i16::from(activations[j]);
        lanes[j % 8] += i32::from(product);
    }
    lanes.iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_values_convert_exactly() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert_eq!(f16_to_f32(0x0001), 5.960_464_5e-8);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert!(f16_to_f32(0x7c00).is_infinite());
        assert_eq!(f16_to_f32(0x8000).to_bits(), (-0f32).to_bits());
    }

    /// A Q4_1 tensor of `rows` rows of 64 values and the floats its blocks stand for.
    fn q4_1(rows: usize) -> (TensorInfo, Vec<u8>, Vec<f32>) {
        let mut bytes = Vec::new();
        let mut values = Vec::new();
        for block in 0..rows * 2 {
            let scale = 0x3000u16 + block as u16; // about 0.125
            let minimum = 0xb800u16; // -0.5
            bytes.extend(scale.to_le_bytes());
            bytes.extend(minimum.to_le_bytes());
            let nibbles: Vec<u8> = (0..32).map(|j| ((j * 7 + block * 3) % 16) as u8).collect();
            for j in 0..16 {
                bytes.push(nibbles[j] | (nibbles[j + 16] << 4));
            }
            values.extend(nibbles.iter().map(|&q| f16_to_f32(scale) * f32::from(q) + f16_to_f32(minimum)));
        }
        let tensor =
            TensorInfo { dimensions: vec![64, rows], kind: TensorType::Q4_1, start: 0, length: Some(bytes.len()) };
        (tensor, bytes, values)
    }

    #[test]
    fn rows_dequantize_to_the_blocks_values() {
        let (tensor, bytes, values) = q4_1(3);
        let matrix = Matrix::load("w", &tensor, &bytes).unwrap();
        let mut row = vec![0f32; 64];
        matrix.row(2, &mut row);
        assert_eq!(row, values[128..192]);
    }

    #[test]
    fn products_match_the_float_product_within_quantization_error() {
        let (tensor, bytes, values) = q4_1(4);
        let matrix = Matrix::load("w", &tensor, &bytes).unwrap();
        let input: Vec<f32> = (0..64).map(|i| ((i * 37 % 19) as f32 - 9.0) / 7.0).collect();
        let mut quantized = Quantized::default();
        quantized.quantize(&input);
        let mut outputs = vec![vec![0f32; 4]];
        matrix.multiply(std::slice::from_ref(&quantized), &mut outputs);
        for row in 0..4 {
            let exact: f32 = values[row * 64..(row + 1) * 64].iter().zip(&input).map(|(w, x)| w * x).sum();
            let scale: f32 = values[row * 64..(row + 1) * 64].iter().zip(&input).map(|(w, x)| (w * x).abs()).sum();
            assert!((outputs[0][row] - exact).abs() <= scale * 0.01, "row {row}: {} vs {exact}", outputs[0][row]);
        }
    }

    #[test]
    fn other_tensor_types_are_refused_with_what_to_do() {
        let tensor = TensorInfo { dimensions: vec![64, 2], kind: TensorType::F16, start: 0, length: Some(256) };
        let message = Matrix::load("blk.0.attn_q.weight", &tensor, &[0; 256]).unwrap_err().to_string();
        assert!(message.contains("quantize the model to Q4_1"), "{message}");
    }
}
