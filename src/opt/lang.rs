//! The e-graph language: one e-node per IR op, TENSAT style.
//!
//! An IR op `opname(%a, %b) {k1 = v1, k2 = v2}` becomes the e-node `(opname a b v1 v2)`: the
//! operands first, then one *attribute leaf* per attribute in `Op::attrs` order (see
//! [`super::attrs`]). Because attributes are children, rule patterns can bind them
//! (`(transpose ?x ?perm)`) or fix them (`(transpose ?x [0,2,1,3])`).
//!
//! Besides the IR ops there are two pseudo ops:
//! - `(get ?multi i)`: result `i` of a multi-result op (`split`);
//! - `(roots r0 r1 …)`: the function's outputs in order, then its effects (`write_state`);
//!   it is the single root the extractor starts from.
//!
//! Leaves: `%i` (function input `i`), `@name` (a module weight), `const:<dtype>:<shape>:<values>`
//! (an inline literal) and attribute leaves (`3`, `-1`, `[0,2,1,3]`, `1e-5`, `true`, `fp16`,
//! or a bare word for strings such as gelu's `exact`).
//!
//! Invariant: floats are stored by their bit pattern, so `Eq`/`Hash`/`Ord` are total and a
//! leaf's identity is its exact value.

use std::fmt;

use egg::{FromOp, Id, Language};

use crate::ir::attr::format_float;
use crate::ir::{AttrValue, ConstData, DType, Op, TensorType};

/// The name of an op kind, always one of [`KINDS`] (so it is `'static` and cheap to compare).
pub type Kind = &'static str;

/// The pseudo op selecting one result of a multi-result op.
pub const GET: Kind = "get";
/// The pseudo op holding a function's outputs then its effects.
pub const ROOTS: Kind = "roots";

/// Every op kind an `Op` node may have: the IR ops except the leaf ops `const` and `weight`,
/// plus the pseudo ops.
pub fn kind_of(name: &str) -> Option<Kind> {
    match name {
        "get" => Some(GET),
        "roots" => Some(ROOTS),
        "const" | "weight" => None,
        other => Op::NAMES.iter().copied().find(|n| *n == other),
    }
}

/// An attribute value as an e-graph leaf. Floats are kept as bits (see the module invariant).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AttrLeaf {
    Int(i64),
    Ints(Vec<i64>),
    Float(u64),
    Floats(Vec<u64>),
    Bool(bool),
    DType(DType),
    Str(String),
}

impl AttrLeaf {
    pub fn float(v: f64) -> Self {
        AttrLeaf::Float(v.to_bits())
    }

    pub fn from_value(v: &AttrValue) -> Self {
        match v {
            AttrValue::Int(x) => AttrLeaf::Int(*x),
            AttrValue::Ints(x) => AttrLeaf::Ints(x.clone()),
            AttrValue::Float(x) => AttrLeaf::float(*x),
            AttrValue::Floats(x) => AttrLeaf::Floats(x.iter().map(|f| f.to_bits()).collect()),
            AttrValue::Bool(x) => AttrLeaf::Bool(*x),
            AttrValue::DType(x) => AttrLeaf::DType(*x),
            AttrValue::Str(x) => AttrLeaf::Str(x.clone()),
        }
    }

    pub fn to_value(&self) -> AttrValue {
        match self {
            AttrLeaf::Int(x) => AttrValue::Int(*x),
            AttrLeaf::Ints(x) => AttrValue::Ints(x.clone()),
            AttrLeaf::Float(x) => AttrValue::Float(f64::from_bits(*x)),
            AttrLeaf::Floats(x) => AttrValue::Floats(x.iter().map(|b| f64::from_bits(*b)).collect()),
            AttrLeaf::Bool(x) => AttrValue::Bool(*x),
            AttrLeaf::DType(x) => AttrValue::DType(*x),
            AttrLeaf::Str(x) => AttrValue::Str(x.clone()),
        }
    }

    /// The integer list, for list-valued attributes (`perm`, `shape`, `axes`, …).
    pub fn as_ints(&self) -> Option<&[i64]> {
        match self {
            AttrLeaf::Ints(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            AttrLeaf::Int(v) => Some(*v),
            _ => None,
        }
    }

    /// A float attribute (an integer literal counts, as in the IR text).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            AttrLeaf::Float(b) => Some(f64::from_bits(*b)),
            AttrLeaf::Int(v) => Some(*v as f64),
            _ => None,
        }
    }

    pub fn as_dtype(&self) -> Option<DType> {
        match self {
            AttrLeaf::DType(d) => Some(*d),
            _ => None,
        }
    }

    /// Parses the compact token form used in patterns and `RecExpr` text.
    fn parse(s: &str) -> Option<Self> {
        if let Ok(v) = s.parse::<i64>() {
            return Some(AttrLeaf::Int(v));
        }
        if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            let items: Vec<&str> = inner.split(',').map(str::trim).filter(|t| !t.is_empty()).collect();
            if let Ok(ints) = items.iter().map(|t| t.parse::<i64>()).collect::<Result<Vec<_>, _>>() {
                return Some(AttrLeaf::Ints(ints));
            }
            let floats = items.iter().map(|t| parse_float(t)).collect::<Option<Vec<_>>>()?;
            return Some(AttrLeaf::Floats(floats.into_iter().map(f64::to_bits).collect()));
        }
        if let Some(v) = parse_float(s) {
            return Some(AttrLeaf::float(v));
        }
        match s {
            "true" => return Some(AttrLeaf::Bool(true)),
            "false" => return Some(AttrLeaf::Bool(false)),
            _ => {}
        }
        if let Some(d) = DType::from_name(s) {
            return Some(AttrLeaf::DType(d));
        }
        let word = !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        word.then(|| AttrLeaf::Str(s.to_string()))
    }
}

