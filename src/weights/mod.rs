//! Weight materialisation: turning the module's weight [recipes](crate::ir::Recipe) into
//! tensors for the reference interpreter.
//!
//! - [`TensorSource`]: where checkpoint tensors come from (a
//!   [`Checkpoint`](crate::checkpoint::Checkpoint), or an in-memory map in tests).
//! - [`materialize`]: evaluates one recipe.
//! - [`RowStream`]: a row-to-row recipe's values a block of rows at a time.
//! - [`WeightCache`]: a module's weights, each materialised lazily and at most once.
//! - [`StoredTensor`]: a weight left in its stored encoding (fp16 or packed LUT indices in
//!   a memory-mapped file), read row by row by the interpreter's kernels.

mod cache;
mod checkpoint_source;
mod error;
mod materialize;
mod rope;
mod row_stream;
mod source;
mod stored;

pub use cache::WeightCache;
pub use error::WeightError;
pub use materialize::materialize;
pub(crate) use materialize::rows_of_checkpoint;
pub use rope::{Trig, rope_table};
pub use row_stream::RowStream;
pub use source::TensorSource;
pub use stored::{RawBytes, StoredKind, StoredTensor};
