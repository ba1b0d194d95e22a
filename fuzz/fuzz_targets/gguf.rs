//! An arbitrary file opened as a GGUF model: the header parser, the checkpoint view under
//! HuggingFace names (every mapped tensor read: whole up to 2^20 elements, else its first
//! row), the config and tokenizer files rebuilt from the metadata, and lowering. Nothing
//! may panic or abort on an allocation; every error is one line naming the file; the
//! properties are those of `anemllc::gguf::fuzz` (asserted there, shared with
//! tests/gguf_hostile.rs).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("anemllc-fuzz-gguf-{}", std::process::id()));
    anemllc::gguf::fuzz_check(data, &dir);
});
