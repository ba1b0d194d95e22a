//! `CoreML.Specification.MILSpec` messages from `MIL.proto`: programs, functions, blocks,
//! operations, value types and values.

use std::collections::BTreeMap;

/// `Program`: `version` must be 1; functions keyed by name.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Program {
    #[prost(int64, tag = "1")]
    pub version: i64,
    #[prost(btree_map = "string, message", tag = "2")]
    pub functions: BTreeMap<String, Function>,
    #[prost(string, tag = "3")]
    pub doc_string: String,
    #[prost(btree_map = "string, message", tag = "4")]
    pub attributes: BTreeMap<String, Value>,
}

/// `Function`: inputs (tensors and states), an opset name and one block per opset.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Function {
    #[prost(message, repeated, tag = "1")]
    pub inputs: Vec<NamedValueType>,
    #[prost(string, tag = "2")]
    pub opset: String,
    #[prost(btree_map = "string, message", tag = "3")]
    pub block_specializations: BTreeMap<String, Block>,
    #[prost(btree_map = "string, message", tag = "4")]
    pub attributes: BTreeMap<String, Value>,
}

/// `Block`: operations in SSA order and the names of the values it returns.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Block {
    #[prost(message, repeated, tag = "1")]
    pub inputs: Vec<NamedValueType>,
    #[prost(string, repeated, tag = "2")]
    pub outputs: Vec<String>,
    #[prost(message, repeated, tag = "3")]
    pub operations: Vec<Operation>,
    #[prost(btree_map = "string, message", tag = "4")]
    pub attributes: BTreeMap<String, Value>,
}

/// `Argument`: one or more bindings (several for variadic parameters such as
/// `concat.values`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Argument {
    #[prost(message, repeated, tag = "1")]
    pub arguments: Vec<argument::Binding>,
}

pub mod argument {
    /// `Argument.Binding`: a reference to an earlier value by name, or an inline value.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Binding {
        #[prost(oneof = "binding::Binding", tags = "1, 2")]
        pub binding: Option<binding::Binding>,
    }

    pub mod binding {
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Binding {
            #[prost(string, tag = "1")]
            Name(String),
            #[prost(message, tag = "2")]
            Value(super::super::Value),
        }
    }
}

/// `Operation`: type, named inputs, typed outputs, nested blocks, attributes (`name`, and
/// `val` for `const`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Operation {
    #[prost(string, tag = "1")]
    pub r#type: String,
    #[prost(btree_map = "string, message", tag = "2")]
    pub inputs: BTreeMap<String, Argument>,
    #[prost(message, repeated, tag = "3")]
    pub outputs: Vec<NamedValueType>,
    #[prost(message, repeated, tag = "4")]
    pub blocks: Vec<Block>,
    #[prost(btree_map = "string, message", tag = "5")]
    pub attributes: BTreeMap<String, Value>,
}

/// `NamedValueType`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NamedValueType {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<ValueType>,
}

/// `ValueType`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ValueType {
    #[prost(oneof = "value_type::Type", tags = "1, 2, 3, 4, 5")]
    pub r#type: Option<value_type::Type>,
}

pub mod value_type {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Type {
        #[prost(message, tag = "1")]
        TensorType(super::TensorType),
        #[prost(message, tag = "2")]
        ListType(Box<super::ListType>),
        #[prost(message, tag = "3")]
        TupleType(super::TupleType),
        #[prost(message, tag = "4")]
        DictionaryType(Box<super::DictionaryType>),
        #[prost(message, tag = "5")]
        StateType(Box<super::StateType>),
    }
}

/// `TensorType`: a scalar is rank 0 with no dimensions.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorType {
    #[prost(enumeration = "DataType", tag = "1")]
    pub data_type: i32,
    #[prost(int64, tag = "2")]
    pub rank: i64,
    #[prost(message, repeated, tag = "3")]
    pub dimensions: Vec<Dimension>,
    #[prost(btree_map = "string, message", tag = "4")]
    pub attributes: BTreeMap<String, Value>,
}

/// `TupleType`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TupleType {
    #[prost(message, repeated, tag = "1")]
    pub types: Vec<ValueType>,
}

/// `ListType`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListType {
    #[prost(message, optional, boxed, tag = "1")]
    pub r#type: Option<Box<ValueType>>,
    #[prost(message, optional, tag = "2")]
    pub length: Option<Dimension>,
}

/// `DictionaryType`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DictionaryType {
    #[prost(message, optional, boxed, tag = "1")]
    pub key_type: Option<Box<ValueType>>,
    #[prost(message, optional, boxed, tag = "2")]
    pub value_type: Option<Box<ValueType>>,
}

/// `StateType`: a state wrapping a tensor type.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StateType {
    #[prost(message, optional, boxed, tag = "1")]
    pub wrapped_type: Option<Box<ValueType>>,
}

