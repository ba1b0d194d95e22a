//! Packages that made the MIL package reader panic, abort or allocate without bound, found
//! by the `mil_package` fuzz target or by probing (docs/reliability.md, "Fuzzing"). Each is
//! written the way the fuzz target writes its input — a fixed `Manifest.json`, the model
//! proto and `weights/weight.bin` — and must now give a `ReadError` naming the problem.
//!
//! The fuzz reproducers are read from `fuzz/corpus/mil_package/regress_*` (the seed corpus
//! of the target); the probing cases are built here as protos, and the same bytes are in the
//! corpus too.

mod mil_common;

use std::collections::HashMap;
use std::path::PathBuf;

use anemllc::interp::{Tensor, evaluate};
use anemllc::ir::DType;

use anemllc::mil::proto::argument::Binding;
use anemllc::mil::proto::argument::binding::Binding as B;
use anemllc::mil::proto::model_kind::Type as ModelType;
use anemllc::mil::proto::{
    Argument, Block, DataType, Function, FunctionDescription, Model, ModelDescription, NamedValueType, Operation,
    Program, ValueType,
};
use anemllc::mil::tensor_data::{ConstTensor, Elements};
use anemllc::mil::text::summary_text;
use anemllc::mil::types::{immediate_value, name_attr, state_type, static_tensor_type};
use anemllc::mil::{PackageSpec, open_package, read_package, write_package};
use prost::Message;

/// A valid Manifest.json (the one the writer makes), so each input exercises the model and
/// weight files.
fn manifest() -> String {
    anemllc::mil::manifest::Manifest::new(
        "b9a3df3f-6dd7-4fa2-9171-f84e77160a4d",
        "c72ed00d-bc10-4d7a-b3b3-25ad73476bdc",
    )
    .to_json()
}

fn repo() -> PathBuf {
    mil_common::repo()
}

/// A fuzz input: `u32 LE n`, `n` bytes of model.mlmodel, the rest as weight.bin.
fn fuzz_input(model: &Model, blob: &[u8]) -> Vec<u8> {
    let bytes = model.encode_to_vec();
    let mut out = (bytes.len() as u32).to_le_bytes().to_vec();
    out.extend(bytes);
    out.extend(blob);
    out
}

/// Writes a fuzz input as the package `target/tmp/mil_reader_regressions/<name>.mlpackage`,
/// exactly as the fuzz target does (no weight.bin if
/// there are no blob bytes).
fn package(name: &str, data: &[u8]) -> PathBuf {
    let n = u32::from_le_bytes(data[..4].try_into().unwrap()) as usize;
    let rest = &data[4..];
    let (model, blob) = rest.split_at(n.min(rest.len()));
    let pkg = repo().join("target/tmp/mil_reader_regressions").join(format!("{name}.mlpackage"));
    let _ = std::fs::remove_dir_all(&pkg);
    let core = pkg.join("Data/com.apple.CoreML");
    std::fs::create_dir_all(core.join("weights")).unwrap();
    std::fs::write(pkg.join("Manifest.json"), manifest()).unwrap();
    std::fs::write(core.join("model.mlmodel"), model).unwrap();
    if !blob.is_empty() {
        std::fs::write(core.join("weights/weight.bin"), blob).unwrap();
    }
    pkg
}

/// The corpus file `fuzz/corpus/mil_package/regress_<name>`.
fn corpus(name: &str) -> Vec<u8> {
    std::fs::read(repo().join("fuzz/corpus/mil_package").join(format!("regress_{name}"))).unwrap()
}

/// `read_package`'s error for the package, which must fail; also renders it for `inspect`.
fn read_error(name: &str, data: &[u8]) -> String {
    let pkg = package(name, data);
    if let Ok(contents) = open_package(&pkg) {
        let _ = summary_text(&contents);
        let _ = anemllc::mil::text::program_text(&contents);
    }
    match read_package(&pkg) {
        Ok(_) => panic!("{name}: read_package accepted the package"),
        Err(e) => e.to_string(),
    }
}

