//! The verifier: the mandatory gate run after parsing, after lowering and after every pass.
//! If it passes, every handle is valid, values are defined before use, names are unique,
//! every op satisfies its typing rule and every function's outputs match its signature.

use std::collections::HashSet;
use std::fmt;

use super::module::{Function, Module, ValueDef};
use super::types::Type;
use super::typing::infer;

/// A broken invariant, naming the function, the op and the rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyError {
    /// `@function` or `module` for module-level problems.
    pub scope: String,
    /// Where in the scope: `op #3 \`gather\` (%h)`, `input %x`, `output logits`, `weight @w`.
    pub location: String,
    /// The violated rule, e.g. `ssa.use-before-def` or `gather.indices`.
    pub rule: String,
    pub message: String,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: [{}] {}", self.scope, self.location, self.rule, self.message)
    }
}

impl std::error::Error for VerifyError {}

/// `@symbol` characters (module, weight and function names).
fn is_symbol(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// `%value` characters.
fn is_local(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "_.".contains(c))
}

/// Identifiers (output names, attribute keys).
fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Core ML and the ANE have no empty tensors; neither does the IR.
fn has_zero_dim(t: &Type) -> bool {
    t.tensor().shape.contains(&0)
}

/// Verifies a whole module; returns the first violation found.
pub fn verify_module(m: &Module) -> Result<(), VerifyError> {
    let module_err = |location: String, rule: &str, message: String| VerifyError {
        scope: "module".into(),
        location,
        rule: rule.into(),
        message,
    };
    if !is_symbol(&m.name) {
        return Err(module_err(format!("module @{}", m.name), "names.lexical", "not a valid @symbol".into()));
    }
    if let Some(k) = m.attrs.keys().find(|k| !is_ident(k)) {
        return Err(module_err(format!("attribute {k:?}"), "names.lexical", "not a valid identifier".into()));
    }
    let mut names = HashSet::new();
    for w in &m.weights {
        if !is_symbol(&w.name) {
            return Err(module_err(format!("weight @{}", w.name), "names.lexical", "not a valid @symbol".into()));
        }
        if w.ty.shape.contains(&0) {
            return Err(module_err(
                format!("weight @{}", w.name),
                "types.zero-dim",
                format!("{} has an empty axis", w.ty),
            ));
        }
        if !names.insert(w.name.as_str()) {
            return Err(module_err(format!("weight @{}", w.name), "module.unique-weight", "declared twice".into()));
        }
        match w.recipe.infer_type() {
            Ok(t) if t == w.ty => {}
            Ok(t) => {
                return Err(module_err(
                    format!("weight @{}", w.name),
                    "weight.recipe-type",
                    format!("declared {} but the recipe produces {t}", w.ty),
                ));
            }
            Err(msg) => return Err(module_err(format!("weight @{}", w.name), "weight.recipe", msg)),
        }
    }
    let mut fnames = HashSet::new();
    let mut states: std::collections::HashMap<&str, (&Type, &str)> = std::collections::HashMap::new();
    for f in &m.functions {
        if !is_symbol(&f.name) {
            return Err(module_err(format!("func @{}", f.name), "names.lexical", "not a valid @symbol".into()));
        }
        if !fnames.insert(f.name.as_str()) {
            return Err(module_err(format!("func @{}", f.name), "module.unique-function", "defined twice".into()));
        }
        verify_function(m, f)?;
        // Functions bind states by input name, so one name must mean one type module-wide.
        for &input in &f.inputs {
            let v = &f.values[input];
            if !v.ty.is_state() {
                continue;
            }
            match states.get(v.name.as_str()) {
                Some((ty, other)) if *ty != &v.ty => {
                    return Err(module_err(
                        format!("state %{}", v.name),
                        "module.state-type",
                        format!("@{} declares {} but @{other} declares {ty}", f.name, v.ty),
                    ));
                }
                Some(_) => {}
                None => {
                    states.insert(v.name.as_str(), (&v.ty, f.name.as_str()));
                }
            }
        }
    }
    Ok(())
}

