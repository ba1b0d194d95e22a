//! [`load_output`]: an output folder (meta.yaml + packages) read back into one IR module
//! that the reference interpreter's [`Session`](crate::interp::Session) drives exactly as
//! ANEMLL's runtimes drive the packages (anemll-contract.md §7):
//!
//! - the embeddings package's `main` is read twice, at its enumerated input shapes `[1,1]`
//!   (`embed.infer`) and `[1,B]` (`embed.prefill`);
//! - FFN chunk `k`'s `infer` and `prefill` become `chunk{k}.infer` / `chunk{k}.prefill`;
//!   they declare the same state, so the session shares one state tensor between them;
//! - the LM head's `main` becomes `lm_head.infer`.
//!
//! Each package keeps its own weights: IR weight `w` of package `p` is renamed `p{p}.w`
//! and its `checkpoint("blob:…")` recipe reads tensor `p{p}|blob:…` from a
//! [`MergedSource`] that dispatches to the package's [`PackageTensors`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::ir::{AttrValue, DType, Module, Op, Recipe, verify_module};
use crate::mil::dtype::ir_dtype;
use crate::mil::proto::DataType;
use crate::mil::reader::TensorEntry;
use crate::mil::{FunctionRead, PackageTensors, ReadError, read_package_functions};
use crate::weights::{RawBytes, StoredKind, StoredTensor, TensorSource, WeightError};

/// Why a folder cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {message}")]
    Meta { path: PathBuf, message: String },
    #[error("{path}: missing package (meta.yaml names it; compiled .mlmodelc folders cannot be read, only .mlpackage)")]
    MissingPackage { path: PathBuf },
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("{path}: {message}")]
    Package { path: PathBuf, message: String },
}

/// The meta.yaml `parameters` and `architecture` keys, as strings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetaFields {
    pub fields: BTreeMap<String, String>,
}

impl MetaFields {
    /// Reads `key: value` lines (any indentation); block scalars (`|`) are skipped.
    pub fn parse(text: &str) -> MetaFields {
        let mut fields = BTreeMap::new();
        for line in text.lines() {
            let Some((k, v)) = line.trim().split_once(':') else { continue };
            let v = v.trim().trim_matches(|c| c == '"' || c == '\'');
            if !k.contains(' ') && !v.is_empty() && v != "|" {
                fields.entry(k.to_string()).or_insert_with(|| v.to_string());
            }
        }
        MetaFields { fields }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }
}

/// A loaded output folder.
pub struct LoadedOutput {
    /// `embed.*`, `chunk{k}.*`, `lm_head.infer`, with attributes `context`, `batch`,
    /// `vocab`, `arch`, `chunks` and (when recorded) `eos_token_ids`.
    pub module: Module,
    pub source: Arc<MergedSource>,
    pub meta: MetaFields,
    /// The packages read, in order: embeddings, chunks, LM head.
    pub packages: Vec<PathBuf>,
}

/// Tensor source over several packages: tensor `p{i}|name` is `name` of package `i`.
pub struct MergedSource {
    parts: Vec<Arc<PackageTensors>>,
}

impl MergedSource {
    /// The package and its tensor name for merged name `p{i}|name`.
    fn part<'a>(&self, name: &'a str) -> Result<(&Arc<PackageTensors>, &'a str), WeightError> {
        let not_found = || WeightError::NotFound { tensor: name.to_string() };
        let (p, rest) = name.split_once('|').ok_or_else(not_found)?;
        let i: usize = p.strip_prefix('p').and_then(|i| i.parse().ok()).ok_or_else(not_found)?;
        Ok((self.parts.get(i).ok_or_else(not_found)?, rest))
    }
}

/// One blob of a package's memory-mapped `weight.bin`, validated when it was made
/// ([`MergedSource::stored`]); the map is immutable, so the bytes cannot change after.
struct BlobView {
    tensors: Arc<PackageTensors>,
    offset: u64,
    dtype: DataType,
    shape: Vec<usize>,
}

impl RawBytes for BlobView {
    fn bytes(&self) -> &[u8] {
        // Validated at construction; the file is mapped read-only, so this cannot fail now
        // (an empty slice would be caught by every kernel's length checks anyway).
        self.tensors.blob_bytes(self.offset, self.dtype, &self.shape).unwrap_or(&[])
    }
}

impl TensorSource for MergedSource {
    fn read_f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>), WeightError> {
        let (part, rest) = self.part(name)?;
        part.read_f32(rest)
    }

    /// fp16 and `uint1`…`uint8` blobs of `weight.bin`, straight from the map.
    fn stored(&self, name: &str) -> Option<Result<StoredTensor, WeightError>> {
        let (part, rest) = match self.part(name) {
            Ok(found) => found,
            Err(e) => return Some(Err(e)),
        };
        let Some(TensorEntry::Blob { offset, dtype, shape }) = part.get(rest) else {
            return None;
        };
        let kind = match *dtype {
            DataType::Float16 => StoredKind::F16,
            other => StoredKind::Index { bits: ir_dtype(other).and_then(DType::index_bits)? },
        };
        let err = |message: String| WeightError::Source { tensor: name.to_string(), message };
        Some(match part.blob_bytes(*offset, *dtype, shape) {
            Err(message) => Err(err(message)),
            Ok(_) => {
                let view = BlobView { tensors: part.clone(), offset: *offset, dtype: *dtype, shape: shape.clone() };
                StoredTensor::new(shape.clone(), kind, Arc::new(view)).map_err(err)
            }
        })
    }
}

