//! Opening an arbitrary file as `model.safetensors` and reading every tensor never panics
//! and never reads outside the file: every accepted tensor's bytes are exactly
//! `numel × dtype size`, and reading it (raw view, f32 conversion, the fp16 range scan of the
//! stored bits, and the weight-materialisation path with its NaN/Inf check) succeeds or
//! fails with an error, the scan and the materialising read agreeing on non-finite values.
#![no_main]
use anemllc::checkpoint::Checkpoint;
use anemllc::opt::fp16_range_bits::stats_of_bits;
use anemllc::weights::TensorSource;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("anemllc-fuzz-ckpt-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    if std::fs::write(dir.join("model.safetensors"), data).is_err() {
        return;
    }
    if let Ok(ckpt) = Checkpoint::open(&dir) {
        let names: Vec<String> = ckpt.names().into_iter().map(str::to_string).collect();
        for name in names {
            let info = ckpt.info(&name).expect("a listed tensor has info").clone();
            let view = ckpt.view(&name).expect("a listed tensor has a view");
            assert_eq!(view.data().len(), info.numel() * info.dtype.size(), "{name}: byte length");
            let values = ckpt.to_f32(&name).expect("a listed tensor converts");
            assert_eq!(values.len(), info.numel());
            // `None` exactly when a value is NaN/±inf, which the materialising read rejects.
            let stats = stats_of_bits(view.dtype(), view.data());
            if let Some(s) = stats {
                assert_eq!(s.total, info.numel());
            }
            match ckpt.read_f32(&name) {
                Ok((shape, v)) => assert!(shape == info.shape && v.iter().all(|x| x.is_finite()) && stats.is_some()),
                Err(e) => assert!(stats.is_none(), "{name}: {e}"),
            }
        }
    }
});
