//! The per-module and per-function state of the reader, and the helpers every op
//! translation uses (operand resolution, static parameters, typed node creation).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::consts::{ConstSource, MilConst, decode_value, float_attr};
use super::fuse::{Fused, find_fusions};
use super::prune::prune;
use super::source::{PackageTensors, TensorEntry};
use crate::ir::typing::infer;
use crate::ir::{ConstData, DType, Function, Module, Op, Recipe, TensorType, Type, ValueId, Weight};
use crate::mil::blob::BlobFile;
use crate::mil::dtype::ir_dtype;
use crate::mil::error::ReadError;
use crate::mil::names::NameTable;
use crate::mil::proto::argument::binding::Binding as B;
use crate::mil::proto::{self, DataType, NamedValueType, Operation};
use crate::mil::tensor_data::{ConstTensor, Elements, checked_numel};
use crate::mil::types::{MilTensorType, MilType, decode_type};

/// Module-wide state: the IR module being built and the tensor table behind its weights.
pub(crate) struct ModuleCtx {
    pub module: Module,
    tensors: PackageTensors,
    /// (offset, dtype, shape) → IR weight name: one IR weight per distinct blob view.
    by_blob: HashMap<(u64, DataType, Vec<usize>), String>,
    weight_names: NameTable,
    blob_views: HashMap<u64, usize>,
}

impl ModuleCtx {
    pub(crate) fn new(name: String, blobs: Option<Arc<BlobFile>>) -> Self {
        ModuleCtx {
            module: Module::new(name),
            tensors: PackageTensors::new(blobs),
            by_blob: HashMap::new(),
            weight_names: NameTable::default(),
            blob_views: HashMap::new(),
        }
    }

    pub(crate) fn tensors(&self) -> &PackageTensors {
        &self.tensors
    }

    pub(crate) fn finish(self) -> (Module, PackageTensors) {
        (self.module, self.tensors)
    }

    /// The IR weight for `c` viewed as `shape` (same element count), created on first use.
    pub(crate) fn weight_for(&mut self, func: &str, c: &MilConst, shape: &[usize]) -> Result<String, String> {
        let dtype = ir_dtype(c.dtype)
            .ok_or_else(|| format!("constant {} has dtype {:?}, which the IR lacks", c.name, c.dtype))?;
        let ty = TensorType::new(dtype, shape.to_vec());
        let tensor = match &c.source {
            ConstSource::Blob { offset } => {
                let key = (*offset, c.dtype, shape.to_vec());
                if let Some(name) = self.by_blob.get(&key) {
                    return Ok(name.clone());
                }
                // Validate now, so errors name the constant.
                self.tensors.blob_bytes(*offset, c.dtype, shape)?;
                let k = self.blob_views.entry(*offset).or_insert(0);
                let tensor = if *k == 0 { format!("blob:{offset}") } else { format!("blob:{offset}#{k}") };
                *k += 1;
                self.tensors.insert(
                    tensor.clone(),
                    TensorEntry::Blob { offset: *offset, dtype: c.dtype, shape: shape.to_vec() },
                );
                tensor
            }
            ConstSource::Immediate(t) => {
                let tensor = format!("inline:{func}/{}", c.name);
                let mut t = t.clone();
                t.shape = shape.to_vec();
                self.tensors.insert(tensor.clone(), TensorEntry::Inline(t));
                tensor
            }
        };
        let name = self.weight_names.fresh(&c.name);
        self.module.weights.push(Weight {
            name: name.clone(),
            ty: ty.clone(),
            recipe: Recipe::Checkpoint { tensor: tensor.clone(), ty },
        });
        if let ConstSource::Blob { offset } = c.source {
            self.by_blob.insert((offset, c.dtype, shape.to_vec()), name.clone());
        }
        Ok(name)
    }
}

/// What a MIL name is bound to.
#[derive(Clone, Debug)]
pub(crate) enum Bound {
    Value(ValueId),
    Const(Arc<MilConst>),
}

/// An op-level failure message.
pub(crate) type R<T = ()> = Result<T, String>;

