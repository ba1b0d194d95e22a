//! Rule files → egg rewrites.
//!
//! A rule file (`passes/*.rules`, syntax in [`syntax`]) is parsed, every name it uses is
//! resolved in the [`registry`], and every rule becomes an `egg::Rewrite` whose searcher is
//! the left-hand pattern and whose applier ([`RuleApplier`]) runs the clauses, then builds
//! the right-hand side and unites it with the match.
//!
//! Load-time checks (all are errors naming file, line and rule): syntax, pattern parsing,
//! unknown registry names, wrong argument kinds, variables used before they are bound,
//! `let` re-binding a left-hand variable, duplicate rule names.

pub mod appliers;
pub mod binders;
pub mod conditions;
pub mod read;
pub mod regions;
pub mod registry;
pub mod syntax;

use std::str::FromStr;

use egg::{Applier, Id, Pattern, PatternAst, Rewrite, Subst, Symbol, Var};

use super::analysis::{EG, TypeAnalysis, with_context};
use super::lang::Tnode;
use registry::{ApplierFn, Binder, Condition, Val};
use syntax::{Arg, Call, Clause, RhsText};

pub use syntax::LimitsText;

/// A resolved argument.
#[derive(Clone, Debug)]
enum RArg {
    Var(Var),
    Lit(String),
}

enum RClause {
    If(&'static Condition, Vec<RArg>),
    Let(Var, &'static Binder, Vec<RArg>),
}

enum Rhs {
    Pattern(PatternAst<Tnode>),
    Apply(&'static ApplierFn, Vec<RArg>),
}

/// The applier of one rule: clauses, then the right-hand side.
pub struct RuleApplier {
    name: String,
    clauses: Vec<RClause>,
    rhs: Rhs,
}

fn resolve<'a>(args: &'a [RArg], subst: &Subst) -> Vec<Val<'a>> {
    args.iter()
        .map(|a| match a {
            RArg::Var(v) => Val::Class(subst[*v]),
            RArg::Lit(l) => Val::Lit(l),
        })
        .collect()
}

impl Applier<Tnode, TypeAnalysis> for RuleApplier {
    fn apply_one(
        &self,
        egraph: &mut EG,
        eclass: Id,
        subst: &Subst,
        _searcher_ast: Option<&PatternAst<Tnode>>,
        _rule_name: Symbol,
    ) -> Vec<Id> {
        with_context(&format!("rule `{}`", self.name), || {
            let mut subst = subst.clone();
            for clause in &self.clauses {
                match clause {
                    RClause::If(c, args) => {
                        if !(c.f)(egraph, &resolve(args, &subst)) {
                            return Vec::new();
                        }
                    }
                    RClause::Let(var, b, args) => match (b.f)(egraph, &resolve(args, &subst)) {
                        Some(id) => {
                            subst.insert(*var, id);
                        }
                        None => return Vec::new(),
                    },
                }
            }
            let built = match &self.rhs {
                Rhs::Pattern(ast) => vec![egraph.add_instantiation(ast, &subst)],
                Rhs::Apply(a, args) => (a.f)(egraph, &resolve(args, &subst)),
            };
            let mut changed = Vec::new();
            for id in built {
                if egraph.union(eclass, id) {
                    changed.push(eclass);
                }
            }
            changed
        })
    }
}

/// One loaded rule.
pub struct Rule {
    pub name: String,
    /// The one-line comment above the rule.
    pub doc: String,
    pub rewrite: Rewrite<Tnode, TypeAnalysis>,
}

/// A loaded rule file.
pub struct RuleSet {
    pub file: String,
    pub limits: Option<LimitsText>,
    pub rules: Vec<Rule>,
}

/// A rule file that does not load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadError(pub String);

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LoadError {}

fn resolve_args(args: &[Arg], bound: &[Var]) -> Result<Vec<RArg>, String> {
    args.iter()
        .map(|a| match a {
            Arg::Var(v) => {
                let var = Var::from_str(v).map_err(|e| format!("bad variable `{v}`: {e}"))?;
                if bound.contains(&var) { Ok(RArg::Var(var)) } else { Err(format!("`{v}` is used before it is bound")) }
            }
            Arg::Lit(l) => Ok(RArg::Lit(l.clone())),
        })
        .collect()
}

fn checked_call<'t, T>(
    what: &str,
    call: &Call,
    lookup: fn(&str) -> Option<&'t T>,
    params: fn(&T) -> &'static str,
    bound: &[Var],
) -> Result<(&'t T, Vec<RArg>), String> {
    let entry = lookup(&call.name).ok_or_else(|| format!("unknown {what} `{}`", call.name))?;
    registry::check_params(&call.name, params(entry), &call.args)?;
    Ok((entry, resolve_args(&call.args, bound)?))
}

