//! [`plan_layout`]: which packages an optimised module becomes, before anything is written.
//!
//! The parts follow anemll-contract.md §1: one embeddings package, `N` FFN chunk packages
//! (contiguous decoder layers, `infer` + `prefill`), one LM-head package. `N` is the fewest
//! even chunks whose weight payload fits the per-package budget of the target (or
//! `--max-chunk-bytes`) and the layer ceiling, unless `--chunks` forces it; every layer is
//! in exactly one chunk whatever `L mod N` is.

use std::collections::BTreeSet;
use std::ops::Range;

use super::names;
use crate::ir::Module;
use crate::mil::emit::weights::used_weights;
use crate::split::{ChunkLimits, plan_chunks};

/// Which device family the packages are for (sets the per-package byte budget).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Target {
    /// ~1 GiB per package.
    #[default]
    Ios,
    /// ~2 GiB per package.
    Macos,
}

impl Target {
    pub fn limits(self) -> ChunkLimits {
        match self {
            Target::Ios => ChunkLimits::IOS,
            Target::Macos => ChunkLimits::MACOS,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Target::Ios => "ios",
            Target::Macos => "macos",
        }
    }
}

/// How to cut and name the output.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LayoutOptions {
    /// File-name prefix; `None` = ANEMLL's default for the architecture.
    pub prefix: Option<String>,
    pub target: Target,
    /// Overrides the target's per-package budget.
    pub max_chunk_bytes: Option<u64>,
    /// Forces the number of FFN chunks.
    pub chunks: Option<usize>,
}

/// The kind of a part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartKind {
    Embeddings,
    Ffn,
    LmHead,
}

/// One package to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartPlan {
    pub kind: PartKind,
    /// File stem (without `.mlpackage`), per the contract.
    pub stem: String,
    /// Decoder layers (FFN chunks only).
    pub layers: Option<Range<usize>>,
    /// 0-based chunk index (FFN chunks only).
    pub chunk: Option<usize>,
    /// Distinct weights stored in the package.
    pub weights: usize,
    /// Their payload in bytes (indices and tables for palettized weights).
    pub bytes: u64,
    /// LUT bits of the part's palettized weights, if any.
    pub lut: Option<u32>,
}

/// The whole output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub prefix: String,
    pub arch: String,
    pub layers: usize,
    pub context: usize,
    pub batch: usize,
    /// Number of LM-head logits outputs.
    pub lm_head_pieces: usize,
    /// Vocabulary rows of each LM-head output, in order.
    pub lm_head_sizes: Vec<usize>,
    pub chunk_plan: Vec<Range<usize>>,
    /// Embeddings, FFN chunks in order, LM head.
    pub parts: Vec<PartPlan>,
    /// The functions of every FFN chunk package, in package order (`infer` is the default).
    pub modes: Vec<&'static str>,
    /// KV length of the sliding-window layers (models that have them).
    pub sliding_window: Option<usize>,
    /// The LM head returns per-piece argmax instead of logits.
    pub argmax_in_model: bool,
}

/// The FFN functions of a model whose sliding-window caches rotate, in ANEMLL 0.3.6's order.
pub const FOUR_MODES: [&str; 4] = ["infer", "infer_rotate", "prefill", "prefill_rotate"];

impl Layout {
    pub fn part(&self, kind: PartKind) -> Option<&PartPlan> {
        self.parts.iter().find(|p| p.kind == kind)
    }

    pub fn lut(&self, kind: PartKind) -> Option<u32> {
        self.part(kind).and_then(|p| p.lut)
    }
}

/// Why a module cannot be laid out.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("the module is not a lowered decoder: {0}")]
    NotADecoder(String),
    #[error("{0}")]
    Chunks(#[from] crate::split::chunks::ChunkError),
    #[error("invalid --prefix {0:?}: use letters, digits, '-', '_' or '.' (it becomes part of file names)")]
    BadPrefix(String),
}

fn positive(m: &Module, key: &str) -> Result<usize, LayoutError> {
    m.attr_int(key)
        .and_then(|v| usize::try_from(v).ok())
        .filter(|&v| v > 0)
        .ok_or_else(|| LayoutError::NotADecoder(format!("module attribute `{key}` is missing or not positive")))
}

fn lut_attr(m: &Module, key: &str) -> Option<u32> {
    m.attr_int(key).and_then(|v| u32::try_from(v).ok()).filter(|&b| b > 0)
}

