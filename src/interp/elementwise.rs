//! Elementwise ops: the broadcasting binaries (`add` … `minimum`) and the unaries (`neg`,
//! `sqrt`, `rsqrt`, `exp`, `sigmoid`, `silu`, `gelu`).
//!
//! Floats: `+ − · /` are computed in f32 and rounded to the dtype; that is the correctly
//! rounded result for fp16/bf16 too (f32 has ≥ 2p + 2 bits, so double rounding is
//! innocuous). Transcendentals are computed in f64 and rounded once. nan propagates through
//! `maximum`/`minimum`. Integers: `int32`/`int64` arithmetic wraps, division truncates toward
//! zero, and an integer divisor of 0 is a run-time error.

use ndarray::{ArrayD, ArrayViewMutD, IxDyn, Zip};

use crate::ir::typing::broadcast_shapes;
use crate::ir::{GeluMode, Op};

use super::erf::std_normal_cdf;
use super::kernel::{OpResult, Pair, float_result, floats, int_result, pair};
use super::tensor::{Data, Tensor, round_f64, round_slice};

fn zip_broadcast<T: Copy, U>(
    a: &ArrayD<T>,
    b: &ArrayD<T>,
    shape: &[usize],
    f: impl FnMut(T, T) -> U,
) -> OpResult<ArrayD<U>> {
    let mut f = f;
    let (Some(av), Some(bv)) = (a.broadcast(IxDyn(shape)), b.broadcast(IxDyn(shape))) else {
        return Err(format!("{:?} and {:?} do not broadcast", a.shape(), b.shape()));
    };
    Ok(Zip::from(&av).and(&bv).map_collect(|&x, &y| f(x, y)))
}

fn nan_max(x: f32, y: f32) -> f32 {
    if x.is_nan() || y.is_nan() { f32::NAN } else { x.max(y) }
}

fn nan_min(x: f32, y: f32) -> f32 {
    if x.is_nan() || y.is_nan() { f32::NAN } else { x.min(y) }
}

