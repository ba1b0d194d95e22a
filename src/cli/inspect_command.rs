//! `anemllc inspect PKG.mlpackage`: the ML program in MIL text form, then a summary
//! (functions, inputs/outputs/states, op counts, weight storage, metadata). Reads any ML
//! Program package, including coremltools-made ones.

use std::path::PathBuf;

use clap::Args;

use super::CliError;
use crate::mil::open_package;
use crate::mil::text::{program_text, summary_text};

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The `.mlpackage` directory to inspect.
    pub package: PathBuf,
    /// Print only the summary, not the program text.
    #[arg(long)]
    pub summary: bool,
    /// Also translate the program back into IR and print it (fails on MIL ops without an IR
    /// counterpart).
    #[arg(long)]
    pub ir: bool,
}

pub fn inspect(args: InspectArgs) -> Result<(), CliError> {
    let pkg = open_package(&args.package).map_err(|e| CliError::input(e.to_string()))?;
    if !args.summary {
        let text = program_text(&pkg).map_err(|e| CliError::input(format!("{}: {e}", args.package.display())))?;
        print!("{text}");
        println!();
    }
    print!("{}", summary_text(&pkg));
    if args.ir {
        let read = crate::mil::read_package(&args.package).map_err(|e| CliError::input(e.to_string()))?;
        println!();
        print!("{}", crate::ir::print_module(&read.module));
    }
    Ok(())
}
