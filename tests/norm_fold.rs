//! RMSNorm gains folded into the projections that read the norm (`frontend::norm_fold`,
//! issue #15): what the lowering declares for every architecture, the values of the folded
//! weights against the checkpoint, and the calibration keys of the folded weights.

use std::path::PathBuf;

use anemllc::calib::{CalibInput, CalibOptions, calibrate};
use anemllc::checkpoint::Checkpoint;
use anemllc::convert::{ConvertOptions, folds_norm_gains};
use anemllc::frontend::{LowerOptions, lower_checkpoint};
use anemllc::ir::{ConstData, Function, Module, Op, Recipe, ValueDef, ValueId};
use anemllc::weights::materialize;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models").join(name)
}

fn producer(f: &Function, v: ValueId) -> &Op {
    match f.values[v].def {
        ValueDef::Result { node, .. } => &f.nodes[node].op,
        ValueDef::Input(_) => panic!("@{}: `{}` is an input", f.name, f.values[v].name),
    }
}

fn weight_of<'m>(m: &'m Module, f: &Function, v: ValueId) -> &'m anemllc::ir::Weight {
    match producer(f, v) {
        Op::Weight { name } => m.weight(name).expect("declared"),
        other => panic!("@{}: operand is {other:?}, not a weight", f.name),
    }
}

/// The rms_norm producing the named value, with its gain operand.
fn norm_gain<'f>(f: &'f Function, value: &str) -> &'f Op {
    let v = f.value_by_name(value).unwrap_or_else(|| panic!("@{}: no value {value}", f.name));
    let ValueDef::Result { node, .. } = f.values[v].def else { panic!("input") };
    let n = &f.nodes[node];
    assert!(matches!(n.op, Op::RmsNorm { .. }), "@{}: {value} is not an rms_norm", f.name);
    producer(f, n.operands[1])
}

/// The weight of the linear producing the named value.
fn linear_weight<'m>(m: &'m Module, f: &Function, value: &str) -> &'m anemllc::ir::Weight {
    let v = f.value_by_name(value).unwrap_or_else(|| panic!("@{}: no value {value}", f.name));
    let ValueDef::Result { node, .. } = f.values[v].def else { panic!("input") };
    let n = &f.nodes[node];
    assert!(matches!(n.op, Op::Linear), "@{}: {value} is not a linear", f.name);
    weight_of(m, f, n.operands[1])
}

/// Every architecture: the input and MLP-input norms run with a unit gain; the fused qkv,
/// gate and up weights are `scale_along(<projection>, <that norm's gain>, axis = 1)` whose
/// first checkpoint tensor is the projection's; Gemma's sandwich norms and the final norm
/// keep their gains. The folded values equal the projection's times the gain, column by
/// column, computed here from the checkpoint tensors independently of the recipe.
#[test]
fn norms_feeding_projections_are_gain_free_and_their_gains_live_in_the_weights() {
    for (name, input_norm, mlp_norm) in [
        ("llama_tiny", "input_layernorm", "post_attention_layernorm"),
        ("qwen2_bias", "input_layernorm", "post_attention_layernorm"),
        ("qwen3_headdim", "input_layernorm", "post_attention_layernorm"),
        ("gemma3_tiny", "input_layernorm", "pre_feedforward_layernorm"),
    ] {
        let dir = fixture(name);
        let m = lower_checkpoint(&dir, &LowerOptions::new(16, 4)).unwrap();
        let ckpt = Checkpoint::open(&dir).unwrap();
        let gemma = name.starts_with("gemma");
        let f = m.function("layer0.infer").unwrap();
        for norm in ["attn_in", "mlp_in"] {
            match norm_gain(f, norm) {
                Op::Const { data: ConstData::Floats(v), .. } => assert_eq!(v, &[1.0], "{name} {norm}"),
                other => panic!("{name}: {norm} has gain {other:?}"),
            }
        }
        if gemma {
            assert!(matches!(norm_gain(f, "attn_out"), Op::Weight { .. }), "{name}: sandwich norms keep their gain");
        }
        let final_norm = m.function("final_norm.infer").unwrap();
        assert!(matches!(norm_gain(final_norm, "normed"), Op::Weight { .. }), "{name}: the final norm keeps its gain");

        let read = |r: &Recipe| -> Vec<f32> {
            let t = materialize(r, &ckpt).unwrap();
            t.as_f32().unwrap().iter().copied().collect()
        };
        for (value, first, gain) in [
            ("qkv", "self_attn.q_proj.weight", input_norm),
            ("gate", "mlp.gate_proj.weight", mlp_norm),
            ("up", "mlp.up_proj.weight", mlp_norm),
        ] {
            let w = linear_weight(&m, f, value);
            let Recipe::ScaleAlong { input, scale, axis: 1 } = &w.recipe else {
                panic!("{name}: {value} weight is {}", w.recipe)
            };
            let mut leaves = Vec::new();
            w.recipe.checkpoint_tensors(&mut leaves);
            assert_eq!(leaves[0], format!("model.layers.0.{first}"), "{name} {value}: calibration key");
            assert_eq!(*leaves.last().unwrap(), format!("model.layers.0.{gain}.weight"), "{name} {value}");
            // The gain: the checkpoint's, plus one for Gemma.
            let stored = read(&Recipe::Checkpoint {
                tensor: format!("model.layers.0.{gain}.weight"),
                ty: scale.infer_type().unwrap(),
            });
            let g: Vec<f64> = stored.iter().map(|&v| f64::from(v) + if gemma { 1.0 } else { 0.0 }).collect();
            let (base, folded) = (read(input), read(&w.recipe));
            let cols = g.len();
            assert_eq!(base.len(), folded.len());
            for (k, (&b, &got)) in base.iter().zip(&folded).enumerate() {
                let want = (f64::from(b) * f64::from(g[k % cols] as f32)) as f32;
                assert_eq!(got, want, "{name} {value} element {k}");
            }
        }
    }
}

