//! Exact 1-D k-means by Lagrangian relaxation: a penalty per cluster instead of a cluster
//! count, searched until the penalised optimum has exactly `k` clusters.
//!
//! For a penalty `λ > 0` the problem "partition the sorted weighted points into contiguous
//! clusters, any number of them, minimising `cost + λ · clusters`" is a one-layer dynamic
//! program
//!
//! ```text
//! E[0] = 0,   E[i] = min_{t < i} E[t] + sse(t, i) + λ
//! ```
//!
//! Because `sse` is Monge (it satisfies the quadrangle inequality), a split candidate `i`
//! that beats an older candidate `c` at some row beats it at every later row. So the
//! candidates that can still win form a queue ordered by the row from which each wins, and
//! each new candidate pops the ones it beats from their first row on and finds its crossover
//! with the last survivor by a search over rows: O(m log m) cost evaluations for `m` points,
//! against O(k·m·log m) for the layered program of [`super::kmeans::optimal_segments`].
//!
//! **Certificate.** If the penalised optimum `P` has exactly `k` clusters, `P` is an optimal
//! k-partition: every k-partition `P'` has `cost(P') + λ·k ≥ E[m] = cost(P) + λ·k`. The
//! result is therefore exact whenever it is returned, independently of how `λ` was found.
//!
//! **Search.** The cluster count falls as `λ` grows, roughly as `λ^(−1/3)` (the optimal
//! cost of `c` clusters behaves like `A / c²`, so the marginal cost of the `c`-th cluster is
//! about `2A / c³`). The first `λ` comes from the Panter–Dite estimate of `A` for the
//! histogram (`A ≈ F³ / 12` with `F = Σ (count · width²)^(1/3)` over runs of points); each
//! miss moves `λ` along the `λ^(−1/3)` law until a count above and one below `k` are known,
//! then interpolates between them in log–log space. Typically 2–3 programs run per group.
//! When several partitions with different counts tie for the same `λ`, no `λ` may give
//! exactly `k`: after [`MAX_ROUNDS`] programs the function gives up (`None`) and the caller
//! uses the layered program.

use super::kmeans::Prefix;

/// Most penalised programs tried before giving up.
pub const MAX_ROUNDS: usize = 48;

/// Points per run in the Panter–Dite estimate (fewer cube roots, and a smoother density).
const RUN: usize = 8;

/// Scratch of one penalised program, reused across the rounds of one search.
struct Program {
    /// `E[i]`: best penalised cost of the first `i` points.
    best: Vec<f64>,
    /// Clusters in that best partition.
    clusters: Vec<u32>,
    /// Start of its last cluster.
    split: Vec<u32>,
    /// Candidates that can still win: (split point, first row it wins).
    queue: Vec<(u32, u32)>,
}

impl Program {
    fn new(m: usize) -> Program {
        Program {
            best: vec![0.0; m + 1],
            clusters: vec![0; m + 1],
            split: vec![0; m + 1],
            queue: Vec::with_capacity(m + 1),
        }
    }

    /// Solves the penalised problem for `lambda`; returns the cluster count of the optimum.
    fn run(&mut self, pre: &Prefix, m: usize, lambda: f64) -> usize {
        let (w, s, q) = (&pre.w, &pre.s, &pre.q);
        self.queue.clear();
        self.queue.push((0, 1));
        let mut head = 0usize;
        // Distance from a candidate to its crossover, remembered as the next search's guess.
        let mut reach = 1usize;
        for i in 1..=m {
            while head + 1 < self.queue.len() && self.queue[head + 1].1 as usize <= i {
                head += 1;
            }
            let t = self.queue[head].0 as usize;
            self.best[i] = self.best[t] + pre.sse(t, i) + lambda;
            self.clusters[i] = self.clusters[t] + 1;
            self.split[i] = t as u32;
            if i == m {
                break;
            }
            // Add candidate i (for rows > i) behind the candidates it does not beat.
            loop {
                let Some(&(c, from)) = self.queue.get(head..).and_then(|live| live.last()) else {
                    self.queue.push((i as u32, (i + 1) as u32));
                    break;
                };
                let (c, r0) = (c as usize, (from as usize).max(i + 1));
                // i beats c at row r ⇔ E[i] + sse(i, r) ≤ E[c] + sse(c, r). With
                // sse(a, r) = q_ar − s_ar² / w_ar and q_ir − q_cr = q_c − q_i, multiplying by
                // w_ir · w_cr > 0 gives a test without division.
                let d = (self.best[i] + q[c]) - (self.best[c] + q[i]);
                let (wi, si, wc, sc) = (w[i], s[i], w[c], s[c]);
                let wins = |r: usize| {
                    let (wir, sir, wcr, scr) = (w[r] - wi, s[r] - si, w[r] - wc, s[r] - sc);
                    d * wir * wcr <= sir * sir * wcr - scr * scr * wir
                };
                if wins(r0) {
                    self.queue.pop();
                    continue;
                }
                let cross = first_true(r0 + 1, m + 1, i + reach, &wins);
                if cross <= m {
                    reach = cross - i;
                    self.queue.push((i as u32, cross as u32));
                }
                break;
            }
            head = head.min(self.queue.len() - 1);
        }
        self.clusters[m] as usize
    }

