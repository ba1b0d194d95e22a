//! `anemllc opt` (e-graph passes) and `anemllc check` (the ANE check).

use std::path::PathBuf;

use clap::Args;

use super::CliError;
use super::ir_commands::load_verified;
use crate::ir::print_module;
use crate::opt::{OptError, check_module, optimize, pass_names};

#[derive(Args, Debug)]
pub struct OptArgs {
    /// The lowered IR file (.air).
    pub file: PathBuf,
    /// Where to write the optimised IR.
    #[arg(long, short = 'o')]
    pub output: PathBuf,
    /// Comma-separated passes to run in order (default: all, in pipeline order).
    #[arg(long, value_delimiter = ',')]
    pub passes: Vec<String>,
    /// Print the module after this pass to stdout.
    #[arg(long)]
    pub dump_after: Option<String>,
    /// Print per pass and function: iterations, e-nodes, stop reason, rules fired, cost.
    #[arg(long)]
    pub report: bool,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The IR file to check.
    pub file: PathBuf,
}

pub fn opt(args: OptArgs) -> Result<(), CliError> {
    let module = load_verified(&args.file)?;
    let names: Vec<&str> = args.passes.iter().map(String::as_str).collect();
    if let Some(d) = &args.dump_after
        && !pass_names().contains(&d.as_str())
    {
        return Err(CliError::input(format!("--dump-after: unknown pass `{d}` (passes: {})", pass_names().join(", "))));
    }
    let dump = args.dump_after.clone();
    let (module, report) = optimize(&module, &names, |pass, m| {
        if dump.as_deref() == Some(pass) {
            print!("{}", print_module(m));
        }
    })
    .map_err(|e| match e {
        OptError::UnknownPass(_) => CliError::input(e.to_string()),
        _ => CliError::failure(e.to_string()),
    })?;
    crate::util::write_atomic(&args.output, print_module(&module).as_bytes())
        .map_err(|e| CliError::failure(format!("{}: {e}", args.output.display())))?;
    if args.report {
        eprint!("{report}");
    }
    Ok(())
}

pub fn check(args: CheckArgs) -> Result<(), CliError> {
    let module = load_verified(&args.file)?;
    let errors = check_module(&module);
    if errors.is_empty() {
        println!("ok: ANE-ready ({} function(s))", module.functions.len());
        return Ok(());
    }
    for e in &errors {
        eprintln!("{e}");
    }
    Err(CliError::failure(format!("{} ANE check violation(s); first: {}", errors.len(), errors[0])))
}
