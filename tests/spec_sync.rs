//! Keeps `ir-spec/` in sync with the code: every op and recipe has exactly one
//! `### \`name\`` section in its spec file (and no section names an unknown one), and every
//! dtype spelling appears in `ir-spec/types.md`.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anemllc::ir::{DType, Op, Recipe};

fn spec_path(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("ir-spec").join(file)
}

fn read_spec(file: &str) -> String {
    let path = spec_path(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The names of all `### \`name\`` headings, in order (duplicates kept).
fn section_names(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| line.trim_end().strip_prefix("### `")?.strip_suffix('`').map(str::to_string))
        .collect()
}

/// Asserts that the headings of `file` name exactly `expected`, each once.
fn assert_sections_match(file: &str, what: &str, expected: &[&str]) {
    let found = section_names(&read_spec(file));
    let found_set: BTreeSet<&str> = found.iter().map(String::as_str).collect();
    let expected_set: BTreeSet<&str> = expected.iter().copied().collect();

    let missing: Vec<&str> = expected_set.difference(&found_set).copied().collect();
    let extra: Vec<&str> = found_set.difference(&expected_set).copied().collect();
    let mut duplicated: Vec<&str> =
        found_set.iter().copied().filter(|name| found.iter().filter(|f| f == name).count() > 1).collect();
    duplicated.sort_unstable();

    let mut problems = Vec::new();
    if !missing.is_empty() {
        problems.push(format!("{what} without a `### \\`name\\`` section in ir-spec/{file}: {}", missing.join(", ")));
    }
    if !extra.is_empty() {
        problems.push(format!("sections in ir-spec/{file} that are not {what}: {}", extra.join(", ")));
    }
    if !duplicated.is_empty() {
        problems.push(format!("sections in ir-spec/{file} that appear more than once: {}", duplicated.join(", ")));
    }
    assert!(problems.is_empty(), "ir-spec/{file} is out of sync with the code:\n  {}", problems.join("\n  "));
}

#[test]
fn every_op_has_exactly_one_section() {
    assert_sections_match("ops.md", "ops in `Op::NAMES`", Op::NAMES);
}

#[test]
fn every_recipe_has_exactly_one_section() {
    assert_sections_match("recipes.md", "recipes in `Recipe::NAMES`", Recipe::NAMES);
}

#[test]
fn every_dtype_is_documented() {
    let text = read_spec("types.md");
    let missing: Vec<&str> =
        DType::ALL.iter().map(|d| d.name()).filter(|name| !text.contains(&format!("`{name}`"))).collect();
    assert!(
        missing.is_empty(),
        "dtypes in `DType::ALL` not mentioned (as `name`) in ir-spec/types.md: {}",
        missing.join(", ")
    );
}

#[test]
fn section_headings_are_recognised() {
    // Guards the parser above: a heading with trailing text or another level is not a section.
    let text = "### `add`\n## `sub`\n### `mul` op\n### `div`  \n#### `pow`\n";
    assert_eq!(section_names(text), ["add", "div"]);
}
