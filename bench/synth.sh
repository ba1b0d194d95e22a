#!/usr/bin/env bash
# Synthetic-checkpoint generation speed: builds anemllc in release, times
# `anemllc synth --preset PRESET -o DIR --force`, prints wall seconds, GB written, GB/s and
# (with GNU time) the peak RSS.
# Usage: bench/synth.sh PRESET [DIR] [extra synth options, e.g. --dtype fp32 --seed 7]
#   PRESET  tiny | small | 1b | 3b | 8b
#   DIR     output folder, kept afterwards and REPLACED if it exists (--force);
#           default: a temporary folder, removed afterwards.
# RAYON_NUM_THREADS limits the threads. The data is not fsync'ed, so GB/s measures writing
# into the page cache; past the kernel's dirty limit (vm.dirty_ratio) it is throttled to
# the disk's write speed.
set -euo pipefail

preset="${1:?usage: bench/synth.sh PRESET [DIR] [synth options]}"
shift
parent=""
if [[ $# -gt 0 && "$1" != -* ]]; then
    dir="$(realpath -m -- "$1")"
    shift
else
    parent="$(mktemp -d "${TMPDIR:-/tmp}/anemllc-synth.XXXXXX")"
    dir="$parent/$preset"
fi
timelog="$(mktemp)"
trap 'rm -f "$timelog"; if [[ -n "$parent" ]]; then rm -rf "$parent"; fi' EXIT

cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --quiet
bin="$PWD/target/release/anemllc"

start=$(date +%s.%N)
if [[ -x /usr/bin/time ]] && /usr/bin/time -v true >/dev/null 2>&1; then
    /usr/bin/time -v -o "$timelog" "$bin" synth --preset "$preset" -o "$dir" --force "$@"
else
    "$bin" synth --preset "$preset" -o "$dir" --force "$@"
fi
end=$(date +%s.%N)

bytes=$(du -sb "$dir" | cut -f1)
rss_kb=$(sed -n 's/^[[:space:]]*Maximum resident set size (kbytes): //p' "$timelog")
awk -v s="$start" -v e="$end" -v b="$bytes" -v r="${rss_kb:-}" -v p="$preset" -v d="$dir" 'BEGIN {
    t = e - s
    printf "synth %s: %.2f s wall, %.3f GB written, %.2f GB/s", p, t, b / 1e9, b / 1e9 / t
    if (r != "") printf ", peak RSS %.0f MB", r / 1024
    printf " (%s)\n", d
}'
