//! The invariant "a pass never makes a function's cost worse" against the pass's *real*
//! input: for every fixture, lowered and run through the e-graph passes in order, every
//! function's report has `cost_before` equal to the cost of the function as it entered the
//! pass (before the pass's IR step, e.g. the kv-state unification) and
//! `cost_after ≤ cost_before`. And the runner refuses (an error, not a silent result) a
//! function that would end up costlier than its baseline.

mod reference_support;

use reference_support::{FIXTURES, fixture_dir};

use anemllc::frontend::{LowerOptions, lower_checkpoint};
use anemllc::ir::parse_module;
use anemllc::opt::passes::PASSES;
use anemllc::opt::runner::{function_cost, run_function};
use anemllc::opt::{Limits, PassRun, run_pass};

#[test]
fn every_pass_keeps_every_function_within_its_real_input_cost() {
    let mut failures = Vec::new();
    for name in FIXTURES {
        let mut module =
            lower_checkpoint(&fixture_dir(name), &LowerOptions { context: 16, batch: 4, ..Default::default() })
                .unwrap();
        for pass in PASSES.iter().filter(|p| p.is_egraph()) {
            let (next, report) = run_pass(&module, pass.name).unwrap_or_else(|e| panic!("{name}: {e}"));
            let PassRun::EGraph { functions, .. } = &report.run else { unreachable!() };
            for r in functions {
                let f = module.function(&r.function).expect("same function names");
                let input = function_cost(&module, f).unwrap().unwrap_or(0.0);
                let at = format!("{name} {} @{}", pass.name, r.function);
                if r.cost_before != input {
                    failures
                        .push(format!("{at}: report says cost before {} but the input costs {input}", r.cost_before));
                }
                if r.cost_after > r.cost_before * (1.0 + 1e-9) {
                    failures.push(format!("{at}: cost {} → {}", r.cost_before, r.cost_after));
                }
            }
            module = next;
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn a_result_costlier_than_the_baseline_is_an_error() {
    let m = parse_module(
        "module @t {\n  func @f(%x: fp16[2, 3]) -> (y: fp16[2, 3]) {\n    %y = neg(%x) : fp16[2, 3]\n    return %y\n  }\n}\n",
    )
    .unwrap();
    let f = m.function("f").unwrap();
    let cost = function_cost(&m, f).unwrap().unwrap();
    assert!(cost > 0.0);
    // As if an IR step had turned a function of cost `cost / 2` into this one.
    let err = run_function(&m, f, &[], &Limits::default(), Some(cost / 2.0)).unwrap_err();
    assert!(err.contains("@f: the pass would raise the cost"), "{err}");
    // Against its own cost it is fine (nothing to do, unchanged).
    let (same, report) = run_function(&m, f, &[], &Limits::default(), Some(cost)).unwrap();
    assert_eq!(&same, f);
    assert_eq!((report.cost_before, report.cost_after), (cost, cost));
}
