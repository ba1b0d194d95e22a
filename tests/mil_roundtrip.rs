//! Emit → read back → run: for the hand-written examples and the lowered llama_tiny module
//! (fp32 and an fp16 variant), every function emitted alone and infer+prefill emitted as one
//! multi-function package give the same outputs and final states through
//! `anemllc::interp::evaluate` as the original IR (fp16 bit-identical, fp32 within 1e-6).
//! Also: weights are stored once across functions, emission is deterministic and atomic.

mod mil_common;

use std::collections::HashMap;
use std::path::Path;

use anemllc::interp::{Tensor, evaluate};
use anemllc::ir::{DType, Module};
use anemllc::mil::{PackageSpec, read_package, write_package};
use anemllc::weights::WeightCache;
use mil_common::*;

/// Compares two tensors: fp16/int bit-identical, fp32 within 1e-6 (relative to max(1, |b|)).
fn assert_same(what: &str, a: &Tensor, b: &Tensor) {
    assert_eq!(a.tensor_type(), b.tensor_type(), "{what}: types differ");
    let (x, y) = (a.to_f32_vec(), b.to_f32_vec());
    for (i, (&p, &q)) in x.iter().zip(&y).enumerate() {
        let same = p.to_bits() == q.to_bits() || (p.is_nan() && q.is_nan());
        if same {
            continue;
        }
        let close = a.dtype() == DType::F32 && (p - q).abs() <= 1e-6 * q.abs().max(1.0);
        assert!(close, "{what}[{i}]: {p} vs {q} ({})", a.dtype());
    }
}

/// Emits `spec` and checks every function of the package against the original IR on
/// random inputs and states. Returns the package's weight.bin size.
fn check_roundtrip(module: &Module, cache: &WeightCache, spec: &PackageSpec, out: &Path) -> u64 {
    let info = write_package(module, spec, cache, out).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
    let back = read_package(out).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
    let back_cache = back.weight_cache();
    for (seed, fs) in spec.functions.iter().enumerate() {
        let (inputs, states) = random_inputs(module, &fs.ir_function, 1000 + seed as u64);
        let mut s1 = states.clone();
        let mut s2 = states;
        let want = evaluate(module, &fs.ir_function, &inputs, &mut s1, cache).unwrap();
        let got = evaluate(&back.module, &fs.name, &inputs, &mut s2, &back_cache)
            .unwrap_or_else(|e| panic!("{} {}: {e}", out.display(), fs.name));
        assert_eq!(want.len(), got.len());
        for (name, t) in &want {
            assert_same(&format!("{} {} output {name}", out.display(), fs.name), &got[name], t);
        }
        for (name, t) in &s1 {
            assert_same(&format!("{} {} state {name}", out.display(), fs.name), &s2[name], t);
        }
    }
    info.weight_bytes
}

#[test]
fn air_examples_roundtrip() {
    let dir = scratch("roundtrip_air");
    for name in AIR_EXAMPLES {
        let m = air(name);
        let cache = synthetic_weights(&m, 3);
        for f in &m.functions {
            let out = dir.join(format!("{name}_{}.mlpackage", f.name));
            check_roundtrip(&m, &cache, &PackageSpec::single(&f.name), &out);
        }
        let spec = PackageSpec::multi(m.functions.iter().map(|f| (f.name.replace('.', "_"), f.name.clone())));
        check_roundtrip(&m, &cache, &spec, &dir.join(format!("{name}_multi.mlpackage")));
    }
}

fn llama_roundtrip(module: &Module, cache: &WeightCache, tag: &str) {
    let dir = scratch(&format!("roundtrip_llama_{tag}"));
    for f in &module.functions {
        let out = dir.join(format!("{}.mlpackage", f.name));
        check_roundtrip(module, cache, &PackageSpec::single(&f.name), &out);
    }
    let single = check_roundtrip(module, cache, &PackageSpec::single("layer1.infer"), &dir.join("single.mlpackage"));
    let mut spec = PackageSpec::multi([("infer", "layer1.infer"), ("prefill", "layer1.prefill")]);
    spec.default_function = Some("infer".into());
    let multi = check_roundtrip(module, cache, &spec, &dir.join("ffn_pf.mlpackage"));
    assert!(single > 0);
    assert_eq!(multi, single, "infer+prefill must store each shared weight once");
}

#[test]
fn llama_tiny_fp32_roundtrip() {
    let (m, cache) = llama_tiny();
    llama_roundtrip(&m, &cache, "fp32");
}

