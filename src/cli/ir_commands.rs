//! `anemllc fmt` and `anemllc verify`.

use std::path::{Path, PathBuf};

use clap::Args;

use super::CliError;
use crate::ir::{Module, parse_module, print_module, verify_module};

#[derive(Args, Debug)]
pub struct FmtArgs {
    /// The IR file to format.
    pub file: PathBuf,
    /// Rewrite the file in place instead of printing to stdout.
    #[arg(long, short = 'w')]
    pub write: bool,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The IR file to verify.
    pub file: PathBuf,
}

/// Reads, parses and verifies an IR file; errors name the file and position or rule.
pub fn load_verified(path: &Path) -> Result<Module, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| CliError::input(format!("{}: {e}", path.display())))?;
    let module = parse_module(&text).map_err(|e| CliError::input(format!("{}:{e}", path.display())))?;
    verify_module(&module).map_err(|e| CliError::input(format!("{}: {e}", path.display())))?;
    Ok(module)
}

pub fn fmt(args: FmtArgs) -> Result<(), CliError> {
    let module = load_verified(&args.file)?;
    let text = print_module(&module);
    if args.write {
        crate::util::write_atomic(&args.file, text.as_bytes())
            .map_err(|e| CliError::failure(format!("{}: {e}", args.file.display())))?;
    } else {
        print!("{text}");
    }
    Ok(())
}

pub fn verify(args: VerifyArgs) -> Result<(), CliError> {
    let module = load_verified(&args.file)?;
    let ops: usize = module.functions.iter().map(|f| f.nodes.len()).sum();
    println!("ok: {} function(s), {} op(s), {} weight(s)", module.functions.len(), ops, module.weights.len());
    Ok(())
}
