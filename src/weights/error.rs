//! The error type of weight materialisation. Every variant names the module weight or the
//! checkpoint tensor involved.

use std::path::PathBuf;

use crate::ir::TensorType;

/// Why a weight could not be produced.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WeightError {
    /// The tensor source has no tensor of this name.
    #[error("checkpoint tensor {tensor:?} not found")]
    NotFound { tensor: String },

    /// The tensor source failed to read the tensor (I/O, corrupt data, …).
    #[error("checkpoint tensor {tensor:?}: {message}")]
    Source { tensor: String, message: String },

    /// The checkpoint tensor holds NaN or ±Inf values (a corrupt or diverged checkpoint).
    #[error(
        "{file}: tensor {tensor:?} holds non-finite values: {nan} NaN and {inf} Inf (first at \
         flat index {first})"
    )]
    NonFinite { tensor: String, file: PathBuf, nan: usize, inf: usize, first: usize },

    /// The checkpoint tensor's shape differs from the shape the recipe declares.
    #[error("checkpoint tensor {tensor:?} has shape {got:?}, the recipe declares {expected:?}")]
    Shape { tensor: String, expected: Vec<usize>, got: Vec<usize> },

    /// The recipe breaks its typing rule (see `Recipe::infer_type`).
    #[error("invalid recipe: {message}")]
    Recipe { message: String },

    /// The recipe asks for something materialisation does not support.
    #[error("unsupported recipe: {message}")]
    Unsupported { message: String },

    /// The module declares no weight of this name.
    #[error("the module declares no weight @{name}")]
    UnknownWeight { name: String },

    /// The recipe produced a tensor whose type differs from the weight's declared type.
    #[error("weight @{name} is declared {declared} but its recipe produces {got}")]
    Type { name: String, declared: TensorType, got: TensorType },
}
