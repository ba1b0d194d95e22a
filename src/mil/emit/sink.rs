//! [`BlobSink`]: the package's `weight.bin`, created on the first blob, written by a
//! background thread while the emitter computes the next payload, with content
//! deduplication for IR constants.
//!
//! Why a thread: copying a payload into the page cache is single-threaded kernel work (about
//! a quarter of a 1B LUT6 convert's CPU time was the main thread in `write`, while the rayon
//! workers that palettize waited for it). Handing each finished payload to a writer thread
//! overlaps that copy with the palettization of the next weight; the thread writes through
//! [`DirectFile`], which skips the page-cache copy where the platform allows it.
//!
//! Invariants:
//! - offsets are assigned on the caller's thread by the writer's own placement rule
//!   ([`place`]), in append order, and the writer thread checks that each blob lands there;
//! - at most [`QUEUED`] payloads wait for the thread, so memory stays bounded by the blob
//!   being written plus the queued ones;
//! - the first write error stops the thread; the next `append` or [`BlobSink::finish`]
//!   returns it (naming the file); a sink dropped without `finish` still joins its thread,
//!   so no write outlives the staging directory it writes into.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use crate::mil::blob::format::RECORD_SIZE;
use crate::mil::blob::writer::place;
use crate::mil::blob::{BlobDType, BlobError, BlobSummary, BlobWriter, DirectFile};
use crate::mil::error::EmitError;

/// Payloads that may wait for the writer thread.
const QUEUED: usize = 1;

/// One blob on its way to the writer thread.
struct Pending {
    dtype: BlobDType,
    n: u64,
    payload: Vec<u8>,
    /// The metadata offset the caller was given.
    offset: u64,
}

/// The writer thread and the way to feed it.
struct Background {
    queue: SyncSender<Pending>,
    thread: JoinHandle<Result<BlobSummary, EmitError>>,
}

/// Where blobs go. Invariant: the file exists iff at least one blob was appended, so a
/// package without large constants has an empty `weights/` directory (as coremltools does).
pub(crate) struct BlobSink {
    path: PathBuf,
    writer: Option<Background>,
    /// The file's length once every blob appended so far is written.
    end: u64,
    /// Content → metadata offset, for constants (not weights, which are unique by name).
    dedup: HashMap<(BlobDType, u64, Vec<u8>), u64>,
}

impl BlobSink {
    pub(crate) fn new(path: PathBuf) -> Self {
        BlobSink { path, writer: None, end: RECORD_SIZE, dedup: HashMap::new() }
    }

    fn blob_err(&self, source: BlobError) -> EmitError {
        EmitError::Blob { path: self.path.clone(), source }
    }

    /// Appends a blob of `n` elements and returns its metadata offset. The payload is
    /// written in the background; errors surface here on a later call or in `finish`.
    pub(crate) fn append(&mut self, dtype: BlobDType, n: u64, payload: Vec<u8>) -> Result<u64, EmitError> {
        let meta = place(self.end, dtype, n).map_err(|e| self.blob_err(e))?;
        if meta.size_in_bytes != payload.len() as u64 {
            return Err(self.blob_err(BlobError::Payload(format!(
                "{n} elements of {dtype:?} need {} bytes, got {}",
                meta.size_in_bytes,
                payload.len()
            ))));
        }
        if self.writer.is_none() {
            let file = File::create(&self.path).map_err(|source| EmitError::Io { path: self.path.clone(), source })?;
            let (queue, received) = sync_channel(QUEUED);
            let path = self.path.clone();
            let thread = std::thread::Builder::new()
                .name("weight.bin writer".into())
                .spawn(move || write_blobs(&path, file, received))
                .map_err(|source| EmitError::Io { path: self.path.clone(), source })?;
            self.writer = Some(Background { queue, thread });
        }
        let offset = meta.data_offset - RECORD_SIZE;
        let writer = self.writer.as_ref().expect("started above");
        if writer.queue.send(Pending { dtype, n, payload, offset }).is_err() {
            // The thread stopped: it holds the reason.
            return Err(self
                .join()
                .err()
                .unwrap_or_else(|| self.blob_err(BlobError::Payload("writer stopped".into()))));
        }
        self.end = meta.data_offset + meta.size_in_bytes;
        Ok(offset)
    }

    /// Like [`BlobSink::append`], but identical payloads share one blob.
    pub(crate) fn append_dedup(&mut self, dtype: BlobDType, n: u64, payload: Vec<u8>) -> Result<u64, EmitError> {
        let key = (dtype, n, payload);
        if let Some(&offset) = self.dedup.get(&key) {
            return Ok(offset);
        }
        let offset = self.append(dtype, n, key.2.clone())?;
        self.dedup.insert(key, offset);
        Ok(offset)
    }

