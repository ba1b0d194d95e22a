//! Palettization quality on a real model (bench/quality.sh runs it in release mode).
//!
//! For each configuration — fp16 (no LUT), data-free LUT6/LUT4, calibrated LUT6/LUT4 and
//! mixed bits — it converts the model (wall time, package bytes) and scores the palettized
//! module, teacher-forced on the held-out text (`anemllc::calib::HELDOUT_TEXT`, never used
//! for calibration), against the fp32 lowered module (itself proven against transformers by
//! tests/real_models.rs): top-1 agreement, mean KL divergence, max / mean logit relative
//! error. The module computes the same logits as its packages (tests/quant_numerics.rs), and
//! scoring it runs the prefill path, which is much faster than decoding the packages.
//!
//! Usage: cargo run --release --example lut_quality -- MODEL [TOKENS]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anemllc::calib::{CalibOptions, HELDOUT_TEXT, calibrate};
use anemllc::chat::ChatTokenizer;
use anemllc::checkpoint::Checkpoint;
use anemllc::convert::{ConvertOptions, convert};
use anemllc::frontend::config::ModelConfig;
use anemllc::frontend::{LowerOptions, lower_checkpoint};
use anemllc::interp::Session;
use anemllc::ir::Module;
use anemllc::opt::{OptOptions, optimize_with};
use anemllc::package::LayoutOptions;
use anemllc::quant::LutConfig;

type Error = Box<dyn std::error::Error>;

const CONTEXT: usize = 512;
const BATCH: usize = 64;

fn logits(module: Module, model: &Path, tokens: &[u32]) -> Result<Vec<Vec<f32>>, Error> {
    let mut s = Session::new(module, Arc::new(Checkpoint::open(model)?))?;
    Ok(s.teacher_forced_logits(tokens, tokens.len())?)
}

fn log_softmax(row: &[f32]) -> Vec<f64> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
    row.iter().map(|&v| v as f64 - max - sum.ln()).collect()
}

/// (top-1 agreement, mean KL(ref ‖ q), max and mean relative error ‖q − ref‖/‖ref‖).
fn score(reference: &[Vec<f32>], rows: &[Vec<f32>]) -> (f64, f64, f64, f64) {
    let argmax = |r: &[f32]| anemllc::interp::driver::argmax_first(r);
    let (mut agree, mut kl, mut worst, mut mean) = (0usize, 0.0, 0.0f64, 0.0);
    for (a, b) in reference.iter().zip(rows) {
        agree += usize::from(argmax(a) == argmax(b));
        let (p, q) = (log_softmax(a), log_softmax(b));
        kl += p.iter().zip(&q).map(|(lp, lq)| lp.exp() * (lp - lq)).sum::<f64>();
        let num: f64 = a.iter().zip(b).map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2)).sum();
        let den: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum();
        let e = (num / den).sqrt();
        worst = worst.max(e);
        mean += e;
    }
    let n = reference.len() as f64;
    (agree as f64 / n, kl / n, worst, mean / n)
}

fn dir_bytes(d: &Path) -> u64 {
    std::fs::read_dir(d)
        .map(|it| {
            it.filter_map(Result::ok)
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() { dir_bytes(&p) } else { e.metadata().map_or(0, |m| m.len()) }
                })
                .sum()
        })
        .unwrap_or(0)
}

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let model = PathBuf::from(args.next().ok_or("usage: lut_quality MODEL [TOKENS]")?);
    let n_tokens: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(320);
    // Optional: only configurations whose label contains one of these comma-separated words.
    let only: Vec<String> = args.next().map(|s| s.split(',').map(str::to_string).collect()).unwrap_or_default();
    let cfg = ModelConfig::from_model_path(&model)?;
    let tok = ChatTokenizer::load(&model, &cfg.eos_token_ids)?;
    let mut tokens = tok.encode(HELDOUT_TEXT, true)?;
    tokens.truncate(n_tokens.min(CONTEXT));
    eprintln!("held-out text: {} tokens, context {CONTEXT}, batch {BATCH}", tokens.len());

    let lower = LowerOptions::new(CONTEXT, BATCH);
    let lowered = lower_checkpoint(&model, &lower)?;
    let t = Instant::now();
    let reference = logits(lowered.clone(), &model, &tokens)?;
    eprintln!("fp32 reference: {:.1}s", t.elapsed().as_secs_f64());

    let t = Instant::now();
    let calib = Arc::new(calibrate(&model, &CalibOptions::builtin(), &|_, _| {})?);
    let calib_time = t.elapsed().as_secs_f64();
    eprintln!("calibration: {} of {} tokens in {calib_time:.1}s", calib.tokens, calib.available_tokens);

    let configs: [(&str, &str, bool); 8] = [
        ("fp16", "none", false),
        ("LUT6 data-free", "6", false),
        ("LUT6 calibrated", "6", true),
        ("LUT4 data-free", "4", false),
        ("LUT4 calibrated", "4", true),
        ("mixed auto:4.5 data-free", "auto:4.5", false),
        ("mixed auto:4.5 calibrated", "auto:4.5", true),
        ("mixed auto:4 calibrated", "auto:4", true),
    ];
    let scratch = std::env::temp_dir().join(format!("anemllc-quality-{}", std::process::id()));
    println!("| configuration | top-1 | mean KL | max rel. err | mean rel. err | package MB | convert s |");
    println!("|---|---|---|---|---|---|---|");
    // LUT_QUALITY_SPEC="ffn=6,lm_head=none" scores that one specification, calibrated.
    let custom = std::env::var("LUT_QUALITY_SPEC").ok();
    let configs: Vec<(&str, &str, bool)> = match custom.as_deref() {
        Some(spec) => vec![(spec, spec, true)],
        None => configs.to_vec(),
    };
    for (label, lut, calibrated) in configs {
        if !only.is_empty() && !only.iter().any(|w| label.contains(w.as_str())) {
            continue;
        }
        let lut_cfg = LutConfig::parse(lut)?;
        let opt = OptOptions { lut: lut_cfg, calibration: calibrated.then(|| calib.clone()), ..Default::default() };
        // Conversion: time and bytes of the real packages.
        let out = scratch.join(label.replace([' ', ':'], "_"));
        let convert_opts = ConvertOptions {
            lower: lower.clone(),
            opt: OptOptions { calibration: None, ..opt.clone() },
            layout: LayoutOptions::default(),
            force: true,
            calibrate: calibrated.then(CalibOptions::builtin),
            fp16_scale: Default::default(),
        };
        let (convert_s, bytes) = if std::env::var_os("LUT_QUALITY_SKIP_CONVERT").is_some() {
            (f64::NAN, 0)
        } else {
            let t = Instant::now();
            convert(&model, &out, &convert_opts, &|_| {})?;
            let convert_s = t.elapsed().as_secs_f64();
            let bytes = dir_bytes(&out);
            let _ = std::fs::remove_dir_all(&out);
            (convert_s, bytes)
        };
        // Quality: the palettized module on the held-out text.
        let (module, _) = optimize_with(&lowered, &[], &opt, |_, _| {})?;
        let rows = logits(module, &model, &tokens)?;
        let (top1, kl, worst, mean) = score(&reference, &rows);
        println!(
            "| {label} | {:.1}% | {kl:.4} | {worst:.3} | {mean:.4} | {:.1} | {convert_s:.1} |",
            100.0 * top1,
            bytes as f64 / 1e6
        );
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}
