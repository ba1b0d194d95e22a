//! [`TensorSource`] over a memory-mapped safetensors [`Checkpoint`].

use crate::checkpoint::Checkpoint;

use super::{TensorSource, WeightError};

/// [`WeightError::NonFinite`] (first index, NaN and ±Inf counts from there) if `data` holds
/// a non-finite value.
fn reject_non_finite(name: &str, file: &std::path::Path, data: &[f32]) -> Result<(), WeightError> {
    let first = crate::util::first_non_finite(data);
    match first {
        None => Ok(()),
        Some(first) => {
            let nan = data[first..].iter().filter(|v| v.is_nan()).count();
            let inf = data[first..].iter().filter(|v| v.is_infinite()).count();
            Err(WeightError::NonFinite { tensor: name.to_string(), file: file.to_path_buf(), nan, inf, first })
        }
    }
}

/// Reads tensors with `Checkpoint::to_f32` (an exact conversion from F32/F16/BF16).
///
/// This is where checkpoint values are first read (`lower` only reads headers), so it is also
/// where corrupt values are caught: a tensor holding NaN or ±Inf is rejected with
/// [`WeightError::NonFinite`], naming the tensor and its file. (Finite values too large for
/// fp16 are not an error here: whether they matter depends on the precision chosen later.)
impl TensorSource for Checkpoint {
    fn read_f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>), WeightError> {
        let info = self.info(name).ok_or_else(|| WeightError::NotFound { tensor: name.to_string() })?;
        let shape = info.shape.clone();
        let data =
            self.to_f32(name).map_err(|e| WeightError::Source { tensor: name.to_string(), message: e.to_string() })?;
        self.release(name);
        reject_non_finite(name, &info.file, &data)?;
        Ok((shape, data))
    }

    fn read_f32_rows(&self, name: &str, start: usize, end: usize) -> Result<(Vec<usize>, Vec<f32>), WeightError> {
        let info = self.info(name).ok_or_else(|| WeightError::NotFound { tensor: name.to_string() })?;
        let data = self
            .rows_to_f32(name, start, end)
            .inspect(|_| self.release(name))
            .map_err(|e| WeightError::Source { tensor: name.to_string(), message: e.to_string() })?
            .ok_or_else(|| WeightError::Source {
                tensor: name.to_string(),
                message: format!("rows {start}..{end} out of range for shape {:?}", info.shape),
            })?;
        reject_non_finite(name, &info.file, &data)?;
        let mut shape = info.shape.clone();
        shape[0] = end - start;
        Ok((shape, data))
    }

    fn reads_rows_cheaply(&self) -> bool {
        true
    }

    fn read_f16_bytes(&self, name: &str) -> Option<Result<super::source::F16Bytes, WeightError>> {
        let info = self.info(name)?;
        let source = |message: String| WeightError::Source { tensor: name.to_string(), message };
        let converted = self.to_f16_bytes(name);
        self.release(name);
        Some(match converted {
            Err(e) => Err(source(e.to_string())),
            Ok(Ok(bytes)) => Ok((info.shape.clone(), bytes)),
            // A non-finite value: the f32 values give the same error as `read_f32`.
            Ok(Err(first)) => match self.to_f32(name) {
                Ok(data) => Err(reject_non_finite(name, &info.file, &data)
                    .err()
                    .unwrap_or_else(|| source(format!("element {first} is not finite")))),
                Err(e) => Err(source(e.to_string())),
            },
        })
    }
}
