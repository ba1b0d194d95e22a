//! The seed corpus of the `gguf` fuzz target (fuzz/corpus/gguf/): tiny llamas (all-F16 and
//! all-Q8_0 with a tokenizer, F16 without one), one small file per
//! ggml type (a row of each tensor of tests/fixtures/gguf/quant_types.gguf under a llama
//! name), the fixture itself, and reproducers of fixed bugs (`regress_*`).

use std::path::{Path, PathBuf};

use anemllc::gguf::write::GgufBuilder;
use anemllc::gguf::{GgmlType, GgufFile, Value};

use super::tiny::{Matrices, SEED, SEED_F16, TinyGguf};

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn corpus_dir() -> PathBuf {
    repo().join("fuzz/corpus/gguf")
}

pub fn quant_types_fixture() -> PathBuf {
    repo().join("tests/fixtures/gguf/quant_types.gguf")
}

/// Metadata of a one-layer llama whose hidden size is `hidden` (no tensors).
fn llama_meta(b: &mut GgufBuilder, hidden: usize) {
    b.meta("general.architecture", Value::String("llama".into()))
        .meta("llama.block_count", Value::U32(1))
        .meta("llama.context_length", Value::U32(32))
        .meta("llama.embedding_length", Value::U32(hidden as u32))
        .meta("llama.feed_forward_length", Value::U32(hidden as u32))
        .meta("llama.attention.head_count", Value::U32(4))
        .meta("llama.attention.head_count_kv", Value::U32(4))
        .meta("llama.vocab_size", Value::U32(1));
}

/// One file per ggml type: the first row of that type's tensor in quant_types.gguf (real
/// blocks written by gguf-py) as a one-token embedding table.
fn per_type() -> Vec<(String, Vec<u8>)> {
    let file = GgufFile::open(&quant_types_fixture()).unwrap();
    file.tensors()
        .iter()
        .map(|t| {
            let row = t.ty.row_bytes(t.row_len()).unwrap();
            let mut b = GgufBuilder::new();
            llama_meta(&mut b, t.row_len());
            b.tensor("token_embd.weight", t.ty, vec![t.row_len(), 1], file.data(t)[..row].to_vec());
            (format!("type_{}.gguf", t.ty.name()), b.to_bytes())
        })
        .collect()
}

/// A tensor with an empty dimension: decoding it divided by its zero row length (a panic).
pub fn regress_empty_dim() -> Vec<u8> {
    let mut b = GgufBuilder::new();
    llama_meta(&mut b, 32);
    b.tensor("token_embd.weight", GgmlType::F16, vec![0, 4], Vec::new());
    b.to_bytes()
}

/// A head count of 2^63: the Q/K row check computed `2 × heads` (an overflow panic).
pub fn regress_heads_overflow() -> Vec<u8> {
    let mut t = TinyGguf::new(SEED_F16, Matrices::All(GgmlType::F16), false);
    t.set("llama.attention.head_count", Value::U64(1 << 63));
    t.to_bytes()
}

/// A NaN `rope.freq_base`: it became JSON null, and the config silently took the default.
pub fn regress_nan_freq_base() -> Vec<u8> {
    let mut t = TinyGguf::new(SEED_F16, Matrices::All(GgmlType::F16), false);
    t.set("llama.rope.freq_base", Value::F32(f32::NAN));
    t.to_bytes()
}

/// Every seed as (file name, bytes); the valid tiny llamas first.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds = vec![
        ("tiny_llama_f16.gguf".to_string(), TinyGguf::new(SEED_F16, Matrices::All(GgmlType::F16), true).to_bytes()),
        ("tiny_llama_q8_0.gguf".to_string(), TinyGguf::new(SEED, Matrices::All(GgmlType::Q8_0), true).to_bytes()),
        (
            "tiny_llama_no_tokenizer.gguf".to_string(),
            TinyGguf::new(SEED_F16, Matrices::All(GgmlType::F16), false).to_bytes(),
        ),
    ];
    seeds.extend(per_type());
    seeds.push(("quant_types.gguf".to_string(), std::fs::read(quant_types_fixture()).unwrap()));
    seeds.push(("regress_empty_dim.gguf".to_string(), regress_empty_dim()));
    seeds.push(("regress_heads_overflow.gguf".to_string(), regress_heads_overflow()));
    seeds.push(("regress_nan_freq_base.gguf".to_string(), regress_nan_freq_base()));
    seeds
}
