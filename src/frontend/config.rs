//! The model configuration, in two levels.
//!
//! [`RawConfig`] mirrors `config.json` field by field (everything optional, unknown fields
//! ignored). [`ModelConfig`] is the normalised form the compiler uses: architecture
//! detected, every default filled in exactly as transformers' config classes fill it, and
//! every value validated. Errors name the file and the offending field.
//!
//! Defaults were read from transformers 4.57 (`LlamaConfig`, `Qwen2Config`, `Qwen3Config`
//! `__init__` signatures and the matching `modeling_*.py`); each is marked "transformers:"
//! below. Where transformers distinguishes an absent key from an explicit `null`, so do we
//! (fields typed `Option<Option<T>>`: outer `None` = absent, `Some(None)` = null).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// `eos_token_id` may be one id or a list of ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenIds {
    One(u32),
    Many(Vec<u32>),
}

impl<'de> Deserialize<'de> for TokenIds {
    /// Untagged: an integer or a list of integers. Replaces serde's generic "did not match
    /// any variant" message with one saying what is expected.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            One(u32),
            Many(Vec<u32>),
        }
        match Repr::deserialize(deserializer) {
            Ok(Repr::One(id)) => Ok(TokenIds::One(id)),
            Ok(Repr::Many(ids)) => Ok(TokenIds::Many(ids)),
            Err(_) => Err(serde::de::Error::custom("expected a token id (integer 0..2^32) or a list of token ids")),
        }
    }
}

/// `config.json` as written. Every field is optional; unknown fields are ignored.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct RawConfig {
    pub model_type: Option<String>,
    pub architectures: Option<Vec<String>>,
    pub hidden_size: Option<usize>,
    pub intermediate_size: Option<usize>,
    pub num_hidden_layers: Option<usize>,
    pub num_attention_heads: Option<usize>,
    #[serde(default, deserialize_with = "nullable")]
    pub num_key_value_heads: Option<Option<usize>>,
    #[serde(default, deserialize_with = "nullable")]
    pub head_dim: Option<Option<usize>>,
    pub vocab_size: Option<usize>,
    pub rms_norm_eps: Option<f64>,
    pub rope_theta: Option<f64>,
    /// transformers ≤ 4.x RoPE scaling dict (`rope_type`/`type`, `factor`, …).
    pub rope_scaling: Option<Value>,
    /// transformers 5 form: the scaling dict, possibly also holding `rope_theta`.
    pub rope_parameters: Option<Value>,
    pub partial_rotary_factor: Option<f64>,
    pub max_position_embeddings: Option<usize>,
    pub tie_word_embeddings: Option<bool>,
    pub attention_bias: Option<bool>,
    pub mlp_bias: Option<bool>,
    pub hidden_act: Option<String>,
    pub torch_dtype: Option<String>,
    /// Newer spelling of `torch_dtype`.
    pub dtype: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub bos_token_id: Option<Option<u32>>,
    #[serde(default, deserialize_with = "nullable")]
    pub eos_token_id: Option<Option<TokenIds>>,
    /// Only its presence matters.
    pub quantization_config: Option<Value>,
    pub use_sliding_window: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    pub sliding_window: Option<Option<usize>>,
    pub max_window_layers: Option<usize>,
    pub layer_types: Option<Vec<String>>,
    /// Gemma: attention scores are scaled by `query_pre_attn_scalar^-0.5`.
    pub query_pre_attn_scalar: Option<f64>,
    /// Gemma 3: RoPE base of the sliding-window layers.
    pub rope_local_base_freq: Option<f64>,
    /// Gemma's spelling of `hidden_act`.
    pub hidden_activation: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub final_logit_softcapping: Option<Option<f64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub attn_logit_softcapping: Option<Option<f64>>,
    /// Gemma 3 (legacy): every n-th layer is global when `layer_types` is absent.
    pub sliding_window_pattern: Option<usize>,
    #[serde(rename = "_sliding_window_pattern")]
    pub sliding_window_pattern_private: Option<usize>,
    /// Multimodal checkpoints (`gemma3`): the text model's config.
    pub text_config: Option<Value>,
    /// Set when `text_config` was flattened into this config: the weights are the text tower
    /// of a multimodal checkpoint (`language_model.` prefixes).
    #[serde(skip)]
    pub text_tower: bool,
}

