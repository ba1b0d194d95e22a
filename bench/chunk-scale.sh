#!/usr/bin/env bash
# Whole-chunk optimisation at 8B scale (issue #15): converts a Llama-3.1-8B-shaped checkpoint
# into ONE 32-layer FFN chunk and prints the opt report (iterations, e-nodes, stop reason
# and time per pass and function), the stage times, peak RSS and the per-layer op counts
# of the chunk's infer and prefill functions.
#
# The checkpoint is all zeros and sparse: a real safetensors header followed by a hole, so
# it takes no disk space and no time to generate, and palettizing a constant tensor is
# trivial — what is measured is the compiler (lower, opt, split, chunk tidy, emission),
# not k-means. (bench/convert.sh measures palettization on random weights.)
# Usage: bench/chunk-scale.sh [LAYERS]   (default 32: the 8B shape)
# Needs ~7 GB of free disk for the LUT6 output, which is removed afterwards.
set -euo pipefail

layers="${1:-32}"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --quiet
bin="$PWD/target/release/anemllc"
root="${ANEMLLC_BENCH_DIR:-/tmp/anemllc-bench}"
ckpt="$root/zero8b-$layers"
out="$root/zero8b-$layers.out"
mkdir -p "$root"

if [[ ! -f "$ckpt/config.json" ]]; then
    mkdir -p "$ckpt"
    python3 - "$ckpt" "$layers" <<'PY'
import json, os, struct, sys
out, layers = sys.argv[1], int(sys.argv[2])
h, inter, heads, kv, hd, vocab = 4096, 14336, 32, 8, 128, 128256
config = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
    "hidden_size": h, "intermediate_size": inter, "num_hidden_layers": layers,
    "num_attention_heads": heads, "num_key_value_heads": kv, "head_dim": hd,
    "vocab_size": vocab, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
    "max_position_embeddings": 131072, "tie_word_embeddings": False,
    "attention_bias": False, "mlp_bias": False, "torch_dtype": "bfloat16",
    "bos_token_id": 128000, "eos_token_id": 128001,
    "rope_scaling": {"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
}
shapes = {"model.embed_tokens.weight": [vocab, h], "model.norm.weight": [h], "lm_head.weight": [vocab, h]}
for i in range(layers):
    p = f"model.layers.{i}."
    shapes.update({
        p + "input_layernorm.weight": [h], p + "post_attention_layernorm.weight": [h],
        p + "self_attn.q_proj.weight": [heads * hd, h], p + "self_attn.k_proj.weight": [kv * hd, h],
        p + "self_attn.v_proj.weight": [kv * hd, h], p + "self_attn.o_proj.weight": [h, heads * hd],
        p + "mlp.gate_proj.weight": [inter, h], p + "mlp.up_proj.weight": [inter, h],
        p + "mlp.down_proj.weight": [h, inter],
    })
header, offset = {}, 0
for name, shape in shapes.items():
    n = 2
    for d in shape:
        n *= d
    header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + n]}
    offset += n
blob = json.dumps(header).encode()
blob += b" " * (-len(blob) % 8)
path = os.path.join(out, "model.safetensors")
with open(path, "wb") as f:
    f.write(struct.pack("<Q", len(blob)) + blob)
    f.truncate(8 + len(blob) + offset)  # a hole: reads as zeros, occupies nothing
with open(os.path.join(out, "config.json"), "w") as f:
    json.dump(config, f, indent=2)
print(f"sparse zero checkpoint: {len(shapes)} tensors, {offset / 2 / 1e9:.2f} B parameters")
PY
fi

log="$(mktemp)"
air="$(mktemp --suffix=.air)"
trap 'rm -f "$log" "$air" "$air.opt"; rm -rf "$out"' EXIT
echo "== anemllc lower + opt --report (per pass and function: iterations, e-nodes, stop reason, time)"
"$bin" lower "$ckpt" -o "$air" --context 512 --batch 64
/usr/bin/time -f "opt: wall %e s, peak RSS %M KB" "$bin" opt "$air" -o "$air.opt" --report 2>&1 | tail -n 40
echo "== anemllc convert --chunks 1 (one ${layers}-layer chunk)"
/usr/bin/time -v "$bin" convert "$ckpt" -o "$out" --force --chunks 1 \
    --lut-ffn 6 --lut-lmhead 6 --context 512 --batch 64 2>"$log" || { cat "$log"; exit 1; }
grep -E "converted in|opt " "$log" || true
awk -F': ' '/Elapsed \(wall/ {print "wall " $2} /Maximum resident/ {printf "peak RSS %d MB\n", $2/1024}' "$log"
chunk="$(ls -d "$out"/*FFN_PF*chunk_01of01.mlpackage)"
"$bin" inspect --summary "$chunk"
