//! Reading and checking a GGUF file's tokenizer metadata (`tokenizer.ggml.*`,
//! `tokenizer.chat_template`) into the facts the tokenizer files are built from.

use super::pre_tokenizer;
use crate::gguf::value::shown;
use crate::gguf::{GgufError, GgufFile, Value};
use serde_json::Value as Json;

/// The facts the files are built from, read from the metadata and checked: every id is a
/// token of `tokens`, `types` has one entry per token, every merge is two tokens whose
/// concatenation is a token, and the pre-tokenizer is known. Building the files from it
/// cannot fail.
pub(super) struct Facts<'a> {
    pub tokens: Vec<&'a str>,
    pub types: Vec<i64>,
    pub bos: Option<u64>,
    pub eos: Option<u64>,
    pub unk: Option<u64>,
    pub pad: Option<u64>,
    pub add_bos: bool,
    pub add_eos: bool,
    /// llama.cpp's pre-tokenizer name and our rendering of it.
    pub pre: &'a str,
    pub pre_tokenizer: Json,
    pub merges: Vec<&'a str>,
    /// SentencePiece scores (`tokenizer.ggml.model = "llama"`), one per token; `None` for BPE.
    pub scores: Option<Vec<f32>>,
    /// Gemma's SentencePiece conversion specifics apply (see `gguf_spm::SpmVocab::gemma`).
    pub gemma: bool,
    /// Ids that end generation: EOS, end-of-turn, end-of-message (those in range, once each).
    pub stop: Vec<u64>,
    pub context: Option<u64>,
    pub chat_template: Option<&'a str>,
}

fn strings<'a>(file: &GgufFile, values: &'a [Value], key: &str) -> Result<Vec<&'a str>, GgufError> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| v.as_str().ok_or_else(|| file.error(format!("metadata {key:?}[{i}] is not a string"))))
        .collect()
}

/// Whether `file` carries a tokenizer: `tokenizer.ggml.model` names one (llama.cpp's "none"
/// and "no_vocab" name none), or the vocabulary is there without it (then an error later).
fn has_tokenizer(file: &GgufFile) -> Result<bool, GgufError> {
    let model = file.get_str("tokenizer.ggml.model")?;
    if matches!(model, Some("none" | "no_vocab")) {
        return Ok(false);
    }
    Ok(model.is_some() || file.metadata().contains_key("tokenizer.ggml.tokens"))
}

