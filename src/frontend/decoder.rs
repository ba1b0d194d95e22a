//! The generic decoder-only lowering: turns a [`DecoderSpec`] + normalised config into the
//! framework-neutral module described in `docs/module-conventions.md`, computing exactly
//! what transformers' eager Llama/Qwen2/Qwen3 forward computes (fp32).

use super::config::ModelConfig;
use super::spec::{DecoderSpec, LayerTensors};
use crate::ir::{DType, FunctionBuilder, Module, Op, TensorType, Type, TypeError, ValueId};

/// Sizes every function shares.
#[derive(Clone, Copy, Debug)]
pub struct Dims {
    pub hidden: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub intermediate: usize,
    pub vocab: usize,
    pub context: usize,
    pub batch: usize,
    pub eps: f64,
}

impl Dims {
    pub fn new(cfg: &ModelConfig, context: usize, batch: usize) -> Self {
        Dims {
            hidden: cfg.hidden,
            heads: cfg.heads,
            kv_heads: cfg.kv_heads,
            head_dim: cfg.head_dim,
            intermediate: cfg.intermediate,
            vocab: cfg.vocab,
            context,
            batch,
            eps: cfg.rms_eps,
        }
    }
}

fn f32t(shape: &[usize]) -> TensorType {
    TensorType::new(DType::F32, shape.to_vec())
}

fn i32t(shape: &[usize]) -> TensorType {
    TensorType::new(DType::I32, shape.to_vec())
}

/// Lowers `embed.{mode}`: token ids `[1, S]` → hidden `[1, S, H]`.
pub fn lower_embed(
    m: &Module,
    spec: &DecoderSpec,
    d: &Dims,
    fname: &str,
    s: usize,
) -> Result<crate::ir::Function, TypeError> {
    let mut b = FunctionBuilder::new(m, fname);
    let ids = b.input("input_ids", i32t(&[1, s]));
    let table = b.weight(&spec.embed_tokens, "embed_table")?;
    let h = b.op(Op::Gather { axis: 0 }, &[table, ids], "hidden_states")?;
    debug_assert_eq!(b.tensor_ty(h).shape, vec![1, s, d.hidden]);
    b.output("hidden_states", h);
    Ok(b.finish())
}

/// Lowers `final_norm.{mode}`: the model's final RMSNorm over `[1, S, H]`.
pub fn lower_final_norm(
    m: &Module,
    spec: &DecoderSpec,
    d: &Dims,
    fname: &str,
    s: usize,
) -> Result<crate::ir::Function, TypeError> {
    let mut b = FunctionBuilder::new(m, fname);
    let h = b.input("hidden_states", f32t(&[1, s, d.hidden]));
    let g = b.weight(&spec.final_norm, "final_norm_gain")?;
    let n = b.op(Op::RmsNorm { axis: -1, eps: d.eps }, &[h, g], "normed")?;
    b.output("output_hidden_states", n);
    Ok(b.finish())
}

/// Lowers `lm_head.{mode}`: normed hidden `[1, S, H]` → `logits1 … logitsK`, one projection
/// per vocabulary piece (`pieces` names the piece weights in vocabulary order).
pub fn lower_lm_head(
    m: &Module,
    pieces: &[String],
    d: &Dims,
    fname: &str,
    s: usize,
) -> Result<crate::ir::Function, TypeError> {
    let mut b = FunctionBuilder::new(m, fname);
    let h = b.input("hidden_states", f32t(&[1, s, d.hidden]));
    for (k, piece) in pieces.iter().enumerate() {
        let w = b.weight(piece, &format!("lm_head_w{}", k + 1))?;
        let logits = b.op(Op::Linear, &[h, w], &format!("logits{}", k + 1))?;
        b.output(&format!("logits{}", k + 1), logits);
    }
    Ok(b.finish())
}

/// Builder helpers for the layer body.
struct Layer<'a, 'm> {
    b: &'a mut FunctionBuilder<'m>,
    d: Dims,
    s: usize,
}

impl Layer<'_, '_> {
    fn op(&mut self, op: Op, args: &[ValueId], name: &str) -> Result<ValueId, TypeError> {
        self.b.op(op, args, name)
    }

    fn linear(&mut self, x: ValueId, weight: &str, bias: Option<&str>, name: &str) -> Result<ValueId, TypeError> {
        let w = self.b.weight(weight, &format!("{name}_w"))?;
        let mut args = vec![x, w];
        if let Some(bias) = bias {
            args.push(self.b.weight(bias, &format!("{name}_b"))?);
        }
        self.op(Op::Linear, &args, name)
    }

