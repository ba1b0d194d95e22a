//! `FunctionBuilder`: type-inferred construction of functions for frontends and passes.
//! Every op added goes through the typing rule, so a builder never produces an ill-typed
//! function; value names are made unique by suffixing.

use std::collections::HashMap;

use super::module::{Function, Module, ValueId};
use super::op::{ConstData, Op};
use super::types::{TensorType, Type};
use super::typing::{TypeError, infer};

/// Builds one function against the weights of a module.
pub struct FunctionBuilder<'m> {
    module: &'m Module,
    func: Function,
    used: HashMap<String, usize>,
}

impl<'m> FunctionBuilder<'m> {
    pub fn new(module: &'m Module, name: impl Into<String>) -> Self {
        FunctionBuilder { module, func: Function::new(name), used: HashMap::new() }
    }

    /// Returns `base` if unused, else `base_1`, `base_2`, ….
    fn fresh(&mut self, base: &str) -> String {
        let count = self.used.entry(base.to_string()).or_insert(0);
        let name = if *count == 0 { base.to_string() } else { format!("{base}_{count}") };
        *count += 1;
        if self.func.value_by_name(&name).is_some() { self.fresh(&format!("{base}_")) } else { name }
    }

    pub fn input(&mut self, name: &str, ty: impl Into<Type>) -> ValueId {
        let name = self.fresh(name);
        self.func.add_input(name, ty.into())
    }

    pub fn ty(&self, v: ValueId) -> &Type {
        &self.func.values[v].ty
    }

    /// The tensor type of `v` (the held type for a state).
    pub fn tensor_ty(&self, v: ValueId) -> &TensorType {
        self.func.values[v].ty.tensor()
    }

    /// Adds a multi-result op; result names are `name`, `name_1`, ….
    pub fn op_multi(&mut self, op: Op, operands: &[ValueId], name: &str) -> Result<Vec<ValueId>, TypeError> {
        let types: Vec<&Type> = operands.iter().map(|&v| &self.func.values[v].ty).collect();
        let module = self.module;
        let results = infer(&op, &types, &|w| module.weight(w).map(|w| w.ty.clone()))?;
        let named: Vec<(String, Type)> = results.into_iter().map(|t| (self.fresh(name), t)).collect();
        let node = self.func.push_node(op, operands.to_vec(), named);
        Ok(self.func.nodes[node].results.clone())
    }

    /// Adds an op whose results take the given base names (made unique by suffixing).
    pub fn op_named(&mut self, op: Op, operands: &[ValueId], names: &[String]) -> Result<Vec<ValueId>, TypeError> {
        let types: Vec<&Type> = operands.iter().map(|&v| &self.func.values[v].ty).collect();
        let module = self.module;
        let results = infer(&op, &types, &|w| module.weight(w).map(|w| w.ty.clone()))?;
        if results.len() != names.len() {
            return Err(TypeError {
                rule: "builder.result-names".into(),
                message: format!("{} results, {} names", results.len(), names.len()),
            });
        }
        let named: Vec<(String, Type)> = results.into_iter().zip(names).map(|(t, n)| (self.fresh(n), t)).collect();
        let node = self.func.push_node(op, operands.to_vec(), named);
        Ok(self.func.nodes[node].results.clone())
    }

    /// Adds a single-result op.
    pub fn op(&mut self, op: Op, operands: &[ValueId], name: &str) -> Result<ValueId, TypeError> {
        let results = self.op_multi(op, operands, name)?;
        match results.as_slice() {
            [one] => Ok(*one),
            _ => Err(TypeError {
                rule: "builder.single-result".into(),
                message: format!("expected one result, got {}", results.len()),
            }),
        }
    }

    /// Adds a zero-result op such as `write_state`.
    pub fn effect(&mut self, op: Op, operands: &[ValueId]) -> Result<(), TypeError> {
        let results = self.op_multi(op, operands, "effect")?;
        if results.is_empty() {
            Ok(())
        } else {
            Err(TypeError { rule: "builder.no-result".into(), message: "op has results".into() })
        }
    }

    pub fn weight(&mut self, name: &str, value_name: &str) -> Result<ValueId, TypeError> {
        self.op(Op::Weight { name: name.to_string() }, &[], value_name)
    }

    pub fn const_f(&mut self, ty: TensorType, values: Vec<f64>, name: &str) -> Result<ValueId, TypeError> {
        self.op(Op::Const { ty, data: ConstData::Floats(values) }, &[], name)
    }

    pub fn const_i(&mut self, ty: TensorType, values: Vec<i64>, name: &str) -> Result<ValueId, TypeError> {
        self.op(Op::Const { ty, data: ConstData::Ints(values) }, &[], name)
    }

    pub fn output(&mut self, name: &str, v: ValueId) {
        self.func.add_output(name, v);
    }

    pub fn finish(self) -> Function {
        self.func
    }
}
