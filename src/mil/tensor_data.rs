//! Constant tensor data in MIL form: immediate `TensorValue`s, raw little-endian payloads
//! (immediate `bytes` and blob payloads) and the element conversions between them.
//!
//! Field choice for immediates follows coremltools: fp32 → `floats`, fp64 → `doubles`,
//! bool → `bools`, string → `strings`, int64/uint64 → `longInts`, int32/int16/uint16 →
//! `ints`, everything else (fp16, bf16, int8, uint8, uint32, int4, uint1…uint6) → `bytes`,
//! sub-byte types packed LSB-first. Decoding accepts any field that can hold the dtype.

use half::{bf16, f16};

use super::blob::pack::{pack_bits, unpack_bits};
use super::dtype::mil_bits;
use super::proto::tensor_value::{
    RepeatedBools, RepeatedBytes, RepeatedDoubles, RepeatedFloats, RepeatedInts, RepeatedLongInts, RepeatedStrings,
    Value as TV,
};
use super::proto::{DataType, TensorValue};
use crate::interp::{Data, Tensor};

/// The element count of `shape`, or `None` for a shape no tensor can have (hostile
/// packages): the product of its non-zero dims must fit an `i64` (the IR's sizes are `i64`;
/// ndarray applies the same rule), so a zero dim cannot hide a huge one.
pub fn checked_numel(shape: &[usize]) -> Option<usize> {
    let nonzero = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d.max(1)))?;
    (nonzero <= i64::MAX as usize).then_some(if shape.contains(&0) { 0 } else { nonzero })
}

/// Element values: floats as f64 (exact for fp16/bf16/fp32), integers and bools as i64.
#[derive(Clone, Debug, PartialEq)]
pub enum Elements {
    Float(Vec<f64>),
    Int(Vec<i64>),
    Str(Vec<String>),
}