/// Deserializes a present field as `Some(value-or-null)`; absent fields stay `None` via
/// `#[serde(default)]`.
fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Supported model architectures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arch {
    Llama,
    Qwen2,
    Qwen3,
    /// Gemma 3 text model (`gemma3_text`, or the text tower of a multimodal `gemma3`).
    Gemma3,
}

/// Supported `model_type` values, for messages.
const SUPPORTED_MODEL_TYPES: &str = "llama, qwen2, qwen3, gemma3_text, gemma3";
/// Supported `architectures[0]` values, for messages.
const SUPPORTED_ARCHITECTURES: &str =
    "LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, Gemma3ForCausalLM, Gemma3ForConditionalGeneration";

impl Arch {
    /// The `model_type` spelling.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
            Arch::Gemma3 => "gemma3_text",
        }
    }

    fn from_model_type(s: &str) -> Option<Arch> {
        match s {
            "llama" => Some(Arch::Llama),
            "qwen2" => Some(Arch::Qwen2),
            "qwen3" => Some(Arch::Qwen3),
            "gemma3_text" | "gemma3" => Some(Arch::Gemma3),
            _ => None,
        }
    }

    fn from_architecture(s: &str) -> Option<Arch> {
        match s {
            "LlamaForCausalLM" => Some(Arch::Llama),
            "Qwen2ForCausalLM" => Some(Arch::Qwen2),
            "Qwen3ForCausalLM" => Some(Arch::Qwen3),
            "Gemma3ForCausalLM" | "Gemma3ForConditionalGeneration" => Some(Arch::Gemma3),
            _ => None,
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// RoPE frequency scaling, as selected by `rope_scaling.rope_type` (or legacy `type`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RopeScaling {
    /// Plain RoPE (`rope_scaling` absent/null or `rope_type: "default"`).
    None,
    /// Position interpolation: every inverse frequency divided by `factor`.
    Linear { factor: f64 },
    /// Dynamic NTK: the base grows once the sequence exceeds `original_max`.
    /// transformers 4.57 uses `max_position_embeddings` here and ignores
    /// `rope_scaling.original_max_position_embeddings`, so `original_max` is always the
    /// config's `max_position_embeddings`.
    Dynamic { factor: f64, original_max: usize },
    /// Llama 3.1 frequency-band rule.
    Llama3 { factor: f64, low_freq_factor: f64, high_freq_factor: f64, original_max_position_embeddings: usize },
}

/// MLP activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Silu,
    /// transformers' `gelu_pytorch_tanh`: the tanh approximation of GELU.
    GeluTanh,
}

/// The normalised, validated model configuration.
///
/// Invariants: all sizes are > 0; `heads % kv_heads == 0`; `head_dim` is even and
/// `heads × head_dim` fits in an i64; `rms_eps` is finite and ≥ 0; `rope_theta` is finite
/// and > 0; scaling factors are finite and > 0; for Llama3 scaling
/// `high_freq_factor > low_freq_factor`.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    pub arch: Arch,
    pub hidden: usize,
    pub intermediate: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub vocab: usize,
    pub rms_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: RopeScaling,
    pub max_position_embeddings: usize,
    /// As declared; whether the checkpoint really ties is decided later from its tensors.
    pub tie_word_embeddings: bool,
    /// Bias on q/k/v projections.
    pub qkv_bias: bool,
    /// Bias on the attention output projection.
    pub o_bias: bool,
    /// Bias on gate/up/down projections.
    pub mlp_bias: bool,
    /// Per-head RMSNorm on q and k before RoPE (Qwen3).
    pub qk_norm: bool,
    pub hidden_act: Activation,
    pub eos_token_ids: Vec<u32>,
    pub bos_token_id: Option<u32>,
    pub torch_dtype: Option<String>,
    /// Block features beyond the Llama block (all off for llama/qwen).
    pub features: BlockFeatures,
}

/// One layer's attention span (transformers' `layer_types`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerKind {
    /// Attends to every earlier position (`full_attention`).
    Full,
    /// Attends to the last `sliding_window` positions, itself included (`sliding_attention`).
    Sliding,
}

