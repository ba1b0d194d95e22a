//! [`BlobSink`]: the package's `weight.bin`, created on the first blob, with content
//! deduplication for IR constants.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;

use crate::mil::blob::{BlobDType, BlobSummary, BlobWriter};
use crate::mil::error::EmitError;

/// Where blobs go. Invariant: the file exists iff at least one blob was appended, so a
/// package without large constants has an empty `weights/` directory (as coremltools does).
pub(crate) struct BlobSink {
    path: PathBuf,
    writer: Option<BlobWriter<BufWriter<File>>>,
    /// Content → metadata offset, for constants (not weights, which are unique by name).
    dedup: HashMap<(BlobDType, u64, Vec<u8>), u64>,
}

impl BlobSink {
    pub(crate) fn new(path: PathBuf) -> Self {
        BlobSink { path, writer: None, dedup: HashMap::new() }
    }

    fn blob_err(&self, source: crate::mil::blob::BlobError) -> EmitError {
        EmitError::Blob { path: self.path.clone(), source }
    }

    /// Appends a blob of `n` elements and returns its metadata offset.
    pub(crate) fn append(&mut self, dtype: BlobDType, n: u64, payload: &[u8]) -> Result<u64, EmitError> {
        if self.writer.is_none() {
            let file = File::create(&self.path).map_err(|source| EmitError::Io { path: self.path.clone(), source })?;
            self.writer = Some(BlobWriter::new(BufWriter::new(file)).map_err(|e| self.blob_err(e))?);
        }
        let writer = self.writer.as_mut().expect("created above");
        writer.append(dtype, n, payload).map_err(|source| EmitError::Blob { path: self.path.clone(), source })
    }

    /// Like [`BlobSink::append`], but identical payloads share one blob.
    pub(crate) fn append_dedup(&mut self, dtype: BlobDType, n: u64, payload: Vec<u8>) -> Result<u64, EmitError> {
        let key = (dtype, n, payload);
        if let Some(&offset) = self.dedup.get(&key) {
            return Ok(offset);
        }
        let offset = self.append(dtype, n, &key.2)?;
        self.dedup.insert(key, offset);
        Ok(offset)
    }

    /// Finalises the file; `None` if no blob was written.
    pub(crate) fn finish(self) -> Result<Option<BlobSummary>, EmitError> {
        let Some(writer) = self.writer else { return Ok(None) };
        let (summary, out) = writer.finish().map_err(|source| EmitError::Blob { path: self.path.clone(), source })?;
        let file = out.into_inner().map_err(|e| EmitError::Io { path: self.path.clone(), source: e.into_error() })?;
        file.sync_all().map_err(|source| EmitError::Io { path: self.path.clone(), source })?;
        Ok(Some(summary))
    }
}
