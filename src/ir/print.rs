//! The printer: the canonical textual form of a module (`ir-spec/grammar.md`).
//! `parse(print(m))` rebuilds `m`, and `print(parse(t)) == t` for printed text.

use std::fmt::Write;

use super::attr::{AttrValue, format_float};
use super::module::{Function, Module};
use super::op::{ConstData, Op};

/// Prints a whole module.
pub fn print_module(m: &Module) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "module @{} {{", m.name);
    let mut sections: Vec<String> = Vec::new();
    if !m.attrs.is_empty() {
        let items: Vec<String> = m.attrs.iter().map(|(k, v)| format!("{k} = {v}")).collect();
        sections.push(format!("  attributes {{{}}}\n", items.join(", ")));
    }
    if !m.weights.is_empty() {
        let mut s = String::new();
        for w in &m.weights {
            let _ = writeln!(s, "  weight @{} : {} = {}", w.name, w.ty, w.recipe);
        }
        sections.push(s);
    }
    for f in &m.functions {
        sections.push(print_function(f));
    }
    out.push_str(&sections.join("\n"));
    out.push_str("}\n");
    out
}

fn local(f: &Function, id: super::module::ValueId) -> String {
    match f.values.try_get(id) {
        Some(v) => format!("%{}", v.name),
        None => format!("%<bad handle {}>", id.index()),
    }
}

/// Prints one function at module indentation.
pub fn print_function(f: &Function) -> String {
    let mut s = String::new();
    let params: Vec<String> = f.inputs.iter().map(|&i| format!("{}: {}", local(f, i), f.values[i].ty)).collect();
    let results: Vec<String> = f.outputs.iter().map(|o| format!("{}: {}", o.name, o.ty)).collect();
    let _ = writeln!(s, "  func @{}({}) -> ({}) {{", f.name, params.join(", "), results.join(", "));
    for (_, node) in f.nodes.iter() {
        s.push_str("    ");
        let operands: Vec<String> = node.operands.iter().map(|&v| local(f, v)).collect();
        if !node.results.is_empty() {
            let names: Vec<String> = node.results.iter().map(|&v| local(f, v)).collect();
            let _ = write!(s, "{} = ", names.join(", "));
        }
        match &node.op {
            Op::Const { data, .. } => {
                let items: Vec<String> = match data {
                    ConstData::Floats(v) => v.iter().map(|x| format_float(*x)).collect(),
                    ConstData::Ints(v) => v.iter().map(|x| x.to_string()).collect(),
                };
                let _ = write!(s, "const [{}]", items.join(", "));
            }
            Op::Weight { name } => {
                let _ = write!(s, "weight @{name}");
            }
            op => {
                let _ = write!(s, "{}({})", op.name(), operands.join(", "));
                let attrs = op.attrs();
                if !attrs.is_empty() {
                    let items: Vec<String> = attrs.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                    let _ = write!(s, " {{{}}}", items.join(", "));
                }
            }
        }
        if !node.results.is_empty() {
            let types: Vec<String> = node
                .results
                .iter()
                .map(|&v| f.values.try_get(v).map_or("<bad>".to_string(), |v| v.ty.to_string()))
                .collect();
            let _ = write!(s, " : {}", types.join(", "));
        }
        s.push('\n');
    }
    let rets: Vec<String> = f.outputs.iter().map(|o| local(f, o.value)).collect();
    if rets.is_empty() {
        s.push_str("    return\n");
    } else {
        let _ = writeln!(s, "    return {}", rets.join(", "));
    }
    s.push_str("  }\n");
    s
}

/// Convenience for attribute values in other printers.
pub fn attr_to_string(v: &AttrValue) -> String {
    v.to_string()
}
