//! [`BlobWriter`]: appends blobs to a `weight.bin` as they come, never holding more than the
//! blob being written.

use std::io::{Seek, SeekFrom, Write};

use super::format::{BlobDType, BlobError, BlobMetadata, RECORD_SIZE, align, encode_header};
use crate::mil::hash::ContentHash;

/// What a finished blob file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobSummary {
    pub count: u32,
    /// File size in bytes.
    pub size: u64,
    /// Fingerprint of the whole file content.
    pub hash: u128,
}

/// Streaming writer of a version-2 blob file.
///
/// Invariants: `end` is the current file length; every record starts at `align(end)`; the
/// header's `count` is written by [`BlobWriter::finish`] (the file is only valid after it).
/// Gaps are written as explicit zero bytes, so the output never depends on how the
/// filesystem fills holes.
pub struct BlobWriter<W: Write + Seek> {
    out: W,
    end: u64,
    count: u32,
    hash: ContentHash,
}

/// Where the next blob of `n` elements of `dtype` goes in a file that currently ends at
/// `end`: its metadata record (the record itself starts at `data_offset − RECORD_SIZE`, the
/// first aligned offset at or after `end`). The one placement rule of the writer, also used
/// by callers that hand blobs to a writer on another thread and need the offset at once.
pub fn place(end: u64, dtype: BlobDType, n: u64) -> Result<BlobMetadata, BlobError> {
    let size_in_bytes = dtype.payload_size(n).ok_or_else(|| BlobError::Payload("element count overflows".into()))?;
    let meta_offset = align(end);
    Ok(BlobMetadata {
        dtype,
        size_in_bytes,
        data_offset: meta_offset + RECORD_SIZE,
        padding_bits: dtype.padding_bits(n),
    })
}

impl<W: Write + Seek> BlobWriter<W> {
    /// Starts a blob file at the beginning of `out` (a provisional header with count 0).
    pub fn new(mut out: W) -> Result<Self, BlobError> {
        out.seek(SeekFrom::Start(0))?;
        out.write_all(&encode_header(0))?;
        Ok(BlobWriter { out, end: RECORD_SIZE, count: 0, hash: ContentHash::new() })
    }

    /// Appends one blob of `n` elements whose packed payload is `payload`
    /// (`payload.len() == ceil(n · bits / 8)`), and returns the offset of its metadata record
    /// — the value a `BlobFileValue.offset` must hold.
    pub fn append(&mut self, dtype: BlobDType, n: u64, payload: &[u8]) -> Result<u64, BlobError> {
        let meta = place(self.end, dtype, n)?;
        if meta.size_in_bytes != payload.len() as u64 {
            return Err(BlobError::Payload(format!(
                "{n} elements of {dtype:?} need {} bytes, got {}",
                meta.size_in_bytes,
                payload.len()
            )));
        }
        let meta_offset = meta.data_offset - RECORD_SIZE;
        let gap = (meta_offset - self.end) as usize;
        let zeros = [0u8; RECORD_SIZE as usize];
        let record = meta.encode();
        for chunk in [&zeros[..gap], &record[..], payload] {
            self.out.write_all(chunk)?;
            self.hash.update(chunk);
        }
        self.end = meta.data_offset + meta.size_in_bytes;
        self.count = self.count.checked_add(1).ok_or_else(|| BlobError::Payload("too many blobs".into()))?;
        Ok(meta_offset)
    }

    /// Number of blobs appended so far.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Writes the final header and returns the summary and the underlying writer.
    pub fn finish(mut self) -> Result<(BlobSummary, W), BlobError> {
        self.out.seek(SeekFrom::Start(0))?;
        let header = encode_header(self.count);
        self.out.write_all(&header)?;
        self.out.seek(SeekFrom::Start(self.end))?;
        self.out.flush()?;
        self.hash.update(&header);
        let summary = BlobSummary { count: self.count, size: self.end, hash: self.hash.finish() };
        Ok((summary, self.out))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    #[test]
    fn layout_matches_reference_sample() {
        let mut w = BlobWriter::new(Cursor::new(Vec::new())).unwrap();
        let a = w.append(BlobDType::Float16, 1024, &[0u8; 2048]).unwrap();
        let b = w.append(BlobDType::Float16, 16, &[1u8; 32]).unwrap();
        let c = w.append(BlobDType::UInt3, 5, &[0b1101_0001, 0b0101_1000]).unwrap();
        let (summary, out) = w.finish().unwrap();
        let bytes = out.into_inner();
        assert_eq!((a, b, c), (64, 2176, 2304));
        assert_eq!(summary.count, 3);
        assert_eq!(summary.size, bytes.len() as u64);
        assert_eq!(bytes.len(), 2304 + 64 + 2);
        assert_eq!(&bytes[0..8], &[3, 0, 0, 0, 2, 0, 0, 0]);
        assert_eq!(&bytes[64..72], &[0xef, 0xbe, 0xad, 0xde, 1, 0, 0, 0]);
        // uint3: padding 1 bit.
        assert_eq!(bytes[2304 + 24], 1);
    }

    #[test]
    fn rejects_wrong_payload_size() {
        let mut w = BlobWriter::new(Cursor::new(Vec::new())).unwrap();
        assert!(w.append(BlobDType::Float32, 3, &[0u8; 8]).is_err());
    }
}
