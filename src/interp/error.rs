//! The interpreter's error type. Every variant names where the problem is: the function, and
//! for op failures the op's index in the body, its name and its first result.

use crate::weights::WeightError;

use super::tensor::TensorError;

/// Why an evaluation (or a driver call) failed. Bad inputs and run-time errors of the program
/// (an out-of-range index, integer division by zero, …) come back as values of this type;
/// the interpreter does not panic on them.
#[derive(Debug, thiserror::Error)]
pub enum InterpError {
    #[error("the module has no function @{func}")]
    UnknownFunction { func: String },

    /// A function input is missing, unknown, or has the wrong type.
    #[error("@{func}: input `{input}`: {message}")]
    Input { func: String, input: String, message: String },

    /// An op failed: a run-time error, a typing violation on the actual operands, or a result
    /// that does not match the declared type.
    #[error("@{func}: op #{index} `{op}`{result}: {message}")]
    Op { func: String, index: usize, op: &'static str, result: String, message: String },

    /// A `weight` op could not materialise its weight.
    #[error("@{func}: op #{index} `weight`: @{weight}: {source}")]
    Weight {
        func: String,
        index: usize,
        weight: String,
        #[source]
        source: Box<WeightError>,
    },

    /// A function output is malformed (unknown value, state output, duplicate name).
    #[error("@{func}: output `{output}`: {message}")]
    Output { func: String, output: String, message: String },

    /// A tensor could not be built.
    #[error(transparent)]
    Tensor(#[from] TensorError),

    /// The runtime driver was misused or found a module it cannot drive.
    #[error("driver: {0}")]
    Driver(String),
}
