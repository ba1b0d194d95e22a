//! `anemllc run model.air --tokens …`: drive a module with the reference interpreter the way
//! ANEMLL's runtime drives its parts (batched prefill, then decode), print greedy tokens and
//! optionally write per-position logits.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use ndarray::Array2;

use super::CliError;
use super::ir_commands::load_verified;
use crate::checkpoint::Checkpoint;
use crate::interp::Session;
use crate::package::load_output;
use crate::weights::TensorSource;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// What to run: an output folder of `convert`/`emit` (its packages, driven as ANEMLL's
    /// runtime drives them), an IR module (.air, output of `lower` or `opt`), or a model
    /// (HuggingFace folder, .gguf file or cached hub id), lowered in memory with
    /// --context/--batch and run in fp32.
    pub module: PathBuf,
    /// Prompt token ids, comma-separated (e.g. 1,331,201): teacher-forced/greedy mode.
    #[arg(long, value_delimiter = ',', required_unless_present = "prompt", conflicts_with = "prompt")]
    pub tokens: Vec<u32>,
    /// Number of tokens to generate greedily after `--tokens`.
    #[arg(long, default_value_t = 0, requires = "tokens")]
    pub decode: usize,
    /// A text prompt: tokenized with the model's tokenizer.json, wrapped in the chat template
    /// of tokenizer_config.json (unless --no-template); the answer is streamed to stdout.
    #[arg(long)]
    pub prompt: Option<String>,
    /// With --prompt: the most tokens to generate (stops earlier at an EOS token or the end
    /// of the context).
    #[arg(long, default_value_t = 256)]
    pub max_tokens: usize,
    /// With --prompt: tokenize the raw text without the chat template.
    #[arg(long)]
    pub no_template: bool,
    /// Write float32 logits of every position (prompt and generated) to this .npy file,
    /// shape [positions, vocab].
    #[arg(long)]
    pub logits: Option<PathBuf>,
    /// For an IR module: the checkpoint folder holding the weights (default: the module's
    /// `checkpoint` attribute). For an output folder: where the tokenizer files are
    /// (default: the folder itself).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// When MODULE is a model: the context and prefill batch it is lowered with.
    #[command(flatten)]
    pub sizes: super::lower_command::SizeArgs,
}

/// What `run`'s first argument names.
enum Target {
    Output,
    Module,
    Model(PathBuf),
}

fn target(arg: &Path) -> Result<Target, CliError> {
    if arg.is_dir() && (arg.join("meta.yaml").exists() || !arg.join("config.json").exists()) {
        return Ok(Target::Output);
    }
    if arg.is_dir() || crate::gguf::is_gguf_path(arg) {
        return Ok(Target::Model(arg.to_path_buf()));
    }
    if arg.exists() {
        return Ok(Target::Module);
    }
    super::model_arg::resolve_model(arg).map(Target::Model)
}

/// The checkpoint folder: `explicit` (a flag), else the module's `checkpoint` attribute
/// resolved against the current directory and then against the module file's directory.
pub(super) fn checkpoint_dir(
    module_path: &Path,
    explicit: Option<&Path>,
    attr: Option<&str>,
) -> Result<PathBuf, CliError> {
    if let Some(dir) = explicit {
        return Ok(dir.to_path_buf());
    }
    let attr = attr.ok_or_else(|| {
        CliError::input(format!(
            "{}: no `checkpoint` attribute; pass the checkpoint folder explicitly",
            module_path.display()
        ))
    })?;
    let direct = PathBuf::from(attr);
    if direct.is_absolute() || direct.join("config.json").exists() {
        return Ok(direct);
    }
    let beside = module_path.parent().unwrap_or(Path::new(".")).join(attr);
    Ok(if beside.exists() { beside } else { direct })
}

/// A session over either an output folder of `convert`/`emit` (its packages, read back
/// from disk; tokenizer files beside them) or an IR module (weights from its checkpoint).
/// Returns the session, the tokenizer folder and the EOS ids.
fn open_session(args: &RunArgs) -> Result<(Session, PathBuf, Vec<u32>), CliError> {
    let (module, source, dir): (crate::ir::Module, Arc<dyn TensorSource + Send + Sync>, PathBuf) =
        match target(&args.module)? {
            Target::Output => {
                let loaded = load_output(&args.module).map_err(|e| CliError::input(e.to_string()))?;
                let dir = args.model.clone().unwrap_or_else(|| args.module.clone());
                (loaded.module, loaded.source, dir)
            }
            Target::Module => {
                let module = load_verified(&args.module)?;
                let dir = checkpoint_dir(&args.module, args.model.as_deref(), module.attr_str("checkpoint"))?;
                let ckpt = Checkpoint::open(&dir).map_err(|e| CliError::input(e.to_string()))?;
                (module, Arc::new(ckpt), dir)
            }
            Target::Model(dir) => {
                let opts = args.sizes.lower_options();
                let module = crate::frontend::lower_checkpoint(&dir, &opts).map_err(|e| match e {
                    crate::frontend::LowerError::Internal { .. } => CliError::failure(e.to_string()),
                    _ => CliError::input(e.to_string()),
                })?;
                let ckpt = Checkpoint::open(&dir).map_err(|e| CliError::input(e.to_string()))?;
                (module, Arc::new(ckpt), dir)
            }
        };
    let eos: Vec<u32> = match module.attrs.get("eos_token_ids") {
        Some(crate::ir::AttrValue::Ints(v)) => v.iter().filter_map(|&t| u32::try_from(t).ok()).collect(),
        _ => Vec::new(),
    };
    let session = Session::new(module, source).map_err(|e| CliError::input(e.to_string()))?;
    Ok((session, dir, eos))
}

