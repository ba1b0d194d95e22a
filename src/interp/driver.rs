//! [`Session`]: drives a module with the protocol of `docs/module-conventions.md` (the one
//! ANEMLL's runtimes use), on the reference interpreter.
//!
//! A session owns the module, its [`WeightCache`] and one zero-initialised tensor per
//! distinct state input name (shared by every function that declares that name). The
//! functions run are discovered by name (see [`plan::discover`]): `embed.*`, then
//! `layer{i}.*` in index order — or `chunk{k}.*` in a split module — then `lm_head.*`.
//! Hidden states flow from each function's output into the next one's `hidden_states`.
//!
//! Invariants: `context`, `batch` and `vocab` are positive; every state tensor has its
//! declared type; between calls the states hold the KV cache of the sequence being decoded.

mod feed;
pub mod plan;

use std::collections::HashMap;
use std::sync::Arc;

use crate::ir::{Module, TensorType, Type, verify_module};
use crate::weights::{TensorSource, WeightCache};

use super::{InterpError, Tensor, evaluate};
use feed::Feed;
use plan::Plan;

/// A running model; see the module docs.
pub struct Session {
    module: Module,
    weights: WeightCache,
    plan: Plan,
    state_types: Vec<(String, TensorType)>,
    states: HashMap<String, Tensor>,
    context: usize,
    batch: usize,
    vocab: usize,
}

fn positive_attr(module: &Module, key: &str) -> Result<usize, InterpError> {
    match module.attr_int(key).and_then(|v| usize::try_from(v).ok()) {
        Some(v) if v > 0 => Ok(v),
        _ => Err(InterpError::Driver(format!("module attribute `{key}` must be a positive integer"))),
    }
}

/// Every distinct state input name with its declared type; one name must have one type.
fn state_types(module: &Module) -> Result<Vec<(String, TensorType)>, InterpError> {
    let mut out: Vec<(String, TensorType)> = Vec::new();
    for f in &module.functions {
        for &id in &f.inputs {
            let Some(v) = f.values.try_get(id) else { continue };
            let Type::State(ty) = &v.ty else { continue };
            match out.iter().find(|(n, _)| n == &v.name) {
                Some((_, t)) if t != ty => {
                    return Err(InterpError::Driver(format!(
                        "state `{}` is declared {t} in one function and {ty} in @{}",
                        v.name, f.name
                    )));
                }
                Some(_) => {}
                None => out.push((v.name.clone(), ty.clone())),
            }
        }
    }
    Ok(out)
}

/// Index of the first maximum; a nan counts as the maximum (like the `argmax` op).
pub fn argmax_first(values: &[f32]) -> usize {
    let mut best = 0;
    for (j, &v) in values.iter().enumerate() {
        if values[best].is_nan() {
            break;
        }
        if v.is_nan() || v > values[best] {
            best = j;
        }
    }
    best
}

impl Session {
    /// A session over a verified copy of `module`, reading weights from `source`.
    pub fn new(module: Module, source: Arc<dyn TensorSource + Send + Sync>) -> Result<Session, InterpError> {
        let weights = WeightCache::new(&module, source);
        Session::with_weights(module, weights)
    }

    /// A session with an existing weight cache (which must be built from `module`).
    pub fn with_weights(module: Module, weights: WeightCache) -> Result<Session, InterpError> {
        verify_module(&module).map_err(|e| InterpError::Driver(format!("the module does not verify: {e}")))?;
        let plan = plan::discover(&module)?;
        let state_types = state_types(&module)?;
        let context = positive_attr(&module, "context")?;
        let batch = positive_attr(&module, "batch")?;
        let vocab = positive_attr(&module, "vocab")?;
        let states = state_types.iter().map(|(n, t)| (n.clone(), Tensor::zeros(t))).collect();
        Ok(Session { module, weights, plan, state_types, states, context, batch, vocab })
    }

