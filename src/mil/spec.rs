//! What to put in a package: [`PackageSpec`] (functions, default, metadata, enumerated
//! shapes) and what was written: [`PackageInfo`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::error::EmitError;
use super::names::is_identifier;
use crate::ir::Module;

/// One function of the package: its MIL name and the IR function it is emitted from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionSpec {
    /// The MIL / Core ML function name (`main`, `infer`, `prefill`); a valid identifier.
    pub name: String,
    /// The IR function to emit (`layer0.infer`, …).
    pub ir_function: String,
    /// Flexible inputs: input name → every shape Core ML may feed (same rank). The IR
    /// function's declared shape must be one of them; it becomes the default shape. Dims
    /// that differ between the shapes become unknown dims in the MIL types.
    pub enumerated_shapes: BTreeMap<String, Vec<Vec<usize>>>,
}

impl FunctionSpec {
    pub fn new(name: impl Into<String>, ir_function: impl Into<String>) -> Self {
        FunctionSpec { name: name.into(), ir_function: ir_function.into(), enumerated_shapes: BTreeMap::new() }
    }

    /// Adds an enumerated-shape set for one input.
    pub fn with_enumerated_shapes(mut self, input: impl Into<String>, shapes: Vec<Vec<usize>>) -> Self {
        self.enumerated_shapes.insert(input.into(), shapes);
        self
    }
}

/// Model metadata (`ModelDescription.metadata`). Empty strings are omitted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PackageMetadata {
    pub author: String,
    pub version: String,
    pub short_description: String,
    pub license: String,
    /// Free-form keys (`com.anemll.context_length`, …), written in key order.
    pub user_defined: BTreeMap<String, String>,
}

impl PackageMetadata {
    pub fn is_empty(&self) -> bool {
        self.author.is_empty()
            && self.version.is_empty()
            && self.short_description.is_empty()
            && self.license.is_empty()
            && self.user_defined.is_empty()
    }
}

/// The content of one package.
///
/// With a single function named `main` the package is a classic single-function model
/// (interface in the top-level description). Otherwise it is a multi-function model
/// (`ModelDescription.functions` + `defaultFunctionName`), and every IR weight used by
/// several functions is stored once and referenced from each.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PackageSpec {
    pub functions: Vec<FunctionSpec>,
    /// The default function's MIL name; `None` = the first function.
    pub default_function: Option<String>,
    pub metadata: PackageMetadata,
}

impl PackageSpec {
    /// A single-function package: IR function `ir_function` emitted as `main`.
    pub fn single(ir_function: impl Into<String>) -> Self {
        PackageSpec { functions: vec![FunctionSpec::new("main", ir_function)], ..Default::default() }
    }

    /// A multi-function package from `(mil name, ir function)` pairs; the first is default.
    pub fn multi<S: Into<String>, T: Into<String>>(functions: impl IntoIterator<Item = (S, T)>) -> Self {
        PackageSpec {
            functions: functions.into_iter().map(|(n, f)| FunctionSpec::new(n, f)).collect(),
            ..Default::default()
        }
    }

    /// The default function's MIL name.
    pub fn default_name(&self) -> Option<&str> {
        self.default_function.as_deref().or_else(|| self.functions.first().map(|f| f.name.as_str()))
    }

    /// True if the package is written in the classic single-function form.
    pub fn is_single_main(&self) -> bool {
        self.functions.len() == 1 && self.functions[0].name == "main"
    }

    /// Checks the spec against the module: at least one function, valid unique MIL names,
    /// existing IR functions, a default among the functions.
    pub fn validate(&self, module: &Module) -> Result<(), EmitError> {
        let err = |m: String| Err(EmitError::Spec(m));
        if self.functions.is_empty() {
            return err("no functions to emit".into());
        }
        let mut seen = std::collections::HashSet::new();
        for f in &self.functions {
            if !is_identifier(&f.name) {
                return err(format!("function name {:?} is not a MIL identifier ([A-Za-z_][A-Za-z0-9_@]*)", f.name));
            }
            if !seen.insert(f.name.as_str()) {
                return err(format!("function name {:?} used twice", f.name));
            }
            if module.function(&f.ir_function).is_none() {
                return err(format!("module has no function @{}", f.ir_function));
            }
        }
        let default = self.default_name().unwrap_or_default();
        if !self.functions.iter().any(|f| f.name == default) {
            return err(format!("default function {default:?} is not one of the package's functions"));
        }
        Ok(())
    }
}

/// What [`write_package`](super::write_package) wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageInfo {
    pub path: PathBuf,
    /// MIL function names, in spec order.
    pub functions: Vec<String>,
    pub default_function: String,
    /// Size of `model.mlmodel`.
    pub model_bytes: u64,
    /// Size of `weights/weight.bin` (0 when no constant needed the blob file).
    pub weight_bytes: u64,
    /// Number of blobs in `weight.bin`.
    pub blob_count: u32,
    /// MIL operations over all functions (const ops included).
    pub op_count: usize,
    /// Things that are legal in the proto but that Core ML or coremltools may refuse
    /// (e.g. non-fp16 states).
    pub warnings: Vec<String>,
}
