//! The module data model.
//!
//! A [`Module`] holds named weights (typed, produced by a [`Recipe`] from the source
//! checkpoint) and functions. A [`Function`] has typed inputs (tensors or states), a body of
//! [`Node`]s in SSA order and named outputs. Values live in a per-function arena; each value is
//! either a function input or one result of one node.
//!
//! Invariants (checked by `verify`):
//! - every handle points into its function's arenas;
//! - a node's operands are defined by an input or an earlier node (SSA order);
//! - value names are unique within a function and weight/function names within the module;
//! - every node's result types equal its op's typing rule applied to its operand types;
//! - every output's declared type equals the type of the value it returns.

use std::collections::BTreeMap;

use super::arena::{Arena, Handle};
use super::attr::AttrValue;
use super::op::Op;
use super::recipe::Recipe;
use super::types::{TensorType, Type};

pub type ValueId = Handle<Value>;
pub type NodeId = Handle<Node>;

/// Where a value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueDef {
    /// The i-th function input.
    Input(usize),
    /// Result `index` of a node.
    Result { node: NodeId, index: usize },
}

/// An SSA value: a name (printed as `%name`), a type and its definition.
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    pub name: String,
    pub ty: Type,
    pub def: ValueDef,
}

/// One operation instance.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub op: Op,
    pub operands: Vec<ValueId>,
    pub results: Vec<ValueId>,
}

/// A named function output.
#[derive(Clone, Debug, PartialEq)]
pub struct Output {
    pub name: String,
    pub ty: Type,
    pub value: ValueId,
}

/// A function: inputs, a body in SSA order, outputs.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Function {
    pub name: String,
    pub inputs: Vec<ValueId>,
    pub values: Arena<Value>,
    pub nodes: Arena<Node>,
    pub outputs: Vec<Output>,
}

impl Function {
    pub fn new(name: impl Into<String>) -> Self {
        Function { name: name.into(), ..Default::default() }
    }

    pub fn value(&self, id: ValueId) -> &Value {
        &self.values[id]
    }

    /// Adds a function input.
    pub fn add_input(&mut self, name: impl Into<String>, ty: Type) -> ValueId {
        let def = ValueDef::Input(self.inputs.len());
        let id = self.values.append(Value { name: name.into(), ty, def });
        self.inputs.push(id);
        id
    }

    /// Appends a node whose results have the given names and types. No checking happens here;
    /// use `FunctionBuilder` for type-inferred construction, and `verify` for the gate.
    pub fn push_node(&mut self, op: Op, operands: Vec<ValueId>, results: Vec<(String, Type)>) -> NodeId {
        let node = Handle::from_index(self.nodes.len());
        let results = results
            .into_iter()
            .enumerate()
            .map(|(index, (name, ty))| self.values.append(Value { name, ty, def: ValueDef::Result { node, index } }))
            .collect();
        self.nodes.append(Node { op, operands, results })
    }

    pub fn add_output(&mut self, name: impl Into<String>, value: ValueId) {
        let ty = self.values[value].ty.clone();
        self.outputs.push(Output { name: name.into(), ty, value });
    }

    /// Looks up a value by its name.
    pub fn value_by_name(&self, name: &str) -> Option<ValueId> {
        self.values.iter().find(|(_, v)| v.name == name).map(|(h, _)| h)
    }
}

/// A named module weight.
#[derive(Clone, Debug, PartialEq)]
pub struct Weight {
    pub name: String,
    pub ty: TensorType,
    pub recipe: Recipe,
}

/// A whole program: attributes, weights, functions.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Module {
    pub name: String,
    /// Free-form module attributes (architecture, context length, source checkpoint, …).
    pub attrs: BTreeMap<String, AttrValue>,
    pub weights: Vec<Weight>,
    pub functions: Vec<Function>,
}

impl Module {
    pub fn new(name: impl Into<String>) -> Self {
        Module { name: name.into(), ..Default::default() }
    }

    pub fn weight(&self, name: &str) -> Option<&Weight> {
        self.weights.iter().find(|w| w.name == name)
    }

    pub fn function(&self, name: &str) -> Option<&Function> {
        self.functions.iter().find(|f| f.name == name)
    }

    pub fn attr_int(&self, key: &str) -> Option<i64> {
        match self.attrs.get(key) {
            Some(AttrValue::Int(v)) => Some(*v),
            _ => None,
        }
    }

    pub fn attr_str(&self, key: &str) -> Option<&str> {
        match self.attrs.get(key) {
            Some(AttrValue::Str(v)) => Some(v),
            _ => None,
        }
    }
}