    /// `[1, S, n·hd]` → `[1, n, S, hd]`, with an optional per-head RMSNorm before the transpose.
    fn heads(&mut self, x: ValueId, n: usize, norm: Option<&str>, name: &str) -> Result<ValueId, TypeError> {
        let (s, hd) = (self.s, self.d.head_dim);
        let mut y = self.op(Op::Reshape { shape: vec![1, s, n, hd] }, &[x], &format!("{name}_split"))?;
        if let Some(gain) = norm {
            let g = self.b.weight(gain, &format!("{name}_norm_gain"))?;
            y = self.op(Op::RmsNorm { axis: -1, eps: self.d.eps }, &[y, g], &format!("{name}_normed"))?;
        }
        self.op(Op::Transpose { perm: vec![0, 2, 1, 3] }, &[y], &format!("{name}_heads"))
    }

    /// Half-split (NeoX) rotary embedding: `x·cos + rotate_half(x)·sin`.
    fn rope(&mut self, x: ValueId, cos: ValueId, sin: ValueId, name: &str) -> Result<ValueId, TypeError> {
        let half = self.d.head_dim / 2;
        let parts = self.b.op_multi(Op::Split { axis: 3, sizes: vec![half, half] }, &[x], &format!("{name}_half"))?;
        let neg = self.op(Op::Neg, &[parts[1]], &format!("{name}_neg_hi"))?;
        let rot = self.op(Op::Concat { axis: 3 }, &[neg, parts[0]], &format!("{name}_rot"))?;
        let a = self.op(Op::Mul, &[x, cos], &format!("{name}_cos"))?;
        let c = self.op(Op::Mul, &[rot, sin], &format!("{name}_sin"))?;
        self.op(Op::Add, &[a, c], &format!("{name}_rope"))
    }

    /// Repeats KV heads `[1, nkv, C, hd]` → `[1, nh, C, hd]` (head j serves query heads
    /// j·rep … j·rep+rep−1, as transformers' `repeat_kv`).
    fn repeat_kv(&mut self, x: ValueId, name: &str) -> Result<ValueId, TypeError> {
        let d = self.d;
        let rep = d.heads / d.kv_heads;
        if rep == 1 {
            return Ok(x);
        }
        let y = self.op(
            Op::Reshape { shape: vec![1, d.kv_heads, 1, d.context, d.head_dim] },
            &[x],
            &format!("{name}_unsq"),
        )?;
        let y = self.op(
            Op::Expand { shape: vec![1, d.kv_heads, rep, d.context, d.head_dim] },
            &[y],
            &format!("{name}_rep"),
        )?;
        self.op(Op::Reshape { shape: vec![1, d.heads, d.context, d.head_dim] }, &[y], &format!("{name}_gqa"))
    }

    /// `begin` index `[slot, 0, current_pos, 0]` for a KV write.
    fn kv_begin(&mut self, slot: i64, current_pos: ValueId, name: &str) -> Result<ValueId, TypeError> {
        let head = self.b.const_i(i32t(&[2]), vec![slot, 0], &format!("{name}_lead"))?;
        let tail = self.b.const_i(i32t(&[1]), vec![0], &format!("{name}_tail"))?;
        self.op(Op::Concat { axis: 0 }, &[head, current_pos, tail], name)
    }
}

