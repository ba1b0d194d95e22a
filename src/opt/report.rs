//! What `anemllc opt --report` prints: per pass and function, the e-graph run (iterations,
//! e-nodes, stop reason, rules fired with counts) and the cost before/after extraction.

use std::fmt;
use std::time::Duration;

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
}

/// One pass over the module.
#[derive(Clone, Debug, PartialEq)]
pub struct PassReport {
    pub pass: String,
    pub limits: Limits,
    /// Notes from the pass's IR-level steps (signature changes, fp16 range report, …).
    pub notes: Vec<String>,
    pub functions: Vec<FunctionReport>,
}

impl PassReport {
    /// Total fire count of each rule over all functions, in first-fired order.
    pub fn fired_totals(&self) -> Vec<(String, usize)> {
        let mut out: Vec<(String, usize)> = Vec::new();
        for f in &self.functions {
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
        self.functions.iter().map(|f| f.cost_before).sum()
    }

    pub fn cost_after(&self) -> f64 {
        self.functions.iter().map(|f| f.cost_after).sum()
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

impl fmt::Display for PassReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.limits;
        writeln!(
            f,
            "pass {} (limits: {} iterations, {} e-nodes, {}s): cost {} → {}",
            self.pass,
            l.iterations,
            l.nodes,
            l.time.as_secs_f64(),
            fmt_cost(self.cost_before()),
            fmt_cost(self.cost_after())
        )?;
        for note in &self.notes {
            writeln!(f, "  note: {note}")?;
        }
        for r in &self.functions {
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
            writeln!(f)?;
            if !r.fired.is_empty() {
                let items: Vec<String> = r.fired.iter().map(|(n, c)| format!("{n} ×{c}")).collect();
                writeln!(f, "    fired: {}", items.join(", "))?;
            }
        }
        Ok(())
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
