//! insta snapshots of the IR before and after every `opt` pass on a tiny fixture
//! (llama_tied, context 16, batch 4), plus the `--report` of the run: rule firings,
//! e-graph sizes and costs are part of what a reviewer sees change.

use std::path::Path;

use anemllc::frontend::{LowerOptions, lower_checkpoint};
use anemllc::ir::print_module;
use anemllc::opt::{check_module, optimize};

#[test]
fn llama_tied_before_and_after_each_pass() {
    // A relative path keeps the `checkpoint` attribute machine-independent (tests run from
    // the package root).
    let dir = Path::new("tests/fixtures/models/llama_tied");
    let module = lower_checkpoint(dir, &LowerOptions { context: 16, batch: 4, ..Default::default() }).unwrap();
    insta::assert_snapshot!("llama_tied@0-lowered", print_module(&module));
    let mut step = 0;
    let (out, report) = optimize(&module, &[], |pass, m| {
        step += 1;
        insta::assert_snapshot!(format!("llama_tied@{step}-{pass}"), print_module(m));
    })
    .unwrap();
    insta::assert_snapshot!("llama_tied@report", report.to_string());
    assert!(check_module(&out).is_empty(), "the optimised module passes the ANE check");

    // infer and prefill of a layer keep sharing every weight (same recipe → same weight).
    let weights = |f: &str| {
        let f = out.function(f).unwrap();
        let mut names: Vec<String> = f
            .nodes
            .iter()
            .filter_map(|(_, n)| match &n.op {
                anemllc::ir::Op::Weight { name } => Some(name.clone()),
                _ => None,
            })
            .collect();
        names.sort();
        names
    };
    assert_eq!(weights("layer0.infer"), weights("layer0.prefill"));
    // Every declared weight is used, and the tied embedding is still one tensor for both ends.
    let embed_sources: Vec<&str> = out
        .weights
        .iter()
        .filter(|w| w.recipe.to_string().contains("model.embed_tokens.weight"))
        .map(|w| w.name.as_str())
        .collect();
    assert!(!embed_sources.is_empty());
}