/// Architectural features of the decoder block, as a table rather than per-architecture
/// branches: the generic lowering reads only these.
///
/// Invariants: `layer_kinds` is empty (every layer full attention) or has one entry per
/// layer; `sliding_window` is `Some(w > 0)` iff some layer is `Sliding`; `attn_scale`,
/// softcaps and `embed_scale` are finite and > 0.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockFeatures {
    /// RMSNorm gains are stored as offsets from 1: the gain is `1 + w` (Gemma).
    pub norm_gain_offset: bool,
    /// Gemma's sandwich norms: the attention and MLP outputs are normed before their
    /// residual adds (`post_attention_layernorm`, `post_feedforward_layernorm`), and the MLP
    /// input norm is `pre_feedforward_layernorm`.
    pub sandwich_norms: bool,
    /// The embedding output is multiplied by this (Gemma: √hidden).
    pub embed_scale: Option<f64>,
    /// Attention scores are multiplied by this (`head_dim^-0.5`; Gemma
    /// `query_pre_attn_scalar^-0.5`).
    pub attn_scale: f64,
    /// `cap · tanh(scores / cap)` before the mask (Gemma 2 style; null in Gemma 3 configs).
    pub attn_softcap: Option<f64>,
    /// `cap · tanh(logits / cap)` on the LM head output.
    pub final_softcap: Option<f64>,
    pub layer_kinds: Vec<LayerKind>,
    pub sliding_window: Option<usize>,
    /// RoPE base of the sliding layers (Gemma 3's `rope_local_base_freq`), never scaled.
    pub local_rope_theta: Option<f64>,
    /// Per-head q/k norms (Qwen3, Gemma 3), applied before RoPE.
    pub qk_norm: bool,
}

impl BlockFeatures {
    /// The plain Llama block: every layer full attention, scale `head_dim^-0.5`. Allocates
    /// nothing per layer (a hostile layer count is refused later, against the checkpoint).
    pub fn plain(_layers: usize, head_dim: usize) -> Self {
        BlockFeatures {
            norm_gain_offset: false,
            sandwich_norms: false,
            embed_scale: None,
            attn_scale: 1.0 / (head_dim as f64).sqrt(),
            attn_softcap: None,
            final_softcap: None,
            layer_kinds: Vec::new(),
            sliding_window: None,
            local_rope_theta: None,
            qk_norm: false,
        }
    }

    /// Number of sliding-window layers.
    pub fn sliding_layers(&self) -> usize {
        self.layer_kinds.iter().filter(|k| **k == LayerKind::Sliding).count()
    }
}

/// Why `config.json` could not be turned into a [`ModelConfig`].
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {source}")]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: not valid JSON: {source}")]
    Json {
        file: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{file}: top level must be a JSON object")]
    NotAnObject { file: PathBuf },
    #[error("{file}: field {field:?}: {message}")]
    FieldType { file: PathBuf, field: String, message: String },
    #[error("{file}: field {field:?}: required but missing")]
    MissingField { file: PathBuf, field: String },
    #[error(
        "{file}: field \"quantization_config\": quantized checkpoints are not supported; \
         dequantize first"
    )]
    Quantized { file: PathBuf },
    #[error(
        "{file}: cannot detect the architecture: neither \"model_type\" nor \"architectures\" \
         is set (supported model_type: {SUPPORTED_MODEL_TYPES})"
    )]
    NoArch { file: PathBuf },
    #[error(
        "{file}: field {field:?}: unsupported architecture {value:?} (supported model_type: \
         {SUPPORTED_MODEL_TYPES}; architectures: {SUPPORTED_ARCHITECTURES})"
    )]
    UnsupportedArch { file: PathBuf, field: String, value: String },
    #[error("{file}: field {field:?}: must be greater than zero")]
    Zero { file: PathBuf, field: String },
    #[error("{file}: field {field:?}: {value} is not divisible by {by_field} ({by}){note}")]
    NotDivisible { file: PathBuf, field: String, value: usize, by_field: String, by: usize, note: String },
    #[error("{file}: field {field:?}: {message}")]
    Invalid { file: PathBuf, field: String, message: String },
    #[error(transparent)]
    Gguf(#[from] crate::gguf::GgufError),
    #[error("{file}: field {field:?}: {value} is not supported{note}")]
    Unsupported { file: PathBuf, field: String, value: String, note: String },
}

