//! Recognising the emitter's multi-op lowerings so the reader can restore the single IR op
//! (bit-exact numerics: the IR rounds once per op).
//!
//! A sequence is folded only if *both* hold: its intermediate ops are named with the
//! emitter's marker (`<result>_rmsnorm_…`, `<result>_linear_mm…`) and its structure and
//! constant parameters are exactly what the emitter writes, with every intermediate value
//! used only inside the sequence. Anything else is translated op by op.

use std::collections::HashMap;

use super::consts::{ConstSource, decode_value, float_attr};
use crate::mil::proto::argument::binding::Binding as B;
use crate::mil::proto::{NamedValueType, Operation};
use crate::mil::tensor_data::ConstTensor;
use crate::mil::types::{MilType, decode_type};

const RMS: &str = "_rmsnorm_";
const LINEAR: &str = "_linear_mm";

/// What to do with an op index.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Fused {
    /// Part of a folded sequence; produces nothing by itself.
    Skip,
    /// The last op of an rms_norm sequence: `rms_norm(x, gain) {axis, eps}`.
    RmsNorm { x: String, gain: String, axis: i64, eps: f64 },
    /// The last op of a linear-as-matmul sequence: `linear(x, w[, b])`.
    Linear { x: String, w: String, b: Option<String> },
    /// The op's output is `x` itself: coremltools' negative-index wrap
    /// `select(x >= 0, x, x + N)` is the identity for the IR, whose indices are non-negative
    /// by definition (a negative index is a run-time error there).
    Alias { x: String },
}

struct Block<'a> {
    ops: &'a [Operation],
    producer: HashMap<&'a str, usize>,
    uses: HashMap<&'a str, usize>,
    consts: HashMap<&'a str, ConstTensor>,
}