    /// Start offsets of the clusters of the last optimum, which has `k` clusters.
    fn starts(&self, m: usize, k: usize) -> Vec<usize> {
        let mut starts = vec![0usize; k];
        let mut i = m;
        for slot in starts.iter_mut().rev() {
            i = self.split[i] as usize;
            *slot = i;
        }
        starts
    }
}

/// The smallest `r` in `lo..hi` with `pred(r)`, or `hi` if there is none, for a predicate
/// that is false and then true. Gallops from `guess` (clamped into the range) and then
/// bisects, so a good guess costs O(log distance) evaluations.
fn first_true(lo: usize, hi: usize, guess: usize, pred: &impl Fn(usize) -> bool) -> usize {
    if lo >= hi {
        return hi;
    }
    let g = guess.clamp(lo, hi - 1);
    // Invariant below: the answer lies in (below, above], where pred(above) holds or
    // above == hi, and pred(below) fails or below == lo − 1 (as a wrapping value).
    let (mut below, mut above);
    let mut step = 1;
    if pred(g) {
        above = g;
        loop {
            if above < lo + step {
                below = lo.wrapping_sub(1);
                break;
            }
            let r = above - step;
            if pred(r) {
                above = r;
                step *= 2;
            } else {
                below = r;
                break;
            }
        }
    } else {
        below = g;
        loop {
            let r = below + step;
            if r >= hi {
                above = hi;
                break;
            }
            if pred(r) {
                above = r;
                break;
            }
            below = r;
            step *= 2;
        }
    }
    while above.wrapping_sub(below) > 1 {
        let mid = below.wrapping_add(above.wrapping_sub(below) / 2);
        if pred(mid) {
            above = mid;
        } else {
            below = mid;
        }
    }
    above
}

/// The Panter–Dite starting penalty for `k` clusters (see the module docs), or `None` when
/// the estimate is not a positive finite number.
fn initial_penalty(xs: &[f64], ws: &[f64], k: usize) -> Option<f64> {
    let m = xs.len();
    let edge = |p: usize| {
        if p == 0 {
            xs[0]
        } else if p >= m {
            xs[m - 1]
        } else {
            (xs[p - 1] + xs[p]) / 2.0
        }
    };
    let mut f = 0.0;
    for s in (0..m).step_by(RUN) {
        let e = (s + RUN).min(m);
        let width = edge(e) - edge(s);
        let count: f64 = ws[s..e].iter().sum();
        f += (count * width * width).cbrt();
    }
    let lambda = f.powi(3) / (6.0 * (k as f64).powi(3));
    (lambda.is_finite() && lambda > 0.0).then_some(lambda)
}

/// An optimal partition of the `m > k ≥ 2` sorted weighted points into `k` contiguous
/// non-empty clusters, as start offsets (`starts[0] == 0`, strictly increasing), or `None`
/// when the search finds no penalty with exactly `k` clusters (see the module docs).
pub fn segments_by_penalty(xs: &[f64], ws: &[f64], k: usize) -> Option<Vec<usize>> {
    let m = xs.len();
    if k < 2 || m <= k || ws.len() != m {
        return None;
    }
    let pre = Prefix::new(xs, ws);
    let total = pre.sse(0, m);
    let mut lambda = initial_penalty(xs, ws, k).unwrap_or(2.0 * total / (k as f64).powi(3));
    if !(lambda.is_finite() && lambda > 0.0) {
        return None;
    }
    let mut program = Program::new(m);
    let target = k as f64;
    // Penalties known to give more (below) and fewer (above) clusters than k.
    let (mut below, mut count_below) = (0.0f64, m as f64);
    let (mut above, mut count_above) = (f64::INFINITY, 1.0f64);
    for _ in 0..MAX_ROUNDS {
        let count = program.run(&pre, m, lambda);
        if count == k {
            return Some(program.starts(m, k));
        }
        let c = count as f64;
        if count > k {
            (below, count_below) = (lambda, c);
        } else {
            (above, count_above) = (lambda, c);
        }
        lambda = if below > 0.0 && above.is_finite() {
            // Interpolate log λ linearly in log count, kept inside the bracket.
            let (l0, l1) = (below.ln(), above.ln());
            let x = l0 + (target.ln() - count_below.ln()) * (l1 - l0) / (count_above.ln() - count_below.ln());
            x.clamp(l0 + 0.05 * (l1 - l0), l1 - 0.05 * (l1 - l0)).exp()
        } else {
            lambda * (c / target).powi(3)
        };
        if !(lambda.is_finite() && lambda > 0.0) {
            return None;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_true_finds_the_boundary_from_any_guess() {
        for lo in 0..6usize {
            for hi in lo..14 {
                for answer in lo..=hi {
                    for guess in 0..20 {
                        let got = first_true(lo, hi, guess, &|r| r >= answer);
                        assert_eq!(got, answer, "lo {lo} hi {hi} answer {answer} guess {guess}");
                    }
                }
            }
        }
    }
}
