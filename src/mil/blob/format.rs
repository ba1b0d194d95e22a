//! The fixed records of a blob file and the blob dtype codes.

/// Size of the file header and of every metadata record; also the alignment of every record.
pub const RECORD_SIZE: u64 = 64;
/// The only storage format version this crate reads and writes.
pub const VERSION: u32 = 2;
/// First four bytes of every metadata record.
pub const SENTINEL: u32 = 0xDEAD_BEEF;

/// `BlobDataType`: the dtype code stored in a metadata record (append-only upstream enum;
/// note the non-monotonic sub-byte codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BlobDType {
    Float16 = 1,
    Float32 = 2,
    UInt8 = 3,
    Int8 = 4,
    BFloat16 = 5,
    Int16 = 6,
    UInt16 = 7,
    Int4 = 8,
    UInt1 = 9,
    UInt2 = 10,
    UInt4 = 11,
    UInt3 = 12,
    UInt6 = 13,
    Int32 = 14,
    UInt32 = 15,
    Float8E4M3FN = 16,
    Float8E5M2 = 17,
}

impl BlobDType {
    pub const ALL: [BlobDType; 17] = [
        BlobDType::Float16,
        BlobDType::Float32,
        BlobDType::UInt8,
        BlobDType::Int8,
        BlobDType::BFloat16,
        BlobDType::Int16,
        BlobDType::UInt16,
        BlobDType::Int4,
        BlobDType::UInt1,
        BlobDType::UInt2,
        BlobDType::UInt4,
        BlobDType::UInt3,
        BlobDType::UInt6,
        BlobDType::Int32,
        BlobDType::UInt32,
        BlobDType::Float8E4M3FN,
        BlobDType::Float8E5M2,
    ];

    /// The code stored on disk.
    pub fn code(self) -> u32 {
        self as u32
    }

    pub fn from_code(code: u32) -> Option<BlobDType> {
        BlobDType::ALL.into_iter().find(|d| d.code() == code)
    }

    /// Bits per element.
    pub fn bits(self) -> u32 {
        match self {
            BlobDType::UInt1 => 1,
            BlobDType::UInt2 => 2,
            BlobDType::UInt3 => 3,
            BlobDType::Int4 | BlobDType::UInt4 => 4,
            BlobDType::UInt6 => 6,
            BlobDType::UInt8 | BlobDType::Int8 | BlobDType::Float8E4M3FN | BlobDType::Float8E5M2 => 8,
            BlobDType::Float16 | BlobDType::BFloat16 | BlobDType::Int16 | BlobDType::UInt16 => 16,
            BlobDType::Float32 | BlobDType::Int32 | BlobDType::UInt32 => 32,
        }
    }

    /// True for the packed types narrower than a byte.
    pub fn is_sub_byte(self) -> bool {
        self.bits() < 8
    }

    /// Payload size in bytes of `n` elements: `ceil(n · bits / 8)`.
    pub fn payload_size(self, n: u64) -> Option<u64> {
        n.checked_mul(u64::from(self.bits())).map(|b| b.div_ceil(8))
    }

    /// Unused bits at the end of the last byte of `n` packed elements (0 for byte types).
    pub fn padding_bits(self, n: u64) -> u64 {
        if self.is_sub_byte() { (8 - (n * u64::from(self.bits())) % 8) % 8 } else { 0 }
    }
}

/// Why a blob file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob file I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a blob file: {0}")]
    Header(String),
    #[error("blob at offset {offset}: {message}")]
    Record { offset: u64, message: String },
    #[error("blob payload: {0}")]
    Payload(String),
}

/// One decoded metadata record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobMetadata {
    pub dtype: BlobDType,
    pub size_in_bytes: u64,
    /// Absolute offset of the payload.
    pub data_offset: u64,
    pub padding_bits: u64,
}

impl BlobMetadata {
    /// The 64-byte on-disk form (reserved fields zero).
    pub fn encode(&self) -> [u8; RECORD_SIZE as usize] {
        let mut out = [0u8; RECORD_SIZE as usize];
        out[0..4].copy_from_slice(&SENTINEL.to_le_bytes());
        out[4..8].copy_from_slice(&self.dtype.code().to_le_bytes());
        out[8..16].copy_from_slice(&self.size_in_bytes.to_le_bytes());
        out[16..24].copy_from_slice(&self.data_offset.to_le_bytes());
        out[24..32].copy_from_slice(&self.padding_bits.to_le_bytes());
        out
    }

    /// Parses a record found at `offset` (used in error messages only).
    pub fn decode(bytes: &[u8], offset: u64) -> Result<BlobMetadata, BlobError> {
        let err = |message: String| BlobError::Record { offset, message };
        if bytes.len() < RECORD_SIZE as usize {
            return Err(err("metadata record runs past the end of the file".into()));
        }
        let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
        let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
        if u32_at(0) != SENTINEL {
            return Err(err(format!("bad sentinel {:#010x} (expected 0xdeadbeef)", u32_at(0))));
        }
        let dtype = BlobDType::from_code(u32_at(4)).ok_or_else(|| err(format!("unknown dtype code {}", u32_at(4))))?;
        Ok(BlobMetadata { dtype, size_in_bytes: u64_at(8), data_offset: u64_at(16), padding_bits: u64_at(24) })
    }
}

/// The 64-byte file header for `count` blobs.
pub fn encode_header(count: u32) -> [u8; RECORD_SIZE as usize] {
    let mut out = [0u8; RECORD_SIZE as usize];
    out[0..4].copy_from_slice(&count.to_le_bytes());
    out[4..8].copy_from_slice(&VERSION.to_le_bytes());
    out
}

/// Rounds `offset` up to the next multiple of [`RECORD_SIZE`].
pub fn align(offset: u64) -> u64 {
    offset.div_ceil(RECORD_SIZE) * RECORD_SIZE
}
