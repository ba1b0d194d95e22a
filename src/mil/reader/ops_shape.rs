//! MIL → IR for shape, slicing and compression ops.

use std::sync::Arc;

use super::consts::{MilConst, decode_value};
use super::function::{FnReader, R};
use super::ops::usizes;
use crate::ir::typing::norm_axis;
use crate::ir::{DType, Op};
use crate::mil::dtype::ir_dtype;
use crate::mil::proto::Operation;
use crate::mil::proto::argument::binding::Binding as B;
use crate::mil::tensor_data::checked_numel;

impl FnReader<'_> {
    /// `reshape(x, shape)` with a constant shape (`-1` inferred, `0` copies the input dim).
    pub(super) fn reshape(&mut self, op: &Operation) -> R {
        let outs = op.outputs.clone();
        let x = self.tensor(op, "x")?;
        let spec = self.ints(op, "shape")?.ok_or("reshape needs a constant shape")?;
        let xs = self.ty(x).shape.clone();
        let mut shape: Vec<usize> = Vec::with_capacity(spec.len());
        let mut infer_at = None;
        for (i, &d) in spec.iter().enumerate() {
            shape.push(match d {
                -1 if infer_at.is_none() => {
                    infer_at = Some(i);
                    1
                }
                0 => *xs.get(i).ok_or("shape entry 0 beyond the input rank")?,
                d if d > 0 => d as usize,
                _ => return Err(format!("invalid reshape target {spec:?}")),
            });
        }
        if let Some(i) = infer_at {
            let known = checked_numel(&shape).unwrap_or(0);
            let total = checked_numel(&xs).ok_or("input too large")?;
            if known == 0 || !total.is_multiple_of(known) {
                return Err(format!("cannot infer -1 in {spec:?} for {xs:?}"));
            }
            shape[i] = total / known;
        }
        self.push_outputs(Op::Reshape { shape }, vec![x], &outs)
    }

    /// `split(x, split_sizes | num_splits, axis)`.
    pub(super) fn split(&mut self, op: &Operation) -> R {
        let outs = op.outputs.clone();
        let x = self.tensor(op, "x")?;
        let axis = self.int(op, "axis")?.ok_or("split without axis")?;
        let a = norm_axis(axis, self.ty(x).rank()).ok_or("axis out of range")?;
        let sizes = match (self.ints(op, "split_sizes")?, self.int(op, "num_splits")?) {
            (Some(s), _) => usizes(&s, "split_sizes")?,
            (None, Some(n)) => {
                // Checked before building the size list: `n` is any integer of the file.
                if usize::try_from(n).ok() != Some(outs.len()) {
                    return Err(format!("num_splits {n} does not match the op's {} outputs", outs.len()));
                }
                let d = self.ty(x).shape[a];
                if n == 0 || !d.is_multiple_of(n as usize) {
                    return Err(format!("num_splits {n} does not divide the axis of size {d}"));
                }
                vec![d / n as usize; n as usize]
            }
            _ => return Err("split needs split_sizes or num_splits".into()),
        };
        self.push_outputs(Op::Split { axis, sizes }, vec![x], &outs)
    }

    /// `slice_by_index` with constant begin/end (unit stride, masks honoured; squeeze_mask
    /// becomes a `squeeze`).
    pub(super) fn slice_by_index(&mut self, op: &Operation) -> R {
        let outs = op.outputs.clone();
        let x = self.tensor(op, "x")?;
        let shape = self.ty(x).shape.clone();
        let r = shape.len();
        let begin = self.ints(op, "begin")?.ok_or("slice_by_index needs a constant begin")?;
        let end = self.ints(op, "end")?.ok_or("slice_by_index needs a constant end")?;
        if let Some(stride) = self.ints(op, "stride")?
            && stride.iter().any(|&s| s != 1)
        {
            return Err(format!("stride {stride:?} is not supported (unit strides only)"));
        }
        let mask = |v: Option<Vec<bool>>| v.unwrap_or_else(|| vec![false; r]);
        let bm = mask(self.bools(op, "begin_mask")?);
        let em = mask(self.bools(op, "end_mask")?);
        let sm = mask(self.bools(op, "squeeze_mask")?);
        if begin.len() != r || end.len() != r || bm.len() != r || em.len() != r || sm.len() != r {
            return Err(format!("begin/end/masks need {r} entries"));
        }
        // Negative indices count from the end; both are clamped to [0, d].
        let fix = |v: i64, d: usize| {
            let d = i64::try_from(d).unwrap_or(i64::MAX);
            (if v < 0 { v.saturating_add(d) } else { v }).clamp(0, d) as usize
        };
        let mut b = Vec::with_capacity(r);
        let mut e = Vec::with_capacity(r);
        for i in 0..r {
            let bi = if bm[i] { 0 } else { fix(begin[i], shape[i]) };
            let ei = if sm[i] {
                bi + 1
            } else if em[i] {
                shape[i]
            } else {
                fix(end[i], shape[i])
            };
            b.push(bi);
            e.push(ei);
        }
        let squeeze: Vec<i64> = (0..r).filter(|&i| sm[i]).map(|i| i as i64).collect();
        if squeeze.is_empty() {
            return self.push_outputs(Op::Slice { begin: b, end: e }, vec![x], &outs);
        }
        let base = outs.first().map_or("slice".to_string(), |o| format!("{}_box", o.name));
        let s = self.push_internal(Op::Slice { begin: b, end: e }, vec![x], &base)?;
        self.push_outputs(Op::Squeeze { axes: squeeze }, vec![s], &outs)
    }

    /// `slice_by_size(x, begin, size)` with constant begin/size (`-1` = to the end).
    pub(super) fn slice_by_size(&mut self, op: &Operation) -> R {
        let outs = op.outputs.clone();
        let x = self.tensor(op, "x")?;
        let shape = self.ty(x).shape.clone();
        let begin = usizes(&self.ints(op, "begin")?.ok_or("slice_by_size needs a constant begin")?, "begin")?;
        let size = self.ints(op, "size")?.ok_or("slice_by_size needs a constant size")?;
        if begin.len() != shape.len() || size.len() != shape.len() {
            return Err("begin/size rank mismatch".into());
        }
        let end = (0..shape.len())
            .map(|i| match size[i] {
                s if s < 0 => Ok(shape[i]),
                s => {
                    begin[i].checked_add(s as usize).ok_or_else(|| format!("begin {begin:?} + size {size:?} overflows"))
                }
            })
            .collect::<R<Vec<usize>>>()?;
        self.push_outputs(Op::Slice { begin, end }, vec![x], &outs)
    }

    /// `slice_update(x, update, begin, end, …)` with unit strides and no masks: the box is
    /// `[begin, begin + shape(update))`, so `end` is not needed.
    pub(super) fn slice_update(&mut self, op: &Operation) -> R {
        let outs = op.outputs.clone();
        if let Some(stride) = self.ints(op, "stride")?
            && stride.iter().any(|&s| s != 1)
        {
            return Err(format!("stride {stride:?} is not supported"));
        }
        for m in ["begin_mask", "end_mask", "squeeze_mask"] {
            if self.bools(op, m)?.is_some_and(|v| v.iter().any(|&b| b)) {
                return Err(format!("{m} is not supported"));
            }
        }
        let x = self.tensor(op, "x")?;
        let u = self.tensor(op, "update")?;
        let b = self.tensor(op, "begin")?;
        self.push_outputs(Op::SliceUpdate, vec![x, u, b], &outs)
    }

    /// `tile(x, reps)`: if only size-1 axes grow, one `expand`; otherwise each repeated
    /// axis of size `d` is viewed as `[1, d]`, broadcast to `[r, d]` and merged back:
    /// `reshape → expand → reshape`, a fixed number of nodes whatever the reps.
    pub(super) fn tile(&mut self, op: &Operation) -> R {
        let outs = op.outputs.clone();
        let x = self.tensor(op, "x")?;
        let shape = self.ty(x).shape.clone();
        let reps = usizes(&self.ints(op, "reps")?.ok_or("tile needs constant reps")?, "reps")?;
        if reps.len() != shape.len() || reps.contains(&0) {
            return Err(format!("reps {reps:?} do not fit {shape:?}"));
        }
        let tiled: Vec<usize> = shape
            .iter()
            .zip(&reps)
            .map(|(&d, &r)| d.checked_mul(r))
            .collect::<Option<Vec<usize>>>()
            .filter(|t| checked_numel(t).is_some())
            .ok_or_else(|| format!("{shape:?} tiled by reps {reps:?} is too large"))?;
        if tiled == shape {
            return self.alias_output(op, x);
        }
        if shape.iter().zip(&reps).all(|(&d, &r)| d == 1 || r == 1) {
            return self.push_outputs(Op::Expand { shape: tiled }, vec![x], &outs);
        }
        let (mut split, mut spread) = (Vec::new(), Vec::new());
        for (&d, &r) in shape.iter().zip(&reps) {
            if d != 1 && r > 1 {
                split.extend([1, d]);
                spread.extend([r, d]);
            } else {
                split.push(d);
                spread.push(d * r);
            }
        }
        let base = outs.first().map_or("tile".to_string(), |o| o.name.clone());
        let v = self.push_internal(Op::Reshape { shape: split }, vec![x], &format!("{base}_tile0"))?;
        let v = self.push_internal(Op::Expand { shape: spread }, vec![v], &format!("{base}_tile1"))?;
        self.push_outputs(Op::Reshape { shape: tiled }, vec![v], &outs)
    }

    /// `constexpr_lut_to_dense(indices, lut[, vector_axis])` (iOS18 form) with one LUT
    /// group axis (axis 0) and vector size 1: IR weights `indices` and `lut[G, 2^bits]`.
    pub(super) fn lut_to_dense(&mut self, op: &Operation) -> R {
        let outs = op.outputs.clone();
        let get = |p: &str| -> R<Arc<MilConst>> {
            match self.args(op, p).as_slice() {
                [b] => match &b.binding {
                    Some(B::Value(v)) => Ok(Arc::new(decode_value(
                        &format!("{}_{p}", outs.first().map_or("lut", |o| o.name.as_str())),
                        v,
                    )?)),
                    Some(B::Name(_)) => match self.const_of(op, p)? {
                        Some(c) => Ok(c),
                        None => Err(format!("{p} must be a constant")),
                    },
                    None => Err("empty binding".into()),
                },
                _ => Err(format!("{p} must have one binding (iOS18 form: inputs, not attributes)")),
            }
        };
        let indices = get("indices")?;
        let lut = get("lut")?;
        let r = indices.shape.len();
        let bits = ir_dtype(indices.dtype).and_then(DType::index_bits).ok_or("indices must be uint1…uint8")?;
        let k = 1usize << bits;
        let ls = &lut.shape;
        let ok = ls.len() == r + 2 && ls[r] == k && ls[r + 1] == 1 && ls[1..r].iter().all(|&g| g == 1);
        if !ok {
            return Err(format!(
                "lut shape {ls:?} for indices {:?}: only per-output-channel groups (axis 0) with vector size 1 are supported",
                indices.shape
            ));
        }
        let idx = self.const_value(&indices, &indices.shape.clone())?;
        let table = self.const_value(&lut, &[ls[0], k])?;
        self.push_outputs(Op::LutToDense, vec![idx, table], &outs)
    }
}
