//! Recursive-descent parser for the textual IR over the `logos` token stream.
//! Errors carry `line:column` (1-based) of the offending token.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use super::attr::{AttrMap, AttrValue};
use super::lexer::{Spanned, Token, lex, unquote};
use super::module::{Function, Module, Output, ValueId, Weight};
use super::op::{ConstData, Op};
use super::recipe::Recipe;
use super::types::{DType, TensorType, Type};

/// A syntax error with its 1-based position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Parses a module. The result is syntactically valid; run `verify` for the typing rules.
pub fn parse_module(src: &str) -> Result<Module, ParseError> {
    let tokens = lex(src).map_err(|offset| {
        let ch = src[offset..].chars().next().unwrap_or(' ');
        error_at(src, offset, format!("unexpected character {ch:?}"))
    })?;
    let mut p = Parser { src, tokens, pos: 0 };
    let module = p.module()?;
    if p.pos < p.tokens.len() {
        return Err(p.err_here("expected end of input after the module"));
    }
    Ok(module)
}

fn error_at(src: &str, offset: usize, message: String) -> ParseError {
    let before = &src[..offset.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(before.chars().count(), |nl| before[nl + 1..].chars().count()) + 1;
    ParseError { line, column, message }
}

struct Parser<'s> {
    src: &'s str,
    tokens: Vec<Spanned>,
    pos: usize,
}

type PResult<T> = Result<T, ParseError>;

impl<'s> Parser<'s> {
    fn peek(&self) -> Option<Token> {
        self.tokens.get(self.pos).map(|t| t.token)
    }

    fn peek_at(&self, k: usize) -> Option<Token> {
        self.tokens.get(self.pos + k).map(|t| t.token)
    }

