//! Registered binders (`let ?v = name(args)` in rule files). Each computes one leaf from the
//! matched classes (an attribute such as a shape, or a literal), adds it, and returns its
//! class; `None` means "the rule does not apply here".

use egg::Id;

use crate::ir::TensorType;

use super::super::analysis::{EG, splat_of, tensor_of};
use super::super::lang::{AttrLeaf, ConstLeaf, ConstValues, Tnode};
use super::read::{
    add_int, add_ints, add_leaf, add_sizes, axis, dtype, ints, inverse, is_perm, shape, sizes, unit_axis_map,
};
use super::registry::{Binder, Val};

/// `r = p ∘ q`: transposing by `p` then by `q` is transposing by `r[i] = p[q[i]]`.
fn compose_perms(eg: &mut EG, a: &[Val]) -> Option<Id> {
    let (p, q) = (sizes(eg, a[0].id())?, sizes(eg, a[1].id())?);
    (p.len() == q.len()).then_some(())?;
    let r: Vec<usize> = q.iter().map(|&i| p[i]).collect();
    Some(add_sizes(eg, &r))
}

/// The shape of `transpose(x, p)` when the permutation only moves unit axes (so it is a
/// reshape); `None` otherwise.
fn unit_transpose_shape(eg: &mut EG, a: &[Val]) -> Option<Id> {
    let (x, p) = (shape(eg, a[0].id())?, sizes(eg, a[1].id())?);
    (p.len() == x.len() && is_perm(&p)).then_some(())?;
    let moved: Vec<usize> = p.iter().copied().filter(|&i| x[i] != 1).collect();
    moved.windows(2).all(|w| w[0] < w[1]).then_some(())?;
    let out: Vec<usize> = p.iter().map(|&i| x[i]).collect();
    Some(add_sizes(eg, &out))
}

/// The axis of `transpose(x, p)` that holds axis `a` of `x`.
fn permuted_axis(eg: &mut EG, a: &[Val]) -> Option<Id> {
    let (x, p) = (shape(eg, a[0].id())?, sizes(eg, a[1].id())?);
    let ax = axis(eg, a[2].id(), x.len())?;
    let i = p.iter().position(|&v| v == ax)?;
    Some(add_int(eg, i as i64))
}

/// The axis of `reshape(x, s)` that holds axis `a` of `x`, when the reshape only inserts or
/// removes unit axes and axis `a` is not itself a unit axis.
fn reshaped_axis(eg: &mut EG, a: &[Val]) -> Option<Id> {
    let (x, s) = (shape(eg, a[0].id())?, sizes(eg, a[1].id())?);
    let ax = axis(eg, a[2].id(), x.len())?;
    let j = unit_axis_map(&x, &s)?[ax]?;
    Some(add_int(eg, j as i64))
}

/// For hoisting `op(a, transpose(b, p))`: `inverse(p)` when `a` has the shape of
/// `transpose(b, p)` (so `transpose(a, inverse(p))` has the shape of `b`).
fn aligned_inverse_perm(eg: &mut EG, a: &[Val]) -> Option<Id> {
    let (x, y, p) = (shape(eg, a[0].id())?, shape(eg, a[1].id())?, sizes(eg, a[2].id())?);
    (p.len() == y.len() && is_perm(&p)).then_some(())?;
    let ty: Vec<usize> = p.iter().map(|&i| y[i]).collect();
    (x == ty).then_some(())?;
    Some(add_sizes(eg, &inverse(&p)))
}

/// For hoisting `op(a, reshape(b, s))`: `shape(b)` when `a` has shape `s`.
fn aligned_shape(eg: &mut EG, a: &[Val]) -> Option<Id> {
    let (x, y, s) = (shape(eg, a[0].id())?, shape(eg, a[1].id())?, sizes(eg, a[2].id())?);
    (x == s).then_some(())?;
    Some(add_sizes(eg, &y))
}

/// The literal of class `?c` cast to dtype `?d` (float→float or int→int only).
///
/// A float literal denotes its number rounded to its own dtype, so the cast literal holds
/// that rounded value wherever rounding the number directly to `?d` would differ (a cast up
/// from fp16 of `0.3` is fp16's 0.2998046875, not fp32's 0.3); otherwise the number is kept
/// as written.
fn cast_literal(eg: &mut EG, a: &[Val]) -> Option<Id> {
    use crate::interp::tensor::round_f64;
    let to = dtype(eg, &a[1])?;
    let leaf = eg[a[0].id()].nodes.iter().find_map(|n| match n {
        Tnode::Const(c) => Some(c.clone()),
        _ => None,
    })?;
    let values = match leaf.values {
        ConstValues::Floats(bits) if to.is_float() => ConstValues::Floats(
            bits.into_iter()
                .map(|b| {
                    let v = f64::from_bits(b);
                    let denoted = f64::from(round_f64(leaf.dtype, v));
                    if round_f64(to, v).to_bits() == round_f64(to, denoted).to_bits() { b } else { denoted.to_bits() }
                })
                .collect(),
        ),
        ConstValues::Ints(v) if to.is_int() => ConstValues::Ints(v),
        _ => return None,
    };
    Some(eg.add(Tnode::Const(ConstLeaf { dtype: to, values, ..leaf })))
}

