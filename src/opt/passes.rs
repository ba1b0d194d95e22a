//! The pass table: each pass is a name, its rule files (`passes/*.rules`, compiled in with
//! `include_str!`) and an optional IR-level step run before the e-graph.
//!
//! The default pipeline is every pass in table order. The shared `cleanup` rules (layout
//! and cast identities) are part of every pass so that each pass leaves no trivial debris.

use crate::ir::Module;

/// A rule file compiled into the binary.
#[derive(Clone, Copy, Debug)]
pub struct RuleFile {
    pub path: &'static str,
    pub source: &'static str,
}

/// An IR-level step run before the e-graph; returns notes for the report.
pub type Prepare = fn(&mut Module) -> Result<Vec<String>, String>;

/// One named pass.
#[derive(Clone, Copy, Debug)]
pub struct Pass {
    pub name: &'static str,
    pub summary: &'static str,
    /// The pass's own rule file first (its `limits` apply), then shared files.
    pub files: &'static [RuleFile],
    pub prepare: Option<Prepare>,
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
        files: &[PRECISION, CLEANUP],
        prepare: Some(super::precision::prepare),
    },
    Pass {
        name: "layout",
        summary: "linear → 1×1 conv over (B, C, 1, S); the residual stream stays channels-first",
        files: &[LAYOUT, CLEANUP],
        prepare: None,
    },
    Pass {
        name: "rmsnorm",
        summary: "RMSNorm (fused or primitive) → layer_norm over concat([x, −x]), first half, × gain",
        files: &[RMSNORM, CLEANUP],
        prepare: None,
    },
    Pass {
        name: "attention",
        summary: "softmax scale folded into the query weights; grouped-query attention without repeated K/V",
        files: &[ATTENTION, CLEANUP],
        prepare: None,
    },
    Pass {
        name: "kv-state",
        summary: "one fp16 KV state [2L, nkv, C, hd]: K of layer l at slot l, V at L+l, rows written at current_pos",
        files: &[KV_STATE, CLEANUP],
        prepare: Some(super::kv_state::prepare),
    },
];

/// Every rule file, shared ones included once (for load tests and docs).
pub const RULE_FILES: &[RuleFile] = &[CLEANUP, PRECISION, LAYOUT, RMSNORM, ATTENTION, KV_STATE];

/// The pass called `name`.
pub fn pass(name: &str) -> Option<&'static Pass> {
    PASSES.iter().find(|p| p.name == name)
}