/// The tokenizer facts of `file`, `None` if it carries no tokenizer.
pub(super) fn facts(file: &GgufFile) -> Result<Option<Facts<'_>>, GgufError> {
    if !has_tokenizer(file)? {
        return Ok(None);
    }
    let tokens = file.get_array("tokenizer.ggml.tokens")?.ok_or_else(|| {
        file.error("metadata tokenizer.ggml.tokens is missing, but tokenizer.ggml.model names a tokenizer")
    })?;
    let tokens = strings(file, tokens, "tokenizer.ggml.tokens")?;
    let model = file.get_str("tokenizer.ggml.model")?.unwrap_or("");
    if model != "gpt2" && model != "llama" {
        return Err(file.error(format!(
            "tokenizer.ggml.model = {}: only BPE (\"gpt2\") and SentencePiece (\"llama\") vocabularies can be rebuilt into tokenizer.json",
            shown(model)
        )));
    }
    let spm = model == "llama";
    let scores = if spm {
        let values = file.get_array("tokenizer.ggml.scores")?.ok_or_else(|| {
            file.error("metadata tokenizer.ggml.scores is missing (needed by a SentencePiece tokenizer)")
        })?;
        if values.len() != tokens.len() {
            return Err(file.error(format!(
                "tokenizer.ggml.scores has {} entries for {} tokens",
                values.len(),
                tokens.len()
            )));
        }
        let scores: Vec<f32> = values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_f64()
                    .map(|f| f as f32)
                    .ok_or_else(|| file.error(format!("metadata \"tokenizer.ggml.scores\"[{i}] is not a number")))
            })
            .collect::<Result<_, _>>()?;
        Some(scores)
    } else {
        None
    };
    let types = match file.get_array("tokenizer.ggml.token_type")? {
        None => vec![1; tokens.len()],
        Some(t) if t.len() == tokens.len() => t
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_i64()
                    .ok_or_else(|| file.error(format!("metadata \"tokenizer.ggml.token_type\"[{i}] is not an integer")))
            })
            .collect::<Result<_, _>>()?,
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
            Some(id) if id >= tokens.len() as u64 => {
                Err(file.error(format!("metadata {key:?} = {id} is not a token id (vocabulary of {})", tokens.len())))
            }
            other => Ok(other),
        }
    };
    let pre = file.get_str("tokenizer.ggml.pre")?.unwrap_or("default");
    let pre_tokenizer = if spm { Some(Json::Null) } else { pre_tokenizer(pre) };
    let pre_tokenizer = pre_tokenizer.ok_or_else(|| {
        file.error(format!(
            "tokenizer.ggml.pre = {} is not a known pre-tokenizer (known: gpt2, default, smollm, llama-bpe, qwen2)",
            shown(pre)
        ))
    })?;
    let merges = if spm {
        Vec::new()
    } else {
        let merges = file
            .get_array("tokenizer.ggml.merges")?
            .ok_or_else(|| file.error("metadata tokenizer.ggml.merges is missing (needed by a BPE tokenizer)"))?;
        let merges = strings(file, merges, "tokenizer.ggml.merges")?;
        check_merges(file, &tokens, &merges)?;
        merges
    };
    // Generation stops on the end-of-sequence token and on llama.cpp's end-of-turn and
    // end-of-message tokens (Llama 3 instruct ends turns with <|eot_id|>).
    let mut stop: Vec<u64> = Vec::new();
    for key in ["tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"] {
        if let Some(id) = file.get_u64(key)?
            && id < tokens.len() as u64
            && !stop.contains(&id)
        {
            stop.push(id);
        }
    }
    let arch = file.get_str("general.architecture")?.unwrap_or("");
    Ok(Some(Facts {
        bos: id("tokenizer.ggml.bos_token_id")?,
        eos: id("tokenizer.ggml.eos_token_id")?,
        unk: id("tokenizer.ggml.unknown_token_id")?,
        pad: id("tokenizer.ggml.padding_token_id")?,
        add_bos: file.get_bool("tokenizer.ggml.add_bos_token")?.unwrap_or(false),
        add_eos: file.get_bool("tokenizer.ggml.add_eos_token")?.unwrap_or(false),
        pre,
        pre_tokenizer,
        merges,
        scores,
        gemma: arch.starts_with("gemma"),
        stop,
        context: file.get_u64(&format!("{arch}.context_length"))?,
        chat_template: file.get_str("tokenizer.chat_template")?,
        tokens,
        types,
    }))
}

/// Every merge is "a b" with `a`, `b` and `ab` in the vocabulary, as the tokenizers
/// library's BPE requires (it refuses the whole tokenizer.json otherwise).
fn check_merges(file: &GgufFile, tokens: &[&str], merges: &[&str]) -> Result<(), GgufError> {
    let vocab: std::collections::HashSet<&str> = tokens.iter().copied().collect();
    for (i, merge) in merges.iter().enumerate() {
        let bad = |why: &str| file.error(format!("metadata \"tokenizer.ggml.merges\"[{i}] = {}: {why}", shown(merge)));
        let mut parts = merge.split(' ');
        let (Some(a), Some(b), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("not two tokens separated by one space"));
        };
        if !vocab.contains(a) || !vocab.contains(b) || !vocab.contains(format!("{a}{b}").as_str()) {
            return Err(bad("merges tokens that are not in the vocabulary"));
        }
    }
    Ok(())
}
