//! Hostile inputs at the command line, generated here in scratch directories (a copy of a
//! fixture checkpoint, then corrupted): every case must end with a non-zero exit code (2 for
//! bad input), ONE line on stderr naming the file/tensor/field and the problem, no panic, and
//! no output file. Cases that corrupt the checkpoint also `run` a module over it (the module
//! lowered from the corrupted copy if `lower` accepts it, else one lowered from the pristine
//! fixture with `--model` pointing at the corrupted copy): `run` must fail the same way and
//! write no logits.
//!
//! The table is [`hostile_cases!`] below; the output-side cases (unwritable directory, full
//! disk, file-size limit, killed mid-way) follow it. Run with `-- --nocapture` to see every
//! message.

mod hostile_support;

use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use hostile_support::*;
use serde_json::{Value, json};

const TINY: &str = "llama_tiny";
const SHARDED: &str = "llama_sharded";
const BF16: &str = "llama_bf16";
const SHARD1: &str = "model-00001-of-00002.safetensors";
const SHARD2: &str = "model-00002-of-00002.safetensors";
const INDEX: &str = "model.safetensors.index.json";

/// What one command must do.
#[derive(Clone, Copy)]
enum Expect {
    /// Succeed (exit 0).
    Ok,
    /// Fail with this exit code, and stderr containing each string (`$CKPT` stands for the
    /// corrupted checkpoint directory, so a want like `$CKPT/model.safetensors` checks that
    /// the full path of the file is named).
    Fail(i32, &'static [&'static str]),
    /// Not run (the case does not concern this command).
    Skip,
}

struct Case {
    /// Fixture copied into the scratch directory before `corrupt` runs.
    fixture: &'static str,
    /// Damages the copy in the given directory.
    corrupt: fn(&Path),
    /// `--context/--batch` passed to `lower`.
    sizes: &'static [&'static str],
    lower: Expect,
    run: Expect,
}

impl Default for Case {
    fn default() -> Self {
        Case { fixture: TINY, corrupt: |_| {}, sizes: SIZES, lower: Expect::Ok, run: Expect::Skip }
    }
}

fn st(dir: &Path) -> std::path::PathBuf {
    dir.join("model.safetensors")
}

fn len(path: &Path) -> u64 {
    fs::metadata(path).unwrap().len()
}

/// Corrupts a fixture copy, runs `lower` (and `run`), checks the contract; panics listing
/// every violation.
fn check(name: &str, case: Case) {
    let scratch = scratch("hostile_inputs", name);
    let ckpt = scratch.join("ckpt");
    let out_dir = scratch.join("out");
    fs::create_dir_all(&out_dir).unwrap();
    copy_fixture(case.fixture, &ckpt);
    (case.corrupt)(&ckpt);
    let ckpt_str = ckpt.display().to_string();
    let wants = |w: &[&str]| -> Vec<String> { w.iter().map(|s| s.replace("$CKPT", &ckpt_str)).collect() };

    let mut problems = Vec::new();
    let air = out_dir.join("model.air");
    let lowered = lower(&ckpt, &air, case.sizes);
    println!("[{name}] lower: exit {:?}: {}", lowered.code, lowered.stderr.trim_end());
    match case.lower {
        Expect::Ok => {
            if lowered.code != Some(0) {
                problems.push(format!("lower should succeed: {}", lowered.stderr));
            }
        }
        Expect::Fail(code, w) => {
            problems.extend(failure_problems(&lowered, code, &wants(w)).into_iter().map(|p| format!("lower: {p}")));
            if !listing(&out_dir).is_empty() {
                problems.push(format!("lower left files behind: {:?}", listing(&out_dir)));
            }
        }
        Expect::Skip => unreachable!("every case lowers"),
    }

    if !matches!(case.run, Expect::Skip) {
        // The module to run: the one just lowered, else one from the pristine fixture.
        let (module, model) = if lowered.code == Some(0) {
            (air.clone(), None)
        } else {
            let pristine = scratch.join("pristine.air");
            let o = lower(&fixture(case.fixture), &pristine, SIZES);
            assert_eq!(o.code, Some(0), "{name}: lowering the pristine fixture: {}", o.stderr);
            (pristine, Some(&ckpt))
        };
        let logits = out_dir.join("logits.npy");
        let mut cmd = anemllc();
        cmd.arg("run").arg(&module).args(["--tokens", "1,331,201", "--logits"]).arg(&logits);
        if let Some(dir) = model {
            cmd.arg("--model").arg(dir);
        }
        let ran = output_or_hang(&mut cmd);
        println!("[{name}] run:   exit {:?}: {}", ran.code, ran.stderr.trim_end());
        match case.run {
            Expect::Ok => {
                if ran.code != Some(0) || !logits.exists() {
                    problems.push(format!("run should succeed: {}", ran.stderr));
                }
            }
            Expect::Fail(code, w) => {
                problems.extend(failure_problems(&ran, code, &wants(w)).into_iter().map(|p| format!("run: {p}")));
                if logits.exists() || listing(&out_dir).iter().any(|f| f.contains("logits")) {
                    problems.push(format!("run left files behind: {:?}", listing(&out_dir)));
                }
            }
            Expect::Skip => {}
        }
    }
    assert!(problems.is_empty(), "{name}:\n  {}", problems.join("\n  "));
    let _ = fs::remove_dir_all(&scratch);
}

