//! Parsing and normalising an arbitrary config.json never panics; for a config it accepts,
//! the RoPE inverse frequencies compute without panicking, and whenever `lower`'s guard
//! (`rope::finite_tables`) accepts them, the cos/sin tables really are finite.
#![no_main]
use anemllc::frontend::config::ModelConfig;
use anemllc::frontend::rope;
use anemllc::ir::DType;
use anemllc::weights::{Trig, rope_table};
use libfuzzer_sys::fuzz_target;

/// Positions of the tables built here (lowering builds `--context` of them).
const LEN: usize = 64;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(cfg) = ModelConfig::from_json_str(text, std::path::Path::new("config.json")) else { return };
    // The tables have head_dim / 2 entries; lowering only builds them after the checkpoint
    // has proved the sizes real, so skip absurd head_dims here rather than allocate them.
    if cfg.head_dim > 1 << 12 {
        return;
    }
    let scale = rope::attention_scaling(&cfg);
    for context in [LEN, cfg.max_position_embeddings.saturating_mul(2)] {
        let inv_freq = rope::inv_freq_for_context(&cfg, context);
        assert_eq!(inv_freq.len(), cfg.head_dim / 2);
        if !rope::finite_tables(&inv_freq, LEN) {
            continue; // `lower` refuses this config (for this context) with an error.
        }
        for trig in [Trig::Cos, Trig::Sin] {
            let table = rope_table(&inv_freq, LEN, scale, trig, DType::F32).expect("rope table");
            let values = table.as_f32().expect("a float table");
            assert!(values.iter().all(|v| v.is_finite()), "non-finite RoPE table for context {context}");
        }
    }
});
