//! `anemllc emit` at the command line: a lowered + optimised fixture becomes an output
//! folder; bad requests get exit code 2, a message naming the problem, and no output.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_anemllc"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("emit_cli").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Lowers and optimises llama_tiny into `dir`; returns (lowered, optimised) paths.
fn prepare(dir: &Path) -> (String, String) {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/llama_tiny");
    let air = dir.join("m.air").display().to_string();
    let opt = dir.join("m.opt.air").display().to_string();
    let o = run(&["lower", fixture.to_str().unwrap(), "-o", &air, "--context", "32", "--batch", "8"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&["opt", &air, "-o", &opt]);
    assert!(o.status.success(), "{}", stderr(&o));
    (air, opt)
}

#[test]
fn emits_a_folder_and_refuses_bad_requests() {
    let dir = scratch("main");
    let (air, opt) = prepare(&dir);
    let out = dir.join("out");
    let out_s = out.to_str().unwrap();

    let o = run(&["emit", &opt, "-o", out_s, "--chunks", "2", "--prefix", "tiny"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    for want in ["tiny_embeddings.mlpackage", "tiny_FFN_PF_chunk_01of02.mlpackage", "tiny_lm_head.mlpackage", "total"] {
        assert!(err.contains(want), "summary lacks {want}:\n{err}");
    }
    assert!(out.join("tiny_FFN_PF_chunk_02of02.mlpackage/Manifest.json").is_file());
    assert!(out.join("meta.yaml").is_file());

    // `inspect` reads the chunk back: two functions, the shared state, MIL text.
    let o = run(&["inspect", out.join("tiny_FFN_PF_chunk_01of02.mlpackage").to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("func infer<ios18>("), "{text}");
    assert!(text.contains("func prefill<ios18>("), "{text}");
    assert!(text.contains("model_model_kv_cache_0"), "{text}");

    // An existing folder is kept unless --force.
    let o = run(&["emit", &opt, "-o", out_s]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    assert!(out.join("tiny_FFN_PF_chunk_02of02.mlpackage").is_dir(), "old output untouched");
    let o = run(&["emit", &opt, "-o", out_s, "--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.join("llama_FFN_PF_chunk_01of01.mlpackage").is_dir(), "replaced with the default layout");
    assert!(!out.join("tiny_embeddings.mlpackage").exists());

    // Bad requests: exit 2, the problem named, nothing written, no leftovers.
    let cases: [(&[&str], &str, &str); 5] = [
        (&["emit", &air, "-o"], "not_opt", "run `anemllc opt` first"),
        (&["emit", &opt, "--chunks", "4", "-o"], "chunks", "--chunks 4 is invalid for a model with 3 layers"),
        (&["emit", &opt, "--chunks", "0", "-o"], "chunks0", "positive number of chunks"),
        (&["emit", &opt, "--prefix", "../evil", "-o"], "prefix", "invalid --prefix"),
        (&["emit", &opt, "--max-chunk-bytes", "1K", "-o"], "budget", "more than the per-package budget"),
    ];
    for (args, name, want) in cases {
        let target = dir.join(name);
        let mut full: Vec<&str> = args.to_vec();
        full.push(target.to_str().unwrap());
        let o = run(&full);
        assert_eq!(o.status.code(), Some(2), "{name}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{name}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{name}");
        assert!(!target.exists(), "{name}: output written");
    }
    let names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().all(|n| !n.starts_with('.')), "leftover staging folders: {names:?}");
}
