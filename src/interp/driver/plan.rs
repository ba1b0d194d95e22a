//! Which functions a [`Session`](super::Session) runs, discovered by name.

use crate::ir::Module;

use super::super::InterpError;

/// The functions of one forward pass, for single-token decode (`infer`) and batched
/// prefill (`prefill`).
///
/// Invariant: every name refers to a function of the module, and `infer_blocks` and
/// `prefill_blocks` have the same non-zero length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub embed_infer: String,
    pub embed_prefill: String,
    /// `layer{i}.infer` for i = 0, 1, … — or `chunk{k}.infer` in a split module.
    pub infer_blocks: Vec<String>,
    pub prefill_blocks: Vec<String>,
    /// `{prefix}{i}.infer_rotate` / `.prefill_rotate`, run instead of the blocks above from
    /// position `rotate_from` on (modules whose sliding-window caches are shorter than the
    /// context); empty otherwise.
    pub infer_rotate_blocks: Vec<String>,
    pub prefill_rotate_blocks: Vec<String>,
    /// The sliding window W: the first position that runs the rotate blocks.
    pub rotate_from: Option<usize>,
    /// `final_norm.infer`/`.prefill`, run after the blocks when present (a split module
    /// folds the norm into its last chunk instead).
    pub norm_infer: Option<String>,
    pub norm_prefill: Option<String>,
    pub head_infer: String,
    /// The batched LM head; absent in contract-form modules (ANEMLL has none).
    pub head_prefill: Option<String>,
}

fn require(module: &Module, name: &str) -> Result<String, InterpError> {
    match module.function(name) {
        Some(_) => Ok(name.to_string()),
        None => Err(InterpError::Driver(format!("the module has no function @{name}"))),
    }
}

fn optional(module: &Module, name: &str) -> Option<String> {
    module.function(name).map(|_| name.to_string())
}

/// `{prefix}{i}.infer` / `{prefix}{i}.prefill` for i = 0, 1, … while they exist.
fn blocks(module: &Module, prefix: &str, suffix: &str) -> Result<(Vec<String>, Vec<String>), InterpError> {
    let (mut infer, mut prefill) = (Vec::new(), Vec::new());
    for i in 0.. {
        let (a, b) = (format!("{prefix}{i}.infer{suffix}"), format!("{prefix}{i}.prefill{suffix}"));
        match (module.function(&a).is_some(), module.function(&b).is_some()) {
            (true, true) => {
                infer.push(a);
                prefill.push(b);
            }
            (false, false) => break,
            (true, false) => return Err(InterpError::Driver(format!("@{a} exists but @{b} does not"))),
            (false, true) => return Err(InterpError::Driver(format!("@{b} exists but @{a} does not"))),
        }
    }
    Ok((infer, prefill))
}

/// Discovers the plan: `chunk{k}.*` functions if the module has `chunk0.infer` or
/// `chunk0.prefill` (a split module), else `layer{i}.*`, whose count must equal the
/// `layers` attribute when that is present.
pub fn discover(module: &Module) -> Result<Plan, InterpError> {
    let split = module.function("chunk0.infer").is_some() || module.function("chunk0.prefill").is_some();
    let prefix = if split { "chunk" } else { "layer" };
    let (infer_blocks, prefill_blocks) = blocks(module, prefix, "")?;
    let (infer_rotate_blocks, prefill_rotate_blocks) = blocks(module, prefix, "_rotate")?;
    let rotate_from = if infer_rotate_blocks.is_empty() {
        None
    } else {
        if infer_rotate_blocks.len() != infer_blocks.len() {
            return Err(InterpError::Driver(format!(
                "{} rotate blocks for {} blocks",
                infer_rotate_blocks.len(),
                infer_blocks.len()
            )));
        }
        match module.attr_int("sliding_window").and_then(|w| usize::try_from(w).ok()) {
            Some(w) if w > 0 => Some(w),
            _ => {
                return Err(InterpError::Driver(
                    "the module has rotate functions but no positive `sliding_window` attribute".into(),
                ));
            }
        }
    };
    if infer_blocks.is_empty() {
        return Err(InterpError::Driver("the module has no layer0.infer/prefill or chunk0.infer/prefill".into()));
    }
    if !split
        && let Some(layers) = module.attr_int("layers")
        && usize::try_from(layers).ok() != Some(infer_blocks.len())
    {
        return Err(InterpError::Driver(format!(
            "attribute layers = {layers} but the module has {} layer functions",
            infer_blocks.len()
        )));
    }
    Ok(Plan {
        embed_infer: require(module, "embed.infer")?,
        embed_prefill: require(module, "embed.prefill")?,
        infer_blocks,
        prefill_blocks,
        infer_rotate_blocks,
        prefill_rotate_blocks,
        rotate_from,
        norm_infer: optional(module, "final_norm.infer"),
        norm_prefill: optional(module, "final_norm.prefill"),
        head_infer: require(module, "lm_head.infer")?,
        head_prefill: optional(module, "lm_head.prefill"),
    })
}
