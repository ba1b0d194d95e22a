//! `split_module`: replaces the per-layer functions of a module with FFN chunk functions
//! as ANEMLL's runtime expects them (anemll-contract.md §1.3–1.5):
//!
//! - `chunk{k}.infer` = `layer{i}.infer` for the chunk's layers, chained; the last chunk
//!   also applies `final_norm.infer` (the LM head receives normed hidden states);
//! - `chunk{k}.prefill` = `layer{i}.prefill` chained; the last chunk returns only row 0
//!   (`[1, 1, H]`) and no norm, since prefill output is never consumed.
//!
//! `embed.*` and `lm_head.*` are kept; `layer{i}.*` and `final_norm.*` are removed. The
//! result verifies and computes the same logits (checked by tests through the interpreter).

use std::ops::Range;

use super::chain::{ChainError, Part, chain};
use crate::ir::{AttrValue, Function, FunctionBuilder, Module, Op, Type, TypeError, verify_module};

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
    for (k, range) in plan.iter().enumerate() {
        for mode in ["infer", "prefill"] {
            let mut funcs: Vec<Function> = Vec::new();
            for i in range.clone() {
                funcs.push(function(m, &format!("layer{i}.{mode}"))?.clone());
            }
            if k == last && mode == "infer" {
                funcs.push(norm_infer.clone());
            }
            if k == last && mode == "prefill" {
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
            chunks.push(chain(m, &name, &parts, "hidden_states", "output_hidden_states")?);
        }
    }
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
