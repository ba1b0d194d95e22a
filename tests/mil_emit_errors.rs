//! What the emitter refuses, and how it says so: every error names the function/op or the
//! spec field, and nothing is left on disk.

mod mil_common;

use anemllc::ir::{Module, parse_module, verify_module};
use anemllc::mil::{EmitError, FunctionSpec, PackageSpec, write_package};
use mil_common::*;

fn module(text: &str) -> Module {
    let m = parse_module(text).unwrap();
    verify_module(&m).unwrap();
    m
}

fn emit_err(m: &Module, spec: &PackageSpec, name: &str) -> EmitError {
    let dir = scratch(&format!("emit_errors_{name}"));
    let cache = synthetic_weights(m, 1);
    let err = write_package(m, spec, &cache, &dir.join("out.mlpackage")).unwrap_err();
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert!(left.is_empty(), "{name}: left {left:?}");
    err
}

#[test]
fn spec_errors() {
    let m = air("kv_state");
    let cases: Vec<(PackageSpec, &str)> = vec![
        (PackageSpec::default(), "no functions"),
        (PackageSpec::single("nope"), "no function @nope"),
        (PackageSpec::multi([("a.b", "infer")]), "not a MIL identifier"),
        (PackageSpec::multi([("a", "infer"), ("a", "prefill")]), "used twice"),
        (
            PackageSpec { default_function: Some("zzz".into()), ..PackageSpec::multi([("a", "infer")]) },
            "default function",
        ),
    ];
    for (i, (spec, needle)) in cases.iter().enumerate() {
        let e = emit_err(&m, spec, &format!("spec{i}"));
        assert!(matches!(e, EmitError::Spec(_)), "{e}");
        assert!(e.to_string().contains(needle), "{e} lacks {needle:?}");
    }
}

#[test]
fn enumerated_shape_errors() {
    let (m, _) = llama_tiny();
    // The declared shape must be among the enumerated ones.
    let spec = PackageSpec {
        functions: vec![FunctionSpec::new("main", "embed.infer").with_enumerated_shapes("input_ids", vec![vec![1, 8]])],
        ..Default::default()
    };
    let e = emit_err(&m, &spec, "enum_missing_default");
    assert!(e.to_string().contains("must be one of"), "{e}");
    // A layer cannot serve another sequence length: its reshapes fix it.
    let spec = PackageSpec {
        functions: vec![
            FunctionSpec::new("main", "layer0.infer")
                .with_enumerated_shapes("hidden_states", vec![vec![1, 1, 64], vec![1, 8, 64]]),
        ],
        ..Default::default()
    };
    let e = emit_err(&m, &spec, "enum_layer");
    assert!(e.to_string().contains("fails for an enumerated shape"), "{e}");
}

#[test]
fn op_and_signature_errors() {
    let cases = [
        (
            "module @m {\n  func @main(%a: int32[2], %b: int32[2]) -> (o: int32[2]) {\n    %o = div(%a, %b) : int32[2]\n    return %o\n  }\n}\n",
            "integer division",
        ),
        (
            "module @m {\n  func @main(%x: fp32[2], %i: int64[1]) -> (o: fp32[1]) {\n    %o = gather(%x, %i) {axis = 0} : fp32[1]\n    return %o\n  }\n}\n",
            "input i has dtype int64",
        ),
        (
            "module @m {\n  func @main(%x: fp32[2]) -> (o: bool[2]) {\n    %o = cast(%x) {dtype = bool} : bool[2]\n    return %o\n  }\n}\n",
            "Core ML outputs",
        ),
        (
            "module @m {\n  func @main(%x: fp32[2]) -> (o: fp32[2]) {\n    %o = neg(%x) : fp32[2]\n    return %o\n  }\n}\n",
            "",
        ),
        (
            "module @m {\n  weight @i : uint4[4, 2] = checkpoint(\"i\" : uint4[4, 2])\n  weight @l : fp16[1, 16] = checkpoint(\"l\" : fp16[1, 16])\n  func @main(%x: fp16[1, 2]) -> (o: fp16[1, 4]) {\n    %i = weight @i : uint4[4, 2]\n    %i2 = reshape(%i) {shape = [4, 2]} : uint4[4, 2]\n    %l = weight @l : fp16[1, 16]\n    %w = lut_to_dense(%i2, %l) : fp16[4, 2]\n    %o = linear(%x, %w) : fp16[1, 4]\n    return %o\n  }\n}\n",
            "only takes them inside lut_to_dense",
        ),
    ];
    for (i, (text, needle)) in cases.iter().enumerate() {
        let m = module(text);
        let dir = scratch(&format!("emit_errors_op{i}"));
        let cache = synthetic_weights(&m, 1);
        let out = dir.join("o.mlpackage");
        let result = write_package(&m, &PackageSpec::single("main"), &cache, &out);
        if needle.is_empty() {
            result.unwrap();
            continue;
        }
        let e = result.unwrap_err();
        assert!(e.to_string().contains(needle), "case {i}: {e} lacks {needle:?}");
        assert!(!out.exists());
    }
}

#[test]
fn dead_ops_are_not_emitted() {
    // The int64 cast is unsupported by Core ML but unused, so it is dropped.
    let text = "module @m {\n  func @main(%x: fp32[2]) -> (o: fp32[2]) {\n    %u = cast(%x) {dtype = int64} : int64[2]\n    %o = exp(%x) : fp32[2]\n    return %o\n  }\n}\n";
    let m = module(text);
    let dir = scratch("dead_ops");
    let info =
        write_package(&m, &PackageSpec::single("main"), &synthetic_weights(&m, 1), &dir.join("o.mlpackage")).unwrap();
    assert_eq!(info.op_count, 1);
}
