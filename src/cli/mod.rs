//! The `anemllc` command line: a thin shell over the library. Exit codes: 0 success,
//! 1 a conversion/run failure, 2 bad usage or bad input (including malformed IR).

mod compile_command;
mod convert_command;
mod emit_command;
mod inspect_command;
mod ir_commands;
mod lower_command;
mod model_arg;
mod opt_command;
mod run_command;
mod synth_command;

use clap::{Parser, Subcommand};

/// anemllc — compile HuggingFace LLM checkpoints into Core ML ML Programs for the Apple
/// Neural Engine.
#[derive(Parser, Debug)]
#[command(name = "anemllc", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Parse, verify and pretty-print an IR file (.air) in canonical form.
    Fmt(ir_commands::FmtArgs),
    /// Parse and verify an IR file; prints `ok` or the first violated rule.
    Verify(ir_commands::VerifyArgs),
    /// Convert a model (HuggingFace folder, .gguf file, or cached hub id) into Core ML
    /// packages for the ANE in one go
    /// (lower → opt with LUT palettization → split → emit); the output loads in ANEMLL's
    /// chat.py and Swift runtime unchanged.
    Convert(convert_command::ConvertArgs),
    /// Lower a model (HuggingFace folder, .gguf file, or cached hub id) into framework-neutral IR (embed, per-layer
    /// infer/prefill over a KV cache, LM head).
    Lower(lower_command::LowerArgs),
    /// Run a module with the reference interpreter (CPU): prefill the prompt in batches,
    /// decode greedily, print the generated token ids, optionally write every position's
    /// logits as .npy.
    Run(run_command::RunArgs),
    /// Print a Core ML package (.mlpackage) as MIL text plus a summary of its functions,
    /// inputs/outputs/states, op counts and weights.
    Inspect(inspect_command::InspectArgs),
    /// Rewrite a lowered module into ANE-ready form with e-graph passes.
    Opt(opt_command::OptArgs),
    /// Check that a module only uses what the ANE runs (ops, dtypes, dimensions).
    Check(opt_command::CheckArgs),
    /// Write a synthetic HuggingFace Llama checkpoint (random weights, real shapes) for
    /// benchmarks: presets tiny, small, 1b, 3b, 8b.
    Synth(synth_command::SynthArgs),
    /// Write an optimised module as the packages ANEMLL's runtimes load: embeddings, FFN
    /// chunks (infer + prefill sharing weights and the KV state), LM head, meta.yaml and
    /// tokenizer files.
    Emit(emit_command::EmitArgs),
    /// Compile an output folder's packages to .mlmodelc (macOS with Xcode tools only).
    Compile(compile_command::CompileArgs),
    /// Write a llama checkpoint as a GGUF file the way llama.cpp lays it out (benchmarks and
    /// reader tests).
    #[command(hide = true)]
    GgufExport(synth_command::GgufExportArgs),
}

/// An error the CLI reports: a one-line message and an exit code.
#[derive(Debug)]
pub struct CliError {
    pub code: i32,
    pub message: String,
}

impl CliError {
    pub fn input(message: impl Into<String>) -> Self {
        CliError { code: 2, message: message.into() }
    }

    pub fn failure(message: impl Into<String>) -> Self {
        CliError { code: 1, message: message.into() }
    }
}

/// Runs the CLI on the process arguments and returns the exit code.
pub fn main() -> i32 {
    // A full disk / file-size limit must surface as an error naming the file, not a signal.
    crate::util::ignore_file_size_signal();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let result = match cli.command {
        Command::Fmt(args) => ir_commands::fmt(args),
        Command::Verify(args) => ir_commands::verify(args),
        Command::Lower(args) => lower_command::lower(args),
        Command::Opt(args) => opt_command::opt(args),
        Command::Check(args) => opt_command::check(args),
        Command::Run(args) => run_command::run(args),
        Command::Inspect(args) => inspect_command::inspect(args),
        Command::Synth(args) => synth_command::synth(args),
        Command::GgufExport(args) => synth_command::gguf_export(args),
        Command::Emit(args) => {
            crate::util::reuse_large_allocations();
            emit_command::emit(args)
        }
        Command::Convert(args) => {
            crate::util::reuse_large_allocations();
            convert_command::run_convert(args)
        }
        Command::Compile(args) => compile_command::compile(args),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {}", e.message);
            e.code
        }
    }
}
