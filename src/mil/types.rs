//! MIL value types and values: constructors for the emitter and a decoded view for the
//! reader and the text printer.

use super::proto::dimension::{ConstantDimension, Dimension as Dim, UnknownDimension};
use super::proto::value::{BlobFileValue, ImmediateValue, Value as ValueKind, immediate_value};
use super::proto::value_type::Type as VT;
use super::proto::{DataType, Dimension, StateType, TensorType, Value, ValueType};
use super::tensor_data::ConstTensor;

/// The `fileName` every blob reference uses (the single `weights/weight.bin`).
pub const WEIGHT_FILE_NAME: &str = "@model_path/weights/weight.bin";

/// A decoded tensor type: dtype and dimensions (`None` = unknown/symbolic).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MilTensorType {
    pub dtype: DataType,
    pub dims: Vec<Option<usize>>,
}

impl MilTensorType {
    /// The static shape, if every dimension is known.
    pub fn static_shape(&self) -> Option<Vec<usize>> {
        self.dims.iter().copied().collect()
    }
}

/// A decoded value type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MilType {
    Tensor(MilTensorType),
    State(MilTensorType),
    /// Lists, tuples, dictionaries: named by kind only.
    Other(&'static str),
}

fn dimension(d: Option<usize>) -> Dimension {
    Dimension {
        dimension: Some(match d {
            Some(size) => Dim::Constant(ConstantDimension { size: size as u64 }),
            None => Dim::Unknown(UnknownDimension { variadic: false }),
        }),
    }
}

/// A tensor type; a scalar is rank 0 with no dimensions.
pub fn tensor_type(dtype: DataType, dims: &[Option<usize>]) -> ValueType {
    ValueType {
        r#type: Some(VT::TensorType(TensorType {
            data_type: dtype as i32,
            rank: dims.len() as i64,
            dimensions: dims.iter().map(|&d| dimension(d)).collect(),
            attributes: Default::default(),
        })),
    }
}

/// A fully static tensor type.
pub fn static_tensor_type(dtype: DataType, shape: &[usize]) -> ValueType {
    let dims: Vec<Option<usize>> = shape.iter().map(|&d| Some(d)).collect();
    tensor_type(dtype, &dims)
}

/// A state wrapping a static tensor type.
pub fn state_type(dtype: DataType, shape: &[usize]) -> ValueType {
    ValueType {
        r#type: Some(VT::StateType(Box::new(StateType {
            wrapped_type: Some(Box::new(static_tensor_type(dtype, shape))),
        }))),
    }
}

fn decode_tensor(t: &TensorType) -> Result<MilTensorType, String> {
    let dtype = DataType::try_from(t.data_type).map_err(|_| format!("unknown dtype code {}", t.data_type))?;
    if t.rank < 0 || t.rank as usize != t.dimensions.len() {
        return Err(format!("rank {} does not match {} dimensions", t.rank, t.dimensions.len()));
    }
    let dims = t
        .dimensions
        .iter()
        .map(|d| match &d.dimension {
            Some(Dim::Constant(c)) => usize::try_from(c.size).map(Some).map_err(|_| "dimension too large".to_string()),
            Some(Dim::Unknown(u)) if !u.variadic => Ok(None),
            Some(Dim::Unknown(_)) => Err("variadic rank is not supported".to_string()),
            None => Err("dimension without size".to_string()),
        })
        .collect::<Result<_, _>>()?;
    Ok(MilTensorType { dtype, dims })
}

/// Decodes a value type.
pub fn decode_type(t: &ValueType) -> Result<MilType, String> {
    match t.r#type.as_ref().ok_or("value type without a kind")? {
        VT::TensorType(t) => decode_tensor(t).map(MilType::Tensor),
        VT::StateType(s) => match s.wrapped_type.as_deref().and_then(|w| w.r#type.as_ref()) {
            Some(VT::TensorType(t)) => decode_tensor(t).map(MilType::State),
            _ => Err("a state must wrap a tensor type".into()),
        },
        VT::ListType(_) => Ok(MilType::Other("list")),
        VT::TupleType(_) => Ok(MilType::Other("tuple")),
        VT::DictionaryType(_) => Ok(MilType::Other("dict")),
    }
}

/// An immediate value.
pub fn immediate_value(c: &ConstTensor) -> Result<Value, String> {
    Ok(Value {
        doc_string: String::new(),
        r#type: Some(static_tensor_type(c.dtype, &c.shape)),
        value: Some(ValueKind::ImmediateValue(ImmediateValue {
            value: Some(immediate_value::Value::Tensor(c.to_tensor_value()?)),
        })),
    })
}

/// A reference to the blob whose metadata record is at `offset` in `weight.bin`.
pub fn blob_value(dtype: DataType, shape: &[usize], offset: u64) -> Value {
    Value {
        doc_string: String::new(),
        r#type: Some(static_tensor_type(dtype, shape)),
        value: Some(ValueKind::BlobFileValue(BlobFileValue { file_name: WEIGHT_FILE_NAME.to_string(), offset })),
    }
}

/// The `name` attribute value of an operation.
pub fn name_attr(name: &str) -> Value {
    immediate_value(&ConstTensor::scalar_str(name)).expect("strings always encode")
}
