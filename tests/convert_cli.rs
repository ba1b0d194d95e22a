//! `anemllc convert` → `anemllc run` at the command line, as a user runs them: the output
//! folder satisfies the contract, its packages reproduce transformers (logits within the
//! `opt` bound, 16 greedy tokens identical, the chat answer's text identical), LUT6 output
//! passes coremltools (ignored without its venv, see `build.rs`), bad input gets exit 2 and no output, and `compile` explains itself
//! off macOS.

mod mil_common;
mod reference_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mil_common::coreml_check;
use reference_support::{fixture_dir, reference, rel_err};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_anemllc"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("convert_cli").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "exit {:?}\n{}", o.status.code(), text(&o.stderr));
    o
}

/// `convert FIXTURE -o OUT --context 32 --batch 8 EXTRA…`.
fn convert(fixture: &str, out: &Path, extra: &[&str]) -> Output {
    bin()
        .arg("convert")
        .arg(fixture_dir(fixture))
        .arg("-o")
        .arg(out)
        .args(["--context", "32", "--batch", "8"])
        .args(extra)
        .output()
        .unwrap()
}

fn csv(ids: &[u32]) -> String {
    ids.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(",")
}

#[test]
fn fp16_conversion_reproduces_transformers_through_the_cli() {
    let dir = scratch("fp16");
    let out = dir.join("tiny");
    let o = ok(convert("llama_tiny", &out, &["--lut-ffn", "none", "--lut-lmhead", "none", "--chunks", "2"]));
    let err = text(&o.stderr);
    for want in ["llama_FFN_PF_chunk_02of02.mlpackage", "converted in", "anemllc run"] {
        assert!(err.contains(want), "{want} missing from:\n{err}");
    }
    let r = reference("llama_tiny");

    // Teacher-forced logits of every position through the packages.
    let npy = dir.join("logits.npy");
    ok(bin().arg("run").arg(&out).args(["--tokens", &csv(&r.prompt), "--logits"]).arg(&npy).output().unwrap());
    let logits: ndarray::Array2<f32> = ndarray_npy::read_npy(&npy).unwrap();
    assert_eq!(logits.nrows(), r.prompt.len());
    let worst = (0..logits.nrows())
        .map(|p| rel_err(logits.row(p).as_slice().unwrap(), r.logits.row(p).as_slice().unwrap()))
        .fold(0.0, f64::max);
    eprintln!("llama_tiny via `convert` + `run --logits`: worst rel err {worst:.2e}");
    assert!(worst <= 3e-3, "{worst:.2e}");

    // 16 greedy tokens.
    let o = ok(bin().arg("run").arg(&out).args(["--tokens", &csv(&r.prompt), "--decode", "16"]).output().unwrap());
    assert_eq!(text(&o.stdout).trim(), csv(&r.generated));

    // The chat prompt, tokenized with the copied tokenizer and templated: transformers' text.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture_dir("llama_tiny").join("reference.json")).unwrap())
            .unwrap();
    let user = json["prompt_messages"][0]["content"].as_str().unwrap();
    let o = ok(bin().arg("run").arg(&out).args(["--prompt", user, "--max-tokens", "16"]).output().unwrap());
    let tok = anemllc::chat::ChatTokenizer::load(&out, &[2]).unwrap();
    assert_eq!(text(&o.stdout).strip_suffix('\n').unwrap(), tok.decode(&r.generated).unwrap());
}

/// `convert qwen3_headdim --prefix q3` (LUT6 by default) into `scratch(name)/tiny`: returns
/// the scratch folder, the output folder and its three packages (checked to exist).
fn convert_lut6(name: &str) -> (PathBuf, PathBuf, Vec<PathBuf>) {
    let dir = scratch(name);
    let out = dir.join("tiny");
    ok(convert("qwen3_headdim", &out, &["--prefix", "q3"]));
    let pkgs: Vec<PathBuf> = ["q3_embeddings", "q3_FFN_PF_lut6_chunk_01of01", "q3_lm_head_lut6"]
        .iter()
        .map(|n| out.join(format!("{n}.mlpackage")))
        .collect();
    assert!(pkgs.iter().all(|p| p.is_dir()), "{:?}", std::fs::read_dir(&out).unwrap().collect::<Vec<_>>());
    (dir, out, pkgs)
}