/// `[B, S, I]` → `[B, S, 1, I]` (the reshape before the transpose to `(B, C, 1, S)`).
fn bs1c_shape(eg: &mut EG, a: &[Val]) -> Option<Id> {
    let x = shape(eg, a[0].id())?;
    let [b, s, c] = x[..] else { return None };
    Some(add_sizes(eg, &[b, s, 1, c]))
}

/// Heads straight from channels-first rows: for `x : [1, C, 1, S]` and `s = [1, S, n, d]`
/// with `n·d = C`, the shape `[1, n, d, S]` (the heads of `x` with rows last).
fn heads_cf_shape(eg: &mut EG, a: &[Val]) -> Option<Id> {
    let (x, s) = (shape(eg, a[0].id())?, sizes(eg, a[1].id())?);
    let (&[1, c, 1, rows], &[1, rows2, n, d]) = (&x[..], &s[..]) else { return None };
    (rows == rows2 && n * d == c).then(|| add_sizes(eg, &[1, n, d, rows]))
}

/// Channels-first rows straight from heads: for `a : [1, n, d, S]` and `s = [1, S, 1, n·d]`,
/// the shape `[1, n·d, 1, S]`.
fn channels_cf_shape(eg: &mut EG, a: &[Val]) -> Option<Id> {
    let (x, s) = (shape(eg, a[0].id())?, sizes(eg, a[1].id())?);
    let (&[1, n, d, rows], &[1, rows2, 1, c]) = (&x[..], &s[..]) else { return None };
    (rows == rows2 && n * d == c).then(|| add_sizes(eg, &[1, c, 1, rows]))
}

/// `[O, I]` → `[O, I, 1, 1]` (a linear weight as a 1×1 conv weight).
fn conv_weight_shape(eg: &mut EG, a: &[Val]) -> Option<Id> {
    let w = shape(eg, a[0].id())?;
    let [o, i] = w[..] else { return None };
    Some(add_sizes(eg, &[o, i, 1, 1]))
}

/// The result shape of `linear(x, w)`: x's shape with the last axis `w.shape[0]`.
fn linear_shape(eg: &mut EG, a: &[Val]) -> Option<Id> {
    let (mut x, w) = (shape(eg, a[0].id())?, shape(eg, a[1].id())?);
    *x.last_mut()? = *w.first()?;
    Some(add_sizes(eg, &x))
}

/// The shape of tensor `?x` as an attribute.
fn shape_of(eg: &mut EG, a: &[Val]) -> Option<Id> {
    let x = shape(eg, a[0].id())?;
    Some(add_sizes(eg, &x))
}

/// `[0, 0, …]`, one zero per axis of `?x` (a slice begin).
fn zeros_begin(eg: &mut EG, a: &[Val]) -> Option<Id> {
    let x = shape(eg, a[0].id())?;
    Some(add_ints(eg, x.iter().map(|_| 0)))
}

/// `[a]` from the axis `a`.
fn axis_list(eg: &mut EG, a: &[Val]) -> Option<Id> {
    let v = super::read::int(eg, a[0].id())?;
    Some(add_ints(eg, [v]))
}

/// The single entry of a one-axis list.
fn the_axis(eg: &mut EG, a: &[Val]) -> Option<Id> {
    let v = ints(eg, a[0].id())?;
    let [axis] = v[..] else { return None };
    Some(add_int(eg, axis))
}

/// The shape a per-axis gain `[D]` takes to broadcast along axis `a` of `?x`:
/// `[D, 1, …, 1]` with one unit per axis after `a`.
fn gain_shape(eg: &mut EG, a: &[Val]) -> Option<Id> {
    let x = shape(eg, a[0].id())?;
    let ax = axis(eg, a[1].id(), x.len())?;
    let mut s = vec![x[ax]];
    s.extend(std::iter::repeat_n(1, x.len() - ax - 1));
    Some(add_sizes(eg, &s))
}

/// The number of a float splat literal, as a float attribute (e.g. an eps).
fn splat_value(eg: &mut EG, a: &[Val]) -> Option<Id> {
    let v = splat_of(eg, a[0].id())?;
    Some(add_leaf(eg, AttrLeaf::float(v)))
}

/// A unit gain `const [1.0] : dtype[D]` for normalising along axis `a` of `?x`.
fn unit_gain(eg: &mut EG, a: &[Val]) -> Option<Id> {
    let t: TensorType = tensor_of(eg, a[0].id())?.clone();
    let ax = axis(eg, a[1].id(), t.rank())?;
    Some(eg.add(Tnode::Const(ConstLeaf::splat(t.dtype, vec![t.shape[ax]], 1.0))))
}

