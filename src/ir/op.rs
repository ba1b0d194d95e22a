//! The op set. Every op has a textual name, typed attributes and a typing rule
//! (`super::typing::infer`). `ir-spec/ops.md` has one section per op; a test keeps the two in
//! sync through [`Op::NAMES`].

use super::attr::{AttrMap, AttrValue};
use super::types::{DType, TensorType};

/// The data of an inline `const` op. Floats are stored as `f64` (exact for every fp16, bf16
/// and fp32 value); integers and bools as `i64`. A single value is a splat.
#[derive(Clone, Debug, PartialEq)]
pub enum ConstData {
    Floats(Vec<f64>),
    Ints(Vec<i64>),
}

impl ConstData {
    pub fn len(&self) -> usize {
        match self {
            ConstData::Floats(v) => v.len(),
            ConstData::Ints(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Value `i` as f64, broadcasting a splat.
    pub fn get_f64(&self, i: usize) -> f64 {
        match self {
            ConstData::Floats(v) => v[if v.len() == 1 { 0 } else { i }],
            ConstData::Ints(v) => v[if v.len() == 1 { 0 } else { i }] as f64,
        }
    }
}

/// How `gelu` approximates the Gaussian CDF.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GeluMode {
    Exact,
    Tanh,
}

/// One operation. Operands are not stored here (see `Node`); only attributes are.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Inline literal tensor of the given type.
    Const {
        ty: TensorType,
        data: ConstData,
    },
    /// Reference to a module weight by name.
    Weight {
        name: String,
    },
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Maximum,
    Minimum,
    Neg,
    Sqrt,
    Rsqrt,
    Exp,
    Sigmoid,
    Silu,
    Gelu {
        mode: GeluMode,
    },
    ReduceSum {
        axes: Vec<i64>,
        keep_dims: bool,
    },
    ReduceMean {
        axes: Vec<i64>,
        keep_dims: bool,
    },
    ReduceMax {
        axes: Vec<i64>,
        keep_dims: bool,
    },
    Softmax {
        axis: i64,
    },
    RmsNorm {
        axis: i64,
        eps: f64,
    },
    LayerNorm {
        axes: Vec<i64>,
        eps: f64,
    },
    Matmul {
        transpose_a: bool,
        transpose_b: bool,
    },
    Linear,
    Conv {
        strides: Vec<usize>,
        pads: Vec<usize>,
        dilations: Vec<usize>,
        groups: usize,
    },
    Reshape {
        shape: Vec<usize>,
    },
    Transpose {
        perm: Vec<usize>,
    },
    Concat {
        axis: i64,
    },
    Split {
        axis: i64,
        sizes: Vec<usize>,
    },
    Slice {
        begin: Vec<usize>,
        end: Vec<usize>,
    },
    SliceUpdate,
    Expand {
        shape: Vec<usize>,
    },
    Squeeze {
        axes: Vec<i64>,
    },
    ExpandDims {
        axes: Vec<i64>,
    },
    Gather {
        axis: i64,
    },
    Cast {
        dtype: DType,
    },
    Argmax {
        axis: i64,
        keep_dims: bool,
    },
    ReadState,
    WriteState,
    LutToDense,
}

fn ints_to_i64(v: &[usize]) -> AttrValue {
    AttrValue::Ints(v.iter().map(|&x| x as i64).collect())
}

impl Op {
    /// Every op name, in spec order.
    pub const NAMES: &'static [&'static str] = &[
        "const",
        "weight",
        "add",
        "sub",
        "mul",
        "div",
        "pow",
        "maximum",
        "minimum",
        "neg",
        "sqrt",
        "rsqrt",
        "exp",
        "sigmoid",
        "silu",
        "gelu",
        "reduce_sum",
        "reduce_mean",
        "reduce_max",
        "softmax",
        "rms_norm",
        "layer_norm",
        "matmul",
        "linear",
        "conv",
        "reshape",
        "transpose",
        "concat",
        "split",
        "slice",
        "slice_update",
        "expand",
        "squeeze",
        "expand_dims",
        "gather",
        "cast",
        "argmax",
        "read_state",
        "write_state",
        "lut_to_dense",
    ];