/// `add`, `sub`, `mul`, `div`, `pow`, `maximum`, `minimum` with numpy broadcasting.
pub fn binary(op: &Op, a: &Tensor, b: &Tensor) -> OpResult {
    let shape = broadcast_shapes(a.shape(), b.shape())
        .ok_or_else(|| format!("{} and {} do not broadcast", a.tensor_type(), b.tensor_type()))?;
    let dtype = a.dtype();
    match pair(a, b)? {
        Pair::Float(x, y) => {
            let out = match op {
                Op::Add => zip_broadcast(x, y, &shape, |p, q| p + q)?,
                Op::Sub => zip_broadcast(x, y, &shape, |p, q| p - q)?,
                Op::Mul => zip_broadcast(x, y, &shape, |p, q| p * q)?,
                Op::Div => zip_broadcast(x, y, &shape, |p, q| p / q)?,
                Op::Pow => zip_broadcast(x, y, &shape, |p, q| f64::from(p).powf(f64::from(q)) as f32)?,
                Op::Maximum => zip_broadcast(x, y, &shape, nan_max)?,
                Op::Minimum => zip_broadcast(x, y, &shape, nan_min)?,
                other => return Err(format!("`{}` is not a binary elementwise op", other.name())),
            };
            float_result(dtype, out)
        }
        Pair::Int(x, y) => {
            let mut div_by_zero = false;
            let out = match op {
                Op::Add => zip_broadcast(x, y, &shape, i64::wrapping_add)?,
                Op::Sub => zip_broadcast(x, y, &shape, i64::wrapping_sub)?,
                Op::Mul => zip_broadcast(x, y, &shape, i64::wrapping_mul)?,
                Op::Div => zip_broadcast(x, y, &shape, |p, q| {
                    if q == 0 {
                        div_by_zero = true;
                        0
                    } else {
                        p.wrapping_div(q)
                    }
                })?,
                Op::Maximum => zip_broadcast(x, y, &shape, i64::max)?,
                Op::Minimum => zip_broadcast(x, y, &shape, i64::min)?,
                other => return Err(format!("`{}` does not accept {dtype}", other.name())),
            };
            if div_by_zero {
                return Err("integer division by zero".into());
            }
            int_result(dtype, out)
        }
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// GELU in f64. Exact mode uses [`std_normal_cdf`] (see `erf.rs` for its accuracy).
pub fn gelu(mode: GeluMode, x: f64) -> f64 {
    match mode {
        GeluMode::Exact => x * std_normal_cdf(x),
        GeluMode::Tanh => {
            let k = (2.0 / std::f64::consts::PI).sqrt();
            0.5 * x * (1.0 + (k * (x + 0.044715 * x * x * x)).tanh())
        }
    }
}

/// `neg`, `sqrt`, `rsqrt`, `exp`, `sigmoid`, `silu`, `gelu`. Infinite inputs follow the IEEE
/// evaluation of the formulas as written (so `silu(−inf)` and `gelu(−inf)` are nan, like
/// PyTorch's `x · σ(x)` evaluation).
pub fn unary(op: &Op, x: &Tensor) -> OpResult {
    let dtype = x.dtype();
    if let (Op::Neg, Data::Int(a)) = (op, x.data()) {
        return int_result(dtype, a.mapv(i64::wrapping_neg));
    }
    let a = floats(x)?;
    if let Op::Neg = op {
        // Exact: flips the sign bit (also of nan and zero).
        return float_result(dtype, a.mapv(|v| -v));
    }
    let Some(f) = unary_formula(op) else {
        return Err(format!("`{}` is not a unary elementwise op", op.name()));
    };
    float_result(dtype, a.mapv(|v| round_f64(dtype, f(f64::from(v)))))
}

/// The f64 formula of a rounding unary op (every unary op but `neg`, which is exact).
fn unary_formula(op: &Op) -> Option<fn(f64) -> f64> {
    Some(match op {
        Op::Sqrt => f64::sqrt,
        Op::Rsqrt => |v| 1.0 / v.sqrt(),
        Op::Exp => f64::exp,
        Op::Sigmoid => sigmoid,
        Op::Silu => |v| v * sigmoid(v),
        Op::Gelu { mode: GeluMode::Exact } => |v| gelu(GeluMode::Exact, v),
        Op::Gelu { mode: GeluMode::Tanh } => |v| gelu(GeluMode::Tanh, v),
        _ => return None,
    })
}

/// `out = f(a, b)` elementwise over `shape` (`out` row-major of that shape).
fn zip_into(out: &mut [f32], a: &ArrayD<f32>, b: &ArrayD<f32>, shape: &[usize], f: impl Fn(f32, f32) -> f32) -> bool {
    let (Some(av), Some(bv)) = (a.broadcast(IxDyn(shape)), b.broadcast(IxDyn(shape))) else { return false };
    let Ok(o) = ArrayViewMutD::from_shape(IxDyn(shape), out) else { return false };
    Zip::from(o).and(&av).and(&bv).for_each(|o, &x, &y| *o = f(x, y));
    true
}

/// [`binary`] on float operands, writing into the buffer `alloc(n)` returns (`n` elements,
/// any contents; all are written). The same values as [`binary`]: each element is the same
/// f32 operation, then rounded to the dtype. Operands that are not both in standard layout
/// (or not float) go through [`binary`], so the result's memory layout is also the same
/// (standard) as `binary` gives for standard operands.
pub fn binary_into(op: &Op, a: &Tensor, b: &Tensor, alloc: impl FnOnce(usize) -> Vec<f32>) -> OpResult {
    let (Data::Float(x), Data::Float(y)) = (a.data(), b.data()) else { return binary(op, a, b) };
    if !x.is_standard_layout() || !y.is_standard_layout() {
        return binary(op, a, b);
    }
    let Some(shape) = broadcast_shapes(a.shape(), b.shape()) else { return binary(op, a, b) };
    let mut out = alloc(shape.iter().product());
    let done = match op {
        Op::Add => zip_into(&mut out, x, y, &shape, |p, q| p + q),
        Op::Sub => zip_into(&mut out, x, y, &shape, |p, q| p - q),
        Op::Mul => zip_into(&mut out, x, y, &shape, |p, q| p * q),
        Op::Div => zip_into(&mut out, x, y, &shape, |p, q| p / q),
        Op::Pow => zip_into(&mut out, x, y, &shape, |p, q| f64::from(p).powf(f64::from(q)) as f32),
        Op::Maximum => zip_into(&mut out, x, y, &shape, nan_max),
        Op::Minimum => zip_into(&mut out, x, y, &shape, nan_min),
        _ => false,
    };
    if !done {
        return binary(op, a, b);
    }
    let dtype = a.dtype();
    round_slice(dtype, &mut out);
    let out = ArrayD::from_shape_vec(IxDyn(&shape), out).map_err(|e| e.to_string())?;
    Ok(Tensor::from_parts(dtype, Data::Float(out)))
}

/// [`unary`] on a float operand in standard layout, writing into the buffer `alloc(n)`
/// returns (all `n` elements are written); the same values as [`unary`] (the same
/// per-element formula and rounding). Anything else goes through [`unary`].
pub fn unary_into(op: &Op, x: &Tensor, alloc: impl FnOnce(usize) -> Vec<f32>) -> OpResult {
    let dtype = x.dtype();
    let Some(src) = x.as_f32().filter(|a| a.is_standard_layout()).and_then(|a| a.as_slice()) else {
        return unary(op, x);
    };
    let formula = unary_formula(op);
    if formula.is_none() && !matches!(op, Op::Neg) {
        return unary(op, x);
    }
    let mut out = alloc(src.len());
    match formula {
        Some(f) => out.iter_mut().zip(src).for_each(|(o, &v)| *o = round_f64(dtype, f(f64::from(v)))),
        // `neg`, exact: flips the sign bit (also of nan and zero).
        None => out.iter_mut().zip(src).for_each(|(o, &v)| *o = -v),
    }
    round_slice(dtype, &mut out);
    let out = ArrayD::from_shape_vec(IxDyn(x.shape()), out).map_err(|e| e.to_string())?;
    Ok(Tensor::from_parts(dtype, Data::Float(out)))
}
