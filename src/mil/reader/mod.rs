//! Reading `.mlpackage` directories: [`open_package`] (manifest, model proto, blob file —
//! enough for `anemllc inspect`) and [`read_package`], which translates the ML program back
//! into an IR [`Module`] that the reference interpreter can run.
//!
//! Translation rules (see `docs/emitter.md` for the op table):
//! - `const` values are not IR nodes by themselves: static parameters (axes, shapes, …)
//!   are read from them; when used as tensors they become IR `const` ops (small immediates
//!   of fp32/fp16/int32/bool) or IR weights whose recipe is
//!   `checkpoint("blob:<offset>" : dtype[shape])` served by [`PackageTensors`] (one IR weight
//!   per distinct blob/dtype/shape, so weights shared between functions stay shared);
//! - the fixed sequences the emitter uses for IR ops without a MIL counterpart (rms_norm,
//!   linear-as-matmul) are recognised by their `<result>_<kind>_…` names *and* structure and
//!   folded back into the single IR op;
//! - every other supported MIL op maps to one or a few IR ops; unsupported ops fail with
//!   [`ReadError::Op`] naming the op;
//! - each IR node's type is inferred by the IR typing rules and checked against the
//!   declared MIL output type; flexible input dims take the description's default shape;
//! - dead pure nodes are dropped at the end.

mod consts;
mod function;
mod fuse;
mod ops;
mod ops_math;
mod ops_shape;
mod prune;
pub mod source;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use source::{PackageTensors, TensorEntry};

use super::blob::BlobFile;
use super::error::ReadError;
use super::manifest::{Manifest, WEIGHTS_ITEM};
use super::names::sanitize;
use super::proto::feature_type::Type as FT;
use super::proto::model_kind::Type as ModelType;
use super::proto::{FeatureDescription, Model, Program};
use crate::ir::{AttrValue, Module, verify_module};
use crate::weights::WeightCache;

/// The raw parts of a package.
pub struct PackageContents {
    pub root: PathBuf,
    pub manifest: Manifest,
    pub model_path: PathBuf,
    pub model: Model,
    /// `weights/weight.bin`, if present.
    pub weight_path: PathBuf,
    pub blobs: Option<Arc<BlobFile>>,
}

impl PackageContents {
    /// The ML program, if the model is one.
    pub fn program(&self) -> Option<&Program> {
        match &self.model.r#type {
            Some(ModelType::MlProgram(p)) => Some(p),
            None => None,
        }
    }

    /// Function names in description order (default first for single-function models:
    /// `main`), falling back to the program's (sorted) order.
    pub fn function_names(&self) -> Vec<String> {
        let desc = self.model.description.as_ref();
        let described = desc.map(|d| d.functions.as_slice()).unwrap_or_default();
        let Some(program) = self.program() else { return Vec::new() };
        // Sets, not list scans: a hostile model may list very many functions.
        let mut seen = HashSet::new();
        let mut out: Vec<String> = described
            .iter()
            .filter(|f| program.functions.contains_key(&f.name) && seen.insert(f.name.as_str()))
            .map(|f| f.name.clone())
            .collect();
        out.extend(program.functions.keys().filter(|n| !seen.contains(n.as_str())).cloned());
        out
    }

    /// The default function: `defaultFunctionName`, or `main` for single-function models.
    pub fn default_function(&self) -> String {
        match self.model.description.as_ref() {
            Some(d) if !d.default_function_name.is_empty() => d.default_function_name.clone(),
            _ => "main".to_string(),
        }
    }

    /// The description features (inputs, outputs, states) of a function.
    pub fn features(&self, func: &str) -> (Vec<FeatureDescription>, Vec<FeatureDescription>, Vec<FeatureDescription>) {
        let Some(d) = self.model.description.as_ref() else { return Default::default() };
        if d.functions.is_empty() {
            return (d.input.clone(), d.output.clone(), d.state.clone());
        }
        d.functions
            .iter()
            .find(|f| f.name == func)
            .map(|f| (f.input.clone(), f.output.clone(), f.state.clone()))
            .unwrap_or_default()
    }
}

/// Opens a package: parses `Manifest.json`, decodes the root model proto and maps
/// `weights/weight.bin` (validating its header).
pub fn open_package(path: &Path) -> Result<PackageContents, ReadError> {
    let manifest_path = path.join("Manifest.json");
    let text = std::fs::read_to_string(&manifest_path)
        .map_err(|source| ReadError::Io { path: manifest_path.clone(), source })?;
    let (manifest, root_item) =
        Manifest::parse(&text).map_err(|message| ReadError::Manifest { path: manifest_path.clone(), message })?;
    let model_path = path.join("Data").join(&root_item);
    let bytes = std::fs::read(&model_path).map_err(|source| ReadError::Io { path: model_path.clone(), source })?;
    let model = <Model as prost::Message>::decode(bytes.as_slice()).map_err(|e| ReadError::Model {
        path: model_path.clone(),
        message: format!("not a Core ML model proto: {e}"),
    })?;
    let weights_dir = manifest
        .item_info_entries
        .values()
        .find(|i| i.name == WEIGHTS_ITEM)
        .map(|i| path.join("Data").join(&i.path))
        .unwrap_or_else(|| model_path.with_file_name(WEIGHTS_ITEM));
    let weight_path = weights_dir.join("weight.bin");
    let blobs = if weight_path.exists() {
        let f = BlobFile::open(&weight_path).map_err(|source| ReadError::Blob { path: weight_path.clone(), source })?;
        Some(Arc::new(f))
    } else {
        None
    };
    Ok(PackageContents { root: path.to_path_buf(), manifest, model_path, model, weight_path, blobs })
}

