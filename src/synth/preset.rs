//! Model shapes of the synthetic presets, their tensor lists and `config.json`.

use serde_json::{Value, json};

/// A synthetic checkpoint shape. All are Llama (`LlamaForCausalLM`) decoders.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Preset {
    /// hidden 64, 2 layers: for tests.
    #[value(name = "tiny")]
    Tiny,
    /// hidden 512, 8 layers, Llama-2 vocabulary: a quick but non-trivial model.
    #[value(name = "small")]
    Small,
    /// Llama-3.2-1B shapes.
    #[value(name = "1b")]
    OneB,
    /// Llama-3.2-3B shapes.
    #[value(name = "3b")]
    ThreeB,
    /// Llama-3.1-8B shapes.
    #[value(name = "8b")]
    EightB,
}

/// Llama 3.x `rope_scaling` (`rope_type: "llama3"`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Llama3Rope {
    pub factor: f64,
    pub low_freq_factor: f64,
    pub high_freq_factor: f64,
    pub original_max_position_embeddings: usize,
}

/// Everything `config.json` says about a preset's model.
#[derive(Clone, Debug, PartialEq)]
pub struct Shape {
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub intermediate: usize,
    pub vocab: usize,
    pub tied: bool,
    pub rope_theta: f64,
    pub rope_scaling: Option<Llama3Rope>,
    pub rms_eps: f64,
    pub max_position_embeddings: usize,
    pub bos_token_id: u32,
    pub eos_token_id: u32,
}

/// How a tensor's values are drawn: `mean + std × (approximately normal noise)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Init {
    pub mean: f32,
    pub std: f32,
}

/// Standard deviation of weight matrices and embeddings (transformers' `initializer_range`).
pub const MATRIX_STD: f32 = 0.02;
/// Standard deviation of the noise around 1.0 of RMSNorm gains.
pub const GAIN_STD: f32 = 0.02;

const MATRIX: Init = Init { mean: 0.0, std: MATRIX_STD };
const GAIN: Init = Init { mean: 1.0, std: GAIN_STD };

/// One tensor of a synthetic checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorSpec {
    /// HuggingFace name, e.g. `model.layers.0.self_attn.q_proj.weight`.
    pub name: String,
    pub shape: Vec<usize>,
    pub init: Init,
}

impl TensorSpec {
    /// Number of elements.
    pub fn numel(&self) -> u64 {
        self.shape.iter().map(|&d| d as u64).product()
    }
}

impl Preset {
    /// Every preset, smallest first.
    pub const ALL: [Preset; 5] = [Preset::Tiny, Preset::Small, Preset::OneB, Preset::ThreeB, Preset::EightB];

    /// The command-line spelling (`tiny`, `small`, `1b`, `3b`, `8b`).
    pub fn name(self) -> &'static str {
        match self {
            Preset::Tiny => "tiny",
            Preset::Small => "small",
            Preset::OneB => "1b",
            Preset::ThreeB => "3b",
            Preset::EightB => "8b",
        }
    }

    /// What the preset imitates.
    pub fn description(self) -> &'static str {
        match self {
            Preset::Tiny => "test model",
            Preset::Small => "small Llama-2-style model",
            Preset::OneB => "Llama-3.2-1B",
            Preset::ThreeB => "Llama-3.2-3B",
            Preset::EightB => "Llama-3.1-8B",
        }
    }

    /// The model's shape and config values.
    pub fn shape(self) -> Shape {
        let llama2 = |hidden, layers, heads, kv_heads, intermediate, vocab| Shape {
            hidden,
            layers,
            heads,
            kv_heads,
            head_dim: hidden / heads,
            intermediate,
            vocab,
            tied: false,
            rope_theta: 10000.0,
            rope_scaling: None,
            rms_eps: 1e-5,
            max_position_embeddings: 2048,
            bos_token_id: 1,
            eos_token_id: 2,
        };
        let llama3 = |hidden, layers, heads, intermediate, tied, factor| Shape {
            hidden,
            layers,
            heads,
            kv_heads: 8,
            head_dim: hidden / heads,
            intermediate,
            vocab: 128256,
            tied,
            rope_theta: 500000.0,
            rope_scaling: Some(Llama3Rope {
                factor,
                low_freq_factor: 1.0,
                high_freq_factor: 4.0,
                original_max_position_embeddings: 8192,
            }),
            rms_eps: 1e-5,
            max_position_embeddings: 131072,
            bos_token_id: 128000,
            eos_token_id: 128001,
        };
        match self {
            Preset::Tiny => llama2(64, 2, 4, 2, 128, 256),
            Preset::Small => llama2(512, 8, 8, 2, 1408, 32000),
            Preset::OneB => llama3(2048, 16, 32, 8192, true, 32.0),
            Preset::ThreeB => llama3(3072, 28, 24, 8192, true, 32.0),
            Preset::EightB => llama3(4096, 32, 32, 14336, false, 8.0),
        }
    }

    /// The tensors in HuggingFace state-dict order (embedding, each layer's attention, MLP
    /// and norms, final norm, untied LM head). A tensor's position in this list is the
    /// tensor index its random values are seeded with.
    pub fn tensors(self) -> Vec<TensorSpec> {
        self.shape().tensors()
    }

    /// Total number of parameters.
    pub fn params(self) -> u64 {
        self.tensors().iter().map(TensorSpec::numel).sum()
    }
}