impl RawConfig {
    /// Parses `config.json` text. `file` is used only in error messages.
    ///
    /// A field of the wrong JSON type is reported with its name: serde's own message for a
    /// struct does not say which field failed, so on failure each key is re-parsed alone
    /// (all fields are optional, so a one-key object can only fail on that key).
    pub fn from_json_str(s: &str, file: &Path) -> Result<RawConfig, ConfigError> {
        let value: Value =
            serde_json::from_str(s).map_err(|source| ConfigError::Json { file: file.to_path_buf(), source })?;
        let Value::Object(map) = value else {
            return Err(ConfigError::NotAnObject { file: file.to_path_buf() });
        };
        let (map, text_tower) = flatten_text_config(map, file)?;
        match RawConfig::deserialize(&Value::Object(map.clone())) {
            Ok(raw) => Ok(RawConfig { text_tower, ..raw }),
            Err(whole) => {
                for (key, v) in &map {
                    let alone = Value::Object(Map::from_iter([(key.clone(), v.clone())]));
                    if let Err(e) = RawConfig::deserialize(&alone) {
                        return Err(ConfigError::FieldType {
                            file: file.to_path_buf(),
                            field: key.clone(),
                            message: e.to_string(),
                        });
                    }
                }
                Err(ConfigError::FieldType {
                    file: file.to_path_buf(),
                    field: "?".to_string(),
                    message: whole.to_string(),
                })
            }
        }
    }
}

/// A multimodal Gemma 3 config (`model_type: gemma3`) keeps the text model's fields in
/// `text_config`; transformers builds the text model from that sub-config. Returns the
/// text fields merged over the top level (token ids stay at the top level when the text
/// config lacks them) and whether a text tower was taken out.
fn flatten_text_config(mut map: Map<String, Value>, file: &Path) -> Result<(Map<String, Value>, bool), ConfigError> {
    if map.get("model_type").and_then(Value::as_str) != Some("gemma3") {
        return Ok((map, false));
    }
    let text = match map.remove("text_config") {
        Some(Value::Object(t)) => t,
        Some(other) if !other.is_null() => {
            return Err(ConfigError::FieldType {
                file: file.to_path_buf(),
                field: "text_config".into(),
                message: format!("expected an object, found {other}"),
            });
        }
        _ => {
            return Err(ConfigError::MissingField {
                file: file.to_path_buf(),
                field: "text_config (a multimodal gemma3 checkpoint without a text tower)".into(),
            });
        }
    };
    for (k, v) in text {
        map.insert(k, v);
    }
    map.insert("model_type".into(), Value::String("gemma3_text".into()));
    Ok((map, true))
}

impl ModelConfig {
    /// Reads and normalises the config of the model at `path`: `path/config.json` for a
    /// folder, the metadata for a GGUF file.
    pub fn from_model_path(path: &Path) -> Result<ModelConfig, ConfigError> {
        if crate::gguf::is_gguf_path(path) {
            let file = crate::gguf::GgufFile::open(path)?;
            let json = super::gguf_config::config_json(&file)?;
            return Self::from_json_str(&json.to_string(), path);
        }
        Self::from_dir(path)
    }

    /// Reads and normalises `dir/config.json`.
    pub fn from_dir(dir: &Path) -> Result<ModelConfig, ConfigError> {
        let file = dir.join("config.json");
        let io_err = |source: std::io::Error| ConfigError::Io { file: file.clone(), source };
        // Reading a FIFO (or a device) would block or never end: only read regular files.
        if !std::fs::metadata(&file).map_err(io_err)?.is_file() {
            return Err(io_err(std::io::Error::other("not a regular file")));
        }
        let text = std::fs::read_to_string(&file).map_err(io_err)?;
        Self::from_json_str(&text, &file)
    }

    /// Parses and normalises `config.json` text. `file` is used only in error messages.
    pub fn from_json_str(s: &str, file: &Path) -> Result<ModelConfig, ConfigError> {
        Self::from_raw(&RawConfig::from_json_str(s, file)?, file)
    }

    /// Normalises a parsed config: detects the architecture, fills defaults, validates.
    pub fn from_raw(raw: &RawConfig, file: &Path) -> Result<ModelConfig, ConfigError> {
        Normaliser { raw, file }.run()
    }
}

/// Carries the raw config and file name through normalisation.
struct Normaliser<'a> {
    raw: &'a RawConfig,
    file: &'a Path,
}

