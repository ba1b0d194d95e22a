//! `anemllc convert MODEL -o OUT`: the one-command pipeline.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::CliError;
use super::emit_command::{LayoutArgs, on_event, package_bar, print_summary};
use super::lower_command::SizeArgs;
use crate::convert::{ConvertEvent, ConvertOptions, convert};
use crate::opt::{OptOptions, PassRun, fp16_range};
use crate::quant::LutConfig;

#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// The model: a HuggingFace folder (config.json, model.safetensors or shards with
    /// model.safetensors.index.json, tokenizer and chat-template files, copied next to the
    /// packages), a .gguf file (config and tokenizer rebuilt from its metadata; quantized
    /// tensors dequantized as transformers does), or a hub id such as
    /// HuggingFaceTB/SmolLM2-135M-Instruct already in the local Hugging Face cache.
    #[arg(value_name = "MODEL")]
    pub model_dir: PathBuf,
    /// Output folder; it appears only when complete.
    #[arg(short, long)]
    pub output: PathBuf,
    #[command(flatten)]
    pub sizes: SizeArgs,
    /// LUT bits for the decoder layers (1, 2, 3, 4, 6, 8 or none).
    #[arg(long, default_value = "6")]
    pub lut_ffn: String,
    /// LUT bits for the LM head (1, 2, 3, 4, 6, 8 or none).
    #[arg(long, default_value = "6")]
    pub lut_lmhead: String,
    /// LUT bits for the embedding table (1, 2, 3, 4, 6, 8 or none).
    #[arg(long, default_value = "none")]
    pub lut_embed: String,
    /// Output channels sharing one lookup table (ANEMLL: 8).
    #[arg(long, default_value_t = LutConfig::DEFAULT_GROUP_SIZE)]
    pub lut_group_size: usize,
    #[command(flatten)]
    pub layout: LayoutArgs,
    /// Replace the output folder if it exists.
    #[arg(long)]
    pub force: bool,
}

impl ConvertArgs {
    fn lut(&self) -> Result<LutConfig, CliError> {
        let spec = format!("ffn={},lm_head={},embed={}", self.lut_ffn, self.lut_lmhead, self.lut_embed);
        let cfg = LutConfig::parse(&spec).map_err(|e| CliError::input(e.to_string().replace("--lut: ", "--lut-")))?;
        if self.lut_group_size == 0 {
            return Err(CliError::input("--lut-group-size must be at least 1"));
        }
        Ok(cfg.with_group_size(self.lut_group_size))
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// The stage bars: a spinner for `lower`, a bar over the `opt` passes, one over packages.
struct Bars {
    lower: ProgressBar,
    opt: ProgressBar,
    emit: ProgressBar,
}

impl Bars {
    fn new() -> Bars {
        let spinner = ProgressBar::new_spinner();
        spinner.set_style(ProgressStyle::with_template("{prefix:>8} {spinner} {msg}").expect("valid template"));
        spinner.set_prefix("lower");
        let opt = ProgressBar::new(0);
        opt.set_style(
            ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} passes {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        opt.set_prefix("opt");
        Bars { lower: spinner, opt, emit: package_bar() }
    }

    fn bar(&self, stage: &str) -> &ProgressBar {
        match stage {
            "lower" => &self.lower,
            "opt" => &self.opt,
            _ => &self.emit,
        }
    }
}

pub fn run_convert(args: ConvertArgs) -> Result<(), CliError> {
    let lut = args.lut()?;
    let opts = ConvertOptions {
        lower: args.sizes.lower_options(),
        opt: OptOptions { lut, ..Default::default() },
        layout: args.layout.options(),
        force: args.force,
    };
    let bars = Bars::new();
    let emit_progress = on_event(&bars.emit);
    let progress = |e: ConvertEvent<'_>| match e {
        ConvertEvent::StageStart { stage } => {
            let bar = bars.bar(stage);
            if stage == "lower" {
                bar.set_message(args.model_dir.display().to_string());
                bar.enable_steady_tick(Duration::from_millis(120));
            } else if stage == "emit" {
                bar.set_message("weights stream through palettization into the packages");
            }
        }
        ConvertEvent::StageDone { stage, time } => {
            let bar = bars.bar(stage);
            bar.finish_and_clear();
            eprintln!("{stage:>8} done in {}", secs(time));
        }
        ConvertEvent::PassDone { pass, index, total } => {
            bars.opt.set_length(total as u64);
            bars.opt.set_position(index as u64);
            bars.opt.set_message(pass.to_string());
        }
        ConvertEvent::Emit(e) => emit_progress(e),
    };
    let model = super::model_arg::resolve_model(&args.model_dir)?;
    let result = convert(&model, &args.output, &opts, &progress);
    for bar in [&bars.lower, &bars.opt, &bars.emit] {
        bar.finish_and_clear();
    }
    let report = result
        .map_err(|e| if e.is_input() { CliError::input(e.to_string()) } else { CliError::failure(e.to_string()) })?;
    let total: Duration = report.stages.iter().map(|s| s.time).sum();
    eprintln!();
    print_summary(&report.emit);
    // Values too small for fp16 were converted to 0 (overflow stops `convert` earlier).
    for finding in report.opt.passes.iter().flat_map(|p| &p.notes).filter_map(|n| fp16_range::Finding::parse(n)) {
        eprintln!("warning: {}", finding.note());
    }
    for pass in &report.opt.passes {
        if let PassRun::Palettize(p) = &pass.run
            && p.tensors() > 0
        {
            eprintln!("palettized {} weights in {} tensors ({})", p.elements(), p.tensors(), p.config);
        }
    }
    eprintln!(
        "converted in {} ({})",
        secs(total),
        report.stages.iter().map(|s| format!("{} {}", s.stage, secs(s.time))).collect::<Vec<_>>().join(", ")
    );
    Ok(())
}