    fn text(&self, t: &Spanned) -> &'s str {
        &self.src[t.start..t.end]
    }

    fn peek_text(&self) -> &'s str {
        self.tokens.get(self.pos).map_or("", |t| self.text(t))
    }

    fn err_here(&self, message: impl Into<String>) -> ParseError {
        let offset = self.tokens.get(self.pos).map_or(self.src.len(), |t| t.start);
        error_at(self.src, offset, message.into())
    }

    fn found(&self) -> String {
        match self.tokens.get(self.pos) {
            Some(t) => format!("`{}`", self.text(t)),
            None => "end of input".to_string(),
        }
    }

    fn expect(&mut self, want: Token) -> PResult<&'s str> {
        match self.tokens.get(self.pos) {
            Some(t) if t.token == want => {
                self.pos += 1;
                Ok(&self.src[t.start..t.end])
            }
            _ => Err(self.err_here(format!("expected {}, found {}", want.describe(), self.found()))),
        }
    }

    fn eat(&mut self, want: Token) -> bool {
        if self.peek() == Some(want) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn keyword(&mut self, kw: &str) -> PResult<()> {
        if self.peek() == Some(Token::Ident) && self.peek_text() == kw {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err_here(format!("expected `{kw}`, found {}", self.found())))
        }
    }

    fn is_keyword(&self, kw: &str) -> bool {
        self.peek() == Some(Token::Ident) && self.peek_text() == kw
    }

    fn module(&mut self) -> PResult<Module> {
        self.keyword("module")?;
        let name = self.expect(Token::Global)?[1..].to_string();
        self.expect(Token::LBrace)?;
        let mut m = Module::new(name);
        if self.is_keyword("attributes") {
            self.pos += 1;
            self.expect(Token::LBrace)?;
            m.attrs = self.attr_list(Token::RBrace)?;
            self.expect(Token::RBrace)?;
        }
        let mut weight_names = HashMap::new();
        while self.is_keyword("weight") {
            let at = self.pos + 1;
            let w = self.weight()?;
            if weight_names.insert(w.name.clone(), ()).is_some() {
                self.pos = at;
                return Err(self.err_here(format!("weight @{} is declared twice", w.name)));
            }
            m.weights.push(w);
        }
        while self.is_keyword("func") {
            let at = self.pos + 1;
            let f = self.function()?;
            if m.function(&f.name).is_some() {
                self.pos = at;
                return Err(self.err_here(format!("function @{} is defined twice", f.name)));
            }
            m.functions.push(f);
        }
        if self.peek() != Some(Token::RBrace) {
            return Err(self.err_here(format!("expected `weight`, `func` or `}}`, found {}", self.found())));
        }
        self.pos += 1;
        Ok(m)
    }

    /// `key = value, …` up to (not including) `close`. Keys must be unique.
    fn attr_list(&mut self, close: Token) -> PResult<BTreeMap<String, AttrValue>> {
        let mut out = BTreeMap::new();
        while self.peek() != Some(close) {
            if !out.is_empty() {
                self.expect(Token::Comma)?;
            }
            let key_pos = self.pos;
            let key = self.expect(Token::Ident)?.to_string();
            self.expect(Token::Equals)?;
            let value = self.attr_value()?;
            if out.insert(key.clone(), value).is_some() {
                self.pos = key_pos;
                return Err(self.err_here(format!("attribute `{key}` given twice")));
            }
        }
        Ok(out)
    }

    fn attr_value(&mut self) -> PResult<AttrValue> {
        match self.peek() {
            Some(Token::Int) => Ok(AttrValue::Int(self.int()?)),
            Some(Token::Float) => Ok(AttrValue::Float(self.number()?)),
            Some(Token::Str) => {
                let lit = self.expect(Token::Str)?;
                Ok(AttrValue::Str(unquote(lit)))
            }
            Some(Token::Ident) => {
                let word = self.peek_text();
                let v = match word {
                    "true" => AttrValue::Bool(true),
                    "false" => AttrValue::Bool(false),
                    "inf" => AttrValue::Float(f64::INFINITY),
                    "nan" => AttrValue::Float(f64::NAN),
                    w => match DType::from_name(w) {
                        Some(d) => AttrValue::DType(d),
                        None => return Err(self.err_here(format!("expected an attribute value, found `{w}`"))),
                    },
                };
                self.pos += 1;
                Ok(v)
            }
            Some(Token::LBracket) => {
                let (ints, floats) = self.number_list()?;
                Ok(match ints {
                    Some(v) => AttrValue::Ints(v),
                    None => AttrValue::Floats(floats),
                })
            }
            _ => Err(self.err_here(format!("expected an attribute value, found {}", self.found()))),
        }
    }

    fn int(&mut self) -> PResult<i64> {
        let text = self.expect(Token::Int)?;
        text.parse().map_err(|_| {
            self.pos -= 1;
            self.err_here(format!("integer `{text}` is out of range"))
        })
    }

    fn usize(&mut self) -> PResult<usize> {
        let text = self.expect(Token::Int)?;
        text.parse().map_err(|_| {
            self.pos -= 1;
            self.err_here(format!("expected a non-negative dimension, found `{text}`"))
        })
    }

    /// A float or integer literal, or `inf`/`nan`.
    fn number(&mut self) -> PResult<f64> {
        match self.peek() {
            Some(Token::Int) | Some(Token::Float) => {
                let text = self.peek_text();
                let v = if text == "-inf" {
                    f64::NEG_INFINITY
                } else {
                    text.parse().map_err(|_| self.err_here(format!("bad number `{text}`")))?
                };
                self.pos += 1;
                Ok(v)
            }
            Some(Token::Ident) if matches!(self.peek_text(), "inf" | "nan") => {
                let v = if self.peek_text() == "inf" { f64::INFINITY } else { f64::NAN };
                self.pos += 1;
                Ok(v)
            }
            _ => Err(self.err_here(format!("expected a number, found {}", self.found()))),
        }
    }

    /// `[n, n, …]`: returns the integer list if every entry is an INT, plus the floats.
    fn number_list(&mut self) -> PResult<(Option<Vec<i64>>, Vec<f64>)> {
        self.expect(Token::LBracket)?;
        let mut ints = Some(Vec::new());
        let mut floats = Vec::new();
        while self.peek() != Some(Token::RBracket) {
            if !floats.is_empty() {
                self.expect(Token::Comma)?;
            }
            if self.peek() == Some(Token::Int) {
                let v = self.int()?;
                if let Some(list) = ints.as_mut() {
                    list.push(v);
                }
                floats.push(v as f64);
            } else {
                floats.push(self.number()?);
                ints = None;
            }
        }
        self.expect(Token::RBracket)?;
        Ok((ints, floats))
    }

    fn tensor_type(&mut self) -> PResult<TensorType> {
        let word = self.peek_text();
        let Some(dtype) = (self.peek() == Some(Token::Ident)).then(|| DType::from_name(word)).flatten() else {
            return Err(self.err_here(format!("expected a tensor type such as fp16[1, 64], found {}", self.found())));
        };
        self.pos += 1;
        self.expect(Token::LBracket)?;
        let mut shape = Vec::new();
        while self.peek() != Some(Token::RBracket) {
            if !shape.is_empty() {
                self.expect(Token::Comma)?;
            }
            shape.push(self.usize()?);
        }
        self.expect(Token::RBracket)?;
        Ok(TensorType::new(dtype, shape))
    }

    fn ty(&mut self) -> PResult<Type> {
        if self.is_keyword("state") {
            self.pos += 1;
            self.expect(Token::LAngle)?;
            let t = self.tensor_type()?;
            self.expect(Token::RAngle)?;
            Ok(Type::State(t))
        } else {
            Ok(Type::Tensor(self.tensor_type()?))
        }
    }

    fn weight(&mut self) -> PResult<Weight> {
        self.keyword("weight")?;
        let name = self.expect(Token::Global)?[1..].to_string();
        self.expect(Token::Colon)?;
        let ty = self.tensor_type()?;
        self.expect(Token::Equals)?;
        let recipe = self.recipe()?;
        Ok(Weight { name, ty, recipe })
    }

    fn recipe(&mut self) -> PResult<Recipe> {
        let start = self.pos;
        let name = self.expect(Token::Ident)?;
        self.expect(Token::LParen)?;
        if name == "checkpoint" {
            let lit = self.expect(Token::Str)?;
            self.expect(Token::Colon)?;
            let ty = self.tensor_type()?;
            self.expect(Token::RParen)?;
            return Ok(Recipe::Checkpoint { tensor: unquote(lit), ty });
        }
        let mut inputs = Vec::new();
        while self.peek() == Some(Token::Ident) && self.peek_at(1) == Some(Token::LParen) {
            inputs.push(self.recipe()?);
            self.expect(Token::Comma)?;
        }
        let attrs = self.attr_list(Token::RParen)?;
        self.expect(Token::RParen)?;
        build_recipe(name, inputs, AttrMap::new(attrs)).map_err(|msg| {
            self.pos = start;
            self.err_here(format!("in recipe `{name}`: {msg}"))
        })
    }

    fn function(&mut self) -> PResult<Function> {
        self.keyword("func")?;
        let name = self.expect(Token::Global)?[1..].to_string();
        let mut f = Function::new(name);
        let mut scope: HashMap<String, ValueId> = HashMap::new();
        self.expect(Token::LParen)?;
        while self.peek() != Some(Token::RParen) {
            if !f.inputs.is_empty() {
                self.expect(Token::Comma)?;
            }
            let name = self.define(&scope)?;
            self.expect(Token::Colon)?;
            let ty = self.ty()?;
            let id = f.add_input(name.clone(), ty);
            scope.insert(name, id);
        }
        self.expect(Token::RParen)?;
        self.expect(Token::Arrow)?;
        self.expect(Token::LParen)?;
        let mut signature = Vec::new();
        while self.peek() != Some(Token::RParen) {
            if !signature.is_empty() {
                self.expect(Token::Comma)?;
            }
            let out_name = self.expect(Token::Ident)?.to_string();
            self.expect(Token::Colon)?;
            signature.push((out_name, self.ty()?));
        }
        self.expect(Token::RParen)?;
        self.expect(Token::LBrace)?;
        while !self.is_keyword("return") {
            self.statement(&mut f, &mut scope)?;
        }
        let return_pos = self.pos;
        self.pos += 1;
        let mut returned = Vec::new();
        if self.peek() == Some(Token::Local) {
            returned.push(self.use_value(&scope)?);
            while self.eat(Token::Comma) {
                returned.push(self.use_value(&scope)?);
            }
        }
        if returned.len() != signature.len() {
            self.pos = return_pos;
            return Err(self.err_here(format!(
                "return lists {} values but the signature declares {} outputs",
                returned.len(),
                signature.len()
            )));
        }
        self.expect(Token::RBrace)?;
        f.outputs = signature.into_iter().zip(returned).map(|((name, ty), value)| Output { name, ty, value }).collect();
        Ok(f)
    }

    /// A `%name` being defined; it must be new in the function.
    fn define(&mut self, scope: &HashMap<String, ValueId>) -> PResult<String> {
        let text = self.expect(Token::Local)?;
        let name = text[1..].to_string();
        if scope.contains_key(&name) {
            self.pos -= 1;
            return Err(self.err_here(format!("value %{name} is defined twice")));
        }
        Ok(name)
    }

    /// A `%name` being used; it must already be defined (SSA: use after definition).
    fn use_value(&mut self, scope: &HashMap<String, ValueId>) -> PResult<ValueId> {
        let text = self.expect(Token::Local)?;
        scope.get(&text[1..]).copied().ok_or_else(|| {
            self.pos -= 1;
            self.err_here(format!("use of undefined value {text} (values must be defined before use)"))
        })
    }

    fn operands(&mut self, scope: &HashMap<String, ValueId>) -> PResult<Vec<ValueId>> {
        self.expect(Token::LParen)?;
        let mut out = Vec::new();
        while self.peek() != Some(Token::RParen) {
            if !out.is_empty() {
                self.expect(Token::Comma)?;
            }
            out.push(self.use_value(scope)?);
        }
        self.expect(Token::RParen)?;
        Ok(out)
    }

    fn op_with_attrs(&mut self, scope: &HashMap<String, ValueId>) -> PResult<(Op, Vec<ValueId>)> {
        let name_pos = self.pos;
        let name = self.expect(Token::Ident)?;
        let operands = self.operands(scope)?;
        let attrs = if self.eat(Token::LBrace) {
            let a = self.attr_list(Token::RBrace)?;
            self.expect(Token::RBrace)?;
            a
        } else {
            BTreeMap::new()
        };
        let op = Op::from_name_and_attrs(name, AttrMap::new(attrs)).map_err(|msg| {
            self.pos = name_pos;
            self.err_here(if msg.starts_with("unknown op") { msg } else { format!("in `{name}`: {msg}") })
        })?;
        Ok((op, operands))
    }

    fn statement(&mut self, f: &mut Function, scope: &mut HashMap<String, ValueId>) -> PResult<()> {
        if self.peek() == Some(Token::Ident) {
            // A zero-result op such as `write_state(%s, %v)`.
            let (op, operands) = self.op_with_attrs(scope)?;
            f.push_node(op, operands, Vec::new());
            return Ok(());
        }
        if self.peek() != Some(Token::Local) {
            return Err(self.err_here(format!("expected an op or `return`, found {}", self.found())));
        }
        let mut names = Vec::new();
        loop {
            let name = self.define(scope)?;
            if names.contains(&name) {
                self.pos -= 1;
                return Err(self.err_here(format!("value %{name} is defined twice")));
            }
            names.push(name);
            if !self.eat(Token::Comma) {
                break;
            }
        }
        self.expect(Token::Equals)?;
        let op_pos = self.pos;
        let (op, operands, const_values) = if self.is_keyword("const") {
            self.pos += 1;
            let (ints, floats) = self.number_list()?;
            (None, Vec::new(), Some((ints, floats)))
        } else if self.is_keyword("weight") {
            self.pos += 1;
            let w = self.expect(Token::Global)?[1..].to_string();
            (Some(Op::Weight { name: w }), Vec::new(), None)
        } else {
            let (op, operands) = self.op_with_attrs(scope)?;
            (Some(op), operands, None)
        };
        self.expect(Token::Colon)?;
        let mut types = vec![self.ty()?];
        while self.eat(Token::Comma) {
            types.push(self.ty()?);
        }
        if types.len() != names.len() {
            self.pos = op_pos;
            return Err(self.err_here(format!("{} results named but {} types given", names.len(), types.len())));
        }
        let op = match (op, const_values) {
            (Some(op), _) => op,
            (None, Some((ints, floats))) => {
                let Type::Tensor(ty) = types[0].clone() else {
                    self.pos = op_pos;
                    return Err(self.err_here("a const must have a tensor type"));
                };
                let data = match ints {
                    Some(v) if !ty.dtype.is_float() => ConstData::Ints(v),
                    _ if ty.dtype.is_float() => ConstData::Floats(floats),
                    _ => {
                        self.pos = op_pos;
                        return Err(self.err_here(format!("const of {} needs integer literals", ty.dtype)));
                    }
                };
                Op::Const { ty, data }
            }
            (None, None) => unreachable!("const or op parsed"),
        };
        let node = f.push_node(op, operands, names.iter().cloned().zip(types).collect());
        for (name, &id) in names.into_iter().zip(&f.nodes[node].results) {
            scope.insert(name, id);
        }
        Ok(())
    }
}