impl Normaliser<'_> {
    fn run(&self) -> Result<ModelConfig, ConfigError> {
        let raw = self.raw;
        if raw.quantization_config.is_some() {
            return Err(ConfigError::Quantized { file: self.file.to_path_buf() });
        }
        let arch = self.arch()?;
        // transformers: Gemma3TextConfig has a default for every size (vocab 262208, hidden
        // 2304, intermediate 9216, 26 layers, 8 heads); multimodal configs rely on them.
        let gemma = |v: usize| if arch == Arch::Gemma3 { Some(v) } else { None };
        let hidden = self.required(raw.hidden_size.or(gemma(2304)), "hidden_size")?;
        let intermediate = self.required(raw.intermediate_size.or(gemma(9216)), "intermediate_size")?;
        let layers = self.required(raw.num_hidden_layers.or(gemma(26)), "num_hidden_layers")?;
        let heads = self.required(raw.num_attention_heads.or(gemma(8)), "num_attention_heads")?;
        let vocab = self.required(raw.vocab_size.or(gemma(262_208)), "vocab_size")?;
        let kv_heads = self.kv_heads(arch, heads)?;
        let head_dim = self.head_dim(arch, hidden, heads)?;
        let max_position_embeddings = self.positive(
            // transformers: LlamaConfig max_position_embeddings=2048,
            // Qwen2Config/Qwen3Config max_position_embeddings=32768.
            raw.max_position_embeddings.unwrap_or(match arch {
                Arch::Llama => 2048,
                Arch::Qwen2 | Arch::Qwen3 => 32768,
                // transformers: Gemma3TextConfig max_position_embeddings=131072.
                Arch::Gemma3 => 131_072,
            }),
            "max_position_embeddings",
        )?;
        // transformers: rms_norm_eps=1e-6 in all three config classes.
        let rms_eps = raw.rms_norm_eps.unwrap_or(1e-6);
        if !(rms_eps.is_finite() && rms_eps >= 0.0) {
            return Err(self.invalid("rms_norm_eps", format!("{rms_eps} must be finite and ≥ 0")));
        }
        let (rope_theta, rope_scaling) = self.rope(arch, max_position_embeddings)?;
        if matches!(rope_scaling, RopeScaling::Dynamic { .. }) && head_dim <= 2 {
            // transformers divides by (head_dim - 2) in the dynamic-NTK exponent.
            return Err(
                self.invalid("head_dim", format!("{head_dim} is too small for dynamic RoPE scaling (needs > 2)"))
            );
        }
        if let Some(f) = raw.partial_rotary_factor
            && f != 1.0
        {
            return Err(self.unsupported("partial_rotary_factor", f, ""));
        }
        let features = if arch == Arch::Gemma3 {
            super::gemma_config::features(raw, self.file, layers, hidden)?
        } else {
            self.check_sliding_window(arch, layers)?;
            BlockFeatures { qk_norm: arch == Arch::Qwen3, ..BlockFeatures::plain(layers, head_dim) }
        };

        // transformers: Qwen2Attention hardcodes bias=True on q/k/v and False on o_proj and
        // ignores attention_bias; Llama and Qwen3 use attention_bias (default False) for
        // q/k/v and o_proj. Only LlamaMLP reads mlp_bias (default False).
        let attention_bias = raw.attention_bias.unwrap_or(false);
        // Gemma3Attention: bias=attention_bias (default False) on q/k/v/o; the MLP has none.
        let (qkv_bias, o_bias, mlp_bias) = match arch {
            Arch::Llama => (attention_bias, attention_bias, raw.mlp_bias.unwrap_or(false)),
            Arch::Qwen2 => (true, false, false),
            Arch::Qwen3 | Arch::Gemma3 => (attention_bias, attention_bias, false),
        };

        // transformers: hidden_act="silu" in the Llama/Qwen config classes; Gemma3TextConfig
        // has hidden_activation="gelu_pytorch_tanh" (and Gemma3MLP reads only that).
        let (act_field, act) = match arch {
            Arch::Gemma3 => ("hidden_activation", raw.hidden_activation.as_deref().unwrap_or("gelu_pytorch_tanh")),
            _ => ("hidden_act", raw.hidden_act.as_deref().unwrap_or("silu")),
        };
        let hidden_act = match act {
            "silu" => Activation::Silu,
            "gelu_pytorch_tanh" => Activation::GeluTanh,
            other => {
                return Err(self.unsupported(
                    act_field,
                    format!("{other:?}"),
                    " (supported: \"silu\", \"gelu_pytorch_tanh\")",
                ));
            }
        };

        // transformers: LlamaConfig bos_token_id=1, eos_token_id=2; Qwen2/Qwen3 inherit
        // PretrainedConfig's None; Gemma3TextConfig bos 2, eos 1. An explicit null means None.
        let (default_bos, default_eos) = match arch {
            Arch::Llama => (Some(1), vec![2]),
            Arch::Qwen2 | Arch::Qwen3 => (None, vec![]),
            Arch::Gemma3 => (Some(2), vec![1]),
        };
        let bos_token_id = raw.bos_token_id.unwrap_or(default_bos);
        let eos_token_ids = match &raw.eos_token_id {
            None => default_eos,
            Some(None) => vec![],
            Some(Some(TokenIds::One(id))) => vec![*id],
            Some(Some(TokenIds::Many(ids))) => ids.clone(),
        };

        Ok(ModelConfig {
            arch,
            hidden,
            intermediate,
            layers,
            heads,
            kv_heads,
            head_dim,
            vocab,
            rms_eps,
            rope_theta,
            rope_scaling,
            max_position_embeddings,
            // transformers: tie_word_embeddings=False in the Llama/Qwen config classes, True
            // in Gemma3TextConfig.
            tie_word_embeddings: raw.tie_word_embeddings.unwrap_or(arch == Arch::Gemma3),
            qkv_bias,
            o_bias,
            mlp_bias,
            qk_norm: features.qk_norm,
            hidden_act,
            eos_token_ids,
            bos_token_id,
            torch_dtype: raw.torch_dtype.clone().or_else(|| raw.dtype.clone()),
            features,
        })
    }

    /// `model_type` first (as AutoConfig does), else `architectures[0]`.
    fn arch(&self) -> Result<Arch, ConfigError> {
        let unsupported = |field: &str, value: &str| ConfigError::UnsupportedArch {
            file: self.file.to_path_buf(),
            field: field.to_string(),
            value: value.to_string(),
        };
        if let Some(t) = &self.raw.model_type {
            return Arch::from_model_type(t).ok_or_else(|| unsupported("model_type", t));
        }
        match self.raw.architectures.as_deref() {
            Some([first, ..]) => Arch::from_architecture(first).ok_or_else(|| unsupported("architectures", first)),
            _ => Err(ConfigError::NoArch { file: self.file.to_path_buf() }),
        }
    }

    fn kv_heads(&self, arch: Arch, heads: usize) -> Result<usize, ConfigError> {
        // transformers: LlamaConfig num_key_value_heads=None; Qwen2Config/Qwen3Config
        // num_key_value_heads=32. All three replace an explicit None by num_attention_heads.
        let (kv_heads, note) = match self.raw.num_key_value_heads {
            Some(Some(k)) => (k, ""),
            Some(None) => (heads, ""),
            None => match arch {
                Arch::Llama => (heads, ""),
                Arch::Qwen2 | Arch::Qwen3 => {
                    (32, "; num_key_value_heads is absent and transformers' Qwen default is 32")
                }
                // transformers: Gemma3TextConfig num_key_value_heads=4.
                Arch::Gemma3 => (4, "; num_key_value_heads is absent and transformers' Gemma 3 default is 4"),
            },
        };
        let kv_heads = self.positive(kv_heads, "num_key_value_heads")?;
        if !heads.is_multiple_of(kv_heads) {
            return Err(ConfigError::NotDivisible {
                file: self.file.to_path_buf(),
                field: "num_attention_heads".to_string(),
                value: heads,
                by_field: "num_key_value_heads".to_string(),
                by: kv_heads,
                note: note.to_string(),
            });
        }
        Ok(kv_heads)
    }

    fn head_dim(&self, arch: Arch, hidden: usize, heads: usize) -> Result<usize, ConfigError> {
        // transformers: Qwen3Config head_dim=128 when the key is absent. LlamaConfig uses
        // hidden_size // num_attention_heads when head_dim is None; Qwen2Config has no
        // head_dim but Qwen2Attention reads it if present, else hidden // heads. An explicit
        // null is treated as "not given" (hidden // heads) for all three.
        let given = match self.raw.head_dim {
            Some(Some(d)) => Some(d),
            Some(None) => None,
            None if arch == Arch::Qwen3 => Some(128),
            // transformers: Gemma3TextConfig head_dim=256.
            None if arch == Arch::Gemma3 => Some(256),
            None => None,
        };
        let head_dim = match given {
            Some(d) => d,
            None => {
                if !hidden.is_multiple_of(heads) {
                    return Err(ConfigError::NotDivisible {
                        file: self.file.to_path_buf(),
                        field: "hidden_size".to_string(),
                        value: hidden,
                        by_field: "num_attention_heads".to_string(),
                        by: heads,
                        note: " and no head_dim is given".to_string(),
                    });
                }
                hidden / heads
            }
        };
        let head_dim = self.positive(head_dim, "head_dim")?;
        if !head_dim.is_multiple_of(2) {
            return Err(self.invalid("head_dim", format!("{head_dim} must be even for rotary embeddings")));
        }
        // The q projection has heads × head_dim rows (and kv_heads ≤ heads): keep it representable.
        if heads.checked_mul(head_dim).is_none_or(|n| i64::try_from(n).is_err()) {
            return Err(self.invalid(
                "head_dim",
                format!("num_attention_heads {heads} × head_dim {head_dim} overflows (more than 2^63 rows)"),
            ));
        }
        Ok(head_dim)
    }

    /// RoPE base and scaling. transformers 5 writes `rope_parameters` (which may carry
    /// `rope_theta`); it takes precedence over `rope_scaling` and the top-level `rope_theta`.
    fn rope(&self, arch: Arch, max_pos: usize) -> Result<(f64, RopeScaling), ConfigError> {
        let raw = self.raw;
        let (key, dict) = match (&raw.rope_parameters, &raw.rope_scaling) {
            (Some(p), _) if !p.is_null() => ("rope_parameters", Some(p)),
            (_, Some(s)) if !s.is_null() => ("rope_scaling", Some(s)),
            _ => ("rope_scaling", None),
        };
        let dict = match dict {
            None => None,
            Some(Value::Object(m)) => Some(m),
            Some(_) => return Err(self.invalid(key, "must be a JSON object or null".to_string())),
        };
        let theta_field = format!("{key}.rope_theta");
        let (theta, theta_field) = match dict.and_then(|m| m.get("rope_theta")) {
            Some(v) => (self.number(v, &theta_field)?, theta_field.as_str()),
            // transformers: rope_theta=10000.0 in the Llama/Qwen config classes, 1e6 in
            // Gemma3TextConfig.
            None => (raw.rope_theta.unwrap_or(if arch == Arch::Gemma3 { 1e6 } else { 10000.0 }), "rope_theta"),
        };
        if !(theta.is_finite() && theta > 0.0) {
            return Err(self.invalid(theta_field, format!("{theta} must be finite and > 0")));
        }
        let Some(m) = dict else {
            return Ok((theta, RopeScaling::None));
        };
        Ok((theta, RopeDict { n: self, key, m }.scaling(max_pos)?))
    }

    fn check_sliding_window(&self, arch: Arch, layers: usize) -> Result<(), ConfigError> {
        let raw = self.raw;
        if arch == Arch::Llama {
            return Ok(()); // LlamaConfig has no sliding window.
        }
        if let Some(types) = &raw.layer_types
            && let Some(t) = types.iter().find(|t| t.as_str() != "full_attention")
        {
            return Err(self.unsupported("layer_types", format!("{t:?}"), " (only \"full_attention\" layers)"));
        }
        // transformers: Qwen2/Qwen3 use sliding_window (default 4096, kept only if
        // use_sliding_window, default False) on layers i >= max_window_layers (default 28).
        let window = raw.sliding_window.unwrap_or(Some(4096));
        let first_sliding = raw.max_window_layers.unwrap_or(28);
        if raw.use_sliding_window == Some(true) && window.is_some() && first_sliding < layers {
            return Err(self.unsupported(
                "use_sliding_window",
                "true",
                format!(" (sliding-window attention on layers {first_sliding}..{layers})"),
            ));
        }
        Ok(())
    }

    fn required(&self, v: Option<usize>, field: &str) -> Result<usize, ConfigError> {
        let v =
            v.ok_or_else(|| ConfigError::MissingField { file: self.file.to_path_buf(), field: field.to_string() })?;
        self.positive(v, field)
    }

    fn positive(&self, v: usize, field: &str) -> Result<usize, ConfigError> {
        if v == 0 {
            return Err(ConfigError::Zero { file: self.file.to_path_buf(), field: field.to_string() });
        }
        Ok(v)
    }

    fn number(&self, v: &Value, field: &str) -> Result<f64, ConfigError> {
        v.as_f64().ok_or_else(|| ConfigError::FieldType {
            file: self.file.to_path_buf(),
            field: field.to_string(),
            message: format!("expected a number, found {v}"),
        })
    }

    fn invalid(&self, field: &str, message: String) -> ConfigError {
        ConfigError::Invalid { file: self.file.to_path_buf(), field: field.to_string(), message }
    }

    fn unsupported(&self, field: &str, value: impl ToString, note: impl ToString) -> ConfigError {
        ConfigError::Unsupported {
            file: self.file.to_path_buf(),
            field: field.to_string(),
            value: value.to_string(),
            note: note.to_string(),
        }
    }
}

