//! The body of the `mapped_weights` fuzz target (fuzz/fuzz_targets/mapped_weights.rs),
//! shared with its test (tests/mapped_weights_fuzz.rs): `anemllc run`'s path over an output
//! folder whose packages have been damaged — [`load_output`] (which maps every package's
//! `weight.bin` and checks every blob the weights name), [`Session::new`], the prompt
//! ([`Session::start`]) and one decode step, the kernels reading fp16 and LUT rows straight
//! from the maps.
//!
//! The folder is a valid one ([`template`]: a small model converted once, LUT6 FFN and LM
//! head, fp16 embeddings, two FFN chunks) with the fuzz input applied as edits to its
//! packages' `weight.bin` and `model.mlmodel` files ([`apply_edits`]), so inputs start
//! from something that runs and reach the deep parts (blob records, payload offsets,
//! `BlobFileValue` offsets in the protobuf, weight bytes).
//!
//! Property: nothing panics (a panic, a failed assertion or an aborting allocation is a
//! finding); every error is an `Err`. Non-finite logits are not errors: damaged weight
//! bytes are still weights.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::load::load_output;
use crate::interp::Session;

/// The files an input edits, relative to the output folder, in a fixed order: each
/// package's `weights/weight.bin` and `model.mlmodel`, packages sorted by name.
pub fn editable_files(folder: &Path) -> Vec<PathBuf> {
    let mut packages: Vec<PathBuf> =
        std::fs::read_dir(folder).map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default();
    packages.retain(|p| p.extension().is_some_and(|e| e == "mlpackage"));
    packages.sort();
    let mut files = Vec::new();
    for p in packages {
        let core = p.strip_prefix(folder).unwrap_or(&p).join("Data/com.apple.CoreML");
        files.push(core.join("weights/weight.bin"));
        files.push(core.join("model.mlmodel"));
    }
    files
}

/// Converts the model folder `model` (the repo's `tests/fixtures/models/llama_tiny`) into
/// `dir/out` unless that folder is already there: context 32, batch 8, two FFN chunks,
/// LUT6 FFN and LM head. Returns the output folder.
pub fn template(model: &Path, dir: &Path) -> Result<PathBuf, String> {
    use crate::convert::{ConvertOptions, Fp16Scale, convert};
    use crate::frontend::LowerOptions;
    use crate::opt::OptOptions;
    use crate::package::LayoutOptions;
    let out = dir.join("out");
    if out.join("meta.yaml").is_file() {
        return Ok(out);
    }
    let lut = crate::quant::config::LutConfig::parse("ffn=6,lm_head=6").map_err(|e| e.to_string())?;
    let opts = ConvertOptions {
        lower: LowerOptions::new(32, 8),
        opt: OptOptions { lut, ..Default::default() },
        layout: LayoutOptions { chunks: Some(2), ..Default::default() },
        force: true,
        calibrate: None,
        fp16_scale: Fp16Scale::Auto,
    };
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    convert(model, &out, &opts, &|_| {}).map_err(|e| e.to_string())?;
    Ok(out)
}

/// One edit of an input (see [`apply_edits`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Edit {
    /// Overwrite bytes of file `file` at `at` (clipped to the file's end).
    Write { file: usize, at: u64, bytes: Vec<u8> },
    /// Cut file `file` to `len` bytes.
    Truncate { file: usize, len: u64 },
}

/// Decodes an input into edits: records of `[op u8][at u32 LE][n u8][n bytes]`. The
/// editable file is `op & 0x7f` modulo the number of files; `op & 0x80` truncates the
/// file to `at` modulo (its length + 1) (then `n` and the bytes are absent), else `n`
/// bytes are written at `at` modulo (its length + 1). A short final record is dropped.
pub fn parse_edits(input: &[u8], lengths: &[u64]) -> Vec<Edit> {
    let mut edits = Vec::new();
    let mut rest = input;
    while rest.len() >= 5 && !lengths.is_empty() {
        let op = rest[0];
        let file = usize::from(op & 0x7f) % lengths.len();
        let at = u64::from(u32::from_le_bytes([rest[1], rest[2], rest[3], rest[4]])) % (lengths[file] + 1);
        rest = &rest[5..];
        if op & 0x80 != 0 {
            edits.push(Edit::Truncate { file, len: at });
            continue;
        }
        let Some((&n, tail)) = rest.split_first() else { break };
        let n = usize::from(n).min(tail.len());
        edits.push(Edit::Write { file, at, bytes: tail[..n].to_vec() });
        rest = &tail[n..];
    }
    edits
}