#[test]
fn lut6_conversion_is_named_recorded_and_predicts_the_reference() {
    let (dir, out, _) = convert_lut6("lut6");
    let meta = std::fs::read_to_string(out.join("meta.yaml")).unwrap();
    for line in [
        "    lut_embeddings: none\n",
        "    lut_ffn: 6\n",
        "    lut_lmhead: 6\n",
        "    model_prefix: q3\n",
        "    embeddings: q3_embeddings.mlpackage\n",
        "    lm_head: q3_lm_head_lut6.mlpackage\n",
        // ANEMLL 0.3.6: the first chunk's file name.
        "    ffn: q3_FFN_PF_lut6_chunk_01of01.mlpackage\n",
        "  architecture: qwen3\n",
    ] {
        assert!(meta.contains(line), "meta.yaml lacks {line:?}:\n{meta}");
    }

    // The palettized packages still predict the reference's tokens at most positions.
    let r = reference("qwen3_headdim");
    let npy = dir.join("logits.npy");
    ok(bin().arg("run").arg(&out).args(["--tokens", &csv(&r.tokens), "--logits"]).arg(&npy).output().unwrap());
    let logits: ndarray::Array2<f32> = ndarray_npy::read_npy(&npy).unwrap();
    let argmax = |row: &[f32]| row.iter().enumerate().fold(0, |b, (i, v)| if *v > row[b] { i } else { b });
    let agree = (0..logits.nrows())
        .filter(|&p| argmax(logits.row(p).as_slice().unwrap()) == argmax(r.logits.row(p).as_slice().unwrap()))
        .count();
    eprintln!("qwen3_headdim LUT6 via packages: argmax agreement {agree}/{}", logits.nrows());
    assert!(agree * 4 >= logits.nrows() * 3, "{agree}/{}", logits.nrows());
}

#[test]
#[cfg_attr(not(coreml_venv), ignore = "needs the coremltools venv: bash tests/coreml/setup_venv.sh")]
fn lut6_conversion_is_accepted_by_coremltools() {
    let (_, _, pkgs) = convert_lut6("lut6_coremltools");
    let report = coreml_check(&pkgs, &["--strict-states"]);
    for p in report["packages"].as_array().unwrap() {
        assert_eq!(p["ok"], true, "{}: {}", p["package"], p["errors"]);
    }
}

#[test]
fn bad_conversions_fail_cleanly_without_output() {
    let dir = scratch("bad");
    let missing = dir.join("no_such_model");
    let cases: Vec<(Vec<String>, &str, String)> = vec![
        (vec![missing.display().to_string()], "missing", "no_such_model".to_string()),
        (vec![fixture_dir("llama_tiny").display().to_string(), "--lut-ffn".into(), "5".into()], "bits", "ffn".into()),
        (
            vec![fixture_dir("llama_tiny").display().to_string(), "--lut-group-size".into(), "0".into()],
            "group",
            "--lut-group-size".into(),
        ),
        (
            vec![fixture_dir("llama_tiny").display().to_string(), "--chunks".into(), "9".into()],
            "chunks",
            "--chunks 9".into(),
        ),
    ];
    for (args, name, want) in cases {
        let out = dir.join(name);
        let o = bin()
            .arg("convert")
            .args(&args)
            .arg("-o")
            .arg(&out)
            .args(["--context", "32", "--batch", "8"])
            .output()
            .unwrap();
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains(&want), "{name}: expected {want:?} in {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
        assert!(!out.exists(), "{name}: output left behind");
    }
    // context not a multiple of the batch
    let out = dir.join("ctx");
    let o = bin()
        .arg("convert")
        .arg(fixture_dir("llama_tiny"))
        .arg("-o")
        .arg(&out)
        .args(["--context", "30", "--batch", "8"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("multiple"), "{}", text(&o.stderr));
    assert!(!out.exists());
    // an existing output folder is never replaced without --force
    let out = dir.join("exists");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("keep"), b"x").unwrap();
    let o = convert("llama_tiny", &out, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("--force"));
    assert!(out.join("keep").exists());
    let leftovers: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn compile_explains_itself_off_macos() {
    let dir = scratch("compile");
    let out = dir.join("tiny");
    ok(convert("llama_tiny", &out, &[]));
    let o = bin().arg("compile").arg(&out).output().unwrap();
    let err = text(&o.stderr);
    if cfg!(target_os = "macos") {
        return;
    }
    assert_eq!(o.status.code(), Some(1), "{err}");
    for want in ["xcrun coremlcompiler", "macOS", "MLModel.compileModel", "3 package(s)"] {
        assert!(err.contains(want), "{want} missing: {err}");
    }
    assert!(out.join("meta.yaml").is_file() && !err.contains("panicked"));
    let o = bin().arg("compile").arg(&dir).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("meta.yaml"), "{}", text(&o.stderr));
}

