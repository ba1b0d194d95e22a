//! `anemllc synth`: synthetic HuggingFace Llama checkpoints (src/synth).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anemllc::checkpoint::{Checkpoint, StDType};
use anemllc::frontend::config::{ModelConfig, RopeScaling};
use anemllc::synth::{Preset, SynthDType, weight_files};
use half::{bf16, f16};

/// A fresh scratch folder for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("synth").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `anemllc synth --preset tiny -o OUT ARGS…`, with `threads` rayon threads if given.
fn synth(out: &Path, args: &[&str], threads: Option<usize>) -> Output {
    synth_env(out, args, threads, &[])
}

fn synth_env(out: &Path, args: &[&str], threads: Option<usize>, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_anemllc"));
    cmd.args(["synth", "--preset", "tiny", "-o"]).arg(out).args(args);
    if let Some(n) = threads {
        cmd.env("RAYON_NUM_THREADS", n.to_string());
    }
    cmd.envs(env.iter().copied());
    cmd.output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Generates tiny into `out` and asserts success.
fn synth_ok(out: &Path, args: &[&str], threads: Option<usize>) {
    let o = synth(out, args, threads);
    assert!(o.status.success(), "synth {args:?} failed: {}", stderr(&o));
}

/// Every file of `dir` by name.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().into_string().unwrap(), std::fs::read(e.path()).unwrap())
        })
        .collect()
}

/// Hidden entries (temporary folders) left in `dir`.
fn hidden_entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with('.'))
        .collect()
}

fn lower_ok(model: &Path, out: &Path) {
    let o = Command::new(env!("CARGO_BIN_EXE_anemllc"))
        .arg("lower")
        .arg(model)
        .arg("-o")
        .arg(out)
        .args(["--context", "32", "--batch", "8"])
        .output()
        .unwrap();
    assert!(o.status.success(), "lower failed: {}", stderr(&o));
    assert!(std::fs::read_to_string(out).unwrap().contains("layer1.prefill"));
}

