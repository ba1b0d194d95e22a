//! The output folder around the packages: contract file names, meta.yaml, tokenizer files.

pub mod meta;
pub mod names;
pub mod tokenizer_files;

pub use meta::MetaYaml;
