//! The typing rule of every op, in one place: operand types + attributes → result types.
//! Each failure names the rule (`<op>.<rule>`), which `ir-spec/ops.md` states in prose.

use super::op::{ConstData, Op};
use super::recipe::is_permutation;
use super::types::{DType, TensorType, Type};

/// A violated typing rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeError {
    /// `<op>.<rule>`, e.g. `matmul.inner-dims`.
    pub rule: String,
    pub message: String,
}

type R<T> = Result<T, TypeError>;

fn err<T>(op: &str, rule: &str, message: impl Into<String>) -> R<T> {
    Err(TypeError { rule: format!("{op}.{rule}"), message: message.into() })
}

/// Normalises a possibly negative axis against `rank`.
pub fn norm_axis(axis: i64, rank: usize) -> Option<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    (0..r).contains(&a).then_some(a as usize)
}

/// Numpy-style broadcast of two shapes.
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let da = if i + a.len() >= rank { a[i + a.len() - rank] } else { 1 };
        let db = if i + b.len() >= rank { b[i + b.len() - rank] } else { 1 };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(out)
}

fn tensors<'a>(op: &str, operands: &[&'a Type], min: usize, max: usize) -> R<Vec<&'a TensorType>> {
    if operands.len() < min || operands.len() > max {
        let want = if min == max {
            format!("{min}")
        } else if max == usize::MAX {
            format!("at least {min}")
        } else {
            format!("{min} to {max}")
        };
        return err(op, "arity", format!("expects {want} operands, got {}", operands.len()));
    }
    operands
        .iter()
        .map(|t| match t {
            Type::Tensor(t) => Ok(t),
            Type::State(_) => err(op, "no-state", "a state can only be an operand of read_state/write_state"),
        })
        .collect()
}

fn one(t: TensorType) -> R<Vec<Type>> {
    Ok(vec![Type::Tensor(t)])
}

fn axes_set(op: &str, axes: &[i64], rank: usize) -> R<Vec<usize>> {
    let mut out = Vec::with_capacity(axes.len());
    for &a in axes {
        match norm_axis(a, rank) {
            Some(n) if !out.contains(&n) => out.push(n),
            Some(_) => return err(op, "axes", format!("axis {a} repeated")),
            None => return err(op, "axes", format!("axis {a} out of range for rank {rank}")),
        }
    }
    Ok(out)
}

fn axis1(op: &str, axis: i64, rank: usize) -> R<usize> {
    norm_axis(axis, rank).map_or_else(|| err(op, "axis", format!("axis {axis} out of range for rank {rank}")), Ok)
}

fn need_float(op: &str, t: &TensorType) -> R<()> {
    if t.dtype.is_float() { Ok(()) } else { err(op, "float", format!("needs a float tensor, got {t}")) }
}

