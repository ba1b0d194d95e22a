//! Lowering one IR function to one MIL function (`proto::Function`).
//!
//! Conventions (those of coremltools, which Core ML's compiler expects):
//! - every op parameter is an input bound **by name**; literals become separate `const`
//!   ops named `<op>_<param>` (made unique); non-const ops carry only the `name` attribute;
//! - IR `weight`/`const` values become `const` ops at their first use in the function; a
//!   weight's const op points at the package's single stored copy (blob or immediate);
//! - `constexpr_lut_to_dense` takes its parameters as inline values (spec ≥ 9);
//! - ops that have no single MIL counterpart are lowered to short fixed sequences whose
//!   intermediate values are named `<result>_<kind>_<part>` (e.g. `x_rmsnorm_cat`), which
//!   the reader recognises to restore the IR op exactly (see `docs/emitter.md`).
//!
//! Pure ops whose results reach no output and no state write are not emitted.
//!
//! Invariants: every emitted name is a valid, unique identifier within the function; an IR
//! value is bound to exactly one MIL name before any op uses it (SSA order is kept); output
//! values are named after their output, or an `identity` op provides the output name.

mod builder;
mod consts;
mod elementwise;
pub(crate) mod flex;
mod linalg;
mod reduce;
mod shape;
pub(crate) mod sink;
mod state;
pub(crate) mod weights;

use std::collections::HashMap;

use flex::Flex;
use sink::BlobSink;
use weights::WeightTable;

use crate::ir::{Function, Module, Node, Op, TensorType, Type, ValueDef, ValueId};
use crate::mil::dtype::mil_dtype;
use crate::mil::error::EmitError;
use crate::mil::names::{NameTable, is_identifier};
use crate::mil::proto::{self, Block, NamedValueType, Operation, ValueType};
use crate::mil::types::{state_type, tensor_type};

/// The opset of spec version 9 (iOS18 / macOS15).
pub const OPSET: &str = "CoreML8";

/// A tensor input: name, type and enumerated shapes (if flexible).
pub(crate) type InputInterface = (String, TensorType, Option<Vec<Vec<usize>>>);

/// A function's Core ML interface, for the model description.
#[derive(Clone, Debug)]
pub(crate) struct FunctionInterface {
    pub name: String,
    /// Tensor inputs in order, with their enumerated shapes (if any).
    pub inputs: Vec<InputInterface>,
    pub states: Vec<(String, TensorType)>,
    /// Outputs with a flag telling whether any dimension is flexible.
    pub outputs: Vec<(String, TensorType, bool)>,
}

/// One lowered function.
pub(crate) struct LoweredFunction {
    pub function: proto::Function,
    pub interface: FunctionInterface,
    pub op_count: usize,
}

/// An op-level failure message (wrapped into [`EmitError::Op`] with the op's position).
type R<T = ()> = Result<T, String>;

/// Lowers `func` (from `module`) as the MIL function `mil_name`.
pub(crate) fn lower_function(
    module: &Module,
    func: &Function,
    spec: &crate::mil::FunctionSpec,
    weights: &WeightTable,
    sink: &mut BlobSink,
) -> Result<LoweredFunction, EmitError> {
    let flex = flex::flexible_dims(module, func, &spec.enumerated_shapes)?;
    let mut e = FnEmitter::new(func, weights, sink, flex)?;
    let live = live_nodes(func);
    for (id, node) in func.nodes.iter().filter(|(id, _)| live[id.index()]) {
        e.lower_node(node).map_err(|message| {
            let result = node.results.first().map(|&r| format!(" (%{})", func.values[r].name)).unwrap_or_default();
            EmitError::Op { func: func.name.clone(), index: id.index(), op: node.op.name(), result, message }
        })?;
    }
    let outputs = e.finish_outputs().map_err(|message| EmitError::Function { func: func.name.clone(), message })?;
    let interface = e.interface(&spec.name, &spec.enumerated_shapes);
    let op_count = e.ops.len();
    let inputs = e.function_inputs();
    let block = Block { inputs: vec![], outputs, operations: e.ops, attributes: Default::default() };
    let function = proto::Function {
        inputs,
        opset: OPSET.to_string(),
        block_specializations: [(OPSET.to_string(), block)].into_iter().collect(),
        attributes: Default::default(),
    };
    Ok(LoweredFunction { function, interface, op_count })
}