/// `--calibrate FILE` with unusable text fails with exit 2, naming the file and the reason,
/// and leaves no output folder.
#[test]
fn bad_calibration_files_fail_cleanly_without_output() {
    let dir = scratch("bad_calibration");
    let cases: [(&str, &[u8], &str); 6] = [
        ("empty.txt", b"\n \n", "is empty"),
        ("binary.txt", b"GGUF\0\x03\0\0", "binary"),
        ("latin1.txt", b"caf\xe9 au lait", "not UTF-8"),
        ("shape.jsonl", b"{\"text\": \"hello\"}\n", "line 1: expected"),
        (
            "message.jsonl",
            b"[{\"role\": \"user\", \"content\": \"hi\"}]\n[{\"role\": \"user\"}]\n",
            "line 2: message 0",
        ),
        ("short.txt", b"   \t", "is empty"),
    ];
    for (name, bytes, want) in cases {
        let file = dir.join(name);
        std::fs::write(&file, bytes).unwrap();
        let out = dir.join(format!("out_{name}"));
        let o = convert("llama_tiny", &out, &["--calibrate", file.to_str().unwrap()]);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains(name) && err.contains(want), "{name}: expected {want:?} in {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
        assert!(!out.exists(), "{name}: output left behind");
    }
    let out = dir.join("missing");
    let o = convert("llama_tiny", &out, &["--calibrate", dir.join("absent.txt").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("absent.txt") && text(&o.stderr).contains("cannot read"));
    let o = convert("llama_tiny", &out, &["--calibrate", "--lut-ffn", "none", "--lut-lmhead", "none"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("every --lut-* part is none"), "{}", text(&o.stderr));
    assert!(!out.exists());
}

/// A calibrated conversion (built-in text, and a JSONL chat file) reports what it did,
/// records sensitivity weights in the palettized weights, and is deterministic: the same
/// calibration input gives byte-identical packages with 1 and 2 threads.
#[test]
fn calibrated_conversion_is_reported_and_deterministic() {
    let dir = scratch("calibrated");
    let run = |name: &str, threads: &str, extra: &[&str]| {
        let out = dir.join(name);
        let mut args = vec!["--calibrate"];
        args.extend_from_slice(extra);
        let o = bin()
            .env("RAYON_NUM_THREADS", threads)
            .arg("convert")
            .arg(fixture_dir("llama_tiny"))
            .arg("-o")
            .arg(&out)
            .args(["--context", "32", "--batch", "8"])
            .args(&args)
            .output()
            .unwrap();
        (ok(o), out)
    };
    let (o, one) = run("one", "1", &[]);
    let err = text(&o.stderr);
    assert!(err.contains("calibration: ") && err.contains("built-in text"), "{err}");
    assert!(err.contains("use the sensitivity-weighted table"), "{err}");
    let (_, two) = run("two", "2", &[]);
    let files = |d: &Path| {
        let mut v: Vec<PathBuf> = walk(d).into_iter().filter(|p| p.extension().is_some_and(|e| e == "bin")).collect();
        v.sort();
        v
    };
    let (a, b) = (files(&one), files(&two));
    assert!(!a.is_empty());
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert!(
            std::fs::read(x).unwrap() == std::fs::read(y).unwrap(),
            "{} differs between 1 and 2 threads",
            x.display()
        );
    }
    // Different from the data-free conversion: the weighting changed some tables.
    let free = dir.join("free");
    ok(convert("llama_tiny", &free, &[]));
    let c = files(&free);
    assert!(a.iter().zip(&c).any(|(x, y)| std::fs::read(x).unwrap() != std::fs::read(y).unwrap()));
    // JSONL chats need a chat template: llama_tiny has one or says why not.
    let chats = dir.join("chats.jsonl");
    std::fs::write(
        &chats,
        "{\"messages\": [{\"role\": \"user\", \"content\": \"Name three rivers.\"}, {\"role\": \"assistant\", \"content\": \"The Nile, the Amazon and the Danube.\"}]}\n",
    )
    .unwrap();
    let out = dir.join("jsonl");
    let o = convert("llama_tiny", &out, &["--calibrate", chats.to_str().unwrap()]);
    if o.status.success() {
        assert!(text(&o.stderr).contains("chats.jsonl"), "{}", text(&o.stderr));
    } else {
        assert_eq!(o.status.code(), Some(2));
        assert!(text(&o.stderr).contains("no chat template"), "{}", text(&o.stderr));
    }
}

fn walk(d: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(d).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// `--argmax` (ANEMLL 0.3.6): the LM head returns each piece's argmax; meta.yaml says
/// `argmax_in_model: true`; `run` decodes the same greedy tokens as with the logits head and
/// as transformers.
#[test]
fn argmax_head_decodes_like_the_logits_head() {
    let dir = scratch("argmax");
    let r = reference("gemma3_tiny");
    let mut decoded = Vec::new();
    for (tag, extra) in [("logits", &[][..]), ("argmax", &["--argmax"][..])] {
        let out = dir.join(tag);
        let mut args = vec!["--lut-ffn", "none", "--lut-lmhead", "none"];
        args.extend(extra);
        ok(convert("gemma3_tiny", &out, &args));
        let meta = std::fs::read_to_string(out.join("meta.yaml")).unwrap();
        assert_eq!(meta.contains("    argmax_in_model: true\n"), tag == "argmax", "{tag}:\n{meta}");
        let run = ok(bin()
            .arg("run")
            .arg(&out)
            .args(["--tokens", &csv(&r.prompt), "--decode", &r.generated.len().to_string()])
            .output()
            .unwrap());
        decoded.push(text(&run.stdout).trim().to_string());
    }
    assert_eq!(decoded[0], decoded[1], "argmax and logits heads decode differently");
    assert_eq!(decoded[1], csv(&r.generated), "the argmax head does not reproduce transformers' tokens");
}

/// coremltools types an `--argmax` head: `argmax_idx` int32 [K], `argmax_val` fp16 [K].
#[test]
#[cfg_attr(not(coreml_venv), ignore = "needs the coremltools venv: bash tests/coreml/setup_venv.sh")]
fn coremltools_types_the_argmax_head() {
    let out = scratch("argmax_coreml").join("out");
    ok(convert("gemma3_tiny", &out, &["--argmax", "--lut-lmhead", "none"]));
    let checked = coreml_check(&[out.join("gemma3_lm_head.mlpackage")], &[]);
    let p = &checked["packages"][0];
    assert_eq!(p["ok"], true, "{}", p["errors"]);
    let outputs = p["functions"]["main"]["outputs"].as_array().unwrap();
    let typed: Vec<(String, String, serde_json::Value)> = outputs
        .iter()
        .map(|o| {
            let t = &o["inferred"];
            (o["name"].as_str().unwrap().to_string(), t["dtype"].as_str().unwrap().to_string(), t["shape"].clone())
        })
        .collect();
    assert_eq!(
        typed,
        vec![
            ("argmax_idx".to_string(), "int32".to_string(), serde_json::json!([16])),
            ("argmax_val".to_string(), "fp16".to_string(), serde_json::json!([16])),
        ]
    );
}
