#![allow(dead_code)]
//! Real pretrained checkpoints for tests: where the GGUF files are, fetching them on demand,
//! and transformers' committed references (tests/fixtures/real/<model>/).
//!
//! Availability rule: a test that needs a real model runs when the file is in the cache
//! (`$ANEMLLC_MODELS_DIR`, else `<repo>/.models`) or `tests/real_models/fetch.sh` can get
//! it; otherwise it is reported as ignored in cargo's summary — except under `CI=true`,
//! where it runs and fails, since CI must prove the real-model claims.

use std::path::{Path, PathBuf};
use std::process::Command;

use ndarray::Array2;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A real model the tests use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RealModel {
    SmolLm2,
    Gemma3,
}

impl RealModel {
    /// The fetch script's name for it, and the fixture folder's.
    pub fn key(self) -> &'static str {
        match self {
            RealModel::SmolLm2 => "smollm2",
            RealModel::Gemma3 => "gemma3",
        }
    }

    pub fn file_name(self) -> &'static str {
        match self {
            RealModel::SmolLm2 => "SmolLM2-135M-Instruct.Q4_1.gguf",
            RealModel::Gemma3 => "gemma-3-270m-q4_k_m.gguf",
        }
    }

    /// The cached GGUF file's path (present or not).
    pub fn path(self) -> PathBuf {
        models_dir().join(self.file_name())
    }

    /// The committed references.
    pub fn fixtures(self) -> PathBuf {
        repo().join("tests/fixtures/real").join(self.key())
    }
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn models_dir() -> PathBuf {
    std::env::var_os("ANEMLLC_MODELS_DIR").map(PathBuf::from).unwrap_or_else(|| repo().join(".models"))
}

/// Whether CI demands that every test runs.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Makes `model` available, fetching it if needed; `false` if it cannot be had.
pub fn ensure(model: RealModel) -> bool {
    if model.path().is_file() {
        return true;
    }
    eprintln!("fetching {} (tests/real_models/fetch.sh {}) …", model.file_name(), model.key());
    let status = Command::new("bash").arg(repo().join("tests/real_models/fetch.sh")).arg(model.key()).status();
    matches!(status, Ok(s) if s.success()) && model.path().is_file()
}

pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// sha256 of values as little-endian f32 bytes (how the references digest arrays).
pub fn sha256_f32(values: &[f32]) -> String {
    let mut h = Sha256::new();
    for chunk in values.chunks(1 << 14) {
        let bytes: Vec<u8> = chunk.iter().flat_map(|v| v.to_le_bytes()).collect();
        h.update(&bytes);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// transformers' chat prompt, its 24 greedy tokens and the logits that predicted them.
pub struct ChatReference {
    pub prompt: Vec<u32>,
    pub generated: Vec<u32>,
    /// Row r: logits at position P − 1 + r.
    pub logits: Array2<f32>,
    pub answer: String,
    pub json: Value,
}

pub fn chat_reference(model: RealModel) -> ChatReference {
    let dir = model.fixtures();
    let json = read_json(&dir.join("reference.json"));
    let ids = |k: &str| json[k].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect::<Vec<_>>();
    let logits: Array2<f32> = ndarray_npy::read_npy(dir.join("logits.npy")).unwrap();
    let answer = json["answer"]["text"].as_str().unwrap_or_default().to_string();
    ChatReference { prompt: ids("prompt"), generated: ids("generated"), logits, answer, json }
}

/// ‖a − b‖ / ‖b‖.
pub fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| ((*x as f64) - (*y as f64)).powi(2)).sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (num / den).sqrt()
}

/// Index of the first maximum.
pub fn argmax(v: &[f32]) -> usize {
    v.iter().enumerate().fold(0, |best, (i, x)| if *x > v[best] { i } else { best })
}

/// Worst and mean relative error of `rows` against the reference rows, and how many rows
/// have the same argmax.
pub fn compare_rows(rows: &[Vec<f32>], reference: &Array2<f32>) -> (f64, f64, usize) {
    assert_eq!(rows.len(), reference.nrows(), "row count");
    let errs: Vec<f64> = rows.iter().zip(reference.rows()).map(|(r, e)| rel_err(r, e.as_slice().unwrap())).collect();
    let top1 = rows.iter().zip(reference.rows()).filter(|(r, e)| argmax(r) == argmax(e.as_slice().unwrap())).count();
    let worst = errs.iter().copied().fold(0.0, f64::max);
    (worst, errs.iter().sum::<f64>() / errs.len() as f64, top1)
}

/// Runs the anemllc binary; returns (exit code, stdout, stderr).
pub fn anemllc(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_anemllc")).args(args).output().expect("run anemllc");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A scratch folder for one test, emptied first.
pub fn scratch(name: &str) -> PathBuf {
    let dir = repo().join("target/test-scratch/real").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