/// Which nodes contribute to an output or a state write (dead pure nodes are not emitted,
/// as Core ML would drop them anyway).
fn live_nodes(func: &Function) -> Vec<bool> {
    let mut live_value = vec![false; func.values.len()];
    for o in &func.outputs {
        live_value[o.value.index()] = true;
    }
    let mut live = vec![false; func.nodes.len()];
    for (id, node) in func.nodes.iter().rev() {
        if !node.op.is_pure() || node.results.iter().any(|r| live_value[r.index()]) {
            live[id.index()] = true;
            for o in &node.operands {
                live_value[o.index()] = true;
            }
        }
    }
    live
}

/// Per-function lowering state.
pub(crate) struct FnEmitter<'a> {
    func: &'a Function,
    weights: &'a WeightTable,
    sink: &'a mut BlobSink,
    flex: Flex,
    names: NameTable,
    ops: Vec<Operation>,
    /// The MIL name each IR value is bound to (by arena index), once defined.
    bound: Vec<Option<String>>,
    /// The name planned for each IR value's defining op (by arena index).
    planned: Vec<String>,
    /// IR weight name → MIL const name in this function.
    weight_consts: HashMap<String, String>,
    /// `(begin name, update shape)` → the MIL name of `begin + shape`, so slice_updates at
    /// the same offset with the same size share one `end` computation.
    slice_ends: HashMap<(String, Vec<i64>), String>,
    /// Values known at compile time (weights, consts and pure ops of them).
    is_const: Vec<bool>,
}

impl<'a> FnEmitter<'a> {
    fn new(
        func: &'a Function,
        weights: &'a WeightTable,
        sink: &'a mut BlobSink,
        flex: Flex,
    ) -> Result<Self, EmitError> {
        let fail = |message: String| EmitError::Function { func: func.name.clone(), message };
        let n = func.values.len();
        let mut names = NameTable::default();
        let mut planned = vec![String::new(); n];
        let mut bound = vec![None; n];
        for &id in &func.inputs {
            let v = &func.values[id];
            if !is_identifier(&v.name) {
                return Err(fail(format!("input name {:?} is not a Core ML identifier", v.name)));
            }
            let t = v.ty.tensor();
            if matches!(t.dtype, crate::ir::DType::BF16 | crate::ir::DType::I64) || t.dtype.is_lut_index() {
                return Err(fail(format!("input {} has dtype {}, which Core ML inputs cannot carry", v.name, t.dtype)));
            }
            if !v.ty.is_state() && crate::mil::dtype::array_dtype(t.dtype).is_none() {
                return Err(fail(format!(
                    "input {} has dtype {}; Core ML inputs are fp32, fp16 or int32",
                    v.name, t.dtype
                )));
            }
            names.reserve(&v.name);
            planned[id.index()] = v.name.clone();
            bound[id.index()] = Some(v.name.clone());
        }
        // Output names are the feature names; claim them before anything else.
        let mut output_owner: HashMap<usize, String> = HashMap::new();
        for o in &func.outputs {
            if !is_identifier(&o.name) {
                return Err(fail(format!("output name {:?} is not a Core ML identifier", o.name)));
            }
            if !names.reserve(&o.name) {
                return Err(fail(format!("output name {} is used twice or collides with an input", o.name)));
            }
            let t = o.ty.tensor();
            if o.ty.is_state() || crate::mil::dtype::array_dtype(t.dtype).is_none() {
                return Err(fail(format!(
                    "output {} has type {}; Core ML outputs are fp32, fp16 or int32 tensors",
                    o.name, o.ty
                )));
            }
            let computed = matches!(func.values[o.value].def, ValueDef::Result { node, .. }
                if !matches!(func.nodes[node].op, Op::Weight { .. } | Op::Const { .. }));
            if computed {
                output_owner.entry(o.value.index()).or_insert_with(|| o.name.clone());
            }
        }
        let mut is_const = vec![false; n];
        for (_, node) in func.nodes.iter() {
            let c = match node.op {
                Op::Weight { .. } | Op::Const { .. } => true,
                Op::ReadState | Op::WriteState => false,
                _ => node.operands.iter().all(|o| is_const[o.index()]),
            };
            for &r in &node.results {
                is_const[r.index()] = c;
                planned[r.index()] = match output_owner.get(&r.index()) {
                    Some(name) => name.clone(),
                    None => names.fresh(&func.values[r].name),
                };
            }
        }
        Ok(FnEmitter {
            func,
            weights,
            sink,
            flex,
            names,
            ops: Vec::new(),
            bound,
            planned,
            weight_consts: HashMap::new(),
            slice_ends: HashMap::new(),
            is_const,
        })
    }