/// `Dimension`: a constant size or an unknown (symbolic) one.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Dimension {
    #[prost(oneof = "dimension::Dimension", tags = "1, 2")]
    pub dimension: Option<dimension::Dimension>,
}

pub mod dimension {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ConstantDimension {
        #[prost(uint64, tag = "1")]
        pub size: u64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct UnknownDimension {
        #[prost(bool, tag = "1")]
        pub variadic: bool,
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Dimension {
        #[prost(message, tag = "1")]
        Constant(ConstantDimension),
        #[prost(message, tag = "2")]
        Unknown(UnknownDimension),
    }
}

/// `Value`: a typed immediate value or a reference into a blob file.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Value {
    #[prost(string, tag = "1")]
    pub doc_string: String,
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<ValueType>,
    #[prost(oneof = "value::Value", tags = "3, 5")]
    pub value: Option<value::Value>,
}

pub mod value {
    /// `Value.ImmediateValue`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ImmediateValue {
        #[prost(oneof = "immediate_value::Value", tags = "1, 2, 3, 4")]
        pub value: Option<immediate_value::Value>,
    }

    pub mod immediate_value {
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Value {
            #[prost(message, tag = "1")]
            Tensor(super::super::TensorValue),
            #[prost(message, tag = "2")]
            Tuple(super::super::TupleValue),
            #[prost(message, tag = "3")]
            List(super::super::ListValue),
            #[prost(message, tag = "4")]
            Dictionary(super::super::DictionaryValue),
        }
    }

    /// `Value.BlobFileValue`: `offset` is the offset of the blob's *metadata* record.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct BlobFileValue {
        #[prost(string, tag = "1")]
        pub file_name: String,
        #[prost(uint64, tag = "2")]
        pub offset: u64,
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        #[prost(message, tag = "3")]
        ImmediateValue(ImmediateValue),
        #[prost(message, tag = "5")]
        BlobFileValue(BlobFileValue),
    }
}

/// `TensorValue`: the element storage of an immediate tensor. fp16, int8, uint8, uint32 and
/// sub-byte types use `bytes` (raw little-endian, sub-byte packed LSB-first).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorValue {
    #[prost(oneof = "tensor_value::Value", tags = "1, 2, 3, 4, 5, 6, 7")]
    pub value: Option<tensor_value::Value>,
}

pub mod tensor_value {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RepeatedFloats {
        #[prost(float, repeated, tag = "1")]
        pub values: Vec<f32>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RepeatedDoubles {
        #[prost(double, repeated, tag = "1")]
        pub values: Vec<f64>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RepeatedInts {
        #[prost(int32, repeated, tag = "1")]
        pub values: Vec<i32>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RepeatedLongInts {
        #[prost(int64, repeated, tag = "1")]
        pub values: Vec<i64>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RepeatedBools {
        #[prost(bool, repeated, tag = "1")]
        pub values: Vec<bool>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RepeatedStrings {
        #[prost(string, repeated, tag = "1")]
        pub values: Vec<String>,
    }

    /// A single `bytes` field (not repeated).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RepeatedBytes {
        #[prost(bytes = "vec", tag = "1")]
        pub values: Vec<u8>,
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        #[prost(message, tag = "1")]
        Floats(RepeatedFloats),
        #[prost(message, tag = "2")]
        Ints(RepeatedInts),
        #[prost(message, tag = "3")]
        Bools(RepeatedBools),
        #[prost(message, tag = "4")]
        Strings(RepeatedStrings),
        #[prost(message, tag = "5")]
        LongInts(RepeatedLongInts),
        #[prost(message, tag = "6")]
        Doubles(RepeatedDoubles),
        #[prost(message, tag = "7")]
        Bytes(RepeatedBytes),
    }
}

/// `TupleValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TupleValue {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<Value>,
}

/// `ListValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListValue {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<Value>,
}

/// `DictionaryValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DictionaryValue {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<dictionary_value::KeyValuePair>,
}

pub mod dictionary_value {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KeyValuePair {
        #[prost(message, optional, tag = "1")]
        pub key: Option<super::Value>,
        #[prost(message, optional, tag = "2")]
        pub value: Option<super::Value>,
    }
}

/// `MILSpec.DataType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum DataType {
    UnusedType = 0,
    Bool = 1,
    String = 2,
    Float16 = 10,
    Float32 = 11,
    Float64 = 12,
    Bfloat16 = 13,
    Int8 = 21,
    Int16 = 22,
    Int32 = 23,
    Int64 = 24,
    Int4 = 25,
    Uint8 = 31,
    Uint16 = 32,
    Uint32 = 33,
    Uint64 = 34,
    Uint4 = 35,
    Uint2 = 36,
    Uint1 = 37,
    Uint6 = 38,
    Uint3 = 39,
    Float8e4m3fn = 40,
    Float8e5m2 = 41,
}
