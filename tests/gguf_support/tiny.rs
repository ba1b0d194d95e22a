//! A tiny llama as a GGUF file, built with `GgufBuilder`: llama.cpp's tensor names and
//! metadata keys, F16 / Q8_0 matrices, F32 norms, and a byte-level BPE tokenizer (a GPT-2
//! byte alphabet, a few merges, control tokens, a ChatML template). Metadata stays an
//! editable list so a test can change, drop or mistype one key before writing the file.

use anemllc::gguf::write::{GgufBuilder, encode_f16, quantize_q8_0};
use anemllc::gguf::{GgmlType, Value};

use crate::hostile_support::pseudo_random;

/// Sizes of a tiny llama (HuggingFace naming).
#[derive(Clone, Copy, Debug)]
pub struct Dims {
    pub layers: usize,
    pub hidden: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub intermediate: usize,
    pub vocab: usize,
    pub context: usize,
}

/// The sizes of tests/fixtures/models/llama_tiny (its config.json).
pub const LLAMA_TINY: Dims =
    Dims { layers: 3, hidden: 64, heads: 4, kv_heads: 2, head_dim: 16, intermediate: 128, vocab: 512, context: 128 };

/// Sizes small enough for a fuzz seed of ~10 KB (a vocabulary of letters, not bytes); rows
/// of 32, one Q8_0 block.
pub const SEED: Dims =
    Dims { layers: 1, hidden: 32, heads: 2, kv_heads: 1, head_dim: 16, intermediate: 32, vocab: 24, context: 32 };

/// Smaller still, for F16 seeds (rows of 16: too short for Q8_0).
pub const SEED_F16: Dims =
    Dims { layers: 1, hidden: 16, heads: 2, kv_heads: 1, head_dim: 8, intermediate: 16, vocab: 24, context: 32 };

/// How the matrices are stored.
#[derive(Clone, Copy, Debug)]
pub enum Matrices {
    /// Every matrix in this type (F16 or Q8_0).
    All(GgmlType),
    /// The embedding and layer 0 in F16, the other layers and the head in Q8_0.
    Mixed,
}

/// GPT-2's byte → character map of its byte-level BPE.
pub fn byte_char(b: u8) -> char {
    let printable = |b: u8| (b'!'..=b'~').contains(&b) || (0xa1..=0xac).contains(&b) || b >= 0xae;
    if printable(b) {
        char::from(b)
    } else {
        let n = (0..b).filter(|&x| !printable(x)).count() as u32;
        char::from_u32(256 + n).unwrap()
    }
}

/// Control tokens: ids 0 (BOS), 2 (EOS) and 4 (end of turn) are named in the metadata.
pub const CONTROL: [&str; 5] = ["<|begin|>", "<|pad|>", "<|end|>", "<|im_start|>", "<|im_end|>"];

pub const CHAT_TEMPLATE: &str = "{% for message in messages %}<|im_start|>{{ message['role'] }}\n\
    {{ message['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

/// Tokens (with llama.cpp types) and merges of a vocabulary of exactly `size` tokens: the
/// control tokens, all 256 byte characters (or only "Ġ" and a–z when `size` is too small
/// for them), merged tokens, then filler tokens.
pub fn vocabulary(size: usize) -> (Vec<String>, Vec<i32>, Vec<String>) {
    let mut tokens: Vec<String> = CONTROL.iter().map(|s| s.to_string()).collect();
    let mut types = vec![3; CONTROL.len()];
    let (alphabet, merges): (Vec<char>, &[(&str, &str)]) = if size >= 300 {
        let merges: &[(&str, &str)] = &[
            ("Ġ", "t"),
            ("h", "e"),
            ("Ġt", "he"),
            ("i", "n"),
            ("e", "r"),
            ("a", "n"),
            ("o", "n"),
            ("Ġ", "a"),
            ("r", "e"),
            ("l", "l"),
        ];
        ((0..=255u8).map(byte_char).collect(), merges)
    } else {
        (std::iter::once('Ġ').chain('a'..='l').collect(), &[("h", "e"), ("l", "l"), ("Ġ", "he")])
    };
    tokens.extend(alphabet.iter().map(|c| c.to_string()));
    tokens.extend(merges.iter().map(|(a, b)| format!("{a}{b}")));
    assert!(tokens.len() <= size, "a vocabulary of {size} cannot hold {} tokens", tokens.len());
    for i in tokens.len()..size {
        tokens.push(format!("<extra_{i}>"));
    }
    types.resize(size, 1);
    (tokens, types, merges.iter().map(|(a, b)| format!("{a} {b}")).collect())
}

/// A tiny llama GGUF under construction.
pub struct TinyGguf {
    pub meta: Vec<(String, Value)>,
    /// (ggml name, type, ggml dims, encoded bytes), in file order.
    pub tensors: Vec<(String, GgmlType, Vec<usize>, Vec<u8>)>,
}