    // ----- types -----

    /// The IR tensor type of a value (the held type for a state).
    fn tensor_ty(&self, v: ValueId) -> &'a TensorType {
        self.func.values[v].ty.tensor()
    }

    /// The MIL type of a value, with flexible dims unknown.
    fn mil_ty(&self, v: ValueId) -> ValueType {
        let t = self.tensor_ty(v);
        match &self.func.values[v].ty {
            Type::State(_) => state_type(mil_dtype(t.dtype), &t.shape),
            Type::Tensor(_) => {
                let dims: Vec<Option<usize>> = t
                    .shape
                    .iter()
                    .enumerate()
                    .map(|(d, &s)| (!self.flex.is_flexible(v.index(), d)).then_some(s))
                    .collect();
                tensor_type(mil_dtype(t.dtype), &dims)
            }
        }
    }

    /// A static MIL tensor type.
    fn static_ty(dtype: crate::ir::DType, shape: &[usize]) -> ValueType {
        let dims: Vec<Option<usize>> = shape.iter().map(|&d| Some(d)).collect();
        tensor_type(mil_dtype(dtype), &dims)
    }

    /// Fails if any of `dims` of value `v` is flexible (the lowering needs them static).
    fn require_static(&self, v: ValueId, dims: impl IntoIterator<Item = usize>, why: &str) -> R {
        for d in dims {
            if self.flex.is_flexible(v.index(), d) {
                return Err(format!("{why} needs dimension {d} of %{} to be static", self.func.values[v].name));
            }
        }
        Ok(())
    }

    // ----- names and binding -----

    /// The planned MIL name of result `k` of `node`.
    fn result_name(&self, node: &Node, k: usize) -> String {
        self.planned[node.results[k].index()].clone()
    }

    fn bind(&mut self, v: ValueId, name: String) {
        self.bound[v.index()] = Some(name);
    }

    /// A fresh name for an intermediate value of a multi-op lowering.
    fn fresh(&mut self, base: &str) -> String {
        self.names.fresh(base)
    }

    /// The MIL name holding IR value `v`, emitting the const op of a weight or literal on
    /// first use.
    fn operand(&mut self, v: ValueId) -> R<String> {
        if let Some(name) = &self.bound[v.index()] {
            return Ok(name.clone());
        }
        let ValueDef::Result { node, .. } = self.func.values[v].def else {
            return Err(format!("internal: input %{} is unbound", self.func.values[v].name));
        };
        let name = match &self.func.nodes[node].op {
            Op::Weight { name } => self.weight_const(name)?,
            Op::Const { ty, data } => {
                let c = consts::literal(ty, data)?;
                let planned = self.planned[v.index()].clone();
                let value = self.const_value(c)?;
                self.const_op(&planned, value)
            }
            other => {
                return Err(format!(
                    "internal: %{} (from `{}`) used before definition",
                    self.func.values[v].name,
                    other.name()
                ));
            }
        };
        self.bind(v, name.clone());
        Ok(name)
    }

    /// True if `v` is known at compile time.
    fn is_const(&self, v: ValueId) -> bool {
        self.is_const[v.index()]
    }

    // ----- dispatch -----

    fn lower_node(&mut self, node: &Node) -> R {
        use Op::*;
        match &node.op {
            // Literals and weights are emitted at first use (see `operand`).
            Const { .. } | Weight { .. } => Ok(()),
            Add => self.binary(node, "add"),
            Sub => self.binary(node, "sub"),
            Mul => self.binary(node, "mul"),
            Div => self.div(node),
            Pow => self.binary(node, "pow"),
            Maximum => self.binary(node, "maximum"),
            Minimum => self.binary(node, "minimum"),
            Neg => self.neg(node),
            Sqrt => self.unary(node, "sqrt"),
            Rsqrt => self.rsqrt(node),
            Exp => self.unary(node, "exp"),
            Sigmoid => self.unary(node, "sigmoid"),
            Silu => self.unary(node, "silu"),
            Gelu { mode } => self.gelu(node, *mode),
            Cast { dtype } => self.cast(node, *dtype),
            ReduceSum { axes, keep_dims } => self.reduce(node, "reduce_sum", axes, *keep_dims),
            ReduceMean { axes, keep_dims } => self.reduce(node, "reduce_mean", axes, *keep_dims),
            ReduceMax { axes, keep_dims } => self.reduce(node, "reduce_max", axes, *keep_dims),
            Softmax { axis } => self.softmax(node, *axis),
            Argmax { axis, keep_dims } => self.argmax(node, *axis, *keep_dims),
            LayerNorm { axes, eps } => self.layer_norm(node, axes, *eps),
            RmsNorm { axis, eps } => self.rms_norm(node, *axis, *eps),
            Matmul { transpose_a, transpose_b } => self.matmul(node, *transpose_a, *transpose_b),
            Linear => self.linear(node),
            Conv { strides, pads, dilations, groups } => self.conv(node, strides, pads, dilations, *groups),
            Reshape { shape } => self.reshape(node, shape),
            Transpose { perm } => self.transpose(node, perm),
            Concat { axis } => self.concat(node, *axis),
            Split { axis, sizes } => self.split(node, *axis, sizes),
            Slice { begin, end } => self.slice(node, begin, end),
            SliceUpdate => self.slice_update(node),
            Expand { shape } => self.expand(node, shape),
            Squeeze { axes } => self.squeeze(node, axes),
            ExpandDims { axes } => self.expand_dims(node, axes),
            Gather { axis } => self.gather(node, *axis),
            ReadState => self.read_state(node),
            WriteState => self.write_state(node),
            LutToDense => self.lut_to_dense(node),
        }
    }

    /// Emits a single-result op `mil` with the given inputs, named after the IR result.
    fn emit_result(&mut self, node: &Node, mil: &str, inputs: Vec<(&str, Vec<String>)>) -> R {
        let name = self.result_name(node, 0);
        let ty = self.mil_ty(node.results[0]);
        self.push_simple(mil, &name, inputs, ty);
        self.bind(node.results[0], name);
        Ok(())
    }

    // ----- function boundary -----

    /// Names the outputs: values already named after their output are returned directly,
    /// the rest through an `identity` op.
    fn finish_outputs(&mut self) -> R<Vec<String>> {
        let mut names = Vec::with_capacity(self.func.outputs.len());
        for o in &self.func.outputs {
            let src = self.operand(o.value)?;
            if src != o.name {
                let ty = self.mil_ty(o.value);
                self.push_simple("identity", &o.name, vec![("x", vec![src])], ty);
            }
            names.push(o.name.clone());
        }
        Ok(names)
    }

    fn function_inputs(&self) -> Vec<NamedValueType> {
        self.func
            .inputs
            .iter()
            .map(|&id| NamedValueType { name: self.func.values[id].name.clone(), r#type: Some(self.mil_ty(id)) })
            .collect()
    }

    fn interface(
        &self,
        mil_name: &str,
        enumerated: &std::collections::BTreeMap<String, Vec<Vec<usize>>>,
    ) -> FunctionInterface {
        let mut inputs = Vec::new();
        let mut states = Vec::new();
        for &id in &self.func.inputs {
            let v = &self.func.values[id];
            match &v.ty {
                Type::Tensor(t) => inputs.push((v.name.clone(), t.clone(), enumerated.get(&v.name).cloned())),
                Type::State(t) => states.push((v.name.clone(), t.clone())),
            }
        }
        let outputs = self
            .func
            .outputs
            .iter()
            .map(|o| (o.name.clone(), o.ty.tensor().clone(), self.flex.any(o.value.index())))
            .collect();
        FunctionInterface { name: mil_name.to_string(), inputs, states, outputs }
    }
}