/// One `#[test]` per case, so cases run (and fail) independently.
macro_rules! hostile_cases {
    ($($name:ident: $case:expr;)*) => {
        $(
            #[test]
            fn $name() {
                check(stringify!($name), $case);
            }
        )*
    };
}

use Expect::{Fail, Ok as Succeeds, Skip};

hostile_cases! {
    // ---------------------------------------------------------------- safetensors framing
    truncated_safetensors: Case {
        corrupt: |d| truncate(&st(d), len(&st(d)) - 1000),
        lower: Fail(2, &[
            "$CKPT/model.safetensors",
            "model.layers.2.self_attn.v_proj.weight",
            "out of bounds",
            "truncated",
        ]),
        run: Fail(2, &["$CKPT/model.safetensors", "out of bounds"]),
        ..Case::default()
    };
    truncated_inside_header: Case {
        corrupt: |d| truncate(&st(d), 100),
        lower: Fail(2, &["$CKPT/model.safetensors", "header length", "exceeds"]),
        run: Fail(2, &["$CKPT/model.safetensors", "header length"]),
        ..Case::default()
    };
    truncated_before_length_prefix: Case {
        corrupt: |d| truncate(&st(d), 5),
        lower: Fail(2, &["$CKPT/model.safetensors", "truncated", "5 bytes"]),
        run: Fail(2, &["$CKPT/model.safetensors", "truncated"]),
        ..Case::default()
    };
    empty_safetensors: Case {
        corrupt: |d| truncate(&st(d), 0),
        lower: Fail(2, &["$CKPT/model.safetensors", "truncated", "0 bytes"]),
        run: Skip,
        ..Case::default()
    };
    header_length_larger_than_file: Case {
        corrupt: |d| {
            let mut bytes = fs::read(st(d)).unwrap();
            let n = bytes.len() as u64;
            bytes[..8].copy_from_slice(&n.to_le_bytes());
            fs::write(st(d), bytes).unwrap();
        },
        lower: Fail(2, &["$CKPT/model.safetensors", "header length", "exceeds"]),
        run: Fail(2, &["$CKPT/model.safetensors", "header length"]),
        ..Case::default()
    };
    header_length_u64_max: Case {
        corrupt: |d| {
            let mut bytes = fs::read(st(d)).unwrap();
            bytes[..8].copy_from_slice(&u64::MAX.to_le_bytes());
            fs::write(st(d), bytes).unwrap();
        },
        lower: Fail(2, &["$CKPT/model.safetensors", "18446744073709551615", "exceeds"]),
        run: Skip,
        ..Case::default()
    };
    header_not_json: Case {
        corrupt: |d| {
            let st_ = Safetensors::read(&st(d));
            let n = serde_json::to_vec(&st_.header).unwrap().len();
            let mut garbage = b"this is not json".to_vec();
            garbage.resize(n, b' ');
            write_raw(&st(d), &garbage, &st_.data);
        },
        lower: Fail(2, &["$CKPT/model.safetensors", "header is not valid JSON"]),
        run: Fail(2, &["$CKPT/model.safetensors", "not valid JSON"]),
        ..Case::default()
    };
    header_not_utf8: Case {
        corrupt: |d| write_raw(&st(d), &[0xff, 0xfe, b'{', b'}'], &[]),
        lower: Fail(2, &["$CKPT/model.safetensors", "not valid UTF-8"]),
        run: Skip,
        ..Case::default()
    };
    header_is_a_json_array: Case {
        corrupt: |d| write_raw(&st(d), b"[1, 2, 3]", &[]),
        lower: Fail(2, &["$CKPT/model.safetensors", "header is not valid JSON"]),
        run: Skip,
        ..Case::default()
    };
    header_lists_a_tensor_twice: Case {
        corrupt: |d| {
            let st_ = Safetensors::read(&st(d));
            let text = serde_json::to_string(&st_.header).unwrap();
            let norm = serde_json::to_string(&st_.header["model.norm.weight"]).unwrap();
            let text = text.replacen('{', &format!("{{\"model.norm.weight\":{norm},"), 1);
            write_raw(&st(d), text.as_bytes(), &st_.data);
        },
        lower: Fail(2, &["$CKPT/model.safetensors", "model.norm.weight", "listed twice"]),
        run: Skip,
        ..Case::default()
    };

    safetensors_is_a_fifo: Case {
        // Found while probing: opening a FIFO blocks until a writer appears — `lower` hung.
        corrupt: |d| mkfifo(&st(d)),
        lower: Fail(2, &["$CKPT/model.safetensors", "not a regular file"]),
        run: Fail(2, &["$CKPT/model.safetensors", "not a regular file"]),
        ..Case::default()
    };
    safetensors_is_a_directory: Case {
        corrupt: |d| {
            fs::remove_file(st(d)).unwrap();
            fs::create_dir(st(d)).unwrap();
        },
        lower: Fail(2, &["$CKPT/model.safetensors", "not a regular file"]),
        run: Skip,
        ..Case::default()
    };

    // ---------------------------------------------------------------- tensor entries
    offsets_out_of_bounds: Case {
        corrupt: |d| edit_safetensors(&st(d), |s| {
            let [a, b] = s.offsets("model.norm.weight");
            s.set("model.norm.weight", "data_offsets", json!([a + 1_000_000, b + 1_000_000]));
        }),
        lower: Fail(2, &["$CKPT/model.safetensors", "model.norm.weight", "out of bounds"]),
        run: Fail(2, &["$CKPT/model.safetensors", "model.norm.weight", "out of bounds"]),
        ..Case::default()
    };
    offsets_past_u64: Case {
        corrupt: |d| edit_safetensors(&st(d), |s| {
            s.set("model.norm.weight", "data_offsets", json!([u64::MAX - 1, u64::MAX]));
        }),
        lower: Fail(2, &["$CKPT/model.safetensors", "model.norm.weight", "out of bounds"]),
        run: Skip,
        ..Case::default()
    };
    offsets_reversed: Case {
        corrupt: |d| edit_safetensors(&st(d), |s| {
            let [a, b] = s.offsets("model.norm.weight");
            s.set("model.norm.weight", "data_offsets", json!([b, a]));
        }),
        lower: Fail(2, &["$CKPT/model.safetensors", "model.norm.weight", "reversed"]),
        run: Skip,
        ..Case::default()
    };
    offsets_overlapping: Case {
        corrupt: |d| edit_safetensors(&st(d), |s| {
            let q0 = s.offsets("model.layers.0.self_attn.q_proj.weight");
            s.set("model.layers.1.self_attn.q_proj.weight", "data_offsets", json!(q0));
        }),
        lower: Fail(2, &[
            "$CKPT/model.safetensors",
            "model.layers.0.self_attn.q_proj.weight",
            "model.layers.1.self_attn.q_proj.weight",
            "overlap",
        ]),
        run: Fail(2, &["$CKPT/model.safetensors", "overlap"]),
        ..Case::default()
    };
    offsets_do_not_match_dtype_times_shape: Case {
        corrupt: |d| edit_safetensors(&st(d), |s| s.set("model.norm.weight", "shape", json!([65]))),
        lower: Fail(2, &["$CKPT/model.safetensors", "model.norm.weight", "do not match dtype F32 × shape [65]"]),
        run: Fail(2, &["$CKPT/model.safetensors", "model.norm.weight", "do not match"]),
        ..Case::default()
    };
    data_gap_between_tensors: Case {
        corrupt: |d| edit_safetensors(&st(d), |s| {
            s.header.remove("model.layers.1.mlp.up_proj.weight");
        }),
        lower: Fail(2, &["$CKPT/model.safetensors", "belong to no tensor"]),
        run: Skip,
        ..Case::default()
    };
    entry_missing_shape: Case {
        corrupt: |d| edit_safetensors(&st(d), |s| {
            s.entry("model.norm.weight").remove("shape");
        }),
        lower: Fail(2, &["$CKPT/model.safetensors", "model.norm.weight", "malformed header entry", "shape"]),
        run: Skip,
        ..Case::default()
    };
    shape_product_overflows: Case {
        corrupt: |d| edit_safetensors(&st(d), |s| {
            s.set("model.norm.weight", "shape", json!([u64::MAX, u64::MAX]));
        }),
        lower: Fail(2, &["$CKPT/model.safetensors", "model.norm.weight", "overflows"]),
        run: Skip,
        ..Case::default()
    };
    unsupported_dtype_i8: Case {
        // Same byte length: 64 F32 values = 256 I8 values.
        corrupt: |d| edit_safetensors(&st(d), |s| {
            s.set("model.norm.weight", "dtype", json!("I8"));
            s.set("model.norm.weight", "shape", json!([256]));
        }),
        lower: Fail(2, &["$CKPT/model.safetensors", "model.norm.weight", "unsupported dtype I8"]),
        run: Fail(2, &["$CKPT/model.safetensors", "model.norm.weight", "unsupported dtype I8"]),
        ..Case::default()
    };
    unknown_dtype: Case {
        corrupt: |d| edit_safetensors(&st(d), |s| s.set("model.norm.weight", "dtype", json!("Q4_K"))),
        lower: Fail(2, &["$CKPT/model.safetensors", "model.norm.weight", "unsupported dtype Q4_K"]),
        run: Skip,
        ..Case::default()
    };

    // ---------------------------------------------------------------- tensors vs. config
    missing_tensor: Case {
        corrupt: |d| edit_safetensors(&st(d), |s| s.rename("model.norm.weight", "model.norm.weight_renamed")),
        lower: Fail(2, &["$CKPT", "model.norm.weight", "missing", "final norm"]),
        run: Fail(1, &["model.norm.weight", "not found"]),
        ..Case::default()
    };
    wrong_shape: Case {
        // Same size, transposed: only the shape check can notice.
        corrupt: |d| edit_safetensors(&st(d), |s| {
            s.set("model.layers.2.mlp.gate_proj.weight", "shape", json!([64, 128]));
        }),
        lower: Fail(2, &[
            "$CKPT/model.safetensors",
            "model.layers.2.mlp.gate_proj.weight",
            "[64, 128]",
            "expected [128, 64]",
        ]),
        run: Fail(1, &["model.layers.2.mlp.gate_proj.weight", "[64, 128]", "[128, 64]"]),
        ..Case::default()
    };
    nan_in_f32_weight: Case {
        // `lower` reads no weight values, so it accepts the file; `run` reads them and must
        // refuse, naming the tensor and the file.
        corrupt: |d| edit_safetensors(&st(d), |s| {
            s.poke("model.layers.1.mlp.down_proj.weight", 17, &f32::NAN.to_le_bytes());
        }),
        lower: Succeeds,
        run: Fail(1, &[
            "$CKPT/model.safetensors",
            "model.layers.1.mlp.down_proj.weight",
            "non-finite",
            "1 NaN and 0 Inf",
            "flat index 17",
        ]),
        ..Case::default()
    };
    inf_in_bf16_weight: Case {
        fixture: BF16,
        corrupt: |d| edit_safetensors(&st(d), |s| {
            s.poke("model.embed_tokens.weight", 3, &0x7f80u16.to_le_bytes());
            s.poke("model.embed_tokens.weight", 9, &0xff80u16.to_le_bytes());
        }),
        lower: Succeeds,
        run: Fail(1, &["$CKPT/model.safetensors", "model.embed_tokens.weight", "0 NaN and 2 Inf", "flat index 3"]),
        ..Case::default()
    };
    large_but_finite_weight_is_accepted: Case {
        // Finite values beyond fp16's range are valid fp32 weights; rejecting or warning is
        // the future `opt` precision pass's job (docs/reliability.md).
        corrupt: |d| edit_safetensors(&st(d), |s| {
            s.poke("model.layers.0.mlp.up_proj.weight", 0, &1.0e6f32.to_le_bytes());
        }),
        lower: Succeeds,
        run: Succeeds,
        ..Case::default()
    };

    // ---------------------------------------------------------------- sharded checkpoints
    duplicate_tensor_across_shards: Case {
        fixture: SHARDED,
        corrupt: |d| edit_safetensors(&d.join(SHARD2), |s| {
            s.rename("model.norm.weight", "model.layers.0.input_layernorm.weight")
        }),
        lower: Fail(2, &["model.layers.0.input_layernorm.weight", "two shards", SHARD1, "$CKPT/model-00002"]),
        run: Fail(2, &["model.layers.0.input_layernorm.weight", "two shards"]),
        ..Case::default()
    };
    index_names_missing_shard: Case {
        fixture: SHARDED,
        corrupt: |d| fs::remove_file(d.join(SHARD2)).unwrap(),
        lower: Fail(2, &["$CKPT/model.safetensors.index.json", SHARD2, "does not exist"]),
        run: Fail(2, &["$CKPT/model.safetensors.index.json", SHARD2, "does not exist"]),
        ..Case::default()
    };
    index_not_json: Case {
        fixture: SHARDED,
        corrupt: |d| fs::write(d.join(INDEX), "{\"weight_map\": {").unwrap(),
        lower: Fail(2, &["$CKPT/model.safetensors.index.json", "invalid index"]),
        run: Skip,
        ..Case::default()
    };
    index_without_weight_map: Case {
        fixture: SHARDED,
        corrupt: |d| fs::write(d.join(INDEX), "{\"metadata\": {}}").unwrap(),
        lower: Fail(2, &["$CKPT/model.safetensors.index.json", "weight_map"]),
        run: Skip,
        ..Case::default()
    };
    index_shard_escapes_directory: Case {
        fixture: SHARDED,
        corrupt: |d| {
            let text = fs::read_to_string(d.join(INDEX)).unwrap().replace(SHARD2, "../../etc/passwd");
            fs::write(d.join(INDEX), text).unwrap();
        },
        lower: Fail(2, &["$CKPT/model.safetensors.index.json", "../../etc/passwd", "inside the checkpoint directory"]),
        run: Skip,
        ..Case::default()
    };
    index_maps_tensor_to_wrong_shard: Case {
        fixture: SHARDED,
        corrupt: |d| {
            let mut index: Value = serde_json::from_str(&fs::read_to_string(d.join(INDEX)).unwrap()).unwrap();
            index["weight_map"]["model.norm.weight"] = json!(SHARD1);
            fs::write(d.join(INDEX), index.to_string()).unwrap();
        },
        lower: Fail(2, &["$CKPT/model.safetensors.index.json", "model.norm.weight", SHARD1, "does not contain it"]),
        run: Skip,
        ..Case::default()
    };
    index_is_a_fifo: Case {
        // Found while probing: reading the index from a FIFO blocked forever.
        fixture: SHARDED,
        corrupt: |d| mkfifo(&d.join(INDEX)),
        lower: Fail(2, &["$CKPT/model.safetensors.index.json", "not a regular file"]),
        run: Skip,
        ..Case::default()
    };
    shard_is_a_fifo: Case {
        fixture: SHARDED,
        corrupt: |d| mkfifo(&d.join(SHARD2)),
        lower: Fail(2, &["$CKPT/model-00002-of-00002.safetensors", "not a regular file"]),
        run: Skip,
        ..Case::default()
    };
    truncated_second_shard: Case {
        fixture: SHARDED,
        corrupt: |d| truncate(&d.join(SHARD2), len(&d.join(SHARD2)) / 2),
        lower: Fail(2, &["$CKPT/model-00002-of-00002.safetensors", "out of bounds"]),
        run: Fail(2, &["$CKPT/model-00002-of-00002.safetensors", "out of bounds"]),
        ..Case::default()
    };
    no_weights_at_all: Case {
        corrupt: |d| fs::remove_file(st(d)).unwrap(),
        lower: Fail(2, &["$CKPT", "no checkpoint found", "model.safetensors"]),
        run: Fail(2, &["$CKPT", "no checkpoint found"]),
        ..Case::default()
    };

    // ---------------------------------------------------------------- config.json
    unknown_architecture: Case {
        corrupt: |d| edit_config(d, |c| {
            c.insert("model_type".into(), json!("mamba"));
            c.insert("architectures".into(), json!(["MambaForCausalLM"]));
        }),
        lower: Fail(2, &["$CKPT/config.json", "model_type", "unsupported architecture \"mamba\""]),
        ..Case::default()
    };
    quantization_config: Case {
        corrupt: |d| edit_config(d, |c| {
            c.insert("quantization_config".into(), json!({"quant_method": "awq", "bits": 4}));
        }),
        lower: Fail(2, &["$CKPT/config.json", "quantization_config", "quantized checkpoints are not supported"]),
        ..Case::default()
    };
    config_missing_required_field: Case {
        corrupt: |d| edit_config(d, |c| {
            c.remove("vocab_size");
        }),
        lower: Fail(2, &["$CKPT/config.json", "vocab_size", "required but missing"]),
        ..Case::default()
    };
    config_field_wrong_type: Case {
        corrupt: |d| edit_config(d, |c| {
            c.insert("num_hidden_layers".into(), json!("three"));
        }),
        lower: Fail(2, &["$CKPT/config.json", "num_hidden_layers", "invalid type"]),
        ..Case::default()
    };
    config_field_negative: Case {
        corrupt: |d| edit_config(d, |c| {
            c.insert("hidden_size".into(), json!(-64));
        }),
        lower: Fail(2, &["$CKPT/config.json", "hidden_size"]),
        ..Case::default()
    };
    config_field_fractional: Case {
        corrupt: |d| edit_config(d, |c| {
            c.insert("intermediate_size".into(), json!(127.5));
        }),
        lower: Fail(2, &["$CKPT/config.json", "intermediate_size"]),
        ..Case::default()
    };
    config_field_zero: Case {
        corrupt: |d| edit_config(d, |c| {
            c.insert("num_attention_heads".into(), json!(0));
        }),
        lower: Fail(2, &["$CKPT/config.json", "num_attention_heads", "greater than zero"]),
        ..Case::default()
    };
    config_not_json: Case {
        corrupt: |d| fs::write(d.join("config.json"), "{\"model_type\": \"llama\",").unwrap(),
        lower: Fail(2, &["$CKPT/config.json", "not valid JSON"]),
        ..Case::default()
    };
    config_not_an_object: Case {
        corrupt: |d| fs::write(d.join("config.json"), "[\"llama\"]").unwrap(),
        lower: Fail(2, &["$CKPT/config.json", "must be a JSON object"]),
        ..Case::default()
    };
    config_binary_garbage: Case {
        corrupt: |d| fs::write(d.join("config.json"), [0xff, 0x00, 0x9c, 0x7b]).unwrap(),
        lower: Fail(2, &["$CKPT/config.json"]),
        ..Case::default()
    };
    config_is_a_fifo: Case {
        // Found while probing: reading config.json from a FIFO blocked forever.
        corrupt: |d| mkfifo(&d.join("config.json")),
        lower: Fail(2, &["$CKPT/config.json", "not a regular file"]),
        ..Case::default()
    };
    config_missing: Case {
        corrupt: |d| fs::remove_file(d.join("config.json")).unwrap(),
        lower: Fail(2, &["$CKPT/config.json", "No such file"]),
        ..Case::default()
    };
    hidden_not_divisible_by_heads_without_head_dim: Case {
        corrupt: |d| edit_config(d, |c| {
            c.remove("head_dim");
            c.insert("num_attention_heads".into(), json!(6));
        }),
        lower: Fail(2, &["$CKPT/config.json", "hidden_size", "64 is not divisible by num_attention_heads (6)"]),
        ..Case::default()
    };
    heads_not_divisible_by_kv_heads: Case {
        corrupt: |d| edit_config(d, |c| {
            c.insert("num_key_value_heads".into(), json!(3));
        }),
        lower: Fail(2, &["$CKPT/config.json", "num_attention_heads", "not divisible by num_key_value_heads (3)"]),
        ..Case::default()
    };

    config_heads_times_head_dim_overflows: Case {
        // Found while probing: this overflowed `heads * head_dim` in the lowering (a panic
        // in debug builds, a wrapped size in release).
        corrupt: |d| edit_config(d, |c| {
            for k in ["num_attention_heads", "num_key_value_heads", "head_dim"] {
                c.insert(k.into(), json!(1u64 << 32));
            }
        }),
        lower: Fail(2, &["$CKPT/config.json", "head_dim", "overflows"]),
        ..Case::default()
    };
    config_far_more_layers_than_the_checkpoint_holds: Case {
        // Found while probing: a spec for 10^12 layers was allocated before any tensor was
        // looked up (allocation failure → abort).
        corrupt: |d| edit_config(d, |c| {
            c.insert("num_hidden_layers".into(), json!(1_000_000_000_000u64));
        }),
        lower: Fail(2, &["$CKPT/config.json", "num_hidden_layers", "holds only 30 tensors"]),
        ..Case::default()
    };

    rope_theta_so_small_the_rope_tables_overflow: Case {
        // Found by fuzzing config_json: theta 1e-300 rounds to 0 in f32, the inverse
        // frequencies become Inf and the cos/sin tables silently NaN.
        corrupt: |d| edit_config(d, |c| {
            c.insert("rope_theta".into(), json!(1e-300));
        }),
        lower: Fail(2, &["$CKPT/config.json", "rope_theta", "not finite in f32"]),
        ..Case::default()
    };

    // ---------------------------------------------------------------- options
    context_not_multiple_of_batch: Case {
        sizes: &["--context", "32", "--batch", "12"],
        lower: Fail(2, &["--context 32", "--batch 12", "not a multiple"]),
        ..Case::default()
    };
    context_so_large_the_attention_tensors_overflow: Case {
        // Found while probing: reported as "internal error: lowering produced ill-typed IR".
        sizes: &["--context", "4611686018427387904", "--batch", "4611686018427387904"],
        lower: Fail(2, &["--context 4611686018427387904", "too large"]),
        ..Case::default()
    };
    batch_zero: Case {
        sizes: &["--context", "32", "--batch", "0"],
        lower: Fail(2, &["--batch", "positive"]),
        ..Case::default()
    };
}

