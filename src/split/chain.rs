//! Function chaining: inline several functions, in order, into one. This is how the
//! splitter builds an FFN chunk from per-layer functions (and appends the final norm to the
//! last chunk).
//!
//! Wiring: the first part's inputs become the chain's inputs; a later part's input named
//! `link_in` is bound to the previous part's output named `link_out`; every other input is
//! shared by name with an earlier part's input of the same name (same type required), or
//! becomes a new chain input. The chain returns the last part's outputs. Values keep their
//! names with a per-part prefix, so dumps stay readable.

use std::collections::HashMap;

use crate::ir::{Function, FunctionBuilder, Module, TypeError, ValueId};

/// One function to inline, and the prefix its value names get (e.g. `l3.`).
pub struct Part<'a> {
    pub func: &'a Function,
    pub prefix: String,
}

/// Why chaining failed (always a bug in the caller's plan).
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("@{func}: has no output `{output}` to feed the next part")]
    MissingLink { func: String, output: String },
    #[error("@{func}: input %{input} is {got} here but {want} in an earlier part")]
    InputType { func: String, input: String, got: String, want: String },
    #[error("chaining produced ill-typed IR ({rule}: {message})")]
    Type { rule: String, message: String },
    #[error("nothing to chain")]
    Empty,
}

impl From<TypeError> for ChainError {
    fn from(e: TypeError) -> Self {
        ChainError::Type { rule: e.rule, message: e.message }
    }
}

/// Inlines `parts` into a new function `name` (see the module docs for the wiring).
pub fn chain(
    module: &Module,
    name: &str,
    parts: &[Part<'_>],
    link_in: &str,
    link_out: &str,
) -> Result<Function, ChainError> {
    let last = parts.last().ok_or(ChainError::Empty)?;
    let mut b = FunctionBuilder::new(module, name);
    let mut shared: HashMap<String, ValueId> = HashMap::new();
    let mut link: Option<ValueId> = None;
    let mut outputs: Vec<(String, ValueId)> = Vec::new();
    for (k, part) in parts.iter().enumerate() {
        let f = part.func;
        let mut map: HashMap<ValueId, ValueId> = HashMap::new();
        for &input in &f.inputs {
            let v = &f.values[input];
            let bound = match (k > 0 && v.name == link_in, link) {
                (true, Some(prev)) => prev,
                _ => match shared.get(&v.name) {
                    Some(&id) => {
                        if b.ty(id) != &v.ty {
                            return Err(ChainError::InputType {
                                func: f.name.clone(),
                                input: v.name.clone(),
                                got: v.ty.to_string(),
                                want: b.ty(id).to_string(),
                            });
                        }
                        id
                    }
                    None => {
                        let id = b.input(&v.name, v.ty.clone());
                        shared.insert(v.name.clone(), id);
                        id
                    }
                },
            };
            map.insert(input, bound);
        }
        for (_, node) in f.nodes.iter() {
            let operands: Vec<ValueId> = node.operands.iter().map(|o| map[o]).collect();
            if node.results.is_empty() {
                b.effect(node.op.clone(), &operands)?;
                continue;
            }
            let names: Vec<String> =
                node.results.iter().map(|&r| format!("{}{}", part.prefix, f.values[r].name)).collect();
            let results = b.op_named(node.op.clone(), &operands, &names)?;
            for (&old, new) in node.results.iter().zip(results) {
                map.insert(old, new);
            }
        }
        if std::ptr::eq(part, last) {
            outputs = f.outputs.iter().map(|o| (o.name.clone(), map[&o.value])).collect();
        } else {
            let out = f
                .outputs
                .iter()
                .find(|o| o.name == link_out)
                .ok_or_else(|| ChainError::MissingLink { func: f.name.clone(), output: link_out.to_string() })?;
            link = Some(map[&out.value]);
        }
    }
    for (name, v) in outputs {
        b.output(&name, v);
    }
    Ok(b.finish())
}