    /// The textual name of the op.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Const { .. } => "const",
            Op::Weight { .. } => "weight",
            Op::Add => "add",
            Op::Sub => "sub",
            Op::Mul => "mul",
            Op::Div => "div",
            Op::Pow => "pow",
            Op::Maximum => "maximum",
            Op::Minimum => "minimum",
            Op::Neg => "neg",
            Op::Sqrt => "sqrt",
            Op::Rsqrt => "rsqrt",
            Op::Exp => "exp",
            Op::Sigmoid => "sigmoid",
            Op::Silu => "silu",
            Op::Gelu { .. } => "gelu",
            Op::ReduceSum { .. } => "reduce_sum",
            Op::ReduceMean { .. } => "reduce_mean",
            Op::ReduceMax { .. } => "reduce_max",
            Op::Softmax { .. } => "softmax",
            Op::RmsNorm { .. } => "rms_norm",
            Op::LayerNorm { .. } => "layer_norm",
            Op::Matmul { .. } => "matmul",
            Op::Linear => "linear",
            Op::Conv { .. } => "conv",
            Op::Reshape { .. } => "reshape",
            Op::Transpose { .. } => "transpose",
            Op::Concat { .. } => "concat",
            Op::Split { .. } => "split",
            Op::Slice { .. } => "slice",
            Op::SliceUpdate => "slice_update",
            Op::Expand { .. } => "expand",
            Op::Squeeze { .. } => "squeeze",
            Op::ExpandDims { .. } => "expand_dims",
            Op::Gather { .. } => "gather",
            Op::Cast { .. } => "cast",
            Op::Argmax { .. } => "argmax",
            Op::ReadState => "read_state",
            Op::WriteState => "write_state",
            Op::LutToDense => "lut_to_dense",
        }
    }

    /// The attributes in printing order. `const` and `weight` have their own syntax and
    /// return no attributes here.
    pub fn attrs(&self) -> Vec<(&'static str, AttrValue)> {
        use AttrValue as A;
        match self {
            Op::Gelu { mode } => vec![(
                "mode",
                A::Str(match mode {
                    GeluMode::Exact => "exact".into(),
                    GeluMode::Tanh => "tanh".into(),
                }),
            )],
            Op::ReduceSum { axes, keep_dims }
            | Op::ReduceMean { axes, keep_dims }
            | Op::ReduceMax { axes, keep_dims } => {
                vec![("axes", A::Ints(axes.clone())), ("keep_dims", A::Bool(*keep_dims))]
            }
            Op::Softmax { axis } | Op::Concat { axis } | Op::Gather { axis } => {
                vec![("axis", A::Int(*axis))]
            }
            Op::RmsNorm { axis, eps } => vec![("axis", A::Int(*axis)), ("eps", A::Float(*eps))],
            Op::LayerNorm { axes, eps } => {
                vec![("axes", A::Ints(axes.clone())), ("eps", A::Float(*eps))]
            }
            Op::Matmul { transpose_a, transpose_b } => {
                vec![("transpose_a", A::Bool(*transpose_a)), ("transpose_b", A::Bool(*transpose_b))]
            }
            Op::Conv { strides, pads, dilations, groups } => vec![
                ("strides", ints_to_i64(strides)),
                ("pads", ints_to_i64(pads)),
                ("dilations", ints_to_i64(dilations)),
                ("groups", A::Int(*groups as i64)),
            ],
            Op::Reshape { shape } | Op::Expand { shape } => vec![("shape", ints_to_i64(shape))],
            Op::Transpose { perm } => vec![("perm", ints_to_i64(perm))],
            Op::Split { axis, sizes } => {
                vec![("axis", A::Int(*axis)), ("sizes", ints_to_i64(sizes))]
            }
            Op::Slice { begin, end } => {
                vec![("begin", ints_to_i64(begin)), ("end", ints_to_i64(end))]
            }
            Op::Squeeze { axes } | Op::ExpandDims { axes } => vec![("axes", A::Ints(axes.clone()))],
            Op::Cast { dtype } => vec![("dtype", A::DType(*dtype))],
            Op::Argmax { axis, keep_dims } => {
                vec![("axis", A::Int(*axis)), ("keep_dims", A::Bool(*keep_dims))]
            }
            _ => Vec::new(),
        }
    }

    /// Builds an op (other than `const`/`weight`) from its name and attribute dictionary.
    pub fn from_name_and_attrs(name: &str, mut a: AttrMap) -> Result<Op, String> {
        let op = match name {
            "add" => Op::Add,
            "sub" => Op::Sub,
            "mul" => Op::Mul,
            "div" => Op::Div,
            "pow" => Op::Pow,
            "maximum" => Op::Maximum,
            "minimum" => Op::Minimum,
            "neg" => Op::Neg,
            "sqrt" => Op::Sqrt,
            "rsqrt" => Op::Rsqrt,
            "exp" => Op::Exp,
            "sigmoid" => Op::Sigmoid,
            "silu" => Op::Silu,
            "gelu" => Op::Gelu {
                mode: match a.string("mode")?.as_str() {
                    "exact" => GeluMode::Exact,
                    "tanh" => GeluMode::Tanh,
                    other => return Err(format!("gelu mode must be \"exact\" or \"tanh\", found {other:?}")),
                },
            },
            "reduce_sum" => Op::ReduceSum { axes: a.ints("axes")?, keep_dims: a.bool("keep_dims")? },
            "reduce_mean" => Op::ReduceMean { axes: a.ints("axes")?, keep_dims: a.bool("keep_dims")? },
            "reduce_max" => Op::ReduceMax { axes: a.ints("axes")?, keep_dims: a.bool("keep_dims")? },
            "softmax" => Op::Softmax { axis: a.int("axis")? },
            "rms_norm" => Op::RmsNorm { axis: a.int("axis")?, eps: a.float("eps")? },
            "layer_norm" => Op::LayerNorm { axes: a.ints("axes")?, eps: a.float("eps")? },
            "matmul" => Op::Matmul { transpose_a: a.bool("transpose_a")?, transpose_b: a.bool("transpose_b")? },
            "linear" => Op::Linear,
            "conv" => Op::Conv {
                strides: a.sizes("strides")?,
                pads: a.sizes("pads")?,
                dilations: a.sizes("dilations")?,
                groups: usize::try_from(a.int("groups")?)
                    .map_err(|_| "attribute `groups` must not be negative".to_string())?,
            },
            "reshape" => Op::Reshape { shape: a.sizes("shape")? },
            "transpose" => Op::Transpose { perm: a.sizes("perm")? },
            "concat" => Op::Concat { axis: a.int("axis")? },
            "split" => Op::Split { axis: a.int("axis")?, sizes: a.sizes("sizes")? },
            "slice" => Op::Slice { begin: a.sizes("begin")?, end: a.sizes("end")? },
            "slice_update" => Op::SliceUpdate,
            "expand" => Op::Expand { shape: a.sizes("shape")? },
            "squeeze" => Op::Squeeze { axes: a.ints("axes")? },
            "expand_dims" => Op::ExpandDims { axes: a.ints("axes")? },
            "gather" => Op::Gather { axis: a.int("axis")? },
            "cast" => Op::Cast { dtype: a.dtype("dtype")? },
            "argmax" => Op::Argmax { axis: a.int("axis")?, keep_dims: a.bool("keep_dims")? },
            "read_state" => Op::ReadState,
            "write_state" => Op::WriteState,
            "lut_to_dense" => Op::LutToDense,
            "const" | "weight" => return Err(format!("`{name}` has its own syntax")),
            other => return Err(format!("unknown op `{other}`")),
        };
        a.finish()?;
        Ok(op)
    }

    /// Ops whose only effect is their results (everything except `write_state`).
    pub fn is_pure(&self) -> bool {
        !matches!(self, Op::WriteState)
    }
}
