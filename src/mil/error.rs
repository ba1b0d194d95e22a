//! Errors of package emission and reading. Every variant names what it is about: the
//! function and op, the weight, the file.

use std::path::PathBuf;

use super::blob::BlobError;
use crate::weights::WeightError;

/// Why a package could not be written. Nothing is left at the target path on error.
#[derive(Debug, thiserror::Error)]
pub enum EmitError {
    /// The [`PackageSpec`](super::PackageSpec) does not fit the module.
    #[error("package spec: {0}")]
    Spec(String),
    /// The module does not pass the IR verifier.
    #[error("module does not verify: {0}")]
    Verify(String),
    /// A function signature cannot be expressed in Core ML (I/O dtype, names, states).
    #[error("function @{func}: {message}")]
    Function { func: String, message: String },
    /// An op cannot be lowered to MIL.
    #[error("function @{func}, op #{index} `{op}`{result}: {message}")]
    Op { func: String, index: usize, op: &'static str, result: String, message: String },
    /// A weight could not be materialised or stored.
    #[error("weight @{name}: {message}")]
    Weight { name: String, message: String, source: Option<Box<WeightError>> },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: {source}", path.display())]
    Blob { path: PathBuf, source: BlobError },
}

/// Why a package could not be read back into IR.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// `Manifest.json` is missing, malformed or points nowhere.
    #[error("{}: manifest: {message}", path.display())]
    Manifest { path: PathBuf, message: String },
    /// `model.mlmodel` is not a decodable ML program.
    #[error("{}: {message}", path.display())]
    Model { path: PathBuf, message: String },
    #[error("{}: {source}", path.display())]
    Blob { path: PathBuf, source: BlobError },
    /// An op (or value) has no IR translation, or is malformed.
    #[error("function {func}, op `{op}` ({name}): {message}")]
    Op { func: String, op: String, name: String, message: String },
    /// A function-level problem (inputs, outputs, types).
    #[error("function {func}: {message}")]
    Function { func: String, message: String },
}
