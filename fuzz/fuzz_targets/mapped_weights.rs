//! `anemllc run`'s mapped-weights path on damaged output folders: a small valid folder
//! (llama_tiny converted once per process: LUT6 FFN and LM head, fp16 embeddings, two FFN
//! chunks) has its packages' `weight.bin` and `model.mlmodel` edited by the input (records
//! `[op u8][at u32 LE][n u8][n bytes]`, see `anemllc::package::fuzz::parse_edits`), then is
//! loaded, started on a 3-token prompt and run for one decode step. Nothing may panic or
//! abort on an allocation; every failure is an error (`anemllc::package::fuzz::fuzz_check`).
#![no_main]
use std::path::PathBuf;
use std::sync::OnceLock;

use anemllc::package::fuzz::{fuzz_check, template};
use libfuzzer_sys::fuzz_target;

fn template_folder() -> &'static PathBuf {
    static FOLDER: OnceLock<PathBuf> = OnceLock::new();
    FOLDER.get_or_init(|| {
        let model = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/models/llama_tiny"));
        let dir = std::env::temp_dir().join(format!("anemllc-fuzz-mapped-template-{}", std::process::id()));
        template(&model, &dir).expect("the template folder converts")
    })
}

fuzz_target!(|data: &[u8]| {
    let template = template_folder();
    let scratch = std::env::temp_dir().join(format!("anemllc-fuzz-mapped-{}", std::process::id()));
    fuzz_check(data, template, &scratch);
});
