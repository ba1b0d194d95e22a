//! GGUF input under hostile conditions.
//!
//! 1. The `gguf` fuzz target's body, [`anemllc::gguf::fuzz_check`] (every reader a GGUF file
//!    meets, with their properties asserted), over the seed corpus (fuzz/corpus/gguf/) and a
//!    few hundred deterministic mutations of the seeds: cuts at every header field, byte
//!    flips, huge values over every count, length and dimension.
//! 2. The CLI: a tiny llama GGUF (llama_tiny's shapes, F16 and Q8_0 matrices, a BPE
//!    tokenizer) converts, lowers and runs; each corrupted variant makes `convert`, `lower`
//!    and `run FILE.gguf --tokens 1,2` exit 2 with one line on stderr naming the file and
//!    the problem, no panic, and nothing written. Run with `-- --nocapture` to see them.

mod gguf_support;
mod hostile_support;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anemllc::gguf::{Value, fuzz_check};
use gguf_support::layout::{Layout, get, put};
use gguf_support::seeds::{corpus_dir, seeds};
use gguf_support::tiny::{LLAMA_TINY, Matrices, TinyGguf};
use hostile_support::*;

// ------------------------------------------------------------------ the fuzz target's body

/// The seeds that carry a whole valid model with a tokenizer (the first two of [`seeds`]).
fn model_seeds() -> Vec<(String, Vec<u8>)> {
    seeds().into_iter().take(2).collect()
}

#[test]
fn every_seed_passes_and_the_valid_ones_reach_every_reader() {
    let dir = scratch("gguf_hostile", "seeds");
    for (name, bytes) in seeds() {
        let r = fuzz_check(&bytes, &dir);
        println!("{name}: {r:?}");
        if name.starts_with("tiny_llama") {
            assert!(r.opened && r.checkpoint && r.config && r.files && r.lowered, "{name}: {r:?}");
            assert_eq!(r.tensors, 12, "{name}");
            assert_eq!(r.tokenizer, !name.contains("no_tokenizer"), "{name}");
        } else if name.starts_with("type_") {
            assert!(r.opened && r.checkpoint && r.config && r.tensors == 1, "{name}: {r:?}");
        } else if name.starts_with("regress_") {
            assert!(!r.config, "{name}: {r:?}");
        } else {
            assert!(r.opened, "{name}: {r:?}");
        }
    }
}

/// The committed corpus is what [`seeds`] makes (regenerate it with
/// `cargo test --test gguf_hostile -- --ignored write_corpus`).
#[test]
fn the_committed_corpus_is_current() {
    for (name, bytes) in seeds() {
        let committed = fs::read(corpus_dir().join(&name)).unwrap_or_default();
        assert!(committed == bytes, "fuzz/corpus/gguf/{name} is stale or missing (see write_corpus)");
    }
}

#[test]
#[ignore]
fn write_corpus() {
    fs::create_dir_all(corpus_dir()).unwrap();
    for (name, bytes) in seeds() {
        fs::write(corpus_dir().join(name), bytes).unwrap();
    }
}

/// Cuts at the start and the middle of every header field and of every tensor's data.
#[test]
fn truncations_at_every_field_boundary() {
    let dir = scratch("gguf_hostile", "truncations");
    let mut runs = 0;
    for (name, bytes) in model_seeds() {
        let layout = Layout::of(&bytes);
        let header_end = layout.fields.last().map(|f| f.at + f.len).unwrap();
        let mut cuts: Vec<usize> = layout.fields.iter().flat_map(|f| [f.at, f.at + f.len / 2]).collect();
        for f in layout.fields.iter().filter(|f| f.name.ends_with(".offset")) {
            let start = layout.data_start + get(&bytes, f) as usize;
            cuts.extend([start, start + 1, start + 17]);
        }
        cuts.sort_unstable();
        cuts.dedup();
        for cut in cuts.into_iter().filter(|&c| c < bytes.len()) {
            let r = fuzz_check(&bytes[..cut], &dir);
            assert!(cut >= header_end || !r.opened, "{name} cut at {cut} opened");
            runs += 1;
        }
    }
    println!("{runs} truncations");
    assert!(runs > 300);
}

/// 64-bit LCG, for reproducible positions.
fn lcg(state: &mut u64) -> u64 {
    *state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    *state >> 17
}

