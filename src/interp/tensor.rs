//! Run-time tensors of the reference interpreter.
//!
//! A [`Tensor`] is a dtype plus an n-dimensional array. Float dtypes (`fp32`, `fp16`, `bf16`)
//! store their elements as `f32`; every other dtype (`int32`, `int64`, `bool`, `uint1` …
//! `uint8`) stores them as `i64`.
//!
//! Invariants (upheld by every constructor, so every op may rely on them):
//! - the storage kind matches the dtype: [`Data::Float`] exactly for float dtypes;
//! - every float element is exactly representable in the dtype (fp16/bf16 values were rounded
//!   to nearest, ties to even, with the `half` crate; every fp16/bf16 value is an exact f32);
//! - every integer element lies in the dtype's range: `int32` in `i32`, `bool` in `{0, 1}`,
//!   `uintB` in `0 .. 2^B`.

use half::{bf16, f16};
use ndarray::{ArrayD, IxDyn};

use crate::ir::{DType, TensorType};

/// The element storage of a [`Tensor`].
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    Float(ArrayD<f32>),
    Int(ArrayD<i64>),
}

/// A tensor with a dtype; see the module docs for the invariants.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    dtype: DType,
    data: Data,
}

/// Why a tensor could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TensorError {
    #[error("{dtype}{shape:?} needs {expected} elements, got {got}")]
    Count { dtype: DType, shape: Vec<usize>, expected: usize, got: usize },
    #[error("{dtype} is not a {kind} dtype")]
    Kind { dtype: DType, kind: &'static str },
    #[error("value {value} does not fit {dtype}")]
    Range { dtype: DType, value: i64 },
    #[error("{dtype}{shape:?} is too large to allocate")]
    TooLarge { dtype: DType, shape: Vec<usize> },
}

/// Whether `n` elements of `T` can be allocated, by a probe reservation released at once.
/// Sizes that come from untrusted input (a module's declared states or weights) go through
/// this first, so an impossible size is an error instead of an allocation-failure abort.
/// With memory overcommit a size that passes can still be too large to fill; what is caught
/// for sure are sizes beyond the address space or the allocator's limits.
pub fn can_allocate<T>(n: usize) -> bool {
    Vec::<T>::new().try_reserve_exact(n).is_ok()
}

/// Rounds an f32 to the nearest value of the float `dtype` (ties to even); identity for
/// `fp32` and for non-float dtypes. Overflow gives ±inf, nan stays nan.
pub fn round_f32(dtype: DType, v: f32) -> f32 {
    match dtype {
        DType::F16 => f16::from_f32(v).to_f32(),
        DType::BF16 => bf16::from_f32(v).to_f32(),
        _ => v,
    }
}

/// [`round_f32`] to bf16 by integer arithmetic on the bits (branch-free, so a loop of it
/// vectorises): add half an ulp of bf16 plus the kept lowest bit (ties to even), then drop
/// the low 16 bits; a carry into the exponent rounds up a binade or to ±inf. NaN stays a
/// quiet NaN with the same upper bits, as in `half`.
#[inline]
pub fn round_bf16(v: f32) -> f32 {
    let bits = v.to_bits();
    let rounded = bits.wrapping_add(0x7fff + ((bits >> 16) & 1)) & 0xffff_0000;
    let quiet_nan = (bits | 0x0040_0000) & 0xffff_0000;
    f32::from_bits(if bits & 0x7fff_ffff > 0x7f80_0000 { quiet_nan } else { rounded })
}

/// Elements per parallel work item of [`round_slice`].
const ROUND_CHUNK: usize = 1 << 14;

/// Rounds every element of `values` to the float `dtype` in place, equal to [`round_f32`]
/// element by element: bf16 by [`round_bf16`], fp16 through `half`'s slice conversions (8
/// lanes at a time with F16C where the CPU has it); large slices in parallel chunks.
pub fn round_slice(dtype: DType, values: &mut [f32]) {
    use half::slice::HalfFloatSliceExt;
    use rayon::prelude::*;
    let round_chunk = |chunk: &mut [f32]| match dtype {
        DType::BF16 => chunk.iter_mut().for_each(|v| *v = round_bf16(*v)),
        DType::F16 => {
            let mut halves = [f16::ZERO; 1024];
            for part in chunk.chunks_mut(halves.len()) {
                let h = &mut halves[..part.len()];
                h.convert_from_f32_slice(part);
                h.convert_to_f32_slice(part);
            }
        }
        _ => {}
    };
    if !matches!(dtype, DType::F16 | DType::BF16) {
        return;
    }
    if values.len() <= ROUND_CHUNK {
        round_chunk(values);
    } else {
        values.par_chunks_mut(ROUND_CHUNK).for_each(round_chunk);
    }
}

