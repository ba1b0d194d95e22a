//! The error type of the checkpoint reader.
//!
//! Every variant that concerns a file carries its path in `file` (or `index`), and every
//! variant that concerns one tensor carries its name in `tensor`, so the one-line `Display`
//! message always says where the problem is. Tensor names are printed with `{:?}` so that
//! hostile names (control characters, quotes) are escaped.

use std::path::PathBuf;

use safetensors::SafeTensorError;

/// Why a checkpoint could not be opened or a tensor could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The directory holds neither `model.safetensors` nor `model.safetensors.index.json`.
    #[error(
        "{dir}: no checkpoint found: expected {single} or {index}",
        single = super::SINGLE_FILE,
        index = super::INDEX_FILE
    )]
    NoCheckpoint { dir: PathBuf },

    /// `model.safetensors.index.json` names a shard file that does not exist.
    #[error("{index}: names shard {shard} which does not exist")]
    MissingShard { index: PathBuf, shard: PathBuf },

    /// Any other I/O failure (permissions, mmap failure, …).
    #[error("{file}: {source}")]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The file is shorter than the 8-byte header-length prefix.
    #[error("{file}: truncated: {len} bytes, shorter than the 8-byte header length prefix")]
    TooShort { file: PathBuf, len: u64 },

    /// The declared header length runs past the end of the file.
    #[error(
        "{file}: header length {header_len} bytes exceeds the {available} bytes after the \
         length prefix (truncated or not a safetensors file)"
    )]
    HeaderPastEnd { file: PathBuf, header_len: u64, available: u64 },

    /// The declared header length exceeds the safetensors limit.
    #[error("{file}: header length {header_len} bytes exceeds the safetensors limit of {max} bytes")]
    HeaderTooLarge { file: PathBuf, header_len: u64, max: u64 },

    /// The header bytes are not UTF-8.
    #[error("{file}: header is not valid UTF-8: {source}")]
    HeaderNotUtf8 {
        file: PathBuf,
        #[source]
        source: std::str::Utf8Error,
    },

    /// The header is not a JSON object.
    #[error("{file}: header is not valid JSON: {source}")]
    HeaderJson {
        file: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    /// A header key occurs twice.
    #[error("{file}: tensor {tensor:?}: listed twice in the header")]
    DuplicateInHeader { file: PathBuf, tensor: String },

    /// A header entry lacks `dtype`/`shape`/`data_offsets` or has the wrong JSON types.
    #[error("{file}: tensor {tensor:?}: malformed header entry: {reason}")]
    BadEntry { file: PathBuf, tensor: String, reason: String },

    /// The tensor's storage dtype is not F32, F16 or BF16.
    #[error("{file}: tensor {tensor:?}: unsupported dtype {dtype} (supported: F32, F16, BF16)")]
    UnsupportedDtype { file: PathBuf, tensor: String, dtype: String },

    /// `data_offsets` has end < start.
    #[error("{file}: tensor {tensor:?}: offsets [{start}, {end}) are reversed")]
    ReversedOffsets { file: PathBuf, tensor: String, start: u64, end: u64 },

    /// `data_offsets` runs past the end of the data section.
    #[error(
        "{file}: tensor {tensor:?}: offsets [{start}, {end}) are out of bounds of the \
         {data_len}-byte data section (file truncated?)"
    )]
    OffsetsOutOfBounds { file: PathBuf, tensor: String, start: u64, end: u64, data_len: u64 },

    /// The element count or byte size of the shape overflows.
    #[error("{file}: tensor {tensor:?}: shape {shape:?} overflows when computing its size")]
    ShapeOverflow { file: PathBuf, tensor: String, shape: Vec<u64> },

    /// The byte range length differs from `numel × dtype size`.
    #[error(
        "{file}: tensor {tensor:?}: offsets [{start}, {end}) do not match dtype {dtype} × \
         shape {shape:?} ({expected} bytes)"
    )]
    SizeMismatch { file: PathBuf, tensor: String, start: u64, end: u64, dtype: String, shape: Vec<u64>, expected: u64 },

    /// Two tensors of one file share bytes.
    #[error(
        "{file}: tensor {tensor:?}: offsets [{start}, {end}) overlap tensor {other:?} at \
         [{other_start}, {other_end})"
    )]
    Overlap { file: PathBuf, tensor: String, start: u64, end: u64, other: String, other_start: u64, other_end: u64 },

    /// Bytes of the data section belong to no tensor (a gap or trailing bytes).
    #[error("{file}: bytes [{start}, {end}) of the data section belong to no tensor")]
    Uncovered { file: PathBuf, start: u64, end: u64 },

    /// The safetensors crate rejected a header that passed our own checks.
    #[error("{file}: invalid safetensors file: {source}")]
    Format {
        file: PathBuf,
        #[source]
        source: SafeTensorError,
    },

    /// `model.safetensors.index.json` is not valid JSON or lacks `weight_map`.
    #[error("{file}: invalid index: {source}")]
    IndexJson {
        file: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    /// A shard name in the index is absolute or escapes the checkpoint directory.
    #[error("{index}: shard name {shard:?} must be a relative path inside the checkpoint directory")]
    BadShardName { index: PathBuf, shard: String },

    /// The index maps a tensor to a shard that does not contain it.
    #[error("{index}: tensor {tensor:?} is mapped to {shard} but that shard does not contain it")]
    NotInShard { index: PathBuf, tensor: String, shard: PathBuf },

    /// The same tensor name occurs in two shard files.
    #[error("tensor {tensor:?} occurs in two shards: {first} and {second}")]
    DuplicateTensor { tensor: String, first: PathBuf, second: PathBuf },

    /// A GGUF file is malformed or unsupported (the reason says which part).
    #[error("{file}: {reason}")]
    Gguf { file: PathBuf, reason: String },

    /// A tensor stored in a quantized (block) encoding has no raw little-endian view.
    #[error("{file}: tensor {tensor:?} is stored as {encoding}; it has no raw {dtype} view")]
    Encoded { file: PathBuf, tensor: String, encoding: String, dtype: String },

    /// No tensor of that name is mapped.
    #[error("tensor {tensor:?} is not in the checkpoint")]
    TensorNotFound { tensor: String },

    /// The destination slice of [`super::Checkpoint::f32_into`] has the wrong length.
    #[error("tensor {tensor:?}: destination holds {got} values but the tensor has {expected}")]
    LengthMismatch { tensor: String, expected: usize, got: usize },
}
