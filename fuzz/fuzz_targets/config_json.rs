//! Parsing and normalising an arbitrary config.json never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = anemllc::frontend::config::ModelConfig::from_json_str(text, std::path::Path::new("config.json"));
});
