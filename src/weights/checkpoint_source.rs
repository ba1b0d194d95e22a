//! [`TensorSource`] over a memory-mapped safetensors [`Checkpoint`].

use crate::checkpoint::Checkpoint;

use super::{TensorSource, WeightError};

/// Reads tensors with `Checkpoint::to_f32` (an exact conversion from F32/F16/BF16).
impl TensorSource for Checkpoint {
    fn read_f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>), WeightError> {
        let info = self.info(name).ok_or_else(|| WeightError::NotFound { tensor: name.to_string() })?;
        let shape = info.shape.clone();
        let data =
            self.to_f32(name).map_err(|e| WeightError::Source { tensor: name.to_string(), message: e.to_string() })?;
        Ok((shape, data))
    }
}
