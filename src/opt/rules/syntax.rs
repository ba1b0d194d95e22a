//! The rule-file syntax (`passes/*.rules`), parsed into plain data.
//!
//! ```text
//! # One comment line describing the rule (required, directly above it).
//! rule <name>: "<lhs pattern>" => "<rhs pattern>" [clauses]
//! rule <name>: "<lhs pattern>" => <applier>(<args>) [clauses]
//!
//! clauses:  if <condition>(<args>)        the rule applies only if the condition holds
//!           let ?v = <binder>(<args>)     binds ?v to a computed leaf (fails → no rewrite)
//! args:     ?var | literal                literals are bare words or numbers
//! limits iterations=<n> nodes=<n> time=<seconds>   (optional, once per file)
//! ```
//!
//! A rule may continue on following lines that start with whitespace. Clauses run left to
//! right, so a `let` may use variables bound by earlier `let`s. Other `#` lines and blank
//! lines are free-form comments.

use std::fmt;

/// A function argument: a pattern variable (`?x`) or a literal word.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Arg {
    Var(String),
    Lit(String),
}

/// A call of a registered Rust function: `name(args)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub name: String,
    pub args: Vec<Arg>,
}

/// A guard or binding after the right-hand side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Clause {
    If(Call),
    Let(String, Call),
}

/// The right-hand side: a pattern, or a registered applier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RhsText {
    Pattern(String),
    Apply(Call),
}

/// One parsed rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleText {
    pub name: String,
    pub doc: String,
    pub lhs: String,
    pub rhs: RhsText,
    pub clauses: Vec<Clause>,
    /// 1-based line of the `rule` keyword.
    pub line: usize,
}

/// Runner limits a rule file may set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LimitsText {
    pub iterations: Option<usize>,
    pub nodes: Option<usize>,
    pub time_secs: Option<f64>,
}

/// A parsed rule file.
#[derive(Clone, Debug, PartialEq)]
pub struct FileText {
    pub rules: Vec<RuleText>,
    pub limits: Option<LimitsText>,
}

/// A syntax error with its file and line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn skip_ws(&mut self) {
        while self.s[self.pos..].starts_with(char::is_whitespace) {
            self.pos += self.s[self.pos..].chars().next().map_or(1, char::len_utf8);
        }
    }

    fn done(&mut self) -> bool {
        self.skip_ws();
        self.pos >= self.s.len()
    }

    fn eat(&mut self, tok: &str) -> bool {
        self.skip_ws();
        if self.s[self.pos..].starts_with(tok) {
            self.pos += tok.len();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, tok: &str) -> Result<(), String> {
        if self.eat(tok) { Ok(()) } else { Err(format!("expected `{tok}` at `{}`", self.rest())) }
    }

    fn rest(&self) -> &'a str {
        let r = &self.s[self.pos..];
        &r[..r.len().min(40)]
    }

    /// A word: letters, digits and `_ - . ? + [ ]` (literals such as `[0,2,1,3]`).
    fn word(&mut self) -> Result<&'a str, String> {
        self.skip_ws();
        let start = self.pos;
        let mut depth = 0i32;
        for (i, c) in self.s[start..].char_indices() {
            let ok = c.is_alphanumeric() || "_-.?+".contains(c) || (c == ',' && depth > 0);
            if c == '[' {
                depth += 1;
            } else if c == ']' {
                depth -= 1;
            } else if !ok {
                self.pos = start + i;
                break;
            }
            self.pos = start + i + c.len_utf8();
        }
        if self.pos == start {
            Err(format!("expected a name at `{}`", self.rest()))
        } else {
            Ok(&self.s[start..self.pos])
        }
    }

    fn quoted(&mut self) -> Result<&'a str, String> {
        self.expect("\"")?;
        let start = self.pos;
        let end = self.s[start..].find('"').ok_or("unterminated string")? + start;
        self.pos = end + 1;
        Ok(&self.s[start..end])
    }

    fn call(&mut self, name: &str) -> Result<Call, String> {
        self.expect("(")?;
        let mut args = Vec::new();
        if !self.eat(")") {
            loop {
                let w = self.word()?;
                args.push(match w.strip_prefix('?') {
                    Some(_) => Arg::Var(w.to_string()),
                    None => Arg::Lit(w.to_string()),
                });
                if self.eat(")") {
                    break;
                }
                self.expect(",")?;
            }
        }
        Ok(Call { name: name.to_string(), args })
    }
}