/// Calibration runs the lowered module: the recorded inputs of the folded projections are
/// the gain-free normalised values, keyed by the projections' own tensors (never a gain's).
#[test]
fn calibration_keys_folded_weights_by_their_projection() {
    let opts = CalibOptions { input: CalibInput::Builtin, window: 16, max_tokens: Some(32), fold_norm_gains: true };
    let c = calibrate(&fixture("llama_tiny"), &opts, &|_, _| {}).unwrap();
    for layer in 0..3 {
        for t in ["self_attn.q_proj", "mlp.gate_proj", "mlp.up_proj", "self_attn.o_proj", "mlp.down_proj"] {
            let key = format!("model.layers.{layer}.{t}.weight");
            let s = c.get(&key).unwrap_or_else(|| panic!("no statistics for {key}"));
            let width = if t == "mlp.down_proj" { 128 } else { 64 };
            assert!(s.rows > 0 && s.sum_sq.len() == width, "{key}");
        }
    }
    assert!(c.tensors.keys().all(|k| !k.contains("layernorm")), "{:?}", c.tensors.keys().collect::<Vec<_>>());
    // Gain-free inputs: every row of a folded projection's input has mean square ≈ 1 (the
    // norm's output without a gain), so E[x²] summed over channels ≈ the width.
    let s = c.get("model.layers.0.mlp.gate_proj.weight").unwrap();
    let total: f64 = s.moments().iter().sum();
    assert!((total - 64.0).abs() < 0.01 * 64.0, "Σ E[x_j²] = {total}");
}

/// Unfolded on request (`fold_norm_gains: false`, what `convert` asks for when the layer
/// weights are palettized): the norms keep their gain weights and no weight is a
/// `scale_along`.
#[test]
fn palettized_conversions_keep_the_gains() {
    let opts = LowerOptions { fold_norm_gains: false, ..LowerOptions::new(16, 4) };
    for name in ["llama_tiny", "gemma3_tiny"] {
        let m = lower_checkpoint(&fixture(name), &opts).unwrap();
        let f = m.function("layer0.infer").unwrap();
        for norm in ["attn_in", "mlp_in"] {
            assert!(matches!(norm_gain(f, norm), Op::Weight { .. }), "{name} {norm}");
        }
        assert!(m.weights.iter().all(|w| !matches!(w.recipe, Recipe::ScaleAlong { .. })), "{name}");
        assert_eq!(linear_weight(&m, f, "qkv").name, "layers.0.qkv_proj.weight");
    }
    let mut c = ConvertOptions {
        lower: LowerOptions::new(16, 4),
        opt: Default::default(),
        layout: Default::default(),
        force: false,
        calibrate: None,
        fp16_scale: Default::default(),
    };
    assert!(folds_norm_gains(&c), "dense layers fold");
    c.opt.lut = anemllc::quant::LutConfig::parse("ffn=6").unwrap();
    assert!(!folds_norm_gains(&c), "palettized layers keep their gains");
    c.opt.lut = anemllc::quant::LutConfig::parse("lm_head=6").unwrap();
    assert!(folds_norm_gains(&c), "a palettized head alone does not matter");
    c.opt.lut = anemllc::quant::LutConfig::parse("ffn=auto:4.5").unwrap();
    assert!(!folds_norm_gains(&c), "mixed bits palettize the layers too");
}
