//! `anemllc convert` under hostile conditions: the same checkpoint converted with 1 and 2
//! rayon threads gives byte-identical folders; a full disk (`ulimit -f`) or a kill
//! (SIGINT/SIGKILL) at any moment never leaves a folder under the output name that looks
//! complete — the output either is complete and loads, or does not exist.

mod hostile_support;
mod mil_common;
mod reference_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use mil_common::dir_contents;
use reference_support::fixture_dir;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_anemllc")
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("convert_reliability").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn convert_cmd(fixture: &str, out: &Path) -> Command {
    let mut c = Command::new(bin());
    c.arg("convert").arg(fixture_dir(fixture)).arg("-o").arg(out).args(["--context", "32", "--batch", "8"]);
    c
}

#[test]
fn thread_count_does_not_change_a_byte() {
    let dir = scratch("threads");
    let mut folders = Vec::new();
    for threads in ["1", "2"] {
        let out = dir.join(format!("t{threads}"));
        let o =
            convert_cmd("llama_tiny", &out).args(["--chunks", "2"]).env("RAYON_NUM_THREADS", threads).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        folders.push(dir_contents(&out));
    }
    assert!(folders[0].keys().any(|k| k.ends_with("weight.bin")));
    assert_eq!(folders[0].keys().collect::<Vec<_>>(), folders[1].keys().collect::<Vec<_>>());
    for (k, v) in &folders[0] {
        assert!(&folders[1][k] == v, "{k} differs between RAYON_NUM_THREADS=1 and 2");
    }
}

/// A weight with values beyond fp16 stops `convert` before anything is written (exit 2,
/// naming the weight and the counts); values that only flush to zero convert with a warning;
/// a pristine checkpoint gets neither.
#[test]
fn weights_beyond_fp16_are_refused_and_flushed_ones_warned_about() {
    let dir = scratch("fp16_range");
    let ckpt = dir.join("ckpt");
    hostile_support::copy_fixture("llama_tiny", &ckpt);
    let convert = |out: &str| {
        let o = Command::new(bin())
            .arg("convert")
            .arg(&ckpt)
            .arg("-o")
            .arg(dir.join(out))
            .args(["--context", "32", "--batch", "8"])
            .output()
            .unwrap();
        (o.status.code(), String::from_utf8_lossy(&o.stderr).to_string())
    };
    let warnings = |stderr: &str| stderr.lines().filter(|l| l.starts_with("warning: ")).count();
    let (code, stderr) = convert("pristine");
    assert_eq!((code, warnings(&stderr)), (Some(0), 0), "{stderr}");

    let weight = "model.layers.0.mlp.down_proj.weight";
    let st = ckpt.join("model.safetensors");
    hostile_support::edit_safetensors(&st, |s| s.poke(weight, 7, &1.0e-9f32.to_le_bytes()));
    let (code, stderr) = convert("flushed");
    assert_eq!(code, Some(0), "{stderr}");
    let warning: Vec<&str> = stderr.lines().filter(|l| l.starts_with("warning: ")).collect();
    assert_eq!(warning.len(), 1, "{stderr}");
    assert!(
        warning[0].contains("down_proj") && warning[0].ends_with(": 0 of 8192 values overflow fp16, 1 flush to zero")
    );

    hostile_support::edit_safetensors(&st, |s| {
        s.poke(weight, 3, &1.0e5f32.to_le_bytes());
        s.poke(weight, 70, &(-65520.0f32).to_le_bytes());
        // Rounds to 65504, the largest finite fp16: not an overflow.
        s.poke(weight, 9, &65519.0f32.to_le_bytes());
    });
    let (code, stderr) = convert("overflow");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("beyond the fp16 range")
            && stderr.contains(": 2 of 8192 values overflow fp16, 1 flush to zero"),
        "{stderr}"
    );
    assert!(!dir.join("overflow").exists());
    assert!(std::fs::read_dir(&dir).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().contains("partial")));
}

