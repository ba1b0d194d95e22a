//! Tokenizer files rebuilt from a GGUF file's `tokenizer.ggml.*` metadata: `tokenizer.json`
//! (the HuggingFace tokenizers format), `tokenizer_config.json` (special tokens, BOS
//! handling, chat template), `special_tokens_map.json` and `generation_config.json`.
//!
//! BPE vocabularies (`tokenizer.ggml.model = "gpt2"`) become a byte-level BPE with the
//! file's merges. The pre-tokenizer follows `tokenizer.ggml.pre`, the name llama.cpp gives
//! the original tokenizer's splitting rule, so the rebuilt tokenizer splits text as the model
//! was trained (e.g. SmolLM's one-digit-at-a-time rule). Token types follow llama.cpp:
//! 3 (control) become special added tokens, 4 (user-defined) plain added tokens.
//!
//! A file without tokenizer metadata (or whose `tokenizer.ggml.model` is llama.cpp's "none"
//! or "no_vocab") has no tokenizer files, as a HuggingFace folder may have none. Metadata
//! that is there but cannot be rebuilt (wrong types, ids outside the vocabulary, merges of
//! unknown tokens, an unsupported model or pre-tokenizer) is an error naming the file and
//! the key; [`check`] finds each such error without building the files.

use serde_json::{Map, Value as Json, json};

use crate::gguf::{GgufError, GgufFile};

mod facts;

use facts::Facts;

/// llama.cpp's token types.
const CONTROL: i64 = 3;
const USER_DEFINED: i64 = 4;

/// The added tokens of a vocabulary: llama.cpp's control tokens (special) and user-defined
/// ones (special only if `also_special(id)`), matched in the raw text (`normalized: false`).
pub(super) fn added_tokens(tokens: &[&str], types: &[i64], also_special: impl Fn(usize) -> bool) -> Vec<Json> {
    types
        .iter()
        .enumerate()
        .filter(|&(_, &t)| t == CONTROL || t == USER_DEFINED)
        .map(|(i, &t)| {
            json!({"id": i, "content": tokens[i], "single_word": false, "lstrip": false, "rstrip": false,
                   "normalized": false, "special": t == CONTROL || also_special(i)})
        })
        .collect()
}

