//! `lower`: checkpoint folder → framework-neutral IR module (docs/module-conventions.md).

use std::path::{Path, PathBuf};

use super::config::LayerKind;
use super::config::ModelConfig;
use super::decoder::{Dims, Mode, lower_embed, lower_final_norm, lower_layer, lower_lm_head};
use super::spec::DecoderSpec;
use super::{frontend_for, rope};
use crate::checkpoint::{Checkpoint, CheckpointError, StDType};
use crate::ir::{AttrValue, DType, Module, Op, Recipe, TensorType, TypeError, Weight, verify_module};
use crate::split::{MAX_VOCAB_PIECE, lm_head_pieces_at_least};

/// Options of `anemllc lower`.
#[derive(Clone, Debug)]
pub struct LowerOptions {
    /// KV cache length C (and causal-mask width).
    pub context: usize,
    /// Prefill batch B.
    pub batch: usize,
    /// Largest vocabulary slice of one LM-head piece (the ANE's 16384; smaller in tests).
    pub max_vocab_piece: usize,
    /// `lm_head.infer` returns the argmax of each piece (`argmax_idx` int32 [K], local
    /// indices, and `argmax_val` [K]) instead of the logits (ANEMLL 0.3.6 `--argmax`).
    pub argmax: bool,
    /// Fold the RMSNorm gains that feed only projections into those projections' weights
    /// (`norm_fold`: one op per norm less). Off for modules whose layer weights will be
    /// palettized: unfolded, each gain scales the dequantised weights' input columns at run
    /// time, a per-column scale of every lookup table's grid that folding takes away
    /// (docs/opt.md, "Norm gains folded into the projections").
    pub fold_norm_gains: bool,
}

impl LowerOptions {
    /// Options with the given context and batch and the ANE's LM-head piece limit.
    pub fn new(context: usize, batch: usize) -> Self {
        LowerOptions { context, batch, max_vocab_piece: MAX_VOCAB_PIECE, argmax: false, fold_norm_gains: true }
    }
}

impl Default for LowerOptions {
    fn default() -> Self {
        LowerOptions::new(512, 64)
    }
}

/// Why lowering failed. Every message names the file, tensor or option at fault.
#[derive(Debug, thiserror::Error)]
pub enum LowerError {
    #[error(transparent)]
    Config(#[from] super::config::ConfigError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("{dir}: tensor \"{tensor}\" is missing from the checkpoint (needed as {role})")]
    MissingTensor { dir: PathBuf, tensor: String, role: String },
    #[error("{file}: tensor \"{tensor}\" has shape {found:?}, expected {expected:?} ({role})")]
    WrongShape { file: PathBuf, tensor: String, expected: Vec<usize>, found: Vec<usize>, role: String },
    #[error("invalid option: {0}")]
    Option(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("internal error: lowering produced ill-typed IR ({rule}: {message}); please report this")]
    Internal { rule: String, message: String },
}

impl From<TypeError> for LowerError {
    fn from(e: TypeError) -> Self {
        LowerError::Internal { rule: e.rule, message: e.message }
    }
}

fn validate_options(cfg: &ModelConfig, opts: &LowerOptions) -> Result<(), LowerError> {
    if opts.context == 0 || opts.batch == 0 {
        return Err(LowerError::Option("--context and --batch must be positive".into()));
    }
    if opts.batch > opts.context {
        return Err(LowerError::Option(format!("--batch {} is larger than --context {}", opts.batch, opts.context)));
    }
    if !opts.context.is_multiple_of(opts.batch) {
        return Err(LowerError::Option(format!(
            "--context {} is not a multiple of --batch {} (prefill writes whole batches into the KV cache)",
            opts.context, opts.batch
        )));
    }
    let local = cfg.features.sliding_window.map_or(opts.context, |w| w.min(opts.context));
    if local < opts.context && (opts.batch > local || !local.is_multiple_of(opts.batch)) {
        return Err(LowerError::Option(format!(
            "--batch {} must divide the sliding window {local} (prefill batches must not straddle the \
             point where the sliding-window caches start to rotate)",
            opts.batch
        )));
    }
    if cfg.o_bias || cfg.mlp_bias {
        return Err(LowerError::Unsupported(
            "config.json: `mlp_bias`/o_proj bias = true is not supported yet (no supported architecture uses it)"
                .into(),
        ));
    }
    if !cfg.head_dim.is_multiple_of(2) {
        return Err(LowerError::Option(format!(
            "head_dim {} is odd; rotary embeddings need an even head_dim",
            cfg.head_dim
        )));
    }
    // The largest tensors that grow with the context: the per-head keys/values
    // [2, heads, C, head_dim] and the attention scores [heads, B, C]. Their element counts
    // must be representable (IR shapes are i64), else the lowered types would overflow.
    let numel = |dims: &[usize]| dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let fits = |dims: &[usize]| numel(dims).is_some_and(|n| i64::try_from(n).is_ok());
    if !fits(&[2, cfg.heads, opts.context, cfg.head_dim]) || !fits(&[cfg.heads, opts.batch, opts.context]) {
        return Err(LowerError::Option(format!(
            "--context {} / --batch {} are too large for {} heads of dimension {}: the attention \
             tensors would have more than 2^63 elements",
            opts.context, opts.batch, cfg.heads, cfg.head_dim
        )));
    }
    Ok(())
}

/// Declares checkpoint tensors as module weights, checking presence and shape.
struct WeightTable<'c> {
    ckpt: &'c Checkpoint,
    dir: &'c Path,
    weights: Vec<Weight>,
}