#[test]
fn the_pristine_fixtures_pass_the_same_harness() {
    // Guards the harness itself: an untouched copy lowers and runs.
    for f in [TINY, SHARDED, BF16] {
        check(&format!("pristine_{f}"), Case { fixture: f, run: Succeeds, ..Case::default() });
    }
}

// -------------------------------------------------------------------- the output side

/// `lower` of the pristine tiny fixture into `out`, run through `sh -c` with `prelude` first
/// (e.g. a `ulimit`).
fn lower_via_sh(prelude: &str, out: &Path) -> Outcome {
    let script = format!("{prelude}; exec \"$0\" lower \"$1\" -o \"$2\" --context 32 --batch 8");
    std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_anemllc"))
        .arg(fixture(TINY))
        .arg(out)
        .output()
        .unwrap()
        .into()
}

#[test]
fn output_directory_not_writable() {
    let dir = scratch("hostile_inputs", "unwritable");
    let file = dir.join("a_file");
    fs::write(&file, "x").unwrap();
    let cases: [(&Path, &str); 4] = [
        (&file.join("out.air"), "Not a directory"),
        (&dir.join("no/such/dir/out.air"), "No such file or directory"),
        (Path::new("/proc/anemllc-hostile.air"), "cannot write"),
        (&dir, "Is a directory"),
    ];
    for (out, why) in cases {
        let o = lower(&fixture(TINY), out, SIZES);
        println!("[unwritable {}] exit {:?}: {}", out.display(), o.code, o.stderr.trim_end());
        let problems = failure_problems(&o, 1, &[out.display().to_string(), "cannot write".into(), why.into()]);
        assert!(problems.is_empty(), "-o {}: {problems:?}", out.display());
    }
    assert_eq!(listing(&dir), ["a_file"], "nothing may be left behind");
    assert_eq!(fs::read(&file).unwrap(), b"x");
}

