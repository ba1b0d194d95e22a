//! Looking tensors up and reading their values.

use super::dtype::{decode_into, to_f16_bytes};
use super::open::{Entry, Place};
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

    /// A zero-copy view of `name`'s bytes: every safetensors tensor, and GGUF tensors stored
    /// as plain F32/F16/BF16 whose values transformers uses unchanged. Other GGUF tensors
    /// (block-quantized, or re-ordered/offset on load) give [`CheckpointError::Encoded`].
    pub fn view(&self, name: &str) -> Result<TensorView<'_>, CheckpointError> {
        let entry = self.entry(name)?;
        match &entry.place {
            Place::Shard { shard, start, end } => {
                let bytes = self.shards[*shard].bytes();
                Ok(TensorView { dtype: entry.info.dtype, shape: &entry.info.shape, data: &bytes[*start..*end] })
            }
            Place::Gguf { tensor, rows } => {
                let file = self.gguf.as_ref().expect("GGUF entries come with their file");
                let t = &file.tensors()[*tensor];
                let plain = match t.ty {
                    crate::gguf::GgmlType::F32 => Some(StDType::F32),
                    crate::gguf::GgmlType::F16 => Some(StDType::F16),
                    crate::gguf::GgmlType::BF16 => Some(StDType::BF16),
                    _ => None,
                };
                match plain {
                    Some(dtype) if *rows == super::gguf::RowMap::IDENTITY && dtype == entry.info.dtype => {
                        Ok(TensorView { dtype, shape: &entry.info.shape, data: file.data(t) })
                    }
                    _ => Err(CheckpointError::Encoded {
                        file: entry.info.file.clone(),
                        tensor: name.to_string(),
                        encoding: format!(
                            "GGUF {}{}",
                            t.ty,
                            if *rows == super::gguf::RowMap::IDENTITY { "" } else { " (transformed on load)" }
                        ),
                        dtype: entry.info.dtype.to_string(),
                    }),
                }
            }
        }
    }

    /// Decodes rows `start..end` of axis 0 of an entry into `out` (exact for safetensors; the
    /// transformers-equivalent f32 values for GGUF). Precondition: the range is in bounds
    /// and `out` has exactly the elements of those rows.
    fn decode_entry_rows(
        &self,
        name: &str,
        entry: &Entry,
        start: usize,
        end: usize,
        out: &mut [f32],
    ) -> Result<(), CheckpointError> {
        match &entry.place {
            Place::Gguf { tensor, rows } => {
                let file = self.gguf.as_ref().expect("GGUF entries come with their file");
                super::gguf::decode_rows(file, &file.tensors()[*tensor], rows, start, end, out);
                Ok(())
            }
            Place::Shard { .. } => {
                let view = self.view(name)?;
                let size = view.dtype.size();
                let row = match view.shape.first() {
                    Some(&r) if r > 0 => view.numel() / r,
                    _ => view.numel(),
                };
                let (lo, hi) =
                    if view.shape.is_empty() { (0, view.data.len()) } else { (start * row * size, end * row * size) };
                decode_into(view.dtype, &view.data[lo..hi], out);
                Ok(())
            }
        }
    }

    /// The values of `name` converted (exactly) to f32, in row-major order.
    pub fn to_f32(&self, name: &str) -> Result<Vec<f32>, CheckpointError> {
        let entry = self.entry(name)?;
        let mut out = vec![0.0; entry.info.numel()];
        let rows = entry.info.shape.first().copied().unwrap_or(1);
        self.decode_entry_rows(name, entry, 0, rows, &mut out)?;
        Ok(out)
    }

    /// Like [`Checkpoint::to_f32`] but writes into `out`, whose length must equal the
    /// tensor's element count.
    pub fn f32_into(&self, name: &str, out: &mut [f32]) -> Result<(), CheckpointError> {
        let entry = self.entry(name)?;
        if out.len() != entry.info.numel() {
            return Err(CheckpointError::LengthMismatch {
                tensor: name.to_string(),
                expected: entry.info.numel(),
                got: out.len(),
            });
        }
        let rows = entry.info.shape.first().copied().unwrap_or(1);
        self.decode_entry_rows(name, entry, 0, rows, out)
    }

    /// Rows `start..end` of axis 0 of `name`, converted (exactly) to f32; only those rows'
    /// bytes are read. `None` for a scalar or a range outside the tensor.
    pub fn rows_to_f32(&self, name: &str, start: usize, end: usize) -> Result<Option<Vec<f32>>, CheckpointError> {
        let entry = self.entry(name)?;
        let Some(&rows) = entry.info.shape.first() else { return Ok(None) };
        if start > end || end > rows {
            return Ok(None);
        }
        let row = entry.info.numel().checked_div(rows).unwrap_or(0);
        let mut out = vec![0.0; (end - start) * row];
        self.decode_entry_rows(name, entry, start, end, &mut out)?;
        Ok(Some(out))
    }

    /// The values of `name` as fp16 little-endian bytes (each value rounded to nearest even),
    /// converted straight from the mapped bytes; `Err(Ok(i))` names the first non-finite
    /// element.
    pub fn to_f16_bytes(&self, name: &str) -> Result<Result<Vec<u8>, usize>, CheckpointError> {
        match self.view(name) {
            Ok(view) => Ok(to_f16_bytes(view.dtype, view.data)),
            Err(CheckpointError::Encoded { .. }) => {
                // Decoded a block of rows at a time (never the whole tensor in f32), each
                // value rounded as stored F32 ones are (nearest even).
                let entry = self.entry(name)?;
                let rows = entry.info.shape.first().copied().unwrap_or(1).max(1);
                let row = entry.info.numel() / rows;
                let step = ((1usize << 20) / row.max(1)).clamp(1, rows);
                let mut out = vec![0u8; entry.info.numel() * 2];
                let mut buf = vec![0f32; step * row];
                for start in (0..rows).step_by(step) {
                    let end = (start + step).min(rows);
                    let values = &mut buf[..(end - start) * row];
                    self.decode_entry_rows(name, entry, start, end, values)?;
                    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                        return Ok(Err(start * row + i));
                    }
                    for (dst, v) in out[start * row * 2..end * row * 2].chunks_exact_mut(2).zip(values.iter()) {
                        dst.copy_from_slice(&half::f16::from_f32(*v).to_le_bytes());
                    }
                }
                Ok(Ok(out))
            }
            Err(e) => Err(e),
        }
    }

    /// Releases the resident pages of `name`'s bytes (see `Shard::release`); call after a
    /// tensor has been read for the last time.
    pub fn release(&self, name: &str) {
        match self.entry(name).map(|e| &e.place) {
            Ok(Place::Shard { shard, start, end }) => self.shards[*shard].release(*start, *end),
            Ok(Place::Gguf { tensor, .. }) => {
                if let Some(file) = &self.gguf {
                    file.release(&file.tensors()[*tensor]);
                }
            }
            Err(_) => {}
        }
    }

    pub(super) fn entry(&self, name: &str) -> Result<&Entry, CheckpointError> {
        self.entries.get(name).ok_or_else(|| CheckpointError::TensorNotFound { tensor: name.to_string() })
    }
}
