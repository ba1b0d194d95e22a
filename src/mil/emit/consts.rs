//! Constants: IR literals, weight references and palettized weights
//! (`lut_to_dense` → `constexpr_lut_to_dense`).

use super::weights::Stored;
use super::{FnEmitter, R};
use crate::ir::{ConstData, DType, Node, Op, TensorType, ValueDef, ValueId};
use crate::mil::dtype::mil_dtype;
use crate::mil::proto::argument::Binding;
use crate::mil::proto::argument::binding::Binding as B;
use crate::mil::proto::{Argument, NamedValueType, Operation, Value};
use crate::mil::tensor_data::{ConstTensor, Elements};
use crate::mil::types::{blob_value, immediate_value, name_attr};

/// The full (splat-expanded) constant of an IR `const` op.
pub(super) fn literal(ty: &TensorType, data: &ConstData) -> R<ConstTensor> {
    let n = ty.numel();
    let splat = |len: usize| if len == 1 { n } else { len };
    let elements = match (data, ty.dtype) {
        (ConstData::Floats(v), d) if d == DType::F16 || d == DType::F32 => {
            Elements::Float((0..splat(v.len())).map(|i| data.get_f64(i)).collect())
        }
        (ConstData::Ints(v), DType::I32 | DType::Bool) => {
            Elements::Int((0..splat(v.len())).map(|i| if v.len() == 1 { v[0] } else { v[i] }).collect())
        }
        (_, d) => return Err(format!("const of dtype {d} is not supported by Core ML")),
    };
    ConstTensor::new(mil_dtype(ty.dtype), ty.shape.clone(), elements)
}

impl FnEmitter<'_> {
    /// The proto value of stored weight `name`, viewed with `shape` (same element count;
    /// a reshape of a stored weight is free because the bytes are row-major either way).
    fn weight_value(&self, name: &str, shape: &[usize]) -> R<Value> {
        let w = self.weights.get(name).ok_or_else(|| format!("internal: weight @{name} was not stored"))?;
        match &w.stored {
            Stored::Blob { offset } => Ok(blob_value(w.dtype, shape, *offset)),
            Stored::Immediate(c) => {
                let mut c = c.clone();
                c.shape = shape.to_vec();
                immediate_value(&c)
            }
        }
    }

    /// The const op of weight `name` in this function (emitted once per function).
    pub(super) fn weight_const(&mut self, name: &str) -> R<String> {
        if let Some(n) = self.weight_consts.get(name) {
            return Ok(n.clone());
        }
        let w = self.weights.get(name).ok_or_else(|| format!("internal: weight @{name} was not stored"))?;
        if w.ty.dtype.is_lut_index() {
            return Err(format!(
                "weight @{name} holds {} indices; Core ML only takes them inside lut_to_dense",
                w.ty.dtype
            ));
        }
        let shape = w.ty.shape.clone();
        let value = self.weight_value(name, &shape)?;
        let const_name = self.fresh(name);
        self.const_op(&const_name, value);
        self.weight_consts.insert(name.to_string(), const_name.clone());
        Ok(const_name)
    }

    /// The IR weight that defines `v`, if `v` is a `weight` op result.
    fn defining_weight(&self, v: ValueId) -> Option<&str> {
        match self.func.values[v].def {
            ValueDef::Result { node, .. } => match &self.func.nodes[node].op {
                Op::Weight { name } => Some(name.as_str()),
                _ => None,
            },
            ValueDef::Input(_) => None,
        }
    }

    /// `lut_to_dense(indices, lut)` → `constexpr_lut_to_dense(indices, lut)` (iOS18 form):
    /// indices keep their shape; the IR lut `[G, 2^bits]` (G groups along axis 0) is the
    /// MIL lut `[G, 1, …, 1, 2^bits, 1]` of rank `rank(indices) + 2` (same bytes).
    pub(super) fn lut_to_dense(&mut self, node: &Node) -> R {
        let (idx, lut) = (node.operands[0], node.operands[1]);
        let (Some(idx_w), Some(lut_w)) = (self.defining_weight(idx), self.defining_weight(lut)) else {
            return Err("Core ML needs both operands of lut_to_dense to be weights (a compile-time constexpr)".into());
        };
        let (idx_w, lut_w) = (idx_w.to_string(), lut_w.to_string());
        let idx_ty = self.tensor_ty(idx).clone();
        let lut_ty = self.tensor_ty(lut).clone();
        let mut lut_shape = vec![lut_ty.shape[0]];
        lut_shape.extend(std::iter::repeat_n(1, idx_ty.rank() - 1));
        lut_shape.extend([lut_ty.shape[1], 1]);
        let indices_value = self.weight_value(&idx_w, &idx_ty.shape)?;
        let lut_value = self.weight_value(&lut_w, &lut_shape)?;
        let name = self.result_name(node, 0);
        let inline = |v: Value| Argument { arguments: vec![Binding { binding: Some(B::Value(v)) }] };
        self.ops.push(Operation {
            r#type: "constexpr_lut_to_dense".to_string(),
            inputs: [("indices".to_string(), inline(indices_value)), ("lut".to_string(), inline(lut_value))]
                .into_iter()
                .collect(),
            outputs: vec![NamedValueType { name: name.clone(), r#type: Some(self.mil_ty(node.results[0])) }],
            blocks: vec![],
            attributes: [("name".to_string(), name_attr(&name))].into_iter().collect(),
        });
        self.bind(node.results[0], name);
        Ok(())
    }
}
