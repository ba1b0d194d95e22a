#!/usr/bin/env bash
# Issue #16: anemllc's weight-product kernel (anemllc::interp::project, fp16 weights, f32
# fixed-order accumulation) vs the gemm crate (f32 and f16), on a Llama-3.2-1B decode step's
# matrix-vector shapes and a 64-token prefill batch, with 1 and 2 threads; then checks whether
# each result depends on the thread count and on the number of rows.
# Builds bench/gemm-compare (its own workspace; not part of the main crate or of .ci/run) in
# release. Usage: bench/gemm-compare.sh [REPS]   (timed calls per case, default 10)
# Build products: bench/target (git-ignored), shared with bench/gguf-candle.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/bench/target}"
(cd bench/gemm-compare && cargo build --release --quiet)
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$CARGO_TARGET_DIR/release/gemm-compare" "${1:-10}"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