/// Per-function reader state.
pub(crate) struct FnReader<'c> {
    pub ctx: &'c mut ModuleCtx,
    pub name: String,
    pub ir: Function,
    env: HashMap<String, Bound>,
    names: NameTable,
    /// MIL const name → IR value already materialised for it.
    materialised: HashMap<String, ValueId>,
}

/// Translates MIL function `name` into an IR function.
pub(crate) fn read_function(
    ctx: &mut ModuleCtx,
    name: &str,
    f: &proto::Function,
    defaults: &HashMap<String, Vec<usize>>,
) -> Result<Function, ReadError> {
    let ferr = |message: String| ReadError::Function { func: name.to_string(), message };
    if !f.attributes.is_empty() {
        return Err(ferr("function attributes are not supported".into()));
    }
    let block =
        f.block_specializations.get(&f.opset).ok_or_else(|| ferr(format!("no block for its opset {:?}", f.opset)))?;
    let mut r = FnReader {
        ctx,
        name: name.to_string(),
        ir: Function::new(name),
        env: HashMap::new(),
        names: NameTable::default(),
        materialised: HashMap::new(),
    };
    for input in &f.inputs {
        if !is_ir_local(&input.name) {
            return Err(ferr(format!("input {:?}: not a valid IR value name ([A-Za-z0-9_.]+)", input.name)));
        }
        if !r.names.reserve(&input.name) {
            return Err(ferr(format!("input {} is declared twice", input.name)));
        }
        let ty = decode_type(input.r#type.as_ref().ok_or_else(|| ferr(format!("input {} has no type", input.name)))?)
            .map_err(&ferr)?;
        let in_err = |m: String| ferr(format!("input {}: {m}", input.name));
        let ir_ty = match ty {
            MilType::Tensor(t) => Type::Tensor(r.static_type(&t, defaults.get(&input.name)).map_err(in_err)?),
            MilType::State(t) => Type::State(r.static_type(&t, None).map_err(in_err)?),
            MilType::Other(k) => return Err(ferr(format!("input {} is a {k}", input.name))),
        };
        let id = r.ir.add_input(input.name.clone(), ir_ty);
        r.env.insert(input.name.clone(), Bound::Value(id));
    }
    let fusions = find_fusions(&block.operations, &block.outputs);
    for (i, op) in block.operations.iter().enumerate() {
        let op_name = op_name(op);
        let oerr = |message: String| ReadError::Op {
            func: name.to_string(),
            op: op.r#type.clone(),
            name: op_name.clone(),
            message,
        };
        match fusions.get(&i) {
            Some(Fused::Skip) => continue,
            Some(fused) => r.lower_fused(fused, op).map_err(oerr)?,
            None => r.lower_op(op).map_err(oerr)?,
        }
    }
    let mut returned = HashSet::new();
    for out in &block.outputs {
        if !is_ir_ident(out) {
            return Err(ferr(format!("output {out:?}: not a valid IR output name ([A-Za-z_][A-Za-z0-9_]*)")));
        }
        if !returned.insert(out.as_str()) {
            return Err(ferr(format!("output {out} is returned twice")));
        }
        let v = r.value_of(out).map_err(|m| ferr(format!("output {out}: {m}")))?;
        if r.ir.values[v].ty.is_state() {
            return Err(ferr(format!("output {out} is a state, which cannot be returned")));
        }
        r.ir.add_output(out.clone(), v);
    }
    Ok(prune(&r.ir))
}

/// The `name` attribute of an op (or `?`).
pub(crate) fn op_name(op: &Operation) -> String {
    op.attributes
        .get("name")
        .and_then(|v| decode_value("name", v).ok())
        .and_then(|c| match c.source {
            ConstSource::Immediate(ConstTensor { elements: Elements::Str(s), .. }) => s.into_iter().next(),
            _ => None,
        })
        .unwrap_or_else(|| "?".to_string())
}

impl FnReader<'_> {
    /// A static IR type for a MIL tensor type, filling unknown dims from `default`.
    fn static_type(&self, t: &MilTensorType, default: Option<&Vec<usize>>) -> R<TensorType> {
        let dtype = reader_dtype(t.dtype).ok_or_else(|| format!("dtype {:?} has no IR counterpart", t.dtype))?;
        let shape = match (t.static_shape(), default) {
            (Some(s), _) => s,
            (None, Some(d)) if d.len() == t.dims.len() => {
                t.dims.iter().zip(d).map(|(k, &dflt)| k.unwrap_or(dflt)).collect()
            }
            _ => return Err(format!("flexible dims {:?} without a default shape", t.dims)),
        };
        let t = TensorType::new(dtype, shape);
        check_shape(&t)?;
        Ok(t)
    }

    // ----- bindings -----

    pub(crate) fn bind(&mut self, name: &str, b: Bound) {
        self.env.insert(name.to_string(), b);
    }

    fn lookup(&self, name: &str) -> R<&Bound> {
        self.env.get(name).ok_or_else(|| format!("{name} is not defined before its use"))
    }

    /// The bindings of parameter `param` (empty if absent).
    pub(crate) fn args<'o>(&self, op: &'o Operation, param: &str) -> Vec<&'o proto::argument::Binding> {
        op.inputs.get(param).map(|a| a.arguments.iter().collect()).unwrap_or_default()
    }

    /// What one binding refers to (inline values become anonymous constants).
    fn resolve(&self, b: &proto::argument::Binding, what: &str) -> R<Bound> {
        match b.binding.as_ref().ok_or("empty binding")? {
            B::Name(n) => self.lookup(n).cloned(),
            B::Value(v) => Ok(Bound::Const(Arc::new(decode_value(what, v)?))),
        }
    }

    /// The single binding of a parameter, or `None` if absent.
    pub(crate) fn param(&self, op: &Operation, param: &str) -> R<Option<Bound>> {
        match self.args(op, param).as_slice() {
            [] => Ok(None),
            [b] => self.resolve(b, &format!("{}_{param}", op_name(op))).map(Some),
            _ => Err(format!("parameter {param} has several bindings")),
        }
    }

    /// A constant parameter (error if bound to a run-time value).
    pub(crate) fn const_param(&self, op: &Operation, param: &str) -> R<Option<ConstTensor>> {
        match self.param(op, param)? {
            None => Ok(None),
            Some(Bound::Const(c)) => c.tensor(self.ctx.tensors()).map(Some),
            Some(Bound::Value(_)) => Err(format!("parameter {param} must be a compile-time constant")),
        }
    }

    pub(crate) fn ints(&self, op: &Operation, param: &str) -> R<Option<Vec<i64>>> {
        self.const_param(op, param)?
            .map(|c| c.ints().ok_or_else(|| format!("parameter {param} must hold integers")))
            .transpose()
    }

    pub(crate) fn int(&self, op: &Operation, param: &str) -> R<Option<i64>> {
        match self.ints(op, param)? {
            None => Ok(None),
            Some(v) if v.len() == 1 => Ok(Some(v[0])),
            Some(v) => Err(format!("parameter {param} must be a scalar, got {} values", v.len())),
        }
    }

    pub(crate) fn boolean(&self, op: &Operation, param: &str) -> R<Option<bool>> {
        Ok(self.int(op, param)?.map(|v| v != 0))
    }

    pub(crate) fn bools(&self, op: &Operation, param: &str) -> R<Option<Vec<bool>>> {
        Ok(self.ints(op, param)?.map(|v| v.into_iter().map(|x| x != 0).collect()))
    }

    pub(crate) fn string(&self, op: &Operation, param: &str) -> R<Option<String>> {
        match self.const_param(op, param)? {
            None => Ok(None),
            Some(ConstTensor { elements: Elements::Str(s), .. }) if s.len() == 1 => Ok(s.into_iter().next()),
            Some(_) => Err(format!("parameter {param} must be a string")),
        }
    }

    /// A float scalar parameter (fp32/fp16 values recover their short decimal spelling).
    pub(crate) fn float(&self, op: &Operation, param: &str) -> R<Option<f64>> {
        match self.const_param(op, param)? {
            None => Ok(None),
            Some(c) if c.numel() == 1 => Ok(Some(float_attr(c.dtype, c.get_f64(0).ok_or("not a number")?))),
            Some(_) => Err(format!("parameter {param} must be a scalar")),
        }
    }

    /// The constant bound to `param`, if it is one.
    pub(crate) fn const_of(&self, op: &Operation, param: &str) -> R<Option<Arc<MilConst>>> {
        Ok(match self.param(op, param)? {
            Some(Bound::Const(c)) => Some(c),
            _ => None,
        })
    }

    // ----- tensors -----

    /// The IR value a binding denotes, materialising constants.
    fn materialise(&mut self, b: Bound) -> R<ValueId> {
        match b {
            Bound::Value(v) => Ok(v),
            Bound::Const(c) => {
                if let Some(&v) = self.materialised.get(&c.name) {
                    return Ok(v);
                }
                let v = self.const_value(&c, &c.shape.clone())?;
                self.materialised.insert(c.name.clone(), v);
                Ok(v)
            }
        }
    }

    /// An IR value holding constant `c` viewed as `shape`: an IR `const` for small
    /// immediates the IR can spell, else a weight.
    pub(crate) fn const_value(&mut self, c: &MilConst, shape: &[usize]) -> R<ValueId> {
        let dtype = ir_dtype(c.dtype).ok_or_else(|| format!("constant {} has dtype {:?}", c.name, c.dtype))?;
        let ty = TensorType::new(dtype, shape.to_vec());
        if let ConstSource::Immediate(t) = &c.source
            && matches!(dtype, DType::F32 | DType::F16 | DType::I32 | DType::Bool)
        {
            let data = match &t.elements {
                Elements::Float(v) => ConstData::Floats(v.clone()),
                Elements::Int(v) => ConstData::Ints(v.clone()),
                Elements::Str(_) => return Err("string constants are not tensors".into()),
            };
            return self.push_internal(Op::Const { ty, data }, vec![], &c.name);
        }
        let weight = self.ctx.weight_for(&self.name, c, shape)?;
        self.push_internal(Op::Weight { name: weight }, vec![], &c.name)
    }

    /// The IR value bound to MIL name `name`.
    pub(crate) fn value_of(&mut self, name: &str) -> R<ValueId> {
        let b = self.lookup(name)?.clone();
        self.materialise(b)
    }

    /// The IR value of a (required) tensor parameter.
    pub(crate) fn tensor(&mut self, op: &Operation, param: &str) -> R<ValueId> {
        let b = self.param(op, param)?.ok_or_else(|| format!("missing parameter {param}"))?;
        self.materialise(b)
    }

    /// The IR values of a variadic parameter.
    pub(crate) fn tensors(&mut self, op: &Operation, param: &str) -> R<Vec<ValueId>> {
        let binds = self.args(op, param);
        let bounds: Vec<Bound> =
            binds.iter().map(|b| self.resolve(b, &format!("{}_{param}", op_name(op)))).collect::<R<_>>()?;
        bounds.into_iter().map(|b| self.materialise(b)).collect()
    }

    pub(crate) fn ty(&self, v: ValueId) -> &TensorType {
        self.ir.values[v].ty.tensor()
    }

    // ----- node creation -----

    fn infer_types(&self, op: &Op, operands: &[ValueId]) -> R<Vec<Type>> {
        let types: Vec<&Type> = operands.iter().map(|&o| &self.ir.values[o].ty).collect();
        let module = &self.ctx.module;
        let results = infer(op, &types, &|w| module.weight(w).map(|w| w.ty.clone()))
            .map_err(|e| format!("[{}] {}", e.rule, e.message))?;
        results.iter().try_for_each(|t| check_shape(t.tensor()))?;
        Ok(results)
    }

    /// Adds an IR node with a fresh result name derived from `base`.
    pub(crate) fn push_internal(&mut self, op: Op, operands: Vec<ValueId>, base: &str) -> R<ValueId> {
        let types = self.infer_types(&op, &operands)?;
        let named = types.into_iter().map(|t| (self.names.fresh(base), t)).collect();
        let node = self.ir.push_node(op, operands, named);
        self.ir.nodes[node].results.first().copied().ok_or_else(|| "op has no result".to_string())
    }

    /// Adds the IR node that produces the MIL op's outputs, checks its inferred types against
    /// the declared ones and binds the output names.
    pub(crate) fn push_outputs(&mut self, op: Op, operands: Vec<ValueId>, outputs: &[NamedValueType]) -> R {
        let types = self.infer_types(&op, &operands)?;
        if types.len() != outputs.len() {
            return Err(format!("the IR op gives {} results, the MIL op declares {}", types.len(), outputs.len()));
        }
        for (t, o) in types.iter().zip(outputs) {
            check_declared(t, o)?;
        }
        let named: Vec<(String, Type)> =
            types.into_iter().zip(outputs).map(|(t, o)| (self.names.fresh(&o.name), t)).collect();
        let node = self.ir.push_node(op, operands, named);
        let results = self.ir.nodes[node].results.clone();
        for (o, r) in outputs.iter().zip(results) {
            self.bind(&o.name, Bound::Value(r));
        }
        Ok(())
    }

    /// Binds the single output of `op` to an existing value after checking its type.
    pub(crate) fn alias_output(&mut self, op: &Operation, v: ValueId) -> R {
        let out = op.outputs.first().ok_or("op has no output")?;
        check_declared(&self.ir.values[v].ty, out)?;
        self.bind(&out.name, Bound::Value(v));
        Ok(())
    }

    /// A zero-result node (write_state).
    pub(crate) fn push_effect(&mut self, op: Op, operands: Vec<ValueId>) -> R {
        let types = self.infer_types(&op, &operands)?;
        if !types.is_empty() {
            return Err("expected no results".into());
        }
        self.ir.push_node(op, operands, vec![]);
        Ok(())
    }

    /// A scalar IR const of `dtype`.
    pub(crate) fn scalar(&mut self, dtype: DType, v: f64, base: &str) -> R<ValueId> {
        let data = if dtype.is_float() { ConstData::Floats(vec![v]) } else { ConstData::Ints(vec![v as i64]) };
        self.push_internal(Op::Const { ty: TensorType::new(dtype, vec![]), data }, vec![], base)
    }
}

