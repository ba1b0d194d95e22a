//! What `anemllc opt --report` prints: per e-graph pass and function, the e-graph run
//! (iterations, e-nodes, stop reason, rules fired with counts) and the cost before/after
//! extraction; for the `palettize` module transform, the tensors palettized per part with
//! bits, elements, reconstruction error and k-means time.

use std::fmt;
use std::time::Duration;

use crate::ir::TensorType;
use crate::quant::LutConfig;

/// Explicit runner limits of a pass.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    pub iterations: usize,
    pub nodes: usize,
    pub time: Duration,
}

impl Default for Limits {
    /// egg's defaults for iterations and nodes; a generous time limit so that the (only
    /// non-deterministic) time stop never triggers on realistic functions.
    fn default() -> Self {
        Limits { iterations: 30, nodes: 10_000, time: Duration::from_secs(30) }
    }
}

/// One function's run.
#[derive(Clone, Debug, PartialEq)]
pub struct FunctionReport {
    pub function: String,
    pub iterations: usize,
    pub enodes: usize,
    pub eclasses: usize,
    /// egg's `StopReason`, spelled out.
    pub stop: String,
    /// Rules that fired, with how many times, in rule-file order.
    pub fired: Vec<(String, usize)>,
    pub cost_before: f64,
    pub cost_after: f64,
    /// Why the function was left unchanged, if it was.
    pub kept: Option<String>,
    /// Wall time of this function's run (load, saturation, extraction, rebuild). Printed in
    /// brackets, `[0.012 s]`: the only non-deterministic number of the line.
    pub seconds: f64,
}

/// One palettized tensor of the `palettize` pass.
#[derive(Clone, Debug, PartialEq)]
pub struct LutTensorReport {
    /// The dense weight that was replaced (`@w`).
    pub weight: String,
    /// Its type (the indices have its shape).
    pub ty: TensorType,
    /// The new weights: indices (`uintB[shape]`) and table (`fp16[G, 2^B]`).
    pub indices: String,
    pub table: String,
    pub table_ty: TensorType,
    /// ‖W − Ŵ‖/‖W‖ of the weight's values `W` and their reconstruction `Ŵ` from indices and
    /// table; `None` when not measured.
    pub rel_error: Option<f64>,
    /// Index bits of this weight (differs from the part's under `auto:B`).
    pub bits: u32,
    /// With calibration: whether the sensitivity-weighted table was chosen, and the relative
    /// output error on the calibration samples of the chosen and the other table.
    pub calibrated: Option<CalibratedChoice>,
}

/// What calibration decided for one palettized weight (see `crate::quant::tuning`).
#[derive(Clone, Debug, PartialEq)]
pub struct CalibratedChoice {
    pub weighted: bool,
    pub sample_error: Option<f64>,
    pub other_error: Option<f64>,
}

/// One part (`ffn`, `lm_head`, `embed`) of the `palettize` pass.
#[derive(Clone, Debug, PartialEq)]
pub struct LutPartReport {
    /// `ffn`, `lm_head` or `embed`.
    pub part: &'static str,
    /// The configured bits; `None`: the part stays dense.
    pub bits: Option<u32>,
    /// The distinct weights palettized in this part, in first-use order.
    pub tensors: Vec<LutTensorReport>,
    /// Time spent palettizing this part's tensors to measure their error (`None`: not measured).
    pub time: Option<Duration>,
}

impl LutPartReport {
    /// Elements of the palettized weights.
    pub fn elements(&self) -> usize {
        self.tensors.iter().map(|t| t.ty.numel()).sum()
    }

    /// Mean and maximum relative error over the tensors, if every one was measured.
    pub fn errors(&self) -> Option<(f64, f64)> {
        let errs: Option<Vec<f64>> = self.tensors.iter().map(|t| t.rel_error).collect();
        let errs = errs.filter(|e| !e.is_empty())?;
        Some((errs.iter().sum::<f64>() / errs.len() as f64, errs.iter().copied().fold(0.0, f64::max)))
    }
}

