//! `tokenizer.json` for a SentencePiece BPE vocabulary stored in GGUF
//! (`tokenizer.ggml.model = "llama"`: pieces, scores, token types), as transformers' slow →
//! fast conversion of the same SentencePiece model builds it (`SpmConverter` with the Gemma
//! specifics): a byte-fallback BPE whose merges are every split of a piece into two pieces,
//! ordered by the merged piece's score.
//!
//! Merge order (transformers' `generate_merges` with scores): for each piece in id order,
//! its splits `(left, right)` with both halves in the vocabulary, sorted by (id of left, id
//! of right); then all merges stably sorted by (score, chars of left, chars of right),
//! highest first.

use std::collections::HashMap;

use serde_json::{Value as Json, json};

/// The pieces of a SentencePiece vocabulary as GGUF stores them.
pub struct SpmVocab<'a> {
    pub tokens: &'a [&'a str],
    pub scores: &'a [f32],
    pub types: &'a [i64],
    pub unk: Option<u64>,
    pub bos: Option<u64>,
    pub add_bos: bool,
    /// Gemma's converter gives the first three pieces (pad, eos, bos) score 0 and maps the
    /// `<0x09>` byte piece to a literal tab when the vocabulary has none.
    pub gemma: bool,
}

/// Every (left, right) merge in transformers' order.
pub fn merges(pieces: &[(String, f64)], ids: &HashMap<&str, usize>) -> Vec<(String, String)> {
    let mut all: Vec<(&str, &str, f64)> = Vec::new();
    for (piece, score) in pieces {
        let mut local: Vec<(&str, &str, f64)> = Vec::new();
        for (at, _) in piece.char_indices().skip(1) {
            let (l, r) = piece.split_at(at);
            if ids.contains_key(l) && ids.contains_key(r) {
                local.push((l, r, *score));
            }
        }
        local.sort_by_key(|&(l, r, _)| (ids[l], ids[r]));
        all.extend(local);
    }
    let key = |m: &(&str, &str, f64)| (m.2, m.0.chars().count(), m.1.chars().count());
    all.sort_by(|a, b| key(b).partial_cmp(&key(a)).unwrap_or(std::cmp::Ordering::Equal));
    all.into_iter().map(|(l, r, _)| (l.to_string(), r.to_string())).collect()
}

/// The tokenizer.json value.
pub fn tokenizer_json(v: &SpmVocab<'_>) -> Json {
    let mut pieces: Vec<(String, f64)> =
        v.tokens.iter().zip(v.scores).map(|(t, s)| (t.to_string(), f64::from(*s))).collect();
    if v.gemma {
        for p in pieces.iter_mut().take(3) {
            p.1 = 0.0;
        }
        if !pieces.iter().any(|p| p.0 == "\t")
            && let Some(p) = pieces.iter_mut().find(|p| p.0 == "<0x09>")
        {
            *p = ("\t".to_string(), 0.0);
        }
    }
    // The merge vocabulary is the original pieces (ids), plus a tab aliasing <0x09>.
    let mut ids: HashMap<&str, usize> = HashMap::with_capacity(v.tokens.len() + 1);
    for (i, t) in v.tokens.iter().enumerate() {
        ids.insert(t, i);
    }
    if v.gemma
        && !ids.contains_key("\t")
        && let Some(&tab) = ids.get("<0x09>")
    {
        ids.insert("\t", tab);
    }
    let merges: Vec<Json> = merges(&pieces, &ids).into_iter().map(|(l, r)| json!([l, r])).collect();
    let mut vocab = serde_json::Map::with_capacity(pieces.len());
    for (i, (p, _)) in pieces.iter().enumerate() {
        vocab.insert(p.clone(), json!(i));
    }
    // Gemma's converter also marks its turn markers special.
    let added = super::gguf_tokenizer::added_tokens(v.tokens, v.types, |i| {
        v.gemma && matches!(v.tokens[i], "<start_of_turn>" | "<end_of_turn>")
    });
    let post_processor = super::gguf_tokenizer::bos_template(v.tokens, v.add_bos, v.bos).unwrap_or(Json::Null);
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "\u{2581}"},
        "pre_tokenizer": {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious", "invert": false},
        "post_processor": post_processor,
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u{2581}"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"}]},
        "model": {"type": "BPE", "dropout": null, "unk_token": v.unk.map(|u| v.tokens[u as usize]),
            "continuing_subword_prefix": null, "end_of_word_suffix": null, "fuse_unk": true,
            "byte_fallback": true, "ignore_merges": false, "vocab": vocab, "merges": merges},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_follow_score_then_lengths_then_ids() {
        let pieces: Vec<(String, f64)> =
            [("a", -1.0), ("b", -2.0), ("c", -3.0), ("ab", -4.0), ("abc", -5.0), ("bc", -4.0)]
                .iter()
                .map(|(p, s)| (p.to_string(), *s))
                .collect();
        let ids: HashMap<&str, usize> = pieces.iter().enumerate().map(|(i, p)| (p.0.as_str(), i)).collect();
        let m = merges(&pieces, &ids);
        // "ab" and "bc" tie at −4 (equal lengths: original order kept); "abc" splits into
        // a+bc (ids 0, 5) and ab+c (ids 3, 2), sorted by ids, then by lengths within −5.
        assert_eq!(
            m,
            vec![
                ("a".into(), "b".into()),
                ("b".into(), "c".into()),
                ("ab".into(), "c".into()),
                ("a".into(), "bc".into()),
            ]
        );
    }
}
