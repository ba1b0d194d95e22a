//! The splitter: how a module is cut into the packages a device runs — FFN chunks of
//! contiguous layers (any layer count, uneven chunks, nothing dropped), the LM head split
//! along the vocabulary, and the chaining of per-layer functions into chunk functions.

pub mod chain;
pub mod chunks;
pub mod restructure;
pub mod tidy;
pub mod vocab;

pub use chunks::{ChunkLimits, plan_chunks};
pub use restructure::{SplitError, split_module};
pub use vocab::{MAX_VOCAB_PIECE, lm_head_pieces, lm_head_pieces_at_least};
