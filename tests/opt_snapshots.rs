//! insta snapshots of the IR before and after every `opt` pass on a tiny fixture
//! (llama_tied, context 16, batch 4), plus the `--report` of the run: rule firings,
//! e-graph sizes and costs are part of what a reviewer sees change. The `palettize` pass is
//! off by default there; `llama_tiny_after_palettize` snapshots it at LUT6 (ffn, lm_head).

use std::path::Path;

use anemllc::frontend::{LowerOptions, lower_checkpoint};
use anemllc::ir::{Module, print_module};
use anemllc::opt::{OptOptions, PassRun, check_module, optimize, optimize_with};
use anemllc::quant::LutConfig;

/// A fixture lowered at context 16, batch 4. A relative path keeps the `checkpoint`
/// attribute machine-independent (tests run from the package root).
fn lowered(name: &str) -> Module {
    let dir = Path::new("tests/fixtures/models").join(name);
    lower_checkpoint(&dir, &LowerOptions { context: 16, batch: 4, ..Default::default() }).unwrap()
}

#[test]
fn llama_tied_before_and_after_each_pass() {
    let module = lowered("llama_tied");
    insta::assert_snapshot!("llama_tied@0-lowered", print_module(&module));
    let mut step = 0;
    let mut previous = module.clone();
    let (out, report) = optimize(&module, &[], |pass, m| {
        step += 1;
        if pass == "palettize" {
            // Off without a LUT configuration: the module is the one after kv-state.
            assert_eq!(*m, previous, "palettize without --lut changes nothing");
        } else {
            insta::assert_snapshot!(format!("llama_tied@{step}-{pass}"), print_module(m));
        }
        previous = m.clone();
    })
    .unwrap();
    assert_eq!(step, 6, "six passes by default");
    insta::assert_snapshot!("llama_tied@report", without_times(&report.to_string()));
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

/// The report with its times (the only non-deterministic numbers: the k-means time of a
/// palettized tensor, `[1.23 s]` wall times of passes and functions) blanked.
fn without_times(report: &str) -> String {
    report
        .lines()
        .map(|l| match l.find(", k-means ") {
            Some(at) => format!("{}, k-means [time]\n", &l[..at]),
            None => format!("{}\n", blank_bracketed_seconds(l)),
        })
        .collect()
}

/// `… [0.012 s]` → `… [time]`.
fn blank_bracketed_seconds(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find(']').map(|c| open + c) else { break };
        let inside = &rest[open + 1..close];
        out.push_str(&rest[..open]);
        match inside.strip_suffix(" s") {
            Some(number) if number.parse::<f64>().is_ok() => out.push_str("[time]"),
            _ => out.push_str(&rest[open..=close]),
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// Every pass, then `palettize` at 6 bits for the FFN and the LM head: the weights section
/// shows the `lut_indices` / `lut_table` recipes over the fp16, conv-shaped weights, the
/// functions read them through `lut_to_dense`, the attributes record the configuration.
#[test]
fn llama_tiny_after_palettize() {
    let options = OptOptions {
        lut: LutConfig::parse("ffn=6,lm_head=6,embed=none").unwrap(),
        measure_lut_error: true,
        calibration: None,
    };
    let (out, report) = optimize_with(&lowered("llama_tiny"), &[], &options, |_, _| {}).unwrap();
    insta::assert_snapshot!("llama_tiny@6-palettize", print_module(&out));
    let last = report.passes.last().unwrap();
    assert!(matches!(last.run, PassRun::Palettize(_)), "palettize runs last");
    insta::assert_snapshot!("llama_tiny@palettize-report", without_times(&last.to_string()));
    assert!(check_module(&out).is_empty(), "the palettized module passes the ANE check");
}
