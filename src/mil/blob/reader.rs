//! [`BlobFile`]: a validated, read-only view of a `weight.bin`.

use std::path::Path;

use memmap2::Mmap;

use super::format::{BlobDType, BlobError, BlobMetadata, RECORD_SIZE, VERSION, align};

enum Bytes {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

/// A blob file whose header has been checked (version 2). Individual records are checked
/// when accessed: sentinel, dtype code, payload in bounds, sub-byte padding rules.
pub struct BlobFile {
    bytes: Bytes,
    count: u32,
}

/// One blob: its metadata and payload bytes.
#[derive(Clone, Copy, Debug)]
pub struct BlobRecord<'a> {
    /// Offset of the metadata record (what `BlobFileValue.offset` refers to).
    pub offset: u64,
    pub meta: BlobMetadata,
    pub data: &'a [u8],
}

impl BlobRecord<'_> {
    /// Number of elements: `(size · 8 − padding) / bits`.
    pub fn element_count(&self) -> u64 {
        (self.meta.size_in_bytes * 8 - self.meta.padding_bits) / u64::from(self.meta.dtype.bits())
    }
}

impl BlobFile {
    /// Memory-maps and validates the header of the file at `path`.
    pub fn open(path: &Path) -> Result<BlobFile, BlobError> {
        let file = std::fs::File::open(path)?;
        // SAFETY: the map is read-only; the package is not expected to change while it is
        // read (the same assumption the checkpoint loader makes for safetensors files).
        let map = unsafe { Mmap::map(&file) }?;
        Self::from_parts(Bytes::Mapped(map))
    }

    /// Validates an in-memory blob file.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<BlobFile, BlobError> {
        Self::from_parts(Bytes::Owned(bytes))
    }

    fn from_parts(bytes: Bytes) -> Result<BlobFile, BlobError> {
        let mut file = BlobFile { bytes, count: 0 };
        let b = file.bytes();
        if b.len() < RECORD_SIZE as usize {
            return Err(BlobError::Header(format!("{} bytes, shorter than the 64-byte header", b.len())));
        }
        let version = u32::from_le_bytes(b[4..8].try_into().expect("4 bytes"));
        if version != VERSION {
            return Err(BlobError::Header(format!("storage version {version}, only version 2 is supported")));
        }
        file.count = u32::from_le_bytes(b[0..4].try_into().expect("4 bytes"));
        Ok(file)
    }

    fn bytes(&self) -> &[u8] {
        match &self.bytes {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }

    /// The blob count the header declares.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// File size in bytes.
    pub fn len(&self) -> u64 {
        self.bytes().len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The blob whose metadata record starts at `offset`.
    pub fn record(&self, offset: u64) -> Result<BlobRecord<'_>, BlobError> {
        let bytes = self.bytes();
        let err = |message: String| BlobError::Record { offset, message };
        let start =
            usize::try_from(offset).ok().filter(|&s| s < bytes.len()).ok_or_else(|| err("past the end".into()))?;
        let meta = BlobMetadata::decode(&bytes[start..], offset)?;
        let end = meta.data_offset.checked_add(meta.size_in_bytes).filter(|&e| e <= bytes.len() as u64);
        let Some(end) = end else {
            return Err(err(format!(
                "payload [{}, +{}) runs past the end of the {}-byte file",
                meta.data_offset,
                meta.size_in_bytes,
                bytes.len()
            )));
        };
        if meta.data_offset < offset + RECORD_SIZE {
            return Err(err(format!("payload offset {} overlaps its metadata record", meta.data_offset)));
        }
        let bits = u64::from(meta.dtype.bits());
        if meta.dtype.is_sub_byte() {
            if meta.padding_bits >= 8 || (bits.is_power_of_two() && meta.padding_bits % bits != 0) {
                return Err(err(format!("invalid padding of {} bits for {:?}", meta.padding_bits, meta.dtype)));
            }
            if meta.size_in_bytes == 0 && meta.padding_bits != 0 {
                return Err(err("padding on an empty payload".into()));
            }
        } else if meta.padding_bits != 0 || meta.size_in_bytes % (bits / 8) != 0 {
            return Err(err(format!(
                "{} bytes is not a whole number of {:?} elements",
                meta.size_in_bytes, meta.dtype
            )));
        }
        let data = &bytes[meta.data_offset as usize..end as usize];
        Ok(BlobRecord { offset, meta, data })
    }

    /// The record at `offset`, which must hold `dtype`.
    pub fn typed_record(&self, offset: u64, dtype: BlobDType) -> Result<BlobRecord<'_>, BlobError> {
        let r = self.record(offset)?;
        if r.meta.dtype != dtype {
            return Err(BlobError::Record {
                offset,
                message: format!("holds {:?}, the program declares {:?}", r.meta.dtype, dtype),
            });
        }
        Ok(r)
    }

    /// Walks the chain of `count` records from offset 64.
    pub fn records(&self) -> Result<Vec<BlobRecord<'_>>, BlobError> {
        // `count` is whatever the header says; each record takes at least 64 bytes.
        let mut out = Vec::with_capacity((self.count as usize).min(self.bytes().len() / RECORD_SIZE as usize));
        let mut offset = RECORD_SIZE;
        for _ in 0..self.count {
            let r = self.record(offset)?;
            offset = align(r.meta.data_offset + r.meta.size_in_bytes);
            out.push(r);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;
    use crate::mil::blob::BlobWriter;

    #[test]
    fn write_then_walk() {
        let mut w = BlobWriter::new(Cursor::new(Vec::new())).unwrap();
        let a = w.append(BlobDType::Float32, 3, &[1u8; 12]).unwrap();
        let b = w.append(BlobDType::UInt6, 3, &[0x7f, 0x20, 0x00]).unwrap();
        let (_, out) = w.finish().unwrap();
        let f = BlobFile::from_bytes(out.into_inner()).unwrap();
        let recs = f.records().unwrap();
        assert_eq!(recs.iter().map(|r| r.offset).collect::<Vec<_>>(), [a, b]);
        assert_eq!(recs[1].element_count(), 3);
        assert_eq!(recs[1].meta.padding_bits, 6);
        assert!(f.typed_record(a, BlobDType::Float16).is_err());
        assert!(f.record(a + 64).is_err());
    }
}
