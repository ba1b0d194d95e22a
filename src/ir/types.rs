//! The IR type system: element dtypes, static tensor types and state types.
//! See `ir-spec/types.md`; the spellings here are the textual form.

use std::fmt;

/// Element type of a tensor.
///
/// The sub-byte unsigned types (`uint1` … `uint6`) exist only to hold palettization indices
/// (operands of `lut_to_dense`); `uint8` doubles as an 8-bit index type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    F32,
    F16,
    BF16,
    I32,
    I64,
    Bool,
    U1,
    U2,
    U3,
    U4,
    U6,
    U8,
}

impl DType {
    /// Every dtype, in spec order.
    pub const ALL: [DType; 12] = [
        DType::F32,
        DType::F16,
        DType::BF16,
        DType::I32,
        DType::I64,
        DType::Bool,
        DType::U1,
        DType::U2,
        DType::U3,
        DType::U4,
        DType::U6,
        DType::U8,
    ];

    /// The textual spelling (`fp16`, `int32`, `uint4`, …).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "fp32",
            DType::F16 => "fp16",
            DType::BF16 => "bf16",
            DType::I32 => "int32",
            DType::I64 => "int64",
            DType::Bool => "bool",
            DType::U1 => "uint1",
            DType::U2 => "uint2",
            DType::U3 => "uint3",
            DType::U4 => "uint4",
            DType::U6 => "uint6",
            DType::U8 => "uint8",
        }
    }

    pub fn from_name(name: &str) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.name() == name)
    }

    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F16 | DType::BF16)
    }

    /// Signed integers usable as indices and in integer arithmetic.
    pub fn is_int(self) -> bool {
        matches!(self, DType::I32 | DType::I64)
    }

    /// Unsigned index types for palettized weights.
    pub fn is_lut_index(self) -> bool {
        self.index_bits().is_some()
    }

    /// Bit width of an unsigned index dtype (`uint1` → 1 … `uint8` → 8).
    pub fn index_bits(self) -> Option<u32> {
        match self {
            DType::U1 => Some(1),
            DType::U2 => Some(2),
            DType::U3 => Some(3),
            DType::U4 => Some(4),
            DType::U6 => Some(6),
            DType::U8 => Some(8),
            _ => None,
        }
    }

    /// Storage size in bits of one element.
    pub fn bits(self) -> u32 {
        match self {
            DType::F32 | DType::I32 => 32,
            DType::F16 | DType::BF16 => 16,
            DType::I64 => 64,
            DType::Bool => 8,
            other => other.index_bits().unwrap_or(8),
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A statically shaped tensor type: `fp16[1, 64, 1, 8]`; a scalar is `fp32[]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TensorType {
    pub dtype: DType,
    pub shape: Vec<usize>,
}

impl TensorType {
    pub fn new(dtype: DType, shape: impl Into<Vec<usize>>) -> Self {
        TensorType { dtype, shape: shape.into() }
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// Number of elements (1 for a scalar). Saturates instead of overflowing so that hostile
    /// shapes cannot wrap around.
    pub fn numel(&self) -> usize {
        self.shape.iter().fold(1usize, |acc, &d| acc.saturating_mul(d))
    }

    /// Number of elements, or `None` if it overflows `usize`.
    pub fn checked_numel(&self) -> Option<usize> {
        self.shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
    }

    /// Size in bytes when densely packed (sub-byte types rounded up to whole bytes).
    pub fn byte_size(&self) -> u64 {
        (self.numel() as u64).saturating_mul(self.dtype.bits() as u64).div_ceil(8)
    }

    pub fn with_dtype(&self, dtype: DType) -> Self {
        TensorType { dtype, shape: self.shape.clone() }
    }

    pub fn with_shape(&self, shape: Vec<usize>) -> Self {
        TensorType { dtype: self.dtype, shape }
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[", self.dtype)?;
        for (i, d) in self.shape.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

/// The type of an SSA value: a tensor, or a mutable state holding a tensor (Core ML state,
/// used for the KV cache). States appear only as function inputs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Type {
    Tensor(TensorType),
    State(TensorType),
}

impl Type {
    /// The tensor type, or the tensor type held by a state.
    pub fn tensor(&self) -> &TensorType {
        match self {
            Type::Tensor(t) | Type::State(t) => t,
        }
    }

    pub fn as_tensor(&self) -> Option<&TensorType> {
        match self {
            Type::Tensor(t) => Some(t),
            Type::State(_) => None,
        }
    }

    pub fn is_state(&self) -> bool {
        matches!(self, Type::State(_))
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Tensor(t) => write!(f, "{t}"),
            Type::State(t) => write!(f, "state<{t}>"),
        }
    }
}

impl From<TensorType> for Type {
    fn from(t: TensorType) -> Self {
        Type::Tensor(t)
    }
}