fn mean_std(v: &[f32]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    let var = v.iter().map(|&x| (f64::from(x) - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

#[test]
fn tiny_has_hf_names_shapes_dtypes_and_config() {
    let dir = scratch("layout");
    let out = dir.join("tiny");
    synth_ok(&out, &[], None);

    let names: Vec<String> = files(&out).into_keys().collect();
    assert_eq!(names, ["config.json", "generation_config.json", "model.safetensors"]);
    assert!(hidden_entries(&dir).is_empty(), "temporary folder left: {:?}", hidden_entries(&dir));

    let ckpt = Checkpoint::open(&out).unwrap();
    assert_eq!(ckpt.len(), 2 * 9 + 3);
    let mut expected: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    expected.insert("model.embed_tokens.weight".into(), vec![256, 64]);
    expected.insert("model.norm.weight".into(), vec![64]);
    expected.insert("lm_head.weight".into(), vec![256, 64]);
    for i in 0..2 {
        let p = format!("model.layers.{i}");
        for (name, shape) in [
            ("self_attn.q_proj.weight", vec![64, 64]),
            ("self_attn.k_proj.weight", vec![32, 64]),
            ("self_attn.v_proj.weight", vec![32, 64]),
            ("self_attn.o_proj.weight", vec![64, 64]),
            ("mlp.gate_proj.weight", vec![128, 64]),
            ("mlp.up_proj.weight", vec![128, 64]),
            ("mlp.down_proj.weight", vec![64, 128]),
            ("input_layernorm.weight", vec![64]),
            ("post_attention_layernorm.weight", vec![64]),
        ] {
            expected.insert(format!("{p}.{name}"), shape);
        }
    }
    let found: BTreeMap<String, Vec<usize>> =
        ckpt.names().into_iter().map(|n| (n.to_string(), ckpt.info(n).unwrap().shape.clone())).collect();
    assert_eq!(found, expected);
    for name in ckpt.names() {
        assert_eq!(ckpt.info(name).unwrap().dtype, StDType::BF16, "{name}");
    }

    let cfg = ModelConfig::from_dir(&out).unwrap();
    assert_eq!(
        (cfg.hidden, cfg.layers, cfg.heads, cfg.kv_heads, cfg.head_dim, cfg.intermediate, cfg.vocab),
        (64, 2, 4, 2, 16, 128, 256)
    );
    assert!(!cfg.tie_word_embeddings);
    assert_eq!(cfg.torch_dtype.as_deref(), Some("bfloat16"));
    let raw: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(raw["architectures"][0], "LlamaForCausalLM");
    assert_eq!(raw["model_type"], "llama");
    assert_eq!(raw["anemllc_synth"]["preset"], "tiny");
}

#[test]
fn same_seed_gives_identical_bytes_for_any_thread_count() {
    let dir = scratch("determinism");
    // Default blocks (every tiny tensor is one block) and small blocks (many blocks per
    // tensor, a partial last one, several windows' worth of jobs filled in parallel).
    for (tag, extra) in [("default", vec![]), ("blocks", vec!["--block-elems", "1000"])] {
        let args: Vec<&str> = [&["--seed", "7"][..], &extra].concat();
        let one = dir.join(format!("{tag}-t1"));
        let two = dir.join(format!("{tag}-t2"));
        synth_ok(&one, &args, Some(1));
        synth_ok(&two, &args, Some(2));
        assert_eq!(files(&one), files(&two), "{tag}: 1 thread vs 2 threads");
    }
    // The portable generator and the AVX2 build of it (used when the CPU has AVX2) agree, in
    // every dtype.
    for dtype in ["bf16", "fp16", "fp32"] {
        let args = ["--seed", "7", "--block-elems", "1000", "--dtype", dtype];
        let simd = dir.join(format!("simd-{dtype}"));
        let generic = dir.join(format!("generic-{dtype}"));
        synth_ok(&simd, &args, None);
        let o = synth_env(&generic, &args, None, &[("ANEMLLC_SYNTH_GENERIC", "1")]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(files(&simd), files(&generic), "{dtype}: AVX2 vs portable");
    }

    // The block size changes the values; the seed changes every weight file.
    let default = files(&dir.join("default-t1"));
    let blocks = files(&dir.join("blocks-t1"));
    assert_ne!(default["model.safetensors"], blocks["model.safetensors"]);
    let other = dir.join("seed8");
    synth_ok(&other, &["--seed", "8"], None);
    let other = Checkpoint::open(&other).unwrap();
    let seven = Checkpoint::open(&dir.join("default-t1")).unwrap();
    for name in seven.names() {
        assert_ne!(seven.view(name).unwrap().data(), other.view(name).unwrap().data(), "{name}");
    }
    // Distinct tensors of one checkpoint (same shape) differ too.
    let q0 = seven.view("model.layers.0.self_attn.q_proj.weight").unwrap();
    let o0 = seven.view("model.layers.0.self_attn.o_proj.weight").unwrap();
    assert_ne!(q0.data(), o0.data());
}

#[test]
fn value_statistics_are_sane() {
    let dir = scratch("stats");
    let out = dir.join("tiny");
    synth_ok(&out, &["--seed", "3"], None);
    let ckpt = Checkpoint::open(&out).unwrap();
    let mut gains = Vec::new();
    for name in ckpt.names() {
        let v = ckpt.to_f32(name).unwrap();
        assert!(v.iter().all(|x| x.is_finite()), "{name}");
        if name.ends_with("norm.weight") {
            gains.extend(v);
            continue;
        }
        let (mean, std) = mean_std(&v);
        assert!(mean.abs() < 0.002, "{name}: mean {mean}");
        assert!((std - 0.02).abs() < 0.2 * 0.02, "{name}: std {std}");
        let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
        assert!(max < 0.08 && max > 0.04, "{name}: max |v| {max}");
        let distinct: std::collections::HashSet<u32> = v.iter().map(|x| x.to_bits()).collect();
        assert!(distinct.len() > 200, "{name}: only {} distinct values", distinct.len());
    }
    let (mean, std) = mean_std(&gains);
    assert!((mean - 1.0).abs() < 0.005, "gains: mean {mean}");
    assert!((std - 0.02).abs() < 0.2 * 0.02, "gains: std {std}");
    assert!(gains.iter().all(|g| (0.9..1.1).contains(g)));
}

#[test]
fn dtypes_hold_the_same_values_up_to_rounding() {
    let dir = scratch("dtypes");
    let mut ckpts = BTreeMap::new();
    for dtype in ["fp32", "bf16", "fp16"] {
        let out = dir.join(dtype);
        synth_ok(&out, &["--dtype", dtype, "--seed", "5", "--block-elems", "3000"], None);
        ckpts.insert(dtype, (Checkpoint::open(&out).unwrap(), ModelConfig::from_dir(&out).unwrap()));
    }
    let torch: BTreeMap<&str, Option<String>> =
        ckpts.iter().map(|(k, (_, cfg))| (*k, cfg.torch_dtype.clone())).collect();
    assert_eq!(torch["fp32"].as_deref(), Some("float32"));
    assert_eq!(torch["bf16"].as_deref(), Some("bfloat16"));
    assert_eq!(torch["fp16"].as_deref(), Some("float16"));

    let (f32s, b16s, h16s) = (&ckpts["fp32"].0, &ckpts["bf16"].0, &ckpts["fp16"].0);
    for name in f32s.names() {
        assert_eq!(f32s.info(name).unwrap().dtype, StDType::F32);
        assert_eq!(b16s.info(name).unwrap().dtype, StDType::BF16);
        assert_eq!(h16s.info(name).unwrap().dtype, StDType::F16);
        let exact = f32s.to_f32(name).unwrap();
        let b = b16s.to_f32(name).unwrap();
        let h = h16s.to_f32(name).unwrap();
        for (i, &x) in exact.iter().enumerate() {
            assert_eq!(b[i], bf16::from_f32(x).to_f32(), "{name}[{i}] bf16 of {x:e}");
            assert_eq!(h[i], f16::from_f32(x).to_f32(), "{name}[{i}] fp16 of {x:e}");
        }
    }
}

#[test]
fn lower_accepts_single_file_and_sharded_checkpoints() {
    let dir = scratch("sharded");
    let single = dir.join("single");
    let sharded = dir.join("sharded");
    synth_ok(&single, &["--seed", "11"], None);
    synth_ok(&sharded, &["--seed", "11", "--max-shard-bytes", "40000"], Some(2));

    let listing: Vec<String> = files(&sharded).into_keys().collect();
    assert!(!listing.contains(&"model.safetensors".to_string()), "{listing:?}");
    let shards: Vec<&String> = listing.iter().filter(|n| n.ends_with(".safetensors")).collect();
    let n = shards.len();
    assert!(n >= 3, "{listing:?}");
    for (k, name) in shards.iter().enumerate() {
        assert_eq!(**name, format!("model-{:05}-of-{n:05}.safetensors", k + 1));
    }

    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sharded.join("model.safetensors.index.json")).unwrap()).unwrap();
    let a = Checkpoint::open(&single).unwrap();
    let b = Checkpoint::open(&sharded).unwrap();
    assert_eq!(a.names(), b.names());
    assert_eq!(b.files().count(), n);
    let mut total = 0u64;
    let mut per_shard: BTreeMap<PathBuf, u64> = BTreeMap::new();
    for name in a.names() {
        let (va, vb) = (a.view(name).unwrap(), b.view(name).unwrap());
        assert_eq!(va.data(), vb.data(), "{name}: sharding changed the values");
        let info = b.info(name).unwrap();
        assert_eq!(index["weight_map"][name], info.file.file_name().unwrap().to_str().unwrap());
        total += vb.data().len() as u64;
        *per_shard.entry(info.file.clone()).or_default() += vb.data().len() as u64;
    }
    assert_eq!(index["metadata"]["total_size"], total);
    assert_eq!(index["metadata"]["total_parameters"], total / 2);
    assert!(per_shard.values().all(|&bytes| bytes <= 40000), "{per_shard:?}");
    // Shards are filled in state-dict order: the embedding first, the LM head last.
    assert_eq!(index["weight_map"]["model.embed_tokens.weight"], *shards[0]);
    assert_eq!(index["weight_map"]["lm_head.weight"], *shards[n - 1]);

    lower_ok(&single, &dir.join("single.air"));
    lower_ok(&sharded, &dir.join("sharded.air"));
}

#[test]
fn existing_output_needs_force() {
    let dir = scratch("force");
    let out = dir.join("model");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("marker"), "old").unwrap();

    let o = synth(&out, &[], None);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains(&out.display().to_string()) && err.contains("--force"), "{err}");
    assert!(out.join("marker").exists());

    synth_ok(&out, &["--force"], None);
    assert!(!out.join("marker").exists());
    Checkpoint::open(&out).unwrap();
    assert!(hidden_entries(&dir).is_empty(), "left behind: {:?}", hidden_entries(&dir));

    // A plain file in the way is refused the same way.
    let file = dir.join("file");
    std::fs::write(&file, "x").unwrap();
    let o = synth(&file, &[], None);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains(&file.display().to_string()));
}