/// Builds a recipe (other than `checkpoint`) from its call form.
fn build_recipe(name: &str, mut inputs: Vec<Recipe>, mut a: AttrMap) -> Result<Recipe, String> {
    let single = |inputs: &mut Vec<Recipe>| -> Result<Box<Recipe>, String> {
        if inputs.len() == 1 {
            Ok(Box::new(inputs.remove(0)))
        } else {
            Err(format!("expects 1 input recipe, got {}", inputs.len()))
        }
    };
    let none =
        |inputs: &Vec<Recipe>| if inputs.is_empty() { Ok(()) } else { Err("takes no input recipes".to_string()) };
    let to_usize = |v: i64, key: &str| usize::try_from(v).map_err(|_| format!("`{key}` must not be negative"));
    let r = match name {
        "cast" => Recipe::Cast { input: single(&mut inputs)?, dtype: a.dtype("dtype")? },
        "reshape" => Recipe::Reshape { input: single(&mut inputs)?, shape: a.sizes("shape")? },
        "transpose" => Recipe::Transpose { input: single(&mut inputs)?, perm: a.sizes("perm")? },
        "slice" => Recipe::Slice {
            input: single(&mut inputs)?,
            axis: to_usize(a.int("axis")?, "axis")?,
            start: to_usize(a.int("start")?, "start")?,
            end: to_usize(a.int("end")?, "end")?,
        },
        "concat" => {
            if inputs.is_empty() {
                return Err("needs at least one input recipe".into());
            }
            Recipe::Concat { inputs: std::mem::take(&mut inputs), axis: to_usize(a.int("axis")?, "axis")? }
        }
        "scale" => Recipe::Scale { input: single(&mut inputs)?, factor: a.float("factor")? },
        "offset" => Recipe::Offset { input: single(&mut inputs)?, value: a.float("value")? },
        "scale_along" => {
            let [input, scale]: [Recipe; 2] = std::mem::take(&mut inputs)
                .try_into()
                .map_err(|v: Vec<Recipe>| format!("expects 2 input recipes, got {}", v.len()))?;
            let axis = to_usize(a.int("axis")?, "axis")?;
            Recipe::ScaleAlong { input: Box::new(input), scale: Box::new(scale), axis }
        }
        "rope_cos" | "rope_sin" => {
            none(&inputs)?;
            let inv_freq = a.floats("inv_freq")?;
            let len = to_usize(a.int("len")?, "len")?;
            let scale = a.float("scale")?;
            let dtype = a.dtype("dtype")?;
            if name == "rope_cos" {
                Recipe::RopeCos { inv_freq, len, scale, dtype }
            } else {
                Recipe::RopeSin { inv_freq, len, scale, dtype }
            }
        }
        "lut_indices" | "lut_table" => {
            let input = single(&mut inputs)?;
            let bits = u32::try_from(a.int("bits")?).map_err(|_| "`bits` must be between 1 and 8".to_string())?;
            let group_size = to_usize(a.int("group_size")?, "group_size")?;
            let importance = a.opt_floats("importance")?;
            let compensation = a.opt_string("compensation")?;
            if name == "lut_indices" {
                Recipe::LutIndices { input, bits, group_size, importance, compensation }
            } else {
                Recipe::LutTable { input, bits, group_size, importance, compensation }
            }
        }
        other => {
            return Err(format!("unknown recipe (known: {})", Recipe::NAMES.join(", "))
                .replace("unknown recipe", &format!("unknown recipe `{other}`")));
        }
    };
    a.finish()?;
    Ok(r)
}