#[test]
fn byte_flips() {
    let dir = scratch("gguf_hostile", "flips");
    let mut state = 7;
    for (_, bytes) in model_seeds() {
        let header_end = Layout::of(&bytes).data_start;
        for k in 0..200 {
            // Two flips in three land in the header, where the structure is.
            let span = if k % 3 == 2 { bytes.len() } else { header_end };
            let at = lcg(&mut state) as usize % span;
            let mut b = bytes.clone();
            b[at] ^= [0x01, 0x80, 0xff, 0x10][k % 4];
            fuzz_check(&b, &dir);
        }
    }
}

/// Every count, length and dimension set to values no file can back, every u32 type or
/// dimension count to values out of range: each must be refused before anything is
/// allocated for it (an allocation of 2^60 items would abort the test).
#[test]
fn huge_counts_over_every_count_field() {
    let dir = scratch("gguf_hostile", "counts");
    let mut runs = 0;
    for (name, bytes) in model_seeds() {
        let layout = Layout::of(&bytes);
        // Counts of the token strings are many and alike: a sample of them is enough.
        let fields =
            layout.fields.iter().filter(|f| !f.name.contains("value[") || f.name.contains("value[1")).filter(|f| {
                f.is_count || f.name.ends_with("n_dims") || f.name.ends_with(".type") || f.name.ends_with("elem_type")
            });
        for f in fields {
            let values: &[u64] = if f.is_count {
                &[1 << 60, u64::MAX, 1 << 63, 1 << 32, bytes.len() as u64]
            } else {
                &[0, 9, 13, 16, 99, u32::MAX as u64]
            };
            for &v in values {
                let mut b = bytes.clone();
                put(&mut b, f, v);
                let r = fuzz_check(&b, &dir);
                assert!(!(f.is_count && v >= 1 << 32 && r.opened), "{name}: {} = {v} opened", f.name);
                runs += 1;
            }
        }
    }
    println!("{runs} count mutations");
    assert!(runs > 300);
}

#[test]
fn regressions_fail_cleanly() {
    use gguf_support::seeds::*;
    let dir = scratch("gguf_hostile", "regressions");
    let path = dir.join("model.gguf");
    let open_err = |bytes: Vec<u8>| {
        fs::write(&path, bytes).unwrap();
        anemllc::gguf::GgufFile::open(&path).unwrap_err().to_string()
    };
    let config_err = |bytes: Vec<u8>| {
        fs::write(&path, bytes).unwrap();
        anemllc::frontend::config::ModelConfig::from_model_path(&path).unwrap_err().to_string()
    };
    assert!(open_err(regress_empty_dim()).contains("dimensions [0, 4] include an empty one"));
    fs::write(&path, regress_heads_overflow()).unwrap();
    let err = anemllc::checkpoint::Checkpoint::open(&path).unwrap_err().to_string();
    assert!(err.contains("cannot be split into 9223372036854775808 heads"), "{err}");
    let err = config_err(regress_nan_freq_base());
    assert!(err.contains("\"llama.rope.freq_base\" = NaN is not a finite number"), "{err}");
}

// ------------------------------------------------------------------ the CLI

/// The valid tiny llama (llama_tiny's shapes, mixed F16/Q8_0, with a tokenizer).
fn pristine() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| TinyGguf::new(LLAMA_TINY, Matrices::Mixed, true).to_bytes())
}

/// The pristine file with its bytes edited by `f` (given the header layout).
fn edited(f: impl FnOnce(&mut Vec<u8>, &Layout)) -> Vec<u8> {
    let mut b = pristine().to_vec();
    let layout = Layout::of(&b);
    f(&mut b, &layout);
    b
}

/// The pristine model with its metadata edited by `f`.
fn with_meta(f: impl FnOnce(&mut TinyGguf)) -> Vec<u8> {
    let mut t = TinyGguf::new(LLAMA_TINY, Matrices::Mixed, true);
    f(&mut t);
    t.to_bytes()
}

/// Writes `bytes` as `scratch/model.gguf` in a fresh scratch directory of its own.
fn gguf_case(name: &str, bytes: &[u8]) -> (PathBuf, PathBuf) {
    let dir = scratch("gguf_hostile", name);
    let gguf = dir.join("model.gguf");
    fs::write(&gguf, bytes).unwrap();
    (dir, gguf)
}

fn convert(gguf: &Path, out: &Path) -> Outcome {
    output_or_hang(anemllc().arg("convert").arg(gguf).arg("-o").arg(out).args(SIZES))
}

fn run(target: &Path, args: &[&str]) -> Outcome {
    output_or_hang(anemllc().arg("run").arg(target).args(args).args(SIZES))
}