/// Rounds an f64 once-correctly to the float `dtype`.
///
/// Goes through f32: double rounding f64 → f32 → fp16/bf16 is innocuous because f32 carries
/// 24 ≥ 2·11 + 2 significand bits (the classic double-rounding bound), so the result equals
/// direct rounding. (`half`'s own `from_f64` truncates the low mantissa bits first and can
/// misround near ties, so it is not used.)
pub fn round_f64(dtype: DType, v: f64) -> f32 {
    round_f32(dtype, v as f32)
}

/// Rounds every element of `a` to the float `dtype` in place.
pub fn round_to_dtype(dtype: DType, a: &mut ArrayD<f32>) {
    if matches!(dtype, DType::F16 | DType::BF16) {
        match a.as_slice_memory_order_mut() {
            Some(values) => round_slice(dtype, values),
            None => a.mapv_inplace(|v| round_f32(dtype, v)),
        }
    }
}

/// Wraps an integer to the dtype's width (two's complement): `int32` keeps the low 32 bits;
/// other dtypes are returned unchanged.
pub fn wrap_int(dtype: DType, v: i64) -> i64 {
    if dtype == DType::I32 { v as i32 as i64 } else { v }
}

/// True if `v` lies in the value range of the non-float `dtype`.
pub fn int_fits(dtype: DType, v: i64) -> bool {
    match dtype {
        DType::I32 => i32::try_from(v).is_ok(),
        DType::I64 => true,
        DType::Bool => v == 0 || v == 1,
        other => match other.index_bits() {
            Some(bits) => (0..(1i64 << bits)).contains(&v),
            None => false,
        },
    }
}

fn shape_array<T>(dtype: DType, shape: &[usize], data: Vec<T>) -> Result<ArrayD<T>, TensorError> {
    let expected = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)).unwrap_or(usize::MAX);
    if expected != data.len() {
        return Err(TensorError::Count { dtype, shape: shape.to_vec(), expected, got: data.len() });
    }
    ArrayD::from_shape_vec(IxDyn(shape), data).map_err(|_| TensorError::Count {
        dtype,
        shape: shape.to_vec(),
        expected,
        got: expected,
    })
}

impl Tensor {
    /// A float tensor from row-major values, rounded to `dtype`.
    pub fn from_f32(dtype: DType, shape: &[usize], data: Vec<f32>) -> Result<Tensor, TensorError> {
        Tensor::from_float_array(dtype, shape_array(dtype, shape, data)?)
    }

    /// A non-float tensor (`int32`, `int64`, `bool`, `uintB`) from row-major values, which
    /// must fit the dtype (no wrapping).
    pub fn from_i64(dtype: DType, shape: &[usize], data: Vec<i64>) -> Result<Tensor, TensorError> {
        Tensor::from_int_array(dtype, shape_array(dtype, shape, data)?)
    }

    /// A float tensor from an array, rounded to `dtype`.
    pub fn from_float_array(dtype: DType, mut a: ArrayD<f32>) -> Result<Tensor, TensorError> {
        if !dtype.is_float() {
            return Err(TensorError::Kind { dtype, kind: "float" });
        }
        round_to_dtype(dtype, &mut a);
        Ok(Tensor { dtype, data: Data::Float(a) })
    }

    /// A non-float tensor from an array whose values must fit `dtype`.
    pub fn from_int_array(dtype: DType, a: ArrayD<i64>) -> Result<Tensor, TensorError> {
        if dtype.is_float() {
            return Err(TensorError::Kind { dtype, kind: "non-float" });
        }
        if let Some(&value) = a.iter().find(|&&v| !int_fits(dtype, v)) {
            return Err(TensorError::Range { dtype, value });
        }
        Ok(Tensor { dtype, data: Data::Int(a) })
    }

    /// An integer tensor whose values are wrapped to `dtype` (`int32`/`int64` only; other
    /// dtypes are checked like [`Tensor::from_int_array`]).
    pub fn from_int_array_wrapping(dtype: DType, mut a: ArrayD<i64>) -> Result<Tensor, TensorError> {
        if dtype == DType::I32 {
            a.mapv_inplace(|v| wrap_int(dtype, v));
        }
        Tensor::from_int_array(dtype, a)
    }

    /// Like [`Tensor::zeros`], but a type too large to allocate (see [`can_allocate`]) is an
    /// error instead of an abort.
    pub fn try_zeros(ty: &TensorType) -> Result<Tensor, TensorError> {
        let numel = ty.shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
        // Floats are stored as f32, everything else as i64.
        let fits =
            numel.is_some_and(|n| if ty.dtype.is_float() { can_allocate::<f32>(n) } else { can_allocate::<i64>(n) });
        if !fits {
            return Err(TensorError::TooLarge { dtype: ty.dtype, shape: ty.shape.clone() });
        }
        Ok(Tensor::zeros(ty))
    }