impl Shape {
    /// See [`Preset::tensors`].
    pub fn tensors(&self) -> Vec<TensorSpec> {
        let (h, q, kv, f) = (self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim, self.intermediate);
        let t = |name: String, shape: Vec<usize>, init| TensorSpec { name, shape, init };
        let mut out = vec![t("model.embed_tokens.weight".into(), vec![self.vocab, h], MATRIX)];
        for i in 0..self.layers {
            let p = format!("model.layers.{i}");
            out.push(t(format!("{p}.self_attn.q_proj.weight"), vec![q, h], MATRIX));
            out.push(t(format!("{p}.self_attn.k_proj.weight"), vec![kv, h], MATRIX));
            out.push(t(format!("{p}.self_attn.v_proj.weight"), vec![kv, h], MATRIX));
            out.push(t(format!("{p}.self_attn.o_proj.weight"), vec![h, q], MATRIX));
            out.push(t(format!("{p}.mlp.gate_proj.weight"), vec![f, h], MATRIX));
            out.push(t(format!("{p}.mlp.up_proj.weight"), vec![f, h], MATRIX));
            out.push(t(format!("{p}.mlp.down_proj.weight"), vec![h, f], MATRIX));
            out.push(t(format!("{p}.input_layernorm.weight"), vec![h], GAIN));
            out.push(t(format!("{p}.post_attention_layernorm.weight"), vec![h], GAIN));
        }
        out.push(t("model.norm.weight".into(), vec![h], GAIN));
        if !self.tied {
            out.push(t("lm_head.weight".into(), vec![self.vocab, h], MATRIX));
        }
        out
    }

    /// `config.json` as transformers writes it for `LlamaForCausalLM` (keys sorted), with
    /// `torch_dtype` set to `torch_dtype` (`bfloat16`, `float16`, `float32`) and an extra
    /// `anemllc_synth` key recording how the weights were made.
    pub fn config_json(&self, torch_dtype: &str, provenance: Value) -> Value {
        let rope_scaling = match self.rope_scaling {
            None => Value::Null,
            Some(r) => json!({
                "factor": r.factor,
                "high_freq_factor": r.high_freq_factor,
                "low_freq_factor": r.low_freq_factor,
                "original_max_position_embeddings": r.original_max_position_embeddings,
                "rope_type": "llama3",
            }),
        };
        json!({
            "anemllc_synth": provenance,
            "architectures": ["LlamaForCausalLM"],
            "attention_bias": false,
            "attention_dropout": 0.0,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": self.eos_token_id,
            "head_dim": self.head_dim,
            "hidden_act": "silu",
            "hidden_size": self.hidden,
            "initializer_range": 0.02,
            "intermediate_size": self.intermediate,
            "max_position_embeddings": self.max_position_embeddings,
            "mlp_bias": false,
            "model_type": "llama",
            "num_attention_heads": self.heads,
            "num_hidden_layers": self.layers,
            "num_key_value_heads": self.kv_heads,
            "pretraining_tp": 1,
            "rms_norm_eps": self.rms_eps,
            "rope_scaling": rope_scaling,
            "rope_theta": self.rope_theta,
            "tie_word_embeddings": self.tied,
            "torch_dtype": torch_dtype,
            "use_cache": true,
            "vocab_size": self.vocab,
        })
    }

    /// `generation_config.json` as transformers writes it for a config-derived generation
    /// config.
    pub fn generation_config_json(&self) -> Value {
        json!({
            "_from_model_config": true,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": self.eos_token_id,
        })
    }
}

/// The `--help` table: one line per preset with its shapes, parameter count and size.
pub fn presets_table() -> String {
    let mut s = String::from("Presets (Llama decoders; size in bf16/fp16, twice that in fp32):\n");
    for p in Preset::ALL {
        let sh = p.shape();
        let rope = match sh.rope_scaling {
            Some(r) => format!("rope_theta {} llama3×{}", sh.rope_theta, r.factor),
            None => format!("rope_theta {}", sh.rope_theta),
        };
        s.push_str(&format!(
            "  {:<6} {}: hidden {}, {} layers, {} heads / {} kv heads (head_dim {}), intermediate {}, \
             vocab {}, {}, {}\n         {} parameters, {}\n",
            p.name(),
            p.description(),
            sh.hidden,
            sh.layers,
            sh.heads,
            sh.kv_heads,
            sh.head_dim,
            sh.intermediate,
            sh.vocab,
            if sh.tied { "tied embeddings" } else { "untied LM head" },
            rope,
            human_count(p.params()),
            human_bytes(p.params() * 2),
        ));
    }
    s
}

/// `1.24B`, `55.3M`, `91.4K`.
pub fn human_count(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.2}B", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.1}M", n / 1e6)
    } else {
        format!("{:.1}K", n / 1e3)
    }
}

/// Decimal units: `2.47 GB`, `110.7 MB`.
pub fn human_bytes(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.2} GB", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.1} MB", n / 1e6)
    } else {
        format!("{:.1} kB", n / 1e3)
    }
}
