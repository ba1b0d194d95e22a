#!/usr/bin/env bash
# Palettization quality on a real model: fp16, data-free and calibrated LUT6/LUT4, mixed
# bits. Prints a markdown table (top-1 agreement and mean KL divergence against the fp32
# lowered module over the held-out text, max / mean logit relative error, package MB,
# convert seconds). Not a timed test; release build.
# Usage: bench/quality.sh [smollm2] [TOKENS]
set -euo pipefail
which="${1:-smollm2}"
tokens="${2:-320}"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
case "$which" in
    smollm2)
        bash tests/real_models/fetch.sh smollm2 >/dev/null
        model="${ANEMLLC_MODELS_DIR:-$PWD/.models}/SmolLM2-135M-Instruct.Q4_1.gguf"
        ;;
    *) echo "unknown model $which (smollm2)"; exit 2 ;;
esac
cargo run --release --quiet --example lut_quality -- "$model" "$tokens"