fn meta_err(path: &Path, message: impl Into<String>) -> LoadError {
    LoadError::Meta { path: path.to_path_buf(), message: message.into() }
}

/// The `.mlpackage` for a meta.yaml file name (which may say `.mlmodelc`).
fn package_path(dir: &Path, file: &str) -> Result<PathBuf, LoadError> {
    let stem = file.strip_suffix(".mlmodelc").or_else(|| file.strip_suffix(".mlpackage")).unwrap_or(file);
    if stem.contains('/') || stem.contains('\\') || stem.starts_with('.') {
        return Err(meta_err(&dir.join("meta.yaml"), format!("file name {file:?} is not a plain file name")));
    }
    let path = dir.join(format!("{stem}.mlpackage"));
    if path.is_dir() { Ok(path) } else { Err(LoadError::MissingPackage { path }) }
}

fn rename_recipe(r: &mut Recipe, p: usize) -> Result<(), String> {
    match r {
        Recipe::Checkpoint { tensor, .. } => {
            *tensor = format!("p{p}|{tensor}");
            Ok(())
        }
        Recipe::Cast { input, .. }
        | Recipe::Reshape { input, .. }
        | Recipe::Transpose { input, .. }
        | Recipe::Slice { input, .. }
        | Recipe::Scale { input, .. }
        | Recipe::Offset { input, .. }
        | Recipe::LutIndices { input, .. }
        | Recipe::LutTable { input, .. } => rename_recipe(input, p),
        Recipe::Concat { inputs, .. } => inputs.iter_mut().try_for_each(|i| rename_recipe(i, p)),
        Recipe::ScaleAlong { input, scale, .. } => {
            rename_recipe(input, p)?;
            rename_recipe(scale, p)
        }
        Recipe::RopeCos { .. } | Recipe::RopeSin { .. } => Ok(()),
    }
}

/// Moves package `p`'s functions and weights into `into`, renaming its weights.
fn merge(into: &mut Module, mut part: Module, p: usize) -> Result<(), String> {
    for w in &mut part.weights {
        w.name = format!("p{p}.{}", w.name);
        rename_recipe(&mut w.recipe, p)?;
    }
    for f in &mut part.functions {
        for (_, node) in f.nodes.iter_mut() {
            if let Op::Weight { name } = &mut node.op {
                *name = format!("p{p}.{name}");
            }
        }
    }
    into.weights.extend(part.weights);
    into.functions.extend(part.functions);
    Ok(())
}

fn positive(meta: &MetaFields, path: &Path, key: &str) -> Result<usize, LoadError> {
    let v = meta.get(key).ok_or_else(|| meta_err(path, format!("no `{key}`")))?;
    v.parse::<usize>()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| meta_err(path, format!("`{key}` is {v:?}, expected a positive integer")))
}

/// The weight file of a package written by the emitter.
fn weight_bin(package: &Path) -> PathBuf {
    package.join("Data/com.apple.CoreML/weights/weight.bin")
}

/// A reader error about one function or op does not name a file; name the package (its
/// `weight.bin` when a blob is at fault).
fn name_file(package: &Path, e: ReadError) -> LoadError {
    match e {
        ReadError::Op { .. } | ReadError::Function { .. } => {
            let message = e.to_string();
            let path = if message.contains("blob") { weight_bin(package) } else { package.to_path_buf() };
            LoadError::Package { path, message }
        }
        other => LoadError::Read(other),
    }
}

/// Checks every blob the package's weights name — record, dtype, payload inside
/// `weight.bin`, element count — before anything runs, so a missing or truncated
/// `weight.bin` or an offset outside it is a load error naming the file (the interpreter
/// later reads the payloads straight from the map).
fn check_blobs(package: &Path, module: &Module, tensors: &PackageTensors) -> Result<(), LoadError> {
    let weight_bin = weight_bin(package);
    for w in &module.weights {
        let Recipe::Checkpoint { tensor, .. } = &w.recipe else { continue };
        if let Some(TensorEntry::Blob { offset, dtype, shape }) = tensors.get(tensor) {
            tensors.blob_bytes(*offset, *dtype, shape).map_err(|message| LoadError::Package {
                path: weight_bin.clone(),
                message: format!("blob at offset {offset} (weight {}): {message}", w.name),
            })?;
        }
    }
    Ok(())
}

