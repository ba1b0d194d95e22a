//! Attribute values as they appear in the textual form (`{axis = 1, eps = 1e-5}`), and the
//! typed accessors ops use to decode them.

use std::collections::BTreeMap;
use std::fmt;

use super::types::DType;

/// One attribute value. Floats print with Rust's shortest round-trip formatting, so
/// `print(parse(t)) == t` holds bit-exactly.
#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    DType(DType),
    Ints(Vec<i64>),
    Floats(Vec<f64>),
}

impl AttrValue {
    /// Name of the kind, used in error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            AttrValue::Int(_) => "integer",
            AttrValue::Float(_) => "float",
            AttrValue::Bool(_) => "bool",
            AttrValue::Str(_) => "string",
            AttrValue::DType(_) => "dtype",
            AttrValue::Ints(_) => "integer list",
            AttrValue::Floats(_) => "float list",
        }
    }
}

/// Formats a float so that it re-lexes as a float and round-trips exactly.
pub fn format_float(v: f64) -> String {
    if v.is_nan() {
        "nan".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "inf".to_string() } else { "-inf".to_string() }
    } else {
        // Debug formatting is the shortest representation that round-trips and always has a
        // `.` or an exponent.
        format!("{v:?}")
    }
}

impl fmt::Display for AttrValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttrValue::Int(v) => write!(f, "{v}"),
            AttrValue::Float(v) => f.write_str(&format_float(*v)),
            AttrValue::Bool(v) => write!(f, "{v}"),
            AttrValue::Str(s) => write!(f, "{}", quote(s)),
            AttrValue::DType(d) => write!(f, "{d}"),
            AttrValue::Ints(v) => {
                let items: Vec<String> = v.iter().map(|x| x.to_string()).collect();
                write!(f, "[{}]", items.join(", "))
            }
            AttrValue::Floats(v) => {
                let items: Vec<String> = v.iter().map(|x| format_float(*x)).collect();
                write!(f, "[{}]", items.join(", "))
            }
        }
    }
}

/// Quotes a string with the escapes the lexer understands (`\"`, `\\`, `\n`, `\t`).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A parsed attribute dictionary that ops consume key by key; leftover keys are an error.
#[derive(Debug, Default)]
pub struct AttrMap {
    entries: BTreeMap<String, AttrValue>,
}

impl AttrMap {
    pub fn new(entries: BTreeMap<String, AttrValue>) -> Self {
        AttrMap { entries }
    }

    fn take(&mut self, key: &str) -> Result<AttrValue, String> {
        self.entries.remove(key).ok_or_else(|| format!("missing attribute `{key}`"))
    }

    fn wrong(key: &str, want: &str, got: &AttrValue) -> String {
        format!("attribute `{key}` must be {want}, found {}", got.kind())
    }

    pub fn int(&mut self, key: &str) -> Result<i64, String> {
        match self.take(key)? {
            AttrValue::Int(v) => Ok(v),
            other => Err(Self::wrong(key, "an integer", &other)),
        }
    }

    pub fn float(&mut self, key: &str) -> Result<f64, String> {
        match self.take(key)? {
            AttrValue::Float(v) => Ok(v),
            AttrValue::Int(v) => Ok(v as f64),
            other => Err(Self::wrong(key, "a float", &other)),
        }
    }

    pub fn bool(&mut self, key: &str) -> Result<bool, String> {
        match self.take(key)? {
            AttrValue::Bool(v) => Ok(v),
            other => Err(Self::wrong(key, "a bool", &other)),
        }
    }

    pub fn string(&mut self, key: &str) -> Result<String, String> {
        match self.take(key)? {
            AttrValue::Str(v) => Ok(v),
            other => Err(Self::wrong(key, "a string", &other)),
        }
    }

    pub fn dtype(&mut self, key: &str) -> Result<DType, String> {
        match self.take(key)? {
            AttrValue::DType(v) => Ok(v),
            other => Err(Self::wrong(key, "a dtype", &other)),
        }
    }

    pub fn ints(&mut self, key: &str) -> Result<Vec<i64>, String> {
        match self.take(key)? {
            AttrValue::Ints(v) => Ok(v),
            AttrValue::Floats(v) if v.is_empty() => Ok(Vec::new()),
            other => Err(Self::wrong(key, "an integer list", &other)),
        }
    }

    /// Non-negative integer list (shapes, sizes).
    pub fn sizes(&mut self, key: &str) -> Result<Vec<usize>, String> {
        self.ints(key)?
            .into_iter()
            .map(|v| usize::try_from(v).map_err(|_| format!("attribute `{key}` must not be negative")))
            .collect()
    }

    pub fn floats(&mut self, key: &str) -> Result<Vec<f64>, String> {
        match self.take(key)? {
            AttrValue::Floats(v) => Ok(v),
            AttrValue::Ints(v) => Ok(v.into_iter().map(|x| x as f64).collect()),
            other => Err(Self::wrong(key, "a float list", &other)),
        }
    }

    /// A string that may be absent.
    pub fn opt_string(&mut self, key: &str) -> Result<Option<String>, String> {
        if self.entries.contains_key(key) { self.string(key).map(Some) } else { Ok(None) }
    }

    /// A float list that may be absent.
    pub fn opt_floats(&mut self, key: &str) -> Result<Option<Vec<f64>>, String> {
        if self.entries.contains_key(key) { self.floats(key).map(Some) } else { Ok(None) }
    }

    /// Fails if any attribute was not consumed.
    pub fn finish(self) -> Result<(), String> {
        match self.entries.keys().next() {
            None => Ok(()),
            Some(k) => Err(format!("unknown attribute `{k}`")),
        }
    }
}
