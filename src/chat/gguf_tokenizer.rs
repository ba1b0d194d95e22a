//! Tokenizer files rebuilt from a GGUF file's `tokenizer.ggml.*` metadata: `tokenizer.json`
//! (the HuggingFace tokenizers format), `tokenizer_config.json` (special tokens, BOS
//! handling, chat template), `special_tokens_map.json` and `generation_config.json`.
//!
//! BPE vocabularies (`tokenizer.ggml.model = "gpt2"`) become a byte-level BPE with the
//! file's merges. The pre-tokenizer follows `tokenizer.ggml.pre`, the name llama.cpp gives
//! the original tokenizer's splitting rule, so the rebuilt tokenizer splits text as the model
//! was trained (e.g. SmolLM's one-digit-at-a-time rule). Token types follow llama.cpp:
//! 3 (control) become special added tokens, 4 (user-defined) plain added tokens.

use serde_json::{Map, Value as Json, json};

use crate::gguf::{GgufError, GgufFile, Value};

/// llama.cpp's token types.
const CONTROL: i64 = 3;
const USER_DEFINED: i64 = 4;

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

/// The facts the files are built from.
struct Vocab<'a> {
    tokens: Vec<&'a str>,
    types: Vec<i64>,
    bos: Option<u64>,
    eos: Option<u64>,
    unk: Option<u64>,
    pad: Option<u64>,
    add_bos: bool,
}

fn strings<'a>(file: &GgufFile, values: &'a [Value], key: &str) -> Result<Vec<&'a str>, GgufError> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| v.as_str().ok_or_else(|| file.error(format!("metadata {key:?}[{i}] is not a string"))))
        .collect()
}

fn vocab(file: &GgufFile) -> Result<Vocab<'_>, GgufError> {
    let tokens = file
        .get_array("tokenizer.ggml.tokens")?
        .ok_or_else(|| file.error("metadata tokenizer.ggml.tokens is missing: the file carries no tokenizer"))?;
    let tokens = strings(file, tokens, "tokenizer.ggml.tokens")?;
    let types = match file.get_array("tokenizer.ggml.token_type")? {
        None => vec![1; tokens.len()],
        Some(t) if t.len() == tokens.len() => t.iter().map(|v| v.as_i64().unwrap_or(1)).collect(),
        Some(t) => {
            return Err(file.error(format!(
                "tokenizer.ggml.token_type has {} entries for {} tokens",
                t.len(),
                tokens.len()
            )));
        }
    };
    let id = |key: &str| -> Result<Option<u64>, GgufError> {
        match file.get_u64(key)? {
            Some(id) if id as usize >= tokens.len() => {
                Err(file.error(format!("metadata {key:?} = {id} is not a token id (vocabulary of {})", tokens.len())))
            }
            other => Ok(other),
        }
    };
    Ok(Vocab {
        bos: id("tokenizer.ggml.bos_token_id")?,
        eos: id("tokenizer.ggml.eos_token_id")?,
        unk: id("tokenizer.ggml.unknown_token_id")?,
        pad: id("tokenizer.ggml.padding_token_id")?,
        add_bos: file.get_bool("tokenizer.ggml.add_bos_token")?.unwrap_or(false),
        tokens,
        types,
    })
}

