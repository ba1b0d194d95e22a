//! Build script: sets `cfg(coreml_venv)` for the tests that need the coremltools venv.
//!
//! Those tests carry `#[cfg_attr(not(coreml_venv), ignore = "…")]`, so without the venv
//! they show as ignored in cargo's own summary instead of passing without checking anything.
//! The cfg is set when the interpreter exists (`$ANEMLLC_COREML_PYTHON`, else
//! `.venv-coreml/bin/python`, made by `tests/coreml/setup_venv.sh`), or under CI (`CI` set
//! to anything but empty, `false` or `0`), where the tests must run and fail without it.
//! Like every build-script cfg it applies to all targets of the package, so the library and
//! binary recompile once when it flips.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The venv interpreter the tests use (`tests/mil_common/mod.rs`, `coreml_python`), made
/// absolute against the package root (the working directory of build scripts and tests).
fn coreml_python() -> PathBuf {
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    match std::env::var_os("ANEMLLC_COREML_PYTHON").filter(|p| !p.is_empty()) {
        Some(p) => root.join(p),
        None => root.join(".venv-coreml/bin/python"),
    }
}

/// Whether this is a CI run: `CI` set to a non-empty value other than `false` or `0`.
fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// The first component of `path` (absolute) that does not exist, e.g. `/repo/.venv-coreml`
/// for a missing venv.
fn first_missing(path: &Path) -> &Path {
    path.ancestors().filter(|p| !p.exists()).last().unwrap_or(path)
}

/// Makes cargo rerun this script when `python` appears, changes or disappears.
///
/// An existing interpreter is watched directly. A missing one cannot be: cargo counts a
/// missing `rerun-if-changed` path as changed on every build, which would rerun this script
/// and recompile the whole package every time. Watching its nearest existing ancestor does
/// not work either: cargo scans a watched directory recursively, and for the default path
/// that is the package root, target folder included. So `OUT_DIR/coreml-venv-watch/` holds
/// only a symlink to the first missing component (e.g. `.venv-coreml`), and that folder is
/// watched: cargo's scan skips the dangling link (so the folder, backdated, never looks
/// changed) until the target appears; then it follows the link and sees the new files'
/// modification times. (A target moved into place with old modification times is missed:
/// `touch` it, or set `ANEMLLC_COREML_PYTHON`, which reruns this script.)
fn watch(python: &Path) {
    let dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("coreml-venv-watch");
    if python.exists() {
        let _ = fs::remove_dir_all(&dir);
        println!("cargo::rerun-if-changed={}", python.display());
        return;
    }
    let missing = first_missing(python);
    let link = dir.join("first-missing");
    if fs::read_link(&link).ok().as_deref() != Some(missing) {
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create OUT_DIR/coreml-venv-watch");
        symlink(missing, &link);
        // Created during this run, the folder would look changed to the next build.
        let folder = fs::File::open(&dir).expect("open OUT_DIR/coreml-venv-watch");
        folder.set_modified(SystemTime::UNIX_EPOCH).expect("backdate OUT_DIR/coreml-venv-watch");
    }
    println!("cargo::rerun-if-changed={}", dir.display());
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) {
    std::os::unix::fs::symlink(target, link).expect("symlink in OUT_DIR/coreml-venv-watch");
}

/// Elsewhere (symlinks need privileges on Windows) the folder holds no link, so the venv
/// appearing later needs `touch build.rs` or a change of `ANEMLLC_COREML_PYTHON`.
#[cfg(not(unix))]
fn symlink(_target: &Path, _link: &Path) {}

fn main() {
    println!("cargo::rustc-check-cfg=cfg(coreml_venv)");
    println!("cargo::rerun-if-env-changed=CI");
    println!("cargo::rerun-if-env-changed=ANEMLLC_COREML_PYTHON");
    let python = coreml_python();
    watch(&python);
    if python.is_file() || under_ci() {
        println!("cargo::rustc-cfg=coreml_venv");
    }
}
