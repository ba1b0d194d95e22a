//! The registry of Rust logic that rule files name: conditions (`if name(..)`), binders
//! (`let ?v = name(..)`) and appliers (`=> name(..)`).
//!
//! Each entry declares its parameters as a string, one character per argument:
//! `c` an e-class variable, `l` a literal word, `a` either. The loader checks names and
//! parameter kinds, so an unknown name or a wrong call is a load error, never a silent
//! no-op.

use egg::Id;

use super::super::analysis::EG;
use super::{appliers, binders, conditions, regions};

/// A resolved argument: the e-class a variable is bound to, or a literal word.
#[derive(Clone, Copy, Debug)]
pub enum Val<'a> {
    Class(Id),
    Lit(&'a str),
}

impl Val<'_> {
    /// The e-class (the loader guarantees the kind for `c` parameters).
    pub fn id(&self) -> Id {
        match self {
            Val::Class(id) => *id,
            Val::Lit(l) => panic!("literal `{l}` passed where an e-class is expected"),
        }
    }

    pub fn lit(&self) -> &str {
        match self {
            Val::Lit(l) => l,
            Val::Class(c) => panic!("e-class {c} passed where a literal is expected"),
        }
    }
}

/// `if name(args)`: a guard on the match.
pub struct Condition {
    pub name: &'static str,
    pub params: &'static str,
    pub doc: &'static str,
    pub f: fn(&EG, &[Val]) -> bool,
}

/// `let ?v = name(args)`: computes a leaf (attribute or literal), adds it and returns its
/// class; `None` means the rule does not apply.
pub struct Binder {
    pub name: &'static str,
    pub params: &'static str,
    pub doc: &'static str,
    pub f: fn(&mut EG, &[Val]) -> Option<Id>,
}

/// `=> name(args)`: builds the right-hand side(s) in Rust; every returned class is united
/// with the matched class.
pub struct ApplierFn {
    pub name: &'static str,
    pub params: &'static str,
    pub doc: &'static str,
    pub f: fn(&mut EG, &[Val]) -> Vec<Id>,
}

pub fn condition(name: &str) -> Option<&'static Condition> {
    conditions::TABLE.iter().chain(regions::CONDITIONS).find(|c| c.name == name)
}

pub fn binder(name: &str) -> Option<&'static Binder> {
    binders::TABLE.iter().chain(regions::BINDERS).find(|c| c.name == name)
}

pub fn applier(name: &str) -> Option<&'static ApplierFn> {
    appliers::TABLE.iter().chain(regions::APPLIERS).find(|c| c.name == name)
}

/// Checks that `args` fit the parameter string `params` (`c`, `l`, `a`).
pub fn check_params(what: &str, params: &str, args: &[super::syntax::Arg]) -> Result<(), String> {
    if params.len() != args.len() {
        return Err(format!("`{what}` takes {} argument(s), got {}", params.len(), args.len()));
    }
    for (i, (p, a)) in params.chars().zip(args).enumerate() {
        let ok = matches!((p, a), ('c', super::syntax::Arg::Var(_)) | ('l', super::syntax::Arg::Lit(_)) | ('a', _));
        if !ok {
            let want = if p == 'c' { "a ?variable" } else { "a literal" };
            return Err(format!("argument {} of `{what}` must be {want}", i + 1));
        }
    }
    Ok(())
}
