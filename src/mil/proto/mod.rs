//! Hand-derived prost messages for the subset of Core ML's protobuf schema an ML Program
//! package needs (`Model.proto`, `FeatureTypes.proto`, `MIL.proto` of apple/coremltools).
//!
//! Field numbers and wire types follow the upstream `.proto` files exactly (see
//! `docs/emitter.md`); fields the emitter never writes are still declared where a reader of
//! coremltools-made packages needs them. Unknown fields are skipped on decode (prost's
//! behaviour), so packages with extra fields still parse.
//!
//! Invariant: every map is a `BTreeMap`, so encoding is deterministic (keys in sorted order)
//! — the same message always serialises to the same bytes.

pub mod mil;
pub mod model;

pub use mil::*;
pub use model::*;