fn assert_mentions(err: &str, needles: &[&str]) {
    for n in needles {
        assert!(err.contains(n), "error does not mention {n:?}: {err}");
    }
}

// ----- a tiny MIL program builder -----

fn ty(dtype: DataType, shape: &[usize]) -> ValueType {
    static_tensor_type(dtype, shape)
}

fn nvt(name: &str, t: ValueType) -> NamedValueType {
    NamedValueType { name: name.to_string(), r#type: Some(t) }
}

fn ints(dtype: DataType, v: &[i64]) -> ConstTensor {
    ConstTensor::new(dtype, vec![v.len()], Elements::Int(v.to_vec())).unwrap()
}

fn int(dtype: DataType, v: i64) -> ConstTensor {
    ConstTensor::new(dtype, vec![], Elements::Int(vec![v])).unwrap()
}

fn floats(shape: &[usize], v: &[f64]) -> ConstTensor {
    ConstTensor::new(DataType::Float32, shape.to_vec(), Elements::Float(v.to_vec())).unwrap()
}

/// `name = const(val = c)`.
fn konst(name: &str, c: ConstTensor) -> Operation {
    let mut op =
        Operation { r#type: "const".into(), outputs: vec![nvt(name, ty(c.dtype, &c.shape))], ..Default::default() };
    op.attributes.insert("name".into(), name_attr(name));
    op.attributes.insert("val".into(), immediate_value(&c).unwrap());
    op
}

/// `out = kind(param = name, …)` with the declared output type `out_ty`.
fn op(kind: &str, out: &str, out_ty: ValueType, params: &[(&str, &str)]) -> Operation {
    let mut op = Operation { r#type: kind.into(), outputs: vec![nvt(out, out_ty)], ..Default::default() };
    op.attributes.insert("name".into(), name_attr(out));
    for (p, n) in params {
        op.inputs
            .insert(p.to_string(), Argument { arguments: vec![Binding { binding: Some(B::Name(n.to_string())) }] });
    }
    op
}

/// A CoreML8 function.
fn function(inputs: Vec<NamedValueType>, ops: Vec<Operation>, outputs: &[&str]) -> Function {
    let block =
        Block { outputs: outputs.iter().map(|s| s.to_string()).collect(), operations: ops, ..Default::default() };
    Function {
        inputs,
        opset: "CoreML8".into(),
        block_specializations: [("CoreML8".to_string(), block)].into(),
        ..Default::default()
    }
}

/// An ML program of the named functions.
fn model(functions: Vec<(&str, Function)>) -> Model {
    let functions = functions.into_iter().map(|(n, f)| (n.to_string(), f)).collect();
    let program = Program { version: 1, functions, ..Default::default() };
    Model { specification_version: 9, r#type: Some(ModelType::MlProgram(program)), ..Default::default() }
}

/// A single-function (`main`) ML program.
fn program(inputs: Vec<NamedValueType>, ops: Vec<Operation>, outputs: &[&str]) -> Model {
    model(vec![("main", function(inputs, ops, outputs))])
}

/// A weight.bin header declaring `count` blobs and nothing else.
fn blob_header(count: u32) -> Vec<u8> {
    let mut h = vec![0u8; 64];
    h[0..4].copy_from_slice(&count.to_le_bytes());
    h[4..8].copy_from_slice(&2u32.to_le_bytes());
    h
}

const F32: DataType = DataType::Float32;
const I32: DataType = DataType::Int32;

// ----- fuzz findings -----

#[test]
fn fuzz_zero_dim_input_is_an_error() {
    // An input `x: fp32[0]` was taken over as is; the IR verifier refused the module, which
    // `read_package` reported as an internal error.
    let err = read_error("zero_dim_input", &corpus("zero_dim_input"));
    assert_mentions(&err, &["input x: fp32[0] has an empty axis"]);
}

// ----- probing cases (each also in the corpus as `regress_<name>`) -----

fn layer_norm_axes() -> Vec<u8> {
    let m = program(
        vec![nvt("x", ty(F32, &[2, 3]))],
        vec![
            konst("axes", ints(I32, &[1, 1, 1])),
            konst("gamma", floats(&[3], &[1.0, 1.0, 1.0])),
            op("layer_norm", "y", ty(F32, &[2, 3]), &[("x", "x"), ("axes", "axes"), ("gamma", "gamma")]),
        ],
        &["y"],
    );
    fuzz_input(&m, &[])
}

fn conv(x_shape: &[usize], strides: &[i64], dilations: &[i64]) -> Vec<u8> {
    let m = program(
        vec![nvt("x", ty(F32, x_shape))],
        vec![
            konst("w", floats(&[1, 1, 3, 3], &[1.0; 9])),
            konst("strides", ints(DataType::Int64, strides)),
            konst("dilations", ints(DataType::Int64, dilations)),
            konst("pad_type", ConstTensor::scalar_str("same")),
            op(
                "conv",
                "y",
                ty(F32, &[1, 1, 4, 4]),
                &[
                    ("x", "x"),
                    ("weight", "w"),
                    ("strides", "strides"),
                    ("dilations", "dilations"),
                    ("pad_type", "pad_type"),
                ],
            ),
        ],
        &["y"],
    );
    fuzz_input(&m, &[])
}

fn conv_strides() -> Vec<u8> {
    conv(&[1, 1, 4, 4], &[1], &[1, 1])
}

fn conv_empty() -> Vec<u8> {
    conv(&[1, 1, 0, 4], &[1, 1], &[1, 1])
}

fn conv_dilation() -> Vec<u8> {
    conv(&[1, 1, 4, 4], &[1, 1], &[i64::MAX, 1])
}

fn tile_reps() -> Vec<u8> {
    let m = program(
        vec![nvt("x", ty(F32, &[2]))],
        vec![
            konst("reps", ints(DataType::Int64, &[1 << 62])),
            op("tile", "y", ty(F32, &[1 << 63]), &[("x", "x"), ("reps", "reps")]),
        ],
        &["y"],
    );
    fuzz_input(&m, &[])
}

fn split_count() -> Vec<u8> {
    let m = program(
        vec![nvt("x", ty(F32, &[1 << 40]))],
        vec![
            konst("axis", int(I32, 0)),
            konst("n", int(DataType::Int64, 1 << 40)),
            op("split", "y", ty(F32, &[1]), &[("x", "x"), ("axis", "axis"), ("num_splits", "n")]),
        ],
        &["y"],
    );
    fuzz_input(&m, &[])
}

fn reshape_overflow() -> Vec<u8> {
    let m = program(
        vec![nvt("x", ty(F32, &[1 << 32, 1 << 32]))],
        vec![konst("shape", ints(I32, &[-1])), op("reshape", "y", ty(F32, &[1]), &[("x", "x"), ("shape", "shape")])],
        &["y"],
    );
    fuzz_input(&m, &[])
}

fn slice_begin() -> Vec<u8> {
    let m = program(
        vec![nvt("x", ty(F32, &[0, 1 << 63]))],
        vec![
            konst("begin", ints(DataType::Int64, &[0, i64::MIN])),
            konst("end", ints(DataType::Int64, &[0, 1])),
            op("slice_by_index", "y", ty(F32, &[0, 1]), &[("x", "x"), ("begin", "begin"), ("end", "end")]),
        ],
        &["y"],
    );
    fuzz_input(&m, &[])
}

fn blob_count() -> Vec<u8> {
    let m = program(vec![nvt("x", ty(F32, &[2]))], vec![op("exp", "y", ty(F32, &[2]), &[("x", "x")])], &["y"]);
    fuzz_input(&m, &blob_header(u32::MAX))
}

fn described_twice() -> Vec<u8> {
    let mut m = program(vec![nvt("x", ty(F32, &[2]))], vec![op("exp", "y", ty(F32, &[2]), &[("x", "x")])], &["y"]);
    let main = FunctionDescription { name: "main".into(), ..Default::default() };
    m.description = Some(ModelDescription { functions: vec![main.clone(), main], ..Default::default() });
    fuzz_input(&m, &[])
}

fn exp_of(input: &str, outputs: &[&str]) -> Function {
    function(vec![nvt(input, ty(F32, &[2]))], vec![op("exp", "y", ty(F32, &[2]), &[("x", input)])], outputs)
}

fn input_name() -> Vec<u8> {
    fuzz_input(&model(vec![("main", exp_of("x y", &["y"]))]), &[])
}

fn output_twice() -> Vec<u8> {
    fuzz_input(&model(vec![("main", exp_of("x", &["y", "y"]))]), &[])
}

fn function_name() -> Vec<u8> {
    fuzz_input(&model(vec![("ma/in", exp_of("x", &["y"]))]), &[])
}

fn read_state(len: usize, outputs: &[&str]) -> Function {
    let f16 = DataType::Float16;
    function(
        vec![nvt("s", state_type(f16, &[len]))],
        vec![op("read_state", "y", ty(f16, &[len]), &[("input", "s")])],
        outputs,
    )
}

fn state_output() -> Vec<u8> {
    fuzz_input(&model(vec![("main", read_state(2, &["s"]))]), &[])
}

fn state_types() -> Vec<u8> {
    fuzz_input(&model(vec![("a", read_state(2, &["y"])), ("b", read_state(3, &["y"]))]), &[])
}

/// Every probing case by corpus name.
fn probes() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("layer_norm_axes", layer_norm_axes()),
        ("conv_strides", conv_strides()),
        ("conv_empty", conv_empty()),
        ("conv_dilation", conv_dilation()),
        ("tile_reps", tile_reps()),
        ("split_count", split_count()),
        ("reshape_overflow", reshape_overflow()),
        ("slice_begin", slice_begin()),
        ("blob_count", blob_count()),
        ("described_twice", described_twice()),
        ("input_name", input_name()),
        ("output_twice", output_twice()),
        ("function_name", function_name()),
        ("state_output", state_output()),
        ("state_types", state_types()),
    ]
}

#[test]
fn corpus_holds_the_probing_cases() {
    for (name, data) in probes() {
        assert!(corpus(name) == data, "fuzz/corpus/mil_package/regress_{name} is stale (see write_corpus)");
    }
}

#[test]
fn layer_norm_with_a_repeated_axis_is_an_error() {
    let err = read_error("layer_norm_axes", &layer_norm_axes());
    assert_mentions(&err, &["op `layer_norm`", "repeat an axis"]);
}

#[test]
fn conv_with_one_stride_for_two_dims_is_an_error() {
    let err = read_error("conv_strides", &conv_strides());
    assert_mentions(&err, &["op `conv`", "strides [1] need one entry per spatial dim"]);
}

#[test]
fn conv_same_padding_of_an_empty_dim_is_an_error() {
    // Was an underflow in the `same` padding arithmetic; the empty input is now refused first.
    let err = read_error("conv_empty", &conv_empty());
    assert_mentions(&err, &["input x: fp32[1, 1, 0, 4] has an empty axis"]);
}

#[test]
fn conv_same_padding_with_a_huge_dilation_is_an_error() {
    let err = read_error("conv_dilation", &conv_dilation());
    assert_mentions(&err, &["op `conv`", "same padding of spatial dim 0 (size 4) is out of range"]);
}

#[test]
fn tile_with_huge_reps_is_an_error() {
    let err = read_error("tile_reps", &tile_reps());
    assert_mentions(&err, &["op `tile`", "[2] tiled by reps [4611686018427387904] is too large"]);
}

#[test]
fn split_into_more_parts_than_outputs_is_an_error() {
    let err = read_error("split_count", &split_count());
    assert_mentions(&err, &["op `split`", "num_splits 1099511627776 does not match the op's 1 outputs"]);
}

#[test]
fn input_whose_element_count_overflows_is_an_error() {
    let err = read_error("reshape_overflow", &reshape_overflow());
    assert_mentions(&err, &["function main: input x: fp32[4294967296, 4294967296] is too large"]);
}

#[test]
fn input_with_a_huge_dim_next_to_a_zero_is_an_error() {
    let err = read_error("slice_begin", &slice_begin());
    assert_mentions(&err, &["function main: input x: fp32[0, 9223372036854775808] is too large"]);
}

#[test]
fn blob_header_with_a_huge_count_does_not_allocate() {
    // Nothing refers to the blobs, so the program reads; `inspect` walks the records.
    let pkg = package("blob_count", &blob_count());
    let summary = summary_text(&open_package(&pkg).unwrap());
    assert!(summary.contains("invalid: blob at offset 64: past the end"), "{summary}");
    let read = read_package(&pkg).unwrap();
    assert_eq!(read.module.functions.len(), 1);
}

#[test]
fn a_function_described_twice_is_read_once() {
    let read = read_package(&package("described_twice", &described_twice())).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = read.module.functions.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["main"]);
}

#[test]
fn names_the_ir_cannot_spell_are_errors() {
    let err = read_error("input_name", &input_name());
    assert_mentions(&err, &["function main: input \"x y\": not a valid IR value name"]);
    let err = read_error("output_twice", &output_twice());
    assert_mentions(&err, &["function main: output y is returned twice"]);
    let err = read_error("function_name", &function_name());
    assert_mentions(&err, &["function ma/in: not a valid IR function name"]);
}

#[test]
fn returning_a_state_is_an_error() {
    let err = read_error("state_output", &state_output());
    assert_mentions(&err, &["function main: output s is a state, which cannot be returned"]);
}

#[test]
fn one_state_name_with_two_types_is_an_error() {
    let err = read_error("state_types", &state_types());
    assert_mentions(&err, &["function b: state s is state<fp16[3]> here but state<fp16[2]> in function a"]);
}

#[test]
fn tile_of_a_non_unit_axis_still_reads() {
    // `tile` repeating a non-unit axis: reshape → expand → reshape, not one operand per copy.
    let m = program(
        vec![nvt("x", ty(F32, &[2, 3]))],
        vec![konst("reps", ints(I32, &[3, 2])), op("tile", "y", ty(F32, &[6, 6]), &[("x", "x"), ("reps", "reps")])],
        &["y"],
    );
    let read = read_package(&package("tile_ok", &fuzz_input(&m, &[]))).unwrap_or_else(|e| panic!("{e}"));
    let x = Tensor::from_f32(DType::F32, &[2, 3], (0..6).map(|v| v as f32).collect()).unwrap();
    let inputs = HashMap::from([("x".to_string(), x)]);
    let got = evaluate(&read.module, "main", &inputs, &mut HashMap::new(), &read.weight_cache()).unwrap();
    let want: Vec<f32> = (0..36).map(|i| ((i / 6 % 2) * 3 + i % 3) as f32).collect();
    assert_eq!(got["y"].to_f32_vec(), want);
}

/// Regenerates the probing reproducers and the small valid seeds (the hand-written `.air`
/// examples, emitted by anemllc) in `fuzz/corpus/mil_package/`:
/// `cargo test --test mil_reader_regressions -- --ignored write_corpus`.
#[test]
#[ignore]
fn write_corpus() {
    let dir = repo().join("fuzz/corpus/mil_package");
    for (name, data) in probes() {
        std::fs::write(dir.join(format!("regress_{name}")), data).unwrap();
    }
    let tmp = repo().join("target/tmp/mil_reader_regressions/seeds");
    for name in mil_common::AIR_EXAMPLES {
        let m = mil_common::air(name);
        let cache = mil_common::synthetic_weights(&m, 3);
        let spec = PackageSpec::multi(m.functions.iter().map(|f| (f.name.replace('.', "_"), f.name.clone())));
        let pkg = tmp.join(format!("{name}.mlpackage"));
        write_package(&m, &spec, &cache, &pkg).unwrap();
        let core = pkg.join("Data/com.apple.CoreML");
        let model = std::fs::read(core.join("model.mlmodel")).unwrap();
        let blob = std::fs::read(core.join("weights/weight.bin")).unwrap_or_default();
        let mut data = (model.len() as u32).to_le_bytes().to_vec();
        data.extend(model);
        data.extend(blob);
        std::fs::write(dir.join(format!("air_{name}")), data).unwrap();
    }
}
