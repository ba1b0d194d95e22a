//! The Core ML model description: features (inputs, outputs, states), functions and
//! metadata, built from the lowered functions' interfaces.

use super::dtype::array_dtype;
use super::emit::FunctionInterface;
use super::proto::array_feature_type::{EnumeratedShapes, Shape, ShapeFlexibility};
use super::proto::{
    ArrayDataType, ArrayFeatureType, FeatureDescription, FeatureType, FunctionDescription, Metadata, ModelDescription,
    StateFeatureType, feature_type, state_feature_type,
};
use super::spec::{PackageMetadata, PackageSpec};
use crate::ir::{DType, TensorType};

fn dims(shape: &[usize]) -> Vec<i64> {
    shape.iter().map(|&d| d as i64).collect()
}

fn data_type(d: DType) -> i32 {
    array_dtype(d).unwrap_or(ArrayDataType::InvalidArrayDataType) as i32
}

fn feature(name: &str, t: feature_type::Type) -> FeatureDescription {
    FeatureDescription {
        name: name.to_string(),
        short_description: String::new(),
        r#type: Some(FeatureType { r#type: Some(t), is_optional: false }),
    }
}

/// An input multi-array: the declared (default) shape, plus every enumerated shape (default
/// first) when the input is flexible.
fn input_feature(name: &str, t: &TensorType, enumerated: Option<&Vec<Vec<usize>>>) -> FeatureDescription {
    let shape_flexibility = enumerated.map(|shapes| {
        let mut all = vec![t.shape.clone()];
        all.extend(shapes.iter().filter(|s| **s != t.shape).cloned());
        ShapeFlexibility::EnumeratedShapes(EnumeratedShapes {
            shapes: all.iter().map(|s| Shape { shape: dims(s) }).collect(),
        })
    });
    feature(
        name,
        feature_type::Type::MultiArrayType(ArrayFeatureType {
            shape: dims(&t.shape),
            data_type: data_type(t.dtype),
            shape_flexibility,
        }),
    )
}

/// An output multi-array: the shape only when fully static (as coremltools writes it).
fn output_feature(name: &str, t: &TensorType, flexible: bool) -> FeatureDescription {
    let shape = if flexible { vec![] } else { dims(&t.shape) };
    feature(
        name,
        feature_type::Type::MultiArrayType(ArrayFeatureType {
            shape,
            data_type: data_type(t.dtype),
            shape_flexibility: None,
        }),
    )
}

/// A state: an array type wrapped in a state feature (Core ML requires FLOAT16).
fn state_feature(name: &str, t: &TensorType) -> FeatureDescription {
    let array = ArrayFeatureType { shape: dims(&t.shape), data_type: state_dtype(t.dtype), shape_flexibility: None };
    feature(
        name,
        feature_type::Type::StateType(StateFeatureType { r#type: Some(state_feature_type::Type::ArrayType(array)) }),
    )
}

fn state_dtype(d: DType) -> i32 {
    match d {
        DType::F16 => ArrayDataType::Float16 as i32,
        DType::F32 => ArrayDataType::Float32 as i32,
        _ => ArrayDataType::InvalidArrayDataType as i32,
    }
}

fn metadata(m: &PackageMetadata) -> Option<Metadata> {
    (!m.is_empty()).then(|| Metadata {
        short_description: m.short_description.clone(),
        version_string: m.version.clone(),
        author: m.author.clone(),
        license: m.license.clone(),
        user_defined: m.user_defined.clone(),
    })
}

/// The model description. A single `main` function uses the top-level input/output/state
/// lists; otherwise every function gets a `FunctionDescription` and the top level stays empty.
pub(crate) fn model_description(functions: &[FunctionInterface], spec: &PackageSpec) -> ModelDescription {
    let describe = |f: &FunctionInterface| {
        let inputs = f.inputs.iter().map(|(n, t, e)| input_feature(n, t, e.as_ref())).collect::<Vec<_>>();
        let outputs = f.outputs.iter().map(|(n, t, flex)| output_feature(n, t, *flex)).collect::<Vec<_>>();
        let states = f.states.iter().map(|(n, t)| state_feature(n, t)).collect::<Vec<_>>();
        (inputs, outputs, states)
    };
    let mut desc = ModelDescription { metadata: metadata(&spec.metadata), ..Default::default() };
    if spec.is_single_main() {
        let (input, output, state) = describe(&functions[0]);
        desc.input = input;
        desc.output = output;
        desc.state = state;
    } else {
        desc.functions = functions
            .iter()
            .map(|f| {
                let (input, output, state) = describe(f);
                FunctionDescription { name: f.name.clone(), input, output, state, ..Default::default() }
            })
            .collect();
        desc.default_function_name = spec.default_name().unwrap_or_default().to_string();
    }
    desc
}
