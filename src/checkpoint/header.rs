//! Parsing one safetensors header: our diagnostics first, then the safetensors crate.
//!
//! The crate's `SafeTensors::read_metadata` is the authority on what is a valid file; our
//! [`super::diagnose`] pass runs first only to turn the common failures into errors that
//! name the tensor. If the crate still rejects a file that passed our checks, its error is
//! returned as [`CheckpointError::Format`] with the file name attached.

use std::path::Path;

use safetensors::SafeTensors;

use super::CheckpointError;
use super::diagnose::{self, PREFIX_LEN};

/// One tensor as declared in a validated header.
///
/// Invariant: `start..end` is an in-bounds byte range of the whole file (prefix and header
/// included) whose length is exactly `numel(shape) × dtype size`.
#[derive(Debug)]
pub(crate) struct HeaderTensor {
    pub name: String,
    pub dtype: safetensors::Dtype,
    pub shape: Vec<usize>,
    pub start: usize,
    pub end: usize,
}

/// Validates the header of the whole mapped file `bytes` and lists its tensors.
pub(crate) fn parse(file: &Path, bytes: &[u8]) -> Result<Vec<HeaderTensor>, CheckpointError> {
    diagnose::check(file, bytes)?;
    let (n, metadata) = SafeTensors::read_metadata(bytes)
        .map_err(|source| CheckpointError::Format { file: file.to_path_buf(), source })?;
    let data_start = PREFIX_LEN + n;
    let tensors = metadata
        .tensors()
        .into_iter()
        .map(|(name, info)| {
            let (start, end) = info.data_offsets;
            HeaderTensor {
                name,
                dtype: info.dtype,
                shape: info.shape.clone(),
                start: data_start + start,
                end: data_start + end,
            }
        })
        .collect();
    Ok(tensors)
}
