//! Opening an arbitrary sharded checkpoint never panics. The input is split at each
//! `SEPARATOR` into `model.safetensors.index.json`, `model-00001-of-00002.safetensors` and
//! `model-00002-of-00002.safetensors` (a missing part means a missing file), which exercises
//! index parsing, shard-name checks, missing shards, duplicates across shards and tensors
//! mapped to the wrong shard.
#![no_main]
use anemllc::checkpoint::Checkpoint;
use libfuzzer_sys::fuzz_target;

const SEPARATOR: &[u8] = b"\n--shard--\n";
const FILES: [&str; 3] =
    ["model.safetensors.index.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"];

fn split(data: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut rest = data;
    while let Some(at) = rest.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
        parts.push(&rest[..at]);
        rest = &rest[at + SEPARATOR.len()..];
    }
    parts.push(rest);
    parts
}

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("anemllc-fuzz-sharded-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let parts = split(data);
    for (k, file) in FILES.iter().enumerate() {
        let path = dir.join(file);
        match parts.get(k) {
            Some(bytes) => {
                if std::fs::write(&path, bytes).is_err() {
                    return;
                }
            }
            None => {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    if let Ok(ckpt) = Checkpoint::open(&dir) {
        let names: Vec<String> = ckpt.names().into_iter().map(str::to_string).collect();
        for name in names {
            let info = ckpt.info(&name).expect("a listed tensor has info").clone();
            let values = ckpt.to_f32(&name).expect("a listed tensor converts");
            assert_eq!(values.len(), info.numel());
            assert!(info.file.starts_with(&dir), "{name} maps outside the checkpoint: {}", info.file.display());
        }
    }
});
