//! [`PackedWeight`]: a weight operand that stays in its stored encoding while a function
//! runs — fp16 bytes or packed LUT indices of a memory-mapped `weight.bin` (see
//! [`StoredTensor`]) — and the ops that consume it without a dense f32 copy:
//! `lut_to_dense` (indices + table → a packed LUT weight), pointwise `conv` (rows decoded a
//! tile at a time) and `gather` on axis 0 (only the rows asked for). Any other op gets the
//! dense tensor ([`PackedWeight::dense`]), with the same values.
//!
//! Invariant: the value a packed weight stands for is exactly the tensor the ordinary path
//! would produce (the weight's materialisation, or `lut_to_dense` of it), so results do not
//! depend on which path ran.

use std::sync::Arc;

use ndarray::{ArrayD, IxDyn};

use crate::ir::typing::norm_axis;
use crate::ir::{DType, TensorType};
use crate::weights::{StoredKind, StoredTensor};

use super::kernel::{OpResult, floats, ints};
use super::rows::MatrixRows;
use super::tensor::{Data, Tensor};

/// fp16 weights with fewer elements are materialised as ordinary tensors (norm gains,
/// biases, small tables): decoding them is cheap and they are used by elementwise ops.
/// Index weights are always kept packed (their only consumer is `lut_to_dense`).
pub const MIN_PACKED_ELEMENTS: usize = 1 << 14;

/// See the module docs.
#[derive(Debug)]
pub enum PackedWeight {
    /// fp16 values.
    F16(Arc<StoredTensor>),
    /// Raw index values of `dtype` (`uint1` … `uint8`), the input of `lut_to_dense`.
    Indices(Arc<StoredTensor>, DType),
    /// `lut_to_dense(indices, table)`: `table` holds `groups × 2^bits` values of `dtype`.
    Lut { indices: Arc<StoredTensor>, bits: u32, table: Vec<f32>, dtype: DType },
}

impl PackedWeight {
    /// A packed operand for a stored weight of declared type `ty`, or `None` when it is a
    /// small fp16 weight or its encoding does not match `ty`.
    pub fn from_stored(stored: Arc<StoredTensor>, ty: &TensorType) -> Option<PackedWeight> {
        if stored.shape() != ty.shape.as_slice() {
            return None;
        }
        match stored.kind() {
            StoredKind::F16 if ty.dtype == DType::F16 && ty.numel() >= MIN_PACKED_ELEMENTS => {
                Some(PackedWeight::F16(stored))
            }
            StoredKind::Index { bits } if ty.dtype.index_bits() == Some(bits) => {
                Some(PackedWeight::Indices(stored, ty.dtype))
            }
            _ => None,
        }
    }

    pub fn tensor_type(&self) -> TensorType {
        match self {
            PackedWeight::F16(s) => TensorType::new(DType::F16, s.shape().to_vec()),
            PackedWeight::Indices(s, dtype) => TensorType::new(*dtype, s.shape().to_vec()),
            PackedWeight::Lut { indices, dtype, .. } => TensorType::new(*dtype, indices.shape().to_vec()),
        }
    }

    /// `lut_to_dense(self, table)` kept packed; checks exactly what `lut_to_dense` checks.
    pub fn lut(&self, table: &Tensor) -> OpResult<PackedWeight> {
        let PackedWeight::Indices(indices, dtype) = self else {
            return Err("lut_to_dense: the indices are not an index weight".into());
        };
        let bits = dtype.index_bits().ok_or_else(|| format!("{dtype} is not an index type"))?;
        let values = floats(table)?;
        let d0 = indices.shape()[0];
        match values.shape() {
            &[g, e] if e == 1usize << bits && g > 0 && d0 % g == 0 => {}
            _ => return Err(format!("lut {} does not fit indices {dtype}{:?}", table.tensor_type(), indices.shape())),
        }
        let dtype = table.dtype();
        Ok(PackedWeight::Lut { indices: indices.clone(), bits, table: values.iter().copied().collect(), dtype })
    }

    /// The weight as a matrix of `shape[0]` rows (F16 and LUT weights).
    pub fn rows(&self) -> OpResult<MatrixRows<'_>> {
        let matrix = |shape: &[usize]| (shape[0], shape[1..].iter().product::<usize>());
        match self {
            PackedWeight::F16(s) => {
                let (n, k) = matrix(s.shape());
                MatrixRows::f16(s.bytes(), n, k)
            }
            PackedWeight::Lut { indices, bits, table, .. } => {
                let (n, k) = matrix(indices.shape());
                MatrixRows::lut(indices.bytes(), *bits, table, n, k)
            }
            PackedWeight::Indices(..) => Err("raw indices are not a matrix of values".into()),
        }
    }

    /// The dense tensor this weight stands for.
    pub fn dense(&self) -> OpResult<Tensor> {
        let ty = self.tensor_type();
        if let PackedWeight::Indices(s, dtype) = self {
            let bits = dtype.index_bits().ok_or("not an index type")?;
            let n = ty.numel();
            let values = crate::mil::blob::pack::unpack_bits(s.bytes(), bits, n).ok_or("index payload too short")?;
            let a = ArrayD::from_shape_vec(IxDyn(&ty.shape), values.into_iter().map(i64::from).collect())
                .map_err(|e| e.to_string())?;
            return Tensor::from_int_array(*dtype, a).map_err(|e| e.to_string());
        }
        let m = self.rows()?;
        let (n, k) = (m.rows(), m.cols());
        let mut values = vec![0.0f32; n * k];
        for (r, row) in values.chunks_exact_mut(k.max(1)).enumerate().take(n) {
            m.fill(r, row);
        }
        let a = ArrayD::from_shape_vec(IxDyn(&ty.shape), values).map_err(|e| e.to_string())?;
        Ok(Tensor::from_parts(ty.dtype, Data::Float(a)))
    }

    /// `gather(self, indices){axis}`: rows of axis 0 only; `None` for another axis (the
    /// caller gathers from the dense tensor then).
    pub fn gather(&self, indices: &Tensor, axis: i64) -> Option<OpResult> {
        let ty = self.tensor_type();
        if norm_axis(axis, ty.shape.len()) != Some(0) || matches!(self, PackedWeight::Indices(..)) {
            return None;
        }
        Some(self.gather_rows(indices, &ty))
    }

    fn gather_rows(&self, indices: &Tensor, ty: &TensorType) -> OpResult {
        let m = self.rows()?;
        let (n, k) = (m.rows(), m.cols());
        let idx = ints(indices)?;
        let mut values = vec![0.0f32; idx.len() * k];
        for (&i, row) in idx.iter().zip(values.chunks_exact_mut(k.max(1))) {
            match usize::try_from(i) {
                Ok(r) if r < n => m.fill(r, row),
                _ => return Err(format!("index {i} out of range [0, {n}) on axis 0 of {ty}")),
            }
        }
        let shape: Vec<usize> = idx.shape().iter().chain(&ty.shape[1..]).copied().collect();
        let a = ArrayD::from_shape_vec(IxDyn(&shape), values).map_err(|e| e.to_string())?;
        Ok(Tensor::from_parts(ty.dtype, Data::Float(a)))
    }
}