#[test]
fn io_failure_exits_1_naming_the_path() {
    let dir = scratch("io");
    let blocker = dir.join("not-a-dir");
    std::fs::write(&blocker, "x").unwrap();
    let o = synth(&blocker.join("model"), &[], None);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains(&blocker.display().to_string()), "{}", stderr(&o));

    // A write failure (here the file-size limit: EFBIG, since synth ignores SIGXFSZ) exits 1,
    // names the shard file and leaves nothing behind.
    #[cfg(unix)]
    {
        let out = dir.join("limited");
        let o = Command::new("sh")
            .arg("-c")
            .arg("ulimit -f 64 && exec \"$0\" synth --preset tiny -o \"$1\"")
            .arg(env!("CARGO_BIN_EXE_anemllc"))
            .arg(&out)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(stderr(&o).contains("model.safetensors"), "{}", stderr(&o));
        assert!(!out.exists());
        assert!(hidden_entries(&dir).is_empty(), "left behind: {:?}", hidden_entries(&dir));
    }

    let o = synth(&dir.join("m"), &["--max-shard-bytes", "0"], None);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = synth(&dir.join("m"), &["--dtype", "int8"], None);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn help_describes_the_presets() {
    let o = Command::new(env!("CARGO_BIN_EXE_anemllc")).args(["synth", "--help"]).output().unwrap();
    assert!(o.status.success());
    let help = String::from_utf8(o.stdout).unwrap();
    for needle in ["tiny", "small", "Llama-3.2-1B", "1.24B parameters", "3.21B", "8.03B", "hidden 4096", "--seed"] {
        assert!(help.contains(needle), "missing {needle:?} in:\n{help}");
    }
    assert!(!help.contains("max-shard-bytes"), "hidden option shown:\n{help}");
}

