#!/usr/bin/env bash
# `anemllc run` speed and memory on a converted synthetic model: generates (once) the
# checkpoint of PRESET with `anemllc synth` and its output folder with `anemllc convert`
# (LUT6 FFN and LM head, context 512, batch 64, as bench/convert.sh), then runs
# `anemllc run OUT --tokens 1,2,3,4,5,6,7,8 --decode 8` with a release build under
# /usr/bin/time -v and prints wall time (load included), prefill and decode tokens/s, peak
# RSS, and seconds per generated token per billion parameters.
# Usage: bench/run.sh PRESET [PROMPT_TOKENS [DECODE_STEPS]]
#   PRESET  tiny | small | 1b | 3b | 8b
# Checkpoints and output folders are cached in $ANEMLLC_BENCH_DIR (default
# /tmp/anemllc-bench) as PRESET and PRESET.run-out. RAYON_NUM_THREADS limits the threads.
# When a Python with torch + transformers is available ($ANEMLLC_TORCH_PYTHON, else
# python3), the same work is then timed in transformers fp32 on the source checkpoint
# (bench/run_transformers.py) and printed below ours; otherwise only ours is printed.
set -euo pipefail

preset="${1:?usage: bench/run.sh PRESET [PROMPT_TOKENS [DECODE_STEPS]]}"
prompt_len="${2:-8}"
steps="${3:-8}"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --quiet
bin="$PWD/target/release/anemllc"
root="${ANEMLLC_BENCH_DIR:-/tmp/anemllc-bench}"
ckpt="$root/$preset"
out="$root/$preset.run-out"
mkdir -p "$root"
if [[ ! -f "$ckpt/config.json" ]]; then
    "$bin" synth --preset "$preset" -o "$ckpt" --force
fi
if [[ ! -f "$out/meta.yaml" ]]; then
    "$bin" convert "$ckpt" -o "$out" --force --lut-ffn 6 --lut-lmhead 6 --context 512 --batch 64 >/dev/null
fi
tokens="$(seq -s, 1 "$prompt_len")"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

/usr/bin/time -v "$bin" run "$out" --tokens "$tokens" --decode "$steps" >"$log" 2>&1 || { cat "$log"; exit 1; }

python3 - "$log" "$preset" "$ckpt" "$out" <<'PY'
import glob, json, os, re, struct, sys
text = open(sys.argv[1]).read()
preset, ckpt, out = sys.argv[2], sys.argv[3], sys.argv[4]
params = 0
for f in glob.glob(ckpt + "/*.safetensors"):
    with open(f, "rb") as fh:
        (size,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(size))
    for k, v in header.items():
        if k != "__metadata__":
            p = 1
            for d in v["shape"]:
                p *= d
            params += p
def grab(pattern, cast=float):
    m = re.search(pattern, text)
    return cast(m.group(1)) if m else None
wall_s = grab(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", str)
wall = sum(float(p) * 60 ** i for i, p in enumerate(reversed(wall_s.split(":"))))
user, sys_ = grab(r"User time \(seconds\): (\S+)"), grab(r"System time \(seconds\): (\S+)")
rss_mb = grab(r"Maximum resident set size \(kbytes\): (\d+)") / 1024
m = re.search(r"prefill: (\d+) tokens in ([\d.]+) s \(([\d.]+|-)[^)]*\); decode: (\d+) tokens in ([\d.]+) s \(([\d.]+|-)", text)
pkg = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out) for f in fs if ".mlpackage" in d)
print(f"preset {preset}: {params / 1e9:.3f} B parameters, packages {pkg / 1e9:.2f} GB")
print(f"wall {wall:.1f} s (load included), cpu {user + sys_:.1f} s (user {user:.1f}, sys {sys_:.1f})")
if m:
    n_p, t_p, r_p, n_d, t_d, r_d = m.groups()
    print(f"prefill {n_p} tokens in {t_p} s: {r_p} tokens/s")
    print(f"decode {n_d} tokens in {t_d} s: {r_d} tokens/s")
    if params and float(t_d) > 0:
        print(f"{float(t_d) / int(n_d) / (params / 1e9):.3f} s per decoded token per billion parameters")
print(f"peak RSS {rss_mb:.0f} MB")
tokens = [l for l in text.splitlines() if re.fullmatch(r"[\d,]+", l)]
print("generated: " + (tokens[0] if tokens else "?"))
PY

torch_python="${ANEMLLC_TORCH_PYTHON:-python3}"
if "$torch_python" -c "import torch, transformers" 2>/dev/null; then
    echo "== side by side: transformers fp32, same prompt and steps (bench/run_transformers.py)"
    "$torch_python" bench/run_transformers.py "$ckpt" "$prompt_len" "$steps"
else
    echo "(no torch + transformers in $torch_python: transformers not measured; set ANEMLLC_TORCH_PYTHON)"
fi
