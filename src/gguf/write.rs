//! Writing GGUF files (version 3): synthetic checkpoints (`anemllc synth --gguf`), tests and
//! fuzz seeds. The reader never depends on this writer being right: the test files made by
//! the `gguf` Python package are the reference.

use super::parse::DEFAULT_ALIGNMENT;
use super::types::GgmlType;
use super::value::Value;

/// A GGUF file under construction: metadata in insertion order, then tensors.
#[derive(Default)]
pub struct GgufBuilder {
    metadata: Vec<(String, Value)>,
    tensors: Vec<(String, GgmlType, Vec<usize>, Vec<u8>)>,
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn type_id(v: &Value) -> u32 {
    match v {
        Value::U8(_) => 0,
        Value::I8(_) => 1,
        Value::U16(_) => 2,
        Value::I16(_) => 3,
        Value::U32(_) => 4,
        Value::I32(_) => 5,
        Value::F32(_) => 6,
        Value::Bool(_) => 7,
        Value::String(_) => 8,
        Value::Array(_) => 9,
        Value::U64(_) => 10,
        Value::I64(_) => 11,
        Value::F64(_) => 12,
    }
}

fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => out.push(*x),
        Value::I8(x) => out.push(*x as u8),
        Value::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => out.push(u8::from(*x)),
        Value::String(s) => put_string(out, s),
        Value::Array(items) => {
            // An empty array is written as an array of uint8.
            let elem = items.first().map_or(0, type_id);
            out.extend_from_slice(&elem.to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for item in items {
                put_value(out, item);
            }
        }
        Value::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
    }
}

impl GgufBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a metadata entry.
    pub fn meta(&mut self, key: &str, value: Value) -> &mut Self {
        self.metadata.push((key.to_string(), value));
        self
    }

    /// Adds a tensor of ggml dims `dims` (`dims[0]` fastest) whose encoded bytes are `data`.
    pub fn tensor(&mut self, name: &str, ty: GgmlType, dims: Vec<usize>, data: Vec<u8>) -> &mut Self {
        self.tensors.push((name.to_string(), ty, dims, data));
        self
    }

    /// The header (metadata of this builder, then the infos of `tensors` — name, ggml type,
    /// ggml dims, data length in bytes — with offsets packed in order at the default
    /// alignment), padded to the start of the data section. The builder's own tensors are
    /// not included.
    pub fn header_bytes<'a>(
        &self,
        tensors: impl IntoIterator<Item = (&'a str, GgmlType, Vec<usize>, usize)>,
    ) -> Vec<u8> {
        let align = DEFAULT_ALIGNMENT as usize;
        let tensors: Vec<_> = tensors.into_iter().collect();
        let mut out = Vec::new();
        out.extend_from_slice(b"GGUF");
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (k, v) in &self.metadata {
            put_string(&mut out, k);
            out.extend_from_slice(&type_id(v).to_le_bytes());
            put_value(&mut out, v);
        }
        let mut offset = 0usize;
        for (name, ty, dims, len) in &tensors {
            put_string(&mut out, name);
            out.extend_from_slice(&(dims.len() as u32).to_le_bytes());
            for &d in dims {
                out.extend_from_slice(&(d as u64).to_le_bytes());
            }
            out.extend_from_slice(&ty.id().to_le_bytes());
            out.extend_from_slice(&(offset as u64).to_le_bytes());
            offset += len.div_ceil(align) * align;
        }
        out.resize(out.len().div_ceil(align) * align, 0);
        out
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let align = DEFAULT_ALIGNMENT as usize;
        let mut out = self
            .header_bytes(self.tensors.iter().map(|(n, ty, dims, data)| (n.as_str(), *ty, dims.clone(), data.len())));
        for (_, _, _, data) in &self.tensors {
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(align) * align, 0);
        }
        out
    }
}

/// Q8_0 encoding of `values` (length a multiple of 32), as ggml's reference quantiser
/// does it: d = max|x| / 127 stored as fp16, q = round(x / d) (away from zero).
pub fn quantize_q8_0(values: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() / 32 * 34);
    for block in values.chunks(32) {
        let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&half::f16::from_f32(d).to_le_bytes());
        out.extend(block.iter().map(|&x| ((x * id).round() as i32).clamp(-127, 127) as i8 as u8));
    }
    out
}

/// F16 encoding of `values` (round to nearest even).
pub fn encode_f16(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect()
}
