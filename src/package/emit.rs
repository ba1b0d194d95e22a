//! [`emit_output`]: an optimised module → the folder ANEMLL's runtimes load.
//!
//! ```text
//! OUT/
//!   {prefix}_embeddings[_lutB].mlpackage          main: input_ids [1,1]|[1,B] → hidden_states
//!   {prefix}_FFN_PF[_lutB]_chunk_XXofNN.mlpackage  infer (default) + prefill, one shared state
//!   {prefix}_lm_head[_lutB].mlpackage             main: hidden_states [1,1,H] → logits1..K
//!   meta.yaml, config.json, tokenizer files
//! ```
//!
//! The module is split into chunk functions ([`split_module`]) following the [`Layout`];
//! each package is written by [`write_package`] (weights streamed one at a time from the
//! [`WeightCache`], each stored once per package even when `infer` and `prefill` both use
//! it). Packages are written one after the other (palettization inside each weight is
//! parallel) into a [`StagingDir`] that is renamed onto `OUT` only when everything succeeded. The output is a pure function of the module and
//! its weights: the same input gives byte-identical folders, whatever the thread count.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::layout::{Layout, LayoutError, LayoutOptions, PartKind, PartPlan, plan_layout};
use super::staging::{StagingDir, StagingError};
use super::tokenizer_files::{copy_tokenizer_files, ios_config_json};
use super::{MetaYaml, names};
use crate::ir::{AttrValue, Module};
use crate::mil::{EmitError, FunctionSpec, PackageInfo, PackageMetadata, PackageSpec, write_package};
use crate::split::{SplitError, split_module};
use crate::weights::WeightCache;

/// The meta.yaml `version` field ANEMLL's runtimes understand (0.1.1 switches the Swift
/// runtime to a legacy mode).
pub const META_VERSION: &str = "0.3.4";

/// Everything [`emit_output`] needs besides the module.
#[derive(Clone, Debug, Default)]
pub struct EmitOptions {
    pub layout: LayoutOptions,
    /// Replace an existing output folder.
    pub force: bool,
    /// Where tokenizer files are copied from (normally the checkpoint folder).
    pub tokenizer_dir: Option<PathBuf>,
    /// The model name in meta.yaml; default: the checkpoint folder's name.
    pub model_name: Option<String>,
}

/// What was written.
#[derive(Clone, Debug)]
pub struct EmitReport {
    pub out: PathBuf,
    pub layout: Layout,
    /// One per part, in layout order.
    pub packages: Vec<PackageInfo>,
    pub meta: MetaYaml,
    pub tokenizer_files: Vec<&'static str>,
}

/// Why emission failed. [`EmitOutputError::is_input`] tells usage/input problems from
/// failures while writing.
#[derive(Debug, thiserror::Error)]
pub enum EmitOutputError {
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error("splitting into chunks: {0}")]
    Split(#[from] SplitError),
    #[error("the module is not ANE-ready ({count} problem(s); run `anemllc opt` first): {first}")]
    NotAneReady { count: usize, first: String },
    #[error("writing {}: {source}", package.display())]
    Package { package: PathBuf, source: EmitError },
    #[error(transparent)]
    Staging(#[from] StagingError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

impl EmitOutputError {
    /// True when the input (module, options, existing output) is at fault.
    pub fn is_input(&self) -> bool {
        matches!(
            self,
            EmitOutputError::Layout(_)
                | EmitOutputError::NotAneReady { .. }
                | EmitOutputError::Staging(StagingError::Exists { .. })
        )
    }
}

/// Progress events, in the order parts finish.
#[derive(Clone, Debug)]
pub enum EmitEvent<'a> {
    /// Packages are about to be written.
    Start { parts: usize, bytes: u64 },
    /// One package is complete.
    PartDone { part: &'a PartPlan },
}

fn model_name(m: &Module, opts: &EmitOptions) -> String {
    if let Some(n) = &opts.model_name {
        return n.clone();
    }
    m.attr_str("checkpoint")
        .and_then(|c| Path::new(c).file_name().and_then(|n| n.to_str()).map(str::to_string))
        .unwrap_or_else(|| m.name.clone())
}

fn ints(m: &Module, key: &str) -> Vec<i64> {
    match m.attrs.get(key) {
        Some(AttrValue::Ints(v)) => v.clone(),
        Some(AttrValue::Int(v)) => vec![*v],
        _ => Vec::new(),
    }
}

fn join(v: &[i64]) -> String {
    v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",")
}

/// Package metadata per the contract (§1.9) plus `com.anemllc.*` facts our runner reads.
fn metadata(m: &Module, layout: &Layout, part: &PartPlan, model: &str) -> PackageMetadata {
    let what = match part.kind {
        PartKind::Embeddings => "Embeddings",
        PartKind::Ffn => "Multifunction FFN+Prefill",
        PartKind::LmHead => "LM Head",
    };
    let mut ud = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        ud.insert(k.to_string(), v);
    };
    put("com.anemll.info", format!("Converted with anemllc {} from {model}", env!("CARGO_PKG_VERSION")));
    put("com.anemll.context_length", layout.context.to_string());
    if let Some(b) = part.lut {
        put("com.anemll.lut_bits", b.to_string());
    }
    put("com.anemllc.arch", layout.arch.clone());
    match part.kind {
        PartKind::Embeddings => put("com.anemll.batch_size", layout.batch.to_string()),
        PartKind::Ffn => {
            put("com.anemll.batch_size", layout.batch.to_string());
            put("com.anemll.num_chunks", layout.chunk_plan.len().to_string());
            put("com.anemll.chunk_no", (part.chunk.unwrap_or(0) + 1).to_string());
            put("com.anemll.functions", layout.modes.join(","));
            if let Some(r) = &part.layers {
                put("com.anemllc.layers", format!("{}..{}", r.start, r.end));
            }
            put("com.anemllc.total_layers", layout.layers.to_string());
        }
        PartKind::LmHead => {
            put("com.anemllc.eos_token_ids", join(&ints(m, "eos_token_ids")));
            put("com.anemllc.vocab", m.attr_int("vocab").unwrap_or(0).to_string());
        }
    }
    PackageMetadata {
        author: format!("Converted with anemllc v{}", env!("CARGO_PKG_VERSION")),
        version: env!("CARGO_PKG_VERSION").to_string(),
        short_description: format!("Anemll Model ({what}) converted to CoreML by anemllc"),
        license: "MIT".into(),
        user_defined: ud,
    }
}

