//! `split_module`: replaces the per-layer functions of a module with FFN chunk functions
//! as ANEMLL's runtime expects them (anemll-contract.md §1.3–1.5):
//!
//! - `chunk{k}.infer` = `layer{i}.infer` for the chunk's layers, chained; the last chunk
//!   also applies `final_norm.infer` (the LM head receives normed hidden states);
//! - `chunk{k}.prefill` = `layer{i}.prefill` chained; the last chunk returns only row 0
//!   (`[1, 1, H]`) and no norm, since prefill output is never consumed.
//!
//! Modules whose sliding-window caches rotate (`layer{i}.infer_rotate` / `.prefill_rotate`)
//! get `chunk{k}.infer_rotate` / `.prefill_rotate` built the same way.
//!
//! Every chunk function then declares every state of the module, in one order, and reads
//! each one: Core ML binds one `MLState` to all functions of all chunks, and rejects a
//! declared state that is never read. A chunk without a layer of some state's kind gets
//! a read of one element of it, multiplied by zero and added to its output (what ANEMLL
//! 0.3.6 emits for Gemma 3); the states are finite (zero-initialised, fp16 K/V), so the
//! output is unchanged.
//!
//! `embed.*` and `lm_head.*` are kept; `layer{i}.*` and `final_norm.*` are removed. The
//! result verifies and computes the same logits (checked by tests through the interpreter).

use std::ops::Range;

use super::chain::{ChainError, Part, chain};
use crate::ir::{AttrValue, Function, FunctionBuilder, Module, Op, TensorType, Type, TypeError, verify_module};

#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    #[error("the module has no function @{0} (is it a lowered module?)")]
    MissingFunction(String),
    #[error("the chunk plan does not cover layers 0..{layers} exactly")]
    BadPlan { layers: usize },
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error("splitting produced an invalid module: {0}")]
    Invalid(String),
}

impl From<TypeError> for SplitError {
    fn from(e: TypeError) -> Self {
        SplitError::Invalid(format!("{}: {}", e.rule, e.message))
    }
}

fn function<'m>(m: &'m Module, name: &str) -> Result<&'m Function, SplitError> {
    m.function(name).ok_or_else(|| SplitError::MissingFunction(name.to_string()))
}

/// A function `hidden_states [1, B, H] → output_hidden_states [1, 1, H]` keeping row 0.
fn first_row(m: &Module, like: &Function) -> Result<Function, SplitError> {
    let out = like
        .outputs
        .iter()
        .find(|o| o.name == "output_hidden_states")
        .ok_or_else(|| SplitError::MissingFunction(format!("{} output_hidden_states", like.name)))?;
    let ty = out.ty.tensor().clone();
    let mut b = FunctionBuilder::new(m, "first_row");
    let h = b.input("hidden_states", Type::Tensor(ty.clone()));
    let mut end = ty.shape.clone();
    end[1] = 1;
    let row = b.op(Op::Slice { begin: vec![0; ty.rank()], end }, &[h], "first_row")?;
    b.output("output_hidden_states", row);
    Ok(b.finish())
}

/// Makes every chunk function declare every state of the set, in first-seen order after its
/// other inputs, reading the ones it did not use (see the module docs).
fn declare_all_states(m: &Module, chunks: &mut [Function]) -> Result<(), SplitError> {
    let mut states: Vec<(String, Type)> = Vec::new();
    for f in chunks.iter() {
        for &i in &f.inputs {
            let v = &f.values[i];
            if matches!(v.ty, Type::State(_)) && !states.iter().any(|(n, _)| *n == v.name) {
                states.push((v.name.clone(), v.ty.clone()));
            }
        }
    }
    if states.len() < 2 {
        return Ok(());
    }
    for f in chunks.iter_mut() {
        *f = with_states(m, f, &states)?;
    }
    Ok(())
}

