//! `anemllc opt` and `anemllc check` from the command line: output written, report printed,
//! exit codes (0 ok, 1 failure / ANE violations, 2 bad usage).

use std::path::{Path, PathBuf};
use std::process::Command;

fn anemllc(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_anemllc")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("anemllc-opt-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn lowered(tag: &str) -> PathBuf {
    let air = scratch(&format!("tied.{tag}.air"));
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/llama_tied");
    let (code, _, err) =
        anemllc(&["lower", fixture.to_str().unwrap(), "-o", air.to_str().unwrap(), "--context", "16", "--batch", "4"]);
    assert_eq!(code, 0, "{err}");
    air
}

#[test]
fn opt_writes_an_ane_ready_module_and_reports() {
    let air = lowered("report");
    let out = scratch("tied.opt.air");
    let (code, stdout, stderr) = anemllc(&["opt", air.to_str().unwrap(), "-o", out.to_str().unwrap(), "--report"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.is_empty(), "nothing on stdout without --dump-after");
    for needle in [
        "pass precision",
        "pass layout",
        "pass rmsnorm",
        "pass attention",
        "pass kv-state",
        "stop: saturated",
        "linear-to-conv ×",
    ] {
        assert!(stderr.contains(needle), "report lacks {needle:?}:\n{stderr}");
    }
    let (code, stdout, stderr) = anemllc(&["check", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("ok: ANE-ready"), "{stdout}");
}

#[test]
fn dump_after_prints_the_module_after_that_pass() {
    let air = lowered("dump");
    let out = scratch("tied.layout.air");
    let (code, stdout, stderr) = anemllc(&[
        "opt",
        air.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--passes",
        "precision,layout",
        "--dump-after",
        "precision",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("module @"), "{stdout}");
    assert!(stdout.contains("linear("), "after precision the projections are still linear");
    assert!(!std::fs::read_to_string(&out).unwrap().contains("linear("), "after layout they are convs");
}

#[test]
fn check_names_the_offending_op_and_bad_usage_exits_2() {
    let air = lowered("check");
    let (code, _, stderr) = anemllc(&["check", air.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stderr.contains("[ane.op] `linear` is not an ANE op"), "{stderr}");
    assert!(stderr.contains("[ane.dtype]"), "{stderr}");
    let (code, _, stderr) =
        anemllc(&["opt", air.to_str().unwrap(), "-o", scratch("x.air").to_str().unwrap(), "--passes", "nope"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("unknown pass `nope`"), "{stderr}");
}
