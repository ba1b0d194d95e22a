//! anemllc: a compiler from HuggingFace LLM checkpoints to Core ML ML Programs for the
//! Apple Neural Engine. See `docs/architecture.md` for the pipeline.

pub mod calib;
pub mod chat;
pub mod checkpoint;
pub mod cli;
pub mod convert;
pub mod frontend;
pub mod gguf;
pub mod interp;
pub mod ir;
pub mod mil;
pub mod opt;
pub mod package;
pub mod quant;
pub mod split;
pub mod synth;
pub mod util;
pub mod weights;
