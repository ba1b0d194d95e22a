//! The package reader on arbitrary bytes: input = `u32 LE n` + `n` bytes of model.mlmodel +
//! the rest as weights/weight.bin (no weight.bin if the rest is empty), under a fixed valid
//! Manifest.json. Opening, rendering as MIL text and a summary (`inspect`), translating to
//! IR and materialising every weight never panics, never aborts on an allocation and never
//! reads outside the blob file; a translated module always verifies (`read_package` never
//! reports an internal error).
#![no_main]
use anemllc::mil::text::{program_text, summary_text};
use anemllc::mil::{ReadError, open_package, read_package};
use libfuzzer_sys::fuzz_target;

/// A valid Manifest.json (the one the writer makes), so each input exercises the model and
/// weight files.
fn manifest() -> String {
    anemllc::mil::manifest::Manifest::new(
        "b9a3df3f-6dd7-4fa2-9171-f84e77160a4d",
        "c72ed00d-bc10-4d7a-b3b3-25ad73476bdc",
    )
    .to_json()
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let n = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize;
    let rest = &data[4..];
    let (model, blob) = rest.split_at(n.min(rest.len()));
    let pkg = std::env::temp_dir().join(format!("anemllc-fuzz-mil-{}.mlpackage", std::process::id()));
    let core = pkg.join("Data/com.apple.CoreML");
    let _ = std::fs::create_dir_all(core.join("weights"));
    // No blob bytes: no weight.bin at all (a package without large constants), rather than
    // an empty file that every open refuses.
    let weight_bin = core.join("weights/weight.bin");
    let blob_written = if blob.is_empty() {
        std::fs::remove_file(&weight_bin).is_ok() || !weight_bin.exists()
    } else {
        std::fs::write(&weight_bin, blob).is_ok()
    };
    let written = std::fs::write(pkg.join("Manifest.json"), manifest()).is_ok()
        && std::fs::write(core.join("model.mlmodel"), model).is_ok()
        && blob_written;
    if !written {
        return;
    }
    if let Ok(contents) = open_package(&pkg) {
        let _ = summary_text(&contents);
        let _ = program_text(&contents);
    }
    match read_package(&pkg) {
        Ok(read) => {
            anemllc::ir::verify_module(&read.module).expect("a translated module verifies");
            let cache = read.weight_cache();
            for w in &read.module.weights {
                if w.ty.checked_numel().is_some_and(|n| n <= 1 << 22) {
                    let _ = cache.get_uncached(&w.name);
                }
            }
        }
        // `read_package` verifies the module itself and reports a failure as an internal
        // error: that is a reader bug, not a property of the input.
        Err(ReadError::Model { message, .. }) => assert!(!message.starts_with("internal:"), "{message}"),
        Err(_) => {}
    }
});