/// The post-processor that prepends BOS, when the vocabulary asks for one.
pub(super) fn bos_template(tokens: &[&str], add_bos: bool, bos: Option<u64>) -> Option<Json> {
    let bos = bos.filter(|_| add_bos)?;
    let b = tokens[bos as usize];
    Some(json!({"type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": b, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"SpecialToken": {"id": b, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": b, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {b: {"id": b, "ids": [bos], "tokens": [b]}}}))
}

/// GPT-2's split rule (a byte-level pre-tokenizer with `use_regex` applies it itself).
fn byte_level(use_regex: bool) -> Json {
    json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": use_regex})
}

fn split(pattern: &str) -> Json {
    json!({"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": false})
}

/// The pre-tokenizer for llama.cpp's pre-tokenizer name `pre`, or `None` if unknown.
fn pre_tokenizer(pre: &str) -> Option<Json> {
    const LLAMA3: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    const QWEN2: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    Some(match pre {
        "gpt2" | "default" => byte_level(true),
        "smollm" => json!({"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": true}, byte_level(true)]}),
        "llama-bpe" | "llama3" => json!({"type": "Sequence", "pretokenizers": [split(LLAMA3), byte_level(false)]}),
        "qwen2" => json!({"type": "Sequence", "pretokenizers": [split(QWEN2), byte_level(false)]}),
        _ => return None,
    })
}

/// Checks the tokenizer metadata of `file` as [`tokenizer_files`] would use it, without
/// building the files: `Ok` if it carries none or one that can be rebuilt.
pub fn check(file: &GgufFile) -> Result<(), GgufError> {
    facts::facts(file).map(|_| ())
}

/// `tokenizer.json` for a BPE (`gpt2`) vocabulary.
fn bpe_tokenizer_json(v: &Facts<'_>) -> Json {
    let mut vocab = Map::with_capacity(v.tokens.len());
    for (i, t) in v.tokens.iter().enumerate() {
        // A repeated token keeps its last id, as transformers' `{word: i}` does.
        vocab.insert((*t).to_string(), json!(i));
    }
    let added = added_tokens(&v.tokens, &v.types, |_| false);
    let post_processor = bos_template(&v.tokens, v.add_bos, v.bos).unwrap_or_else(
        || json!({"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true}),
    );
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": v.pre_tokenizer,
        "post_processor": post_processor,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": v.unk.map(|u| v.tokens[u as usize]),
            "continuing_subword_prefix": null, "end_of_word_suffix": null, "fuse_unk": false,
            "byte_fallback": false, "ignore_merges": v.pre == "llama-bpe" || v.pre == "llama3",
            "vocab": vocab, "merges": v.merges},
    })
}

/// The tokenizer files of a GGUF file as (file name, contents) pairs; none if the file
/// carries no tokenizer (as a HuggingFace folder may have none: `convert` then writes none
/// and `run --prompt` says the tokenizer is missing).
pub fn tokenizer_files(file: &GgufFile) -> Result<Vec<(&'static str, String)>, GgufError> {
    let Some(v) = facts::facts(file)? else { return Ok(Vec::new()) };
    let tokenizer = match &v.scores {
        None => bpe_tokenizer_json(&v),
        Some(scores) => super::gguf_spm::tokenizer_json(&super::gguf_spm::SpmVocab {
            tokens: &v.tokens,
            scores,
            types: &v.types,
            unk: v.unk,
            bos: v.bos,
            add_bos: v.add_bos,
            gemma: v.gemma,
        }),
    };
    let name = |id: Option<u64>| id.map(|i| json!(v.tokens[i as usize])).unwrap_or(Json::Null);
    let mut config = Map::new();
    config.insert("tokenizer_class".into(), json!("PreTrainedTokenizerFast"));
    config.insert("add_bos_token".into(), json!(v.add_bos));
    config.insert("add_eos_token".into(), json!(v.add_eos));
    for (key, id) in [("bos_token", v.bos), ("eos_token", v.eos), ("unk_token", v.unk), ("pad_token", v.pad)] {
        config.insert(key.into(), name(id));
    }
    config.insert("clean_up_tokenization_spaces".into(), json!(false));
    if let Some(n) = v.context {
        config.insert("model_max_length".into(), json!(n));
    }
    if let Some(t) = v.chat_template {
        config.insert("chat_template".into(), json!(t));
    }
    let special_map: Map<String, Json> =
        [("bos_token", v.bos), ("eos_token", v.eos), ("unk_token", v.unk), ("pad_token", v.pad)]
            .into_iter()
            .filter(|(_, id)| id.is_some())
            .map(|(k, id)| (k.to_string(), name(id)))
            .collect();
    let mut generation = Map::new();
    if let Some(b) = v.bos {
        generation.insert("bos_token_id".into(), json!(b));
    }
    match v.stop.as_slice() {
        [] => {}
        [one] => {
            generation.insert("eos_token_id".into(), json!(one));
        }
        many => {
            generation.insert("eos_token_id".into(), json!(many));
        }
    }
    if let Some(p) = v.pad {
        generation.insert("pad_token_id".into(), json!(p));
    }
    let pretty = |j: &Json| serde_json::to_string_pretty(j).expect("JSON values serialise");
    Ok(vec![
        ("tokenizer.json", serde_json::to_string(&tokenizer).expect("JSON values serialise")),
        ("tokenizer_config.json", pretty(&Json::Object(config))),
        ("special_tokens_map.json", pretty(&Json::Object(special_map))),
        ("generation_config.json", pretty(&Json::Object(generation))),
    ])
}
