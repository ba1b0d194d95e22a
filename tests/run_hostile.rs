//! `anemllc run OUT` on damaged output folders: the interpreter reads weights straight from
//! each package's memory-mapped `weight.bin`, so every blob is checked when the folder is
//! loaded. A missing or truncated `weight.bin`, a blob whose payload offset lies outside
//! the file, or a meta.yaml naming a package that is not there exits 2 with the file named
//! (never a panic, a bus error or a huge allocation); the undamaged folder runs.

mod reference_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use reference_support::fixture_dir;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_anemllc"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A LUT6 conversion of llama_tiny (2 chunks), made once per test under `name`.
fn converted(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("run_hostile").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("out");
    let o = bin()
        .arg("convert")
        .arg(fixture_dir("llama_tiny"))
        .arg("-o")
        .arg(&out)
        .args(["--context", "32", "--batch", "8", "--chunks", "2", "--lut-ffn", "6", "--lut-lmhead", "6"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    out
}

fn run(out: &Path) -> Output {
    bin().arg("run").arg(out).args(["--tokens", "1,2,3", "--decode", "2"]).output().unwrap()
}

/// The first FFN chunk's weight.bin.
fn chunk_weights(out: &Path) -> PathBuf {
    out.join("llama_FFN_PF_lut6_chunk_01of02.mlpackage/Data/com.apple.CoreML/weights/weight.bin")
}

/// `run` exits 2 and its message names `file`.
fn refused(out: &Path, file: &str) -> String {
    let o = run(out);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains(file), "the message does not name {file}: {err}");
    err
}

#[test]
fn the_undamaged_folder_runs_and_reports_its_speed() {
    let out = converted("pristine");
    let o = run(&out);
    let err = text(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("prefill: 3 tokens in") && err.contains("decode: 2 tokens in"), "{err}");
    assert_eq!(text(&o.stdout).trim().split(',').count(), 2, "two generated tokens");
}

#[test]
fn a_missing_weight_bin_is_named() {
    let out = converted("missing");
    std::fs::remove_file(chunk_weights(&out)).unwrap();
    refused(&out, "weight.bin");
}

#[test]
fn a_truncated_weight_bin_is_named() {
    let out = converted("truncated");
    let path = chunk_weights(&out);
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(len / 2).unwrap();
    let err = refused(&out, "weight.bin");
    assert!(err.contains("lut6_chunk_01of02"), "names the package: {err}");
}

#[test]
fn a_blob_offset_outside_the_file_is_named() {
    let out = converted("offset");
    let path = chunk_weights(&out);
    let mut bytes = std::fs::read(&path).unwrap();
    // The first metadata record (offset 64): its payload offset (bytes 16..24) far past the end.
    bytes[64 + 16..64 + 24].copy_from_slice(&(1u64 << 40).to_le_bytes());
    std::fs::write(&path, bytes).unwrap();
    let err = refused(&out, "weight.bin");
    assert!(err.contains("past the end"), "{err}");
}

#[test]
fn a_package_missing_from_the_folder_is_named() {
    let out = converted("no_package");
    let package = out.join("llama_lm_head_lut6.mlpackage");
    std::fs::remove_dir_all(&package).unwrap();
    refused(&out, "llama_lm_head_lut6.mlpackage");
}