/// The run of the `palettize` pass.
#[derive(Clone, Debug, PartialEq)]
pub struct PalettizeReport {
    pub config: LutConfig,
    /// Why the module was left unchanged without looking at it (the configuration is off).
    pub off: Option<String>,
    /// Per part, in `--lut` order (ffn, lm_head, embed).
    pub parts: Vec<LutPartReport>,
}

impl PalettizeReport {
    /// Distinct weights palettized (a weight shared by two parts at the same width counts once).
    pub fn tensors(&self) -> usize {
        self.distinct().len()
    }

    /// Elements of the distinct weights palettized.
    pub fn elements(&self) -> usize {
        self.distinct().iter().map(|t| t.ty.numel()).sum()
    }

    fn distinct(&self) -> Vec<&LutTensorReport> {
        let mut out: Vec<&LutTensorReport> = Vec::new();
        for t in self.parts.iter().flat_map(|p| &p.tensors) {
            if !out.iter().any(|o| o.indices == t.indices) {
                out.push(t);
            }
        }
        out
    }
}

/// What a pass did, by kind of pass.
#[derive(Clone, Debug, PartialEq)]
pub enum PassRun {
    /// An e-graph pass: its limits and every function's run.
    EGraph { limits: Limits, functions: Vec<FunctionReport> },
    /// The `palettize` module transform.
    Palettize(PalettizeReport),
}

/// One pass over the module.
#[derive(Clone, Debug, PartialEq)]
pub struct PassReport {
    pub pass: String,
    /// Notes from the pass's IR-level steps (signature changes, fp16 range report, …).
    pub notes: Vec<String>,
    pub run: PassRun,
    /// Wall time of the whole pass (IR step, every function, weight folding); functions run
    /// in parallel, so it is less than the sum of theirs.
    pub seconds: f64,
}

impl PassReport {
    /// The function runs of an e-graph pass (none for a module transform).
    pub fn functions(&self) -> &[FunctionReport] {
        match &self.run {
            PassRun::EGraph { functions, .. } => functions,
            PassRun::Palettize(_) => &[],
        }
    }

    /// The limits of an e-graph pass.
    pub fn limits(&self) -> Option<&Limits> {
        match &self.run {
            PassRun::EGraph { limits, .. } => Some(limits),
            PassRun::Palettize(_) => None,
        }
    }

    /// Total fire count of each rule over all functions, in first-fired order.
    pub fn fired_totals(&self) -> Vec<(String, usize)> {
        let mut out: Vec<(String, usize)> = Vec::new();
        for f in self.functions() {
            for (name, n) in &f.fired {
                match out.iter_mut().find(|(k, _)| k == name) {
                    Some((_, total)) => *total += n,
                    None => out.push((name.clone(), *n)),
                }
            }
        }
        out
    }

    pub fn cost_before(&self) -> f64 {
        self.functions().iter().map(|f| f.cost_before).sum()
    }

    pub fn cost_after(&self) -> f64 {
        self.functions().iter().map(|f| f.cost_after).sum()
    }
}

/// The whole `opt` run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OptReport {
    pub passes: Vec<PassReport>,
}

/// A cost, with the count of prohibitive (non-ANE) ops spelled out: `2×✗ + 1234`.
pub fn fmt_cost(c: f64) -> String {
    let p = super::cost::PROHIBITIVE;
    let n = (c / p).floor();
    if n >= 1.0 { format!("{n:.0}×✗ + {:.0}", c - n * p) } else { format!("{c:.0}") }
}

