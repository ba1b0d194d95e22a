//! The generic decoder-only lowering: turns a [`DecoderSpec`] + normalised config into the
//! framework-neutral module described in `docs/module-conventions.md`, computing exactly
//! what transformers' eager Llama/Qwen2/Qwen3 forward computes (fp32).

use super::config::{Activation, LayerKind, ModelConfig};
use super::fused_qkv;
use super::norm_fold;
use super::spec::{DecoderSpec, LayerTensors};
use crate::ir::{DType, FunctionBuilder, GeluMode, Module, Op, TensorType, Type, TypeError, ValueId};

/// Sizes and block features every function shares.
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
    /// Multiplier of the attention scores.
    pub attn_scale: f64,
    pub attn_softcap: Option<f64>,
    pub final_softcap: Option<f64>,
    pub act: Activation,
    /// KV cache length of a sliding-window layer: `min(window, context)` (the context when
    /// the model has no sliding layers).
    pub local_len: usize,
    /// The input and MLP-input norms run gain-free, their gains folded into the projections
    /// that read them (`norm_fold`; the module declares the folded weights).
    pub fold_norms: bool,
}

impl Dims {
    pub fn new(cfg: &ModelConfig, context: usize, batch: usize) -> Self {
        let f = &cfg.features;
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
            attn_scale: f.attn_scale,
            attn_softcap: f.attn_softcap,
            final_softcap: f.final_softcap,
            act: cfg.hidden_act,
            local_len: f.sliding_window.map_or(context, |w| w.min(context)),
            fold_norms: true,
        }
    }

    /// True when sliding layers need the rotate functions (their window is shorter than the
    /// context).
    pub fn rotates(&self) -> bool {
        self.local_len < self.context
    }
}

/// Which variant of a layer function: single-token decode or batched prefill, each in fill
/// mode (sliding caches indexed by absolute position, used while position < window) or
/// rotate mode (sliding caches shifted left, used from position `window` on). Full-attention
/// layers compute the same in both modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Infer,
    Prefill,
    InferRotate,
    PrefillRotate,
}

impl Mode {
    /// The function-name suffix (`layer3.infer_rotate`).
    pub fn name(self) -> &'static str {
        match self {
            Mode::Infer => "infer",
            Mode::Prefill => "prefill",
            Mode::InferRotate => "infer_rotate",
            Mode::PrefillRotate => "prefill_rotate",
        }
    }

    pub fn is_prefill(self) -> bool {
        matches!(self, Mode::Prefill | Mode::PrefillRotate)
    }

    pub fn is_rotate(self) -> bool {
        matches!(self, Mode::InferRotate | Mode::PrefillRotate)
    }

    /// Rows per call: 1, or the prefill batch.
    pub fn rows(self, batch: usize) -> usize {
        if self.is_prefill() { batch } else { 1 }
    }

    /// The modes a module with these dims has, in ANEMLL's function order.
    pub fn all(d: &Dims) -> &'static [Mode] {
        if d.rotates() {
            &[Mode::Infer, Mode::InferRotate, Mode::Prefill, Mode::PrefillRotate]
        } else {
            &[Mode::Infer, Mode::Prefill]
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
    let table = b.weight(&embed_weight_name(spec), "embed_table")?;
    let h = b.op(Op::Gather { axis: 0 }, &[table, ids], "hidden_states")?;
    debug_assert_eq!(b.tensor_ty(h).shape, vec![1, s, d.hidden]);
    b.output("hidden_states", h);
    Ok(b.finish())
}