impl WeightTable<'_> {
    fn declare(&mut self, tensor: &str, expected: &[usize], role: &str) -> Result<(), LowerError> {
        if self.weights.iter().any(|w| w.name == tensor) {
            return Ok(());
        }
        let info = self.ckpt.info(tensor).ok_or_else(|| LowerError::MissingTensor {
            dir: self.dir.to_path_buf(),
            tensor: tensor.to_string(),
            role: role.to_string(),
        })?;
        if info.shape != expected {
            return Err(LowerError::WrongShape {
                file: info.file.clone(),
                tensor: tensor.to_string(),
                expected: expected.to_vec(),
                found: info.shape.clone(),
                role: role.to_string(),
            });
        }
        let stored = match info.dtype {
            StDType::F32 => DType::F32,
            StDType::F16 => DType::F16,
            StDType::BF16 => DType::BF16,
        };
        let source = Recipe::Checkpoint { tensor: tensor.to_string(), ty: TensorType::new(stored, expected.to_vec()) };
        let recipe =
            if stored == DType::F32 { source } else { Recipe::Cast { input: Box::new(source), dtype: DType::F32 } };
        self.weights.push(Weight {
            name: tensor.to_string(),
            ty: TensorType::new(DType::F32, expected.to_vec()),
            recipe,
        });
        Ok(())
    }

    /// Declares an RMSNorm gain; with `offset` the stored value is w and the gain 1 + w.
    fn declare_gain(&mut self, tensor: &str, len: usize, role: &str, offset: bool) -> Result<(), LowerError> {
        let fresh = !self.weights.iter().any(|w| w.name == tensor);
        self.declare(tensor, &[len], role)?;
        if offset && fresh {
            let w = self.weights.iter_mut().find(|w| w.name == tensor).expect("just declared");
            let inner =
                std::mem::replace(&mut w.recipe, Recipe::Checkpoint { tensor: String::new(), ty: w.ty.clone() });
            w.recipe = Recipe::Offset { input: Box::new(inner), value: 1.0 };
        }
        Ok(())
    }
}

