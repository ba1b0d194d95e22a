//! The reader on packages it did not write, and `anemllc inspect`.
//!
//! `tests/coreml/make_reference_package.py` builds a package with coremltools' own MIL
//! builder and default pass pipeline (gather with coremltools' int16 index idiom, layer_norm
//! with gamma/beta, linear, gelu, a uint4 LUT-palettized 1-D conv, state update, softmax,
//! rsqrt with epsilon, argmax) and a numpy reference of its outputs; the reader must
//! translate it and the reference interpreter must reproduce the numpy outputs (ignored
//! without the coremltools venv, see `build.rs`).

mod mil_common;

use std::collections::HashMap;
use std::process::Command;

use anemllc::interp::{Tensor, evaluate};
use anemllc::ir::DType;
use anemllc::mil::{PackageSpec, read_package, write_package};
use mil_common::*;

fn tensor(dtype: DType, v: &serde_json::Value) -> Tensor {
    let shape: Vec<usize> = v["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
    let data = v["data"].as_array().unwrap();
    if dtype.is_float() {
        Tensor::from_f32(dtype, &shape, data.iter().map(|x| x.as_f64().unwrap() as f32).collect()).unwrap()
    } else {
        Tensor::from_i64(dtype, &shape, data.iter().map(|x| x.as_i64().unwrap()).collect()).unwrap()
    }
}

#[test]
#[cfg_attr(not(coreml_venv), ignore = "needs the coremltools venv: bash tests/coreml/setup_venv.sh")]
fn reads_a_coremltools_made_package() {
    let dir = scratch("coremltools_made");
    let out = Command::new(coreml_python())
        .arg(repo().join("tests/coreml/make_reference_package.py"))
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "make_reference_package.py failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap()).unwrap();
    let pkg = dir.join("reference.mlpackage");

    let back = read_package(&pkg).unwrap_or_else(|e| panic!("{e}"));
    let cache = back.weight_cache();
    let inputs: HashMap<String, Tensor> = HashMap::from([
        ("input_ids".to_string(), tensor(DType::I32, &reference["inputs"]["input_ids"])),
        ("pos".to_string(), tensor(DType::I32, &reference["inputs"]["pos"])),
    ]);
    let mut states = HashMap::from([("kv".to_string(), tensor(DType::F16, &reference["states"]["kv"]))]);
    let got = evaluate(&back.module, "main", &inputs, &mut states, &cache).unwrap_or_else(|e| panic!("{e}"));

    let close = |name: &str, a: &Tensor, b: &Tensor| {
        assert_eq!(a.tensor_type(), b.tensor_type(), "{name}");
        let (x, y) = (a.to_f32_vec(), b.to_f32_vec());
        let worst = x.iter().zip(&y).map(|(p, q)| (p - q).abs() / q.abs().max(1.0)).fold(0f32, f32::max);
        eprintln!("{name}: max relative error {worst}");
        assert!(worst < 2e-2, "{name}: max relative error {worst}");
    };
    close("kv", &states["kv"], &tensor(DType::F16, &reference["states_after"]["kv"]));
    close("out", &got["out"], &tensor(DType::F16, &reference["outputs"]["out"]));
    // argmax agrees wherever the reference's top two are clearly apart.
    let best = got["best"].to_i64_vec().unwrap();
    let want = tensor(DType::I32, &reference["outputs"]["best"]).to_i64_vec().unwrap();
    let agree = best.iter().zip(&want).filter(|(a, b)| a == b).count();
    assert!(agree * 4 >= best.len() * 3, "argmax {best:?} vs {want:?}");

    // Inspect prints the program and summary of a foreign package, and its IR.
    let bin = env!("CARGO_BIN_EXE_anemllc");
    let out = Command::new(bin).args(["inspect", "--ir"]).arg(&pkg).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for needle in [
        "program(1.3)",
        "func main<ios18>(",
        "constexpr_lut_to_dense(",
        "} -> (out, best);",
        "state  kv: fp16[1, 16, 16]",
        "lut_to_dense(",
    ] {
        assert!(text.contains(needle), "inspect output lacks {needle:?}:\n{text}");
    }
}

#[test]
fn inspect_prints_program_and_summary() {
    let m = air("kv_state");
    let cache = synthetic_weights(&m, 5);
    let dir = scratch("inspect");
    let pkg = dir.join("kv.mlpackage");
    let mut spec = PackageSpec::multi([("infer", "infer"), ("prefill", "prefill")]);
    spec.metadata.author = "tests".into();
    spec.metadata.user_defined.insert("com.anemll.context_length".into(), "8".into());
    write_package(&m, &spec, &cache, &pkg).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_anemllc")).arg("inspect").arg(&pkg).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let expected = [
        "program(1.3)",
        "    func infer<ios18>(tensor<fp32, [1, 2, 1, 4]> k, tensor<int32, [1]> current_pos, state<tensor<fp32, [2, 2, 8, 4]>> kv) {",
        "        tensor<fp32, [2, 2, 8, 4]> cache = read_state(input = kv)[name = string(\"cache\")];",
        "        write_state(data = updated, input = kv)[name = string(\"kv_write_state\")];",
        "    } -> (keys);",
        "functions: 2 (default: infer)",
        "    state  kv: fp32[2, 2, 8, 4]",
        "    output keys: fp32[1, 2, 8, 4]",
        "blob references: 1 (1 distinct blobs)",
        "metadata author: tests",
        "metadata com.anemll.context_length = 8",
    ];
    for line in expected {
        assert!(text.contains(line), "inspect output lacks {line:?}:\n{text}");
    }
    // Not a package: exit code 2 and a message naming the file.
    let out =
        Command::new(env!("CARGO_BIN_EXE_anemllc")).arg("inspect").arg(dir.join("missing.mlpackage")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Manifest.json"));
}

#[test]
fn enumerated_inputs_read_back_with_their_default_shape() {
    let (m, cache) = llama_tiny();
    let dir = scratch("enumerated");
    let pkg = dir.join("embed.mlpackage");
    let spec = PackageSpec {
        functions: vec![
            anemllc::mil::FunctionSpec::new("main", "embed.infer")
                .with_enumerated_shapes("input_ids", vec![vec![1, 1], vec![1, 8]]),
        ],
        ..Default::default()
    };
    write_package(&m, &spec, &cache, &pkg).unwrap();
    // The MIL input has an unknown sequence dim; the description lists both shapes.
    let contents = anemllc::mil::open_package(&pkg).unwrap();
    let text = anemllc::mil::text::program_text(&contents).unwrap();
    assert!(text.contains("func main<ios18>(tensor<int32, [1, ?]> input_ids)"), "{text}");
    assert!(text.contains("tensor<fp32, [1, ?, 64]> hidden_states = gather("), "{text}");
    let summary = anemllc::mil::text::summary_text(&contents);
    assert!(summary.contains("input  input_ids: int32[1, 1]  enumerated {[1, 1], [1, 8]}"), "{summary}");
    assert!(summary.contains("output hidden_states: fp32 (flexible shape)"), "{summary}");
    let back = read_package(&pkg).unwrap();
    let (inputs, mut states) = random_inputs(&m, "embed.infer", 4);
    let want = evaluate(&m, "embed.infer", &inputs, &mut states.clone(), &cache).unwrap();
    let got = evaluate(&back.module, "main", &inputs, &mut states, &back.weight_cache()).unwrap();
    assert_eq!(got["hidden_states"], want["hidden_states"]);
}

#[test]
fn damaged_packages_are_errors_not_panics() {
    let m = air("mlp_block");
    let cache = synthetic_weights(&m, 2);
    let dir = scratch("damaged");
    let fresh = |name: &str| {
        let p = dir.join(format!("{name}.mlpackage"));
        write_package(&m, &PackageSpec::single("mlp"), &cache, &p).unwrap();
        p
    };
    let model = "Data/com.apple.CoreML/model.mlmodel";
    let weights = "Data/com.apple.CoreML/weights/weight.bin";

    let p = fresh("manifest");
    let text = std::fs::read_to_string(p.join("Manifest.json")).unwrap();
    let root =
        serde_json::from_str::<serde_json::Value>(&text).unwrap()["rootModelIdentifier"].as_str().unwrap().to_string();
    std::fs::write(
        p.join("Manifest.json"),
        text.replace(&format!("\"rootModelIdentifier\": \"{root}\""), "\"rootModelIdentifier\": \"x\""),
    )
    .unwrap();
    let e = read_package(&p).err().unwrap().to_string();
    assert!(e.contains("rootModelIdentifier"), "{e}");

    let p = fresh("truncated");
    let bytes = std::fs::read(p.join(model)).unwrap();
    std::fs::write(p.join(model), &bytes[..bytes.len() / 2]).unwrap();
    let e = read_package(&p).err().unwrap().to_string();
    assert!(e.contains("not a Core ML model proto"), "{e}");

    let p = fresh("version");
    let mut w = std::fs::read(p.join(weights)).unwrap();
    w[4] = 1;
    std::fs::write(p.join(weights), &w).unwrap();
    let e = read_package(&p).err().unwrap().to_string();
    assert!(e.contains("version 1"), "{e}");

    let p = fresh("sentinel");
    let mut w = std::fs::read(p.join(weights)).unwrap();
    w[64] ^= 0xff;
    std::fs::write(p.join(weights), &w).unwrap();
    let e = read_package(&p).err().unwrap().to_string();
    assert!(e.contains("sentinel"), "{e}");

    let p = fresh("short");
    let w = std::fs::read(p.join(weights)).unwrap();
    std::fs::write(p.join(weights), &w[..w.len() - 4]).unwrap();
    let e = read_package(&p).err().unwrap().to_string();
    assert!(e.contains("past the end"), "{e}");

    // Random byte flips in the model proto: any outcome but a panic.
    let p = fresh("flips");
    let original = std::fs::read(p.join(model)).unwrap();
    let mut rng = Rng::new(11);
    for _ in 0..300 {
        let mut b = original.clone();
        for _ in 0..1 + rng.below(4) {
            let i = rng.below(b.len() as u64) as usize;
            b[i] ^= 1 << rng.below(8);
        }
        std::fs::write(p.join(model), &b).unwrap();
        let Ok(r) = read_package(&p) else { continue };
        // Run it only if the flip left a function of sane size.
        let Some(f) = r.module.function("mlp") else { continue };
        let small = |t: &anemllc::ir::TensorType| t.checked_numel().is_some_and(|n| n < 1 << 16);
        let sane = f.values.iter().all(|(_, v)| small(v.ty.tensor())) && r.module.weights.iter().all(|w| small(&w.ty));
        if sane {
            let (inputs, mut states) = random_inputs(&r.module, "mlp", 1);
            let _ = evaluate(&r.module, "mlp", &inputs, &mut states, &r.weight_cache());
        }
    }
}
