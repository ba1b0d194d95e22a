//! The Core ML back end: IR functions ⇄ ML Program packages (`.mlpackage`).
//!
//! - [`write_package`]: emits one or more IR functions of a module as a package — a MIL
//!   program (spec 9 / iOS18, opset `CoreML8`) in `model.mlmodel`, every IR weight stored
//!   once in `weights/weight.bin`, a deterministic `Manifest.json`; see [`PackageSpec`].
//! - [`read_package`]: turns any ML Program package (ours or coremltools') back into an IR
//!   module whose weights read from the package, so the reference interpreter can run it.
//! - [`text`]: MIL text and a summary, for `anemllc inspect`.
//!
//! Building blocks: [`proto`] (hand-derived prost messages), [`blob`] (weight.bin v2),
//! [`tensor_data`] (constant encodings), [`types`], [`names`], [`dtype`], [`manifest`].
//! `docs/emitter.md` has the IR → MIL mapping table.

pub mod blob;
pub mod description;
pub mod dtype;
pub(crate) mod emit;
pub mod error;
pub mod hash;
pub mod manifest;
pub mod names;
pub mod package;
pub mod proto;
pub mod reader;
pub mod spec;
pub mod tensor_data;
pub mod text;
pub mod types;

pub use emit::weights::MIN_BLOB_ELEMENTS;
pub use error::{EmitError, ReadError};
pub use package::{SPEC_VERSION, write_package};
pub use reader::{
    FunctionRead, PackageContents, PackageTensors, ReadPackage, open_package, read_package, read_package_functions,
};
pub use spec::{FunctionSpec, PackageInfo, PackageMetadata, PackageSpec};