/// `tokenizer.json` for a BPE (`gpt2`) vocabulary.
fn bpe_tokenizer_json(file: &GgufFile, v: &Vocab<'_>) -> Result<Json, GgufError> {
    let pre = file.get_str("tokenizer.ggml.pre")?.unwrap_or("default");
    let pre_tokenizer = pre_tokenizer(pre).ok_or_else(|| {
        file.error(format!(
            "tokenizer.ggml.pre = {pre:?} is not a known pre-tokenizer (known: gpt2, default, smollm, llama-bpe, qwen2)"
        ))
    })?;
    let merges = file
        .get_array("tokenizer.ggml.merges")?
        .ok_or_else(|| file.error("metadata tokenizer.ggml.merges is missing (needed by a BPE tokenizer)"))?;
    let merges = strings(file, merges, "tokenizer.ggml.merges")?;
    let mut vocab = Map::with_capacity(v.tokens.len());
    for (i, t) in v.tokens.iter().enumerate() {
        // A repeated token keeps its last id, as transformers' `{word: i}` does.
        vocab.insert((*t).to_string(), json!(i));
    }
    let added: Vec<Json> = v
        .types
        .iter()
        .enumerate()
        .filter(|&(_, &t)| t == CONTROL || t == USER_DEFINED)
        .map(|(i, &t)| {
            json!({"id": i, "content": v.tokens[i], "single_word": false, "lstrip": false, "rstrip": false,
                   "normalized": false, "special": t == CONTROL})
        })
        .collect();
    let post_processor = match (v.add_bos, v.bos) {
        (true, Some(bos)) => {
            let b = v.tokens[bos as usize];
            json!({"type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": b, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"SpecialToken": {"id": b, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                         {"SpecialToken": {"id": b, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {b: {"id": b, "ids": [bos], "tokens": [b]}}})
        }
        _ => json!({"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true}),
    };
    Ok(json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": post_processor,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": v.unk.map(|u| v.tokens[u as usize]),
            "continuing_subword_prefix": null, "end_of_word_suffix": null, "fuse_unk": false,
            "byte_fallback": false, "ignore_merges": pre == "llama-bpe" || pre == "llama3",
            "vocab": vocab, "merges": merges},
    }))
}

/// The tokenizer files of a GGUF file as (file name, contents) pairs.
pub fn tokenizer_files(file: &GgufFile) -> Result<Vec<(&'static str, String)>, GgufError> {
    let v = vocab(file)?;
    let model = file.get_str("tokenizer.ggml.model")?.unwrap_or("");
    let tokenizer = match model {
        "gpt2" => bpe_tokenizer_json(file, &v)?,
        other => {
            return Err(file.error(format!(
                "tokenizer.ggml.model = {other:?}: only BPE (\"gpt2\") vocabularies can be rebuilt into tokenizer.json so far"
            )));
        }
    };
    let name = |id: Option<u64>| id.map(|i| json!(v.tokens[i as usize])).unwrap_or(Json::Null);
    let mut config = Map::new();
    config.insert("tokenizer_class".into(), json!("PreTrainedTokenizerFast"));
    config.insert("add_bos_token".into(), json!(v.add_bos));
    config.insert("add_eos_token".into(), json!(file.get_bool("tokenizer.ggml.add_eos_token")?.unwrap_or(false)));
    for (key, id) in [("bos_token", v.bos), ("eos_token", v.eos), ("unk_token", v.unk), ("pad_token", v.pad)] {
        config.insert(key.into(), name(id));
    }
    config.insert("clean_up_tokenization_spaces".into(), json!(false));
    let arch = file.get_str("general.architecture")?.unwrap_or("");
    if let Some(n) = file.get_u64(&format!("{arch}.context_length"))? {
        config.insert("model_max_length".into(), json!(n));
    }
    if let Some(t) = file.get_str("tokenizer.chat_template")? {
        config.insert("chat_template".into(), json!(t));
    }
    let special_map: Map<String, Json> =
        [("bos_token", v.bos), ("eos_token", v.eos), ("unk_token", v.unk), ("pad_token", v.pad)]
            .into_iter()
            .filter(|(_, id)| id.is_some())
            .map(|(k, id)| (k.to_string(), name(id)))
            .collect();
    // Generation stops on the end-of-sequence token and on llama.cpp's end-of-turn and
    // end-of-message tokens (Llama 3 instruct ends turns with <|eot_id|>).
    let mut eos: Vec<u64> = Vec::new();
    for key in ["tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"] {
        if let Some(id) = file.get_u64(key)?
            && (id as usize) < v.tokens.len()
            && !eos.contains(&id)
        {
            eos.push(id);
        }
    }
    let mut generation = Map::new();
    if let Some(b) = v.bos {
        generation.insert("bos_token_id".into(), json!(b));
    }
    match eos.as_slice() {
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
