//! `anemllc compile OUT`: `.mlpackage` → `.mlmodelc` with Xcode's `coremlcompiler`, then
//! meta.yaml points at the compiled folders. Needs macOS with Xcode command-line tools;
//! elsewhere it explains where compilation can happen instead.

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Args;

use super::CliError;
use crate::package::load::MetaFields;

#[derive(Args, Debug)]
pub struct CompileArgs {
    /// An output folder of `convert`/`emit` (meta.yaml and .mlpackage files).
    pub output: PathBuf,
}

/// The `.mlpackage` folders of an output folder, sorted.
fn packages(dir: &Path) -> Result<Vec<PathBuf>, CliError> {
    let meta = dir.join("meta.yaml");
    let text = std::fs::read_to_string(&meta)
        .map_err(|e| CliError::input(format!("{}: not an output folder of `anemllc convert` ({e})", meta.display())))?;
    if MetaFields::parse(&text).get("model_prefix").is_none() {
        return Err(CliError::input(format!(
            "{}: no `model_prefix`; not written by anemllc or ANEMLL",
            meta.display()
        )));
    }
    let mut pkgs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| CliError::input(format!("{}: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "mlpackage"))
        .collect();
    pkgs.sort();
    if pkgs.is_empty() {
        return Err(CliError::input(format!("{}: no .mlpackage to compile", dir.display())));
    }
    Ok(pkgs)
}

/// Whether `xcrun coremlcompiler` can run here.
fn compiler_available() -> bool {
    cfg!(target_os = "macos")
        && Command::new("xcrun").args(["--find", "coremlcompiler"]).output().is_ok_and(|o| o.status.success())
}

pub fn compile(args: CompileArgs) -> Result<(), CliError> {
    let pkgs = packages(&args.output)?;
    if !compiler_available() {
        return Err(CliError::failure(format!(
            "compiling needs Xcode's `xcrun coremlcompiler`, which exists only on macOS with the Xcode \
             command-line tools ({} package(s) in {} are ready to compile). Either run \
             `anemllc compile {}` on a Mac, or ship the .mlpackage files and compile on the device \
             with MLModel.compileModel(at:). `anemllc run {} --prompt …` tests the packages on this machine.",
            pkgs.len(),
            args.output.display(),
            args.output.display(),
            args.output.display()
        )));
    }
    for pkg in &pkgs {
        eprintln!("compiling {}", pkg.display());
        let status = Command::new("xcrun")
            .arg("coremlcompiler")
            .arg("compile")
            .arg(pkg)
            .arg(&args.output)
            .status()
            .map_err(|e| CliError::failure(format!("xcrun coremlcompiler: {e}")))?;
        if !status.success() {
            return Err(CliError::failure(format!("xcrun coremlcompiler failed on {} ({status})", pkg.display())));
        }
    }
    let meta = args.output.join("meta.yaml");
    let text = std::fs::read_to_string(&meta).map_err(|e| CliError::failure(format!("{}: {e}", meta.display())))?;
    crate::util::write_atomic(&meta, text.replace(".mlpackage", ".mlmodelc").as_bytes())
        .map_err(|e| CliError::failure(format!("{}: {e}", meta.display())))?;
    eprintln!("compiled {} package(s); meta.yaml now names the .mlmodelc folders", pkgs.len());
    Ok(())
}
