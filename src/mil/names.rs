//! MIL identifiers (`[A-Za-z_][A-Za-z0-9_@]*`) and per-function unique naming.

use std::collections::HashSet;

/// True if `s` is a valid MIL identifier.
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '@')
}

/// A valid identifier derived from `s`: every character outside `[A-Za-z0-9_]` becomes `_`
/// (so the emitter never produces `@`), and a leading digit or an empty string gets a `_`
/// prefix.
pub fn sanitize(s: &str) -> String {
    let mut out: String = s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if !out.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        out.insert(0, '_');
    }
    out
}

/// The names used in one MIL function. Invariant: every name handed out is a valid
/// identifier and distinct from every other name handed out or reserved.
#[derive(Debug, Default)]
pub struct NameTable {
    used: HashSet<String>,
}

impl NameTable {
    /// Claims an exact name; false if it was already taken.
    pub fn reserve(&mut self, name: &str) -> bool {
        self.used.insert(name.to_string())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.used.contains(name)
    }

    /// A fresh name: `sanitize(base)` if free, else with the first free `_1`, `_2`, … suffix.
    pub fn fresh(&mut self, base: &str) -> String {
        let base = sanitize(base);
        if self.used.insert(base.clone()) {
            return base;
        }
        (1..)
            .map(|i| format!("{base}_{i}"))
            .find(|candidate| self.used.insert(candidate.clone()))
            .expect("an unbounded range always finds a free suffix")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizes_and_uniquifies() {
        assert!(is_identifier("model_model_kv_cache_0"));
        assert!(!is_identifier("layer0.infer"));
        assert_eq!(sanitize("layer0.infer"), "layer0_infer");
        assert_eq!(sanitize("0x"), "_0x");
        let mut t = NameTable::default();
        assert!(t.reserve("x"));
        assert_eq!(t.fresh("x"), "x_1");
        assert_eq!(t.fresh("x"), "x_2");
        assert_eq!(t.fresh("a.b"), "a_b");
    }
}