fn declare_weights(t: &mut WeightTable, spec: &DecoderSpec, cfg: &ModelConfig) -> Result<(), LowerError> {
    let (h, v, i) = (cfg.hidden, cfg.vocab, cfg.intermediate);
    let (qd, kvd, hd) = (cfg.heads * cfg.head_dim, cfg.kv_heads * cfg.head_dim, cfg.head_dim);
    let offset = cfg.features.norm_gain_offset;
    t.declare(&spec.embed_tokens, &[v, h], "token embeddings")?;
    for (n, l) in spec.layers.iter().enumerate() {
        let role = |what: &str| format!("layer {n} {what}");
        t.declare_gain(&l.input_norm, h, &role("input norm"), offset)?;
        t.declare(&l.q_proj, &[qd, h], &role("q projection"))?;
        t.declare(&l.k_proj, &[kvd, h], &role("k projection"))?;
        t.declare(&l.v_proj, &[kvd, h], &role("v projection"))?;
        if let Some([qb, kb, vb]) = &l.qkv_bias {
            t.declare(qb, &[qd], &role("q bias"))?;
            t.declare(kb, &[kvd], &role("k bias"))?;
            t.declare(vb, &[kvd], &role("v bias"))?;
        }
        if let Some([qn, kn]) = &l.qk_norm {
            t.declare_gain(qn, hd, &role("q norm"), offset)?;
            t.declare_gain(kn, hd, &role("k norm"), offset)?;
        }
        t.declare(&l.o_proj, &[h, qd], &role("o projection"))?;
        t.declare_gain(&l.mlp_norm, h, &role("MLP input norm"), offset)?;
        if let Some([a, m]) = &l.out_norms {
            t.declare_gain(a, h, &role("attention output norm"), offset)?;
            t.declare_gain(m, h, &role("MLP output norm"), offset)?;
        }
        t.declare(&l.gate_proj, &[i, h], &role("MLP gate projection"))?;
        t.declare(&l.up_proj, &[i, h], &role("MLP up projection"))?;
        t.declare(&l.down_proj, &[h, i], &role("MLP down projection"))?;
    }
    t.declare_gain(&spec.final_norm, h, "final norm", offset)?;
    t.declare(&spec.lm_head, &[v, h], "LM head")?;
    if let Some(scale) = spec.embed_scale {
        let table = t.weights.iter().find(|w| w.name == spec.embed_tokens).expect("declared above").clone();
        t.weights.push(Weight {
            name: super::decoder::embed_weight_name(spec),
            ty: table.ty,
            recipe: Recipe::Scale { input: Box::new(table.recipe), factor: scale },
        });
    }
    Ok(())
}

/// Declares the LM-head pieces (vocabulary slices of at most 16384 rows, as the ANE
/// requires) as weights sliced from the full head; returns their names in vocabulary order.
/// A head that fits in one piece is used as is.
fn lm_head_piece_weights(
    weights: &mut Vec<Weight>,
    head: &str,
    tied: bool,
    cfg: &ModelConfig,
    max: usize,
) -> Vec<String> {
    // ANEMLL cuts Gemma 3's head into 16 pieces (more if a piece would exceed `max`).
    let min = if cfg.arch == super::config::Arch::Gemma3 { 16 } else { 1 };
    let sizes = lm_head_pieces_at_least(cfg.vocab, max.max(1), min);
    if sizes.len() <= 1 {
        return vec![head.to_string()];
    }
    let full = weights.iter().find(|w| w.name == head).expect("the LM head was declared").recipe.clone();
    let mut names = Vec::with_capacity(sizes.len());
    let mut start = 0;
    for (k, rows) in sizes.into_iter().enumerate() {
        let name = format!("lm_head.piece{}", k + 1);
        let recipe = Recipe::Slice { input: Box::new(full.clone()), axis: 0, start, end: start + rows };
        weights.push(Weight { name: name.clone(), ty: TensorType::new(DType::F32, vec![rows, cfg.hidden]), recipe });
        names.push(name);
        start += rows;
    }
    if !tied {
        // Only the pieces are used; a tied head is still the embedding table.
        weights.retain(|w| w.name != head);
    }
    names
}

