//! The output folder: which packages a module becomes ([`layout`]), writing them with
//! meta.yaml and tokenizer files ([`emit`]), reading a folder back for the reference
//! interpreter ([`load`]), contract file names ([`names`]), [`meta`], the atomic
//! [`staging`] folder, and the `mapped_weights` fuzz target's body ([`fuzz`]).

pub mod emit;
pub mod fuzz;
pub mod layout;
pub mod load;
pub mod meta;
pub mod names;
pub mod staging;
pub mod summary;
pub mod tokenizer_files;

pub use emit::{EmitEvent, EmitOptions, EmitOutputError, EmitReport, emit_output};
pub use layout::{Layout, LayoutOptions, PartKind, PartPlan, Target, plan_layout};
pub use load::{LoadError, LoadedOutput, load_output};
pub use meta::MetaYaml;
pub use staging::{StagingDir, StagingError};
pub use summary::summary_table;
