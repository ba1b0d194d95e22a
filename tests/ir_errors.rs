//! Malformed IR gives a one-line error with a position or a named rule — never a panic —
//! and `anemllc verify`/`fmt` exit with code 2.

use anemllc::ir::{parse_module, verify_module};
use std::process::Command;

const GOOD_HEAD: &str = "module @m {\n  func @f(%x: fp32[2, 3]) -> (y: fp32[2, 3]) {\n";

/// (name, text, expected message fragment) for parse errors.
fn parse_cases() -> Vec<(&'static str, String, &'static str)> {
    vec![
        (
            "bad token",
            format!("{GOOD_HEAD}    %y = neg(%x) : fp32[2, 3] $\n    return %y\n  }}\n}}\n"),
            "3:31: unexpected character '$'",
        ),
        (
            "unknown op",
            format!("{GOOD_HEAD}    %y = frobnicate(%x) : fp32[2, 3]\n    return %y\n  }}\n}}\n"),
            "3:10: unknown op `frobnicate`",
        ),
        (
            "use before def",
            format!(
                "{GOOD_HEAD}    %y = add(%x, %z) : fp32[2, 3]\n    %z = neg(%x) : fp32[2, 3]\n    return %y\n  }}\n}}\n"
            ),
            "3:18: use of undefined value %z",
        ),
        (
            "redefinition",
            format!("{GOOD_HEAD}    %x = neg(%x) : fp32[2, 3]\n    return %x\n  }}\n}}\n"),
            "3:5: value %x is defined twice",
        ),
        (
            "bad dtype",
            format!("{GOOD_HEAD}    %y = neg(%x) : fp33[2, 3]\n    return %y\n  }}\n}}\n"),
            "3:20: expected a tensor type",
        ),
        (
            "missing attr",
            format!("{GOOD_HEAD}    %y = softmax(%x) : fp32[2, 3]\n    return %y\n  }}\n}}\n"),
            "in `softmax`: missing attribute `axis`",
        ),
        (
            "unknown attr",
            format!("{GOOD_HEAD}    %y = neg(%x) {{axis = 1}} : fp32[2, 3]\n    return %y\n  }}\n}}\n"),
            "unknown attribute `axis`",
        ),
        (
            "wrong attr kind",
            format!("{GOOD_HEAD}    %y = softmax(%x) {{axis = \"one\"}} : fp32[2, 3]\n    return %y\n  }}\n}}\n"),
            "attribute `axis` must be an integer, found string",
        ),
        (
            "return arity",
            format!("{GOOD_HEAD}    return\n  }}\n}}\n"),
            "return lists 0 values but the signature declares 1 outputs",
        ),
        ("unterminated", "module @m {\n  func @f(".to_string(), "expected a %value, found end of input"),
        (
            "negative dim",
            format!("{GOOD_HEAD}    %y = reshape(%x) {{shape = [6]}} : fp32[-6]\n    return %y\n  }}\n}}\n"),
            "expected a non-negative dimension",
        ),
        (
            "huge int",
            format!(
                "{GOOD_HEAD}    %y = softmax(%x) {{axis = 99999999999999999999}} : fp32[2, 3]\n    return %y\n  }}\n}}\n"
            ),
            "out of range",
        ),
    ]
}

