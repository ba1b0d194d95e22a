//! Opening an arbitrary file as `model.safetensors` and reading every tensor never panics
//! and never reads outside the file.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("anemllc-fuzz-ckpt-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    if std::fs::write(dir.join("model.safetensors"), data).is_err() {
        return;
    }
    if let Ok(ckpt) = anemllc::checkpoint::Checkpoint::open(&dir) {
        let names: Vec<String> = ckpt.names().into_iter().map(str::to_string).collect();
        for name in names {
            let _ = ckpt.to_f32(&name);
        }
    }
});
