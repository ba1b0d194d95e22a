//! One memory-mapped safetensors file.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::CheckpointError;
use super::diagnose::PREFIX_LEN;
use super::header::{self, HeaderTensor};

/// A read-only memory map of one safetensors file whose header has been validated.
#[derive(Debug)]
pub(crate) struct Shard {
    pub path: PathBuf,
    map: Mmap,
}

impl Shard {
    /// Maps `path` and validates its header, returning the shard and its declared tensors.
    ///
    /// Only the header pages are touched here; tensor data is paged in on first access.
    pub(crate) fn open(path: &Path) -> Result<(Shard, Vec<HeaderTensor>), CheckpointError> {
        let io_err = |source: io::Error| CheckpointError::Io { file: path.to_path_buf(), source };
        // Checked before opening too: opening a FIFO for reading blocks until a writer
        // appears, so a FIFO named like a shard would hang the compiler.
        if !std::fs::metadata(path).map_err(io_err)?.is_file() {
            return Err(io_err(io::Error::other("not a regular file")));
        }
        let file = File::open(path).map_err(io_err)?;
        let meta = file.metadata().map_err(io_err)?;
        if !meta.is_file() {
            return Err(io_err(io::Error::other("not a regular file")));
        }
        // Checked before mapping: mapping an empty file fails on some platforms.
        if meta.len() < PREFIX_LEN as u64 {
            return Err(CheckpointError::TooShort { file: path.to_path_buf(), len: meta.len() });
        }
        // SAFETY: a memory map is only sound while nobody modifies or truncates the file.
        // Checkpoints are read-only inputs of the compiler; we assume no other process
        // writes them while a `Checkpoint` is alive (a concurrent truncation would raise
        // SIGBUS on access, a concurrent write would change the values we read). We never
        // write through the map.
        let map = unsafe { Mmap::map(&file) }.map_err(io_err)?;
        let tensors = header::parse(path, &map)?;
        Ok((Shard { path: path.to_path_buf(), map }, tensors))
    }

    /// The whole mapped file.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// Tells the kernel the pages wholly inside `start..end` are not needed any more, so a
    /// converter that reads every weight once does not keep the whole file resident. Later
    /// reads fault the pages back in from the file: values never change. Best effort.
    pub(crate) fn release(&self, start: usize, end: usize) {
        #[cfg(unix)]
        {
            const PAGE: usize = 4096;
            let (lo, hi) = (start.div_ceil(PAGE) * PAGE, (end.min(self.map.len()) / PAGE) * PAGE);
            if hi > lo {
                // SAFETY: the map is read-only and file-backed, so dropping its pages loses
                // nothing: the next access re-reads the same bytes from the file.
                let _ = unsafe { self.map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, lo, hi - lo) };
            }
        }
        #[cfg(not(unix))]
        let _ = (start, end);
    }
}