impl PassReport {
    fn fmt_egraph(&self, f: &mut fmt::Formatter<'_>, l: &Limits, functions: &[FunctionReport]) -> fmt::Result {
        let largest = functions.iter().map(|r| r.enodes).max().unwrap_or(0);
        let most = functions.iter().map(|r| r.iterations).max().unwrap_or(0);
        writeln!(
            f,
            "pass {} (limits per function: {} iterations, {} e-nodes, {}s): cost {} → {}; \
             {} functions, largest e-graph {largest} e-nodes, most iterations {most}, [{:.2} s]",
            self.pass,
            l.iterations,
            l.nodes,
            l.time.as_secs_f64(),
            fmt_cost(self.cost_before()),
            fmt_cost(self.cost_after()),
            functions.len(),
            self.seconds
        )?;
        for note in &self.notes {
            writeln!(f, "  note: {note}")?;
        }
        for r in functions {
            write!(
                f,
                "  @{}: {} iterations, {} e-nodes, {} e-classes, stop: {}, cost {} → {}",
                r.function,
                r.iterations,
                r.enodes,
                r.eclasses,
                r.stop,
                fmt_cost(r.cost_before),
                fmt_cost(r.cost_after)
            )?;
            if let Some(k) = &r.kept {
                write!(f, " (kept original: {k})")?;
            }
            writeln!(f, " [{:.3} s]", r.seconds)?;
            if !r.fired.is_empty() {
                let items: Vec<String> = r.fired.iter().map(|(n, c)| format!("{n} ×{c}")).collect();
                writeln!(f, "    fired: {}", items.join(", "))?;
            }
        }
        Ok(())
    }

    fn fmt_palettize(&self, f: &mut fmt::Formatter<'_>, r: &PalettizeReport) -> fmt::Result {
        if let Some(why) = &r.off {
            writeln!(f, "pass {} (module transform): off, module unchanged: {why}", self.pass)?;
            for note in &self.notes {
                writeln!(f, "  note: {note}")?;
            }
            return Ok(());
        }
        let c = &r.config;
        writeln!(
            f,
            "pass {} (module transform: --lut {c}, group size {}, ≥ {} elements): {} tensors palettized, {} elements",
            self.pass,
            c.group_size,
            c.min_elements,
            r.tensors(),
            r.elements()
        )?;
        for note in &self.notes {
            writeln!(f, "  note: {note}")?;
        }
        for p in &r.parts {
            let Some(bits) = p.bits else {
                writeln!(f, "  {}: dense ({}=none)", p.part, p.part)?;
                continue;
            };
            if p.tensors.is_empty() {
                writeln!(f, "  {}: {bits} bits, no eligible weight (module unchanged for this part)", p.part)?;
                continue;
            }
            let n = p.tensors.len();
            write!(
                f,
                "  {}: {n} tensor{} at {bits} bits, {} elements",
                p.part,
                if n == 1 { "" } else { "s" },
                p.elements()
            )?;
            match (p.errors(), p.time) {
                (Some((mean, max)), Some(t)) => {
                    writeln!(f, ", rel. error mean {mean:.4} max {max:.4}, k-means {:.2}s", t.as_secs_f64())?
                }
                _ => writeln!(f, ", rel. error not measured")?,
            }
            for t in &p.tensors {
                write!(f, "    @{} : {} → tables {}", t.weight, t.ty, t.table_ty)?;
                if Some(t.bits) != p.bits || r.config.budget(part_index(p.part)).is_some() {
                    write!(f, ", {} bits", t.bits)?;
                }
                if let Some(e) = t.rel_error {
                    write!(f, ", rel. error {e:.4}")?;
                }
                if let Some(c) = &t.calibrated {
                    write!(f, ", {} table", if c.weighted { "weighted" } else { "plain" })?;
                    if let (Some(a), Some(b)) = (c.sample_error, c.other_error) {
                        write!(
                            f,
                            " (calibrated output error {a:.5}, {} {b:.5})",
                            if c.weighted { "plain" } else { "weighted" }
                        )?;
                    }
                }
                writeln!(f)?;
            }
        }
        Ok(())
    }
}

/// Position of a part name in `LutConfig::auto`.
fn part_index(part: &str) -> usize {
    match part {
        "ffn" => 0,
        "lm_head" => 1,
        _ => 2,
    }
}

impl fmt::Display for PassReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.run {
            PassRun::EGraph { limits, functions } => self.fmt_egraph(f, limits, functions),
            PassRun::Palettize(r) => self.fmt_palettize(f, r),
        }
    }
}

impl fmt::Display for OptReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.passes {
            write!(f, "{p}")?;
        }
        Ok(())
    }
}
