//! Every kind of package the emitter produces is type-checked by coremltools 9 on Linux
//! (`tests/coreml/check_package.py`: manifest, strict proto parse, blob walk, MLModel with
//! skip_model_load, the milproto loader's per-op type inference, declared vs inferred output
//! types). Without the venv these tests show as ignored (`build.rs` sets `cfg(coreml_venv)`),
//! except under `CI`, where they run and fail.

mod mil_common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use anemllc::ir::Module;
use anemllc::mil::{FunctionSpec, PackageMetadata, PackageSpec, write_package};
use anemllc::weights::WeightCache;
use mil_common::*;

/// Emits every package of the test corpus into `dir`; returns their paths.
fn emit_corpus(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut pkgs = Vec::new();
    let mut emit = |module: &Module, cache: &WeightCache, spec: PackageSpec, name: &str| {
        let out = dir.join(format!("{name}.mlpackage"));
        let info = write_package(module, &spec, cache, &out).unwrap_or_else(|e| panic!("{name}: {e}"));
        for w in &info.warnings {
            eprintln!("{name}: warning: {w}");
        }
        pkgs.push(out);
    };
    for name in AIR_EXAMPLES {
        let m = air(name);
        let cache = synthetic_weights(&m, 7);
        for f in &m.functions {
            emit(&m, &cache, PackageSpec::single(&f.name), &format!("{name}_{}", f.name.replace('.', "_")));
        }
        if m.functions.len() > 1 {
            let spec = PackageSpec::multi(m.functions.iter().map(|f| (f.name.replace('.', "_"), f.name.clone())));
            emit(&m, &cache, spec, &format!("{name}_multi"));
        }
    }
    let (lt, cache) = llama_tiny();
    let lt16 = to_fp16(&lt);
    let cache16 = WeightCache::new(
        &lt16,
        std::sync::Arc::new(
            anemllc::checkpoint::Checkpoint::open(&repo().join("tests/fixtures/models/llama_tiny")).unwrap(),
        ),
    );
    for (m, c, tag) in [(&lt, &cache, "fp32"), (&lt16, &cache16, "fp16")] {
        let mut embed = PackageSpec::single("embed.infer");
        embed.functions[0] =
            FunctionSpec::new("main", "embed.infer").with_enumerated_shapes("input_ids", vec![vec![1, 1], vec![1, 8]]);
        embed.metadata = PackageMetadata {
            author: "anemllc tests".into(),
            version: "0.1".into(),
            short_description: "llama_tiny embeddings".into(),
            license: "MIT".into(),
            user_defined: BTreeMap::from([("com.anemll.context_length".to_string(), "32".to_string())]),
        };
        emit(m, c, embed, &format!("llama_tiny_{tag}_embed"));
        let mut ffn = PackageSpec::multi([("infer", "layer0.infer"), ("prefill", "layer0.prefill")]);
        ffn.default_function = Some("infer".into());
        emit(m, c, ffn, &format!("llama_tiny_{tag}_ffn_pf"));
        emit(m, c, PackageSpec::single("lm_head.infer"), &format!("llama_tiny_{tag}_lm_head"));
    }
    pkgs
}

#[test]
#[cfg_attr(not(coreml_venv), ignore = "needs the coremltools venv: bash tests/coreml/setup_venv.sh")]
fn coremltools_accepts_every_emitted_package() {
    let dir = scratch("coremltools");
    let pkgs = emit_corpus(&dir);
    let report = coreml_check(&pkgs, &[]);
    let mut failures = Vec::new();
    for p in report["packages"].as_array().unwrap() {
        for w in p["warnings"].as_array().unwrap() {
            eprintln!("{}: warning: {}", p["package"], w);
        }
        if p["ok"] != true {
            failures.push(format!("{}: {}", p["package"], p["errors"]));
        }
    }
    assert!(failures.is_empty(), "coremltools rejected:\n{}", failures.join("\n"));
}

/// A palettized linear with `bits`-bit indices (8 rows in 2 LUT groups): returns the dense
/// weight too, so the interpreter's view can be compared with coremltools' decompression.
fn lut_module(bits: u32) -> Module {
    let k = 1 << bits;
    let text = format!(
        "module @lut{bits} {{\n  weight @idx : uint{bits}[8, 5] = checkpoint(\"idx\" : uint{bits}[8, 5])\n  weight @lut : fp16[2, {k}] = checkpoint(\"lut\" : fp16[2, {k}])\n  func @main(%x: fp16[1, 5]) -> (y: fp16[1, 8], w: fp16[8, 5]) {{\n    %i = weight @idx : uint{bits}[8, 5]\n    %l = weight @lut : fp16[2, {k}]\n    %w = lut_to_dense(%i, %l) : fp16[8, 5]\n    %y = linear(%x, %w) : fp16[1, 8]\n    return %y, %w\n  }}\n}}\n"
    );
    let m = anemllc::ir::parse_module(&text).unwrap();
    anemllc::ir::verify_module(&m).unwrap();
    m
}

#[test]
#[cfg_attr(not(coreml_venv), ignore = "needs the coremltools venv: bash tests/coreml/setup_venv.sh")]
fn sub_byte_indices_decompress_identically_in_coremltools() {
    let dir = scratch("sub_byte");
    let mut pkgs = Vec::new();
    let mut dense = Vec::new();
    for bits in [1u32, 2, 3, 4, 6, 8] {
        let m = lut_module(bits);
        let cache = synthetic_weights(&m, u64::from(bits));
        let out = dir.join(format!("lut{bits}.mlpackage"));
        write_package(&m, &PackageSpec::single("main"), &cache, &out).unwrap();
        let (inputs, mut states) = random_inputs(&m, "main", 9);
        let got = anemllc::interp::evaluate(&m, "main", &inputs, &mut states, &cache).unwrap();
        dense.push(got["w"].to_f32_vec());
        pkgs.push(out);
    }
    let report = coreml_check(&pkgs, &["--dump-constexpr"]);
    for (p, want) in report["packages"].as_array().unwrap().iter().zip(&dense) {
        assert_eq!(p["ok"], true, "{}: {}", p["package"], p["errors"]);
        let values = &p["functions"]["main"]["constexpr"]["w"]["data"];
        let values: Vec<f32> = values.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        assert_eq!(&values, want, "{}: coremltools decompresses different weights", p["package"]);
    }
}
