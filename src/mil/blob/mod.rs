//! `weight.bin`: the MIL blob storage file (format version 2).
//!
//! Layout (all integers little-endian): a 64-byte file header (`count`, `version = 2`,
//! reserved zeros), then per blob a 64-byte metadata record (sentinel `0xDEADBEEF`, dtype
//! code, payload size, absolute payload offset, sub-byte padding bits, reserved zeros)
//! followed by the payload. Every metadata record starts at a 64-byte-aligned offset and the
//! payload directly follows it, so payloads are 64-byte aligned too; alignment gaps are zero
//! bytes and the file ends at the end of the last payload.
//!
//! - [`format`]: constants, [`BlobDType`] and the header/metadata records.
//! - [`pack`]: sub-byte (1…6-bit) LSB-first packing and unpacking.
//! - [`writer`]: the streaming [`BlobWriter`] (each blob written as it comes).
//! - [`direct`]: [`DirectFile`], the staging writer under it that bypasses the page cache.
//! - [`reader`]: [`BlobFile`], a validated view over an existing file.

pub mod direct;
pub mod format;
pub mod pack;
pub mod reader;
pub mod writer;

pub use direct::DirectFile;
pub use format::{BlobDType, BlobError, BlobMetadata};
pub use reader::{BlobFile, BlobRecord};
pub use writer::{BlobSummary, BlobWriter};
