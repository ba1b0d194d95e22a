//! Dtype correspondences between the IR, MIL (`DataType`), blob storage (`BlobDType`) and
//! Core ML feature descriptions (`ArrayDataType`), plus MIL text spellings.

use super::blob::BlobDType;
use super::proto::{ArrayDataType, DataType};
use crate::ir::DType;

/// The MIL dtype of an IR dtype.
pub fn mil_dtype(d: DType) -> DataType {
    match d {
        DType::F32 => DataType::Float32,
        DType::F16 => DataType::Float16,
        DType::BF16 => DataType::Bfloat16,
        DType::I32 => DataType::Int32,
        DType::I64 => DataType::Int64,
        DType::Bool => DataType::Bool,
        DType::U1 => DataType::Uint1,
        DType::U2 => DataType::Uint2,
        DType::U3 => DataType::Uint3,
        DType::U4 => DataType::Uint4,
        DType::U6 => DataType::Uint6,
        DType::U8 => DataType::Uint8,
    }
}

/// The IR dtype of a MIL dtype, if the IR has one.
pub fn ir_dtype(d: DataType) -> Option<DType> {
    Some(match d {
        DataType::Float32 => DType::F32,
        DataType::Float16 => DType::F16,
        DataType::Bfloat16 => DType::BF16,
        DataType::Int32 => DType::I32,
        DataType::Int64 => DType::I64,
        DataType::Bool => DType::Bool,
        DataType::Uint1 => DType::U1,
        DataType::Uint2 => DType::U2,
        DataType::Uint3 => DType::U3,
        DataType::Uint4 => DType::U4,
        DataType::Uint6 => DType::U6,
        DataType::Uint8 => DType::U8,
        _ => return None,
    })
}

/// The blob storage code of a MIL dtype, if values of that dtype can live in `weight.bin`.
pub fn blob_dtype(d: DataType) -> Option<BlobDType> {
    Some(match d {
        DataType::Float16 => BlobDType::Float16,
        DataType::Float32 => BlobDType::Float32,
        DataType::Bfloat16 => BlobDType::BFloat16,
        DataType::Uint8 => BlobDType::UInt8,
        DataType::Int8 => BlobDType::Int8,
        DataType::Int16 => BlobDType::Int16,
        DataType::Uint16 => BlobDType::UInt16,
        DataType::Int32 => BlobDType::Int32,
        DataType::Uint32 => BlobDType::UInt32,
        DataType::Int4 => BlobDType::Int4,
        DataType::Uint1 => BlobDType::UInt1,
        DataType::Uint2 => BlobDType::UInt2,
        DataType::Uint3 => BlobDType::UInt3,
        DataType::Uint4 => BlobDType::UInt4,
        DataType::Uint6 => BlobDType::UInt6,
        DataType::Float8e4m3fn => BlobDType::Float8E4M3FN,
        DataType::Float8e5m2 => BlobDType::Float8E5M2,
        _ => return None,
    })
}

/// The feature-description dtype for a model input/output of this IR dtype (ML programs
/// accept fp32, fp16 and int32 I/O).
pub fn array_dtype(d: DType) -> Option<ArrayDataType> {
    match d {
        DType::F32 => Some(ArrayDataType::Float32),
        DType::F16 => Some(ArrayDataType::Float16),
        DType::I32 => Some(ArrayDataType::Int32),
        _ => None,
    }
}

/// Bits per element of a MIL dtype (`None` for strings and unused).
pub fn mil_bits(d: DataType) -> Option<u32> {
    Some(match d {
        DataType::Bool | DataType::Int8 | DataType::Uint8 | DataType::Float8e4m3fn | DataType::Float8e5m2 => 8,
        DataType::Float16 | DataType::Bfloat16 | DataType::Int16 | DataType::Uint16 => 16,
        DataType::Float32 | DataType::Int32 | DataType::Uint32 => 32,
        DataType::Float64 | DataType::Int64 | DataType::Uint64 => 64,
        DataType::Int4 | DataType::Uint4 => 4,
        DataType::Uint1 => 1,
        DataType::Uint2 => 2,
        DataType::Uint3 => 3,
        DataType::Uint6 => 6,
        DataType::String | DataType::UnusedType => return None,
    })
}

/// The MIL text spelling (`fp16`, `int32`, `uint4`, `string`, …).
pub fn mil_text_name(d: DataType) -> &'static str {
    match d {
        DataType::UnusedType => "unused",
        DataType::Bool => "bool",
        DataType::String => "string",
        DataType::Float16 => "fp16",
        DataType::Float32 => "fp32",
        DataType::Float64 => "fp64",
        DataType::Bfloat16 => "bf16",
        DataType::Int8 => "int8",
        DataType::Int16 => "int16",
        DataType::Int32 => "int32",
        DataType::Int64 => "int64",
        DataType::Int4 => "int4",
        DataType::Uint8 => "uint8",
        DataType::Uint16 => "uint16",
        DataType::Uint32 => "uint32",
        DataType::Uint64 => "uint64",
        DataType::Uint4 => "uint4",
        DataType::Uint2 => "uint2",
        DataType::Uint1 => "uint1",
        DataType::Uint6 => "uint6",
        DataType::Uint3 => "uint3",
        DataType::Float8e4m3fn => "fp8e4m3fn",
        DataType::Float8e5m2 => "fp8e5m2",
    }
}

/// The MIL dtype named by a `cast` op's `dtype` string.
pub fn cast_dtype_from_str(s: &str) -> Option<DataType> {
    Some(match s {
        "fp16" => DataType::Float16,
        "fp32" => DataType::Float32,
        "fp64" => DataType::Float64,
        "int8" => DataType::Int8,
        "uint8" => DataType::Uint8,
        "int16" => DataType::Int16,
        "uint16" => DataType::Uint16,
        "int32" => DataType::Int32,
        "int64" => DataType::Int64,
        "bool" => DataType::Bool,
        _ => return None,
    })
}
