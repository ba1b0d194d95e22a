//! The reference interpreter: evaluates IR functions on concrete tensors with ndarray, in
//! f32 arithmetic (f64 for accumulations and transcendentals), rounding fp16/bf16 results
//! after every op as `ir-spec/ops.md` prescribes.
//!
//! - [`tensor`]: [`Tensor`], the run-time value, and dtype rounding.
//! - [`evaluate`]: runs one function (inputs and states bound by name).
//! - [`exec`]: [`ExecPlan`], a function compiled once (ops resolved, typing checked, last
//!   uses known) and run many times on buffers reused through a [`BufferPool`].
//! - [`driver`]: [`Session`], the ANEMLL driving protocol of `docs/module-conventions.md`
//!   (prefill, decode, teacher forcing, greedy generation).
//! - one file per op family: `elementwise`, `reduce`, `norm`, `linalg`, `conv`, `shape`,
//!   `index`, `cast`; `erf` is the error function behind exact GELU.
//! - weights kept in their stored form: `rows` ([`rows::MatrixRows`], fp16 / LUT rows
//!   decoded on demand), `dot` (the one order of accumulation of every weight product),
//!   `project` (the parallel matrix–vector / matrix kernel), `packed` (weight operands that
//!   stay packed while a function runs).

mod cast;
mod conv;
mod dispatch;
mod dot;
pub mod driver;
mod elementwise;
pub mod erf;
mod error;
mod eval;
pub mod exec;
mod index;
mod kernel;
mod linalg;
mod lut_simd;
mod norm;
mod packed;
mod project;
mod reduce;
mod rows;
mod shape;
pub mod tensor;

pub use driver::Session;
pub use error::InterpError;
pub use eval::{OpObserver, evaluate, evaluate_observed};
pub use exec::{BufferPool, ExecPlan, PoolStats};
/// The weight-product kernel and its weight view, public only so that `bench/gemm-compare`
/// (a separate crate, issue #16) can time the exact code `run` uses against the `gemm`
/// crate; nothing else in the crate's API depends on them.
pub use project::project;
pub use rows::MatrixRows;
pub use tensor::{Data, Tensor, TensorError};
