//! `anemllc convert MODEL -o OUT`: the one-command pipeline.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::CliError;
use super::emit_command::{LayoutArgs, on_event, package_bar, print_summary};
use super::lower_command::SizeArgs;
use crate::calib::{CalibInput, CalibOptions};
use crate::convert::{ConvertEvent, ConvertOptions, Fp16Scale, ResidualScaleReport, convert};
use crate::frontend::LowerOptions;
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
    /// LUT bits for the decoder layers (1, 2, 3, 4, 6, 8 or none), or auto:B for mixed bits
    /// with an average budget of B bits per weight (each tensor gets 2, 3, 4, 6 or 8 by
    /// measured sensitivity; best with --calibrate).
    #[arg(long, default_value = "6")]
    pub lut_ffn: String,
    /// LUT bits for the LM head (1, 2, 3, 4, 6, 8, none or auto:B).
    #[arg(long, default_value = "6")]
    pub lut_lmhead: String,
    /// LUT bits for the embedding table (1, 2, 3, 4, 6, 8 or none).
    #[arg(long, default_value = "none")]
    pub lut_embed: String,
    /// Calibrate palettization on text: the model runs on the reference interpreter and every
    /// matmul's input statistics weight its k-means (sensitivity-weighted LUTs). Without a
    /// value: the built-in mixed-domain English text; with FILE: plain UTF-8 text, or JSONL
    /// with one chat per line ({"messages": [{"role", "content"}…]}) rendered with the
    /// model's chat template.
    #[arg(long, value_name = "FILE", num_args = 0..=1)]
    pub calibrate: Option<Option<PathBuf>>,
    /// Most calibration tokens to run (default: about 4e11 / parameters up to 500M
    /// parameters, 1.5e11 / parameters above, at least 128 — ~2 500 for 135M, 128 for 1B).
    #[arg(long, value_name = "N", requires = "calibrate")]
    pub calibrate_tokens: Option<usize>,
    /// Keep the residual stream within fp16 by scaling it by α (embeddings and every branch
    /// added to the stream; the RMSNorms cancel it, so the logits are unchanged): auto
    /// measures the stream on the built-in text for models known to exceed fp16 (Gemma 3)
    /// and picks a power of two leaving 2x headroom below 65504; none never scales; a number
    /// in (0, 1] scales by it.
    #[arg(long, value_name = "auto|none|ALPHA", default_value = "auto")]
    pub fp16_scale: String,
    /// The LM head returns each vocabulary piece's argmax (argmax_idx int32 [K], argmax_val
    /// [K]) instead of logits, as ANEMLL 0.3.6's --argmax; meta.yaml says
    /// argmax_in_model: true. Greedy decoding only.
    #[arg(long)]
    pub argmax: bool,
    /// Keep the RMSNorm gains as multiplies instead of folding them into the projections
    /// that read the norms (folding is the default when the layer weights stay dense; it
    /// saves one op per norm, but a folded weight W·diag(g) must fit fp16).
    #[arg(long)]
    pub keep_norm_gains: bool,
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

/// The activation section of the fp16 range report: the largest matmul inputs seen in
/// calibration, against the fp16 limit.
fn activation_summary(c: &crate::calib::Calibration) -> String {
    let mut peaks: Vec<(&String, f32)> = c.tensors.iter().map(|(k, s)| (k, s.max_abs)).collect();
    peaks.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    let top: Vec<String> = peaks.iter().take(3).map(|(k, m)| format!("{m:.1} into {k}")).collect();
    let over = peaks.iter().filter(|(_, m)| *m >= 65504.0).count();
    format!(
        "calibration: {} of {} tokens ({}); largest matmul inputs |x|: {}; {}",
        c.tokens,
        c.available_tokens,
        c.source,
        top.join(", "),
        if over == 0 { "all within fp16 (65504)".to_string() } else { format!("{over} beyond fp16 range") }
    )
}