#[test]
fn output_over_file_size_limit() {
    // `ulimit -f 1`: writes past one block raise SIGXFSZ; write_atomic ignores the signal so
    // the write fails with EFBIG, the temporary file is removed and the error reported.
    let dir = scratch("hostile_inputs", "ulimit");
    let out = dir.join("model.air");
    let o = lower_via_sh("ulimit -f 1", &out);
    println!("[ulimit -f 1] exit {:?}: {}", o.code, o.stderr.trim_end());
    let problems =
        failure_problems(&o, 1, &[out.display().to_string(), "cannot write".into(), "File too large".into()]);
    assert!(problems.is_empty(), "{problems:?}");
    assert!(listing(&dir).is_empty(), "left behind: {:?}", listing(&dir));
}

/// Unmounts on drop, so a failing assertion does not leave a mount behind.
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn output_disk_full() {
    // A 16 KiB tmpfs cannot hold the ~37 KB module. Needs root and mount(2); where that is
    // refused (containers without CAP_SYS_ADMIN) the test says so and checks nothing.
    let dir = scratch("hostile_inputs", "disk_full");
    let mnt = dir.join("mnt");
    fs::create_dir_all(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16k", "tmpfs"])
        .arg(&mnt)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        println!("[disk full] SKIPPED: cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN)");
        return;
    }
    let _guard = Mount(mnt.clone());
    let out = mnt.join("model.air");
    let o = lower(&fixture(TINY), &out, SIZES);
    println!("[disk full] exit {:?}: {}", o.code, o.stderr.trim_end());
    let problems =
        failure_problems(&o, 1, &[out.display().to_string(), "cannot write".into(), "No space left on device".into()]);
    assert!(problems.is_empty(), "{problems:?}");
    assert!(listing(&mnt).is_empty(), "left behind on the full disk: {:?}", listing(&mnt));
}