fn pattern_vars(ast: &PatternAst<Tnode>) -> Vec<Var> {
    Pattern::new(ast.clone()).vars()
}

fn build_rule(r: &syntax::RuleText) -> Result<Rule, String> {
    let lhs: Pattern<Tnode> = r.lhs.parse().map_err(|e| format!("left-hand side: {e}"))?;
    let mut bound = lhs.vars();
    let mut clauses = Vec::new();
    for c in &r.clauses {
        match c {
            Clause::If(call) => {
                let (cond, args) = checked_call("condition", call, registry::condition, |c| c.params, &bound)?;
                clauses.push(RClause::If(cond, args));
            }
            Clause::Let(v, call) => {
                let var = Var::from_str(v).map_err(|e| format!("bad variable `{v}`: {e}"))?;
                if bound.contains(&var) {
                    return Err(format!("`let {v}` re-binds a bound variable"));
                }
                let (b, args) = checked_call("binder", call, registry::binder, |b| b.params, &bound)?;
                clauses.push(RClause::Let(var, b, args));
                bound.push(var);
            }
        }
    }
    let rhs = match &r.rhs {
        RhsText::Pattern(text) => {
            let p: Pattern<Tnode> = text.parse().map_err(|e| format!("right-hand side: {e}"))?;
            if let Some(v) = pattern_vars(&p.ast).into_iter().find(|v| !bound.contains(v)) {
                return Err(format!("right-hand side uses unbound `{v}`"));
            }
            Rhs::Pattern(p.ast)
        }
        RhsText::Apply(call) => {
            let (a, args) = checked_call("applier", call, registry::applier, |a| a.params, &bound)?;
            Rhs::Apply(a, args)
        }
    };
    let applier = RuleApplier { name: r.name.clone(), clauses, rhs };
    let rewrite = Rewrite::new(r.name.as_str(), lhs, applier)?;
    Ok(Rule { name: r.name.clone(), doc: r.doc.clone(), rewrite })
}

/// Parses and resolves a rule file.
pub fn load(file: &str, src: &str) -> Result<RuleSet, LoadError> {
    let text = syntax::parse_file(file, src).map_err(|e| LoadError(e.to_string()))?;
    let mut rules = Vec::new();
    for r in &text.rules {
        let rule = build_rule(r).map_err(|m| LoadError(format!("{file}:{}: rule `{}`: {m}", r.line, r.name)))?;
        rules.push(rule);
    }
    Ok(RuleSet { file: file.to_string(), limits: text.limits, rules })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_names_and_unbound_variables_are_load_errors() {
        let bad = [
            ("# c\nrule a: \"(neg ?x)\" => \"?x\" if no_such(?x)\n", "unknown condition `no_such`"),
            ("# c\nrule a: \"(neg ?x)\" => \"?y\"\n", "unbound `?y`"),
            ("# c\nrule a: \"(neg ?x)\" => nope(?x)\n", "unknown applier `nope`"),
            ("# c\nrule a: \"(neg ?x)\" => \"?x\" if same_shape(?x)\n", "takes 2 argument(s)"),
            ("# c\nrule a: \"(neg ?x)\" => \"?x\" let ?x = shape_of(?x)\n", "re-binds"),
        ];
        for (src, want) in bad {
            let err = load("t.rules", src).err().expect(src);
            assert!(err.0.contains(want), "{err} should mention {want}");
        }
    }
}
