//! Parsing a GGUF file's header, metadata and tensor infos from its bytes.
//!
//! Every read is bounds-checked against the input, and every count is checked against the
//! bytes that remain before anything is allocated for it (each element takes at least one
//! byte), so hostile counts fail fast instead of allocating.

use std::collections::BTreeMap;

use super::types::GgmlType;
use super::value::Value;

/// "GGUF" as a little-endian u32.
pub const MAGIC: [u8; 4] = *b"GGUF";
/// Alignment of the data section and of every tensor offset unless `general.alignment` says
/// otherwise.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Most dimensions a ggml tensor has.
pub const MAX_DIMS: u32 = 4;
/// Longest key or string accepted (GGUF strings have no limit; real ones are far shorter
/// except the chat template, which stays well under this).
pub const MAX_STRING: u64 = 64 << 20;
/// Deepest nesting of arrays accepted.
const MAX_DEPTH: usize = 4;

/// A tensor as declared in the file.
///
/// Invariants (checked by [`parse`]): `dims` has 1 to [`MAX_DIMS`] entries, none zero, whose
/// product fits an `i64` (so no product of some of them, in any order, overflows);
/// `start..start + len` lies inside the file, `len` is exactly the bytes of `dims` elements
/// of `ty`, `dims[0]` (the row length, ggml's `ne[0]`) is a whole number of blocks, and no
/// two tensors overlap.
#[derive(Clone, Debug, PartialEq)]
pub struct RawTensor {
    pub name: String,
    pub ty: GgmlType,
    /// ggml order: `dims[0]` varies fastest. The row-major (numpy/torch) shape is reversed.
    pub dims: Vec<usize>,
    /// Absolute byte offset in the file.
    pub start: usize,
    pub len: usize,
}

impl RawTensor {
    /// The row-major shape (`dims` reversed), as transformers and numpy see the tensor.
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().copied().collect()
    }

    /// Elements per row (`dims[0]`).
    pub fn row_len(&self) -> usize {
        self.dims.first().copied().unwrap_or(1)
    }
}

/// The parsed header of a GGUF file.
#[derive(Clone, Debug, PartialEq)]
pub struct Parsed {
    pub version: u32,
    pub metadata: BTreeMap<String, Value>,
    pub tensors: Vec<RawTensor>,
    /// Absolute offset of the data section.
    pub data_start: usize,
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        if n > self.remaining() {
            return Err(format!("truncated: {what} at byte {} needs {n} bytes, {} remain", self.at, self.remaining()));
        }
        let s = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &str) -> Result<u64, String> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// A count that will be used to allocate `count` items of at least `min_item` bytes.
    fn count(&mut self, what: &str, min_item: usize) -> Result<usize, String> {
        let at = self.at;
        let n = self.u64(what)?;
        let fits = usize::try_from(n).ok().filter(|&n| n.saturating_mul(min_item.max(1)) <= self.remaining());
        fits.ok_or_else(|| {
            format!(
                "{what} {n} at byte {at} cannot fit in the {} bytes that remain (truncated or corrupt file)",
                self.remaining()
            )
        })
    }

    fn string(&mut self, what: &str) -> Result<String, String> {
        let at = self.at;
        let n = self.u64(what)?;
        if n > MAX_STRING {
            return Err(format!("{what} at byte {at}: length {n} exceeds the {MAX_STRING}-byte limit"));
        }
        let bytes = self.take(n as usize, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| format!("{what} at byte {at} is not valid UTF-8"))
    }

    fn value(&mut self, ty: u32, key: &str, depth: usize) -> Result<Value, String> {
        let what = || format!("value of {key:?}");
        Ok(match ty {
            0 => Value::U8(self.array::<1>(&what())?[0]),
            1 => Value::I8(self.array::<1>(&what())?[0] as i8),
            2 => Value::U16(u16::from_le_bytes(self.array(&what())?)),
            3 => Value::I16(i16::from_le_bytes(self.array(&what())?)),
            4 => Value::U32(u32::from_le_bytes(self.array(&what())?)),
            5 => Value::I32(i32::from_le_bytes(self.array(&what())?)),
            6 => Value::F32(f32::from_le_bytes(self.array(&what())?)),
            7 => match self.array::<1>(&what())?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(format!("{}: bool byte {b} is neither 0 nor 1", what())),
            },
            8 => Value::String(self.string(&what())?),
            9 => {
                if depth >= MAX_DEPTH {
                    return Err(format!("{}: arrays nested deeper than {MAX_DEPTH}", what()));
                }
                let elem = self.u32(&what())?;
                let min = match elem {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    8..=12 => 8,
                    other => return Err(format!("{}: unknown array element type {other}", what())),
                };
                let n = self.count(&format!("element count of {key:?}"), min)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(elem, key, depth + 1)?);
                }
                Value::Array(items)
            }
            10 => Value::U64(self.u64(&what())?),
            11 => Value::I64(i64::from_le_bytes(self.array(&what())?)),
            12 => Value::F64(f64::from_le_bytes(self.array(&what())?)),
            other => return Err(format!("{}: unknown value type {other}", what())),
        })
    }
}