/// The package spec of a part, over the split module's function names.
fn package_spec(layout: &Layout, part: &PartPlan) -> PackageSpec {
    match part.kind {
        PartKind::Embeddings => PackageSpec {
            functions: vec![
                FunctionSpec::new("main", "embed.infer")
                    .with_enumerated_shapes("input_ids", vec![vec![1, 1], vec![1, layout.batch]]),
            ],
            ..Default::default()
        },
        PartKind::Ffn => {
            let k = part.chunk.unwrap_or(0);
            let mut spec = PackageSpec::multi(
                layout.modes.iter().map(|mode| (mode.to_string(), format!("chunk{k}.{mode}"))).collect::<Vec<_>>(),
            );
            spec.default_function = Some("infer".into());
            spec
        }
        PartKind::LmHead => PackageSpec::single("lm_head.infer"),
    }
}

/// The meta.yaml of a layout.
pub fn meta_yaml(layout: &Layout, model: &str) -> MetaYaml {
    let file = |kind| layout.part(kind).map(|p| format!("{}.mlpackage", p.stem)).unwrap_or_default();
    MetaYaml {
        model_name: model.to_string(),
        context: layout.context,
        batch: layout.batch,
        lut_embeddings: layout.lut(PartKind::Embeddings),
        lut_ffn: layout.lut(PartKind::Ffn),
        lut_lmhead: layout.lut(PartKind::LmHead),
        num_chunks: layout.chunk_plan.len(),
        prefix: layout.prefix.clone(),
        arch: layout.arch.clone(),
        embeddings: file(PartKind::Embeddings),
        lm_head: file(PartKind::LmHead),
        // The first chunk's file, as 0.3.6 writes it (0.3.4 readers rebuild the names).
        ffn: format!(
            "{}.mlpackage",
            names::ffn_chunk(&layout.prefix, layout.lut(PartKind::Ffn), 0, layout.chunk_plan.len())
        ),
        split_lm_head: layout.lm_head_pieces,
        version: META_VERSION.to_string(),
        lm_head_chunk_sizes: layout.lm_head_sizes.clone(),
        argmax_in_model: layout.argmax_in_model,
        sliding_window: layout.sliding_window,
    }
}

/// Writes the output folder `out` for module `m` (see the module docs).
pub fn emit_output(
    m: &Module,
    weights: &WeightCache,
    opts: &EmitOptions,
    out: &Path,
    progress: &(dyn Fn(EmitEvent<'_>) + Sync),
) -> Result<EmitReport, EmitOutputError> {
    let problems = crate::opt::check_module(m);
    if let Some(first) = problems.first() {
        return Err(EmitOutputError::NotAneReady { count: problems.len(), first: first.to_string() });
    }
    let layout = plan_layout(m, &opts.layout)?;
    let split = split_module(m, &layout.chunk_plan)?;
    let staging = StagingDir::create(out, opts.force)?;
    let model = model_name(m, opts);

    progress(EmitEvent::Start { parts: layout.parts.len(), bytes: layout.parts.iter().map(|p| p.bytes).sum() });
    // One package at a time keeps peak memory at one weight's working set; the expensive
    // part, palettization, is parallel inside each weight (rayon over groups).
    let packages: Vec<PackageInfo> = layout
        .parts
        .iter()
        .map(|part| {
            let mut spec = package_spec(&layout, part);
            spec.metadata = metadata(m, &layout, part, &model);
            let path = staging.path().join(format!("{}.mlpackage", part.stem));
            let mut info = write_package(&split, &spec, weights, &path).map_err(|source| EmitOutputError::Package {
                package: out.join(format!("{}.mlpackage", part.stem)),
                source,
            })?;
            info.path = out.join(format!("{}.mlpackage", part.stem));
            progress(EmitEvent::PartDone { part });
            Ok(info)
        })
        .collect::<Result<_, EmitOutputError>>()?;

    let meta = meta_yaml(&layout, &model);
    let write = |name: &str, text: &str| {
        let path = staging.path().join(name);
        std::fs::write(&path, text).map_err(|source| EmitOutputError::Io { path, source })
    };
    write("meta.yaml", &meta.render())?;
    let tokenizer_files = match &opts.tokenizer_dir {
        Some(dir) => copy_tokenizer_files(dir, staging.path())
            .map_err(|source| EmitOutputError::Io { path: dir.clone(), source })?,
        None => Vec::new(),
    };
    write("config.json", &ios_config_json(&layout.arch))?;
    let out = staging.commit()?;
    Ok(EmitReport { out, layout, packages, meta, tokenizer_files })
}
