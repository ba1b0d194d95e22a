//! The body of the `gguf` fuzz target (fuzz/fuzz_targets/gguf.rs), shared with its
//! regression test (tests/gguf_hostile.rs): every reader a GGUF file meets, run over one
//! file, with the properties they promise checked by assertions (a failed assertion is a
//! finding, like a panic).
//!
//! Properties checked:
//! - nothing panics, and every error is one line that names the file;
//! - an opened [`GgufFile`]'s tensors keep the [`RawTensor`](super::RawTensor) invariants:
//!   inside the data section, exactly `row bytes × rows` long, not overlapping;
//! - every tensor a [`Checkpoint`] maps reads as exactly its element count — whole when it
//!   has at most [`MAX_WHOLE`] elements (also through the weight path and the fp16
//!   conversion, whose only error is a non-finite value), else its first axis-0 row;
//! - tokenizer files rebuilt from the metadata load in the tokenizers library.
//!
//! Allocations stay bounded by the input: a read allocates at most the decoded size of
//! tensor bytes that are in the file, so a hostile count can only fail, not allocate.

use std::path::Path;

use super::GgufFile;
use crate::chat::{ChatTokenizer, ModelFiles};
use crate::checkpoint::Checkpoint;
use crate::frontend::config::ModelConfig;
use crate::frontend::{LowerOptions, lower_checkpoint};
use crate::weights::{TensorSource, WeightError};

/// Tensors with at most this many elements are read whole; larger ones by their first row.
pub const MAX_WHOLE: usize = 1 << 20;

/// How far an input got through the readers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reached {
    /// [`GgufFile::open`] accepted it.
    pub opened: bool,
    /// [`Checkpoint::open`] accepted it.
    pub checkpoint: bool,
    /// Mapped tensors read.
    pub tensors: usize,
    /// [`ModelConfig::from_model_path`] accepted it.
    pub config: bool,
    /// [`ModelFiles::read`] accepted it.
    pub files: bool,
    /// It carries a tokenizer, which loaded.
    pub tokenizer: bool,
    /// It lowered to a module (context 8, batch 8).
    pub lowered: bool,
}

/// Panics unless `message` (an error about the file at `path`) is one line naming it.
fn one_line_naming(path: &Path, message: &str) {
    assert!(!message.contains('\n'), "a multi-line error: {message:?}");
    assert!(message.contains(&path.display().to_string()), "an error without the file name: {message:?}");
}

/// Writes `bytes` to `dir/model.gguf` (creating `dir`) and runs the GGUF readers on it,
/// panicking when a property above fails. Returns how far the input got; a file that
/// cannot be written reaches nothing.
pub fn fuzz_check(bytes: &[u8], dir: &Path) -> Reached {
    let path = dir.join("model.gguf");
    if std::fs::create_dir_all(dir).and_then(|_| std::fs::write(&path, bytes)).is_err() {
        return Reached::default();
    }
    let mut reached = Reached::default();
    match GgufFile::open(&path) {
        Ok(file) => {
            reached.opened = true;
            check_layout(&file);
        }
        Err(e) => one_line_naming(&path, &e.to_string()),
    }
    match Checkpoint::open(&path) {
        Ok(ckpt) => {
            reached.checkpoint = true;
            reached.tensors = read_tensors(&ckpt);
        }
        Err(e) => one_line_naming(&path, &e.to_string()),
    }
    match ModelConfig::from_model_path(&path) {
        Ok(_) => reached.config = true,
        Err(e) => one_line_naming(&path, &e.to_string()),
    }
    match ModelFiles::read(&path) {
        Ok(files) => {
            reached.files = true;
            reached.tokenizer = files.get("tokenizer.json").is_some();
            if reached.tokenizer {
                load_tokenizer(&files);
            }
        }
        Err(e) => one_line_naming(&path, &e.to_string()),
    }
    if reached.config && reached.checkpoint {
        match lower_checkpoint(&path, &LowerOptions::new(8, 8)) {
            Ok(_) => reached.lowered = true,
            Err(e) => one_line_naming(&path, &e.to_string()),
        }
    }
    reached
}

/// The tensor invariants of an open file.
fn check_layout(file: &GgufFile) {
    let mut spans: Vec<(usize, usize)> = Vec::new();
    for t in file.tensors() {
        let rows: usize = t.dims[1..].iter().product();
        assert_eq!(Some(t.len), t.ty.row_bytes(t.row_len()).map(|r| r * rows), "{}: byte length", t.name);
        assert!(t.start + t.len <= file.bytes().len(), "{}: outside the file", t.name);
        assert_eq!(file.data(t).len(), t.len);
        spans.push((t.start, t.start + t.len));
    }
    spans.sort_unstable();
    assert!(spans.windows(2).all(|w| w[0].1 <= w[1].0), "overlapping tensors");
}

/// Reads every mapped tensor as [`fuzz_check`] promises; returns how many were read.
fn read_tensors(ckpt: &Checkpoint) -> usize {
    let names: Vec<String> = ckpt.names().into_iter().map(str::to_string).collect();
    for name in &names {
        let info = ckpt.info(name).expect("a listed tensor has info").clone();
        let numel = info.numel();
        if let Ok(view) = ckpt.view(name) {
            assert_eq!(view.data().len(), numel * info.dtype.size(), "{name}: view length");
        }
        if numel <= MAX_WHOLE {
            let values = ckpt.to_f32(name).expect("a mapped tensor decodes");
            assert_eq!(values.len(), numel, "{name}: element count");
            match ckpt.read_f32(name) {
                Ok((shape, v)) => assert!(shape == info.shape && v.iter().all(|x| x.is_finite())),
                Err(WeightError::NonFinite { .. }) => assert!(values.iter().any(|x| !x.is_finite())),
                Err(e) => panic!("{name}: the weight path fails with {e}"),
            }
            match ckpt.to_f16_bytes(name).expect("a mapped tensor converts") {
                Ok(bytes) => assert_eq!(bytes.len(), 2 * numel, "{name}: fp16 length"),
                Err(i) => assert!(!values[i].is_finite(), "{name}: fp16 conversion stops at a finite value"),
            }
        } else {
            let rows = info.shape.first().copied().unwrap_or(1);
            let row = ckpt.rows_to_f32(name, 0, 1).expect("a mapped tensor decodes");
            assert_eq!(row.map(|r| r.len()), (!info.shape.is_empty()).then(|| numel / rows), "{name}: row length");
        }
        ckpt.release(name);
    }
    names.len()
}

/// Rebuilt tokenizer files load, and encode and decode a sample.
fn load_tokenizer(files: &ModelFiles) {
    let tok = ChatTokenizer::from_files(files, &[]).unwrap_or_else(|e| panic!("rebuilt tokenizer refused: {e}"));
    if let Ok(ids) = tok.encode("Hello, world! 123 <s> é\n", true) {
        let _ = tok.decode(&ids);
    }
}