/// The IR dtype the reader uses for a MIL dtype: the IR's own, and int32 for the narrow
/// integer types coremltools uses for indices (int16, uint16), whose values int32 holds.
pub(crate) fn reader_dtype(d: DataType) -> Option<DType> {
    match d {
        DataType::Int16 | DataType::Uint16 => Some(DType::I32),
        other => ir_dtype(other),
    }
}

/// Refuses a type no IR value can have: an element count beyond `i64` (see
/// [`checked_numel`]) or an empty axis (the IR, like Core ML, has no empty tensors). Every
/// value the reader creates passes this, so shape arithmetic on the values' types cannot
/// overflow and the module verifies.
fn check_shape(t: &TensorType) -> R {
    if checked_numel(&t.shape).is_none() {
        return Err(format!("{t} is too large (its non-zero dims multiply to more than 2^63 - 1)"));
    }
    if t.shape.contains(&0) {
        return Err(format!("{t} has an empty axis (the IR has no empty tensors)"));
    }
    Ok(())
}

// The IR verifier's lexical rules for names the reader takes over from the package as they
// are (function, input and output names), so that a name the IR cannot spell is reported as
// a problem of the package, not as an internal error.

/// `@function` names: `[A-Za-z0-9_.-]+`.
pub(crate) fn is_ir_symbol(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// `%value` names: `[A-Za-z0-9_.]+`.
fn is_ir_local(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "_.".contains(c))
}

/// Output names: `[A-Za-z_][A-Za-z0-9_]*`.
fn is_ir_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Checks an IR-inferred type against a declared MIL output type (dtype, rank, known dims).
fn check_declared(t: &Type, o: &NamedValueType) -> R {
    let declared = decode_type(o.r#type.as_ref().ok_or("output without a type")?)?;
    let (MilType::Tensor(d), Type::Tensor(t)) = (&declared, t) else {
        return Err(format!("output {} is declared {declared:?}, the IR gives {t}", o.name));
    };
    let same_dtype = reader_dtype(d.dtype) == Some(t.dtype);
    let same_dims = d.dims.len() == t.rank() && d.dims.iter().zip(&t.shape).all(|(k, &s)| k.is_none_or(|k| k == s));
    if !same_dtype || !same_dims {
        return Err(format!("output {} is declared {:?}{:?} but the IR infers {t}", o.name, d.dtype, d.dims));
    }
    Ok(())
}