    pub fn module(&self) -> &Module {
        &self.module
    }

    pub fn weights(&self) -> &WeightCache {
        &self.weights
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The current state tensors by state input name.
    pub fn states(&self) -> &HashMap<String, Tensor> {
        &self.states
    }

    /// C: the KV cache length.
    pub fn context(&self) -> usize {
        self.context
    }

    /// B: rows per prefill call.
    pub fn batch(&self) -> usize {
        self.batch
    }

    pub fn vocab(&self) -> usize {
        self.vocab
    }

    /// Zeroes every state (starts a new sequence).
    pub fn reset(&mut self) {
        for (name, ty) in &self.state_types {
            self.states.insert(name.clone(), Tensor::zeros(ty));
        }
    }

    fn check_tokens(&self, tokens: &[u32]) -> Result<(), InterpError> {
        match tokens.iter().find(|&&t| t as usize >= self.vocab) {
            Some(t) => Err(InterpError::Driver(format!("token {t} is not below the vocabulary size {}", self.vocab))),
            None => Ok(()),
        }
    }

    /// Runs `func` on the protocol inputs of `feed`; returns its single hidden-state output
    /// (`output_hidden_states`, `hidden_states` or `logits`, or its only output).
    fn run(&mut self, func: &str, feed: &Feed<'_>, want: &[&str]) -> Result<Tensor, InterpError> {
        let f = self.module.function(func).ok_or_else(|| InterpError::UnknownFunction { func: func.into() })?;
        let inputs = feed::inputs(f, feed)?;
        let mut outputs = evaluate(&self.module, func, &inputs, &mut self.states, &self.weights)?;
        let only = if outputs.len() == 1 { outputs.drain().next().map(|(_, t)| t) } else { None };
        if let Some(t) = only {
            return Ok(t);
        }
        want.iter()
            .find_map(|name| outputs.remove(*name))
            .ok_or_else(|| InterpError::Driver(format!("@{func} returns none of the outputs {want:?}")))
    }

    /// embed → blocks → optionally lm_head, for one window. Returns the logits rows if
    /// `head` is set, else `None`.
    fn forward(
        &mut self,
        ids: &[i64],
        start: usize,
        prefill: bool,
        head: bool,
    ) -> Result<Option<Vec<Vec<f32>>>, InterpError> {
        let rows = ids.len();
        let mut feed = Feed { ids, start, rows, context: self.context, hidden: None };
        let (embed, blocks, lm_head) = if prefill {
            (self.plan.embed_prefill.clone(), self.plan.prefill_blocks.clone(), self.plan.head_prefill.clone())
        } else {
            (self.plan.embed_infer.clone(), self.plan.infer_blocks.clone(), self.plan.head_infer.clone())
        };
        feed.hidden = Some(self.run(&embed, &feed, &["hidden_states"])?);
        for block in &blocks {
            feed.hidden = Some(self.run(block, &feed, &["output_hidden_states", "hidden_states"])?);
        }
        if !head {
            return Ok(None);
        }
        let logits = self.run(&lm_head, &feed, &["logits"])?.to_f32_vec();
        if logits.len() != rows * self.vocab {
            return Err(InterpError::Driver(format!(
                "@{lm_head} returned {} logits, expected {rows} × {}",
                logits.len(),
                self.vocab
            )));
        }
        Ok(Some(logits.chunks(self.vocab).map(<[f32]>::to_vec).collect()))
    }

    /// Starts a new sequence (states zeroed) and prefills `tokens` in batches of B
    /// (right-padded with token 0). Returns the logits of prompt positions 0 … P−2, from
    /// `lm_head.prefill` (padded rows ignored); position P−1 comes from the first decode step.
    pub fn prefill(&mut self, tokens: &[u32]) -> Result<Vec<Vec<f32>>, InterpError> {
        if tokens.is_empty() {
            return Err(InterpError::Driver("the prompt is empty".into()));
        }
        if tokens.len() > self.context {
            return Err(InterpError::Driver(format!(
                "the prompt has {} tokens, more than the context {}",
                tokens.len(),
                self.context
            )));
        }
        self.check_tokens(tokens)?;
        self.reset();
        let (p, b) = (tokens.len(), self.batch);
        let mut logits = Vec::with_capacity(p - 1);
        for start in (0..p).step_by(b) {
            if start + b > self.context {
                return Err(InterpError::Driver(format!(
                    "prefill window {start}..{} exceeds the context {}",
                    start + b,
                    self.context
                )));
            }
            let mut ids: Vec<i64> = tokens[start..p.min(start + b)].iter().map(|&t| i64::from(t)).collect();
            ids.resize(b, 0);
            let need_head = start + 1 < p;
            if let Some(rows) = self.forward(&ids, start, true, need_head)? {
                logits.extend(rows.into_iter().take((p - 1).saturating_sub(start)));
            }
        }
        Ok(logits)
    }

    /// One decode step: feeds `token` at position `pos` (writing its K/V) and returns the
    /// logits of position `pos`.
    pub fn decode_step(&mut self, token: u32, pos: usize) -> Result<Vec<f32>, InterpError> {
        self.check_tokens(&[token])?;
        if pos >= self.context {
            return Err(InterpError::Driver(format!("position {pos} is outside the context {}", self.context)));
        }
        let rows = self.forward(&[i64::from(token)], pos, false, true)?;
        rows.and_then(|r| r.into_iter().next()).ok_or_else(|| InterpError::Driver("no logits".into()))
    }

    /// Teacher forcing: prefills `tokens[..prompt_len]`, then decodes every remaining
    /// position p = P−1 … len−1 feeding `tokens[p]`. Returns the logits of all positions
    /// 0 … len−1 (0 … P−2 from prefill, the rest from decode).
    pub fn teacher_forced_logits(&mut self, tokens: &[u32], prompt_len: usize) -> Result<Vec<Vec<f32>>, InterpError> {
        if prompt_len == 0 || prompt_len > tokens.len() {
            return Err(InterpError::Driver(format!(
                "prompt length {prompt_len} must be in 1..={} (the token count)",
                tokens.len()
            )));
        }
        if tokens.len() > self.context {
            return Err(InterpError::Driver(format!("{} tokens exceed the context {}", tokens.len(), self.context)));
        }
        self.check_tokens(tokens)?;
        let mut logits = self.prefill(&tokens[..prompt_len])?;
        for (pos, &token) in tokens.iter().enumerate().skip(prompt_len - 1) {
            logits.push(self.decode_step(token, pos)?);
        }
        Ok(logits)
    }

    /// Greedy generation of `n` tokens after `prompt` (argmax, first maximum wins; no stop
    /// at EOS). Needs P + n − 1 ≤ C, since positions P−1 … P+n−2 are decoded.
    pub fn generate_greedy(&mut self, prompt: &[u32], n: usize) -> Result<Vec<u32>, InterpError> {
        if prompt.len() + n > self.context + 1 {
            return Err(InterpError::Driver(format!(
                "a prompt of {} tokens plus {n} generated ones does not fit the context {}",
                prompt.len(),
                self.context
            )));
        }
        self.prefill(prompt)?;
        let mut out = Vec::with_capacity(n);
        let mut token = prompt[prompt.len() - 1];
        for step in 0..n {
            let logits = self.decode_step(token, prompt.len() - 1 + step)?;
            token = u32::try_from(argmax_first(&logits))
                .map_err(|_| InterpError::Driver("vocabulary index exceeds u32".into()))?;
            out.push(token);
        }
        Ok(out)
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("module", &self.module.name)
            .field("plan", &self.plan)
            .field("context", &self.context)
            .field("batch", &self.batch)
            .field("vocab", &self.vocab)
            .finish()
    }
}