/// A norm gain folded into a projection (`frontend::norm_fold`) multiplies the weight's
/// columns: W = 300 and g = 300 each fit fp16, their product 90000 does not. `convert`
/// refuses the folded weight like any other overflowing weight, naming it and saying how to
/// keep the gain unfolded; with `--keep-norm-gains` the same checkpoint converts. (Dense
/// layers: palettized ones keep their gains anyway, see `convert::folds_norm_gains`.)
#[test]
fn a_folded_gain_that_overflows_fp16_is_refused_with_the_way_out() {
    let dir = scratch("fold_overflow");
    let ckpt = dir.join("ckpt");
    hostile_support::copy_fixture("llama_tiny", &ckpt);
    hostile_support::edit_safetensors(&ckpt.join("model.safetensors"), |s| {
        // Row 0, column 5 of the gate projection; entry 5 of the gain that feeds it.
        s.poke("model.layers.0.mlp.gate_proj.weight", 5, &300.0f32.to_le_bytes());
        s.poke("model.layers.0.post_attention_layernorm.weight", 5, &300.0f32.to_le_bytes());
    });
    let convert = |out: &str, extra: &[&str]| {
        let o = Command::new(bin())
            .arg("convert")
            .arg(&ckpt)
            .arg("-o")
            .arg(dir.join(out))
            .args(["--context", "32", "--batch", "8", "--lut-ffn", "none", "--lut-lmhead", "none"])
            .args(extra)
            .output()
            .unwrap();
        (o.status.code(), String::from_utf8_lossy(&o.stderr).to_string())
    };
    let (code, stderr) = convert("folded", &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("@layers.0.gate_proj.folded: 1 of 8192 values overflow fp16"), "{stderr}");
    assert!(stderr.contains("--keep-norm-gains"), "{stderr}");
    assert!(!dir.join("folded").exists());
    let (code, stderr) = convert("kept", &["--keep-norm-gains"]);
    assert_eq!(code, Some(0), "{stderr}");
    // An overflow without a folded gain does not mention the fold.
    hostile_support::edit_safetensors(&ckpt.join("model.safetensors"), |s| {
        s.poke("model.layers.0.post_attention_layernorm.weight", 5, &1.0f32.to_le_bytes());
        s.poke("model.layers.0.mlp.down_proj.weight", 3, &1.0e5f32.to_le_bytes());
    });
    let (code, stderr) = convert("down", &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("down_proj") && !stderr.contains("--keep-norm-gains"), "{stderr}");
}

#[test]
fn full_disk_fails_with_a_message_and_no_output() {
    let dir = scratch("disk_full");
    let out = dir.join("out");
    // 64 blocks of 512 bytes: smaller than the embeddings' weight file.
    let o = Command::new("sh")
        .arg("-c")
        .arg("ulimit -f 64 && exec \"$@\"")
        .arg("sh")
        .arg(bin())
        .arg("convert")
        .arg(fixture_dir("llama_tiny"))
        .arg("-o")
        .arg(&out)
        .args(["--context", "32", "--batch", "8"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("weight.bin") || err.contains("File too large"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!out.exists(), "output folder left behind");
    let names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(names.is_empty(), "leftovers: {names:?}");
}

/// Kills conversions at increasing delays; after each, the output is absent or complete, and
/// a later conversion to the same name cleans up what the killed one left.
#[test]
fn killed_conversions_never_leave_a_complete_looking_output() {
    let dir = scratch("killed");
    let mut killed = 0;
    let mut killed_outputs = Vec::new();
    for (i, delay_ms) in [5u64, 30, 80, 150, 250, 400, 600].into_iter().enumerate() {
        for signal in ["KILL", "INT"] {
            let out = dir.join(format!("out{i}{signal}"));
            let mut cmd = convert_cmd("llama_tiny", &out);
            cmd.stderr(std::process::Stdio::null()).stdout(std::process::Stdio::null());
            // A test run as a background job inherits SIGINT as ignored; the child gets the
            // default action back so the INT kills land.
            #[cfg(unix)]
            {
                use std::os::unix::process::CommandExt;
                // SAFETY: runs in the forked child before exec and only calls `signal`, which
                // is async-signal-safe; it allocates nothing and touches no shared state.
                unsafe {
                    cmd.pre_exec(|| {
                        if libc::signal(libc::SIGINT, libc::SIG_DFL) == libc::SIG_ERR {
                            return Err(std::io::Error::last_os_error());
                        }
                        Ok(())
                    });
                }
            }
            let mut child = cmd.spawn().unwrap();
            std::thread::sleep(Duration::from_millis(delay_ms));
            let finished = child.try_wait().unwrap().is_some();
            if !finished {
                let _ = Command::new("kill").arg(format!("-{signal}")).arg(child.id().to_string()).status();
            }
            let status = child.wait().unwrap();
            if status.success() {
                let loaded = anemllc::package::load_output(&out);
                assert!(loaded.is_ok(), "a finished conversion must load: {:?}", loaded.err());
            } else {
                killed += 1;
                assert!(!out.exists(), "killed after {delay_ms} ms by SIG{signal}: {} exists", out.display());
                killed_outputs.push(out);
            }
        }
    }
    assert!(killed > 0, "no conversion was interrupted; the delays are too long for this machine");
    // A SIGKILL leaves a hidden `.NAME.partial-PID` folder; converting to the same name again
    // removes it (its process is gone) and succeeds.
    for out in &killed_outputs {
        let o = convert_cmd("llama_tiny", out).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let leftovers: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.contains(".partial-"))
        .collect();
    assert!(leftovers.is_empty(), "stale staging folders survived a new conversion: {leftovers:?}");
}
