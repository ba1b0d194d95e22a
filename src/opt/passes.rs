//! The pass table: each pass is a name and a [`PassKind`]. Most passes are e-graph passes:
//! rule files (`passes/*.rules`, compiled in with `include_str!`) and an optional IR-level
//! step run before the e-graph. `palettize` is a module transform instead: a function of the
//! module and the [`OptOptions`] (its LUT configuration), with no rules and no e-graph.
//!
//! The default pipeline is every pass in table order. The shared `cleanup` rules (layout
//! and cast identities) are part of every e-graph pass so that each pass leaves no trivial
//! debris.

use crate::ir::Module;

use super::OptOptions;
use super::report::PassRun;

/// A rule file compiled into the binary.
#[derive(Clone, Copy, Debug)]
pub struct RuleFile {
    pub path: &'static str,
    pub source: &'static str,
}

/// An IR-level step run before the e-graph; returns notes for the report.
pub type Prepare = fn(&mut Module) -> Result<Vec<String>, String>;

/// What a module transform returns: the new module, notes for the report and its run.
#[derive(Clone, Debug)]
pub struct Transformed {
    pub module: Module,
    pub notes: Vec<String>,
    pub run: PassRun,
}

/// A module transform: the whole module and the options in, the transformed module out (the
/// caller verifies it). An `Err` is a message for [`super::OptError::Pass`].
pub type Transform = fn(&Module, &OptOptions) -> Result<Transformed, String>;

/// How a pass rewrites the module.
#[derive(Clone, Copy, Debug)]
pub enum PassKind {
    /// Equality saturation per function with the rules of `files` (the pass's own rule file
    /// first — its `limits` apply — then shared files), after the optional IR step `prepare`.
    EGraph { files: &'static [RuleFile], prepare: Option<Prepare> },
    /// A module transform configured by [`OptOptions`]; it has no rules.
    Transform(Transform),
}

/// One named pass.
#[derive(Clone, Copy, Debug)]
pub struct Pass {
    pub name: &'static str,
    pub summary: &'static str,
    pub kind: PassKind,
}

impl Pass {
    /// The pass's rule files (none for a module transform).
    pub fn rule_files(&self) -> &'static [RuleFile] {
        match self.kind {
            PassKind::EGraph { files, .. } => files,
            PassKind::Transform(_) => &[],
        }
    }

    /// True for an e-graph pass, false for a module transform.
    pub fn is_egraph(&self) -> bool {
        matches!(self.kind, PassKind::EGraph { .. })
    }
}

macro_rules! rule_file {
    ($name:literal) => {
        RuleFile { path: concat!("passes/", $name), source: include_str!(concat!("../../passes/", $name)) }
    };
}

const CLEANUP: RuleFile = rule_file!("cleanup.rules");
const PRECISION: RuleFile = rule_file!("precision.rules");
const LAYOUT: RuleFile = rule_file!("layout.rules");
const RMSNORM: RuleFile = rule_file!("rmsnorm.rules");
const ATTENTION: RuleFile = rule_file!("attention.rules");
const KV_STATE: RuleFile = rule_file!("kvstate.rules");

/// Every pass, in default pipeline order.
pub const PASSES: &[Pass] = &[
    Pass {
        name: "precision",
        summary: "fp16 everywhere except int32 ids/positions; fp16 I/O; weights cast by recipe",
        kind: PassKind::EGraph { files: &[PRECISION, CLEANUP], prepare: Some(super::precision::prepare) },
    },
    Pass {
        name: "layout",
        summary: "linear → 1×1 conv over (B, C, 1, S); the residual stream stays channels-first",
        kind: PassKind::EGraph { files: &[LAYOUT, CLEANUP], prepare: None },
    },
    Pass {
        name: "rmsnorm",
        summary: "RMSNorm (fused or primitive) → layer_norm over concat([x, −x]), first half, × gain",
        kind: PassKind::EGraph { files: &[RMSNORM, CLEANUP], prepare: None },
    },
    Pass {
        name: "attention",
        summary: "softmax scale folded into the query weights; grouped-query attention without repeated K/V",
        kind: PassKind::EGraph { files: &[ATTENTION, CLEANUP], prepare: None },
    },
    Pass {
        name: "kv-state",
        summary: "one fp16 KV state [2L, nkv, C, hd]: K of layer l at slot l, V at L+l, rows written at current_pos",
        kind: PassKind::EGraph { files: &[KV_STATE, CLEANUP], prepare: Some(super::kv_state::prepare) },
    },
    Pass {
        name: "palettize",
        summary: "LUT palettization of the weights as `--lut` says (module transform, no e-graph; off by default)",
        kind: PassKind::Transform(super::palettize::run),
    },
];

/// Every rule file, shared ones included once (for load tests and docs).
pub const RULE_FILES: &[RuleFile] = &[CLEANUP, PRECISION, LAYOUT, RMSNORM, ATTENTION, KV_STATE];

/// The pass called `name`.
pub fn pass(name: &str) -> Option<&'static Pass> {
    PASSES.iter().find(|p| p.name == name)
}
