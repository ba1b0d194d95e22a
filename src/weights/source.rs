//! Where checkpoint tensors come from: the [`TensorSource`] trait, and an in-memory source
//! for tests.

use std::collections::HashMap;

use super::{StoredTensor, WeightError};

/// A tensor as fp16 little-endian bytes with its shape.
pub type F16Bytes = (Vec<usize>, Vec<u8>);

/// A provider of named checkpoint tensors, converted to f32.
///
/// Contract: on success the returned data has exactly `shape.iter().product()` elements in
/// row-major order; a missing name gives [`WeightError::NotFound`].
pub trait TensorSource {
    fn read_f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>), WeightError>;

    /// Rows `start..end` of axis 0 (shape with `end − start` rows). The default reads the
    /// whole tensor and copies the rows; sources that can read rows alone (a memory-mapped
    /// checkpoint) override it, which keeps slices of large tensors (LM-head pieces of a
    /// tied embedding) from decoding the whole tensor each time.
    fn read_f32_rows(&self, name: &str, start: usize, end: usize) -> Result<(Vec<usize>, Vec<f32>), WeightError> {
        let (mut shape, data) = self.read_f32(name)?;
        let rows = shape.first().copied().unwrap_or(0);
        if start > end || end > rows {
            return Err(WeightError::Source {
                tensor: name.to_string(),
                message: format!("rows {start}..{end} out of range for shape {shape:?}"),
            });
        }
        let row = data.len().checked_div(rows).unwrap_or(0);
        shape[0] = end - start;
        Ok((shape, data[start * row..end * row].to_vec()))
    }

    /// The tensor converted to fp16 little-endian bytes (round to nearest even), with its
    /// shape — the payload of `cast(checkpoint(…), fp16)` — when the source can produce it
    /// without an f32 copy; `None` otherwise (the default). Non-finite values are an error.
    fn read_f16_bytes(&self, _name: &str) -> Option<Result<F16Bytes, WeightError>> {
        None
    }

    /// True when [`TensorSource::read_f32_rows`] reads only the rows asked for (so a large
    /// tensor can be streamed in row blocks); the default reads the whole tensor each time.
    fn reads_rows_cheaply(&self) -> bool {
        false
    }

    /// The tensor in its stored encoding (fp16 values or packed indices, see
    /// [`StoredTensor`]) when the source can serve it without decoding — a package's
    /// memory-mapped `weight.bin`; `None` otherwise (the default). The interpreter then
    /// reads rows straight from those bytes instead of an f32 copy.
    fn stored(&self, _name: &str) -> Option<Result<StoredTensor, WeightError>> {
        None
    }
}

/// In-memory source: name → (shape, row-major values). The element count is checked on read.
impl TensorSource for HashMap<String, (Vec<usize>, Vec<f32>)> {
    fn read_f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>), WeightError> {
        let (shape, data) = self.get(name).ok_or_else(|| WeightError::NotFound { tensor: name.to_string() })?;
        let numel = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
        if numel != Some(data.len()) {
            return Err(WeightError::Source {
                tensor: name.to_string(),
                message: format!("shape {shape:?} does not match {} values", data.len()),
            });
        }
        Ok((shape.clone(), data.clone()))
    }
}