/// `anemllc lower` of the tiny fixture into `out`, stderr piped, with `$ANEMLLC_TEST_PAUSE`
/// set to `pause_at` if given (see `anemllc::util::test_pause`).
///
/// SIGINT and SIGTERM get their default action back in the child before exec, whatever this
/// process inherited: a shell starts background jobs (`cargo test &`) with SIGINT ignored,
/// an ignored disposition survives fork and exec, and the kills would then never land.
fn killable_lower(out: &Path, pause_at: Option<&str>) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    let mut cmd = anemllc();
    cmd.arg("lower").arg(fixture(TINY)).arg("-o").arg(out).args(SIZES).stderr(Stdio::piped());
    match pause_at {
        Some(point) => cmd.env(anemllc::util::TEST_PAUSE_ENV, point),
        None => cmd.env_remove(anemllc::util::TEST_PAUSE_ENV),
    };
    // SAFETY: the closure runs in the forked child before exec and only calls `signal`,
    // which is async-signal-safe; it allocates nothing and touches no shared state.
    unsafe {
        cmd.pre_exec(|| {
            for sig in [libc::SIGINT, libc::SIGTERM] {
                if libc::signal(sig, libc::SIG_DFL) == libc::SIG_ERR {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    cmd.spawn().unwrap()
}

/// Reads the child's stderr until `anemllc: paused at {point}`; panics with what it printed
/// if it ends without pausing.
fn wait_for_pause(child: &mut std::process::Child, point: &str) {
    use std::io::BufRead;
    let marker = format!("anemllc: paused at {point}");
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            let status = child.wait().unwrap();
            panic!("`lower` never paused at {point} ({status}); stderr:\n{seen}");
        }
        if line.starts_with(&marker) {
            return;
        }
        seen += &line;
    }
}

/// Sends `signal` to the child and waits for it to end (at most [`HANG_LIMIT`]: a signal
/// that does not land is reported, not waited for forever).
fn kill_and_wait(child: &mut std::process::Child, signal: libc::c_int, name: &str) -> std::process::ExitStatus {
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: `kill` only sends a signal to our own child, which is not reaped yet (so its pid
    // cannot have been reused).
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill -{name}: {}", std::io::Error::last_os_error());
    let deadline = Instant::now() + HANG_LIMIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("SIG{name} did not end `lower` within {HANG_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Kills `lower` with `signal` at two moments, neither chosen by a clock: halfway through
/// writing the output (held there by `ANEMLLC_TEST_PAUSE=write_atomic`), and right after it
/// starts (wherever it got to). Whatever the moment, the final name holds either nothing or
/// the complete output; anything else left is a hidden temporary file.
fn interrupted(signal: libc::c_int, name: &str) {
    use std::os::unix::process::ExitStatusExt;
    let dir = scratch("hostile_inputs", &format!("interrupted_{name}"));
    let reference = dir.join("reference.air");
    let o = lower(&fixture(TINY), &reference, SIZES);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    let complete = fs::read(&reference).unwrap();
    let out_dir = dir.join("out");
    let out = out_dir.join("model.air");

    // Mid-write: the temporary file holds the first half, the final name does not exist.
    fs::create_dir_all(&out_dir).unwrap();
    let mut child = killable_lower(&out, Some("write_atomic"));
    wait_for_pause(&mut child, "write_atomic");
    let status = kill_and_wait(&mut child, signal, name);
    assert_eq!(status.signal(), Some(signal), "SIG{name} mid-write: {status}");
    let tmp = format!(".model.air.tmp-{}", child.id());
    assert_eq!(listing(&out_dir), std::slice::from_ref(&tmp), "SIG{name} mid-write");
    assert_eq!(fs::read(out_dir.join(&tmp)).unwrap(), complete[..complete.len() / 2], "SIG{name} mid-write");
    println!("[interrupted {name}] mid-write: {tmp} left with {} of {} bytes", complete.len() / 2, complete.len());

    // Right after the start: either killed (nothing under the final name) or already done.
    fs::remove_dir_all(&out_dir).unwrap();
    fs::create_dir_all(&out_dir).unwrap();
    let mut child = killable_lower(&out, None);
    let status = kill_and_wait(&mut child, signal, name);
    if out.exists() {
        assert!(status.success(), "SIG{name} at start: {status} after writing the output");
        assert_eq!(fs::read(&out).unwrap(), complete, "SIG{name} at start: a partial file under the final name");
    } else {
        assert_eq!(status.signal(), Some(signal), "SIG{name} at start: {status} without output");
    }
    for f in listing(&out_dir) {
        assert!(f == "model.air" || f.starts_with(".model.air.tmp-"), "SIG{name} at start: left {f}");
    }
    println!("[interrupted {name}] at start: {status}");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn interrupted_by_sigkill() {
    interrupted(libc::SIGKILL, "KILL");
}

#[test]
fn interrupted_by_sigint() {
    interrupted(libc::SIGINT, "INT");
}

#[test]
fn a_slow_reader_of_the_output_never_sees_a_partial_file() {
    // While `lower` runs, poll the final name: it must never exist with partial contents.
    let dir = scratch("hostile_inputs", "poll");
    let out = dir.join("model.air");
    let mut child = anemllc()
        .arg("lower")
        .arg(fixture(TINY))
        .arg("-o")
        .arg(&out)
        .args(SIZES)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        if let Ok(bytes) = fs::read(&out) {
            seen.push(bytes.len());
        }
    }
    assert!(child.wait().unwrap().success());
    let final_len = fs::read(&out).unwrap().len();
    assert!(seen.iter().all(|&n| n == final_len), "saw partial sizes {seen:?} (final {final_len})");
}