/// Infers the result types of `op` applied to `operands`. `weight_type` resolves module
/// weights by name (for the `weight` op).
pub fn infer(op: &Op, operands: &[&Type], weight_type: &dyn Fn(&str) -> Option<TensorType>) -> R<Vec<Type>> {
    let name = op.name();
    match op {
        Op::Const { ty, data } => {
            tensors(name, operands, 0, 0)?;
            let n = data.len();
            if n != 1 && Some(n) != ty.checked_numel() {
                return err(name, "count", format!("{ty} needs {} values (or 1 splat), got {n}", ty.numel()));
            }
            let ok = match data {
                ConstData::Floats(_) => ty.dtype.is_float(),
                ConstData::Ints(_) => ty.dtype.is_int() || ty.dtype == DType::Bool,
            };
            if !ok {
                return err(name, "dtype", format!("literal kind does not match {}", ty.dtype));
            }
            if let ConstData::Ints(values) = data {
                let (lo, hi) = match ty.dtype {
                    DType::Bool => (0, 1),
                    DType::I32 => (i32::MIN as i64, i32::MAX as i64),
                    _ => (i64::MIN, i64::MAX),
                };
                if let Some(v) = values.iter().find(|&&v| v < lo || v > hi) {
                    return err(name, "range", format!("{v} does not fit {}", ty.dtype));
                }
            }
            one(ty.clone())
        }
        Op::Weight { name: w } => {
            tensors(name, operands, 0, 0)?;
            match weight_type(w) {
                Some(t) => one(t),
                None => err(name, "declared", format!("weight @{w} is not declared in the module")),
            }
        }
        Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Pow | Op::Maximum | Op::Minimum => {
            let t = tensors(name, operands, 2, 2)?;
            if t[0].dtype != t[1].dtype {
                return err(name, "same-dtype", format!("operands differ in dtype: {} vs {}", t[0], t[1]));
            }
            let numeric = t[0].dtype.is_float() || (t[0].dtype.is_int() && !matches!(op, Op::Pow));
            if !numeric {
                return err(name, "numeric", format!("unsupported dtype {}", t[0].dtype));
            }
            match broadcast_shapes(&t[0].shape, &t[1].shape) {
                Some(s) => one(TensorType::new(t[0].dtype, s)),
                None => err(name, "broadcast", format!("{} and {} do not broadcast", t[0], t[1])),
            }
        }
        Op::Neg => {
            let t = tensors(name, operands, 1, 1)?;
            if !(t[0].dtype.is_float() || t[0].dtype.is_int()) {
                return err(name, "numeric", format!("unsupported dtype {}", t[0].dtype));
            }
            one(t[0].clone())
        }
        Op::Sqrt | Op::Rsqrt | Op::Exp | Op::Sigmoid | Op::Silu | Op::Gelu { .. } => {
            let t = tensors(name, operands, 1, 1)?;
            need_float(name, t[0])?;
            one(t[0].clone())
        }
        Op::ReduceSum { axes, keep_dims } | Op::ReduceMean { axes, keep_dims } | Op::ReduceMax { axes, keep_dims } => {
            let t = tensors(name, operands, 1, 1)?;
            let x = t[0];
            if !(x.dtype.is_float() || x.dtype.is_int()) {
                return err(name, "numeric", format!("unsupported dtype {}", x.dtype));
            }
            if matches!(op, Op::ReduceMean { .. }) && !x.dtype.is_float() {
                return err(name, "float", format!("needs a float tensor, got {x}"));
            }
            if axes.is_empty() {
                return err(name, "axes", "needs at least one axis");
            }
            let set = axes_set(name, axes, x.rank())?;
            let shape = (0..x.rank())
                .filter_map(|i| if set.contains(&i) { keep_dims.then_some(1) } else { Some(x.shape[i]) })
                .collect();
            one(x.with_shape(shape))
        }
        Op::Softmax { axis } => {
            let t = tensors(name, operands, 1, 1)?;
            need_float(name, t[0])?;
            axis1(name, *axis, t[0].rank())?;
            one(t[0].clone())
        }
        Op::RmsNorm { axis, eps } => {
            let t = tensors(name, operands, 2, 2)?;
            let (x, g) = (t[0], t[1]);
            need_float(name, x)?;
            let a = axis1(name, *axis, x.rank())?;
            if g.dtype != x.dtype || g.shape != [x.shape[a]] {
                return err(name, "gain", format!("gain must be {}[{}], got {g}", x.dtype, x.shape[a]));
            }
            if eps.is_nan() || *eps < 0.0 {
                return err(name, "eps", "eps must be non-negative");
            }
            one(x.clone())
        }
        Op::LayerNorm { axes, eps } => {
            let t = tensors(name, operands, 1, 1)?;
            need_float(name, t[0])?;
            if axes.is_empty() {
                return err(name, "axes", "needs at least one axis");
            }
            axes_set(name, axes, t[0].rank())?;
            if eps.is_nan() || *eps < 0.0 {
                return err(name, "eps", "eps must be non-negative");
            }
            one(t[0].clone())
        }
        Op::Matmul { transpose_a, transpose_b } => {
            let t = tensors(name, operands, 2, 2)?;
            let (a, b) = (t[0], t[1]);
            if a.dtype != b.dtype || !a.dtype.is_float() {
                return err(name, "same-dtype", format!("operands must share a float dtype: {a} vs {b}"));
            }
            if a.rank() < 2 || b.rank() < 2 {
                return err(name, "rank", format!("operands need rank ≥ 2: {a}, {b}"));
            }
            let (ra, rb) = (a.rank(), b.rank());
            let (m, ka) =
                if *transpose_a { (a.shape[ra - 1], a.shape[ra - 2]) } else { (a.shape[ra - 2], a.shape[ra - 1]) };
            let (kb, n) =
                if *transpose_b { (b.shape[rb - 1], b.shape[rb - 2]) } else { (b.shape[rb - 2], b.shape[rb - 1]) };
            if ka != kb {
                return err(name, "inner-dims", format!("inner dimensions differ: {ka} vs {kb} ({a} × {b})"));
            }
            let Some(mut batch) = broadcast_shapes(&a.shape[..ra - 2], &b.shape[..rb - 2]) else {
                return err(name, "broadcast", format!("batch dimensions of {a} and {b} do not broadcast"));
            };
            batch.extend([m, n]);
            one(a.with_shape(batch))
        }
        Op::Linear => {
            let t = tensors(name, operands, 2, 3)?;
            let (x, w) = (t[0], t[1]);
            need_float(name, x)?;
            if w.dtype != x.dtype || w.rank() != 2 || x.rank() == 0 || w.shape[1] != x.shape[x.rank() - 1] {
                return err(
                    name,
                    "weight",
                    format!("weight must be {}[out, {}], got {w}", x.dtype, x.shape.last().copied().unwrap_or(0)),
                );
            }
            if let Some(b) = t.get(2)
                && (b.dtype != x.dtype || b.shape != [w.shape[0]])
            {
                return err(name, "bias", format!("bias must be {}[{}], got {b}", x.dtype, w.shape[0]));
            }
            let mut shape = x.shape.clone();
            *shape.last_mut().expect("rank checked") = w.shape[0];
            one(x.with_shape(shape))
        }
        Op::Conv { strides, pads, dilations, groups } => {
            let t = tensors(name, operands, 2, 3)?;
            let (x, w) = (t[0], t[1]);
            need_float(name, x)?;
            if x.rank() != 4 || w.rank() != 4 || w.dtype != x.dtype {
                return err(
                    name,
                    "rank",
                    format!("needs x: [N, C, H, W] and w: [O, C/groups, kh, kw] of one dtype, got {x}, {w}"),
                );
            }
            if strides.len() != 2 || dilations.len() != 2 || pads.len() != 4 {
                return err(name, "attrs", "strides and dilations need 2 entries, pads 4 (top, bottom, left, right)");
            }
            if *groups == 0
                || x.shape[1] % groups != 0
                || w.shape[0] % groups != 0
                || w.shape[1].checked_mul(*groups) != Some(x.shape[1])
            {
                return err(
                    name,
                    "groups",
                    format!("channels {} / groups {groups} do not match weight {w}", x.shape[1]),
                );
            }
            if strides.contains(&0) || dilations.contains(&0) {
                return err(name, "attrs", "strides and dilations must be positive");
            }
            if let Some(b) = t.get(2)
                && (b.dtype != x.dtype || b.shape != [w.shape[0]])
            {
                return err(name, "bias", format!("bias must be {}[{}], got {b}", x.dtype, w.shape[0]));
            }
            let mut spatial = [0usize; 2];
            for i in 0..2 {
                let padded = x.shape[2 + i].checked_add(pads[2 * i]).and_then(|p| p.checked_add(pads[2 * i + 1]));
                let span = dilations[i].checked_mul(w.shape[2 + i].max(1) - 1).and_then(|s| s.checked_add(1));
                let (Some(padded), Some(span)) = (padded, span) else {
                    return err(name, "window", "padding or dilation overflows");
                };
                if w.shape[2 + i] == 0 || padded < span {
                    return err(name, "window", format!("kernel {w} does not fit input {x}"));
                }
                spatial[i] = (padded - span) / strides[i] + 1;
            }
            one(x.with_shape(vec![x.shape[0], w.shape[0], spatial[0], spatial[1]]))
        }
        Op::Reshape { shape } => {
            let t = tensors(name, operands, 1, 1)?;
            let new = t[0].with_shape(shape.clone());
            if new.checked_numel().is_none() || new.checked_numel() != t[0].checked_numel() {
                return err(
                    name,
                    "numel",
                    format!("{} has {} elements, target shape {:?} has {}", t[0], t[0].numel(), shape, new.numel()),
                );
            }
            one(new)
        }
        Op::Transpose { perm } => {
            let t = tensors(name, operands, 1, 1)?;
            if !is_permutation(perm, t[0].rank()) {
                return err(name, "perm", format!("{perm:?} is not a permutation of 0..{}", t[0].rank()));
            }
            one(t[0].with_shape(perm.iter().map(|&p| t[0].shape[p]).collect()))
        }
        Op::Concat { axis } => {
            let t = tensors(name, operands, 1, usize::MAX)?;
            let first = t[0];
            let a = axis1(name, *axis, first.rank())?;
            let mut shape = first.shape.clone();
            shape[a] = 0;
            for x in &t {
                let ok = x.dtype == first.dtype
                    && x.rank() == first.rank()
                    && (0..x.rank()).all(|i| i == a || x.shape[i] == first.shape[i]);
                if !ok {
                    return err(name, "match", format!("{x} does not match {first} off axis {axis}"));
                }
                shape[a] = match shape[a].checked_add(x.shape[a]) {
                    Some(v) => v,
                    None => return err(name, "match", "concatenated size overflows"),
                };
            }
            one(first.with_shape(shape))
        }
        Op::Split { axis, sizes } => {
            let t = tensors(name, operands, 1, 1)?;
            let a = axis1(name, *axis, t[0].rank())?;
            let total = sizes.iter().try_fold(0usize, |acc, &v| acc.checked_add(v));
            if sizes.is_empty() || sizes.contains(&0) || total != Some(t[0].shape[a]) {
                return err(name, "sizes", format!("sizes {sizes:?} must be positive and sum to {}", t[0].shape[a]));
            }
            Ok(sizes
                .iter()
                .map(|&s| {
                    let mut shape = t[0].shape.clone();
                    shape[a] = s;
                    Type::Tensor(t[0].with_shape(shape))
                })
                .collect())
        }
        Op::Slice { begin, end } => {
            let t = tensors(name, operands, 1, 1)?;
            let x = t[0];
            if begin.len() != x.rank() || end.len() != x.rank() {
                return err(name, "rank", format!("begin/end need {} entries", x.rank()));
            }
            for i in 0..x.rank() {
                if begin[i] >= end[i] || end[i] > x.shape[i] {
                    return err(
                        name,
                        "bounds",
                        format!("[{}, {}) is empty or out of range on axis {i} of {x}", begin[i], end[i]),
                    );
                }
            }
            one(x.with_shape((0..x.rank()).map(|i| end[i] - begin[i]).collect()))
        }
        Op::SliceUpdate => {
            let t = tensors(name, operands, 3, 3)?;
            let (x, u, b) = (t[0], t[1], t[2]);
            if u.dtype != x.dtype || u.rank() != x.rank() || u.shape.iter().zip(&x.shape).any(|(a, b)| a > b) {
                return err(name, "update", format!("update {u} must fit inside {x}"));
            }
            if b.dtype != DType::I32 || b.shape != [x.rank()] {
                return err(name, "begin", format!("begin must be int32[{}], got {b}", x.rank()));
            }
            one(x.clone())
        }
        Op::Expand { shape } => {
            let t = tensors(name, operands, 1, 1)?;
            let x = t[0];
            let ok = shape.len() == x.rank() && x.shape.iter().zip(shape).all(|(&d, &s)| d == s || d == 1);
            if !ok {
                return err(
                    name,
                    "shape",
                    format!("{x} cannot expand to {shape:?} (same rank, only size-1 axes grow)"),
                );
            }
            one(x.with_shape(shape.clone()))
        }
        Op::Squeeze { axes } => {
            let t = tensors(name, operands, 1, 1)?;
            let x = t[0];
            let set = axes_set(name, axes, x.rank())?;
            if let Some(&a) = set.iter().find(|&&a| x.shape[a] != 1) {
                return err(name, "unit", format!("axis {a} of {x} is not 1"));
            }
            one(x.with_shape((0..x.rank()).filter(|i| !set.contains(i)).map(|i| x.shape[i]).collect()))
        }
        Op::ExpandDims { axes } => {
            let t = tensors(name, operands, 1, 1)?;
            let x = t[0];
            let out_rank = x.rank() + axes.len();
            let set = axes_set(name, axes, out_rank)?;
            let mut rest = x.shape.iter();
            let shape =
                (0..out_rank).map(|i| if set.contains(&i) { 1 } else { *rest.next().expect("counted") }).collect();
            one(x.with_shape(shape))
        }
        Op::Gather { axis } => {
            let t = tensors(name, operands, 2, 2)?;
            let (x, idx) = (t[0], t[1]);
            if !idx.dtype.is_int() {
                return err(name, "indices", format!("indices must be int32 or int64, got {idx}"));
            }
            let a = axis1(name, *axis, x.rank())?;
            let mut shape = x.shape[..a].to_vec();
            shape.extend(&idx.shape);
            shape.extend(&x.shape[a + 1..]);
            one(x.with_shape(shape))
        }
        Op::Cast { dtype } => {
            let t = tensors(name, operands, 1, 1)?;
            if t[0].dtype.is_lut_index() || dtype.is_lut_index() {
                return err(name, "dtype", "palettization index types (uint1 … uint8) cannot be cast");
            }
            one(t[0].with_dtype(*dtype))
        }
        Op::Argmax { axis, keep_dims } => {
            let t = tensors(name, operands, 1, 1)?;
            let x = t[0];
            let a = axis1(name, *axis, x.rank())?;
            let shape: Vec<usize> =
                (0..x.rank()).filter_map(|i| if i == a { keep_dims.then_some(1) } else { Some(x.shape[i]) }).collect();
            one(TensorType::new(DType::I32, shape))
        }
        Op::ReadState => match operands {
            [Type::State(t)] => one(t.clone()),
            _ => err(name, "state", "expects exactly one state operand"),
        },
        Op::WriteState => match operands {
            [Type::State(s), Type::Tensor(v)] if s == v => Ok(Vec::new()),
            [Type::State(s), Type::Tensor(v)] => err(name, "match", format!("value {v} does not match state<{s}>")),
            _ => err(name, "state", "expects a state and a tensor"),
        },
        Op::LutToDense => {
            let t = tensors(name, operands, 2, 2)?;
            let (idx, lut) = (t[0], t[1]);
            let Some(bits) = idx.dtype.index_bits() else {
                return err(name, "indices", format!("indices must be uint1..uint8, got {idx}"));
            };
            if idx.rank() == 0 {
                return err(name, "indices", "indices must have rank ≥ 1");
            }
            if !lut.dtype.is_float() || lut.rank() != 2 || lut.shape[1] != 1usize << bits {
                return err(name, "lut", format!("lut must be float[groups, {}], got {lut}", 1usize << bits));
            }
            if lut.shape[0] == 0 || idx.shape[0] % lut.shape[0] != 0 {
                return err(name, "groups", format!("{} groups do not divide axis 0 of {idx}", lut.shape[0]));
            }
            one(idx.with_dtype(lut.dtype))
        }
    }
}
