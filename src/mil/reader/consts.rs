//! MIL constants as the reader sees them: typed, with their values either inline or in
//! `weight.bin`, decoded lazily.

use crate::mil::proto::value::Value as VK;
use crate::mil::proto::value::immediate_value::Value as IV;
use crate::mil::proto::{DataType, Value};
use crate::mil::tensor_data::ConstTensor;
use crate::mil::types::{MilType, decode_type};

use super::source::PackageTensors;

/// Where a constant's values are.
#[derive(Clone, Debug)]
pub(crate) enum ConstSource {
    Immediate(ConstTensor),
    /// Metadata offset in `weight.bin`.
    Blob {
        offset: u64,
    },
}

/// A constant: the MIL name it was bound to, its static type and its values.
#[derive(Clone, Debug)]
pub(crate) struct MilConst {
    pub name: String,
    pub dtype: DataType,
    pub shape: Vec<usize>,
    pub source: ConstSource,
}

/// Decodes a `const` op's `val` (or an inline binding value) named `name`.
pub(crate) fn decode_value(name: &str, v: &Value) -> Result<MilConst, String> {
    let ty = decode_type(v.r#type.as_ref().ok_or("value without a type")?)?;
    let MilType::Tensor(t) = ty else { return Err(format!("constant of type {ty:?} is not supported")) };
    let shape = t.static_shape().ok_or("constant with unknown dimensions")?;
    if crate::mil::tensor_data::checked_numel(&shape).is_none() {
        return Err(format!("constant shape {shape:?} is too large"));
    }
    let source = match v.value.as_ref().ok_or("value without data")? {
        VK::ImmediateValue(iv) => match iv.value.as_ref() {
            Some(IV::Tensor(tv)) => ConstSource::Immediate(ConstTensor::from_tensor_value(t.dtype, shape.clone(), tv)?),
            _ => return Err("only tensor immediates are supported".into()),
        },
        VK::BlobFileValue(b) => {
            if b.file_name.rsplit('/').next() != Some("weight.bin") {
                return Err(format!("blob file {:?}: only weights/weight.bin is supported", b.file_name));
            }
            ConstSource::Blob { offset: b.offset }
        }
    };
    Ok(MilConst { name: name.to_string(), dtype: t.dtype, shape, source })
}

impl MilConst {
    /// The values (reading the blob if needed).
    pub(crate) fn tensor(&self, tensors: &PackageTensors) -> Result<ConstTensor, String> {
        match &self.source {
            ConstSource::Immediate(c) => Ok(c.clone()),
            ConstSource::Blob { offset } => {
                let bytes = tensors.blob_bytes(*offset, self.dtype, &self.shape)?;
                ConstTensor::from_bytes(self.dtype, self.shape.clone(), bytes)
            }
        }
    }

    pub(crate) fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// The f64 closest to an fp32/fp16 value's shortest decimal spelling: `1e-5` stored as fp32
/// reads back as exactly `1e-5`, so IR attributes (eps) round-trip bit-exactly.
pub(crate) fn float_attr(dtype: DataType, v: f64) -> f64 {
    match dtype {
        DataType::Float32 | DataType::Float16 => {
            let s = format!("{}", v as f32);
            s.parse::<f64>().unwrap_or(v)
        }
        _ => v,
    }
}
