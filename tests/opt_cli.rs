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

fn lowered_fixture(fixture: &str, tag: &str) -> PathBuf {
    let air = scratch(&format!("{fixture}.{tag}.air"));
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models").join(fixture);
    let (code, _, err) =
        anemllc(&["lower", dir.to_str().unwrap(), "-o", air.to_str().unwrap(), "--context", "16", "--batch", "4"]);
    assert_eq!(code, 0, "{err}");
    air
}

fn lowered(tag: &str) -> PathBuf {
    lowered_fixture("llama_tied", tag)
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
        "pass palettize (module transform): off, module unchanged: no part has LUT bits",
    ] {
        assert!(stderr.contains(needle), "report lacks {needle:?}:\n{stderr}");
    }
    let (code, stdout, stderr) = anemllc(&["check", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("ok: ANE-ready"), "{stdout}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(!text.contains("lut_to_dense(") && !text.contains("lut_group_size"), "palettize is off by default");
}

/// The `palettize` pass after the e-graph passes: the report's lines per part, LUT weights
/// and the `lut_*` attributes in the output, which the ANE check accepts.
#[test]
fn opt_lut_palettizes_ffn_and_lm_head_and_reports() {
    let air = lowered_fixture("llama_tiny", "lut");
    let out = scratch("tiny.lut.air");
    let (code, stdout, stderr) =
        anemllc(&["opt", air.to_str().unwrap(), "-o", out.to_str().unwrap(), "--lut", "ffn=6,lm_head=6", "--report"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.is_empty());
    let report = &stderr[stderr.find("pass palettize").expect("a palettize section")..];
    let lines: Vec<&str> = report.lines().collect();
    assert!(
        lines[0].starts_with(
            "pass palettize (module transform: --lut ffn=6,lm_head=6,embed=none, group size 8, ≥ 2049 elements): \
             16 tensors palettized, 143360 elements"
        ),
        "{report}"
    );
    // 3 layers × (fused q/k/v, o, gate, up, down).
    let ffn = lines.iter().find(|l| l.starts_with("  ffn: ")).expect("an ffn line");
    assert!(ffn.starts_with("  ffn: 15 tensors at 6 bits, 110592 elements, rel. error mean 0.0"), "{ffn}");
    assert!(ffn.contains(" max 0.0") && ffn.contains(", k-means ") && ffn.ends_with('s'), "{ffn}");
    let head = lines.iter().find(|l| l.starts_with("  lm_head: ")).expect("an lm_head line");
    assert!(head.starts_with("  lm_head: 1 tensor at 6 bits, 32768 elements, rel. error mean 0.0"), "{head}");
    assert!(lines.contains(&"  embed: dense (embed=none)"), "{report}");
    let tensor = lines.iter().find(|l| l.contains("@model.layers.0.mlp.down_proj.weight")).expect("a tensor line");
    assert!(tensor.contains(": fp16[64, 128, 1, 1] → tables fp16[8, 64], rel. error 0.0"), "{tensor}");
    // Every error is that of 64 levels on small Gaussian matrices: about 2%.
    for l in lines.iter().filter(|l| l.contains("rel. error ")) {
        let at = l.rfind("rel. error ").unwrap() + "rel. error ".len();
        let e: f64 = l[at..].trim_start_matches("mean ").split([' ', ',']).next().unwrap().parse().unwrap();
        assert!(e > 0.005 && e < 0.03, "{l}");
    }

    let text = std::fs::read_to_string(&out).unwrap();
    for needle in [
        "lut_ffn = 6",
        "lut_group_size = 8",
        "lut_lm_head = 6",
        "= lut_indices(",
        "= lut_table(",
        "weight @model.layers.0.mlp.down_proj.weight.fp16.r64x128x1x1.lut_indices : uint6[64, 128, 1, 1]",
        "weight @lm_head.weight.fp16.r512x64x1x1.lut_table : fp16[64, 64]",
        " = lut_to_dense(%",
    ] {
        assert!(text.contains(needle), "output lacks {needle:?}");
    }
    assert!(!text.contains("lut_embed"), "the embeddings are not palettized");
    let (code, stdout, stderr) = anemllc(&["check", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("ok: ANE-ready"), "{stdout}");

    // `--dump-after palettize` prints the palettized module, the same as the output file.
    let (code, stdout, stderr) = anemllc(&[
        "opt",
        air.to_str().unwrap(),
        "-o",
        scratch("tiny.lut2.air").to_str().unwrap(),
        "--lut",
        "ffn=6,lm_head=6",
        "--dump-after",
        "palettize",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, text);
    // Only the folded-gains warning (this fixture is lowered with the default folding).
    let other: Vec<&str> = stderr.lines().filter(|l| !l.starts_with("warning: ")).collect();
    assert!(other.is_empty(), "no report without --report: {stderr}");
}

#[test]
fn bad_lut_options_exit_2_naming_the_problem() {
    let air = lowered("badlut");
    let out = scratch("badlut.out.air");
    let opt = |extra: &[&str]| {
        let mut args = vec!["opt", air.to_str().unwrap(), "-o", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        anemllc(&args)
    };
    for (extra, needle) in [
        (&["--lut", "ffn=6,lm_head=5"][..], "lm_head: bits must be one of 1, 2, 3, 4, 6, 8 or `none`, got `5`"),
        (&["--lut", "mlp=4"][..], "unknown part `mlp`"),
        (&["--lut", "ffn=6,lm_head"][..], "`lm_head` is not `part=bits`"),
        (&["--lut", "6", "--lut-group-size", "0"][..], "--lut-group-size must be an integer ≥ 1, got `0`"),
        (&["--lut-group-size", "eight"][..], "--lut-group-size must be an integer ≥ 1, got `eight`"),
        (&["--lut", "6", "--passes", "precision,layout"][..], "`palettize` is not among --passes"),
    ] {
        let (code, _, stderr) = opt(extra);
        assert_eq!(code, 2, "{extra:?}: {stderr}");
        assert!(stderr.contains(needle), "{extra:?}: {stderr}");
        assert!(!out.exists(), "{extra:?}: no output on bad usage");
    }
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

/// `opt --lut` over a module whose layer weights carry folded norm gains (what `lower` does
/// by default) warns and names the fix; lowered with `--keep-norm-gains` it does not.
#[test]
fn lut_over_folded_gains_warns_and_names_keep_norm_gains() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/llama_tiny");
    for (keep, tag) in [(false, "folded"), (true, "kept")] {
        let air = scratch(&format!("tiny.{tag}.air"));
        let mut args =
            vec!["lower", dir.to_str().unwrap(), "-o", air.to_str().unwrap(), "--context", "16", "--batch", "4"];
        if keep {
            args.push("--keep-norm-gains");
        }
        let (code, _, err) = anemllc(&args);
        assert_eq!(code, 0, "{err}");
        let out = scratch(&format!("tiny.{tag}.lut.air"));
        let (code, _, stderr) = anemllc(&["opt", air.to_str().unwrap(), "-o", out.to_str().unwrap(), "--lut", "ffn=6"]);
        assert_eq!(code, 0, "{stderr}");
        let warned = stderr.contains("folded RMSNorm gains") && stderr.contains("--keep-norm-gains");
        assert_eq!(warned, !keep, "keep = {keep}: {stderr}");
        let (_, _, plain) = anemllc(&["opt", air.to_str().unwrap(), "-o", out.to_str().unwrap()]);
        assert!(!plain.contains("folded RMSNorm gains"), "no warning without --lut: {plain}");
    }
}
