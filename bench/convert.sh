#!/usr/bin/env bash
# Conversion speed and memory: generates (once) a synthetic checkpoint of PRESET with
# `anemllc synth`, converts it the way ANEMLL's default flow does (LUT6 FFN and LM head,
# context 512, batch 64) with a release build, and prints wall time, CPU time, CPU/wall,
# peak RSS, per-stage times, palettized weights per second and time per billion parameters.
# Usage: bench/convert.sh PRESET [extra convert flags]
#   PRESET  tiny | small | 1b | 3b | 8b
# Checkpoints are cached in $ANEMLLC_BENCH_DIR (default /tmp/anemllc-bench); the output
# folder is removed afterwards. RAYON_NUM_THREADS limits the threads.
set -euo pipefail

preset="${1:?usage: bench/convert.sh PRESET [convert flags]}"
shift
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --quiet
bin="$PWD/target/release/anemllc"
root="${ANEMLLC_BENCH_DIR:-/tmp/anemllc-bench}"
ckpt="$root/$preset"
out="$root/$preset.out"
mkdir -p "$root"
if [[ ! -f "$ckpt/config.json" ]]; then
    "$bin" synth --preset "$preset" -o "$ckpt" --force
fi
log="$(mktemp)"
trap 'rm -f "$log"; rm -rf "$out"' EXIT

/usr/bin/time -v "$bin" convert "$ckpt" -o "$out" --force \
    --lut-ffn 6 --lut-lmhead 6 --context 512 --batch 64 "$@" 2>"$log" || { cat "$log"; exit 1; }

params="$(python3 - "$ckpt" <<'PY'
import glob, json, struct, sys
n = 0
for f in glob.glob(sys.argv[1] + "/*.safetensors"):
    with open(f, "rb") as fh:
        (size,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(size))
    for k, v in header.items():
        if k != "__metadata__":
            p = 1
            for d in v["shape"]:
                p *= d
            n += p
print(n)
PY
)"
python3 - "$log" "$preset" "$params" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
preset, params = sys.argv[2], int(sys.argv[3])
def grab(pattern, cast=float):
    m = re.search(pattern, text)
    return cast(m.group(1)) if m else None
wall_s = grab(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", str)
parts = [float(x) for x in wall_s.split(":")]
wall = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
user, sys_ = grab(r"User time \(seconds\): (\S+)"), grab(r"System time \(seconds\): (\S+)")
rss_mb = grab(r"Maximum resident set size \(kbytes\): (\d+)") / 1024
stages = dict(re.findall(r"^\s*(\w+) done in ([\d.]+)s", text, re.M))
lut = grab(r"palettized (\d+) weights", int)
print(f"preset {preset}: {params/1e9:.3f} B parameters")
print(f"wall {wall:.1f} s, cpu {user + sys_:.1f} s (user {user:.1f}, sys {sys_:.1f}), cpu/wall {(user + sys_) / wall:.2f}")
print(f"peak RSS {rss_mb:.0f} MB")
print("stages: " + ", ".join(f"{k} {v} s" for k, v in stages.items()))
if lut and "emit" in stages:
    print(f"palettized {lut / 1e6:.1f} M weights, {lut / 1e6 / float(stages['emit']):.1f} M weights/s during emit")
if params:
    print(f"{wall / (params / 1e9):.1f} s per billion parameters")
summary = [l for l in text.splitlines() if l.startswith(("total", "llama_", "qwen"))]
print("\n".join(summary))
PY