#[test]
fn presets_have_the_published_shapes() {
    assert_eq!(Preset::OneB.params(), 1_235_814_400);
    assert_eq!(Preset::ThreeB.params(), 3_212_749_824);
    assert_eq!(Preset::EightB.params(), 8_030_261_248);
    let tensor_names = |p: Preset| p.tensors().into_iter().map(|t| t.name).collect::<Vec<_>>();
    assert!(!tensor_names(Preset::OneB).contains(&"lm_head.weight".to_string()));
    assert!(!tensor_names(Preset::ThreeB).contains(&"lm_head.weight".to_string()));
    assert!(tensor_names(Preset::EightB).contains(&"lm_head.weight".to_string()));
    assert!(tensor_names(Preset::Small).contains(&"lm_head.weight".to_string()));

    let parse = |p: Preset| {
        let json = p.shape().config_json("bfloat16", serde_json::Value::Null).to_string();
        ModelConfig::from_json_str(&json, Path::new("config.json")).unwrap()
    };
    let c = parse(Preset::OneB);
    assert_eq!(
        (c.hidden, c.layers, c.heads, c.kv_heads, c.head_dim, c.intermediate, c.vocab),
        (2048, 16, 32, 8, 64, 8192, 128256)
    );
    assert!(c.tie_word_embeddings);
    assert_eq!((c.rope_theta, c.rms_eps, c.max_position_embeddings), (500000.0, 1e-5, 131072));
    assert_eq!(
        c.rope_scaling,
        RopeScaling::Llama3 {
            factor: 32.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 8192
        }
    );
    assert_eq!((c.bos_token_id, c.eos_token_ids.as_slice()), (Some(128000), &[128001][..]));
    let c = parse(Preset::ThreeB);
    assert_eq!((c.hidden, c.layers, c.heads, c.kv_heads, c.head_dim, c.intermediate), (3072, 28, 24, 8, 128, 8192));
    let c = parse(Preset::EightB);
    assert_eq!((c.hidden, c.layers, c.heads, c.kv_heads, c.intermediate), (4096, 32, 32, 8, 14336));
    assert!(!c.tie_word_embeddings);
    assert!(matches!(c.rope_scaling, RopeScaling::Llama3 { factor: 8.0, .. }));
    let c = parse(Preset::Small);
    assert_eq!((c.hidden, c.layers, c.heads, c.kv_heads, c.intermediate, c.vocab), (512, 8, 8, 2, 1408, 32000));
    assert_eq!(c.rope_scaling, RopeScaling::None);

    // Sharding like save_pretrained with 4 GiB shards.
    let gib4 = 4u64 << 30;
    let names = |files: Vec<(String, u64)>| files.into_iter().map(|f| f.0).collect::<Vec<_>>();
    assert_eq!(names(weight_files(Preset::OneB, SynthDType::BF16, gib4)), ["model.safetensors"]);
    let one_fp32 = weight_files(Preset::OneB, SynthDType::FP32, gib4);
    assert_eq!(names(one_fp32), ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]);
    let eight = weight_files(Preset::EightB, SynthDType::BF16, gib4);
    assert_eq!(eight.len(), 4);
    assert!(eight.iter().all(|(_, len)| *len <= gib4 + (1 << 20)), "{eight:?}");
    let total: u64 = eight.iter().map(|f| f.1).sum();
    assert!(total > 2 * Preset::EightB.params() && total < 2 * Preset::EightB.params() + (1 << 20));
}