/// Lowers `layer{i}.{mode}` for `s` rows (1 for infer, B for prefill).
pub fn lower_layer(
    m: &Module,
    t: &LayerTensors,
    d: &Dims,
    index: usize,
    fname: &str,
    s: usize,
) -> Result<crate::ir::Function, TypeError> {
    let mut b = FunctionBuilder::new(m, fname);
    let h = b.input("hidden_states", f32t(&[1, s, d.hidden]));
    let position_ids = b.input("position_ids", i32t(&[s]));
    let mask = b.input("causal_mask", f32t(&[1, 1, s, d.context]));
    let current_pos = b.input("current_pos", i32t(&[1]));
    let kv = b.input(&format!("kv_cache_{index}"), Type::State(f32t(&[2, d.kv_heads, d.context, d.head_dim])));
    let mut l = Layer { b: &mut b, d: *d, s };

    // Attention block.
    let g = l.b.weight(&t.input_norm, "input_norm_gain")?;
    let x = l.op(Op::RmsNorm { axis: -1, eps: d.eps }, &[h, g], "attn_in")?;
    let bias = |k: usize| t.qkv_bias.as_ref().map(|b| b[k].as_str());
    let q = l.linear(x, &t.q_proj, bias(0), "q")?;
    let k = l.linear(x, &t.k_proj, bias(1), "k")?;
    let v = l.linear(x, &t.v_proj, bias(2), "v")?;
    let q = l.heads(q, d.heads, t.qk_norm.as_ref().map(|n| n[0].as_str()), "q")?;
    let k = l.heads(k, d.kv_heads, t.qk_norm.as_ref().map(|n| n[1].as_str()), "k")?;
    let v = l.heads(v, d.kv_heads, None, "v")?;

    let cos_table = l.b.weight("rope.cos", "cos_table")?;
    let sin_table = l.b.weight("rope.sin", "sin_table")?;
    let cos = l.op(Op::Gather { axis: 0 }, &[cos_table, position_ids], "cos_rows")?;
    let sin = l.op(Op::Gather { axis: 0 }, &[sin_table, position_ids], "sin_rows")?;
    let cos = l.op(Op::Reshape { shape: vec![1, 1, s, d.head_dim] }, &[cos], "cos")?;
    let sin = l.op(Op::Reshape { shape: vec![1, 1, s, d.head_dim] }, &[sin], "sin")?;
    let q = l.rope(q, cos, sin, "q")?;
    let k = l.rope(k, cos, sin, "k")?;

    // KV cache: write this step's rows at current_pos, read the whole slabs back.
    let cache = l.op(Op::ReadState, &[kv], "cache")?;
    let k_begin = l.kv_begin(0, current_pos, "k_begin")?;
    let v_begin = l.kv_begin(1, current_pos, "v_begin")?;
    let cache = l.op(Op::SliceUpdate, &[cache, k, k_begin], "cache_k")?;
    let cache = l.op(Op::SliceUpdate, &[cache, v, v_begin], "cache_kv")?;
    l.b.effect(Op::WriteState, &[kv, cache])?;
    let slab =
        |slot: usize| Op::Slice { begin: vec![slot, 0, 0, 0], end: vec![slot + 1, d.kv_heads, d.context, d.head_dim] };
    let k_all = l.op(slab(0), &[cache], "k_all")?;
    let v_all = l.op(slab(1), &[cache], "v_all")?;
    let k_all = l.repeat_kv(k_all, "k_all")?;
    let v_all = l.repeat_kv(v_all, "v_all")?;

    let scores = l.op(Op::Matmul { transpose_a: false, transpose_b: true }, &[q, k_all], "scores")?;
    let scale = l.b.const_f(f32t(&[]), vec![1.0 / (d.head_dim as f64).sqrt()], "attn_scale")?;
    let scores = l.op(Op::Mul, &[scores, scale], "scores_scaled")?;
    let scores = l.op(Op::Add, &[scores, mask], "scores_masked")?;
    let probs = l.op(Op::Softmax { axis: -1 }, &[scores], "probs")?;
    let attn = l.op(Op::Matmul { transpose_a: false, transpose_b: false }, &[probs, v_all], "attn")?;
    let attn = l.op(Op::Transpose { perm: vec![0, 2, 1, 3] }, &[attn], "attn_rows")?;
    let attn = l.op(Op::Reshape { shape: vec![1, s, d.heads * d.head_dim] }, &[attn], "attn_flat")?;
    let o = l.linear(attn, &t.o_proj, None, "o")?;
    let h = l.op(Op::Add, &[h, o], "resid_attn")?;

    // MLP block (SwiGLU).
    let g = l.b.weight(&t.post_attention_norm, "post_norm_gain")?;
    let x = l.op(Op::RmsNorm { axis: -1, eps: d.eps }, &[h, g], "mlp_in")?;
    let gate = l.linear(x, &t.gate_proj, None, "gate")?;
    let gate = l.op(Op::Silu, &[gate], "gate_act")?;
    let up = l.linear(x, &t.up_proj, None, "up")?;
    let prod = l.op(Op::Mul, &[gate, up], "gated")?;
    let down = l.linear(prod, &t.down_proj, None, "down")?;
    let out = l.op(Op::Add, &[h, down], "output_hidden_states")?;
    b.output("output_hidden_states", out);
    Ok(b.finish())
}