/// Encodes edits as an input (the inverse of [`parse_edits`] for in-range edits).
pub fn encode_edits(edits: &[Edit]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in edits {
        match e {
            Edit::Truncate { file, len } => {
                out.push(0x80 | (*file as u8 & 0x7f));
                out.extend_from_slice(&(*len as u32).to_le_bytes());
            }
            Edit::Write { file, at, bytes } => {
                out.push(*file as u8 & 0x7f);
                out.extend_from_slice(&(*at as u32).to_le_bytes());
                out.push(bytes.len().min(255) as u8);
                out.extend_from_slice(&bytes[..bytes.len().min(255)]);
            }
        }
    }
    out
}

/// Copies the output folder `template` (meta.yaml and its packages; not the tokenizer
/// files, which `run --tokens` does not read) into `scratch` (replaced) and applies the
/// edits `input` decodes to. `None` when the copy could not be written.
pub fn apply_edits(input: &[u8], template: &Path, scratch: &Path) -> Option<Vec<Edit>> {
    let _ = std::fs::remove_dir_all(scratch);
    copy_tree(template, scratch, true).ok()?;
    let files = editable_files(scratch);
    let lengths: Vec<u64> = files.iter().map(|f| std::fs::metadata(scratch.join(f)).map_or(0, |m| m.len())).collect();
    let edits = parse_edits(input, &lengths);
    for e in &edits {
        match e {
            Edit::Truncate { file, len } => {
                let f = std::fs::OpenOptions::new().write(true).open(scratch.join(&files[*file])).ok()?;
                f.set_len(*len).ok()?;
            }
            Edit::Write { file, at, bytes } => {
                let path = scratch.join(&files[*file]);
                let mut content = std::fs::read(&path).ok()?;
                let at = (*at as usize).min(content.len());
                let n = bytes.len().min(content.len() - at);
                content[at..at + n].copy_from_slice(&bytes[..n]);
                std::fs::write(&path, content).ok()?;
            }
        }
    }
    Some(edits)
}

fn copy_tree(from: &Path, to: &Path, top: bool) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let (src, name) = (entry.path(), entry.file_name());
        let keep = !top || name == "meta.yaml" || src.extension().is_some_and(|e| e == "mlpackage");
        if !keep {
            continue;
        }
        if entry.file_type()?.is_dir() {
            copy_tree(&src, &to.join(&name), false)?;
        } else {
            std::fs::copy(&src, to.join(&name))?;
        }
    }
    Ok(())
}

/// How far an input got.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reached {
    /// The edited folder was written.
    pub written: bool,
    /// [`load_output`] accepted it.
    pub loaded: bool,
    /// [`Session::new`] accepted the module.
    pub session: bool,
    /// The prompt ran ([`Session::start`]).
    pub started: bool,
    /// One decode step returned the vocabulary's logits.
    pub decoded: bool,
}

/// The prompt of every run (token ids of llama_tiny's vocabulary).
pub const PROMPT: [u32; 3] = [1, 2, 3];

/// Writes `template` edited by `input` into `scratch` and runs it as `anemllc run OUT
/// --tokens 1,2,3 --decode 1` does, panicking only where a property fails (see the module
/// docs). Returns how far it got.
pub fn fuzz_check(input: &[u8], template: &Path, scratch: &Path) -> Reached {
    let mut reached = Reached::default();
    if apply_edits(input, template, scratch).is_none() {
        return reached;
    }
    reached.written = true;
    let loaded = match load_output(scratch) {
        Ok(l) => l,
        Err(e) => {
            assert!(!e.to_string().is_empty(), "an empty load error");
            return reached;
        }
    };
    reached.loaded = true;
    let source: Arc<dyn crate::weights::TensorSource + Send + Sync> = loaded.source;
    let Ok(mut session) = Session::new(loaded.module, source) else { return reached };
    reached.session = true;
    if PROMPT.len() > session.context() || session.start(&PROMPT).is_err() {
        return reached;
    }
    reached.started = true;
    if let Ok(logits) = session.decode_step(PROMPT[PROMPT.len() - 1], PROMPT.len() - 1) {
        assert_eq!(logits.len(), session.vocab(), "a decode step returned a row of the wrong length");
        reached.decoded = true;
    }
    reached
}