/// Loads the folder `dir` (see the module docs).
pub fn load_output(dir: &Path) -> Result<LoadedOutput, LoadError> {
    let meta_path = dir.join("meta.yaml");
    let text = std::fs::read_to_string(&meta_path).map_err(|e| meta_err(&meta_path, format!("cannot read: {e}")))?;
    let meta = MetaFields::parse(&text);
    let context = positive(&meta, &meta_path, "context_length")?;
    let batch = positive(&meta, &meta_path, "batch_size")?;
    let chunks = positive(&meta, &meta_path, "num_chunks")?;
    let file = |key: &str| meta.get(key).ok_or_else(|| meta_err(&meta_path, format!("no `{key}`")));
    let embeddings = package_path(dir, file("embeddings")?)?;
    let lm_head = package_path(dir, file("lm_head")?)?;
    let ffn = file("ffn")?;
    let ffn_stem = ffn.strip_suffix(".mlmodelc").or_else(|| ffn.strip_suffix(".mlpackage")).unwrap_or(ffn);
    // 0.3.6 names the first chunk's file; 0.3.4 the stem without the chunk suffix.
    let ffn_stem = match ffn_stem.rfind("_chunk_") {
        Some(at)
            if ffn_stem[at + 7..].split_once("of").is_some_and(|(a, b)| {
                a.len() == 2 && b.len() == 2 && a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit())
            }) =>
        {
            &ffn_stem[..at]
        }
        _ => ffn_stem,
    };
    let mut chunk_paths = Vec::with_capacity(chunks);
    for k in 0..chunks {
        chunk_paths.push(package_path(dir, &format!("{ffn_stem}_chunk_{:02}of{chunks:02}", k + 1))?);
    }

    let mut module = Module::new("output");
    let mut parts = Vec::new();
    let mut packages = Vec::new();
    let mut eos = None;
    let mut add = |path: &PathBuf, reads: Vec<FunctionRead>, module: &mut Module| -> Result<(), LoadError> {
        let read = read_package_functions(path, &reads).map_err(|e| name_file(path, e))?;
        check_blobs(path, &read.module, &read.tensors)?;
        if let Some(ids) = read.user_metadata.get("com.anemllc.eos_token_ids") {
            eos = Some(ids.clone());
        }
        let p = parts.len();
        parts.push(read.tensors.clone());
        merge(module, read.module, p).map_err(|message| LoadError::Package { path: path.clone(), message })?;
        packages.push(path.clone());
        Ok(())
    };
    add(
        &embeddings,
        vec![
            FunctionRead::new("main", "embed.infer").with_shape("input_ids", vec![1, 1]),
            FunctionRead::new("main", "embed.prefill").with_shape("input_ids", vec![1, batch]),
        ],
        &mut module,
    )?;
    // Rotate functions exist when the sliding window is shorter than the context (ANEMLL
    // 0.3.6's rule: chat.py loads them only then).
    let window = match meta.get("sliding_window") {
        None => None,
        Some(_) => Some(positive(&meta, &meta_path, "sliding_window")?),
    };
    let rotates = window.is_some_and(|w| w < context);
    let modes: &[&str] = if rotates { &crate::package::layout::FOUR_MODES } else { &["infer", "prefill"] };
    for (k, path) in chunk_paths.iter().enumerate() {
        let reads = modes.iter().map(|mode| FunctionRead::new(*mode, format!("chunk{k}.{mode}"))).collect();
        add(path, reads, &mut module)?;
    }
    add(&lm_head, vec![FunctionRead::new("main", "lm_head.infer")], &mut module)?;

    // An in-model-argmax head has no logits outputs: meta.yaml's vocab_size counts then.
    let argmax_head =
        module.function("lm_head.infer").is_some_and(|f| f.outputs.iter().any(|o| o.name == "argmax_idx"));
    let vocab: usize = if argmax_head {
        positive(&meta, &meta_path, "vocab_size")?
    } else {
        module
            .function("lm_head.infer")
            .map(|f| f.outputs.iter().map(|o| o.ty.tensor().shape.last().copied().unwrap_or(0)).sum())
            .unwrap_or(0)
    };
    module.attrs.insert("context".into(), AttrValue::Int(context as i64));
    module.attrs.insert("batch".into(), AttrValue::Int(batch as i64));
    module.attrs.insert("vocab".into(), AttrValue::Int(vocab as i64));
    module.attrs.insert("chunks".into(), AttrValue::Int(chunks as i64));
    if let Some(sizes) = meta.get("lm_head_chunk_sizes") {
        let sizes: Vec<i64> =
            sizes.trim_matches(|c| c == '[' || c == ']').split(',').filter_map(|t| t.trim().parse().ok()).collect();
        module.attrs.insert("lm_head_chunk_sizes".into(), AttrValue::Ints(sizes));
    }
    if let Some(w) = window.filter(|_| rotates) {
        module.attrs.insert("sliding_window".into(), AttrValue::Int(w as i64));
    }
    module.attrs.insert("arch".into(), AttrValue::Str(meta.get("architecture").unwrap_or("llama").to_string()));
    if let Some(ids) = eos {
        let ids: Vec<i64> = ids.split(',').filter_map(|t| t.trim().parse().ok()).collect();
        module.attrs.insert("eos_token_ids".into(), AttrValue::Ints(ids));
    }
    verify_module(&module).map_err(|e| LoadError::Package {
        path: dir.to_path_buf(),
        message: format!("the packages do not fit together: {e}"),
    })?;
    Ok(LoadedOutput { module, source: Arc::new(MergedSource { parts }), meta, packages })
}
