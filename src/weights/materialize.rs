//! Evaluating a weight [`Recipe`] against a [`TensorSource`].
//!
//! Every recipe node above a `checkpoint` leaf works on float tensors (recipe typing only
//! admits float tensors there); a bare `checkpoint` leaf may also declare an integer or
//! index dtype, whose values must arrive as exact integers. The recipe is
//! type-checked with `Recipe::infer_type` before anything is read, so the shape arithmetic
//! below cannot go out of range; the result's type equals the inferred type.

use ndarray::{ArrayD, ArrayViewD, Axis, IxDyn, Slice};

use crate::interp::Tensor;
use crate::interp::tensor::round_f64;
use crate::ir::{DType, Recipe};
use crate::quant::LutPart;

use super::rope::{Trig, rope_table};
use super::{TensorSource, WeightError};

/// Produces the tensor a recipe describes.
///
/// - `checkpoint`: the source tensor's shape must equal the declared shape (else
///   [`WeightError::Shape`] naming the tensor). Values arrive as f32; the declared dtype
///   (bf16/fp16/fp32) only fixes the result dtype — the values are rounded to it, which is
///   the identity when the checkpoint really stores that dtype. A non-float declared dtype
///   (int32, uint4 indices, …) needs exact integers in range (|v| < 2^24), else
///   [`WeightError::Source`].
/// - `cast`: round to nearest even; `reshape`/`transpose`/`slice`/`concat`: element moves;
///   `scale`: each element times `factor` in f64, rounded once; `scale_along`: each element
///   times the scale's entry at its index along `axis`, in f64, rounded once to the input's
///   dtype; `rope_cos`/`rope_sin`: see
///   [`rope_table`].
/// - `lut_indices` / `lut_table`: the input is palettized by
///   [`crate::quant::palettize_tensor`], once for both recipes of a weight (through
///   [`crate::quant::PaletteMemo`]).
pub fn materialize(recipe: &Recipe, src: &dyn TensorSource) -> Result<Tensor, WeightError> {
    let ty = recipe.infer_type().map_err(|message| WeightError::Recipe { message })?;
    let out = eval(recipe, src)?;
    if out.tensor_type() != ty {
        return Err(WeightError::Recipe {
            message: format!("internal: recipe produced {} instead of {ty}", out.tensor_type()),
        });
    }
    Ok(out)
}

fn internal(message: impl Into<String>) -> WeightError {
    WeightError::Recipe { message: message.into() }
}

fn floats(t: &Tensor) -> Result<&ArrayD<f32>, WeightError> {
    t.as_f32().ok_or_else(|| internal(format!("expected a float tensor, got {}", t.tensor_type())))
}

/// `a[…, j, …] ← round_dtype(a[…, j, …] · factors[j])` along `axis`, each product in f64
/// (both factors are exact there) and rounded once.
fn scale_along(a: &mut ArrayD<f32>, factors: &ArrayD<f32>, axis: usize, dtype: DType) -> Result<(), WeightError> {
    if factors.ndim() != 1 || axis >= a.ndim() || factors.len() != a.shape()[axis] {
        return Err(internal(format!(
            "scale_along: factors {:?} do not fit axis {axis} of {:?}",
            factors.shape(),
            a.shape()
        )));
    }
    // Each lane runs along `axis` (contiguous rows when `axis` is the last one).
    for mut lane in a.lanes_mut(Axis(axis)) {
        for (v, &g) in lane.iter_mut().zip(factors.iter()) {
            *v = round_f64(dtype, f64::from(*v) * f64::from(g));
        }
    }
    Ok(())
}

/// `checkpoint(…)` of a float tensor under zero or more casts: its name, its type and the
/// casts to apply (innermost first). Casts commute with taking rows.
pub(crate) fn rows_of_checkpoint(r: &Recipe) -> Option<(&str, &crate::ir::TensorType, Vec<DType>)> {
    match r {
        Recipe::Checkpoint { tensor, ty } if ty.dtype.is_float() && !ty.shape.is_empty() => {
            Some((tensor.as_str(), ty, Vec::new()))
        }
        Recipe::Cast { input, dtype } if dtype.is_float() => {
            let (t, ty, mut casts) = rows_of_checkpoint(input)?;
            casts.push(*dtype);
            Some((t, ty, casts))
        }
        _ => None,
    }
}

/// The float elements of `t`, moved out (no copy).
fn owned_floats(t: Tensor) -> Result<ArrayD<f32>, WeightError> {
    let ty = t.tensor_type();
    match t.into_data() {
        crate::interp::Data::Float(a) => Ok(a),
        _ => Err(internal(format!("expected a float tensor, got {ty}"))),
    }
}

fn build(dtype: DType, a: ArrayD<f32>) -> Result<Tensor, WeightError> {
    Tensor::from_float_array(dtype, a).map_err(|e| internal(e.to_string()))
}

fn reshape(a: ArrayViewD<'_, f32>, shape: &[usize]) -> Result<ArrayD<f32>, WeightError> {
    ArrayD::from_shape_vec(IxDyn(shape), a.iter().copied().collect()).map_err(|e| internal(e.to_string()))
}