/// Grouped-query attention without repeating K/V. `?kv` is `[1, nkv, C, d]`, repeated by
/// `reshape(·, s1 = [1, nkv, 1, C, d])`, `expand(·, s2 = [1, nkv, rep, C, d])`,
/// `reshape(·, s3 = [1, nkv·rep, C, d])` (KV head j serves query heads j·rep … j·rep+rep−1).
/// For the other matmul operand `?q : [1, nkv·rep, S, D]` returns `[1, nkv, rep·S, D]`: the
/// query rows of each KV head's group stacked, so one matmul per KV head replaces the repeat.
fn gqa_rows(eg: &mut EG, a: &[Val]) -> Option<Id> {
    let (q, kv) = (shape(eg, a[0].id())?, shape(eg, a[1].id())?);
    let (s1, s2, s3) = (sizes(eg, a[2].id())?, sizes(eg, a[3].id())?, sizes(eg, a[4].id())?);
    let [1, nkv, c, d] = kv[..] else { return None };
    let rep = *s2.get(2)?;
    let ok = s1 == [1, nkv, 1, c, d] && s2 == [1, nkv, rep, c, d] && s3 == [1, nkv * rep, c, d];
    let [1, nh, rows, width] = q[..] else { return None };
    (ok && nh == nkv * rep).then_some(())?;
    Some(add_sizes(eg, &[1, nkv, rep * rows, width]))
}

/// The result shape of `matmul(a, b)` without transposing `a`, with `b` transposed when the
/// literal is `true`; `a`'s batch axes are kept.
fn matmul_shape(eg: &mut EG, a: &[Val]) -> Option<Id> {
    let (x, y) = (shape(eg, a[0].id())?, shape(eg, a[1].id())?);
    let n = match a[2].lit() {
        "true" => y[y.len().checked_sub(2)?],
        "false" => *y.last()?,
        _ => return None,
    };
    let mut out = x.clone();
    *out.last_mut()? = n;
    Some(add_sizes(eg, &out))
}

/// Every binder a rule file may name.
pub const TABLE: &[Binder] = &[
    Binder { name: "compose_perms", params: "cc", doc: "r = p∘q (transpose by p, then q)", f: compose_perms },
    Binder {
        name: "unit_transpose_shape",
        params: "cc",
        doc: "result shape of a transpose that only moves unit axes",
        f: unit_transpose_shape,
    },
    Binder { name: "permuted_axis", params: "ccc", doc: "where axis a of x lands after transpose p", f: permuted_axis },
    Binder {
        name: "reshaped_axis",
        params: "ccc",
        doc: "where axis a of x lands after a unit-axis-only reshape",
        f: reshaped_axis,
    },
    Binder {
        name: "aligned_inverse_perm",
        params: "ccc",
        doc: "inverse(p) if a has the shape of transpose(b, p)",
        f: aligned_inverse_perm,
    },
    Binder { name: "aligned_shape", params: "ccc", doc: "shape(b) if a has shape s", f: aligned_shape },
    Binder { name: "cast_literal", params: "ca", doc: "the literal cast to a dtype of the same kind", f: cast_literal },
    Binder { name: "bs1c_shape", params: "c", doc: "[B, S, I] → [B, S, 1, I]", f: bs1c_shape },
    Binder {
        name: "heads_cf_shape",
        params: "cc",
        doc: "[1, n, d, S] for x : [1, n·d, 1, S] and s = [1, S, n, d]",
        f: heads_cf_shape,
    },
    Binder {
        name: "channels_cf_shape",
        params: "cc",
        doc: "[1, n·d, 1, S] for a : [1, n, d, S] and s = [1, S, 1, n·d]",
        f: channels_cf_shape,
    },
    Binder { name: "conv_weight_shape", params: "c", doc: "[O, I] → [O, I, 1, 1]", f: conv_weight_shape },
    Binder { name: "linear_shape", params: "cc", doc: "result shape of linear(x, w)", f: linear_shape },
    Binder {
        name: "gqa_rows",
        params: "ccccc",
        doc: "[1, nkv, rep·S, D]: query rows grouped per KV head",
        f: gqa_rows,
    },
    Binder { name: "matmul_shape", params: "ccl", doc: "result shape of matmul(a, b[ᵀ])", f: matmul_shape },
    Binder { name: "shape_of", params: "c", doc: "the shape of a tensor", f: shape_of },
    Binder { name: "zeros_begin", params: "c", doc: "[0, …] of the tensor's rank", f: zeros_begin },
    Binder { name: "axis_list", params: "c", doc: "[a]", f: axis_list },
    Binder { name: "the_axis", params: "c", doc: "the single entry of a one-axis list", f: the_axis },
    Binder { name: "gain_shape", params: "cc", doc: "[D, 1, …] broadcasting a gain along axis a", f: gain_shape },
    Binder { name: "splat_value", params: "c", doc: "a float splat literal's value", f: splat_value },
    Binder { name: "unit_gain", params: "cc", doc: "a splat 1.0 gain for axis a", f: unit_gain },
];
