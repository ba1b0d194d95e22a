//! [`write_package`]: IR functions → a `.mlpackage` directory, written atomically.
//!
//! ```text
//! <out>.mlpackage/
//!   Manifest.json
//!   Data/com.apple.CoreML/model.mlmodel        Model proto, spec 9, ML program (CoreML8)
//!   Data/com.apple.CoreML/weights/weight.bin   blob storage v2 (absent if no large constant)
//! ```
//!
//! Atomicity: everything is built in a hidden sibling directory `.<name>.tmp-<pid>-<n>` and
//! renamed onto `out` at the end (an existing `out` is moved aside first and deleted after
//! the swap). On any error the temporary directory is removed and `out` is untouched.
//!
//! Determinism: weights are written in module order, names are assigned in program order,
//! every proto map is a `BTreeMap`, and the Manifest identifiers are content hashes — the
//! same module, spec and weights give byte-identical packages.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use prost::Message;

use super::description::model_description;
use super::emit::lower_function;
use super::emit::sink::BlobSink;
use super::emit::weights::{store_weights, used_weights};
use super::error::EmitError;
use super::hash::{ContentHash, uuid_v4_shaped};
use super::manifest::Manifest;
use super::proto::dictionary_value::KeyValuePair;
use super::proto::value::{ImmediateValue, Value as VK, immediate_value::Value as IV};
use super::proto::value_type::Type as VT;
use super::proto::{
    DataType, DictionaryType, DictionaryValue, Model, Program, Value, ValueType, model_kind::Type as ModelType,
};
use super::spec::{PackageInfo, PackageSpec};
use super::tensor_data::ConstTensor;
use super::types::{immediate_value, static_tensor_type};
use crate::ir::{DType, Module, Type, verify_module};
use crate::weights::WeightCache;

/// Core ML specification version written (iOS18 / macOS15: states, multi-function).
pub const SPEC_VERSION: i32 = 9;

/// Paths inside a package.
pub const MANIFEST: &str = "Manifest.json";
pub const MODEL_PATH: &str = "Data/com.apple.CoreML/model.mlmodel";
pub const WEIGHTS_DIR: &str = "Data/com.apple.CoreML/weights";
pub const WEIGHT_BIN: &str = "Data/com.apple.CoreML/weights/weight.bin";

/// Removes a directory tree on drop unless disarmed.
struct TempDir {
    path: PathBuf,
    armed: bool,
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> EmitError + '_ {
    move |source| EmitError::Io { path: path.to_path_buf(), source }
}

/// Writes `spec`'s functions of `module` as the package `out`, streaming each used weight
/// from `weights` into `weight.bin` exactly once. See the module docs for the layout,
/// atomicity and determinism guarantees.
pub fn write_package(
    module: &Module,
    spec: &PackageSpec,
    weights: &WeightCache,
    out: &Path,
) -> Result<PackageInfo, EmitError> {
    verify_module(module).map_err(|e| EmitError::Verify(e.to_string()))?;
    spec.validate(module)?;
    let dir = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = out
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| EmitError::Spec(format!("bad output path {}", out.display())))?;
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let tag = format!("{}-{seq}", std::process::id());
    let tmp = TempDir { path: dir.join(format!(".{name}.tmp-{tag}")), armed: true };
    if tmp.path.exists() {
        std::fs::remove_dir_all(&tmp.path).map_err(io(&tmp.path))?;
    }
    let weights_dir = tmp.path.join(WEIGHTS_DIR);
    std::fs::create_dir_all(&weights_dir).map_err(io(&weights_dir))?;

    let mut info = build(module, spec, weights, &tmp.path)?;

    // Swap into place.
    let backup = dir.join(format!(".{name}.old-{tag}"));
    let had_old = out.exists();
    if had_old {
        std::fs::rename(out, &backup).map_err(io(out))?;
    }
    if let Err(e) = std::fs::rename(&tmp.path, out) {
        if had_old {
            let _ = std::fs::rename(&backup, out);
        }
        return Err(EmitError::Io { path: out.to_path_buf(), source: e });
    }
    let mut tmp = tmp;
    tmp.armed = false;
    if had_old {
        let _ = std::fs::remove_dir_all(&backup);
    }
    info.path = out.to_path_buf();
    Ok(info)
}

