//! Palettization quality against coremltools' own k-means palettizer (the one ANEMLL calls).
//!
//! For every linear weight with ≥ 2048 elements of the fixtures llama_tiny and qwen2_bias,
//! at 4 and 6 bits with one table per 8 output channels, our reconstruction error
//! ‖W − Ŵ‖/‖W‖ must not exceed coremltools'. W is the fp16 weight (what coremltools
//! palettizes after fp16 conversion, and what our `opt` output feeds `lut_indices`). The
//! fixtures' groups hold ≤ 1024 weights, where coremltools clusters with scikit-learn; two
//! synthetic 16×2048 matrices (groups of 16384) exercise its other path, kmeans1d's exact DP
//! (when the kmeans1d package is installed), as on real models.
//!
//! - `ours_beat_recorded_coremltools` checks against the numbers recorded in
//!   `tests/fixtures/palettize_reference.json` (no Python needed).
//! - `ours_beat_live_coremltools` runs `tests/coreml/palettize_reference.py` with
//!   `$ANEMLLC_COREML_PYTHON` (default `.venv-coreml/bin/python`, made by
//!   `tests/coreml/setup_venv.sh`; it needs coremltools and scikit-learn). Without the
//!   interpreter it shows as ignored (`build.rs` sets `cfg(coreml_venv)`), except under `CI`,
//!   where it runs and fails. With `ANEMLLC_UPDATE_PALETTIZE_REFERENCE=1` it rewrites the
//!   recorded JSON.
//!
//! Why (almost) no slack: our k-means is the exact optimum of the k-means objective on the
//! fp16 values (a dynamic program), and coremltools' (scikit-learn's k-means++ with one init,
//! or kmeans1d's DP for groups of ≥ 10000 weights) can only match or exceed that optimum.
//! After rounding the table to fp16 we reassign every weight to its nearest entry, which
//! coremltools does not. Against scikit-learn we win by 5–10%; against kmeans1d both sides
//! find the same optimum, so the errors agree to ~1e-9 and the comparison allows
//! [`TIE_TOLERANCE`] (1e-6 relative) for the order of floating-point sums, nothing more.

mod mil_common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anemllc::checkpoint::Checkpoint;
use anemllc::quant::{palettize_tensor, relative_error};
use mil_common::coreml_python;
use ndarray::Array2;

const FIXTURES: [&str; 2] = ["llama_tiny", "qwen2_bias"];
const BITS: [u32; 2] = [4, 6];
const GROUP_SIZE: usize = 8;
/// Relative tolerance for ties with an equally optimal clustering (summation order only).
const TIE_TOLERANCE: f64 = 1e-6;

struct Matrix {
    /// `{fixture}__{tensor}`, the .npy stem the Python script reports back.
    name: String,
    shape: Vec<usize>,
    /// The checkpoint values rounded to fp16.
    values: Vec<f32>,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn reference_json() -> PathBuf {
    root().join("tests/fixtures/palettize_reference.json")
}

/// The linear weights (`*_proj.weight`, `lm_head.weight`) of ≥ 2048 elements, by name.
fn matrices() -> Vec<Matrix> {
    let mut out = Vec::new();
    for fixture in FIXTURES {
        let ckpt = Checkpoint::open(&root().join("tests/fixtures/models").join(fixture)).unwrap();
        let mut names: Vec<String> = ckpt.names().into_iter().map(str::to_string).collect();
        names.sort();
        for tensor in names {
            let shape = ckpt.info(&tensor).unwrap().shape.clone();
            let linear = tensor.ends_with("_proj.weight") || tensor == "lm_head.weight";
            if !linear || shape.len() != 2 || shape.iter().product::<usize>() < 2048 {
                continue;
            }
            let values = ckpt.to_f32(&tensor).unwrap().into_iter().map(|v| half::f16::from_f32(v).to_f32()).collect();
            out.push(Matrix { name: format!("{fixture}__{tensor}"), shape, values });
        }
    }
    assert!(out.len() >= 30, "expected every projection of both fixtures, got {}", out.len());
    for (name, laplace) in [("synthetic__gauss_16x2048", false), ("synthetic__laplace_16x2048", true)] {
        out.push(Matrix { name: name.into(), shape: vec![16, 2048], values: synthetic(16 * 2048, laplace) });
    }
    out
}

/// Deterministic bf16-valued weights (then fp16, as the others): Gaussian (σ 0.02) or
/// Laplace (b 0.014, heavier tails).
fn synthetic(n: usize, laplace: bool) -> Vec<f32> {
    let mut state = if laplace { 0x9E37_79B9_7F4A_7C15u64 } else { 0x2545_F491_4F6C_DD1D };
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let (u, v) = (uniform(), uniform());
            let x = if laplace {
                -0.014 * (2.0 * u.min(1.0 - u)).ln() * if u < 0.5 { -1.0 } else { 1.0 }
            } else {
                0.02 * (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
            };
            half::f16::from_f32(half::bf16::from_f64(x).to_f32()).to_f32()
        })
        .collect()
}

fn ours(m: &Matrix, bits: u32) -> f64 {
    let p = palettize_tensor(&m.values, &m.shape, bits, GROUP_SIZE).unwrap();
    relative_error(&m.values, &p.dense())
}

/// `(name, bits) → coremltools' rel_err` from a reference document.
fn parse_reference(doc: &serde_json::Value) -> BTreeMap<(String, u32), f64> {
    assert_eq!(doc["group_size"].as_u64(), Some(GROUP_SIZE as u64), "reference made with another group size");
    doc["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            let name = r["name"].as_str().unwrap().to_string();
            ((name, r["bits"].as_u64().unwrap() as u32), r["rel_err"].as_f64().unwrap())
        })
        .collect()
}

