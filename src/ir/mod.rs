//! The typed tensor IR (specified in `ir-spec/`).
//!
//! - [`types`]: dtypes, tensor and state types.
//! - [`op`]: the op set; [`typing`]: every op's typing rule.
//! - [`module`]: modules, weights (with [`recipe`]s), functions, values and nodes in arenas.
//! - [`print`] / [`parse`] (over the [`lexer`]): the textual form, `print(parse(t)) == t`.
//! - [`verify`]: the gate every producer's output passes.
//! - [`builder`]: type-inferred function construction.

pub mod arena;
pub mod attr;
pub mod builder;
pub mod lexer;
pub mod module;
pub mod op;
pub mod parse;
pub mod print;
pub mod recipe;
pub mod types;
pub mod typing;
pub mod verify;

pub use arena::{Arena, Handle};
pub use attr::AttrValue;
pub use builder::FunctionBuilder;
pub use module::{Function, Module, Node, NodeId, Output, Value, ValueDef, ValueId, Weight};
pub use op::{ConstData, GeluMode, Op};
pub use parse::{ParseError, parse_module};
pub use print::print_module;
pub use recipe::Recipe;
pub use types::{DType, TensorType, Type};
pub use typing::TypeError;
pub use verify::{VerifyError, verify_module};