fn payload(m: &Module, used: &BTreeSet<&str>) -> u64 {
    m.weights.iter().filter(|w| used.contains(w.name.as_str())).map(|w| w.ty.byte_size()).sum()
}

fn require(m: &Module, name: &str) -> Result<(), LayoutError> {
    match m.function(name) {
        Some(_) => Ok(()),
        None => Err(LayoutError::NotADecoder(format!("it has no function @{name}"))),
    }
}

fn valid_prefix(p: &str) -> bool {
    !p.is_empty() && !p.starts_with('.') && p.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Plans the packages of a lowered (and normally optimised) module.
pub fn plan_layout(m: &Module, opts: &LayoutOptions) -> Result<Layout, LayoutError> {
    let layers = positive(m, "layers")?;
    let context = positive(m, "context")?;
    let batch = positive(m, "batch")?;
    let arch = m.attr_str("arch").unwrap_or("llama").to_string();
    for name in ["embed.infer", "final_norm.infer", "lm_head.infer"] {
        require(m, name)?;
    }
    let rotates = m.function("layer0.infer_rotate").is_some();
    for i in 0..layers {
        require(m, &format!("layer{i}.infer"))?;
        require(m, &format!("layer{i}.prefill"))?;
        if rotates {
            require(m, &format!("layer{i}.infer_rotate"))?;
            require(m, &format!("layer{i}.prefill_rotate"))?;
        }
    }
    let prefix = opts.prefix.clone().unwrap_or_else(|| names::default_prefix(&arch).to_string());
    if !valid_prefix(&prefix) {
        return Err(LayoutError::BadPrefix(prefix));
    }
    let layer_bytes: Vec<u64> = (0..layers)
        .map(|i| payload(m, &used_weights(m, &[&format!("layer{i}.infer"), &format!("layer{i}.prefill")])))
        .collect();
    let mut limits = opts.target.limits();
    if let Some(max) = opts.max_chunk_bytes {
        limits.max_bytes = max;
    }
    let chunk_plan = plan_chunks(&layer_bytes, limits, opts.chunks)?;
    let argmax_in_model = m.attrs.get("argmax_in_model") == Some(&crate::ir::AttrValue::Bool(true));
    let lm_head_sizes: Vec<usize> = match m.attrs.get("lm_head_chunk_sizes") {
        Some(crate::ir::AttrValue::Ints(v)) => v.iter().map(|&s| s.max(0) as usize).collect(),
        _ => m.function("lm_head.infer").map_or_else(Vec::new, |f| {
            f.outputs.iter().map(|o| o.ty.tensor().shape.last().copied().unwrap_or(0)).collect()
        }),
    };
    let lm_head_pieces = lm_head_sizes.len();

    let (lut_embed, lut_ffn, lut_head) = (lut_attr(m, "lut_embed"), lut_attr(m, "lut_ffn"), lut_attr(m, "lut_lm_head"));
    let part = |kind, stem: String, functions: Vec<String>, layers, chunk, lut| {
        let names: Vec<&str> = functions.iter().map(String::as_str).collect();
        let used = used_weights(m, &names);
        PartPlan { kind, stem, layers, chunk, weights: used.len(), bytes: payload(m, &used), lut }
    };
    let mut parts = vec![part(
        PartKind::Embeddings,
        names::embeddings(&prefix, lut_embed),
        vec!["embed.infer".into()],
        None,
        None,
        lut_embed,
    )];
    let n = chunk_plan.len();
    for (k, range) in chunk_plan.iter().enumerate() {
        let mut functions: Vec<String> =
            range.clone().flat_map(|i| [format!("layer{i}.infer"), format!("layer{i}.prefill")]).collect();
        if k + 1 == n {
            functions.push("final_norm.infer".into());
        }
        parts.push(part(
            PartKind::Ffn,
            names::ffn_chunk(&prefix, lut_ffn, k, n),
            functions,
            Some(range.clone()),
            Some(k),
            lut_ffn,
        ));
    }
    parts.push(part(
        PartKind::LmHead,
        names::lm_head(&prefix, lut_head),
        vec!["lm_head.infer".into()],
        None,
        None,
        lut_head,
    ));
    let modes = if rotates { FOUR_MODES.to_vec() } else { vec!["infer", "prefill"] };
    let sliding_window = m.attr_int("sliding_window").and_then(|w| usize::try_from(w).ok());
    Ok(Layout {
        prefix,
        arch,
        layers,
        context,
        batch,
        lm_head_pieces,
        lm_head_sizes,
        chunk_plan,
        parts,
        modes,
        sliding_window,
        argmax_in_model,
    })
}
