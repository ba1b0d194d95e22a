#!/usr/bin/env bash
# GGUF input vs HuggingFace-folder input: converts the same model from both (LUT6 FFN and LM
# head, context 512, batch 64, release build) and prints wall time and peak RSS of each.
# Usage: bench/gguf.sh smollm2 | 1b
#   smollm2  the real SmolLM2-135M-Instruct Q4_1 GGUF (tests/real_models/fetch.sh) and the
#            HF folder made from it by tests/fixtures/make_real_references.py
#            ($ANEMLLC_MODELS_DIR/SmolLM2-135M-Instruct-hf; needs the torch venv once)
#   1b       a synthetic Llama-3.2-1B-shaped checkpoint (anemllc synth, bf16) and a Q8_0 GGUF
#            written from it (anemllc gguf-export); cached in $ANEMLLC_BENCH_DIR
set -euo pipefail

which="${1:?usage: bench/gguf.sh smollm2|1b}"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --quiet
bin="$PWD/target/release/anemllc"
models="${ANEMLLC_MODELS_DIR:-$PWD/.models}"
root="${ANEMLLC_BENCH_DIR:-/tmp/anemllc-bench}"
mkdir -p "$root"
case "$which" in
    smollm2)
        bash tests/real_models/fetch.sh smollm2 >/dev/null
        gguf="$models/SmolLM2-135M-Instruct.Q4_1.gguf"
        hf="$models/SmolLM2-135M-Instruct-hf"
        [[ -f "$hf/model.safetensors" ]] || { echo "missing $hf (run tests/fixtures/make_real_references.py)"; exit 1; }
        ;;
    1b)
        hf="$root/1b"
        gguf="$root/1b.q8_0.gguf"
        [[ -f "$hf/config.json" ]] || "$bin" synth --preset 1b -o "$hf" --force
        [[ -f "$gguf" ]] || "$bin" gguf-export "$hf" -o "$gguf" --type q8_0
        ;;
    *) echo "unknown model $which (smollm2 | 1b)"; exit 2 ;;
esac

log="$(mktemp)"
out="$root/gguf-bench.out"
trap 'rm -f "$log"; rm -rf "$out"' EXIT
measure() {
    local label="$1" model="$2"
    /usr/bin/time -v "$bin" convert "$model" -o "$out" --force \
        --lut-ffn 6 --lut-lmhead 6 --context 512 --batch 64 2>"$log" >/dev/null || { cat "$log"; exit 1; }
    python3 - "$log" "$label" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", text).group(1)
secs = sum(float(p) * 60 ** i for i, p in enumerate(reversed(wall.split(":"))))
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1)) / 1024
cpu = float(re.search(r"User time \(seconds\): (\S+)", text).group(1)) + float(re.search(r"System time \(seconds\): (\S+)", text).group(1))
print(f"{sys.argv[2]:<12} wall {secs:7.1f} s   cpu {cpu:7.1f} s   peak RSS {rss:7.0f} MB")
PY
}
echo "model $which (convert --lut-ffn 6 --lut-lmhead 6 --context 512 --batch 64)"
measure "GGUF" "$gguf"
measure "HF folder" "$hf"