fn names<'a>(op: &'a Operation, param: &str) -> Vec<&'a str> {
    op.inputs
        .get(param)
        .map(|a| {
            a.arguments
                .iter()
                .filter_map(|b| match &b.binding {
                    Some(B::Name(n)) => Some(n.as_str()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

fn one<'a>(op: &'a Operation, param: &str) -> Option<&'a str> {
    match (names(op, param).as_slice(), op.inputs.get(param).map_or(0, |a| a.arguments.len())) {
        ([n], 1) => Some(n),
        _ => None,
    }
}

fn out(op: &Operation) -> Option<&NamedValueType> {
    match op.outputs.as_slice() {
        [o] => Some(o),
        _ => None,
    }
}

fn dims(o: &NamedValueType) -> Option<Vec<Option<usize>>> {
    match decode_type(o.r#type.as_ref()?).ok()? {
        MilType::Tensor(t) => Some(t.dims),
        _ => None,
    }
}

impl<'a> Block<'a> {
    fn new(ops: &'a [Operation], outputs: &'a [String]) -> Self {
        let mut producer = HashMap::new();
        let mut uses: HashMap<&str, usize> = HashMap::new();
        let mut consts = HashMap::new();
        for (i, op) in ops.iter().enumerate() {
            for o in &op.outputs {
                producer.insert(o.name.as_str(), i);
            }
            for arg in op.inputs.values() {
                for b in &arg.arguments {
                    if let Some(B::Name(n)) = &b.binding {
                        *uses.entry(n.as_str()).or_default() += 1;
                    }
                }
            }
            if op.r#type == "const"
                && let (Some(o), Some(val)) = (out(op), op.attributes.get("val"))
                && let Ok(c) = decode_value(&o.name, val)
                && let ConstSource::Immediate(t) = c.source
            {
                consts.insert(o.name.as_str(), t);
            }
        }
        for o in outputs {
            *uses.entry(o.as_str()).or_default() += 1;
        }
        Block { ops, producer, uses, consts }
    }

    /// The op producing `name`, if it has type `ty`, is marked with `prefix` and is used once.
    fn internal(&self, name: &str, ty: &str, prefix: &str) -> Option<(usize, &'a Operation)> {
        let &i = self.producer.get(name)?;
        let op = &self.ops[i];
        (op.r#type == ty && name.starts_with(prefix) && self.uses.get(name) == Some(&1)).then_some((i, op))
    }

    fn const_ints(&self, op: &Operation, param: &str) -> Option<Vec<i64>> {
        self.consts.get(one(op, param)?)?.ints()
    }

    fn const_f64(&self, op: &Operation, param: &str) -> Option<f64> {
        let c = self.consts.get(one(op, param)?)?;
        (c.numel() == 1).then(|| c.get_f64(0).map(|v| float_attr(c.dtype, v)))?
    }

    /// An optional bool-list parameter that is absent or all false.
    fn absent_or_false(&self, op: &Operation, param: &str) -> bool {
        !op.inputs.contains_key(param) || self.const_ints(op, param).is_some_and(|v| v.iter().all(|&x| x == 0))
    }

    /// rms_norm: `mul(half, gain)` where half ← slice ← layer_norm ← concat(x, mul(x, −1)).
    fn rms_norm(&self, fin: &Operation) -> Option<(Vec<usize>, Fused)> {
        let n = &out(fin)?.name;
        let prefix = format!("{n}{RMS}");
        let (i_half, half) = self.internal(one(fin, "x")?, "slice_by_index", &prefix)?;
        let (i_ln, ln) = self.internal(one(half, "x")?, "layer_norm", &prefix)?;
        let (i_cat, cat) = self.internal(one(ln, "x")?, "concat", &prefix)?;
        let values = names(cat, "values");
        let [x, neg_name] = values.as_slice() else { return None };
        let (i_neg, neg) = self.internal(neg_name, "mul", &prefix)?;
        let minus_one = self.consts.get(one(neg, "y")?)?;
        if one(neg, "x")? != *x || minus_one.numel() != 1 || minus_one.get_f64(0)? != -1.0 {
            return None;
        }
        let axis = self.const_ints(cat, "axis")?;
        let [axis] = axis.as_slice() else { return None };
        if !self.absent_or_false(cat, "interleave") || self.const_ints(ln, "axes")? != [*axis] {
            return None;
        }
        if ln.inputs.contains_key("gamma") || ln.inputs.contains_key("beta") {
            return None;
        }
        let eps = if ln.inputs.contains_key("epsilon") { self.const_f64(ln, "epsilon")? } else { 1e-5 };
        // The slice keeps the first half along the axis and everything elsewhere.
        let (half_dims, cat_dims) = (dims(out(half)?)?, dims(out(cat)?)?);
        let a = usize::try_from(*axis).ok()?;
        let d = half_dims.get(a).copied()??;
        if cat_dims.get(a).copied()? != Some(d.checked_mul(2)?) || half.inputs.contains_key("stride") {
            return None;
        }
        let begin = self.const_ints(half, "begin")?;
        let end = self.const_ints(half, "end")?;
        let end_mask = match half.inputs.contains_key("end_mask") {
            true => self.const_ints(half, "end_mask")?,
            false => vec![0; end.len()],
        };
        let rank = half_dims.len();
        let ok = begin.len() == rank
            && end.len() == rank
            && end_mask.len() == rank
            && begin.iter().all(|&b| b == 0)
            && self.absent_or_false(half, "begin_mask")
            && self.absent_or_false(half, "squeeze_mask")
            && (0..rank).all(|i| {
                if i == a {
                    end[i] == d as i64 && end_mask[i] == 0
                } else {
                    end_mask[i] != 0 || Some(end[i] as usize) == half_dims[i]
                }
            });
        if !ok {
            return None;
        }
        let mut skip = vec![i_half, i_ln, i_cat, i_neg];
        let g = one(fin, "y")?;
        let gain = match self.internal(g, "reshape", &prefix) {
            Some((i, r)) => {
                skip.push(i);
                one(r, "x")?.to_string()
            }
            None => g.to_string(),
        };
        Some((skip, Fused::RmsNorm { x: x.to_string(), gain, axis: *axis, eps }))
    }

    /// linear: `add(mm, b)` or `identity(mm)` with mm = `matmul(x, w, transpose_y = true)`.
    fn linear(&self, fin: &Operation) -> Option<(Vec<usize>, Fused)> {
        let n = &out(fin)?.name;
        let (i_mm, mm) = self.internal(one(fin, "x")?, "matmul", &format!("{n}{LINEAR}"))?;
        let tx = if mm.inputs.contains_key("transpose_x") { self.const_ints(mm, "transpose_x")? } else { vec![0] };
        if tx != [0] || self.const_ints(mm, "transpose_y")? != [1] {
            return None;
        }
        let b = if fin.r#type == "add" { Some(one(fin, "y")?.to_string()) } else { None };
        Some((vec![i_mm], Fused::Linear { x: one(mm, "x")?.to_string(), w: one(mm, "y")?.to_string(), b }))
    }
}

impl Block<'_> {
    /// `select(cond = greater_equal(x, 0), a = x, b = add(x, N))` with N > 0.
    fn index_wrap(&self, sel: &Operation) -> Option<(Vec<usize>, Fused)> {
        let x = one(sel, "a")?;
        let (i_ge, ge) = self.internal(one(sel, "cond")?, "greater_equal", "")?;
        let (i_add, add) = self.internal(one(sel, "b")?, "add", "")?;
        let zero = self.consts.get(one(ge, "y")?)?;
        let n = self.consts.get(one(add, "y")?)?;
        let ok = one(ge, "x")? == x
            && one(add, "x")? == x
            && zero.numel() == 1
            && zero.get_f64(0)? == 0.0
            && n.numel() == 1
            && n.get_f64(0)? > 0.0;
        ok.then(|| (vec![i_ge, i_add], Fused::Alias { x: x.to_string() }))
    }
}

/// The folds of one block: op index → what to do instead of translating it.
pub(crate) fn find_fusions(ops: &[Operation], outputs: &[String]) -> HashMap<usize, Fused> {
    let block = Block::new(ops, outputs);
    let mut out = HashMap::new();
    for (i, op) in ops.iter().enumerate() {
        let found = match op.r#type.as_str() {
            "mul" => block.rms_norm(op),
            "add" | "identity" => block.linear(op),
            "select" => block.index_wrap(op),
            _ => None,
        };
        if let Some((skip, fused)) = found {
            for s in skip {
                out.insert(s, Fused::Skip);
            }
            out.insert(i, fused);
        }
    }
    out
}
