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

use super::eval::OpObserver;
use super::exec::{BufferPool, ExecPlan, PoolStats, check_inputs};
use super::{InterpError, Tensor};
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
    /// When set, every decode step records the hidden state after the embeddings and after
    /// each block (as f32), for layer-by-layer precision studies.
    trace: Option<Vec<Vec<Vec<f32>>>>,
    observer: Option<Arc<dyn OpObserver>>,
    /// The compiled plan of every function run so far, by name.
    compiled: HashMap<String, ExecPlan>,
    /// Buffers of released intermediates, shared by every function's calls.
    pool: BufferPool,
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
        // Fallible: the sizes come from the module file (a state of 2^40 rows must be an
        // error, not an allocation-failure abort).
        let states = state_types
            .iter()
            .map(|(n, t)| {
                let zeros = Tensor::try_zeros(t).map_err(|e| InterpError::Driver(format!("state `{n}`: {e}")))?;
                Ok((n.clone(), zeros))
            })
            .collect::<Result<_, InterpError>>()?;
        Ok(Session {
            module,
            weights,
            plan,
            state_types,
            states,
            context,
            batch,
            vocab,
            trace: None,
            observer: None,
            compiled: HashMap::new(),
            pool: BufferPool::new(),
        })
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

    /// Starts recording, for every later decode step, the hidden state after the embeddings
    /// and after each block (decoder chunk or layer, and the final norm when separate).
    pub fn trace_decode(&mut self) {
        self.trace = Some(Vec::new());
    }

    /// The recorded decode steps: `[step][stage]` hidden states as f32.
    /// Calls `observer` before every op of every function this session runs from now on
    /// (`None` stops it).
    pub fn set_observer(&mut self, observer: Option<Arc<dyn OpObserver>>) {
        self.observer = observer;
    }

    pub fn take_trace(&mut self) -> Vec<Vec<Vec<f32>>> {
        self.trace.take().unwrap_or_default()
    }

    fn check_tokens(&self, tokens: &[u32]) -> Result<(), InterpError> {
        match tokens.iter().find(|&&t| t as usize >= self.vocab) {
            Some(t) => Err(InterpError::Driver(format!("token {t} is not below the vocabulary size {}", self.vocab))),
            None => Ok(()),
        }
    }

    /// Runs `func` through its compiled plan (compiled on first use; bad bindings are
    /// reported before typing errors of the body, as [`super::evaluate`] does).
    fn call(&mut self, func: &str, inputs: &HashMap<String, Tensor>) -> Result<HashMap<String, Tensor>, InterpError> {
        if !self.compiled.contains_key(func) {
            let f = self.module.function(func).ok_or_else(|| InterpError::UnknownFunction { func: func.into() })?;
            check_inputs(f, inputs, &self.states)?;
            self.compiled.insert(func.to_string(), ExecPlan::compile(&self.module, func)?);
        }
        let plan = self.compiled.get_mut(func).ok_or_else(|| InterpError::UnknownFunction { func: func.into() })?;
        plan.run(&self.module, inputs, &mut self.states, &self.weights, self.observer.as_deref(), &mut self.pool)
    }

    /// Reuse counters of the session's buffer pool (see [`BufferPool`]).
    pub fn pool_stats(&self) -> PoolStats {
        self.pool.stats()
    }

    /// Runs `func` on the protocol inputs of `feed`; returns its single hidden-state output
    /// (`output_hidden_states`, `hidden_states` or `logits`, or its only output).
    fn run(&mut self, func: &str, feed: &Feed<'_>, want: &[&str]) -> Result<Tensor, InterpError> {
        let f = self.module.function(func).ok_or_else(|| InterpError::UnknownFunction { func: func.into() })?;
        let inputs = feed::inputs(f, feed)?;
        let mut outputs = self.call(func, &inputs)?;
        let only = if outputs.len() == 1 { outputs.drain().next().map(|(_, t)| t) } else { None };
        if let Some(t) = only {
            return Ok(t);
        }
        want.iter()
            .find_map(|name| outputs.remove(*name))
            .ok_or_else(|| InterpError::Driver(format!("@{func} returns none of the outputs {want:?}")))
    }

    /// Runs `func` and returns all its outputs in declaration order.
    fn run_all(&mut self, func: &str, feed: &Feed<'_>) -> Result<Vec<Tensor>, InterpError> {
        let f = self.module.function(func).ok_or_else(|| InterpError::UnknownFunction { func: func.into() })?;
        let names: Vec<String> = f.outputs.iter().map(|o| o.name.clone()).collect();
        let inputs = feed::inputs(f, feed)?;
        let mut outputs = self.call(func, &inputs)?;
        names
            .iter()
            .map(|n| outputs.remove(n).ok_or_else(|| InterpError::Driver(format!("@{func} did not return {n}"))))
            .collect()
    }

    /// embed → blocks → final norm (if separate) → optionally the LM head, for one window.
    /// Returns the logits rows if `head` is set, else `None`. The LM head's outputs
    /// (`logits1 … logitsK` vocabulary pieces, or one `logits`) are joined in order.
    fn forward(
        &mut self,
        ids: &[i64],
        start: usize,
        prefill: bool,
        head: bool,
    ) -> Result<Option<Vec<Vec<f32>>>, InterpError> {
        let rows = ids.len();
        let mut feed = Feed { ids, start, rows, context: self.context, hidden: None };
        let plan = self.plan.clone();
        let rotate = plan.rotate_from.is_some_and(|w| start >= w);
        let (embed, blocks, norm, lm_head) = match (prefill, rotate) {
            (true, false) => (plan.embed_prefill, plan.prefill_blocks, plan.norm_prefill, plan.head_prefill),
            (true, true) => (plan.embed_prefill, plan.prefill_rotate_blocks, plan.norm_prefill, plan.head_prefill),
            (false, false) => (plan.embed_infer, plan.infer_blocks, plan.norm_infer, Some(plan.head_infer)),
            (false, true) => (plan.embed_infer, plan.infer_rotate_blocks, plan.norm_infer, Some(plan.head_infer)),
        };
        feed.hidden = Some(self.run(&embed, &feed, &["hidden_states"])?);
        let tracing = !prefill && self.trace.is_some();
        let mut stages = Vec::new();
        if tracing {
            stages.extend(feed.hidden.as_ref().map(Tensor::to_f32_vec));
        }
        for block in blocks.iter().chain(&norm) {
            feed.hidden = Some(self.run(block, &feed, &["output_hidden_states", "hidden_states"])?);
            if tracing {
                stages.extend(feed.hidden.as_ref().map(Tensor::to_f32_vec));
            }
        }
        if let (true, Some(trace)) = (tracing, self.trace.as_mut()) {
            trace.push(stages);
        }
        let Some(lm_head) = lm_head.filter(|_| head) else {
            return Ok(None);
        };
        if self.module.function(&lm_head).is_some_and(|f| f.outputs.iter().any(|o| o.name == "argmax_idx")) {
            return self.argmax_row(&lm_head, &feed).map(|row| Some(vec![row]));
        }
        let pieces = self.run_all(&lm_head, &feed)?;
        let mut joined: Vec<Vec<f32>> = vec![Vec::with_capacity(self.vocab); rows];
        for piece in &pieces {
            let values = piece.to_f32_vec();
            let width = values.len() / rows.max(1);
            if width * rows != values.len() {
                return Err(InterpError::Driver(format!("@{lm_head}: a logits piece does not split into {rows} rows")));
            }
            for (r, chunk) in values.chunks(width).enumerate() {
                joined[r].extend_from_slice(chunk);
            }
        }
        if joined.iter().any(|r| r.len() != self.vocab) {
            return Err(InterpError::Driver(format!(
                "@{lm_head} returned {} logits per row, expected {}",
                joined[0].len(),
                self.vocab
            )));
        }
        Ok(Some(joined))
    }

    /// An in-model-argmax LM head (`argmax_idx`, `argmax_val` per vocabulary piece, ANEMLL
    /// 0.3.6 `--argmax`) as one logits row: the winning token (largest value, first piece on
    /// ties, as chat.py picks it; its index offset by the sizes of the pieces before it, from
    /// the module's `lm_head_chunk_sizes`) holds its logit, every other entry −∞. Greedy
    /// decoding is unchanged; the other logits are not available in this mode.
    fn argmax_row(&mut self, lm_head: &str, feed: &Feed<'_>) -> Result<Vec<f32>, InterpError> {
        let outs = self.run_all(lm_head, feed)?;
        let f = self.module.function(lm_head).expect("checked by the caller");
        let pick = |name: &str| f.outputs.iter().position(|o| o.name == name).map(|k| outs[k].to_f32_vec());
        let (Some(idx), Some(val)) = (pick("argmax_idx"), pick("argmax_val")) else {
            return Err(InterpError::Driver(format!("@{lm_head} lacks argmax_idx/argmax_val")));
        };
        let sizes: Vec<usize> = match self.module.attrs.get("lm_head_chunk_sizes") {
            Some(crate::ir::AttrValue::Ints(v)) => v.iter().map(|&s| s.max(0) as usize).collect(),
            _ => return Err(InterpError::Driver("an argmax LM head needs the `lm_head_chunk_sizes` attribute".into())),
        };
        if sizes.len() != idx.len() || idx.len() != val.len() || idx.is_empty() {
            return Err(InterpError::Driver(format!(
                "@{lm_head}: {} argmax pieces for {} LM-head pieces",
                idx.len(),
                sizes.len()
            )));
        }
        let best = argmax_first(&val);
        let offset: usize = sizes[..best].iter().sum();
        let token = offset + idx[best] as usize;
        if token >= self.vocab || idx[best] as usize >= sizes[best] {
            return Err(InterpError::Driver(format!("@{lm_head}: argmax index {} out of its piece", idx[best])));
        }
        let mut row = vec![f32::NEG_INFINITY; self.vocab];
        row[token] = val[best];
        Ok(row)
    }

    /// True when prefill can score prompt positions: a batched LM head exists and the last
    /// prefill block returns every row (a contract-form last chunk returns only row 0).
    fn prefill_scores(&self) -> bool {
        let Some(last) = self.plan.prefill_blocks.last().and_then(|n| self.module.function(n)) else {
            return false;
        };
        let rows = last.outputs.first().and_then(|o| o.ty.tensor().shape.get(1).copied());
        self.plan.head_prefill.is_some() && rows == Some(self.batch)
    }

    /// Logits of positions 0 … P−2 by decoding them one at a time on fresh states (for
    /// modules without a batched LM head). Leaves the states reset.
    fn prompt_logits_by_decode(&mut self, tokens: &[u32]) -> Result<Vec<Vec<f32>>, InterpError> {
        self.reset();
        let mut out = Vec::with_capacity(tokens.len().saturating_sub(1));
        for (pos, &t) in tokens.iter().enumerate().take(tokens.len().saturating_sub(1)) {
            out.push(self.decode_step(t, pos)?);
        }
        self.reset();
        Ok(out)
    }

    /// Starts a new sequence (states zeroed) and prefills `tokens` in batches of B
    /// (right-padded with token 0). Returns the logits of prompt positions 0 … P−2, from
    /// `lm_head.prefill` (padded rows ignored) — or, for a module without a batched head,
    /// by decoding those positions on scratch states first; position P−1 comes from the
    /// first decode step.
    pub fn prefill(&mut self, tokens: &[u32]) -> Result<Vec<Vec<f32>>, InterpError> {
        self.fill(tokens, true)
    }

    /// Starts a new sequence with `prompt` in the KV cache (no prompt logits); continue with
    /// [`Session::decode_step`] at position `prompt.len() − 1`.
    ///
    /// As ANEMLL 0.3.6 does, only whole batches of B go through `prefill`; the remaining
    /// positions are fed one by one through `infer` (without the LM head), so a prompt
    /// shorter than B does not pay for a padded batch. Position P−1 itself is left to the
    /// first decode step, which writes its K/V anyway.
    pub fn start(&mut self, prompt: &[u32]) -> Result<(), InterpError> {
        if self.plan.rotate_from.is_some() {
            // Rotating caches: `fill` stores exactly positions 0 … P−2, the same way.
            return self.fill(prompt, false).map(|_| ());
        }
        let whole = prompt.len() / self.batch * self.batch;
        if whole == 0 {
            self.check_prompt(prompt)?;
            self.reset();
        } else {
            self.fill(&prompt[..whole], false)?;
        }
        for (pos, &token) in prompt.iter().enumerate().take(prompt.len() - 1).skip(whole) {
            self.forward(&[i64::from(token)], pos, false, false)?;
        }
        Ok(())
    }

    /// A prompt must be non-empty, fit the context and hold vocabulary ids.
    fn check_prompt(&self, tokens: &[u32]) -> Result<(), InterpError> {
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
        self.check_tokens(tokens)
    }

    /// Prefill; prompt logits are computed only if `want_logits`.
    fn fill(&mut self, tokens: &[u32], want_logits: bool) -> Result<Vec<Vec<f32>>, InterpError> {
        self.check_prompt(tokens)?;
        let scores = want_logits && self.prefill_scores();
        let mut logits = if scores || !want_logits {
            Vec::with_capacity(tokens.len() - 1)
        } else {
            self.prompt_logits_by_decode(tokens)?
        };
        self.reset();
        if let Some(window) = self.plan.rotate_from {
            return self.fill_rotating(tokens, logits, scores, window);
        }
        let (p, b) = (tokens.len(), self.batch);
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
            let need_head = scores && start + 1 < p;
            if let Some(rows) = self.forward(&ids, start, true, need_head)? {
                logits.extend(rows.into_iter().take((p - 1).saturating_sub(start)));
            }
        }
        Ok(logits)
    }

    /// Prefill for modules whose sliding-window caches rotate: a position must be stored
    /// exactly once, and padding must never reach a rotating cache. So only positions
    /// 0 … P−2 are stored here (the first decode step stores P−1): full batches of B (each
    /// wholly before or wholly after the window, since B divides W), then the remainder one
    /// token at a time through the decode functions. With `score`, the prompt logits
    /// 0 … P−2 are appended to `logits`, which is returned.
    fn fill_rotating(
        &mut self,
        tokens: &[u32],
        mut logits: Vec<Vec<f32>>,
        score: bool,
        window: usize,
    ) -> Result<Vec<Vec<f32>>, InterpError> {
        let (upto, b) = (tokens.len() - 1, self.batch);
        if !window.is_multiple_of(b) {
            return Err(InterpError::Driver(format!("the batch {b} does not divide the sliding window {window}")));
        }
        let mut pos = 0;
        while pos + b <= upto {
            let ids: Vec<i64> = tokens[pos..pos + b].iter().map(|&t| i64::from(t)).collect();
            if let Some(rows) = self.forward(&ids, pos, true, score)? {
                logits.extend(rows);
            }
            pos += b;
        }
        while pos < upto {
            if let Some(rows) = self.forward(&[i64::from(tokens[pos])], pos, false, score)? {
                logits.extend(rows);
            }
            pos += 1;
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
        // Checked: `n` comes straight from `--decode`, and usize::MAX overflowed the sum.
        if prompt.len().checked_add(n).is_none_or(|total| total > self.context + 1) {
            return Err(InterpError::Driver(format!(
                "a prompt of {} tokens plus {n} generated ones does not fit the context {}",
                prompt.len(),
                self.context
            )));
        }
        self.start(prompt)?;
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