    /// Waits for the writer thread; `Ok(None)` if no blob was ever appended.
    fn join(&mut self) -> Result<Option<BlobSummary>, EmitError> {
        let Some(Background { queue, thread }) = self.writer.take() else { return Ok(None) };
        drop(queue);
        match thread.join() {
            Ok(result) => result.map(Some),
            Err(_) => Err(self.blob_err(BlobError::Payload("the writer thread panicked".into()))),
        }
    }

    /// Finalises the file (header, flush, fsync); `None` if no blob was written.
    pub(crate) fn finish(mut self) -> Result<Option<BlobSummary>, EmitError> {
        self.join()
    }
}

impl Drop for BlobSink {
    fn drop(&mut self) {
        // An abandoned package: stop the thread before its directory is removed.
        let _ = self.join();
    }
}

/// The writer thread: appends every blob it receives, checks it lands at the offset the
/// caller was given, then writes the header and makes the file durable.
fn write_blobs(path: &Path, file: File, blobs: Receiver<Pending>) -> Result<BlobSummary, EmitError> {
    let blob_err = |source: BlobError| EmitError::Blob { path: path.to_path_buf(), source };
    let mut writer = BlobWriter::new(DirectFile::new(file)).map_err(blob_err)?;
    for blob in blobs {
        let offset = writer.append(blob.dtype, blob.n, &blob.payload).map_err(blob_err)?;
        if offset != blob.offset {
            return Err(blob_err(BlobError::Payload(format!(
                "blob written at {offset}, but its reference says {}",
                blob.offset
            ))));
        }
    }
    let (summary, out) = writer.finish().map_err(blob_err)?;
    let file = out.into_file().map_err(|source| EmitError::Io { path: path.to_path_buf(), source })?;
    file.sync_all().map_err(|source| EmitError::Io { path: path.to_path_buf(), source })?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mil::blob::BlobFile;

    fn temp_path(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("anemllc-sink-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("weight.bin")
    }

    /// The background file is byte-identical to the one a synchronous writer makes, and the
    /// offsets handed out before the bytes were written are the real ones.
    #[test]
    fn background_file_equals_synchronous_file() {
        let blobs: Vec<(BlobDType, u64, Vec<u8>)> = vec![
            (BlobDType::Float16, 1024, (0..2048).map(|i| (i % 251) as u8).collect()),
            (BlobDType::UInt3, 5, vec![0b1101_0001, 0b0101_1000]),
            (BlobDType::Float32, 3, vec![7u8; 12]),
            (BlobDType::UInt6, 100, (0..75).map(|i| i as u8).collect()),
        ];
        let path = temp_path("equal");
        let mut sink = BlobSink::new(path.clone());
        let offsets: Vec<u64> = blobs.iter().map(|(d, n, p)| sink.append(*d, *n, p.clone()).unwrap()).collect();
        let summary = sink.finish().unwrap().unwrap();

        let mut sync = BlobWriter::new(std::io::Cursor::new(Vec::new())).unwrap();
        let expected: Vec<u64> = blobs.iter().map(|(d, n, p)| sync.append(*d, *n, p).unwrap()).collect();
        let (sync_summary, bytes) = sync.finish().unwrap();
        let written = std::fs::read(&path).unwrap();
        assert_eq!(offsets, expected);
        assert_eq!(summary, sync_summary);
        assert_eq!(written, bytes.into_inner());
        let file = BlobFile::from_bytes(written).unwrap();
        assert_eq!(file.records().unwrap().len(), blobs.len());
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    /// A wrong payload size is refused on the caller's thread, naming the file.
    #[test]
    fn wrong_size_is_refused_at_once() {
        let path = temp_path("size");
        let mut sink = BlobSink::new(path.clone());
        let err = sink.append(BlobDType::Float32, 3, vec![0u8; 8]).unwrap_err().to_string();
        assert!(err.contains("weight.bin") && err.contains("12 bytes"), "{err}");
        assert!(sink.finish().unwrap().is_none(), "no blob was written, so no file");
        assert!(!path.exists());
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    /// A write error (the directory vanished before the first blob) is reported with the path.
    #[test]
    fn missing_directory_is_an_error_naming_the_file() {
        let path = std::env::temp_dir().join(format!("anemllc-sink-{}-gone/none/weight.bin", std::process::id()));
        let mut sink = BlobSink::new(path);
        let err = sink.append(BlobDType::Float16, 16, vec![0u8; 32]).unwrap_err().to_string();
        assert!(err.contains("weight.bin"), "{err}");
    }
}