impl TinyGguf {
    /// A llama of sizes `d` with matrices stored as `m`, and a tokenizer if `tokenizer`.
    pub fn new(d: Dims, m: Matrices, tokenizer: bool) -> TinyGguf {
        let u32v = |v: usize| Value::U32(v as u32);
        let mut meta: Vec<(String, Value)> = vec![
            ("general.architecture".into(), Value::String("llama".into())),
            ("general.name".into(), Value::String("tiny".into())),
            ("llama.block_count".into(), u32v(d.layers)),
            ("llama.context_length".into(), u32v(d.context)),
            ("llama.embedding_length".into(), u32v(d.hidden)),
            ("llama.feed_forward_length".into(), u32v(d.intermediate)),
            ("llama.attention.head_count".into(), u32v(d.heads)),
            ("llama.attention.head_count_kv".into(), u32v(d.kv_heads)),
            ("llama.attention.key_length".into(), u32v(d.head_dim)),
            ("llama.rope.freq_base".into(), Value::F32(10000.0)),
            ("llama.attention.layer_norm_rms_epsilon".into(), Value::F32(1e-5)),
            ("llama.vocab_size".into(), u32v(d.vocab)),
        ];
        if tokenizer {
            let (tokens, types, merges) = vocabulary(d.vocab);
            let strings = |v: Vec<String>| Value::Array(v.into_iter().map(Value::String).collect());
            meta.extend([
                ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
                ("tokenizer.ggml.pre".into(), Value::String("default".into())),
                ("tokenizer.ggml.tokens".into(), strings(tokens)),
                ("tokenizer.ggml.token_type".into(), Value::Array(types.into_iter().map(Value::I32).collect())),
                ("tokenizer.ggml.merges".into(), strings(merges)),
                ("tokenizer.ggml.bos_token_id".into(), Value::U32(0)),
                ("tokenizer.ggml.eos_token_id".into(), Value::U32(2)),
                ("tokenizer.ggml.eot_token_id".into(), Value::U32(4)),
                ("tokenizer.ggml.add_bos_token".into(), Value::Bool(false)),
                ("tokenizer.chat_template".into(), Value::String(CHAT_TEMPLATE.into())),
            ]);
        }
        let mut t = TinyGguf { meta, tensors: Vec::new() };
        let (h, q, kv, i, v) = (d.hidden, d.heads * d.head_dim, d.kv_heads * d.head_dim, d.intermediate, d.vocab);
        let matrix = |layer: Option<usize>| match m {
            Matrices::All(ty) => ty,
            Matrices::Mixed if layer.is_none_or(|l| l == 0) => GgmlType::F16,
            Matrices::Mixed => GgmlType::Q8_0,
        };
        t.add("token_embd.weight", matrix(None), vec![h, v]);
        for l in 0..d.layers {
            let ty = matrix(Some(l));
            t.add(&format!("blk.{l}.attn_norm.weight"), GgmlType::F32, vec![h]);
            t.add(&format!("blk.{l}.attn_q.weight"), ty, vec![h, q]);
            t.add(&format!("blk.{l}.attn_k.weight"), ty, vec![h, kv]);
            t.add(&format!("blk.{l}.attn_v.weight"), ty, vec![h, kv]);
            t.add(&format!("blk.{l}.attn_output.weight"), ty, vec![q, h]);
            t.add(&format!("blk.{l}.ffn_norm.weight"), GgmlType::F32, vec![h]);
            t.add(&format!("blk.{l}.ffn_gate.weight"), ty, vec![h, i]);
            t.add(&format!("blk.{l}.ffn_up.weight"), ty, vec![h, i]);
            t.add(&format!("blk.{l}.ffn_down.weight"), ty, vec![i, h]);
        }
        t.add("output_norm.weight", GgmlType::F32, vec![h]);
        t.add("output.weight", if matches!(m, Matrices::Mixed) { GgmlType::Q8_0 } else { matrix(None) }, vec![h, v]);
        t
    }

    /// Adds tensor `name` of ggml dims `dims` holding pseudo-random values (norms: ones).
    fn add(&mut self, name: &str, ty: GgmlType, dims: Vec<usize>) {
        let n = dims.iter().product();
        let values =
            if name.ends_with("norm.weight") { vec![1.0; n] } else { pseudo_random(n, self.tensors.len() as u64) };
        let bytes = match ty {
            GgmlType::F16 => encode_f16(&values),
            GgmlType::Q8_0 => quantize_q8_0(&values),
            GgmlType::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            other => panic!("the tiny llama stores no {other} tensors"),
        };
        self.tensors.push((name.to_string(), ty, dims, bytes));
    }

    /// Sets `key` to `value` (replacing it in place, or appending it).
    pub fn set(&mut self, key: &str, value: Value) -> &mut Self {
        match self.meta.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value,
            None => self.meta.push((key.to_string(), value)),
        }
        self
    }

    /// Drops every key starting with `prefix`.
    pub fn remove(&mut self, prefix: &str) -> &mut Self {
        self.meta.retain(|(k, _)| !k.starts_with(prefix));
        self
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = GgufBuilder::new();
        for (k, v) in &self.meta {
            b.meta(k, v.clone());
        }
        for (name, ty, dims, data) in &self.tensors {
            b.tensor(name, *ty, dims.clone(), data.clone());
        }
        b.to_bytes()
    }
}