/// Declares the `{prefix}.cos` and `{prefix}.sin_signed` tables, stored transposed as
/// `[head_dim, context]` (one column per position, so a layer gathers its rows' columns in
/// the heads' `[hd, S]` order). `sin_signed` is the sine table with its first half negated: rotate_half's sign lives in
/// the table, so the lowering rotates with a split and a concat and no negation
/// (`x·cos + concat(−x₂, x₁)·sin = x·cos + concat(x₂, x₁)·sin_signed`, exactly: negation is
/// exact in floating point).
fn push_rope_tables(weights: &mut Vec<Weight>, prefix: &str, inv_freq: &[f64], len: usize, dim: usize, scale: f64) {
    let (f, dtype) = (inv_freq.to_vec(), DType::F32);
    let ty = TensorType::new(DType::F32, vec![dim, len]);
    let columns = |r: Recipe| Recipe::Transpose { input: Box::new(r), perm: vec![1, 0] };
    let cos = Recipe::RopeCos { inv_freq: f.clone(), len, scale, dtype };
    weights.push(Weight { name: format!("{prefix}.cos"), ty: ty.clone(), recipe: columns(cos) });
    let sin = Recipe::RopeSin { inv_freq: f, len, scale, dtype };
    let half = |start: usize| Recipe::Slice { input: Box::new(sin.clone()), axis: 1, start, end: start + dim / 2 };
    let signed = Recipe::Concat {
        inputs: vec![Recipe::Scale { input: Box::new(half(0)), factor: -1.0 }, half(dim / 2)],
        axis: 1,
    };
    weights.push(Weight { name: format!("{prefix}.sin_signed"), ty, recipe: columns(signed) });
}

/// A module name made of the folder's base name, restricted to symbol characters.
fn module_name(dir: &Path) -> String {
    let base = dir.canonicalize().ok().and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    let base = base.unwrap_or_else(|| "model".to_string());
    let clean: String =
        base.chars().map(|c| if c.is_ascii_alphanumeric() || "_.-".contains(c) { c } else { '_' }).collect();
    if clean.is_empty() { "model".into() } else { clean }
}

/// The file a model's configuration comes from: `config.json` of a folder, or the GGUF
/// file itself (for error messages).
pub fn config_file(model: &Path) -> PathBuf {
    if crate::gguf::is_gguf_path(model) { model.to_path_buf() } else { model.join("config.json") }
}

/// Lowers the checkpoint at `dir` (a folder or a GGUF file) into a verified module.
pub fn lower_checkpoint(dir: &Path, opts: &LowerOptions) -> Result<Module, LowerError> {
    let cfg = ModelConfig::from_model_path(dir)?;
    validate_options(&cfg, opts)?;
    let ckpt = Checkpoint::open(dir)?;
    lower_with(dir, &cfg, &ckpt, opts)
}

