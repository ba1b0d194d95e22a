//! [`convert`]: the whole pipeline in one process — lower → opt (every pass, palettization
//! as configured) → split + emit — replacing ANEMLL's convert_model.sh.
//!
//! Weights are never loaded whole: lowering reads only the safetensors headers, the passes
//! rewrite recipes, and emission materialises each weight from the memory-mapped
//! checkpoint through its recipe (cast, reshape, k-means palettization, …) straight into the
//! package that stores it. The output folder appears only when complete (see
//! [`emit_output`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::checkpoint::Checkpoint;
use crate::frontend::{LowerError, LowerOptions, lower_checkpoint};
use crate::opt::fp16_range::Finding;
use crate::opt::{OptError, OptOptions, OptReport, optimize_with};
use crate::package::{EmitEvent, EmitOptions, EmitOutputError, EmitReport, LayoutOptions, emit_output};
use crate::weights::WeightCache;

/// Everything `convert` can be told.
#[derive(Clone, Debug)]
pub struct ConvertOptions {
    pub lower: LowerOptions,
    pub opt: OptOptions,
    pub layout: LayoutOptions,
    /// Replace an existing output folder.
    pub force: bool,
    /// Calibrate palettization on text first (`--calibrate`); `None`: data-free.
    pub calibrate: Option<crate::calib::CalibOptions>,
    /// Residual scaling against fp16 overflow (`--fp16-scale`).
    pub fp16_scale: Fp16Scale,
}

/// `--fp16-scale`: how the residual stream is kept within fp16.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Fp16Scale {
    /// Measure the residual stream on the built-in text for models known to exceed fp16
    /// (sandwich-norm models: Gemma 3) and scale when it does; leave others as they are.
    #[default]
    Auto,
    /// Never scale.
    Off,
    /// Scale by this factor in (0, 1], measured or not.
    Value(f64),
}

/// Tokens of the built-in text run to measure the residual stream (`--fp16-scale auto`).
pub const RESIDUAL_PEAK_TOKENS: usize = 256;

/// What the fp16 residual scaling found and did.
#[derive(Clone, Debug, PartialEq)]
pub struct ResidualScaleReport {
    /// The measured peak (`None` for an explicit value).
    pub peak: Option<crate::calib::peaks::ResidualPeak>,
    /// The factor applied (1: none).
    pub alpha: f64,
}

/// One pipeline stage and how long it took.
#[derive(Clone, Debug, PartialEq)]
pub struct StageTime {
    pub stage: &'static str,
    pub time: Duration,
}

/// What a conversion did.
#[derive(Clone, Debug)]
pub struct ConvertReport {
    pub stages: Vec<StageTime>,
    pub opt: OptReport,
    pub emit: EmitReport,
    /// The calibration statistics, when `--calibrate` ran.
    pub calibration: Option<Arc<crate::calib::Calibration>>,
    /// The residual measurement and scale, when one was measured or given.
    pub residual: Option<ResidualScaleReport>,
}

/// Progress of a conversion, for progress bars.
#[derive(Clone, Debug)]
pub enum ConvertEvent<'a> {
    StageStart {
        stage: &'static str,
    },
    StageDone {
        stage: &'static str,
        time: Duration,
    },
    /// Calibration ran `done` of `total` tokens.
    Calibrate {
        done: usize,
        total: usize,
    },
    /// An `opt` pass finished (`index` of `total`).
    PassDone {
        pass: &'a str,
        index: usize,
        total: usize,
    },
    Emit(EmitEvent<'a>),
}