fn parse_limits(text: &str) -> Result<LimitsText, String> {
    let mut l = LimitsText { iterations: None, nodes: None, time_secs: None };
    for item in text.split_whitespace() {
        let (k, v) = item.split_once('=').ok_or_else(|| format!("limit `{item}` is not key=value"))?;
        let bad = || format!("limit `{item}` has a bad value");
        match k {
            "iterations" => l.iterations = Some(v.parse().map_err(|_| bad())?),
            "nodes" => l.nodes = Some(v.parse().map_err(|_| bad())?),
            "time" => l.time_secs = Some(v.parse().map_err(|_| bad())?),
            _ => return Err(format!("unknown limit `{k}` (iterations, nodes, time)")),
        }
    }
    Ok(l)
}

fn parse_rule(text: &str, doc: String, line: usize) -> Result<RuleText, String> {
    let mut c = Cursor { s: text, pos: 0 };
    c.expect("rule")?;
    let name = c.word()?.to_string();
    c.expect(":")?;
    let lhs = c.quoted()?.to_string();
    c.expect("=>")?;
    c.skip_ws();
    let rhs = if c.s[c.pos..].starts_with('"') {
        RhsText::Pattern(c.quoted()?.to_string())
    } else {
        let n = c.word()?.to_string();
        RhsText::Apply(c.call(&n)?)
    };
    let mut clauses = Vec::new();
    while !c.done() {
        let kw = c.word()?;
        match kw {
            "if" => {
                let n = c.word()?.to_string();
                clauses.push(Clause::If(c.call(&n)?));
            }
            "let" => {
                let var = c.word()?.to_string();
                if !var.starts_with('?') {
                    return Err(format!("`let` binds a ?variable, got `{var}`"));
                }
                c.expect("=")?;
                let n = c.word()?.to_string();
                clauses.push(Clause::Let(var, c.call(&n)?));
            }
            other => return Err(format!("expected `if` or `let`, found `{other}`")),
        }
    }
    Ok(RuleText { name, doc, lhs, rhs, clauses, line })
}

/// Parses a rule file. `file` names it in errors.
pub fn parse_file(file: &str, src: &str) -> Result<FileText, SyntaxError> {
    let err = |line: usize, message: String| SyntaxError { file: file.to_string(), line, message };
    let lines: Vec<&str> = src.lines().collect();
    let mut rules = Vec::new();
    let mut limits = None;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim_end();
        let start = i;
        i += 1;
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("limits ") {
            if limits.is_some() {
                return Err(err(start + 1, "`limits` given twice".into()));
            }
            limits = Some(parse_limits(rest).map_err(|m| err(start + 1, m))?);
            continue;
        }
        if !line.starts_with("rule ") {
            return Err(err(start + 1, format!("expected `rule`, `limits` or a comment, found `{line}`")));
        }
        let mut text = line.to_string();
        while i < lines.len() && lines[i].starts_with([' ', '\t']) && !lines[i].trim().is_empty() {
            text.push(' ');
            text.push_str(lines[i].trim());
            i += 1;
        }
        let doc = match start.checked_sub(1).map(|p| lines[p].trim()) {
            Some(prev) if prev.starts_with('#') => prev.trim_start_matches('#').trim().to_string(),
            _ => return Err(err(start + 1, "a rule needs a one-line `#` comment directly above it".into())),
        };
        let rule = parse_rule(&text, doc, start + 1).map_err(|m| err(start + 1, m))?;
        if rules.iter().any(|r: &RuleText| r.name == rule.name) {
            return Err(err(start + 1, format!("rule `{}` is defined twice", rule.name)));
        }
        rules.push(rule);
    }
    Ok(FileText { rules, limits })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rules_clauses_and_limits() {
        let src = "limits iterations=9 nodes=100 time=2.5\n\n# compose\nrule t-t: \"(transpose (transpose ?x ?p) ?q)\" => \"(transpose ?x ?r)\"\n    let ?r = compose_perms(?p, ?q) if ok(?x, fp16)\n# sink\nrule s: \"(cast ?x fp16)\" => sink_cast(?x)\n";
        let f = parse_file("t.rules", src).unwrap();
        assert_eq!(f.limits, Some(LimitsText { iterations: Some(9), nodes: Some(100), time_secs: Some(2.5) }));
        assert_eq!(f.rules.len(), 2);
        let r = &f.rules[0];
        assert_eq!((r.name.as_str(), r.doc.as_str(), r.line), ("t-t", "compose", 4));
        assert_eq!(r.clauses.len(), 2);
        assert_eq!(
            r.clauses[1],
            Clause::If(Call { name: "ok".into(), args: vec![Arg::Var("?x".into()), Arg::Lit("fp16".into())] })
        );
        assert!(matches!(&f.rules[1].rhs, RhsText::Apply(c) if c.name == "sink_cast"));
    }

    #[test]
    fn a_rule_without_comment_is_an_error() {
        let e = parse_file("t.rules", "rule a: \"?x\" => \"?x\"\n").unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.message.contains("comment"));
    }
}
