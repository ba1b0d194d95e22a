//! Shared by the `emit_*` tests: a fixture lowered, optimised and emitted into an output
//! folder with the library API (the CLI is covered by its own tests).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anemllc::checkpoint::Checkpoint;
use anemllc::frontend::{LowerOptions, lower_checkpoint};
use anemllc::ir::Module;
use anemllc::opt::optimize;
use anemllc::package::{EmitOptions, EmitReport, LayoutOptions, emit_output};
use anemllc::weights::WeightCache;

pub const CONTEXT: usize = 32;
pub const BATCH: usize = 8;

pub fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models").join(name)
}

/// A fresh scratch directory (removed first if it exists).
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("emit_tests").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `lower` (context 32, batch 8, LM-head pieces of at most `max_piece` rows) → every `opt` pass.
pub fn optimised(name: &str, max_piece: Option<usize>) -> Module {
    let mut opts = LowerOptions::new(CONTEXT, BATCH);
    if let Some(p) = max_piece {
        opts.max_vocab_piece = p;
    }
    let lowered = lower_checkpoint(&fixture_dir(name), &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
    optimize(&lowered, &[], |_, _| {}).unwrap_or_else(|e| panic!("{name}: {e}")).0
}

/// Emits `module` (weights from fixture `name`) into `out` with `chunks` FFN chunks.
pub fn emit(name: &str, module: &Module, chunks: Option<usize>, out: &Path) -> EmitReport {
    let weights = WeightCache::new(module, Arc::new(Checkpoint::open(&fixture_dir(name)).unwrap()));
    let opts = EmitOptions {
        layout: LayoutOptions { chunks, ..Default::default() },
        force: true,
        tokenizer_dir: Some(fixture_dir(name)),
        model_name: Some(name.to_string()),
    };
    emit_output(module, &weights, &opts, out, &|_| {}).unwrap_or_else(|e| panic!("{name}: {e}"))
}
