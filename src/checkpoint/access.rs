//! Looking tensors up and reading their values.

use super::dtype::{decode_into, to_f16_bytes};
use super::open::Entry;
use super::{Checkpoint, CheckpointError, StDType, TensorInfo};

/// A zero-copy view of one tensor's bytes inside the memory map.
///
/// Invariant: `data().len() == numel(shape()) × dtype().size()`; the bytes are little-endian
/// and carry no alignment guarantee.
#[derive(Clone, Copy, Debug)]
pub struct TensorView<'a> {
    dtype: StDType,
    shape: &'a [usize],
    data: &'a [u8],
}

impl<'a> TensorView<'a> {
    /// Storage dtype.
    pub fn dtype(&self) -> StDType {
        self.dtype
    }

    /// Shape (empty for a scalar).
    pub fn shape(&self) -> &'a [usize] {
        self.shape
    }

    /// Raw little-endian element bytes.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.data.len() / self.dtype.size()
    }
}

impl Checkpoint {
    /// All mapped tensor names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.entries.keys().map(String::as_str).collect()
    }

    /// Number of mapped tensors.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no tensor is mapped.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Dtype, shape and file of `name`, or `None` if it is not mapped.
    pub fn info(&self, name: &str) -> Option<&TensorInfo> {
        self.entries.get(name).map(|e| &e.info)
    }

    /// A zero-copy view of `name`'s bytes.
    pub fn view(&self, name: &str) -> Result<TensorView<'_>, CheckpointError> {
        let entry = self.entry(name)?;
        let bytes = self.shards[entry.shard].bytes();
        Ok(TensorView { dtype: entry.info.dtype, shape: &entry.info.shape, data: &bytes[entry.start..entry.end] })
    }

    /// The values of `name` converted (exactly) to f32, in row-major order.
    pub fn to_f32(&self, name: &str) -> Result<Vec<f32>, CheckpointError> {
        let view = self.view(name)?;
        let mut out = vec![0.0; view.numel()];
        decode_into(view.dtype, view.data, &mut out);
        Ok(out)
    }

    /// Like [`Checkpoint::to_f32`] but writes into `out`, whose length must equal the
    /// tensor's element count.
    pub fn f32_into(&self, name: &str, out: &mut [f32]) -> Result<(), CheckpointError> {
        let view = self.view(name)?;
        if out.len() != view.numel() {
            return Err(CheckpointError::LengthMismatch {
                tensor: name.to_string(),
                expected: view.numel(),
                got: out.len(),
            });
        }
        decode_into(view.dtype, view.data, out);
        Ok(())
    }

    /// Rows `start..end` of axis 0 of `name`, converted (exactly) to f32; only those rows'
    /// bytes are read. `None` for a scalar or a range outside the tensor.
    pub fn rows_to_f32(&self, name: &str, start: usize, end: usize) -> Result<Option<Vec<f32>>, CheckpointError> {
        let view = self.view(name)?;
        let Some(&rows) = view.shape.first() else { return Ok(None) };
        if start > end || end > rows {
            return Ok(None);
        }
        let row = view.numel().checked_div(rows).unwrap_or(0);
        let size = view.dtype.size();
        let mut out = vec![0.0; (end - start) * row];
        decode_into(view.dtype, &view.data[start * row * size..end * row * size], &mut out);
        Ok(Some(out))
    }

    /// The values of `name` as fp16 little-endian bytes (each value rounded to nearest even),
    /// converted straight from the mapped bytes; `Err(Ok(i))` names the first non-finite
    /// element.
    pub fn to_f16_bytes(&self, name: &str) -> Result<Result<Vec<u8>, usize>, CheckpointError> {
        let view = self.view(name)?;
        Ok(to_f16_bytes(view.dtype, view.data))
    }

    /// Releases the resident pages of `name`'s bytes (see `Shard::release`); call after a
    /// tensor has been read for the last time.
    pub fn release(&self, name: &str) {
        if let Ok(entry) = self.entry(name) {
            self.shards[entry.shard].release(entry.start, entry.end);
        }
    }

    pub(super) fn entry(&self, name: &str) -> Result<&Entry, CheckpointError> {
        self.entries.get(name).ok_or_else(|| CheckpointError::TensorNotFound { tensor: name.to_string() })
    }
}