/// The weight the embedding functions gather from: the checkpoint table, or a scaled copy
/// of it (`{table}.scaled`, the embedding scale folded in) when the model scales embeddings.
pub fn embed_weight_name(spec: &DecoderSpec) -> String {
    match spec.embed_scale {
        Some(_) => format!("{}.scaled", spec.embed_tokens),
        None => spec.embed_tokens.clone(),
    }
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
/// per vocabulary piece (`pieces` names the piece weights in vocabulary order). With
/// `argmax` (one row only), the outputs are instead `argmax_idx: int32[K]` (the first
/// maximum's index within each piece) and `argmax_val: [K]` (that maximum).
pub fn lower_lm_head(
    m: &Module,
    pieces: &[String],
    d: &Dims,
    fname: &str,
    s: usize,
    argmax: bool,
) -> Result<crate::ir::Function, TypeError> {
    let mut b = FunctionBuilder::new(m, fname);
    let h = b.input("hidden_states", f32t(&[1, s, d.hidden]));
    let (mut idx, mut val) = (Vec::new(), Vec::new());
    for (k, piece) in pieces.iter().enumerate() {
        let w = b.weight(piece, &format!("lm_head_w{}", k + 1))?;
        let name = format!("logits{}", k + 1);
        let logits = match d.final_softcap {
            None => b.op(Op::Linear, &[h, w], &name)?,
            Some(cap) => {
                let raw = b.op(Op::Linear, &[h, w], &format!("{name}_raw"))?;
                softcap(&mut b, raw, cap, &name)?
            }
        };
        if !argmax {
            b.output(&name, logits);
            continue;
        }
        let i = b.op(Op::Argmax { axis: -1, keep_dims: false }, &[logits], &format!("{name}_argmax"))?;
        let v = b.op(Op::ReduceMax { axes: vec![-1], keep_dims: false }, &[logits], &format!("{name}_max"))?;
        idx.push(b.op(Op::Reshape { shape: vec![1] }, &[i], &format!("{name}_idx"))?);
        val.push(b.op(Op::Reshape { shape: vec![1] }, &[v], &format!("{name}_val"))?);
    }
    if argmax {
        let i = b.op(Op::Concat { axis: 0 }, &idx, "argmax_idx")?;
        let v = b.op(Op::Concat { axis: 0 }, &val, "argmax_val")?;
        b.output("argmax_idx", i);
        b.output("argmax_val", v);
    }
    Ok(b.finish())
}

/// `cap · tanh(x / cap)`, written as `2·cap·σ(2x / cap) − cap` (tanh(z) = 2σ(2z) − 1).
fn softcap(b: &mut FunctionBuilder<'_>, x: ValueId, cap: f64, name: &str) -> Result<ValueId, TypeError> {
    let inner = b.const_f(f32t(&[]), vec![2.0 / cap], &format!("{name}_cap_in"))?;
    let outer = b.const_f(f32t(&[]), vec![2.0 * cap], &format!("{name}_cap_out"))?;
    let shift = b.const_f(f32t(&[]), vec![cap], &format!("{name}_cap_shift"))?;
    let z = b.op(Op::Mul, &[x, inner], &format!("{name}_cap_z"))?;
    let sig = b.op(Op::Sigmoid, &[z], &format!("{name}_cap_sig"))?;
    let y = b.op(Op::Mul, &[sig, outer], &format!("{name}_cap_y"))?;
    b.op(Op::Sub, &[y, shift], name)
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

    /// The axis of the head dimension in a `heads` result: 2 for `[1, n, hd, S]` (several
    /// rows), 3 for `[1, n, 1, hd]` (one row: the same element order, the cache's row form).
    fn hd_axis(&self) -> usize {
        if self.s > 1 { 2 } else { 3 }
    }

    /// The shape of one head's `[hd, S]` (or `[1, hd]`) block in the `heads` layout, with
    /// `lead` in front.
    fn head_block(&self, lead: &[usize]) -> Vec<usize> {
        let (s, hd) = (self.s, self.d.head_dim);
        let block = if s > 1 { [hd, s] } else { [1, hd] };
        lead.iter().copied().chain(block).collect()
    }

    /// `[1, S, n·hd]` → heads `[1, n, hd, S]`: the head dimension before the rows, the
    /// projection's own channels-first order (`layout` turns this into a reshape of the conv
    /// output, no transpose). For one row, `[1, n, 1, hd]`, the same element order.
    fn heads(&mut self, x: ValueId, n: usize, name: &str) -> Result<ValueId, TypeError> {
        let (s, hd) = (self.s, self.d.head_dim);
        let y = self.op(Op::Reshape { shape: vec![1, s, n, hd] }, &[x], &format!("{name}_split"))?;
        let perm = if s > 1 { vec![0, 2, 3, 1] } else { vec![0, 2, 1, 3] };
        self.op(Op::Transpose { perm }, &[y], &format!("{name}_heads"))
    }

    /// Half-split (NeoX) rotary embedding of `heads` with `cos`/`sin_signed` shaped
    /// `[1, 1, hd, S]` (`[1, 1, 1, hd]` for one row): `x·cos + rotate_half(x)·sin`, computed
    /// as `x·cos + swap_halves(x)·sin_signed` (`sin_signed`: the sine with its first half
    /// negated, see `lower::push_rope_tables`), which is the same value bit for bit.
    fn rope(&mut self, x: ValueId, cos: ValueId, sin_signed: ValueId, name: &str) -> Result<ValueId, TypeError> {
        let (half, axis) = (self.d.head_dim / 2, self.hd_axis() as i64);
        let parts = self.b.op_multi(Op::Split { axis, sizes: vec![half, half] }, &[x], &format!("{name}_half"))?;
        let rot = self.op(Op::Concat { axis }, &[parts[1], parts[0]], &format!("{name}_rot"))?;
        let a = self.op(Op::Mul, &[x, cos], &format!("{name}_cos"))?;
        let c = self.op(Op::Mul, &[rot, sin_signed], &format!("{name}_sin"))?;
        self.op(Op::Add, &[a, c], &format!("{name}_rope"))
    }

    /// This step's K and V heads (`heads` layout) as the cache's rows `[1, nkv, S, hd]`.
    /// Several rows: one transpose of K and V side by side (the layer's one transpose);
    /// one row: already in row form.
    fn cache_rows(&mut self, k: ValueId, v: ValueId) -> Result<(ValueId, ValueId), TypeError> {
        if self.s == 1 {
            return Ok((k, v));
        }
        let kv = self.op(Op::Concat { axis: 1 }, &[k, v], "kv_new")?;
        let rows = self.op(Op::Transpose { perm: vec![0, 1, 3, 2] }, &[kv], "kv_rows")?;
        let nkv = self.d.kv_heads;
        let parts = self.b.op_multi(Op::Split { axis: 1, sizes: vec![nkv, nkv] }, &[rows], "kv_parts")?;
        Ok((parts[0], parts[1]))
    }

    /// RMSNorm of `x` with the gain weight `gain` (read as the value `gain_value`).
    fn rms_norm(&mut self, x: ValueId, gain: &str, gain_value: &str, name: &str) -> Result<ValueId, TypeError> {
        self.rms_norm_along(x, -1, gain, gain_value, name)
    }

    /// RMSNorm of `x` along `axis` (a per-head norm of `[1, n, hd, S]` heads runs along 2).
    fn rms_norm_along(
        &mut self,
        x: ValueId,
        axis: i64,
        gain: &str,
        gain_value: &str,
        name: &str,
    ) -> Result<ValueId, TypeError> {
        let g = self.b.weight(gain, gain_value)?;
        self.op(Op::RmsNorm { axis, eps: self.d.eps }, &[x, g], name)
    }

    /// The RMSNorm of a block's input (read by projections only): with `fold_norms` without
    /// a gain (a unit gain `const [1.0]` named `{gain_value}_unit`; the gain `gain` is folded
    /// into the projections, see `norm_fold`), else with `gain` (named `{gain_value}_gain`).
    fn input_norm(&mut self, x: ValueId, gain: &str, gain_value: &str, name: &str) -> Result<ValueId, TypeError> {
        if !self.d.fold_norms {
            return self.rms_norm(x, gain, &format!("{gain_value}_gain"), name);
        }
        let g = self.b.const_f(f32t(&[self.d.hidden]), vec![1.0], &format!("{gain_value}_unit"))?;
        self.op(Op::RmsNorm { axis: -1, eps: self.d.eps }, &[x, g], name)
    }

    /// `[start, end)` of axis 2 of a `[1, nkv, L, hd]` slab.
    fn rows(&mut self, x: ValueId, start: usize, end: usize, name: &str) -> Result<ValueId, TypeError> {
        let mut hi = self.b.tensor_ty(x).shape.clone();
        hi[2] = end;
        self.op(Op::Slice { begin: vec![0, 0, start, 0], end: hi }, &[x], name)
    }

    /// `begin` index `[slot, 0, current_pos, 0]` for a KV write.
    fn kv_begin(&mut self, slot: i64, current_pos: ValueId, name: &str) -> Result<ValueId, TypeError> {
        let head = self.b.const_i(i32t(&[2]), vec![slot, 0], &format!("{name}_lead"))?;
        let tail = self.b.const_i(i32t(&[1]), vec![0], &format!("{name}_tail"))?;
        self.op(Op::Concat { axis: 0 }, &[head, current_pos, tail], name)
    }
}

/// Where a layer's keys and values come from, after this step's rows were stored.
struct Attended {
    k: ValueId,
    v: ValueId,
    /// The additive mask over the attended keys, `[1, 1, S, keys]`.
    mask: Option<ValueId>,
}

/// KV cache of a full-attention layer, or a sliding layer in fill mode: this step's rows are
/// written at `current_pos`; attention reads the first `len` slots through the first `len`
/// columns of the causal mask.
fn cache_at_position(
    l: &mut Layer<'_, '_>,
    kv: ValueId,
    k: ValueId,
    v: ValueId,
    current_pos: ValueId,
    mask: ValueId,
    len: usize,
) -> Result<Attended, TypeError> {
    let d = l.d;
    let cache = l.op(Op::ReadState, &[kv], "cache")?;
    let k_begin = l.kv_begin(0, current_pos, "k_begin")?;
    let v_begin = l.kv_begin(1, current_pos, "v_begin")?;
    // K's slab is read back before V is written, so nothing reads the cache with only K
    // written once V is (an evaluator can then update the cache in place, see
    // `interp::exec`); the values are the same either way.
    let slab = |slot: usize| Op::Slice { begin: vec![slot, 0, 0, 0], end: vec![slot + 1, d.kv_heads, len, d.head_dim] };
    let cache = l.op(Op::SliceUpdate, &[cache, k, k_begin], "cache_k")?;
    let k_all = l.op(slab(0), &[cache], "k_all")?;
    let cache = l.op(Op::SliceUpdate, &[cache, v, v_begin], "cache_kv")?;
    l.b.effect(Op::WriteState, &[kv, cache])?;
    let v_all = l.op(slab(1), &[cache], "v_all")?;
    let mask = if len == d.context {
        mask
    } else {
        l.op(Op::Slice { begin: vec![0, 0, 0, 0], end: vec![1, 1, l.s, len] }, &[mask], "window_mask")?
    };
    Ok(Attended { k: k_all, v: v_all, mask: Some(mask) })
}

/// KV cache of a sliding layer in rotate mode (position ≥ window): the cache holds the
/// `len` positions before this step's first row, oldest first. The new cache drops the
/// oldest `S` rows and appends this step's. Queries attend to the old cache followed by the
/// new rows, masked by position difference alone, so every query sees exactly the last
/// `window` positions, itself included (transformers' sliding window). For one row the
/// mask is all zeros and the keys are just the new cache.
fn cache_rotated(
    l: &mut Layer<'_, '_>,
    kv: ValueId,
    k: ValueId,
    v: ValueId,
    len: usize,
) -> Result<Attended, TypeError> {
    let (d, s) = (l.d, l.s);
    let cache = l.op(Op::ReadState, &[kv], "cache")?;
    let slab = |slot: usize| Op::Slice { begin: vec![slot, 0, 0, 0], end: vec![slot + 1, d.kv_heads, len, d.head_dim] };
    let k_old = l.op(slab(0), &[cache], "k_old")?;
    let v_old = l.op(slab(1), &[cache], "v_old")?;
    let shifted = |l: &mut Layer<'_, '_>, old: ValueId, new: ValueId, name: &str| -> Result<ValueId, TypeError> {
        if s == len {
            return Ok(new);
        }
        let kept = l.rows(old, s, len, &format!("{name}_kept"))?;
        l.op(Op::Concat { axis: 2 }, &[kept, new], &format!("{name}_shifted"))
    };
    let k_new = shifted(l, k_old, k, "k")?;
    let v_new = shifted(l, v_old, v, "v")?;
    let cache = l.op(Op::Concat { axis: 0 }, &[k_new, v_new], "cache_kv")?;
    l.b.effect(Op::WriteState, &[kv, cache])?;
    if s == 1 {
        return Ok(Attended { k: k_new, v: v_new, mask: None });
    }
    // Query i (position p0 + i) sees old slot j (position p0 − len + j) iff j > i, and new
    // row j iff j ≤ i.
    let keys = len + s;
    let mut values = Vec::with_capacity(s * keys);
    for i in 0..s {
        values.extend((0..len).map(|j| if j > i { 0.0 } else { f64::NEG_INFINITY }));
        values.extend((0..s).map(|j| if j <= i { 0.0 } else { f64::NEG_INFINITY }));
    }
    let mask = l.b.const_f(f32t(&[1, 1, s, keys]), values, "window_mask")?;
    let k_all = l.op(Op::Concat { axis: 2 }, &[k_old, k], "k_all")?;
    let v_all = l.op(Op::Concat { axis: 2 }, &[v_old, v], "v_all")?;
    Ok(Attended { k: k_all, v: v_all, mask: Some(mask) })
}

/// Lowers `layer{i}.{mode}` (see [`Mode`]); `s` rows are `mode.rows(batch)`.
///
/// State: `kv_cache_{i}: state<fp32[2, nkv, L, hd]>` (K at 0, V at 1), with L the context
/// for full-attention layers and `d.local_len` for sliding ones.
pub fn lower_layer(
    m: &Module,
    t: &LayerTensors,
    d: &Dims,
    index: usize,
    mode: Mode,
) -> Result<crate::ir::Function, TypeError> {
    let fname = format!("layer{index}.{}", mode.name());
    let s = mode.rows(d.batch);
    let sliding = t.kind == LayerKind::Sliding;
    let cache_len = if sliding { d.local_len } else { d.context };
    let mut b = FunctionBuilder::new(m, &fname);
    let h = b.input("hidden_states", f32t(&[1, s, d.hidden]));
    let position_ids = b.input("position_ids", i32t(&[s]));
    let mask = b.input("causal_mask", f32t(&[1, 1, s, d.context]));
    let current_pos = b.input("current_pos", i32t(&[1]));
    let kv = b.input(&format!("kv_cache_{index}"), Type::State(f32t(&[2, d.kv_heads, cache_len, d.head_dim])));
    let mut l = Layer { b: &mut b, d: *d, s };

    // Attention block. With `fold_norms` the gains of the norms feeding projections are
    // folded into their weights (see `norm_fold`).
    let fused = fused_qkv::names(index, t.qkv_bias.is_some(), t.qk_norm.is_some());
    let (qkv_w, gate_w, up_w) = if d.fold_norms {
        let n = norm_fold::names(index);
        (n.qkv, n.gate, n.up)
    } else {
        (fused.weight.clone(), t.gate_proj.clone(), t.up_proj.clone())
    };
    let x = l.input_norm(h, &t.input_norm, "input_norm", "attn_in")?;
    // One projection for q, k and v (the attention scale folded into q), heads kept in the
    // projection's `[1, n, hd, S]` order, RoPE once over the q and k heads side by side (see
    // `fused_qkv`). Only the new K/V rows are turned into the cache's `[1, nkv, S, hd]` rows:
    // in prefill that is the layer's one transpose (see `Layer::cache_rows`).
    let qkv = l.linear(x, &qkv_w, fused.bias.as_deref(), "qkv")?;
    let qkv = l.heads(qkv, d.heads + 2 * d.kv_heads, "qkv")?;
    let (qk, v) = match (&t.qk_norm, &fused.q_norm) {
        (Some([_, k_norm]), Some(q_norm)) => {
            let sizes = vec![d.heads, d.kv_heads, d.kv_heads];
            let parts = l.b.op_multi(Op::Split { axis: 1, sizes }, &[qkv], "qkv_parts")?;
            let axis = l.hd_axis() as i64;
            let q = l.rms_norm_along(parts[0], axis, q_norm, "q_norm_gain", "q_normed")?;
            let k = l.rms_norm_along(parts[1], axis, k_norm, "k_norm_gain", "k_normed")?;
            let qk = l.op(Op::Concat { axis: 1 }, &[q, k], "qk")?;
            (qk, parts[2])
        }
        _ => {
            let sizes = vec![d.heads + d.kv_heads, d.kv_heads];
            let parts = l.b.op_multi(Op::Split { axis: 1, sizes }, &[qkv], "qkv_parts")?;
            (parts[0], parts[1])
        }
    };

    // The tables are stored `[hd, positions]` (see `lower::push_rope_tables`): gathering
    // columns gives `[hd, S]`, the heads' order.
    let table = if sliding && has_local_rope(m) { "rope_local" } else { "rope" };
    let cos_table = l.b.weight(&format!("{table}.cos"), "cos_table")?;
    let sin_table = l.b.weight(&format!("{table}.sin_signed"), "sin_table")?;
    let cos = l.op(Op::Gather { axis: 1 }, &[cos_table, position_ids], "cos_cols")?;
    let sin = l.op(Op::Gather { axis: 1 }, &[sin_table, position_ids], "sin_cols")?;
    let cos = l.op(Op::Reshape { shape: l.head_block(&[1, 1]) }, &[cos], "cos")?;
    let sin = l.op(Op::Reshape { shape: l.head_block(&[1, 1]) }, &[sin], "sin")?;
    let qk = l.rope(qk, cos, sin, "qk")?;
    let qk_parts = l.b.op_multi(Op::Split { axis: 1, sizes: vec![d.heads, d.kv_heads] }, &[qk], "qk_parts")?;
    let (q, k) = (qk_parts[0], qk_parts[1]);
    let (k, v) = l.cache_rows(k, v)?;

    let att = if sliding && mode.is_rotate() && d.rotates() {
        cache_rotated(&mut l, kv, k, v, cache_len)?
    } else {
        cache_at_position(&mut l, kv, k, v, current_pos, mask, cache_len)?
    };

    // Grouped-query attention without repeating K/V (the queries are already scaled by
    // `d.attn_scale`, folded into their weights). Several rows: the query heads of KV head
    // j are `[j, 0..r]` of `[nkv, r, hd, S]`, K/V `[nkv, 1, keys, hd]` broadcast over them,
    // the scores are `qᵀ·kᵀ` = `[nkv, r, S, keys]` and the output is computed transposed,
    // `vᵀ·pᵀ` = `[nkv, r, hd, S]`: the o projection's channels-first input as is. One row:
    // the query heads of a KV head are its `r` rows, `[1, nkv, r, hd]`, against the cache
    // rows as they are.
    let (rep, keys) = (d.heads / d.kv_heads, l.b.tensor_ty(att.k).shape[2]);
    let (q, k_all, v_all, ta) = if s > 1 {
        let q = l.op(Op::Reshape { shape: vec![d.kv_heads, rep, d.head_dim, s] }, &[q], "q_groups")?;
        let group = |l: &mut Layer<'_, '_>, x: ValueId, name: &str| {
            l.op(Op::Reshape { shape: vec![d.kv_heads, 1, keys, d.head_dim] }, &[x], name)
        };
        (q, group(&mut l, att.k, "k_groups")?, group(&mut l, att.v, "v_groups")?, true)
    } else {
        let q = l.op(Op::Reshape { shape: vec![1, d.kv_heads, rep, d.head_dim] }, &[q], "q_groups")?;
        (q, att.k, att.v, false)
    };
    let mut scores = l.op(Op::Matmul { transpose_a: ta, transpose_b: true }, &[q, k_all], "scores")?;
    if let Some(cap) = d.attn_softcap {
        scores = softcap(l.b, scores, cap, "scores_capped")?;
    }
    if let Some(mask) = att.mask {
        scores = l.op(Op::Add, &[scores, mask], "scores_masked")?;
    }
    let probs = l.op(Op::Softmax { axis: -1 }, &[scores], "probs")?;
    let attn = if s > 1 {
        l.op(Op::Matmul { transpose_a: true, transpose_b: true }, &[v_all, probs], "attn")?
    } else {
        l.op(Op::Matmul { transpose_a: false, transpose_b: false }, &[probs, v_all], "attn")?
    };
    let attn = l.op(Op::Reshape { shape: l.head_block(&[1, d.heads]) }, &[attn], "attn_heads")?;
    let perm = if s > 1 { vec![0, 3, 1, 2] } else { vec![0, 2, 1, 3] };
    let attn = l.op(Op::Transpose { perm }, &[attn], "attn_rows")?;
    let attn = l.op(Op::Reshape { shape: vec![1, s, d.heads * d.head_dim] }, &[attn], "attn_flat")?;
    let mut o = l.linear(attn, &t.o_proj, None, "o")?;
    if let Some([attn_out, _]) = &t.out_norms {
        o = l.rms_norm(o, attn_out, "attn_out_gain", "attn_out")?;
    }
    let h = l.op(Op::Add, &[h, o], "resid_attn")?;

    // MLP block (gated: SwiGLU or GEGLU).
    let x = l.input_norm(h, &t.mlp_norm, "post_norm", "mlp_in")?;
    let gate = l.linear(x, &gate_w, None, "gate")?;
    let gate = match d.act {
        Activation::Silu => l.op(Op::Silu, &[gate], "gate_act")?,
        Activation::GeluTanh => l.op(Op::Gelu { mode: GeluMode::Tanh }, &[gate], "gate_act")?,
    };
    let up = l.linear(x, &up_w, None, "up")?;
    let prod = l.op(Op::Mul, &[gate, up], "gated")?;
    let mut down = l.linear(prod, &t.down_proj, None, "down")?;
    if let Some([_, mlp_out]) = &t.out_norms {
        down = l.rms_norm(down, mlp_out, "mlp_out_gain", "mlp_out")?;
    }
    let out = l.op(Op::Add, &[h, down], "output_hidden_states")?;
    b.output("output_hidden_states", out);
    Ok(b.finish())
}

/// True when the module declares separate RoPE tables for sliding layers.
fn has_local_rope(m: &Module) -> bool {
    m.weights.iter().any(|w| w.name == "rope_local.cos")
}
