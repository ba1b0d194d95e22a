//! Weights in their stored form: fp16 values or packed LUT indices, left in the bytes of
//! the file that holds them (a memory-mapped `weight.bin`) instead of being decoded into
//! an f32 tensor.
//!
//! A [`TensorSource`](super::TensorSource) that can serve a tensor this way returns a
//! [`StoredTensor`] from `stored`; the interpreter's kernels read its rows directly
//! (`interp::rows`), so a weight costs its stored size in (shared, file-backed) memory and
//! every function that names it reads the same pages.
//!
//! Invariants of a [`StoredTensor`] (checked by [`StoredTensor::new`]): the shape has rank
//! ≥ 1 and a product that fits `usize`, and `raw.bytes()` holds exactly the packed payload
//! of that many elements (2 bytes each for fp16; `ceil(n · bits / 8)` bytes for indices).

use std::sync::Arc;

/// Bytes that stay valid and unchanged for the lifetime of the value (a read-only map).
pub trait RawBytes: Send + Sync {
    fn bytes(&self) -> &[u8];
}

impl RawBytes for Vec<u8> {
    fn bytes(&self) -> &[u8] {
        self
    }
}

/// How the elements are encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoredKind {
    /// IEEE half precision, little-endian.
    F16,
    /// Unsigned integers of `bits` (1 … 8) bits in MIL's little-endian bit stream: element
    /// `i` occupies bits `[i·bits, i·bits + bits)`, bit 0 the lowest bit of byte 0.
    Index { bits: u32 },
}

/// A tensor kept in its stored encoding; see the module docs.
#[derive(Clone)]
pub struct StoredTensor {
    shape: Vec<usize>,
    kind: StoredKind,
    raw: Arc<dyn RawBytes>,
}

impl StoredTensor {
    /// Checks the payload length against the shape and kind (see the module docs).
    pub fn new(shape: Vec<usize>, kind: StoredKind, raw: Arc<dyn RawBytes>) -> Result<StoredTensor, String> {
        let n = shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .filter(|_| !shape.is_empty())
            .ok_or_else(|| format!("shape {shape:?} is empty or too large"))?;
        let want = match kind {
            StoredKind::F16 => n.checked_mul(2),
            StoredKind::Index { bits } if (1..=8).contains(&bits) => {
                n.checked_mul(bits as usize).map(|b| b.div_ceil(8))
            }
            StoredKind::Index { bits } => return Err(format!("{bits}-bit indices are not supported")),
        }
        .ok_or_else(|| format!("shape {shape:?} is too large"))?;
        let got = raw.bytes().len();
        if got != want {
            return Err(format!("{n} elements of {kind:?} need {want} bytes, the payload has {got}"));
        }
        Ok(StoredTensor { shape, kind, raw })
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn kind(&self) -> StoredKind {
        self.kind
    }

    /// The payload (length as checked by [`StoredTensor::new`]).
    pub fn bytes(&self) -> &[u8] {
        self.raw.bytes()
    }
}

impl std::fmt::Debug for StoredTensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredTensor").field("shape", &self.shape).field("kind", &self.kind).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_length_is_checked() {
        let ok = StoredTensor::new(vec![2, 3], StoredKind::Index { bits: 6 }, Arc::new(vec![0u8; 5]));
        assert_eq!(ok.map(|t| t.bytes().len()), Ok(5));
        let short = StoredTensor::new(vec![2, 3], StoredKind::F16, Arc::new(vec![0u8; 11]));
        assert!(short.unwrap_err().contains("need 12 bytes"));
        let huge = StoredTensor::new(vec![usize::MAX, 2], StoredKind::F16, Arc::new(Vec::new()));
        assert!(huge.unwrap_err().contains("too large"));
        assert!(StoredTensor::new(vec![], StoredKind::F16, Arc::new(Vec::new())).is_err());
    }
}