    /// A tensor of zeros (`false` for bool) of the given type.
    pub fn zeros(ty: &TensorType) -> Tensor {
        let dim = IxDyn(&ty.shape);
        let data = if ty.dtype.is_float() { Data::Float(ArrayD::zeros(dim)) } else { Data::Int(ArrayD::zeros(dim)) };
        Tensor { dtype: ty.dtype, data }
    }

    /// An `fp32` tensor (no rounding needed).
    pub fn f32(shape: &[usize], data: Vec<f32>) -> Result<Tensor, TensorError> {
        Tensor::from_f32(DType::F32, shape, data)
    }

    /// An `int32` tensor; values must fit `i32`.
    pub fn i32(shape: &[usize], data: Vec<i64>) -> Result<Tensor, TensorError> {
        Tensor::from_i64(DType::I32, shape, data)
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn shape(&self) -> &[usize] {
        match &self.data {
            Data::Float(a) => a.shape(),
            Data::Int(a) => a.shape(),
        }
    }

    pub fn numel(&self) -> usize {
        self.shape().iter().product()
    }

    /// The static type of this tensor.
    pub fn tensor_type(&self) -> TensorType {
        TensorType::new(self.dtype, self.shape().to_vec())
    }

    pub fn data(&self) -> &Data {
        &self.data
    }

    pub fn into_data(self) -> Data {
        self.data
    }

    /// The float elements, or `None` for a non-float dtype.
    pub fn as_f32(&self) -> Option<&ArrayD<f32>> {
        match &self.data {
            Data::Float(a) => Some(a),
            Data::Int(_) => None,
        }
    }

    /// The integer elements, or `None` for a float dtype.
    pub fn as_i64(&self) -> Option<&ArrayD<i64>> {
        match &self.data {
            Data::Int(a) => Some(a),
            Data::Float(_) => None,
        }
    }

    /// All elements in row-major order as f32 (integers converted with `as`).
    pub fn to_f32_vec(&self) -> Vec<f32> {
        match &self.data {
            Data::Float(a) => a.iter().copied().collect(),
            Data::Int(a) => a.iter().map(|&v| v as f32).collect(),
        }
    }

    /// All elements in row-major order as i64, or `None` for a float dtype.
    pub fn to_i64_vec(&self) -> Option<Vec<i64>> {
        self.as_i64().map(|a| a.iter().copied().collect())
    }

    /// Mutable access to the elements, for in-place updates that only store valid elements
    /// of the same dtype (e.g. `slice_update`).
    pub(crate) fn data_mut(&mut self) -> &mut Data {
        &mut self.data
    }

    /// Builds a tensor from parts without checks. Callers uphold the invariants (used by ops
    /// whose results are copies of valid elements).
    pub(crate) fn from_parts(dtype: DType, data: Data) -> Tensor {
        debug_assert_eq!(dtype.is_float(), matches!(data, Data::Float(_)));
        Tensor { dtype, data }
    }
}

#[cfg(test)]
mod rounding_tests {
    use super::*;

    /// Bit patterns covering every exponent, ties, subnormals, ±0, ±inf and NaNs.
    fn patterns(n: usize) -> Vec<f32> {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut out: Vec<f32> = (0..n)
            .map(|i| {
                state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                let bits = (state >> 32) as u32;
                // Every 4th value an exact tie for bf16 (low 16 bits 0x8000), every 8th for fp16.
                f32::from_bits(match i % 8 {
                    0 => (bits & 0xffff_0000) | 0x8000,
                    4 => (bits & 0xffff_e000) | 0x1000,
                    _ => bits,
                })
            })
            .collect();
        out.extend([0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, -f32::NAN, f32::MAX, f32::MIN, 65520.0]);
        out
    }

    fn same(a: f32, b: f32) -> bool {
        a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
    }

    #[test]
    fn bit_rounding_to_bf16_equals_half() {
        for v in patterns(200_000) {
            let want = bf16::from_f32(v).to_f32();
            assert!(round_bf16(v).to_bits() == want.to_bits(), "{v:e} ({:#010x})", v.to_bits());
        }
    }

    #[test]
    fn slice_rounding_equals_element_rounding() {
        for dtype in [DType::F16, DType::BF16, DType::F32] {
            // Longer than one parallel chunk and not a multiple of the inner buffer.
            let values = patterns(3 * ROUND_CHUNK + 1001);
            let mut rounded = values.clone();
            round_slice(dtype, &mut rounded);
            for (&v, &r) in values.iter().zip(&rounded) {
                assert!(same(r, round_f32(dtype, v)), "{dtype}: {v:e} gave {r:e}");
            }
        }
    }
}
