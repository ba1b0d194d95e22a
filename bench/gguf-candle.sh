#!/usr/bin/env bash
# Issue #13: candle-core's `quantized::gguf_file` vs anemllc's own GGUF reader (src/gguf), on
# the two real GGUF files. Builds bench/gguf-candle (its own workspace; not part of the main
# crate or of .ci/run) in release and, per file, runs three separate processes:
#   anemllc  open+parse, then dequantise every tensor to f32 (one at a time, one thread)
#   candle   the same with candle-core (Content::read over a BufReader, tensor, dequantize)
#   compare  both readers on every tensor: bit-identical f32 or the max difference per type
# Each timing line shows wall time per phase and the process's peak RSS (VmHWM) after it.
# Usage: bench/gguf-candle.sh [RUNS]        (RUNS timing runs per reader, default 3)
#        bench/gguf-candle.sh deps          (candle-core alone: dependency count, clean
#                                             release build time in a scratch target dir)
# Models: $ANEMLLC_MODELS_DIR (default .models), fetched by tests/real_models/fetch.sh.
# Build products: bench/target (git-ignored), shared with bench/gemm-compare.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$PWD"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/bench/target}"

if [[ "${1:-}" == deps ]]; then
    scratch="$(mktemp -d)"
    trap 'rm -rf "$scratch"' EXIT
    mkdir -p "$scratch/src"
    cat >"$scratch/Cargo.toml" <<'TOML'
[package]
name = "candle-alone"
version = "0.0.0"
edition = "2024"
[dependencies]
candle-core = { version = "0.9", default-features = false }
[workspace]
TOML
    echo 'fn main() { let _ = candle_core::Device::Cpu; }' >"$scratch/src/main.rs"
    cp bench/gguf-candle/Cargo.lock "$scratch/Cargo.lock"
    (cd "$scratch" && cargo fetch -q)
    n_candle=$(cd "$scratch" && cargo tree -e normal,build --prefix none --target all | sed 's/ (\*)//' | sort -u | grep -vc '^candle-alone')
    n_candle_host=$(cd "$scratch" && cargo tree -e normal,build --prefix none | sed 's/ (\*)//' | sort -u | grep -vc '^candle-alone')
    n_ours=$(cargo tree -e normal,build --prefix none | sed 's/ (\*)//' | sort -u | grep -vc '^anemllc v')
    new=$(comm -13 <(cargo tree -e normal,build --prefix none | sed 's/ (\*)//' | sort -u) \
                   <(cd "$scratch" && cargo tree -e normal,build --prefix none | sed 's/ (\*)//' | sort -u) | grep -vc '^candle-alone')
    echo "candle-core 0.9 (default features off): $n_candle crates in its tree (all targets), $n_candle_host on this host"
    echo "anemllc: $n_ours crates; candle-core would add $new crates not already in anemllc's tree (this host)"
    echo "clean release build of candle-core and its dependencies (cargo build --release -j2):"
    start=$(date +%s.%N)
    (cd "$scratch" && CARGO_TARGET_DIR="$scratch/target" cargo build --release -q -j2)
    end=$(date +%s.%N)
    python3 -c "print(f'  {float($end) - float($start):.1f} s wall')"
    exit 0
fi

runs="${1:-3}"
(cd bench/gguf-candle && cargo build --release --quiet)
bin="$CARGO_TARGET_DIR/release/gguf-candle"
models="${ANEMLLC_MODELS_DIR:-$root/.models}"
for f in SmolLM2-135M-Instruct.Q4_1.gguf gemma-3-270m-q4_k_m.gguf; do
    [[ -f "$models/$f" ]] || ANEMLLC_MODELS_DIR="$models" bash tests/real_models/fetch.sh >/dev/null
done
for f in SmolLM2-135M-Instruct.Q4_1.gguf gemma-3-270m-q4_k_m.gguf; do
    gguf="$models/$f"
    echo "== $f ($(du -m "$gguf" | cut -f1) MB)"
    for _ in $(seq "$runs"); do
        "$bin" "$gguf" anemllc
        "$bin" "$gguf" anemllc-rows
        "$bin" "$gguf" candle
    done
    "$bin" "$gguf" compare
done