/// (name, text, expected rule) for typing/verifier errors.
fn verify_cases() -> Vec<(&'static str, String, &'static str)> {
    vec![
        ("type mismatch", format!("{GOOD_HEAD}    %y = neg(%x) : fp16[2, 3]\n    return %y\n  }}\n}}\n"), "typing.result-type"),
        ("broadcast", format!("{GOOD_HEAD}    %c = const [1.0, 2.0] : fp32[2]\n    %y = add(%x, %c) : fp32[2, 3]\n    return %y\n  }}\n}}\n"), "add.broadcast"),
        ("matmul dims", format!("{GOOD_HEAD}    %y = matmul(%x, %x) {{transpose_a = false, transpose_b = false}} : fp32[2, 3]\n    return %y\n  }}\n}}\n"), "matmul.inner-dims"),
        ("undeclared weight", format!("{GOOD_HEAD}    %w = weight @nope : fp32[2, 3]\n    return %w\n  }}\n}}\n"), "weight.declared"),
        ("signature", "module @m {\n  func @f(%x: fp32[2, 3]) -> (y: fp16[2, 3]) {\n    return %x\n  }\n}\n".to_string(), "signature.output-type"),
        ("const count", format!("{GOOD_HEAD}    %y = const [1.0, 2.0] : fp32[2, 3]\n    return %y\n  }}\n}}\n"), "const.count"),
        ("state misuse", "module @m {\n  func @f(%s: state<fp32[2]>) -> (y: fp32[2]) {\n    %y = neg(%s) : fp32[2]\n    return %y\n  }\n}\n".to_string(), "neg.no-state"),
        ("recipe type", "module @m {\n  weight @w : fp32[4] = checkpoint(\"w\" : bf16[4])\n}\n".to_string(), "weight.recipe-type"),
    ]
}

#[test]
fn parse_errors_carry_positions() {
    for (name, text, want) in parse_cases() {
        let err = parse_module(&text).expect_err(name).to_string();
        assert!(err.contains(want), "{name}: got {err:?}, want {want:?}");
        assert!(!err.contains('\n'), "{name}: error is not one line: {err:?}");
    }
}

#[test]
fn verifier_names_function_op_and_rule() {
    for (name, text, rule) in verify_cases() {
        let module = parse_module(&text).unwrap_or_else(|e| panic!("{name}: should parse: {e}"));
        let err = verify_module(&module).expect_err(name);
        assert_eq!(err.rule, rule, "{name}: {err}");
        let shown = err.to_string();
        assert!(shown.contains('@') || shown.starts_with("module"), "{name}: {shown}");
        assert!(!shown.contains('\n'), "{name}: {shown}");
    }
    // The message names the function and the op.
    let module = parse_module(&verify_cases()[0].1).unwrap();
    assert_eq!(
        verify_module(&module).unwrap_err().to_string(),
        "@f: op #0 `neg` (%y): [typing.result-type] %y is declared fp16[2, 3] but the typing rule gives fp32[2, 3]"
    );
}

#[test]
fn cli_exits_2_with_one_line_and_no_panic() {
    let dir = std::env::temp_dir().join(format!("anemllc-ir-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = parse_cases().into_iter().chain(verify_cases());
    for (i, (name, text, want)) in cases.enumerate() {
        let path = dir.join(format!("case{i}.air"));
        std::fs::write(&path, text).unwrap();
        for cmd in ["verify", "fmt"] {
            let out = Command::new(env!("CARGO_BIN_EXE_anemllc")).arg(cmd).arg(&path).output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{name} ({cmd}): {stderr}");
            assert_eq!(stderr.trim_end().lines().count(), 1, "{name} ({cmd}): {stderr}");
            assert!(stderr.contains(want), "{name} ({cmd}): {stderr}");
            assert!(stderr.contains(&format!("case{i}.air")), "{name}: message names the file: {stderr}");
            assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        }
    }
    let missing = Command::new(env!("CARGO_BIN_EXE_anemllc")).args(["verify", "/nonexistent/x.air"]).output().unwrap();
    assert_eq!(missing.status.code(), Some(2));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn cli_fmt_prints_canonical_text() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/air/mlp_block.air");
    let out = Command::new(env!("CARGO_BIN_EXE_anemllc")).args(["fmt", path]).output().unwrap();
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    let module = parse_module(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(printed, anemllc::ir::print_module(&module));
    assert!(!printed.contains("//"), "comments are not preserved");
    let verify = Command::new(env!("CARGO_BIN_EXE_anemllc")).args(["verify", path]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&verify.stdout).trim(), "ok: 1 function(s), 11 op(s), 4 weight(s)");
}