/// Parses the header, metadata and tensor infos of a whole GGUF file and checks every
/// tensor's bytes against the file. `Err` is a one-line reason (without the file name).
pub fn parse(bytes: &[u8]) -> Result<Parsed, String> {
    let mut c = Cursor { bytes, at: 0 };
    let magic = c.array::<4>("magic")?;
    if magic != MAGIC {
        return Err(format!("not a GGUF file (magic {magic:02x?}, expected \"GGUF\")"));
    }
    let version = c.u32("version")?;
    match version {
        2 | 3 => {}
        1 => return Err("GGUF version 1 is not supported (32-bit counts; re-convert with a current llama.cpp)".into()),
        v if (1..=3).contains(&v.swap_bytes()) => {
            return Err(format!("big-endian GGUF (version {}) is not supported", v.swap_bytes()));
        }
        v => return Err(format!("unsupported GGUF version {v} (supported: 2, 3)")),
    }
    // A tensor info takes at least 8 + 4 + 4 + 8 bytes, a key-value pair at least 8 + 4 + 1.
    let n_tensors = c.count("tensor count", 24)?;
    let n_kv = c.count("metadata count", 13)?;
    let mut metadata = BTreeMap::new();
    for _ in 0..n_kv {
        let key = c.string("metadata key")?;
        let ty = c.u32(&format!("type of {key:?}"))?;
        let value = c.value(ty, &key, 0)?;
        if metadata.insert(key.clone(), value).is_some() {
            return Err(format!("metadata key {key:?} occurs twice"));
        }
    }
    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(Value::U32(a)) if *a > 0 && a.is_power_of_two() => u64::from(*a),
        Some(v) => return Err(format!("general.alignment must be a power-of-two uint32, got {} {v}", v.type_name())),
    };

    let mut declared = Vec::with_capacity(n_tensors);
    for _ in 0..n_tensors {
        let name = c.string("tensor name")?;
        let n_dims = c.u32(&format!("dimension count of {name:?}"))?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(format!("tensor {name:?}: {n_dims} dimensions (ggml tensors have 1 to {MAX_DIMS})"));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            let d = c.u64(&format!("dimensions of {name:?}"))?;
            dims.push(usize::try_from(d).map_err(|_| format!("tensor {name:?}: dimension {d} is too large"))?);
        }
        // Every consumer multiplies dims in its own order (ggml's, the reversed row-major
        // shape, slabs of either): with no zero dim and the whole product in an i64, none of
        // those partial products can overflow, and no row is empty.
        if dims.contains(&0) {
            return Err(format!("tensor {name:?}: dimensions {dims:?} include an empty one"));
        }
        if dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).is_none_or(|n| n > i64::MAX as usize) {
            return Err(format!("tensor {name:?}: dimensions {dims:?} overflow (more than 2^63 elements)"));
        }
        let type_id = c.u32(&format!("type of {name:?}"))?;
        let ty = GgmlType::from_id(type_id).map_err(|known| match known {
            Some(t) => format!("tensor {name:?}: ggml type {t} is not supported (supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K…Q6_K)"),
            None => format!("tensor {name:?}: unknown ggml type id {type_id}"),
        })?;
        let offset = c.u64(&format!("offset of {name:?}"))?;
        declared.push((name, ty, dims, offset));
    }
    let data_start = (c.at as u64).div_ceil(alignment) * alignment;
    if data_start > bytes.len() as u64 && !declared.is_empty() {
        return Err(format!(
            "truncated: the data section starts at byte {data_start} (alignment {alignment}) but the file has {} bytes",
            bytes.len()
        ));
    }
    let data_len = (bytes.len() as u64).saturating_sub(data_start);

    let mut tensors = Vec::with_capacity(declared.len());
    let mut seen = std::collections::HashSet::with_capacity(declared.len());
    for (name, ty, dims, offset) in declared {
        if !seen.insert(name.clone()) {
            return Err(format!("tensor {name:?} is declared twice"));
        }
        if !offset.is_multiple_of(alignment) {
            return Err(format!("tensor {name:?}: offset {offset} is not a multiple of the alignment {alignment}"));
        }
        let rows = dims[1..].iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        let row = ty.row_bytes(dims[0]).ok_or_else(|| {
            format!("tensor {name:?}: row length {} is not a multiple of {ty}'s block of {}", dims[0], ty.block_size())
        })?;
        let len = rows
            .and_then(|r| r.checked_mul(row))
            .ok_or_else(|| format!("tensor {name:?}: dimensions {dims:?} overflow"))?;
        if offset.checked_add(len as u64).is_none_or(|end| end > data_len) {
            return Err(format!(
                "tensor {name:?}: bytes [{offset}, {}) of the data section run past its {data_len} bytes (file truncated?)",
                offset.saturating_add(len as u64)
            ));
        }
        tensors.push(RawTensor { name, ty, dims, start: (data_start + offset) as usize, len });
    }
    let mut by_start: Vec<&RawTensor> = tensors.iter().filter(|t| t.len > 0).collect();
    by_start.sort_by_key(|t| t.start);
    for pair in by_start.windows(2) {
        if pair[0].start + pair[0].len > pair[1].start {
            return Err(format!("tensors {:?} and {:?} overlap in the data section", pair[0].name, pair[1].name));
        }
    }
    Ok(Parsed { version, metadata, tensors, data_start: data_start as usize })
}
