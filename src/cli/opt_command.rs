//! `anemllc opt` (e-graph passes, then the `palettize` module transform) and `anemllc check`
//! (the ANE check).

use std::path::PathBuf;

use clap::Args;

use super::CliError;
use super::ir_commands::load_verified;
use crate::ir::print_module;
use crate::opt::{OptError, OptOptions, check_module, optimize_with, pass_names};
use crate::quant::LutConfig;

#[derive(Args, Debug)]
pub struct OptArgs {
    /// The lowered IR file (.air).
    pub file: PathBuf,
    /// Where to write the optimised IR.
    #[arg(long, short = 'o')]
    pub output: PathBuf,
    /// Comma-separated passes to run in order (default: all, in pipeline order: precision,
    /// layout, rmsnorm, attention, kv-state, palettize).
    #[arg(long, value_delimiter = ',')]
    pub passes: Vec<String>,
    /// LUT palettization for the `palettize` pass: `part=bits` for the parts ffn, lm_head and
    /// embed, bits 1, 2, 3, 4, 6, 8 or `none` (e.g. `ffn=6,lm_head=6,embed=none`); a bare `N`
    /// means `ffn=N,lm_head=N`. Default: off (the pass leaves the module unchanged).
    #[arg(long, value_name = "SPEC")]
    pub lut: Option<String>,
    /// Output channels (rows of axis 0) per lookup table for `--lut` (ANEMLL: 8).
    #[arg(long, value_name = "N")]
    pub lut_group_size: Option<String>,
    /// Print the module after this pass to stdout.
    #[arg(long)]
    pub dump_after: Option<String>,
    /// Print per pass and function: iterations, e-nodes, stop reason, rules fired, cost; for
    /// palettize, the tensors per part with bits, elements, reconstruction error and time.
    #[arg(long)]
    pub report: bool,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The IR file to check.
    pub file: PathBuf,
}

/// The options `--lut`, `--lut-group-size` and `--report` ask for; bad values are usage errors.
fn opt_options(args: &OptArgs, names: &[&str]) -> Result<OptOptions, CliError> {
    let mut lut = match &args.lut {
        Some(spec) => LutConfig::parse(spec).map_err(|e| CliError::input(e.to_string()))?,
        None => LutConfig::default(),
    };
    if let Some(g) = &args.lut_group_size {
        lut = lut.with_group_size(LutConfig::parse_group_size(g).map_err(|e| CliError::input(e.to_string()))?);
    }
    if args.lut.is_some() && !names.is_empty() && !names.contains(&"palettize") {
        return Err(CliError::input("--lut has no effect: `palettize` is not among --passes"));
    }
    Ok(OptOptions { lut, measure_lut_error: args.report, calibration: None })
}

pub fn opt(args: OptArgs) -> Result<(), CliError> {
    let names: Vec<&str> = args.passes.iter().map(String::as_str).collect();
    if let Some(d) = &args.dump_after
        && !pass_names().contains(&d.as_str())
    {
        return Err(CliError::input(format!("--dump-after: unknown pass `{d}` (passes: {})", pass_names().join(", "))));
    }
    let options = opt_options(&args, &names)?;
    let module = load_verified(&args.file)?;
    if options.lut.ffn.is_some() && module.weights.iter().any(|w| crate::frontend::norm_fold::is_folded(&w.recipe)) {
        eprintln!(
            "warning: {}: the layer weights carry folded RMSNorm gains (`scale_along`); palettized, they lose \
             accuracy on real models (docs/opt.md, \"Only for dense layers\"): lower with --keep-norm-gains \
             before `opt --lut`, as `convert` does",
            args.file.display()
        );
    }
    let dump = args.dump_after.clone();
    let (module, report) = optimize_with(&module, &names, &options, |pass, m| {
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
