//! `CoreML.Specification` messages from `Model.proto` and `FeatureTypes.proto`: the model
//! envelope, its description (features, states, functions, metadata) and feature types.

use std::collections::BTreeMap;

use super::mil::Program;

/// `Model`: the root message of `model.mlmodel`. Only the `mlProgram` case of the `Type`
/// oneof is modelled; other model kinds decode with `r#type == None`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Model {
    #[prost(int32, tag = "1")]
    pub specification_version: i32,
    #[prost(message, optional, tag = "2")]
    pub description: Option<ModelDescription>,
    #[prost(bool, tag = "10")]
    pub is_updatable: bool,
    #[prost(oneof = "model_kind::Type", tags = "502")]
    pub r#type: Option<model_kind::Type>,
}

pub mod model_kind {
    /// The model kind; only ML programs are modelled.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Type {
        #[prost(message, tag = "502")]
        MlProgram(super::Program),
    }
}

/// `ModelDescription`. With `functions` non-empty the top-level `input`/`output`/`state`
/// are empty and `default_function_name` names one of the functions.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelDescription {
    #[prost(message, repeated, tag = "1")]
    pub input: Vec<FeatureDescription>,
    #[prost(message, repeated, tag = "10")]
    pub output: Vec<FeatureDescription>,
    #[prost(string, tag = "11")]
    pub predicted_feature_name: String,
    #[prost(string, tag = "12")]
    pub predicted_probabilities_name: String,
    #[prost(message, repeated, tag = "13")]
    pub state: Vec<FeatureDescription>,
    #[prost(message, repeated, tag = "20")]
    pub functions: Vec<FunctionDescription>,
    #[prost(string, tag = "21")]
    pub default_function_name: String,
    #[prost(message, optional, tag = "100")]
    pub metadata: Option<Metadata>,
}

/// `FunctionDescription`: the interface of one function of a multi-function model.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FunctionDescription {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, repeated, tag = "2")]
    pub input: Vec<FeatureDescription>,
    #[prost(message, repeated, tag = "3")]
    pub output: Vec<FeatureDescription>,
    #[prost(string, tag = "4")]
    pub predicted_feature_name: String,
    #[prost(string, tag = "5")]
    pub predicted_probabilities_name: String,
    #[prost(message, repeated, tag = "6")]
    pub state: Vec<FeatureDescription>,
}

/// `FeatureDescription`: a named input, output or state.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FeatureDescription {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub short_description: String,
    #[prost(message, optional, tag = "3")]
    pub r#type: Option<FeatureType>,
}

/// `Metadata`: free-form model information; `user_defined` holds e.g. `com.anemll.*` keys.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Metadata {
    #[prost(string, tag = "1")]
    pub short_description: String,
    #[prost(string, tag = "2")]
    pub version_string: String,
    #[prost(string, tag = "3")]
    pub author: String,
    #[prost(string, tag = "4")]
    pub license: String,
    #[prost(btree_map = "string, string", tag = "100")]
    pub user_defined: BTreeMap<String, String>,
}

/// `FeatureType`: only multi-arrays and states are modelled (other kinds decode as `None`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct FeatureType {
    #[prost(oneof = "feature_type::Type", tags = "5, 8")]
    pub r#type: Option<feature_type::Type>,
    #[prost(bool, tag = "1000")]
    pub is_optional: bool,
}

pub mod feature_type {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Type {
        #[prost(message, tag = "5")]
        MultiArrayType(super::ArrayFeatureType),
        #[prost(message, tag = "8")]
        StateType(super::StateFeatureType),
    }
}

/// `ArrayFeatureType`: a multi-array's default shape, dtype and optional flexibility.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ArrayFeatureType {
    #[prost(int64, repeated, tag = "1")]
    pub shape: Vec<i64>,
    #[prost(enumeration = "ArrayDataType", tag = "2")]
    pub data_type: i32,
    #[prost(oneof = "array_feature_type::ShapeFlexibility", tags = "21, 31")]
    pub shape_flexibility: Option<array_feature_type::ShapeFlexibility>,
}

pub mod array_feature_type {
    /// `ArrayFeatureType.Shape`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Shape {
        #[prost(int64, repeated, tag = "1")]
        pub shape: Vec<i64>,
    }

    /// `ArrayFeatureType.EnumeratedShapes`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EnumeratedShapes {
        #[prost(message, repeated, tag = "1")]
        pub shapes: Vec<Shape>,
    }

    /// `ArrayFeatureType.ShapeRange`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ShapeRange {
        #[prost(message, repeated, tag = "1")]
        pub size_ranges: Vec<super::SizeRange>,
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum ShapeFlexibility {
        #[prost(message, tag = "21")]
        EnumeratedShapes(EnumeratedShapes),
        #[prost(message, tag = "31")]
        ShapeRange(ShapeRange),
    }
}

/// `SizeRange`: `upper_bound < 0` means unbounded.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SizeRange {
    #[prost(uint64, tag = "1")]
    pub lower_bound: u64,
    #[prost(int64, tag = "2")]
    pub upper_bound: i64,
}

/// `StateFeatureType`: a state wrapping an array type (Core ML requires FLOAT16).
#[derive(Clone, PartialEq, prost::Message)]
pub struct StateFeatureType {
    #[prost(oneof = "state_feature_type::Type", tags = "1")]
    pub r#type: Option<state_feature_type::Type>,
}

pub mod state_feature_type {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Type {
        #[prost(message, tag = "1")]
        ArrayType(super::ArrayFeatureType),
    }
}

/// `ArrayFeatureType.ArrayDataType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ArrayDataType {
    InvalidArrayDataType = 0,
    Float32 = 65568,
    Double = 65600,
    Float16 = 65552,
    Int32 = 131104,
    Int8 = 131080,
}
