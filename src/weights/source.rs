//! Where checkpoint tensors come from: the [`TensorSource`] trait, and an in-memory source
//! for tests.

use std::collections::HashMap;

use super::WeightError;

/// A provider of named checkpoint tensors, converted to f32.
///
/// Contract: on success the returned data has exactly `shape.iter().product()` elements in
/// row-major order; a missing name gives [`WeightError::NotFound`].
pub trait TensorSource {
    fn read_f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>), WeightError>;
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