/// Compares ours with `reference` on every matrix and width; panics listing every loss.
fn compare(reference: &BTreeMap<(String, u32), f64>, what: &str) {
    let mats = matrices();
    let mut losses = Vec::new();
    let (mut sum_ours, mut sum_ref) = (BTreeMap::new(), BTreeMap::new());
    eprintln!("{:<58} {:>4} {:>10} {:>12} {:>8}", "matrix", "bits", "ours", "coremltools", "ratio");
    for bits in BITS {
        for m in &mats {
            let theirs = *reference
                .get(&(m.name.clone(), bits))
                .unwrap_or_else(|| panic!("{what} has no entry for {} at {bits} bits", m.name));
            let mine = ours(m, bits);
            eprintln!("{:<58} {bits:>4} {mine:>10.6} {theirs:>12.6} {:>8.4}", m.name, mine / theirs);
            *sum_ours.entry(bits).or_insert(0.0) += mine;
            *sum_ref.entry(bits).or_insert(0.0) += theirs;
            if mine > theirs * (1.0 + TIE_TOLERANCE) {
                losses.push(format!("{} at {bits} bits: ours {mine:.6} > coremltools {theirs:.6}", m.name));
            }
        }
    }
    for bits in BITS {
        let n = mats.len() as f64;
        eprintln!(
            "{bits} bits: mean rel err ours {:.6}, coremltools {:.6} over {} matrices",
            sum_ours[&bits] / n,
            sum_ref[&bits] / n,
            mats.len()
        );
    }
    assert!(losses.is_empty(), "worse than coremltools ({what}):\n{}", losses.join("\n"));
}

#[test]
fn ours_beat_recorded_coremltools() {
    let text = std::fs::read_to_string(reference_json()).expect("tests/fixtures/palettize_reference.json");
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let reference = parse_reference(&doc);
    assert_eq!(reference.len(), matrices().len() * BITS.len(), "the recorded reference is stale: regenerate it");
    compare(&reference, "recorded reference");
}

/// Runs `tests/coreml/palettize_reference.py` on `mats` (as .npy files in `dir`) and returns
/// its report. A package missing from the venv (the script's exit code 3) is a failure too:
/// the venv `tests/coreml/setup_venv.sh` makes has them all.
fn run_reference_script(python: &Path, dir: &Path, mats: &[Matrix]) -> serde_json::Value {
    let mut files = Vec::new();
    for m in mats {
        let path = dir.join(format!("{}.npy", m.name));
        let a = Array2::from_shape_vec((m.shape[0], m.shape[1]), m.values.clone()).unwrap();
        ndarray_npy::write_npy(&path, &a).unwrap();
        files.push(path);
    }
    let out = dir.join("result.json");
    let status = Command::new(python)
        .arg(root().join("tests/coreml/palettize_reference.py"))
        .args(["--bits", "4", "6", "--group-size", "8", "--out"])
        .arg(&out)
        .args(&files)
        .output()
        .expect("run palettize_reference.py");
    match status.status.code() {
        Some(0) => {}
        Some(3) => panic!(
            "{}; run `bash tests/coreml/setup_venv.sh` (coremltools 9.0, numpy < 2.3, scikit-learn)",
            String::from_utf8_lossy(&status.stderr).trim()
        ),
        _ => panic!("palettize_reference.py failed: {}\n{}", status.status, String::from_utf8_lossy(&status.stderr)),
    }
    serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap()
}

#[test]
#[cfg_attr(not(coreml_venv), ignore = "needs the coremltools venv: bash tests/coreml/setup_venv.sh")]
fn ours_beat_live_coremltools() {
    let python = coreml_python();
    let dir = std::env::temp_dir().join(format!("anemllc-palettize-ref-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mats = matrices();
    let doc = run_reference_script(&python, &dir, &mats);
    std::fs::remove_dir_all(&dir).ok();
    let live = parse_reference(&doc);
    eprintln!(
        "coremltools {} / scikit-learn {} / kmeans1d {}",
        doc["coremltools"], doc["scikit_learn"], doc["kmeans1d"]
    );
    // How far the live numbers are from the recorded ones (another scikit-learn version may
    // cluster differently; both must lose to ours anyway).
    if let Ok(text) = std::fs::read_to_string(reference_json()) {
        let recorded = parse_reference(&serde_json::from_str(&text).unwrap());
        let drift = live.iter().filter_map(|(k, v)| recorded.get(k).map(|r| (v - r).abs() / r)).fold(0.0f64, f64::max);
        eprintln!("largest relative difference live vs recorded coremltools error: {drift:.2e}");
    }
    if std::env::var_os("ANEMLLC_UPDATE_PALETTIZE_REFERENCE").is_some() {
        std::fs::write(reference_json(), reference_text(&doc)).unwrap();
        eprintln!("wrote {}", reference_json().display());
    }
    compare(&live, "live coremltools");
}

/// The recorded reference: the script's document, one result per line.
fn reference_text(doc: &serde_json::Value) -> String {
    let mut head = doc.clone();
    let results = head.as_object_mut().unwrap().remove("results").unwrap();
    let mut text = String::from("{\n");
    for (k, v) in head.as_object().unwrap() {
        text += &format!("  {}: {},\n", serde_json::Value::from(k.as_str()), v);
    }
    text += "  \"results\": [\n";
    let lines: Vec<String> = results.as_array().unwrap().iter().map(|r| format!("    {r}")).collect();
    text += &lines.join(",\n");
    text += "\n  ]\n}\n";
    text
}
