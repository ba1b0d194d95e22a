//! Memory-mapped checkpoints: safetensors folders and GGUF files.
//!
//! [`Checkpoint::open`] maps either `model.safetensors` or the shards named by
//! `model.safetensors.index.json`, validates every header, and then hands out zero-copy views
//! of the little-endian tensor bytes plus f32 conversions. Nothing reads a whole file into RAM.
//!
//! Invariants of an open [`Checkpoint`]:
//! - every mapped tensor has a supported storage dtype ([`StDType`]: F32, F16, BF16);
//! - every mapped tensor's byte range lies inside its shard's data section, is exactly
//!   `numel × dtype size` bytes long, and no two tensors of one file overlap;
//! - every tensor name occurs in exactly one shard file.
//!
//! Hostile input yields a [`CheckpointError`] naming the file (and tensor), never a panic.

mod access;
mod diagnose;
mod dtype;
mod error;
mod gguf;
mod header;
mod index;
mod open;
mod shard;

pub use access::TensorView;
pub use dtype::StDType;
pub use error::CheckpointError;
pub use gguf::{LLAMA_LAYER_NAMES, TOP_LEVEL_NAMES, gguf_row_source};
pub use open::{Checkpoint, INDEX_FILE, SINGLE_FILE, TensorInfo};