/// The residual-stream part of the fp16 range report.
fn residual_summary(r: &ResidualScaleReport) -> String {
    let scale = if r.alpha == 1.0 {
        "no residual scaling needed".to_string()
    } else {
        format!("residual scale α = {}", r.alpha)
    };
    match r.peak {
        Some(p) => format!(
            "activations: residual stream max |x| {:.0} in fp32 over {} tokens of the built-in text ({}); {scale}{}",
            p.max_abs,
            p.tokens,
            if p.max_abs > 65504.0 { "beyond fp16's 65504" } else { "within fp16" },
            if r.alpha == 1.0 { String::new() } else { format!(" → max {:.0}", f64::from(p.max_abs) * r.alpha) }
        ),
        None => format!("activations: {scale} (given by --fp16-scale)"),
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// The stage bars: a spinner for `lower`, a bar over the `opt` passes, one over packages.
struct Bars {
    lower: ProgressBar,
    calibrate: ProgressBar,
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
        let calibrate = ProgressBar::new(0);
        calibrate.set_style(
            ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} tokens {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        calibrate.set_prefix("calib");
        Bars { lower: spinner, calibrate, opt, emit: package_bar() }
    }

    fn bar(&self, stage: &str) -> &ProgressBar {
        match stage {
            "lower" => &self.lower,
            "calibrate" | "measure" => &self.calibrate,
            "opt" => &self.opt,
            _ => &self.emit,
        }
    }
}

pub fn run_convert(args: ConvertArgs) -> Result<(), CliError> {
    let lut = args.lut()?;
    if args.calibrate_tokens == Some(0) {
        return Err(CliError::input("--calibrate-tokens must be at least 1"));
    }
    let calibrate = args.calibrate.as_ref().map(|file| CalibOptions {
        input: file.clone().map_or(CalibInput::Builtin, CalibInput::File),
        max_tokens: args.calibrate_tokens,
        ..CalibOptions::builtin()
    });
    if calibrate.is_some() && lut.is_off() {
        return Err(CliError::input("--calibrate tunes palettization, but every --lut-* part is none"));
    }
    let fp16_scale = match args.fp16_scale.as_str() {
        "auto" => Fp16Scale::Auto,
        "none" => Fp16Scale::Off,
        v => match v.parse::<f64>() {
            Ok(a) if a > 0.0 && a <= 1.0 => Fp16Scale::Value(a),
            _ => return Err(CliError::input(format!("--fp16-scale {v:?}: expected auto, none or a number in (0, 1]"))),
        },
    };
    let opts = ConvertOptions {
        lower: LowerOptions {
            argmax: args.argmax,
            fold_norm_gains: !args.keep_norm_gains,
            ..args.sizes.lower_options()
        },
        opt: OptOptions { lut, ..Default::default() },
        layout: args.layout.options(),
        force: args.force,
        calibrate,
        fp16_scale,
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
        ConvertEvent::Calibrate { done, total } => {
            bars.calibrate.set_length(total as u64);
            bars.calibrate.set_position(done as u64);
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
    for bar in [&bars.lower, &bars.calibrate, &bars.opt, &bars.emit] {
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
    if let Some(r) = &report.residual {
        eprintln!("{}", residual_summary(r));
    }
    if let Some(c) = &report.calibration {
        eprintln!("{}", activation_summary(c));
    }
    for pass in &report.opt.passes {
        if let PassRun::Palettize(p) = &pass.run
            && p.tensors() > 0
        {
            eprintln!("palettized {} weights in {} tensors ({})", p.elements(), p.tensors(), p.config);
            for note in pass.notes.iter().filter(|n| n.starts_with("calibrated")) {
                eprintln!("{note}");
            }
            if p.config.auto.iter().any(Option::is_some) {
                for part in &p.parts {
                    let mut by_bits: std::collections::BTreeMap<u32, usize> = std::collections::BTreeMap::new();
                    for t in &part.tensors {
                        *by_bits.entry(t.bits).or_default() += t.ty.numel();
                    }
                    let total: usize = by_bits.values().sum();
                    if total > 0 {
                        let avg = by_bits.iter().map(|(b, n)| f64::from(*b) * *n as f64).sum::<f64>() / total as f64;
                        let mix: Vec<String> = by_bits
                            .iter()
                            .map(|(b, n)| format!("{b} bits: {:.0}%", 100.0 * *n as f64 / total as f64))
                            .collect();
                        eprintln!("  {}: {avg:.2} bits per weight on average ({})", part.part, mix.join(", "));
                    }
                }
            }
        }
    }
    eprintln!(
        "converted in {} ({})",
        secs(total),
        report.stages.iter().map(|s| format!("{} {}", s.stage, secs(s.time))).collect::<Vec<_>>().join(", ")
    );
    Ok(())
}
