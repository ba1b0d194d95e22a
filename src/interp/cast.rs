//! `const` and `cast`: building literal tensors and converting element types.
//!
//! Cast rules (those of Rust's `as`, as `ir-spec/ops.md` specifies):
//! - float → float and integer → float: round to nearest, ties to even (overflow → ±inf);
//! - float → integer: truncate toward zero, saturate to the dtype's range, nan → 0;
//! - `int64 → int32`: keep the low 32 bits; `int32 → int64`: sign-extend;
//! - anything → bool: `x ≠ 0` (nan → true); bool → number: 0 or 1.

use ndarray::{ArrayD, IxDyn};

use crate::ir::{ConstData, DType, TensorType};

use super::kernel::{OpResult, float_result};
use super::tensor::{Data, Tensor, int_fits, round_f32, round_f64};

/// The tensor of a `const` op: `data` holds `numel(ty)` values or a single splat value.
/// Float literals are rounded to the dtype; integer literals must fit it (an `int32` literal
/// out of range or a bool literal other than 0/1 is a run-time error).
pub fn constant(ty: &TensorType, data: &ConstData) -> OpResult {
    let n = ty.numel();
    if data.len() != 1 && data.len() != n {
        return Err(format!("{ty} needs {n} values (or 1 splat), got {}", data.len()));
    }
    let dim = IxDyn(&ty.shape);
    match data {
        ConstData::Floats(v) if ty.dtype.is_float() => {
            let pick = |i: usize| v[if v.len() == 1 { 0 } else { i }];
            let values = (0..n).map(|i| round_f64(ty.dtype, pick(i))).collect();
            let a = ArrayD::from_shape_vec(dim, values).map_err(|e| e.to_string())?;
            float_result(ty.dtype, a)
        }
        ConstData::Ints(v) if ty.dtype.is_int() || ty.dtype == DType::Bool => {
            if let Some(bad) = v.iter().find(|&&x| !int_fits(ty.dtype, x)) {
                return Err(format!("literal {bad} does not fit {}", ty.dtype));
            }
            let pick = |i: usize| v[if v.len() == 1 { 0 } else { i }];
            let a = ArrayD::from_shape_vec(dim, (0..n).map(pick).collect()).map_err(|e| e.to_string())?;
            Tensor::from_int_array(ty.dtype, a).map_err(|e| e.to_string())
        }
        _ => Err(format!("literal kind does not match {}", ty.dtype)),
    }
}

fn float_to_int(to: DType, v: f32) -> i64 {
    match to {
        DType::I32 => i64::from(v as i32),
        DType::Bool => i64::from(v != 0.0),
        _ => v as i64,
    }
}

fn int_to_int(to: DType, v: i64) -> i64 {
    match to {
        DType::I32 => i64::from(v as i32),
        DType::Bool => i64::from(v != 0),
        _ => v,
    }
}

/// `cast` to `to`. Index dtypes (`uint1` … `uint8`) are refused in both directions.
pub fn cast(x: &Tensor, to: DType) -> OpResult {
    if x.dtype().is_lut_index() || to.is_lut_index() {
        return Err(format!("cannot cast {} to {to}: index types cannot be cast", x.dtype()));
    }
    let data = match (x.data(), to.is_float()) {
        (Data::Float(a), true) => Data::Float(a.mapv(|v| round_f32(to, v))),
        // `i64 as f32` is correctly rounded; rounding that f32 to fp16/bf16 is innocuous.
        (Data::Int(a), true) => Data::Float(a.mapv(|v| round_f32(to, v as f32))),
        (Data::Float(a), false) => Data::Int(a.mapv(|v| float_to_int(to, v))),
        (Data::Int(a), false) => Data::Int(a.mapv(|v| int_to_int(to, v))),
    };
    Ok(Tensor::from_parts(to, data))
}