impl Elements {
    pub fn len(&self) -> usize {
        match self {
            Elements::Float(v) => v.len(),
            Elements::Int(v) => v.len(),
            Elements::Str(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A typed constant: dtype, static shape and row-major elements (`numel` of them).
#[derive(Clone, Debug, PartialEq)]
pub struct ConstTensor {
    pub dtype: DataType,
    pub shape: Vec<usize>,
    pub elements: Elements,
}

fn is_float(d: DataType) -> bool {
    matches!(d, DataType::Float16 | DataType::Float32 | DataType::Float64 | DataType::Bfloat16)
}

fn is_signed_sub_byte(d: DataType) -> bool {
    d == DataType::Int4
}

impl ConstTensor {
    /// Builds a constant, checking the element count and kind against the dtype.
    pub fn new(dtype: DataType, shape: Vec<usize>, elements: Elements) -> Result<ConstTensor, String> {
        let n = checked_numel(&shape).ok_or_else(|| format!("shape {shape:?} is too large"))?;
        if elements.len() != n {
            return Err(format!("{shape:?} needs {n} elements, got {}", elements.len()));
        }
        let ok = match &elements {
            Elements::Float(_) => is_float(dtype),
            Elements::Int(_) => !is_float(dtype) && dtype != DataType::String,
            Elements::Str(_) => dtype == DataType::String,
        };
        if !ok {
            return Err(format!("element kind does not match dtype {dtype:?}"));
        }
        Ok(ConstTensor { dtype, shape, elements })
    }

    pub fn scalar_str(s: &str) -> ConstTensor {
        ConstTensor { dtype: DataType::String, shape: vec![], elements: Elements::Str(vec![s.to_string()]) }
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Element `i` as f64 (`None` for strings).
    pub fn get_f64(&self, i: usize) -> Option<f64> {
        match &self.elements {
            Elements::Float(v) => v.get(i).copied(),
            Elements::Int(v) => v.get(i).map(|&x| x as f64),
            Elements::Str(_) => None,
        }
    }

    /// All elements as integers (floats must be integral).
    pub fn ints(&self) -> Option<Vec<i64>> {
        match &self.elements {
            Elements::Int(v) => Some(v.clone()),
            Elements::Float(v) => v.iter().map(|&x| (x.fract() == 0.0).then_some(x as i64)).collect(),
            Elements::Str(_) => None,
        }
    }

    /// The immediate `TensorValue` (coremltools' field choice).
    pub fn to_tensor_value(&self) -> Result<TensorValue, String> {
        let value = match (&self.elements, self.dtype) {
            (Elements::Float(v), DataType::Float32) => {
                TV::Floats(RepeatedFloats { values: v.iter().map(|&x| x as f32).collect() })
            }
            (Elements::Float(v), DataType::Float64) => TV::Doubles(RepeatedDoubles { values: v.clone() }),
            (Elements::Int(v), DataType::Bool) => {
                TV::Bools(RepeatedBools { values: v.iter().map(|&x| x != 0).collect() })
            }
            (Elements::Int(v), DataType::Int64 | DataType::Uint64) => {
                TV::LongInts(RepeatedLongInts { values: v.clone() })
            }
            (Elements::Int(v), DataType::Int32 | DataType::Int16 | DataType::Uint16) => {
                TV::Ints(RepeatedInts { values: v.iter().map(|&x| x as i32).collect() })
            }
            (Elements::Str(v), DataType::String) => TV::Strings(RepeatedStrings { values: v.clone() }),
            _ => TV::Bytes(RepeatedBytes { values: self.to_bytes()? }),
        };
        Ok(TensorValue { value: Some(value) })
    }

    /// Decodes an immediate value of the given dtype and shape.
    pub fn from_tensor_value(dtype: DataType, shape: Vec<usize>, tv: &TensorValue) -> Result<ConstTensor, String> {
        let elements = match tv.value.as_ref().ok_or("tensor value without data")? {
            TV::Floats(f) => Elements::Float(f.values.iter().map(|&x| f64::from(x)).collect()),
            TV::Doubles(f) => Elements::Float(f.values.clone()),
            TV::Ints(v) => Elements::Int(v.values.iter().map(|&x| i64::from(x)).collect()),
            TV::LongInts(v) => Elements::Int(v.values.clone()),
            TV::Bools(v) => Elements::Int(v.values.iter().map(|&b| i64::from(b)).collect()),
            TV::Strings(v) => Elements::Str(v.values.clone()),
            TV::Bytes(b) => return ConstTensor::from_bytes(dtype, shape, &b.values),
        };
        let elements = match (elements, is_float(dtype)) {
            (Elements::Int(v), true) => Elements::Float(v.into_iter().map(|x| x as f64).collect()),
            (Elements::Float(v), false) if dtype != DataType::String => {
                Elements::Int(v.into_iter().map(|x| x as i64).collect())
            }
            (e, _) => e,
        };
        // A single value for a non-scalar shape is not a splat in MIL; reject it like
        // coremltools' reshape would.
        ConstTensor::new(dtype, shape, elements)
    }

    /// The raw little-endian payload (sub-byte types packed LSB-first).
    pub fn to_bytes(&self) -> Result<Vec<u8>, String> {
        let bits = mil_bits(self.dtype).ok_or_else(|| format!("{:?} has no byte encoding", self.dtype))?;
        match &self.elements {
            Elements::Float(v) => Ok(match self.dtype {
                DataType::Float16 => v.iter().flat_map(|&x| f16::from_f32(x as f32).to_bits().to_le_bytes()).collect(),
                DataType::Bfloat16 => {
                    v.iter().flat_map(|&x| bf16::from_f32(x as f32).to_bits().to_le_bytes()).collect()
                }
                DataType::Float32 => v.iter().flat_map(|&x| (x as f32).to_le_bytes()).collect(),
                DataType::Float64 => v.iter().flat_map(|&x| x.to_le_bytes()).collect(),
                other => return Err(format!("float elements for {other:?}")),
            }),
            Elements::Int(v) if bits < 8 => Ok(pack_bits(v.iter().map(|&x| x as u8), bits)),
            Elements::Int(v) => {
                let width = (bits / 8) as usize;
                Ok(v.iter().flat_map(|&x| x.to_le_bytes().into_iter().take(width)).collect())
            }
            Elements::Str(_) => Err("strings have no byte encoding".into()),
        }
    }

    /// Decodes a raw payload of `numel(shape)` elements.
    pub fn from_bytes(dtype: DataType, shape: Vec<usize>, bytes: &[u8]) -> Result<ConstTensor, String> {
        let n = checked_numel(&shape).ok_or_else(|| format!("shape {shape:?} is too large"))?;
        let elements = decode_elements(dtype, bytes, n)?;
        ConstTensor::new(dtype, shape, elements)
    }
}

/// Decodes `n` elements of `dtype` from a raw payload, which must be exactly
/// `ceil(n · bits / 8)` bytes long.
pub fn decode_elements(dtype: DataType, bytes: &[u8], n: usize) -> Result<Elements, String> {
    let bits = mil_bits(dtype).ok_or_else(|| format!("{dtype:?} has no byte encoding"))?;
    let expected = (n as u64).checked_mul(u64::from(bits)).map(|b| b.div_ceil(8));
    if Some(bytes.len() as u64) != expected {
        return Err(format!("{n} elements of {dtype:?} do not fit {} bytes", bytes.len()));
    }
    if bits < 8 {
        let raw = unpack_bits(bytes, bits, n).ok_or("payload too short")?;
        let signed = is_signed_sub_byte(dtype);
        return Ok(Elements::Int(
            raw.into_iter().map(|x| if signed && x & 0x8 != 0 { i64::from(x) - 16 } else { i64::from(x) }).collect(),
        ));
    }
    let width = (bits / 8) as usize;
    let chunks = bytes.chunks_exact(width);
    Ok(match dtype {
        DataType::Float16 => {
            Elements::Float(chunks.map(|c| f64::from(f16::from_bits(u16::from_le_bytes([c[0], c[1]])))).collect())
        }
        DataType::Bfloat16 => {
            Elements::Float(chunks.map(|c| f64::from(bf16::from_bits(u16::from_le_bytes([c[0], c[1]])))).collect())
        }
        DataType::Float32 => {
            Elements::Float(chunks.map(|c| f64::from(f32::from_le_bytes(c.try_into().expect("4")))).collect())
        }
        DataType::Float64 => Elements::Float(chunks.map(|c| f64::from_le_bytes(c.try_into().expect("8"))).collect()),
        DataType::Int8 => Elements::Int(chunks.map(|c| i64::from(c[0] as i8)).collect()),
        DataType::Uint8 | DataType::Bool => Elements::Int(chunks.map(|c| i64::from(c[0])).collect()),
        DataType::Int16 => Elements::Int(chunks.map(|c| i64::from(i16::from_le_bytes([c[0], c[1]]))).collect()),
        DataType::Uint16 => Elements::Int(chunks.map(|c| i64::from(u16::from_le_bytes([c[0], c[1]]))).collect()),
        DataType::Int32 => {
            Elements::Int(chunks.map(|c| i64::from(i32::from_le_bytes(c.try_into().expect("4")))).collect())
        }
        DataType::Uint32 => {
            Elements::Int(chunks.map(|c| i64::from(u32::from_le_bytes(c.try_into().expect("4")))).collect())
        }
        DataType::Int64 | DataType::Uint64 => {
            Elements::Int(chunks.map(|c| i64::from_le_bytes(c.try_into().expect("8"))).collect())
        }
        other => return Err(format!("cannot decode {other:?} payloads")),
    })
}

/// Decodes `n` elements of `dtype` from a raw payload straight to f32 (floats exactly,
/// integers converted with `as`), without an f64 copy for the float types.
pub fn decode_f32(dtype: DataType, bytes: &[u8], n: usize) -> Result<Vec<f32>, String> {
    let expect = |w: usize| {
        if bytes.len() == n * w {
            Ok(())
        } else {
            Err(format!("{n} elements of {dtype:?} need {} bytes, got {}", n * w, bytes.len()))
        }
    };
    match dtype {
        DataType::Float16 => {
            expect(2)?;
            Ok(bytes.chunks_exact(2).map(|c| f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32()).collect())
        }
        DataType::Float32 => {
            expect(4)?;
            Ok(bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect())
        }
        _ => Ok(match decode_elements(dtype, bytes, n)? {
            Elements::Float(v) => v.into_iter().map(|x| x as f32).collect(),
            Elements::Int(v) => v.into_iter().map(|x| x as f32).collect(),
            Elements::Str(_) => return Err("strings are not numbers".into()),
        }),
    }
}

/// The payload of an interpreter tensor stored as MIL `dtype` (fp16/fp32/bf16 from float
/// tensors; integer and sub-byte types from integer tensors). Streams straight from the
/// tensor's storage, without an f64 copy.
pub fn tensor_payload(t: &Tensor, dtype: DataType) -> Result<Vec<u8>, String> {
    let bits = mil_bits(dtype).ok_or_else(|| format!("{dtype:?} has no byte encoding"))?;
    match (t.data(), dtype) {
        (Data::Float(a), DataType::Float16) => {
            Ok(a.iter().flat_map(|&x| f16::from_f32(x).to_bits().to_le_bytes()).collect())
        }
        (Data::Float(a), DataType::Bfloat16) => {
            Ok(a.iter().flat_map(|&x| bf16::from_f32(x).to_bits().to_le_bytes()).collect())
        }
        (Data::Float(a), DataType::Float32) => Ok(a.iter().flat_map(|&x| x.to_le_bytes()).collect()),
        (Data::Int(a), _) if bits < 8 => Ok(pack_bits(a.iter().map(|&x| x as u8), bits)),
        (Data::Int(a), _) if !is_float(dtype) => {
            let width = (bits / 8) as usize;
            Ok(a.iter().flat_map(|&x| x.to_le_bytes().into_iter().take(width)).collect())
        }
        _ => Err(format!("cannot store a {} tensor as {dtype:?}", t.dtype())),
    }
}

/// The elements of an interpreter tensor (for small immediates).
pub fn tensor_elements(t: &Tensor) -> Elements {
    match t.data() {
        Data::Float(a) => Elements::Float(a.iter().map(|&x| f64::from(x)).collect()),
        Data::Int(a) => Elements::Int(a.iter().copied().collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fp16_scalar_bytes_and_roundtrip() {
        let c = ConstTensor::new(DataType::Float16, vec![], Elements::Float(vec![4.0])).unwrap();
        assert_eq!(c.to_bytes().unwrap(), [0x00, 0x44]);
        let tv = c.to_tensor_value().unwrap();
        assert_eq!(ConstTensor::from_tensor_value(DataType::Float16, vec![], &tv).unwrap(), c);
    }

    #[test]
    fn int4_sign_extends() {
        let c = ConstTensor::new(DataType::Int4, vec![4], Elements::Int(vec![3, -3, -5, 6])).unwrap();
        let b = c.to_bytes().unwrap();
        assert_eq!(b, [0xd3, 0x6b]);
        assert_eq!(ConstTensor::from_bytes(DataType::Int4, vec![4], &b).unwrap(), c);
    }

    #[test]
    fn field_choice() {
        let i = ConstTensor::new(DataType::Int32, vec![2], Elements::Int(vec![1, -2])).unwrap();
        assert!(matches!(i.to_tensor_value().unwrap().value, Some(TV::Ints(_))));
        let u = ConstTensor::new(DataType::Uint8, vec![2], Elements::Int(vec![1, 200])).unwrap();
        assert!(matches!(u.to_tensor_value().unwrap().value, Some(TV::Bytes(_))));
        let s = ConstTensor::scalar_str("valid");
        assert!(matches!(s.to_tensor_value().unwrap().value, Some(TV::Strings(_))));
    }
}