/// Why a conversion failed; [`ConvertError::is_input`] separates bad input from failures.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("{path} already exists; pass --force to replace it")]
    OutputExists { path: PathBuf },
    #[error(transparent)]
    Lower(Box<LowerError>),
    #[error("opt: {0}")]
    Opt(#[from] OptError),
    #[error(transparent)]
    Calib(#[from] crate::calib::CalibError),
    #[error("{0}")]
    Checkpoint(String),
    #[error(transparent)]
    Emit(#[from] EmitOutputError),
    /// `folded`: a listed weight has an RMSNorm gain folded in (`frontend::norm_fold`).
    #[error(
        "{} weight(s) hold values beyond the fp16 range (|v| ≥ 65520), which the fp16 Core ML packages cannot represent:\n  {}{}",
        .notes.len(),
        .notes.join("\n  "),
        if *.folded {
            "\n(weights named `….folded` are projections with their RMSNorm gain folded in, W·diag(g): \
             convert with --keep-norm-gains to keep the gains as multiplies)"
        } else {
            ""
        }
    )]
    Fp16Overflow { notes: Vec<String>, folded: bool },
}

impl ConvertError {
    /// True when the input (checkpoint, options, existing output) is at fault.
    pub fn is_input(&self) -> bool {
        match self {
            ConvertError::OutputExists { .. } | ConvertError::Checkpoint(_) | ConvertError::Fp16Overflow { .. } => true,
            ConvertError::Lower(e) => !matches!(**e, LowerError::Internal { .. }),
            ConvertError::Opt(_) => false,
            ConvertError::Calib(e) => e.is_input(),
            ConvertError::Emit(e) => e.is_input(),
        }
    }
}