/// Lowers an opened checkpoint with its normalised config.
pub fn lower_with(dir: &Path, cfg: &ModelConfig, ckpt: &Checkpoint, opts: &LowerOptions) -> Result<Module, LowerError> {
    validate_options(cfg, opts)?;
    let frontend = frontend_for(cfg.arch);
    // transformers ties the head to the embeddings when the config says so, and a checkpoint
    // without the output projection's tensor can only be tied.
    // Every layer needs tensors of its own; refusing a deeper config here keeps a hostile
    // `num_hidden_layers` (say 10^12) from allocating a spec for each layer first.
    if cfg.layers > ckpt.len() {
        return Err(LowerError::Config(super::config::ConfigError::Invalid {
            file: config_file(dir),
            field: "num_hidden_layers".into(),
            message: format!(
                "{} layers, but the checkpoint holds only {} tensors (each layer needs its own)",
                cfg.layers,
                ckpt.len()
            ),
        }));
    }
    let has = |name: &str| ckpt.info(name).is_some();
    let untied = frontend.spec(cfg, false, &has);
    let tied = cfg.tie_word_embeddings || !has(&untied.lm_head);
    let spec = frontend.spec(cfg, tied, &has);

    let mut table = WeightTable { ckpt, dir, weights: Vec::new() };
    declare_weights(&mut table, &spec, cfg)?;
    super::fused_qkv::declare_fused(&mut table.weights, &spec, cfg.features.attn_scale);
    if opts.fold_norm_gains {
        super::norm_fold::declare_folded(&mut table.weights, &spec);
    }
    let inv_freq = rope::inv_freq_for_context(cfg, opts.context);
    if !rope::finite_tables(&inv_freq, opts.context) {
        return Err(LowerError::Config(super::config::ConfigError::Invalid {
            file: config_file(dir),
            field: "rope_theta".into(),
            message: format!(
                "rope_theta {} with scaling {:?} gives RoPE angles that are not finite in f32 over {} positions",
                cfg.rope_theta, cfg.rope_scaling, opts.context
            ),
        }));
    }
    let scale = rope::attention_scaling(cfg);
    let mut weights = table.weights;
    let pieces = lm_head_piece_weights(&mut weights, &spec.lm_head, spec.tied, cfg, opts.max_vocab_piece);
    let local = rope::local_inv_freq_for_context(cfg, opts.context).map(|f| ("rope_local", f));
    for (prefix, inv_freq) in std::iter::once(("rope", inv_freq)).chain(local) {
        push_rope_tables(&mut weights, prefix, &inv_freq, opts.context, cfg.head_dim, scale);
    }

    let mut m = Module::new(module_name(dir));

    m.weights = weights;
    let int = |v: usize| AttrValue::Int(v as i64);
    m.attrs.insert("arch".into(), AttrValue::Str(cfg.arch.name().into()));
    m.attrs.insert("checkpoint".into(), AttrValue::Str(dir.to_string_lossy().into_owned()));
    for (k, v) in [
        ("hidden", cfg.hidden),
        ("layers", cfg.layers),
        ("heads", cfg.heads),
        ("kv_heads", cfg.kv_heads),
        ("head_dim", cfg.head_dim),
        ("intermediate", cfg.intermediate),
        ("vocab", cfg.vocab),
        ("context", opts.context),
        ("batch", opts.batch),
    ] {
        m.attrs.insert(k.into(), int(v));
    }
    m.attrs.insert("eos_token_ids".into(), AttrValue::Ints(cfg.eos_token_ids.iter().map(|&t| t as i64).collect()));
    let d = Dims { fold_norms: opts.fold_norm_gains, ..Dims::new(cfg, opts.context, opts.batch) };
    let sliding: Vec<i64> =
        spec.layers.iter().enumerate().filter(|(_, l)| l.kind == LayerKind::Sliding).map(|(i, _)| i as i64).collect();
    if !sliding.is_empty() {
        m.attrs.insert("sliding_window".into(), int(d.local_len));
        m.attrs.insert("sliding_layers".into(), AttrValue::Ints(sliding));
    }

    let mut functions =
        vec![lower_embed(&m, &spec, &d, "embed.infer", 1)?, lower_embed(&m, &spec, &d, "embed.prefill", opts.batch)?];
    for (i, layer) in spec.layers.iter().enumerate() {
        for &mode in Mode::all(&d) {
            functions.push(lower_layer(&m, layer, &d, i, mode)?);
        }
    }
    functions.push(lower_final_norm(&m, &spec, &d, "final_norm.infer", 1)?);
    functions.push(lower_final_norm(&m, &spec, &d, "final_norm.prefill", opts.batch)?);
    let sizes: Vec<i64> =
        pieces.iter().map(|p| m.weights.iter().find(|w| &w.name == p).map_or(0, |w| w.ty.shape[0] as i64)).collect();
    m.attrs.insert("lm_head_chunk_sizes".into(), AttrValue::Ints(sizes));
    if opts.argmax {
        m.attrs.insert("argmax_in_model".into(), AttrValue::Bool(true));
    }
    functions.push(lower_lm_head(&m, &pieces, &d, "lm_head.infer", 1, opts.argmax)?);
    functions.push(lower_lm_head(&m, &pieces, &d, "lm_head.prefill", opts.batch, false)?);
    m.functions = functions;
    // Tensors only used through derived weights (the q/k/v projections inside the fused
    // one) are not weights of the module: nothing may read, report or emit them twice.
    let used: std::collections::HashSet<String> = m
        .functions
        .iter()
        .flat_map(|f| {
            f.nodes.iter().filter_map(|(_, n)| if let Op::Weight { name } = &n.op { Some(name.clone()) } else { None })
        })
        .collect();
    m.weights.retain(|w| used.contains(&w.name));
    verify_module(&m).map_err(|e| LowerError::Internal { rule: e.rule.clone(), message: e.to_string() })?;
    Ok(m)
}