fn parse_float(s: &str) -> Option<f64> {
    match s {
        "inf" => Some(f64::INFINITY),
        "-inf" => Some(f64::NEG_INFINITY),
        "nan" => Some(f64::NAN),
        _ if s.contains(['.', 'e', 'E']) && s.starts_with(|c: char| c.is_ascii_digit() || c == '-') => s.parse().ok(),
        _ => None,
    }
}

fn join<T>(items: &[T], f: impl Fn(&T) -> String) -> String {
    items.iter().map(f).collect::<Vec<_>>().join(",")
}

impl fmt::Display for AttrLeaf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttrLeaf::Int(v) => write!(f, "{v}"),
            AttrLeaf::Ints(v) => write!(f, "[{}]", join(v, |x| x.to_string())),
            AttrLeaf::Float(b) => f.write_str(&format_float(f64::from_bits(*b))),
            AttrLeaf::Floats(v) => write!(f, "[{}]", join(v, |b| format_float(f64::from_bits(*b)))),
            AttrLeaf::Bool(v) => write!(f, "{v}"),
            AttrLeaf::DType(d) => write!(f, "{d}"),
            AttrLeaf::Str(s) => f.write_str(s),
        }
    }
}

/// The payload of an inline literal (`const` op), hashable.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConstValues {
    /// Float literals by bit pattern.
    Floats(Vec<u64>),
    Ints(Vec<i64>),
}

/// An inline literal tensor: its type and its values (one value is a splat).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConstLeaf {
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub values: ConstValues,
}

impl ConstLeaf {
    pub fn new(ty: &TensorType, data: &ConstData) -> Self {
        let values = match data {
            ConstData::Floats(v) => ConstValues::Floats(v.iter().map(|x| x.to_bits()).collect()),
            ConstData::Ints(v) => ConstValues::Ints(v.clone()),
        };
        ConstLeaf { dtype: ty.dtype, shape: ty.shape.clone(), values }
    }

    /// A float splat of the given type.
    pub fn splat(dtype: DType, shape: Vec<usize>, v: f64) -> Self {
        ConstLeaf { dtype, shape, values: ConstValues::Floats(vec![v.to_bits()]) }
    }

    pub fn ty(&self) -> TensorType {
        TensorType::new(self.dtype, self.shape.clone())
    }

    pub fn data(&self) -> ConstData {
        match &self.values {
            ConstValues::Floats(v) => ConstData::Floats(v.iter().map(|b| f64::from_bits(*b)).collect()),
            ConstValues::Ints(v) => ConstData::Ints(v.clone()),
        }
    }

    /// The single value of a splat (or of a one-element literal), as f64.
    pub fn splat_value(&self) -> Option<f64> {
        match &self.values {
            ConstValues::Floats(v) if v.len() == 1 => Some(f64::from_bits(v[0])),
            ConstValues::Floats(v) if !v.is_empty() && v.iter().all(|b| *b == v[0]) => Some(f64::from_bits(v[0])),
            ConstValues::Ints(v) if v.len() == 1 => Some(v[0] as f64),
            _ => None,
        }
    }

    fn parse(s: &str) -> Option<Self> {
        let rest = s.strip_prefix("const:")?;
        let (dtype, rest) = rest.split_once(':')?;
        let dtype = DType::from_name(dtype)?;
        let (shape, values) = rest.split_once(':')?;
        let shape = match AttrLeaf::parse(shape)? {
            AttrLeaf::Ints(v) => v.into_iter().map(|d| usize::try_from(d).ok()).collect::<Option<Vec<_>>>()?,
            _ => return None,
        };
        let values = match (AttrLeaf::parse(values)?, dtype.is_float()) {
            (AttrLeaf::Ints(v), true) => ConstValues::Floats(v.into_iter().map(|x| (x as f64).to_bits()).collect()),
            (AttrLeaf::Floats(v), true) => ConstValues::Floats(v),
            (AttrLeaf::Ints(v), false) => ConstValues::Ints(v),
            _ => return None,
        };
        Some(ConstLeaf { dtype, shape, values })
    }
}

