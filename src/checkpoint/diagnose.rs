//! Our own structural checks of a safetensors file, run before the safetensors crate parses it.
//!
//! The crate rejects every malformed file we know of, but several of its errors name neither
//! the tensor nor the numbers involved (`TensorInvalidInfo`, `MetadataIncompleteBuffer`), and
//! it silently keeps only one of two duplicate header keys. These checks re-derive each
//! condition so the error says which tensor is wrong and how. They only read the header and
//! never touch tensor data.
//!
//! Checked, in order: length prefix present; header fits in the file and under the crate's
//! size limit; header is UTF-8 JSON object; no duplicate keys; each entry well-formed with a
//! dtype the crate knows; offsets not reversed and inside the data section; `numel × dtype`
//! computable and equal to the byte length; no two tensors overlap; every data byte belongs
//! to some tensor (the crate requires the tensors to tile the data section exactly).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;

use super::CheckpointError;

/// Bytes of the little-endian u64 header-length prefix.
pub(crate) const PREFIX_LEN: usize = 8;

/// Largest header the safetensors crate accepts (its private `MAX_HEADER_SIZE`, 0.8.0).
pub(crate) const MAX_HEADER_LEN: u64 = 100_000_000;

/// The key of the optional string→string metadata map in the header.
const METADATA_KEY: &str = "__metadata__";

/// Header entries in file order, keeping duplicates so we can report them.
struct Entries(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object mapping tensor names to entries")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }
        deserializer.deserialize_map(EntriesVisitor)
    }
}

/// One tensor entry as written in the header.
#[derive(Deserialize)]
struct RawEntry {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: [u64; 2],
}

/// A validated byte span of one tensor, relative to the data section.
struct Span<'a> {
    name: &'a str,
    start: u64,
    end: u64,
}

/// Reads the header length prefix and checks it against the file size and the crate's limit.
/// Returns the header length in bytes.
pub(crate) fn header_len(file: &Path, bytes: &[u8]) -> Result<usize, CheckpointError> {
    let len = bytes.len() as u64;
    let Some(prefix) = bytes.first_chunk::<PREFIX_LEN>() else {
        return Err(CheckpointError::TooShort { file: file.to_path_buf(), len });
    };
    let header_len = u64::from_le_bytes(*prefix);
    let available = len - PREFIX_LEN as u64;
    if header_len > available {
        return Err(CheckpointError::HeaderPastEnd { file: file.to_path_buf(), header_len, available });
    }
    if header_len > MAX_HEADER_LEN {
        return Err(CheckpointError::HeaderTooLarge { file: file.to_path_buf(), header_len, max: MAX_HEADER_LEN });
    }
    // header_len <= available <= bytes.len(), so it fits in usize.
    Ok(header_len as usize)
}

/// Runs every structural check on the whole mapped file `bytes`.
pub(crate) fn check(file: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let n = header_len(file, bytes)?;
    let header = &bytes[PREFIX_LEN..PREFIX_LEN + n];
    let data_len = (bytes.len() - PREFIX_LEN - n) as u64;
    let text = std::str::from_utf8(header)
        .map_err(|source| CheckpointError::HeaderNotUtf8 { file: file.to_path_buf(), source })?;
    let Entries(entries) = serde_json::from_str(text)
        .map_err(|source| CheckpointError::HeaderJson { file: file.to_path_buf(), source })?;

    let mut seen = HashSet::new();
    for (name, _) in &entries {
        if !seen.insert(name.as_str()) {
            return Err(CheckpointError::DuplicateInHeader { file: file.to_path_buf(), tensor: name.clone() });
        }
    }

    let mut spans = Vec::with_capacity(entries.len());
    for (name, value) in &entries {
        if name == METADATA_KEY {
            check_metadata(file, value)?;
        } else {
            spans.push(check_entry(file, name, value, data_len)?);
        }
    }
    check_tiling(file, &mut spans, data_len)
}

/// The `__metadata__` entry must be a string→string map (the crate's requirement).
fn check_metadata(file: &Path, value: &Value) -> Result<(), CheckpointError> {
    HashMap::<String, String>::deserialize(value).map(drop).map_err(|e| CheckpointError::BadEntry {
        file: file.to_path_buf(),
        tensor: METADATA_KEY.to_string(),
        reason: e.to_string(),
    })
}

/// Checks one tensor entry on its own: shape, dtype, offsets and size.
fn check_entry<'a>(file: &Path, name: &'a str, value: &Value, data_len: u64) -> Result<Span<'a>, CheckpointError> {
    let bad = |reason: String| CheckpointError::BadEntry { file: file.to_path_buf(), tensor: name.to_string(), reason };
    let entry = RawEntry::deserialize(value).map_err(|e| bad(e.to_string()))?;
    let dtype = safetensors::Dtype::deserialize(Value::String(entry.dtype.clone())).map_err(|_| {
        CheckpointError::UnsupportedDtype {
            file: file.to_path_buf(),
            tensor: name.to_string(),
            dtype: entry.dtype.clone(),
        }
    })?;
    let [start, end] = entry.data_offsets;
    if end < start {
        return Err(CheckpointError::ReversedOffsets {
            file: file.to_path_buf(),
            tensor: name.to_string(),
            start,
            end,
        });
    }
    if end > data_len {
        return Err(CheckpointError::OffsetsOutOfBounds {
            file: file.to_path_buf(),
            tensor: name.to_string(),
            start,
            end,
            data_len,
        });
    }
    let bits = entry
        .shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .and_then(|numel| numel.checked_mul(dtype.bitsize() as u64))
        .filter(|&bits| usize::try_from(bits).is_ok())
        .ok_or_else(|| CheckpointError::ShapeOverflow {
            file: file.to_path_buf(),
            tensor: name.to_string(),
            shape: entry.shape.clone(),
        })?;
    if !bits.is_multiple_of(8) {
        return Err(bad(format!("dtype {} × shape {:?} is not a whole number of bytes", entry.dtype, entry.shape)));
    }
    if end - start != bits / 8 {
        return Err(CheckpointError::SizeMismatch {
            file: file.to_path_buf(),
            tensor: name.to_string(),
            start,
            end,
            dtype: entry.dtype,
            shape: entry.shape,
            expected: bits / 8,
        });
    }
    Ok(Span { name, start, end })
}

/// Checks that the spans neither overlap nor leave any data byte unowned.
fn check_tiling(file: &Path, spans: &mut [Span<'_>], data_len: u64) -> Result<(), CheckpointError> {
    spans.sort_by_key(|s| (s.start, s.end));
    // Sorted by start and none reversed: any overlap shows up between neighbours.
    for pair in spans.windows(2) {
        let (prev, next) = (&pair[0], &pair[1]);
        if next.start < prev.end {
            return Err(CheckpointError::Overlap {
                file: file.to_path_buf(),
                tensor: next.name.to_string(),
                start: next.start,
                end: next.end,
                other: prev.name.to_string(),
                other_start: prev.start,
                other_end: prev.end,
            });
        }
    }
    let mut cursor = 0;
    for span in spans.iter() {
        if span.start > cursor {
            return Err(CheckpointError::Uncovered { file: file.to_path_buf(), start: cursor, end: span.start });
        }
        cursor = span.end;
    }
    if cursor < data_len {
        return Err(CheckpointError::Uncovered { file: file.to_path_buf(), start: cursor, end: data_len });
    }
    Ok(())
}
