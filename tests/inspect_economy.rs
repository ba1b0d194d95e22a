//! The ANE graph economy of FFN chunks as `anemllc inspect --summary` reports it: non-const
//! ops and transposes per decoder layer for every function (issue #15's measure), as insta
//! snapshots so that a change in op counts shows in review.

mod emit_support;

use anemllc::mil::open_package;
use anemllc::mil::text::economy_text;
use emit_support::{emit, optimised, scratch};

fn economy(name: &str) -> String {
    let module = optimised(name, None);
    let out = scratch(&format!("economy_{name}")).join("out");
    let report = emit(name, &module, Some(2), &out);
    let mut text = String::new();
    for part in report.layout.parts.iter().filter(|p| p.stem.contains("_FFN_PF")) {
        let pkg = open_package(&out.join(format!("{}.mlpackage", part.stem))).unwrap();
        text.push_str(&format!("{}\n{}", part.stem, economy_text(&pkg)));
    }
    text
}

#[test]
fn llama_tiny_chunks() {
    insta::assert_snapshot!(economy("llama_tiny"));
}

#[test]
fn gemma3_tiny_chunks() {
    insta::assert_snapshot!(economy("gemma3_tiny"));
}

/// The CLI prints the same line in its summary.
#[test]
fn inspect_summary_prints_the_per_layer_line() {
    let module = optimised("llama_tiny", None);
    let out = scratch("economy_cli").join("out");
    let report = emit("llama_tiny", &module, Some(2), &out);
    let stem = &report.layout.parts[1].stem;
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_anemllc"))
        .args(["inspect", "--summary"])
        .arg(out.join(format!("{stem}.mlpackage")))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success());
    assert_eq!(text.matches("per layer (2 layers): ").count(), 2, "{text}");
}