/// Builds the package content inside `root`.
fn build(module: &Module, spec: &PackageSpec, weights: &WeightCache, root: &Path) -> Result<PackageInfo, EmitError> {
    let ir_names: Vec<&str> = spec.functions.iter().map(|f| f.ir_function.as_str()).collect();
    let mut sink = BlobSink::new(root.join(WEIGHT_BIN));
    let used = used_weights(module, &ir_names);
    let table = store_weights(module, &used, weights, &mut sink)?;

    let mut program = Program { version: 1, ..Default::default() };
    let mut interfaces = Vec::new();
    let mut op_count = 0;
    let mut warnings = Vec::new();
    for fs in &spec.functions {
        let func = module.function(&fs.ir_function).expect("validated");
        for &id in &func.inputs {
            let v = &func.values[id];
            if let Type::State(t) = &v.ty
                && t.dtype != DType::F16
            {
                warnings.push(format!(
                    "function {}: state {} is {}; Core ML only runs fp16 states (coremltools refuses to export others)",
                    fs.name, v.name, t.dtype
                ));
            }
        }
        let lowered = lower_function(module, func, fs, &table, &mut sink)?;
        op_count += lowered.op_count;
        interfaces.push(lowered.interface);
        program.functions.insert(fs.name.clone(), lowered.function);
    }
    program.attributes.insert("buildInfo".to_string(), build_info());
    let blobs = sink.finish()?;

    let model = Model {
        specification_version: SPEC_VERSION,
        description: Some(model_description(&interfaces, spec)),
        is_updatable: false,
        r#type: Some(ModelType::MlProgram(program)),
    };
    let bytes = model.encode_to_vec();
    let model_path = root.join(MODEL_PATH);
    std::fs::write(&model_path, &bytes).map_err(io(&model_path))?;

    let mut model_hash = ContentHash::new();
    model_hash.update(b"model.mlmodel\0");
    model_hash.update(&bytes);
    let mut weights_hash = ContentHash::new();
    weights_hash.update(b"weights\0");
    weights_hash.update(&blobs.map_or(0, |b| b.hash).to_le_bytes());
    weights_hash.update(&model_hash.finish().to_le_bytes());
    let manifest = Manifest::new(&uuid_v4_shaped(model_hash.finish()), &uuid_v4_shaped(weights_hash.finish()));
    let manifest_path = root.join(MANIFEST);
    std::fs::write(&manifest_path, manifest.to_json()).map_err(io(&manifest_path))?;

    Ok(PackageInfo {
        path: root.to_path_buf(),
        functions: spec.functions.iter().map(|f| f.name.clone()).collect(),
        default_function: spec.default_name().unwrap_or_default().to_string(),
        model_bytes: bytes.len() as u64,
        weight_bytes: blobs.map_or(0, |b| b.size),
        blob_count: blobs.map_or(0, |b| b.count),
        op_count,
        warnings,
    })
}

/// `Program.attributes["buildInfo"]`: `dict<string, string>` naming the producer.
fn build_info() -> Value {
    let s = |text: &str| immediate_value(&ConstTensor::scalar_str(text)).expect("strings encode");
    let string_type = static_tensor_type(DataType::String, &[]);
    let pairs = [("anemllc-version", env!("CARGO_PKG_VERSION"))];
    Value {
        doc_string: String::new(),
        r#type: Some(ValueType {
            r#type: Some(VT::DictionaryType(Box::new(DictionaryType {
                key_type: Some(Box::new(string_type.clone())),
                value_type: Some(Box::new(string_type)),
            }))),
        }),
        value: Some(VK::ImmediateValue(ImmediateValue {
            value: Some(IV::Dictionary(DictionaryValue {
                values: pairs.iter().map(|(k, v)| KeyValuePair { key: Some(s(k)), value: Some(s(v)) }).collect(),
            })),
        })),
    }
}