/// `convert`, `lower` and `run --tokens 1,2` of `bytes` each exit 2 with one line naming
/// the file and every `wants` (looked for in the rest of the line, so the scratch path
/// cannot supply them), and leave nothing beside the file.
fn refused(name: &str, bytes: &[u8], wants: &[&str]) {
    let (dir, gguf) = gguf_case(name, bytes);
    let path = gguf.display().to_string();
    let wants: Vec<String> = wants.iter().map(|s| s.to_string()).collect();
    let outcomes = [
        ("convert", convert(&gguf, &dir.join("out"))),
        ("lower", lower(&gguf, &dir.join("x.air"), SIZES)),
        ("run", run(&gguf, &["--tokens", "1,2"])),
    ];
    let mut problems = Vec::new();
    for (command, o) in outcomes {
        println!("[{name}] {command}: exit {:?}: {}", o.code, o.stderr.trim_end());
        if !o.stderr.contains(&format!("error: {path}: ")) {
            problems.push(format!("{command}: stderr does not start with the file name"));
        }
        let o = Outcome { stderr: o.stderr.replace(&path, "$GGUF"), ..o };
        problems.extend(failure_problems(&o, 2, &wants).into_iter().map(|p| format!("{command}: {p}")));
    }
    if listing(&dir) != ["model.gguf"] {
        problems.push(format!("files left behind: {:?}", listing(&dir)));
    }
    assert!(problems.is_empty(), "{name}:\n  {}", problems.join("\n  "));
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn the_tiny_llama_converts_lowers_and_runs() {
    let (dir, gguf) = gguf_case("valid", pristine());
    let out = dir.join("out");
    let o = convert(&gguf, &out);
    assert_eq!(o.code, Some(0), "convert: {}", o.stderr);
    for file in ["meta.yaml", "tokenizer.json", "tokenizer_config.json", "generation_config.json"] {
        assert!(out.join(file).is_file(), "{file} missing: {:?}", listing(&out));
    }
    let o = output_or_hang(anemllc().arg("run").arg(&out).args(["--tokens", "1,2,3", "--decode", "2"]));
    assert_eq!(o.code, Some(0), "run OUT: {}", o.stderr);
    assert_eq!(o.stdout.trim().split(',').count(), 2, "two generated ids: {:?}", o.stdout);
    let o = lower(&gguf, &dir.join("x.air"), SIZES);
    assert_eq!(o.code, Some(0), "lower: {}", o.stderr);
    let o = run(&gguf, &["--tokens", "1,2", "--decode", "2"]);
    assert_eq!(o.code, Some(0), "run GGUF: {}", o.stderr);
    let o = run(&gguf, &["--prompt", "the hello", "--max-tokens", "3"]);
    assert_eq!(o.code, Some(0), "run --prompt: {}", o.stderr);
}

/// A GGUF without tokenizer metadata is like a HuggingFace folder without tokenizer files:
/// it converts (no tokenizer files written), lowers and runs on token ids; `--prompt` says
/// the tokenizer is missing (for the GGUF itself: that it carries no tokenizer metadata).
#[test]
fn without_tokenizer_metadata_everything_but_prompts_works() {
    let (dir, gguf) = gguf_case(
        "no_tokenizer",
        &with_meta(|t| {
            t.remove("tokenizer.");
        }),
    );
    let out = dir.join("out");
    let o = convert(&gguf, &out);
    assert_eq!(o.code, Some(0), "convert: {}", o.stderr);
    assert!(out.join("meta.yaml").is_file() && !out.join("tokenizer.json").exists(), "{:?}", listing(&out));
    assert_eq!(lower(&gguf, &dir.join("x.air"), SIZES).code, Some(0));
    assert_eq!(run(&gguf, &["--tokens", "1,2"]).code, Some(0));
    for target in [&gguf, &out] {
        let o = run(target, &["--prompt", "hello"]);
        println!("[no_tokenizer] run {} --prompt: {}", target.display(), o.stderr.trim_end());
        let mut wants = vec![target.display().to_string(), "tokenize the prompt".to_string()];
        if *target == gguf {
            wants.push("no tokenizer metadata".into());
        }
        let problems = failure_problems(&o, 2, &wants);
        assert!(problems.is_empty(), "run {} --prompt: {problems:?}", target.display());
    }
}

/// A NaN fp16 scale in a Q8_0 block does what a NaN weight in safetensors does
/// (tests/hostile_inputs.rs, `nan_in_f32_weight`): `lower` reads no values and accepts the
/// file; `run` and `convert` fail when they read the weight (exit 1: bad values found while
/// doing the work), naming the file and the tensor, and write nothing.
#[test]
fn a_nan_scale_in_a_q8_0_block_is_refused_when_read() {
    let bytes = edited(|b, l| {
        let at = l.data_of(b, "blk.1.ffn_down.weight") + 34 * 5;
        b[at..at + 2].copy_from_slice(&0x7e00u16.to_le_bytes());
    });
    let (dir, gguf) = gguf_case("nan_scale", &bytes);
    assert_eq!(lower(&gguf, &dir.join("x.air"), SIZES).code, Some(0));
    fs::remove_file(dir.join("x.air")).unwrap();
    // Block 5 is elements 32..64 of row 1 (rows of 128 elements: 4 blocks).
    let wants = [
        gguf.display().to_string(),
        "model.layers.1.mlp.down_proj.weight".into(),
        "32 NaN and 0 Inf (first at flat index 160)".into(),
    ];
    let o = run(&gguf, &["--tokens", "1,2", "--decode", "2"]);
    println!("[nan_scale] run: exit {:?}: {}", o.code, o.stderr.trim_end());
    assert!(failure_problems(&o, 1, &wants).is_empty(), "run: {o:?}");
    let o = convert(&gguf, &dir.join("out"));
    println!("[nan_scale] convert: exit {:?}: {}", o.code, o.stderr.trim_end());
    // `convert` reports its finished stages ("lower done in …") before the error line.
    let errors: Vec<&str> = o.stderr.lines().filter(|l| !l.trim_start().contains(" done in ")).collect();
    assert_eq!(errors.len(), 1, "convert: {}", o.stderr);
    let stripped = Outcome { code: o.code, stdout: String::new(), stderr: errors[0].to_string() };
    assert!(failure_problems(&stripped, 1, &wants).is_empty(), "convert: {o:?}");
    assert_eq!(listing(&dir), ["model.gguf"]);
}

/// One `#[test]` per corrupted variant: `name: bytes, [wanted substrings];`.
macro_rules! refused_cases {
    ($($name:ident: $bytes:expr, $wants:expr;)*) => {
        $(
            #[test]
            fn $name() {
                refused(stringify!($name), &$bytes, &$wants);
            }
        )*
    };
}

/// Sets integer field `field` of the pristine file to `value`.
fn set(field: &str, value: u64) -> Vec<u8> {
    edited(|b, l| put(b, l.field(field), value))
}

fn cut_at(field: &str, extra: usize) -> Vec<u8> {
    edited(|b, l| b.truncate(l.field(field).at + extra))
}

refused_cases! {
    truncated_inside_the_header: pristine()[..20], ["truncated", "24-byte GGUF header"];
    truncated_inside_the_metadata: cut_at("kv[tokenizer.ggml.tokens].value[100]", 3),
        ["element count of \"tokenizer.ggml.tokens\" 512", "truncated or corrupt"];
    truncated_inside_a_metadata_value: cut_at("kv[llama.rope.freq_base].value", 2),
        ["tensor count 30 at byte 8 cannot fit in the 400 bytes", "truncated or corrupt"];
    truncated_inside_the_tensor_infos: cut_at("tensor[blk.1.attn_q.weight].dim1", 4), ["truncated", "blk.1.attn_q.weight"];
    truncated_inside_the_tensor_data: edited(|b, l| {
        let start = l.data_of(b, "blk.2.ffn_up.weight");
        b.truncate(start + 100);
    }),
        ["blk.2.ffn_up.weight", "run past", "truncated"];
    truncated_after_the_tensor_infos: edited(|b, l| b.truncate(l.data_start - 3)), ["truncated", "data section starts"];
    bad_magic: edited(|b, _| b[..4].copy_from_slice(b"GGUX")), ["not a GGUF file"];
    version_1: set("version", 1), ["GGUF version 1 is not supported"];
    version_4: set("version", 4), ["unsupported GGUF version 4"];
    big_endian: set("version", 3 << 24), ["big-endian GGUF (version 3)"];
    tensor_data_out_of_bounds: set("tensor[output.weight].offset", 1 << 40), ["output.weight", "run past"];
    overlapping_tensors: edited(|b, l| {
        let q = get(b, l.field("tensor[blk.1.attn_q.weight].offset"));
        put(b, l.field("tensor[blk.1.attn_k.weight].offset"), q);
    }), ["blk.1.attn_q.weight", "blk.1.attn_k.weight", "overlap"];
    unknown_type_id: set("tensor[blk.0.ffn_up.weight].type", 99), ["blk.0.ffn_up.weight", "unknown ggml type id 99"];
    unsupported_type_iq2_xxs: set("tensor[blk.0.ffn_up.weight].type", 16), ["blk.0.ffn_up.weight", "IQ2_XXS is not supported"];
    unsupported_architecture: with_meta(|t| {
        t.set("general.architecture", Value::String("mamba".into()));
    }),
        ["general.architecture", "\"mamba\" is not supported"];
    block_count_is_a_string: with_meta(|t| {
        t.set("llama.block_count", Value::String("three".into()));
    }),
        ["llama.block_count", "should be an unsigned integer", "\"three\""];
    tensor_count_2_pow_60: set("tensor_count", 1 << 60), ["tensor count 1152921504606846976", "cannot fit in"];
    metadata_count_2_pow_60: set("kv_count", 1 << 60), ["metadata count 1152921504606846976", "cannot fit in"];
    array_length_2_pow_60: set("kv[tokenizer.ggml.tokens].value.count", 1 << 60),
        ["element count of \"tokenizer.ggml.tokens\" 1152921504606846976", "cannot fit in"];
    string_length_2_pow_60: set("kv[general.architecture].value.len", 1 << 60),
        ["general.architecture", "length 1152921504606846976 exceeds"];
    n_dims_0: set("tensor[blk.0.attn_v.weight].n_dims", 0), ["blk.0.attn_v.weight", "0 dimensions"];
    n_dims_9: set("tensor[blk.0.attn_v.weight].n_dims", 9), ["blk.0.attn_v.weight", "9 dimensions"];
    dimension_product_overflows: edited(|b, l| {
        put(b, l.field("tensor[blk.0.attn_q.weight].dim0"), 1 << 32);
        put(b, l.field("tensor[blk.0.attn_q.weight].dim1"), 1 << 32);
    }), ["blk.0.attn_q.weight", "overflow"];
    empty_dimension: set("tensor[blk.0.attn_q.weight].dim1", 0), ["blk.0.attn_q.weight", "empty"];
    row_not_a_whole_number_of_blocks: set("tensor[blk.1.attn_q.weight].dim0", 48),
        ["blk.1.attn_q.weight", "row length 48 is not a multiple of Q8_0's block of 32"];
    token_id_out_of_range: with_meta(|t| {
        t.set("tokenizer.ggml.eos_token_id", Value::U32(100_000));
    }),
        ["tokenizer.ggml.eos_token_id", "100000 is not a token id"];
    merge_of_unknown_tokens: with_meta(|t| {
        t.set("tokenizer.ggml.merges", Value::Array(vec![Value::String("q zz".into())]));
    }),
        ["tokenizer.ggml.merges", "not in the vocabulary"];
    unsupported_tokenizer_model: with_meta(|t| {
        t.set("tokenizer.ggml.model", Value::String("bert".into()));
    }),
        ["tokenizer.ggml.model = \"bert\"", "can be rebuilt"];
    spm_tokenizer_without_scores: with_meta(|t| {
        t.set("tokenizer.ggml.model", Value::String("llama".into()));
    }),
        ["tokenizer.ggml.scores is missing"];
    head_count_zero: with_meta(|t| {
        t.set("llama.attention.head_count", Value::U32(0));
    }),
        ["num_attention_heads"];
    non_finite_rms_epsilon: with_meta(|t| {
        t.set("llama.attention.layer_norm_rms_epsilon", Value::F32(f32::INFINITY));
    }),
        ["layer_norm_rms_epsilon", "not a finite number"];
    duplicate_metadata_key: with_meta(|t| t.meta.push(("llama.block_count".into(), Value::U32(3)))),
        ["\"llama.block_count\" occurs twice"];
    tensor_declared_twice: with_meta(|t| {
        let dup = t.tensors[1].clone();
        t.tensors.push(dup);
    }), ["declared twice"];
    misaligned_offset: edited(|b, l| {
        let f = l.field("tensor[output.weight].offset");
        let v = get(b, f);
        put(b, f, v + 4);
    }), ["output.weight", "not a multiple of the alignment 32"];
}

#[test]
fn unsupported_types_are_named() {
    // Each defined-but-unsupported id has its ggml name in the message.
    for (id, name) in [(16u64, "IQ2_XXS"), (23, "IQ4_XS"), (26, "I32"), (39, "MXFP4")] {
        let (_, gguf) = gguf_case(&format!("type_{id}"), &set("tensor[output.weight].type", id));
        let err = anemllc::gguf::GgufFile::open(&gguf).unwrap_err().to_string();
        assert!(err.contains(&format!("ggml type {name} is not supported")), "{err}");
    }
}