/// Reading one RoPE scaling dict (`rope_scaling` or `rope_parameters`).
struct RopeDict<'a> {
    n: &'a Normaliser<'a>,
    key: &'a str,
    m: &'a Map<String, Value>,
}

impl RopeDict<'_> {
    fn scaling(&self, max_pos: usize) -> Result<RopeScaling, ConfigError> {
        // transformers: the legacy "type" key is copied over "rope_type" when present, so
        // it wins; a dict with neither has no rope init function (KeyError) — we reject it.
        let kind = match self.m.get("type").or_else(|| self.m.get("rope_type")) {
            Some(Value::String(s)) => s.as_str(),
            Some(other) => {
                return Err(self.n.invalid(&self.field("rope_type"), format!("expected a string, found {other}")));
            }
            None => return Err(self.missing("rope_type")),
        };
        Ok(match kind {
            "default" => RopeScaling::None,
            "linear" => RopeScaling::Linear { factor: self.factor("factor")? },
            "dynamic" => RopeScaling::Dynamic { factor: self.factor("factor")?, original_max: max_pos },
            "llama3" => {
                let low_freq_factor = self.factor("low_freq_factor")?;
                let high_freq_factor = self.factor("high_freq_factor")?;
                if high_freq_factor <= low_freq_factor {
                    return Err(self.n.invalid(
                        &self.field("high_freq_factor"),
                        format!("{high_freq_factor} must be greater than low_freq_factor {low_freq_factor}"),
                    ));
                }
                RopeScaling::Llama3 {
                    factor: self.factor("factor")?,
                    low_freq_factor,
                    high_freq_factor,
                    original_max_position_embeddings: self.positive_int("original_max_position_embeddings")?,
                }
            }
            other => {
                return Err(self.n.unsupported(
                    &self.field("rope_type"),
                    format!("{other:?}"),
                    " (supported: default, linear, dynamic, llama3)",
                ));
            }
        })
    }

    fn field(&self, name: &str) -> String {
        format!("{}.{name}", self.key)
    }

    fn missing(&self, name: &str) -> ConfigError {
        ConfigError::MissingField { file: self.n.file.to_path_buf(), field: self.field(name) }
    }

    fn factor(&self, name: &str) -> Result<f64, ConfigError> {
        let field = self.field(name);
        let v = self.m.get(name).ok_or_else(|| self.missing(name))?;
        let f = self.n.number(v, &field)?;
        if !(f.is_finite() && f > 0.0) {
            return Err(self.n.invalid(&field, format!("{f} must be finite and > 0")));
        }
        Ok(f)
    }

    fn positive_int(&self, name: &str) -> Result<usize, ConfigError> {
        let field = self.field(name);
        let v = self.m.get(name).ok_or_else(|| self.missing(name))?;
        let n = v.as_u64().and_then(|n| usize::try_from(n).ok()).ok_or_else(|| ConfigError::FieldType {
            file: self.n.file.to_path_buf(),
            field: field.clone(),
            message: format!("expected a non-negative integer, found {v}"),
        })?;
        self.n.positive(n, &field)
    }
}