/// `f` with inputs reordered (non-states, then `states` in order) and a zero-weight read of
/// each state it lacked added to `output_hidden_states`.
fn with_states(m: &Module, f: &Function, states: &[(String, Type)]) -> Result<Function, SplitError> {
    let mut b = FunctionBuilder::new(m, &f.name);
    let mut map = std::collections::HashMap::new();
    for &i in f.inputs.iter().filter(|&&i| !matches!(f.values[i].ty, Type::State(_))) {
        map.insert(i, b.input(&f.values[i].name, f.values[i].ty.clone()));
    }
    let mut missing = Vec::new();
    for (name, ty) in states {
        let new = b.input(name, ty.clone());
        match f.inputs.iter().find(|&&i| f.values[i].name == *name) {
            Some(&old) => {
                map.insert(old, new);
            }
            None => missing.push((name.clone(), new, ty.tensor().clone())),
        }
    }
    for (_, node) in f.nodes.iter() {
        let operands: Vec<_> = node.operands.iter().map(|o| map[o]).collect();
        if node.results.is_empty() {
            b.effect(node.op.clone(), &operands)?;
            continue;
        }
        let names: Vec<String> = node.results.iter().map(|&r| f.values[r].name.clone()).collect();
        let results = b.op_named(node.op.clone(), &operands, &names)?;
        for (&old, new) in node.results.iter().zip(results) {
            map.insert(old, new);
        }
    }
    for out in &f.outputs {
        let mut v = map[&out.value];
        if out.name == "output_hidden_states" {
            for (name, state, ty) in &missing {
                let tag = name.trim_start_matches("model_model_");
                let all = b.op(Op::ReadState, &[*state], &format!("{tag}_unused"))?;
                let one = b.op(
                    Op::Slice { begin: vec![0; ty.rank()], end: vec![1; ty.rank()] },
                    &[all],
                    &format!("{tag}_one"),
                )?;
                let hidden = b.tensor_ty(v).clone();
                let zero = b.const_f(TensorType::new(hidden.dtype, vec![]), vec![0.0], &format!("{tag}_zero"))?;
                let one = if ty.dtype == hidden.dtype {
                    one
                } else {
                    b.op(Op::Cast { dtype: hidden.dtype }, &[one], &format!("{tag}_cast"))?
                };
                let nothing = b.op(Op::Mul, &[one, zero], &format!("{tag}_times_zero"))?;
                let nothing =
                    b.op(Op::Reshape { shape: vec![1; hidden.rank()] }, &[nothing], &format!("{tag}_flat"))?;
                v = b.op(Op::Add, &[v, nothing], &format!("{tag}_kept"))?;
            }
        }
        b.output(&out.name, v);
    }
    Ok(b.finish())
}

/// Splits the layers of `m` into chunk functions following `plan` (see the module docs).
pub fn split_module(m: &Module, plan: &[Range<usize>]) -> Result<Module, SplitError> {
    let layers = (0..).take_while(|i| m.function(&format!("layer{i}.infer")).is_some()).count();
    let covers = plan.first().map(|r| r.start) == Some(0)
        && plan.last().map(|r| r.end) == Some(layers)
        && plan.windows(2).all(|w| w[0].end == w[1].start)
        && plan.iter().all(|r| !r.is_empty());
    if !covers {
        return Err(SplitError::BadPlan { layers });
    }
    let norm_infer = function(m, "final_norm.infer")?;
    let last = plan.len() - 1;
    let mut chunks = Vec::new();
    let modes: &[&str] = if m.function("layer0.infer_rotate").is_some() {
        &["infer", "infer_rotate", "prefill", "prefill_rotate"]
    } else {
        &["infer", "prefill"]
    };
    for (k, range) in plan.iter().enumerate() {
        for &mode in modes {
            let mut funcs: Vec<Function> = Vec::new();
            for i in range.clone() {
                funcs.push(function(m, &format!("layer{i}.{mode}"))?.clone());
            }
            let prefill = mode.starts_with("prefill");
            if k == last && !prefill {
                funcs.push(norm_infer.clone());
            }
            if k == last && prefill {
                let tail = funcs.last().expect("chunks are non-empty").clone();
                funcs.push(first_row(m, &tail)?);
            }
            let parts: Vec<Part<'_>> = funcs
                .iter()
                .map(|f| {
                    let prefix = match f.name.strip_prefix("layer").and_then(|r| r.split('.').next()) {
                        Some(i) => format!("l{i}."),
                        None => format!("{}.", f.name.split('.').next().unwrap_or("tail")),
                    };
                    Part { func: f, prefix }
                })
                .collect();
            let name = format!("chunk{k}.{mode}");
            let chained = chain(m, &name, &parts, "hidden_states", "output_hidden_states")?;
            chunks.push(super::tidy::tidy_chunk(&chained).0);
        }
    }
    declare_all_states(m, &mut chunks)?;
    let mut out = m.clone();
    out.functions.retain(|f| !f.name.starts_with("layer") && !f.name.starts_with("final_norm."));
    let at = out.functions.iter().position(|f| f.name.starts_with("lm_head.")).unwrap_or(out.functions.len());
    out.functions.splice(at..at, chunks);
    out.attrs.insert("chunks".into(), AttrValue::Int(plan.len() as i64));
    let sizes: Vec<i64> = plan.iter().map(|r| r.len() as i64).collect();
    out.attrs.insert("chunk_layers".into(), AttrValue::Ints(sizes));
    verify_module(&out).map_err(|e| SplitError::Invalid(e.to_string()))?;
    Ok(out)
}
