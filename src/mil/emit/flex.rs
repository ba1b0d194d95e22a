//! Enumerated input shapes → which dimensions of which values vary (become unknown dims).
//!
//! The IR is statically shaped. For a function with enumerated shapes, the function is
//! re-typed for every combination of enumerated input shapes with the ops' own typing
//! rules; a dimension of a value is *flexible* if it differs between any two combinations.
//! If some combination does not type-check, the function cannot serve that shape and the
//! spec is rejected. Ops whose MIL lowering derives parameters from shapes check that the
//! dims they need are not flexible.

use std::collections::BTreeMap;

use crate::ir::typing::infer;
use crate::ir::{Function, Module, TensorType, Type};
use crate::mil::error::EmitError;

/// Upper bound on the number of shape combinations checked.
const MAX_COMBINATIONS: usize = 256;

/// Per value (by arena index): which dims are flexible. Empty inner vectors mean static.
#[derive(Clone, Debug, Default)]
pub(crate) struct Flex {
    dims: Vec<Vec<bool>>,
}

impl Flex {
    /// True if dimension `d` of value `index` varies.
    pub(crate) fn is_flexible(&self, index: usize, d: usize) -> bool {
        self.dims.get(index).and_then(|v| v.get(d)).copied().unwrap_or(false)
    }

    /// True if any dimension of value `index` varies.
    pub(crate) fn any(&self, index: usize) -> bool {
        self.dims.get(index).is_some_and(|v| v.iter().any(|&b| b))
    }
}

/// Computes the flexible dims of `func` under `enumerated` (input name → shapes).
pub(crate) fn flexible_dims(
    module: &Module,
    func: &Function,
    enumerated: &BTreeMap<String, Vec<Vec<usize>>>,
) -> Result<Flex, EmitError> {
    let fail = |message: String| EmitError::Spec(format!("@{}: enumerated shapes: {message}", func.name));
    if enumerated.is_empty() {
        return Ok(Flex::default());
    }
    // Per input position: the alternative shapes (declared shape first).
    let mut choices: Vec<Vec<Vec<usize>>> = Vec::new();
    for &id in &func.inputs {
        let v = &func.values[id];
        match (enumerated.get(&v.name), &v.ty) {
            (Some(shapes), Type::Tensor(t)) => {
                if shapes.is_empty() || !shapes.contains(&t.shape) {
                    return Err(fail(format!("input {} is declared {t}; its shape must be one of {shapes:?}", v.name)));
                }
                if let Some(s) = shapes.iter().find(|s| s.len() != t.rank() || s.contains(&0)) {
                    return Err(fail(format!(
                        "input {}: shape {s:?} must have rank {} and no zero dims",
                        v.name,
                        t.rank()
                    )));
                }
                let mut alts = vec![t.shape.clone()];
                alts.extend(shapes.iter().filter(|s| **s != t.shape).cloned());
                choices.push(alts);
            }
            (Some(_), Type::State(_)) => return Err(fail(format!("state {} cannot have flexible shapes", v.name))),
            (None, ty) => choices.push(vec![ty.tensor().shape.clone()]),
        }
    }
    if let Some(name) = enumerated.keys().find(|n| !func.inputs.iter().any(|&id| &func.values[id].name == *n)) {
        return Err(fail(format!("no input named {name}")));
    }
    let combos = choices.iter().try_fold(1usize, |acc, c| acc.checked_mul(c.len())).filter(|&n| n <= MAX_COMBINATIONS);
    let Some(combos) = combos else {
        return Err(fail(format!("more than {MAX_COMBINATIONS} shape combinations")));
    };

    let declared: Vec<&Type> = func.values.iter().map(|(_, v)| &v.ty).collect();
    let mut flex: Vec<Vec<bool>> = declared.iter().map(|t| vec![false; t.tensor().rank()]).collect();
    for k in 1..combos {
        // Mixed-radix decomposition of k into one choice per input.
        let mut rest = k;
        let mut types: Vec<Option<Type>> = vec![None; func.values.len()];
        for (i, &id) in func.inputs.iter().enumerate() {
            let alts = &choices[i];
            let shape = alts[rest % alts.len()].clone();
            rest /= alts.len();
            let ty = match &func.values[id].ty {
                Type::Tensor(t) => Type::Tensor(TensorType::new(t.dtype, shape)),
                other => other.clone(),
            };
            types[id.index()] = Some(ty);
        }
        for (_, node) in func.nodes.iter() {
            let operands: Vec<&Type> = node
                .operands
                .iter()
                .map(|o| types[o.index()].as_ref().expect("SSA order: operands are typed"))
                .collect();
            let results = infer(&node.op, &operands, &|w| module.weight(w).map(|w| w.ty.clone())).map_err(|e| {
                let name = node.results.first().map_or("?".to_string(), |r| func.values[*r].name.clone());
                fail(format!(
                    "op `{}` (%{name}) fails for an enumerated shape: [{}] {}",
                    node.op.name(),
                    e.rule,
                    e.message
                ))
            })?;
            for (&r, t) in node.results.iter().zip(results) {
                types[r.index()] = Some(t);
            }
        }
        for (i, t) in types.iter().enumerate() {
            let (Some(t), base) = (t, declared[i]) else { continue };
            let (a, b) = (t.tensor(), base.tensor());
            if a.rank() != b.rank() || a.dtype != b.dtype {
                return Err(fail(format!(
                    "value %{} changes rank or dtype",
                    func.values.iter().nth(i).map_or("?", |(_, v)| v.name.as_str())
                )));
            }
            for (f, (x, y)) in flex[i].iter_mut().zip(a.shape.iter().zip(&b.shape)) {
                *f |= x != y;
            }
        }
    }
    Ok(Flex { dims: flex })
}