/// Verifies one function of `m` (weights are resolved in `m`).
pub fn verify_function(m: &Module, f: &Function) -> Result<(), VerifyError> {
    let err = |location: String, rule: &str, message: String| VerifyError {
        scope: format!("@{}", f.name),
        location,
        rule: rule.into(),
        message,
    };
    // Handles and definitions of every value.
    let mut names = HashSet::new();
    for (id, v) in f.values.iter() {
        if !is_local(&v.name) {
            return Err(err(format!("value %{}", v.name), "names.lexical", "not a valid %value name".into()));
        }
        if !names.insert(v.name.as_str()) {
            return Err(err(format!("value %{}", v.name), "names.unique", "defined twice".into()));
        }
        if has_zero_dim(&v.ty) {
            return Err(err(format!("value %{}", v.name), "types.zero-dim", format!("{} has an empty axis", v.ty)));
        }
        let consistent = match v.def {
            ValueDef::Input(i) => f.inputs.get(i) == Some(&id),
            ValueDef::Result { node, index } => f.nodes.try_get(node).and_then(|n| n.results.get(index)) == Some(&id),
        };
        if !consistent {
            return Err(err(
                format!("value %{}", v.name),
                "handles.def",
                "its definition does not point back to it".into(),
            ));
        }
    }
    for (i, &input) in f.inputs.iter().enumerate() {
        if f.values.try_get(input).is_none() {
            return Err(err(format!("input #{i}"), "handles.range", "input handle out of range".into()));
        }
    }
    // Nodes in order: operands defined earlier, results typed by the op's rule.
    let weight_type = |name: &str| m.weight(name).map(|w| w.ty.clone());
    for (node_id, node) in f.nodes.iter() {
        let label = |node: &super::module::Node| {
            let first = node
                .results
                .first()
                .and_then(|&r| f.values.try_get(r))
                .map(|v| format!(" (%{})", v.name))
                .unwrap_or_default();
            format!("op #{} `{}`{}", node_id.index(), node.op.name(), first)
        };
        let mut operand_types: Vec<&Type> = Vec::with_capacity(node.operands.len());
        for &operand in &node.operands {
            let Some(v) = f.values.try_get(operand) else {
                return Err(err(
                    label(node),
                    "handles.range",
                    format!("operand handle {} out of range", operand.index()),
                ));
            };
            if let ValueDef::Result { node: def, .. } = v.def
                && def >= node_id
            {
                return Err(err(
                    label(node),
                    "ssa.use-before-def",
                    format!("%{} is used before it is defined", v.name),
                ));
            }
            operand_types.push(&v.ty);
        }
        for (index, &r) in node.results.iter().enumerate() {
            match f.values.try_get(r) {
                Some(v) if v.def == (ValueDef::Result { node: node_id, index }) => {}
                _ => {
                    return Err(err(
                        label(node),
                        "handles.result",
                        format!("result #{index} does not belong to this op"),
                    ));
                }
            }
        }
        let inferred =
            infer(&node.op, &operand_types, &weight_type).map_err(|e| err(label(node), &e.rule, e.message))?;
        if inferred.len() != node.results.len() {
            return Err(err(
                label(node),
                "typing.result-count",
                format!("the op yields {} results, {} are named", inferred.len(), node.results.len()),
            ));
        }
        for (r, want) in node.results.iter().zip(&inferred) {
            let got = &f.values[*r].ty;
            if got != want {
                return Err(err(
                    label(node),
                    "typing.result-type",
                    format!("%{} is declared {got} but the typing rule gives {want}", f.values[*r].name),
                ));
            }
        }
    }
    // Outputs.
    let mut out_names = HashSet::new();
    for o in &f.outputs {
        let location = format!("output {}", o.name);
        if !is_ident(&o.name) {
            return Err(err(location, "names.lexical", "output names must be identifiers".into()));
        }
        if !out_names.insert(o.name.as_str()) {
            return Err(err(location, "signature.unique-output", "output named twice".into()));
        }
        let Some(v) = f.values.try_get(o.value) else {
            return Err(err(location, "handles.range", "output handle out of range".into()));
        };
        if v.ty != o.ty {
            return Err(err(
                location,
                "signature.output-type",
                format!("declared {} but returns %{} of type {}", o.ty, v.name, v.ty),
            ));
        }
        if o.ty.is_state() {
            return Err(err(location, "signature.no-state-output", "states cannot be returned".into()));
        }
    }
    Ok(())
}