impl fmt::Display for ConstLeaf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shape = join(&self.shape, |d| d.to_string());
        let values = match &self.values {
            ConstValues::Floats(v) => join(v, |b| format_float(f64::from_bits(*b))),
            ConstValues::Ints(v) => join(v, |x| x.to_string()),
        };
        write!(f, "const:{}:[{shape}]:[{values}]", self.dtype)
    }
}

/// One e-node (see the module docs for the encoding).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tnode {
    /// An op (or pseudo op): operands, then attribute leaves.
    Op(Kind, Vec<Id>),
    /// Function input by position.
    Input(usize),
    /// A module weight by name.
    Weight(String),
    /// An inline literal.
    Const(ConstLeaf),
    /// An attribute value.
    Attr(AttrLeaf),
}

impl Tnode {
    pub fn op(kind: Kind, children: Vec<Id>) -> Self {
        Tnode::Op(kind, children)
    }

    pub fn kind(&self) -> Option<Kind> {
        match self {
            Tnode::Op(k, _) => Some(k),
            _ => None,
        }
    }

    /// The attribute leaf, if this is one.
    pub fn attr(&self) -> Option<&AttrLeaf> {
        match self {
            Tnode::Attr(a) => Some(a),
            _ => None,
        }
    }
}

/// The discriminant egg indexes e-classes by: the op kind, or the leaf variant.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Disc {
    Op(Kind),
    Input,
    Weight,
    Const,
    Attr,
}

impl Language for Tnode {
    type Discriminant = Disc;

    fn discriminant(&self) -> Disc {
        match self {
            Tnode::Op(k, _) => Disc::Op(k),
            Tnode::Input(_) => Disc::Input,
            Tnode::Weight(_) => Disc::Weight,
            Tnode::Const(_) => Disc::Const,
            Tnode::Attr(_) => Disc::Attr,
        }
    }

    fn matches(&self, other: &Self) -> bool {
        match (self, other) {
            (Tnode::Op(a, x), Tnode::Op(b, y)) => a == b && x.len() == y.len(),
            _ => self == other,
        }
    }

    fn children(&self) -> &[Id] {
        match self {
            Tnode::Op(_, c) => c,
            _ => &[],
        }
    }

    fn children_mut(&mut self) -> &mut [Id] {
        match self {
            Tnode::Op(_, c) => c,
            _ => &mut [],
        }
    }
}

impl fmt::Display for Tnode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tnode::Op(k, _) => f.write_str(k),
            Tnode::Input(i) => write!(f, "%{i}"),
            Tnode::Weight(w) => write!(f, "@{w}"),
            Tnode::Const(c) => write!(f, "{c}"),
            Tnode::Attr(a) => write!(f, "{a}"),
        }
    }
}

/// Why a token does not denote an e-node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseNodeError(pub String);

impl fmt::Display for ParseNodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromOp for Tnode {
    type Error = ParseNodeError;

    fn from_op(op: &str, children: Vec<Id>) -> Result<Self, Self::Error> {
        if let Some(kind) = kind_of(op) {
            let attrs = super::attrs::attr_names(kind).len();
            if children.len() < attrs + usize::from(kind != ROOTS && kind != GET) {
                return Err(ParseNodeError(format!(
                    "`{op}` needs its operands followed by {attrs} attribute(s), got {} children",
                    children.len()
                )));
            }
            return Ok(Tnode::Op(kind, children));
        }
        if !children.is_empty() {
            return Err(ParseNodeError(format!("unknown op `{op}`")));
        }
        if let Some(w) = op.strip_prefix('@') {
            return Ok(Tnode::Weight(w.to_string()));
        }
        if let Some(i) = op.strip_prefix('%').and_then(|i| i.parse().ok()) {
            return Ok(Tnode::Input(i));
        }
        if op.starts_with("const:") {
            return ConstLeaf::parse(op).map(Tnode::Const).ok_or_else(|| ParseNodeError(format!("bad literal `{op}`")));
        }
        AttrLeaf::parse(op).map(Tnode::Attr).ok_or_else(|| ParseNodeError(format!("cannot parse `{op}` as a leaf")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use egg::RecExpr;

    #[test]
    fn leaves_round_trip_through_text() {
        for text in ["3", "-1", "[0,2,1,3]", "[]", "1e-5", "0.25", "true", "fp16", "exact", "@w.x", "%2"] {
            let node = Tnode::from_op(text, vec![]).unwrap();
            assert_eq!(node.to_string(), text, "{text}");
        }
        let c = Tnode::from_op("const:fp32:[]:[0.25]", vec![]).unwrap();
        assert_eq!(c.to_string(), "const:fp32:[]:[0.25]");
    }

    #[test]
    fn expressions_parse() {
        let e: RecExpr<Tnode> = "(transpose (reshape %0 [1,8,1,64]) [0,3,2,1])".parse().unwrap();
        assert_eq!(e.to_string().parse::<RecExpr<Tnode>>().unwrap(), e, "printing round-trips");
        assert_eq!(e.len(), 5);
        assert!("(transpose %0)".parse::<RecExpr<Tnode>>().is_err(), "missing attribute is an error");
    }
}
