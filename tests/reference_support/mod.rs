#![allow(dead_code)]
//! Shared by the numerics tests: the fixture list, transformers' reference data of a fixture
//! (reference.json + logits.npy) and the relative error the bounds are stated in.

use std::path::{Path, PathBuf};

use ndarray::Array2;

/// Every committed fixture checkpoint.
pub const FIXTURES: [&str; 9] = [
    "llama_tiny",
    "llama_tied",
    "llama3_rope",
    "llama_linear_rope",
    "qwen2_bias",
    "qwen3_headdim",
    "llama_sharded",
    "llama_bf16",
    "gemma3_tiny",
];

/// transformers' prompt, greedy continuation, teacher-forced tokens and float32 logits.
pub struct Reference {
    pub prompt: Vec<u32>,
    pub generated: Vec<u32>,
    pub tokens: Vec<u32>,
    pub logits: Array2<f32>,
}

pub fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models").join(name)
}

pub fn reference(name: &str) -> Reference {
    let dir = fixture_dir(name);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap()).unwrap();
    let ids = |k: &str| json[k].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect::<Vec<_>>();
    let logits: Array2<f32> = ndarray_npy::read_npy(dir.join("logits.npy")).unwrap();
    Reference { prompt: ids("prompt"), generated: ids("generated"), tokens: ids("tokens"), logits }
}

/// ‖a − b‖ / ‖b‖ over one position.
pub fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| ((*x as f64) - (*y as f64)).powi(2)).sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (num / den).sqrt()
}