pub fn run(args: RunArgs) -> Result<(), CliError> {
    crate::util::reuse_large_allocations();
    let (mut session, dir, eos) = open_session(&args)?;
    if let Some(text) = &args.prompt {
        return chat(&mut session, &dir, &eos, text, &args);
    }
    let prompt = args.tokens.clone();
    let generated = if args.decode > 0 { timed_greedy(&mut session, &prompt, args.decode)? } else { Vec::new() };
    if !generated.is_empty() {
        let list: Vec<String> = generated.iter().map(|t| t.to_string()).collect();
        println!("{}", list.join(","));
    }
    if let Some(path) = &args.logits {
        let mut all = prompt.clone();
        all.extend(&generated);
        let rows = session.teacher_forced_logits(&all, prompt.len()).map_err(|e| CliError::failure(e.to_string()))?;
        let vocab = rows.first().map_or(0, Vec::len);
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        let array = Array2::from_shape_vec((rows.len(), vocab), flat)
            .map_err(|e| CliError::failure(format!("logits have ragged rows: {e}")))?;
        let mut bytes = Vec::new();
        ndarray_npy::WriteNpyExt::write_npy(&array, &mut bytes)
            .map_err(|e| CliError::failure(format!("{}: {e}", path.display())))?;
        crate::util::write_atomic(path, &bytes).map_err(|e| CliError::failure(format!("{}: {e}", path.display())))?;
        eprintln!("wrote logits [{}, {vocab}] to {}", rows.len(), path.display());
    }
    Ok(())
}

/// `tokens/s` text for `n` tokens in `seconds`.
fn rate(n: usize, seconds: f64) -> String {
    if seconds > 0.0 { format!("{:.2} tokens/s", n as f64 / seconds) } else { "-".into() }
}

/// Greedy generation as [`Session::generate_greedy`] does it (prefill, then `n` decode
/// steps), printing the prefill and decode speeds to stderr.
fn timed_greedy(session: &mut Session, prompt: &[u32], n: usize) -> Result<Vec<u32>, CliError> {
    use std::time::Instant;
    let fail = |e: crate::interp::InterpError| CliError::failure(e.to_string());
    if prompt.len().checked_add(n).is_none_or(|total| total > session.context() + 1) {
        return Err(CliError::failure(format!(
            "a prompt of {} tokens plus {n} generated ones does not fit the context {}",
            prompt.len(),
            session.context()
        )));
    }
    let t = Instant::now();
    session.start(prompt).map_err(fail)?;
    let prefill = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut out = Vec::with_capacity(n);
    let mut token = prompt[prompt.len() - 1];
    for step in 0..n {
        let logits = session.decode_step(token, prompt.len() - 1 + step).map_err(fail)?;
        token = u32::try_from(crate::interp::driver::argmax_first(&logits))
            .map_err(|_| CliError::failure("vocabulary index exceeds u32"))?;
        out.push(token);
    }
    let decode = t.elapsed().as_secs_f64();
    eprintln!(
        "prefill: {} tokens in {prefill:.2} s ({}); decode: {n} tokens in {decode:.2} s ({})",
        prompt.len(),
        rate(prompt.len(), prefill),
        rate(n, decode)
    );
    Ok(out)
}

/// `--prompt`: tokenize (with the chat template), prefill, decode greedily while streaming
/// text, stop at EOS / --max-tokens / the context end.
fn chat(session: &mut Session, dir: &Path, eos: &[u32], text: &str, args: &RunArgs) -> Result<(), CliError> {
    use crate::chat::{ChatTokenizer, TextStream, render_user_prompt};
    use std::io::Write;
    let tok = ChatTokenizer::load(dir, eos).map_err(|e| CliError::input(e.to_string()))?;
    let rendered = if args.no_template {
        None
    } else {
        render_user_prompt(&tok, text).map_err(|e| CliError::input(e.to_string()))?
    };
    let prompt = match &rendered {
        Some(r) => tok.encode(r, false),
        None => tok.encode(text, true),
    }
    .map_err(|e| CliError::input(e.to_string()))?;
    if prompt.is_empty() {
        return Err(CliError::input("the prompt tokenizes to nothing"));
    }
    let context = session.context();
    if prompt.len() >= context {
        return Err(CliError::input(format!(
            "the prompt is {} tokens; the model was lowered for a context of {context}",
            prompt.len()
        )));
    }
    let started = std::time::Instant::now();
    session.start(&prompt).map_err(|e| CliError::failure(e.to_string()))?;
    let prefill = started.elapsed().as_secs_f64();
    let decoding = std::time::Instant::now();
    let mut stream = TextStream::new();
    let mut out = std::io::stdout().lock();
    let mut token = prompt[prompt.len() - 1];
    let mut pos = prompt.len() - 1;
    let mut generated = 0;
    while generated < args.max_tokens && pos < context {
        let logits = session.decode_step(token, pos).map_err(|e| CliError::failure(e.to_string()))?;
        token = crate::interp::driver::argmax_first(&logits) as u32;
        generated += 1;
        if tok.eos_ids.contains(&token) {
            break;
        }
        let piece = stream.push(&tok, token).map_err(|e| CliError::failure(e.to_string()))?;
        let _ = out.write_all(piece.as_bytes());
        let _ = out.flush();
        pos += 1;
    }
    let rest = stream.finish(&tok).map_err(|e| CliError::failure(e.to_string()))?;
    let _ = writeln!(out, "{rest}");
    let decode = decoding.elapsed().as_secs_f64();
    eprintln!("[{} prompt tokens, {generated} generated]", prompt.len());
    eprintln!("prefill: {}; decode: {}", rate(prompt.len(), prefill), rate(generated, decode));
    Ok(())
}