fn eval(recipe: &Recipe, src: &dyn TensorSource) -> Result<Tensor, WeightError> {
    match recipe {
        Recipe::Checkpoint { tensor, ty } => {
            let (shape, data) = src.read_f32(tensor)?;
            if shape != ty.shape {
                return Err(WeightError::Shape { tensor: tensor.clone(), expected: ty.shape.clone(), got: shape });
            }
            let source_err = |message: String| WeightError::Source { tensor: tensor.clone(), message };
            if ty.dtype.is_float() {
                return Tensor::from_f32(ty.dtype, &shape, data).map_err(|e| source_err(e.to_string()));
            }
            // Integer / index tensors (e.g. palettization indices read back from a Core ML
            // package) arrive as exact small integers in f32.
            let ints = data
                .iter()
                .map(|&v| (v.fract() == 0.0 && v.abs() < 16_777_216.0).then_some(v as i64))
                .collect::<Option<Vec<i64>>>()
                .ok_or_else(|| source_err(format!("non-integer value for a {} tensor", ty.dtype)))?;
            Tensor::from_i64(ty.dtype, &shape, ints).map_err(|e| source_err(e.to_string()))
        }
        Recipe::Cast { input, dtype } => build(*dtype, owned_floats(eval(input, src)?)?),
        Recipe::Reshape { input, shape } => {
            let t = eval(input, src)?;
            let dtype = t.dtype();
            let a = owned_floats(t)?;
            // A standard-layout array reshapes in place; anything else is copied.
            let a = if a.is_standard_layout() {
                a.into_shape_with_order(IxDyn(shape)).map_err(|e| internal(e.to_string()))?
            } else {
                reshape(a.view(), shape)?
            };
            build(dtype, a)
        }
        Recipe::Transpose { input, perm } => {
            let t = eval(input, src)?;
            let moved = floats(&t)?.view().permuted_axes(IxDyn(perm));
            build(t.dtype(), moved.as_standard_layout().into_owned())
        }
        Recipe::Slice { input, axis: 0, start, end } if rows_of_checkpoint(input).is_some() => {
            // Rows of a checkpoint tensor (through casts): read only those rows.
            let (tensor, ty, casts) = rows_of_checkpoint(input).expect("checked by the guard");
            let (shape, data) = src.read_f32_rows(tensor, *start, *end)?;
            let mut expected = ty.shape.clone();
            if let Some(d0) = expected.first_mut() {
                *d0 = end - start;
            }
            if shape != expected {
                return Err(WeightError::Shape { tensor: tensor.to_string(), expected, got: shape });
            }
            let mut t = Tensor::from_f32(ty.dtype, &shape, data)
                .map_err(|e| WeightError::Source { tensor: tensor.to_string(), message: e.to_string() })?;
            for dtype in casts {
                t = build(dtype, owned_floats(t)?)?;
            }
            Ok(t)
        }
        Recipe::Slice { input, axis, start, end } => {
            let t = eval(input, src)?;
            let cut = floats(&t)?.slice_axis(Axis(*axis), Slice::from(*start..*end)).to_owned();
            build(t.dtype(), cut)
        }
        Recipe::Concat { inputs, axis } => {
            let parts: Vec<Tensor> = inputs.iter().map(|r| eval(r, src)).collect::<Result<_, _>>()?;
            let views: Vec<ArrayViewD<'_, f32>> =
                parts.iter().map(|t| floats(t).map(|a| a.view())).collect::<Result<_, _>>()?;
            let joined = ndarray::concatenate(Axis(*axis), &views).map_err(|e| internal(e.to_string()))?;
            let dtype = parts.first().map_or(DType::F32, Tensor::dtype);
            build(dtype, joined)
        }
        Recipe::Scale { input, factor } => {
            let t = eval(input, src)?;
            let dtype = t.dtype();
            let mut a = owned_floats(t)?;
            a.mapv_inplace(|v| round_f64(dtype, f64::from(v) * factor));
            build(dtype, a)
        }
        Recipe::Offset { input, value } => {
            let t = eval(input, src)?;
            let dtype = t.dtype();
            let mut a = owned_floats(t)?;
            a.mapv_inplace(|v| round_f64(dtype, f64::from(v) + value));
            build(dtype, a)
        }
        Recipe::ScaleAlong { input, scale, axis } => {
            let t = eval(input, src)?;
            let factors = eval(scale, src)?;
            let dtype = t.dtype();
            let mut a = owned_floats(t)?;
            scale_along(&mut a, floats(&factors)?, *axis, dtype)?;
            build(dtype, a)
        }
        Recipe::RopeCos { inv_freq, len, scale, dtype } => rope_table(inv_freq, *len, *scale, Trig::Cos, *dtype),
        Recipe::RopeSin { inv_freq, len, scale, dtype } => rope_table(inv_freq, *len, *scale, Trig::Sin, *dtype),
        Recipe::LutIndices { input, bits, group_size, importance, compensation }
        | Recipe::LutTable { input, bits, group_size, importance, compensation } => {
            let part = if matches!(recipe, Recipe::LutIndices { .. }) { LutPart::Indices } else { LutPart::Table };
            if let Some(c) = compensation {
                let p = crate::quant::compensated::lookup(c, input, *bits, *group_size)
                    .map_err(|e| internal(format!("recipe {}: {e}", recipe.name())))?;
                return crate::quant::palettized_part(&p, part)
                    .map_err(|e| internal(format!("recipe {}: {e}", recipe.name())));
            }
            let t = eval(input, src)?;
            crate::quant::materialize_lut(&t, *bits, *group_size, importance.as_deref(), part)
                .map_err(|e| internal(format!("recipe {}: {e}", recipe.name())))
        }
    }
}