#[test]
fn llama_tiny_fp16_roundtrip() {
    let (m, _) = llama_tiny();
    let m16 = to_fp16(&m);
    let cache = WeightCache::new(
        &m16,
        std::sync::Arc::new(
            anemllc::checkpoint::Checkpoint::open(&repo().join("tests/fixtures/models/llama_tiny")).unwrap(),
        ),
    );
    llama_roundtrip(&m16, &cache, "fp16");
}

#[test]
fn emission_is_deterministic() {
    let (m, cache) = llama_tiny();
    let dir = scratch("determinism");
    let spec = PackageSpec::multi([("infer", "layer2.infer"), ("prefill", "layer2.prefill")]);
    let (a, b) = (dir.join("a.mlpackage"), dir.join("b.mlpackage"));
    write_package(&m, &spec, &cache, &a).unwrap();
    // A fresh cache (nothing materialised) must not change the bytes either.
    let (m2, cache2) = llama_tiny();
    write_package(&m2, &spec, &cache2, &b).unwrap();
    let (ca, cb) = (dir_contents(&a), dir_contents(&b));
    assert_eq!(ca.keys().collect::<Vec<_>>(), cb.keys().collect::<Vec<_>>());
    for (k, v) in &ca {
        assert!(v == &cb[k], "{k} differs between two emissions");
    }
    // Overwriting an existing package gives the same bytes and leaves no temporaries.
    write_package(&m, &spec, &cache, &a).unwrap();
    assert_eq!(dir_contents(&a), ca);
    let names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(names.len(), 2, "unexpected entries: {names:?}");
}

#[test]
fn failed_emission_leaves_nothing_behind() {
    let dir = scratch("atomic");
    let out = dir.join("bad.mlpackage");
    // An int64 output cannot be a Core ML feature: fails after the temp dir exists.
    let text = "module @bad {\n  func @main(%i: int32[2]) -> (o: int64[2]) {\n    %o = cast(%i) {dtype = int64} : int64[2]\n    return %o\n  }\n}\n";
    let m = anemllc::ir::parse_module(text).unwrap();
    let cache = synthetic_weights(&m, 1);
    let err = write_package(&m, &PackageSpec::single("main"), &cache, &out).unwrap_err();
    assert!(err.to_string().contains("int64"), "{err}");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);

    // An existing package at the target survives a failed overwrite untouched.
    let good = air("mlp_block");
    let good_cache = synthetic_weights(&good, 1);
    write_package(&good, &PackageSpec::single("mlp"), &good_cache, &out).unwrap();
    let before = dir_contents(&out);
    assert!(write_package(&m, &PackageSpec::single("main"), &cache, &out).is_err());
    assert_eq!(dir_contents(&out), before);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
}

#[test]
fn reader_keeps_interface() {
    let (m, cache) = llama_tiny();
    let dir = scratch("interface");
    let out = dir.join("lm.mlpackage");
    let mut spec = PackageSpec::multi([("infer", "layer0.infer"), ("prefill", "layer0.prefill")]);
    spec.default_function = Some("prefill".into());
    write_package(&m, &spec, &cache, &out).unwrap();
    let back = read_package(&out).unwrap();
    assert_eq!(back.default_function, "prefill");
    assert_eq!(back.spec_version, 9);
    let names: Vec<&str> = back.module.functions.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["infer", "prefill"]);
    for (mil, ir) in [("infer", "layer0.infer"), ("prefill", "layer0.prefill")] {
        let (a, b) = (m.function(ir).unwrap(), back.module.function(mil).unwrap());
        let sig = |f: &anemllc::ir::Function| {
            let ins: Vec<(String, String)> =
                f.inputs.iter().map(|&i| (f.values[i].name.clone(), f.values[i].ty.to_string())).collect();
            let outs: Vec<(String, String)> = f.outputs.iter().map(|o| (o.name.clone(), o.ty.to_string())).collect();
            (ins, outs)
        };
        assert_eq!(sig(a), sig(b));
    }
    // Shared weights are shared in the read-back module too.
    let used: HashMap<&str, usize> = back.module.weights.iter().map(|w| (w.name.as_str(), 0)).collect();
    // One unit norm gain (both norms' gains are folded into the projections, and their equal
    // `const [1.0]` gains are stored once), the fused q/k/v, o, gate, up and down
    // projections, the cos and sin tables.
    assert_eq!(used.len(), 8, "{:?}", back.module.weights.iter().map(|w| &w.name).collect::<Vec<_>>());
}
