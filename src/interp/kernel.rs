//! Helpers shared by the op implementations.
//!
//! Op implementations return [`OpResult`]: a plain message on failure, which the evaluator
//! wraps with the function, op index and op name. They may assume the op's typing rule holds
//! for the actual operand types (the evaluator checks it before every op), but they still
//! report rather than panic where a violated assumption would otherwise index out of range.

use ndarray::{ArrayD, ArrayViewD, IxDyn};

use crate::ir::DType;

use super::tensor::{Data, Tensor};

/// The result of one op kernel; the error is a message without location.
pub type OpResult<T = Tensor> = Result<T, String>;

/// The float elements of an operand.
pub fn floats(t: &Tensor) -> OpResult<&ArrayD<f32>> {
    t.as_f32().ok_or_else(|| format!("expected a float operand, got {}", t.tensor_type()))
}

/// The integer elements of an operand.
pub fn ints(t: &Tensor) -> OpResult<&ArrayD<i64>> {
    t.as_i64().ok_or_else(|| format!("expected a non-float operand, got {}", t.tensor_type()))
}

/// A float result, rounded to `dtype`.
pub fn float_result(dtype: DType, a: ArrayD<f32>) -> OpResult {
    Tensor::from_float_array(dtype, a).map_err(|e| e.to_string())
}

/// An integer result, wrapped to `dtype`'s width.
pub fn int_result(dtype: DType, a: ArrayD<i64>) -> OpResult {
    Tensor::from_int_array_wrapping(dtype, a).map_err(|e| e.to_string())
}

/// The same elements as `a` in row-major order, with a new shape of equal element count.
pub fn reshape<T: Clone>(a: ArrayViewD<'_, T>, shape: &[usize]) -> OpResult<ArrayD<T>> {
    ArrayD::from_shape_vec(IxDyn(shape), a.iter().cloned().collect())
        .map_err(|_| format!("cannot reshape {:?} to {shape:?}", a.shape()))
}

/// Applies a dtype-agnostic element move (`f` is instantiated for both storage kinds) and
/// keeps the dtype. Sound because the result only holds copies of valid elements.
macro_rules! move_elements {
    ($t:expr, |$a:ident| $body:expr) => {{
        let t: &$crate::interp::Tensor = $t;
        let data = match t.data() {
            $crate::interp::tensor::Data::Float($a) => $crate::interp::tensor::Data::Float($body),
            $crate::interp::tensor::Data::Int($a) => $crate::interp::tensor::Data::Int($body),
        };
        $crate::interp::Tensor::from_parts(t.dtype(), data)
    }};
}
pub(crate) use move_elements;

/// Both operands' storage, when they share a kind.
pub enum Pair<'a> {
    Float(&'a ArrayD<f32>, &'a ArrayD<f32>),
    Int(&'a ArrayD<i64>, &'a ArrayD<i64>),
}

/// Pairs two operands of one storage kind.
pub fn pair<'a>(a: &'a Tensor, b: &'a Tensor) -> OpResult<Pair<'a>> {
    match (a.data(), b.data()) {
        (Data::Float(x), Data::Float(y)) => Ok(Pair::Float(x, y)),
        (Data::Int(x), Data::Int(y)) => Ok(Pair::Int(x, y)),
        _ => Err(format!("operands differ in kind: {} vs {}", a.tensor_type(), b.tensor_type())),
    }
}
