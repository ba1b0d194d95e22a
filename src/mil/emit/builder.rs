//! Building MIL operations: ops with by-name bindings, `const` ops, and the parameter
//! constants (`<op>_<param>`) every op takes its literals from.

use super::{FnEmitter, R, weights};
use crate::mil::dtype::mil_dtype;
use crate::mil::proto::argument::Binding;
use crate::mil::proto::argument::binding::Binding as B;
use crate::mil::proto::{Argument, DataType, NamedValueType, Operation, Value, ValueType};
use crate::mil::tensor_data::{ConstTensor, Elements};
use crate::mil::types::{immediate_value, name_attr};

impl FnEmitter<'_> {
    /// Appends an op. `inputs` are parameter → bound names (several for variadic ones).
    pub(super) fn push_op(
        &mut self,
        ty: &str,
        name: &str,
        inputs: Vec<(&str, Vec<String>)>,
        outputs: Vec<(String, ValueType)>,
    ) {
        let inputs = inputs
            .into_iter()
            .map(|(param, names)| {
                let arguments = names.into_iter().map(|n| Binding { binding: Some(B::Name(n)) }).collect();
                (param.to_string(), Argument { arguments })
            })
            .collect();
        self.ops.push(Operation {
            r#type: ty.to_string(),
            inputs,
            outputs: outputs.into_iter().map(|(name, t)| NamedValueType { name, r#type: Some(t) }).collect(),
            blocks: vec![],
            attributes: [("name".to_string(), name_attr(name))].into_iter().collect(),
        });
    }

    /// Appends a single-output op named `name` whose output has type `ty`.
    pub(super) fn push_simple(&mut self, ty_name: &str, name: &str, inputs: Vec<(&str, Vec<String>)>, ty: ValueType) {
        self.push_op(ty_name, name, inputs, vec![(name.to_string(), ty)]);
    }

    /// Appends a `const` op named `name` (already reserved in the name table) and returns
    /// the name.
    pub(super) fn const_op(&mut self, name: &str, value: Value) -> String {
        let ty = value.r#type.clone();
        self.ops.push(Operation {
            r#type: "const".to_string(),
            inputs: Default::default(),
            outputs: vec![NamedValueType { name: name.to_string(), r#type: ty }],
            blocks: vec![],
            attributes: [("name".to_string(), name_attr(name)), ("val".to_string(), value)].into_iter().collect(),
        });
        name.to_string()
    }

    /// The proto value of a literal: a blob when it is large enough, else immediate.
    pub(super) fn const_value(&mut self, c: ConstTensor) -> R<Value> {
        if weights::goes_to_blob(c.dtype, c.numel()) {
            let code = crate::mil::dtype::blob_dtype(c.dtype).ok_or("no blob encoding")?;
            let payload = c.to_bytes()?;
            let offset = self.sink.append_dedup(code, c.numel() as u64, payload).map_err(|e| e.to_string())?;
            Ok(crate::mil::types::blob_value(c.dtype, &c.shape, offset))
        } else {
            immediate_value(&c)
        }
    }

    /// A parameter const `<op>_<param>`; returns its name.
    pub(super) fn param(&mut self, op: &str, param: &str, c: ConstTensor) -> R<String> {
        let base = format!("{op}_{param}");
        let name = self.fresh(&base);
        let value = self.const_value(c)?;
        Ok(self.const_op(&name, value))
    }

    pub(super) fn param_i32s(&mut self, op: &str, param: &str, values: &[i64]) -> R<String> {
        let c = ConstTensor::new(DataType::Int32, vec![values.len()], Elements::Int(values.to_vec()))?;
        self.param(op, param, c)
    }

    pub(super) fn param_i32(&mut self, op: &str, param: &str, v: i64) -> R<String> {
        self.param(op, param, ConstTensor::new(DataType::Int32, vec![], Elements::Int(vec![v]))?)
    }

    pub(super) fn param_bool(&mut self, op: &str, param: &str, v: bool) -> R<String> {
        self.param(op, param, ConstTensor::new(DataType::Bool, vec![], Elements::Int(vec![i64::from(v)]))?)
    }

    pub(super) fn param_bools(&mut self, op: &str, param: &str, v: &[bool]) -> R<String> {
        let ints = v.iter().map(|&b| i64::from(b)).collect();
        self.param(op, param, ConstTensor::new(DataType::Bool, vec![v.len()], Elements::Int(ints))?)
    }

    pub(super) fn param_str(&mut self, op: &str, param: &str, s: &str) -> R<String> {
        self.param(op, param, ConstTensor::scalar_str(s))
    }

    pub(super) fn param_f32(&mut self, op: &str, param: &str, v: f64) -> R<String> {
        self.param(op, param, ConstTensor::new(DataType::Float32, vec![], Elements::Float(vec![v]))?)
    }

    /// A scalar of the IR dtype `dtype` (for elementwise operands such as `−1`).
    pub(super) fn scalar_of(&mut self, op: &str, param: &str, dtype: crate::ir::DType, v: f64) -> R<String> {
        let d = mil_dtype(dtype);
        let elements = if dtype.is_float() { Elements::Float(vec![v]) } else { Elements::Int(vec![v as i64]) };
        self.param(op, param, ConstTensor::new(d, vec![], elements)?)
    }
}
