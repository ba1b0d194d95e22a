//! GGUF files for the hostile-input tests and the `gguf` fuzz seeds: a tiny llama built with
//! `GgufBuilder` ([`tiny`]), the byte layout of a GGUF header ([`layout`]), so a test can
//! corrupt exactly one field, and the fuzz seed corpus ([`seeds`]).
#![allow(dead_code)]

pub mod layout;
pub mod seeds;
pub mod tiny;