/// A package read back as IR.
pub struct ReadPackage {
    /// One IR function per MIL function (same names), weights reading from the package.
    pub module: Module,
    /// The tensor source behind the module's weight recipes.
    pub tensors: Arc<PackageTensors>,
    pub spec_version: i32,
    pub default_function: String,
    /// `ModelDescription.metadata.userDefined` (e.g. `com.anemll.context_length`).
    pub user_metadata: std::collections::BTreeMap<String, String>,
}

impl ReadPackage {
    /// A weight cache over the package's constants.
    pub fn weight_cache(&self) -> WeightCache {
        WeightCache::new(&self.module, self.tensors.clone())
    }
}

/// One function to translate by [`read_package_functions`]: the MIL function `mil_name`
/// becomes the IR function `ir_name`, with flexible inputs fixed to `shapes` (input name →
/// shape; inputs not listed take the description's default shape).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionRead {
    pub mil_name: String,
    pub ir_name: String,
    pub shapes: HashMap<String, Vec<usize>>,
}

impl FunctionRead {
    pub fn new(mil_name: impl Into<String>, ir_name: impl Into<String>) -> Self {
        FunctionRead { mil_name: mil_name.into(), ir_name: ir_name.into(), shapes: HashMap::new() }
    }

    /// Fixes the shape of one (flexible) input.
    pub fn with_shape(mut self, input: impl Into<String>, shape: Vec<usize>) -> Self {
        self.shapes.insert(input.into(), shape);
        self
    }
}

/// Reads a package into a verified IR module. See the module docs for the rules.
pub fn read_package(path: &Path) -> Result<ReadPackage, ReadError> {
    read_selected(path, None)
}

/// Reads the listed functions of a package (each possibly several times, at different
/// input shapes) into one verified IR module whose weights are shared between them.
pub fn read_package_functions(path: &Path, functions: &[FunctionRead]) -> Result<ReadPackage, ReadError> {
    read_selected(path, Some(functions))
}

fn read_selected(path: &Path, selection: Option<&[FunctionRead]>) -> Result<ReadPackage, ReadError> {
    let contents = open_package(path)?;
    let program = contents.program().ok_or_else(|| ReadError::Model {
        path: contents.model_path.clone(),
        message: "not an ML program (only mlProgram models can be read)".into(),
    })?;
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("package");
    let mut ctx = function::ModuleCtx::new(sanitize(stem), contents.blobs.clone());
    ctx.module.attrs.insert("package".into(), AttrValue::Str(path.display().to_string()));
    ctx.module.attrs.insert("spec_version".into(), AttrValue::Int(i64::from(contents.model.specification_version)));
    let reads: Vec<FunctionRead> = match selection {
        Some(list) => list.to_vec(),
        None => contents.function_names().into_iter().map(|n| FunctionRead::new(n.clone(), n)).collect(),
    };
    let mut read_names = HashSet::new();
    let mut states: HashMap<String, (crate::ir::Type, String)> = HashMap::new();
    for read in &reads {
        let f = program.functions.get(&read.mil_name).ok_or_else(|| ReadError::Model {
            path: contents.model_path.clone(),
            message: format!("the package has no function `{}`", read.mil_name),
        })?;
        let ferr = |message: String| ReadError::Function { func: read.ir_name.clone(), message };
        if !function::is_ir_symbol(&read.ir_name) {
            return Err(ferr("not a valid IR function name ([A-Za-z0-9_.-]+)".into()));
        }
        if !read_names.insert(read.ir_name.as_str()) {
            return Err(ferr("read twice".into()));
        }
        let (inputs, _, _) = contents.features(&read.mil_name);
        let mut defaults: HashMap<String, Vec<usize>> = inputs
            .iter()
            .filter_map(|feat| match feat.r#type.as_ref()?.r#type.as_ref()? {
                FT::MultiArrayType(a) => Some((feat.name.clone(), a.shape.iter().map(|&d| d as usize).collect())),
                FT::StateType(_) => None,
            })
            .collect();
        defaults.extend(read.shapes.clone());
        let func = function::read_function(&mut ctx, &read.ir_name, f, &defaults)?;
        // Functions bind states by name: one name must mean one type in the whole module.
        for v in func.inputs.iter().map(|&id| &func.values[id]).filter(|v| v.ty.is_state()) {
            match states.get(&v.name) {
                Some((ty, other)) if *ty != v.ty => {
                    return Err(ferr(format!("state {} is {} here but {ty} in function {other}", v.name, v.ty)));
                }
                Some(_) => {}
                None => {
                    states.insert(v.name.clone(), (v.ty.clone(), read.ir_name.clone()));
                }
            }
        }
        ctx.module.functions.push(func);
    }
    let (module, tensors) = ctx.finish();
    verify_module(&module).map_err(|e| ReadError::Model {
        path: contents.model_path.clone(),
        message: format!("internal: the translated module does not verify: {e}"),
    })?;
    Ok(ReadPackage {
        module,
        tensors: Arc::new(tensors),
        spec_version: contents.model.specification_version,
        default_function: contents.default_function(),
        user_metadata: contents
            .model
            .description
            .as_ref()
            .and_then(|d| d.metadata.as_ref())
            .map(|m| m.user_defined.clone())
            .unwrap_or_default(),
    })
}
