#!/usr/bin/env bash
# Palettization throughput: k-means LUT palettization of a synthetic 2048×8192 bf16-valued
# matrix (group size 8) in a release build; prints seconds and weights per second.
# Usage: bench/palettize.sh [bits]   (default 6; RAYON_NUM_THREADS limits the threads)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ANEMLLC_BENCH_BITS="${1:-6}" cargo test --release --quiet --test quant_bench -- \
    --ignored --nocapture --test-threads 1 palettize_throughput 2>&1 | grep -E '^palettize|panicked|error'
