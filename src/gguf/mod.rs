//! GGUF files (llama.cpp's checkpoint format), memory-mapped.
//!
//! [`GgufFile::open`] maps a file and parses its header, metadata and tensor infos
//! ([`parse`]); tensor data stays in the map and is dequantised row by row
//! ([`dequant`]) only when a weight is materialised. The reader is our own (a few hundred
//! lines): it decodes straight from the map into the caller's buffer per row, which the
//! weight-recipe path needs (row slices of LM-head pieces, the Q/K row un-permutation) and
//! which a Read+Seek reader that copies each tensor into its own buffer does not give.
//!
//! Invariants of an open [`GgufFile`]: every tensor's bytes lie inside the map, have exactly
//! the size its type and dimensions give, rows are whole blocks, and tensors do not overlap.

pub mod dequant;
pub mod export;
pub mod fuzz;
pub mod parse;
pub mod types;
pub mod value;
pub mod write;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

pub use fuzz::fuzz_check;
pub use parse::{Parsed, RawTensor};
pub use types::GgmlType;
pub use value::Value;

/// Why a GGUF file could not be read. The message always names the file.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {reason}")]
pub struct GgufError {
    pub file: PathBuf,
    pub reason: String,
}

/// Whether `path` names a GGUF file: a regular file whose first four bytes are "GGUF", or
/// whose name ends in `.gguf` (so a truncated or corrupt one still gets GGUF's errors).
pub fn is_gguf_path(path: &Path) -> bool {
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf")) {
        return true;
    }
    if !path.is_file() {
        return false;
    }
    use std::io::Read;
    let mut magic = [0u8; 4];
    File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && magic == parse::MAGIC
}

/// An open, validated, memory-mapped GGUF file.
#[derive(Debug)]
pub struct GgufFile {
    path: PathBuf,
    map: Mmap,
    parsed: Parsed,
    by_name: BTreeMap<String, usize>,
}

impl GgufFile {
    /// Maps `path` and parses it; only header pages are touched.
    pub fn open(path: &Path) -> Result<GgufFile, GgufError> {
        let err = |reason: String| GgufError { file: path.to_path_buf(), reason };
        let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
        // Checked before opening: opening a FIFO blocks until a writer appears.
        if !meta.is_file() {
            return Err(err("not a regular file".into()));
        }
        let file = File::open(path).map_err(|e| err(e.to_string()))?;
        if file.metadata().map_err(|e| err(e.to_string()))?.len() < 24 {
            return Err(err("truncated: shorter than the 24-byte GGUF header".into()));
        }
        // SAFETY: as for safetensors shards (checkpoint::shard): inputs are read-only and
        // assumed not to be modified or truncated by another process while mapped.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| err(e.to_string()))?;
        let parsed = parse::parse(&map).map_err(err)?;
        let by_name = parsed.tensors.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
        Ok(GgufFile { path: path.to_path_buf(), map, parsed, by_name })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn version(&self) -> u32 {
        self.parsed.version
    }

    pub fn metadata(&self) -> &BTreeMap<String, Value> {
        &self.parsed.metadata
    }

    /// Every tensor, in file order.
    pub fn tensors(&self) -> &[RawTensor] {
        &self.parsed.tensors
    }

    pub fn tensor(&self, name: &str) -> Option<&RawTensor> {
        self.by_name.get(name).map(|&i| &self.parsed.tensors[i])
    }

    /// The whole mapped file.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// The encoded bytes of `t` (a tensor of this file).
    pub fn data(&self, t: &RawTensor) -> &[u8] {
        &self.map[t.start..t.start + t.len]
    }

    /// An error about this file.
    pub fn error(&self, reason: impl Into<String>) -> GgufError {
        GgufError { file: self.path.clone(), reason: reason.into() }
    }

    /// `key` as a string, `Ok(None)` when absent, `Err` when of another type.
    pub fn get_str(&self, key: &str) -> Result<Option<&str>, GgufError> {
        self.typed(key, "a string", Value::as_str)
    }

    /// `key` as a non-negative integer of any width.
    pub fn get_u64(&self, key: &str) -> Result<Option<u64>, GgufError> {
        self.typed(key, "an unsigned integer", Value::as_u64)
    }

    /// `key` as a float (or an integer).
    pub fn get_f64(&self, key: &str) -> Result<Option<f64>, GgufError> {
        self.typed(key, "a number", Value::as_f64)
    }

    pub fn get_bool(&self, key: &str) -> Result<Option<bool>, GgufError> {
        self.typed(key, "a bool", Value::as_bool)
    }

    pub fn get_array(&self, key: &str) -> Result<Option<&[Value]>, GgufError> {
        self.typed(key, "an array", Value::as_array)
    }

    fn typed<'a, T>(
        &'a self,
        key: &str,
        want: &str,
        f: impl Fn(&'a Value) -> Option<T>,
    ) -> Result<Option<T>, GgufError> {
        match self.parsed.metadata.get(key) {
            None => Ok(None),
            Some(v) => f(v)
                .map(Some)
                .ok_or_else(|| self.error(format!("metadata {key:?} should be {want}, found {} {v}", v.type_name()))),
        }
    }

    /// Releases the resident pages of `t`'s bytes (best effort), as safetensors shards do.
    pub fn release(&self, t: &RawTensor) {
        #[cfg(unix)]
        {
            const PAGE: usize = 4096;
            let (lo, hi) = (t.start.div_ceil(PAGE) * PAGE, ((t.start + t.len).min(self.map.len()) / PAGE) * PAGE);
            if hi > lo {
                // SAFETY: read-only file-backed map; dropped pages are re-read from the file.
                let _ = unsafe { self.map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, lo, hi - lo) };
            }
        }
        #[cfg(not(unix))]
        let _ = t;
    }
}
