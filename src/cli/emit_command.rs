//! `anemllc emit model.opt.air -o OUT`: an optimised module → the packages, meta.yaml and
//! tokenizer files ANEMLL's runtimes load.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use super::CliError;
use super::ir_commands::load_verified;
use super::run_command::checkpoint_dir;
use crate::checkpoint::Checkpoint;
use crate::package::{EmitEvent, EmitOptions, EmitReport, LayoutOptions, Target, emit_output, summary_table};
use crate::weights::WeightCache;

/// Device family; sets the per-package size budget.
#[derive(Clone, Copy, Debug, Default, ValueEnum)]
pub enum TargetArg {
    /// iPhone/iPad: packages up to 1 GiB.
    #[default]
    Ios,
    /// Mac: packages up to 2 GiB.
    Macos,
}

impl From<TargetArg> for Target {
    fn from(t: TargetArg) -> Target {
        match t {
            TargetArg::Ios => Target::Ios,
            TargetArg::Macos => Target::Macos,
        }
    }
}

/// Output layout flags shared by `emit` and `convert`.
#[derive(Args, Debug, Clone)]
pub struct LayoutArgs {
    /// File-name prefix of the packages (default: llama, qwen or qwen25 by architecture).
    #[arg(long)]
    pub prefix: Option<String>,
    /// Device family: sets the per-package byte budget used to choose the chunk count.
    #[arg(long, value_enum, default_value_t = TargetArg::Ios)]
    pub target: TargetArg,
    /// Number of FFN chunks, or `auto`: the fewest chunks whose weights fit the target's
    /// budget. Any count from 1 to the layer count works; chunks may differ by one layer.
    #[arg(long, default_value = "auto", value_parser = parse_chunks)]
    pub chunks: Chunks,
    /// Per-package weight budget overriding --target, e.g. 800M, 1G, 1500000000.
    #[arg(long, value_parser = parse_bytes)]
    pub max_chunk_bytes: Option<u64>,
}

/// `--chunks auto|N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunks(pub Option<usize>);

fn parse_chunks(s: &str) -> Result<Chunks, String> {
    if s == "auto" {
        return Ok(Chunks(None));
    }
    match s.parse::<usize>() {
        Ok(n) if n > 0 => Ok(Chunks(Some(n))),
        _ => Err(format!("expected `auto` or a positive number of chunks, got {s:?}")),
    }
}

/// Byte counts with optional K/M/G suffix (powers of 1024).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (digits, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                _ => return Err(format!("unknown size suffix in {s:?} (use K, M or G)")),
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    match digits.parse::<u64>().ok().and_then(|v| v.checked_mul(mult)) {
        Some(v) if v > 0 => Ok(v),
        _ => Err(format!("expected a positive byte count such as 800M or 1G, got {s:?}")),
    }
}

impl LayoutArgs {
    pub fn options(&self) -> LayoutOptions {
        LayoutOptions {
            prefix: self.prefix.clone(),
            target: self.target.into(),
            max_chunk_bytes: self.max_chunk_bytes,
            chunks: self.chunks.0,
        }
    }
}

#[derive(Args, Debug)]
pub struct EmitArgs {
    /// The optimised module (output of `anemllc opt`).
    pub file: PathBuf,
    /// Output folder; it appears only when every file is written.
    #[arg(short, long)]
    pub output: PathBuf,
    #[command(flatten)]
    pub layout: LayoutArgs,
    /// Checkpoint folder with the weights and tokenizer files (default: the module's
    /// `checkpoint` attribute).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Replace the output folder if it exists.
    #[arg(long)]
    pub force: bool,
}

/// A progress bar over packages (hidden when stderr is not a terminal).
pub(super) fn package_bar() -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} packages {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix("emit");
    bar
}

/// Progress callback driving `bar`.
pub(super) fn on_event(bar: &ProgressBar) -> impl Fn(EmitEvent<'_>) + Sync + '_ {
    move |e| match e {
        EmitEvent::Start { parts, .. } => bar.set_length(parts as u64),
        EmitEvent::PartDone { part } => {
            bar.set_message(part.stem.clone());
            bar.inc(1);
        }
    }
}

/// The closing lines: summary table and what to run next.
pub(super) fn print_summary(report: &EmitReport) {
    eprintln!("{}", summary_table(report));
    let out = report.out.display();
    eprintln!("wrote {out} (meta.yaml, {} tokenizer file(s))", report.tokenizer_files.len());
    eprintln!("next: anemllc run {out} --prompt \"Hello\"   (CPU reference run of these packages)");
    eprintln!("      anemllc compile {out}                (on a Mac; or copy {out} to the device)");
}

pub fn emit(args: EmitArgs) -> Result<(), CliError> {
    let module = load_verified(&args.file)?;
    let dir = checkpoint_dir(&args.file, args.model.as_deref(), module.attr_str("checkpoint"))?;
    let ckpt = Checkpoint::open(&dir).map_err(|e| CliError::input(e.to_string()))?;
    let weights = WeightCache::new(&module, Arc::new(ckpt));
    let opts = EmitOptions {
        layout: args.layout.options(),
        force: args.force,
        tokenizer_dir: Some(dir.clone()),
        model_name: dir.file_name().and_then(|n| n.to_str()).map(str::to_string),
    };
    let bar = package_bar();
    let result = emit_output(&module, &weights, &opts, &args.output, &on_event(&bar));
    bar.finish_and_clear();
    let report = result.map_err(|e| {
        let msg = format!("{}: {e}", args.output.display());
        if e.is_input() { CliError::input(msg) } else { CliError::failure(msg) }
    })?;
    print_summary(&report);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts() {
        assert_eq!(parse_bytes("800M"), Ok(800 << 20));
        assert_eq!(parse_bytes("1G"), Ok(1 << 30));
        assert_eq!(parse_bytes("1500"), Ok(1500));
        assert!(parse_bytes("0").is_err());
        assert!(parse_bytes("1T").is_err());
        assert!(parse_bytes("x").is_err());
        assert_eq!(parse_chunks("auto"), Ok(Chunks(None)));
        assert_eq!(parse_chunks("3"), Ok(Chunks(Some(3))));
        assert!(parse_chunks("0").is_err());
    }
}