/// Converts the checkpoint folder `model_dir` into the output folder `out`.
pub fn convert(
    model_dir: &Path,
    out: &Path,
    opts: &ConvertOptions,
    progress: &(dyn Fn(ConvertEvent<'_>) + Sync),
) -> Result<ConvertReport, ConvertError> {
    if out.exists() && !opts.force {
        return Err(ConvertError::OutputExists { path: out.to_path_buf() });
    }
    let mut stages = Vec::new();
    let mut timed = |stage: &'static str, start: Instant| {
        let time = start.elapsed();
        progress(ConvertEvent::StageDone { stage, time });
        stages.push(StageTime { stage, time });
    };

    // The tokenizer and template files are read (for a GGUF file: rebuilt) before any heavy
    // work, so a broken one fails in a second rather than after palettization.
    crate::chat::ModelFiles::read(model_dir).map_err(|e| ConvertError::Checkpoint(e.to_string()))?;

    progress(ConvertEvent::StageStart { stage: "lower" });
    let t = Instant::now();
    // Norm gains fold into the projections unless those are palettized (see
    // `LowerOptions::fold_norm_gains`); calibration lowers the same way.
    let lower = LowerOptions { fold_norm_gains: folds_norm_gains(opts), ..opts.lower };
    let mut lowered = lower_checkpoint(model_dir, &lower).map_err(|e| ConvertError::Lower(Box::new(e)))?;
    timed("lower", t);

    let residual = match opts.fp16_scale {
        Fp16Scale::Off => None,
        Fp16Scale::Value(alpha) => Some(ResidualScaleReport { peak: None, alpha }),
        Fp16Scale::Auto if has_sandwich_norms(&lowered) => {
            progress(ConvertEvent::StageStart { stage: "measure" });
            let t = Instant::now();
            let peak = crate::calib::peaks::residual_peak(
                model_dir,
                &crate::calib::CalibInput::Builtin,
                RESIDUAL_PEAK_TOKENS,
            )?;
            timed("measure", t);
            let alpha = crate::frontend::residual_scale::choose_alpha(peak.max_abs);
            Some(ResidualScaleReport { peak: Some(peak), alpha })
        }
        Fp16Scale::Auto => None,
    };
    if let Some(r) = residual.as_ref().filter(|r| r.alpha != 1.0) {
        crate::frontend::residual_scale::scale_residual(&mut lowered, r.alpha).map_err(ConvertError::Checkpoint)?;
    }

    let mut opt_options = opts.opt.clone();
    let mut calibration = None;
    if let Some(c) = &opts.calibrate {
        progress(ConvertEvent::StageStart { stage: "calibrate" });
        let t = Instant::now();
        let c = crate::calib::CalibOptions { fold_norm_gains: lower.fold_norm_gains, ..c.clone() };
        let stats = Arc::new(crate::calib::calibrate(model_dir, &c, &|done, total| {
            progress(ConvertEvent::Calibrate { done, total })
        })?);
        timed("calibrate", t);
        opt_options.calibration = Some(stats.clone());
        calibration = Some(stats);
    }

    progress(ConvertEvent::StageStart { stage: "opt" });
    let t = Instant::now();
    let total = crate::opt::pass_names().len();
    let mut index = 0;
    let (module, opt_report) = optimize_with(&lowered, &[], &opt_options, |pass, _| {
        index += 1;
        progress(ConvertEvent::PassDone { pass, index, total });
    })?;
    timed("opt", t);
    // Overflowing weights would become ±inf (dense) or fail palettization: refuse them now,
    // naming each, before anything is written. The report names the lowered module's
    // weights, so it tells whether a norm gain folded into a projection is involved.
    let overflowing: Vec<Finding> = opt_report
        .passes
        .iter()
        .flat_map(|p| &p.notes)
        .filter_map(|n| Finding::parse(n))
        .filter(|f| f.stats.overflow > 0)
        .collect();
    let folded = overflowing
        .iter()
        .any(|f| lowered.weight(&f.weight).is_some_and(|w| crate::frontend::norm_fold::is_folded(&w.recipe)));
    drop(lowered);
    if !overflowing.is_empty() {
        let notes = overflowing.iter().map(Finding::note).collect();
        return Err(ConvertError::Fp16Overflow { notes, folded });
    }

    progress(ConvertEvent::StageStart { stage: "emit" });
    let t = Instant::now();
    let ckpt = Checkpoint::open(model_dir).map_err(|e| ConvertError::Checkpoint(e.to_string()))?;
    let weights = WeightCache::new(&module, Arc::new(ckpt));
    let emit_opts = EmitOptions {
        layout: opts.layout.clone(),
        force: opts.force,
        tokenizer_dir: Some(model_dir.to_path_buf()),
        model_name: model_name(model_dir),
    };
    let emit = emit_output(&module, &weights, &emit_opts, out, &|e| progress(ConvertEvent::Emit(e)))?;
    timed("emit", t);
    Ok(ConvertReport { stages, opt: opt_report, emit, calibration, residual })
}

/// Whether `convert` folds the norm gains into the projections: when asked to
/// (`LowerOptions::fold_norm_gains`) and the layer weights stay dense. Palettized layer
/// weights keep their gains as run-time multiplies, which act as per-input-column scales of
/// every lookup table's grid (SmolLM2-135M calibrated LUT6: mean logit error 0.067 unfolded,
/// 0.081 folded; docs/opt.md).
pub fn folds_norm_gains(opts: &ConvertOptions) -> bool {
    opts.lower.fold_norm_gains && opts.opt.lut.ffn.is_none()
}

/// True for lowered modules whose layers norm their branch outputs (Gemma's sandwich norms,
/// recognised by the `attn_out` norm of the lowering): the models whose residual stream is
/// known to outgrow fp16.
fn has_sandwich_norms(m: &crate::ir::Module) -> bool {
    m.function("layer0.infer").is_some_and(|f| f.value_by_name("attn_out").is_some())
}

/// The model's name: the folder's (`Llama-3.2-1B`, resolving `.` and trailing slashes), a
/// GGUF file's stem, or the repository name of a hub-cache snapshot
/// (`…/models--org--name/snapshots/<rev>` → `name`).
fn model_name(dir: &Path) -> Option<String> {
    let abs = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    if abs.is_file() {
        return abs.file_stem().and_then(|n| n.to_str()).map(str::to_string);
    }
    let repo = abs.parent().filter(|p| p.ends_with("snapshots")).and_then(Path::parent);
    if let Some(name) =
        repo.and_then(|r| r.file_name()).and_then(|n| n.to_str()).and_then(|n| n.strip_prefix("models--"))
    {
        return name.rsplit("--").next().map(str::to_string);
    }
    abs.file_name().and_then(|n| n.to_str()).map(str::to_string)
}
