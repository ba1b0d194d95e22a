#!/usr/bin/env python3
"""coremltools' own k-means palettization error on given weight matrices.

Reference for tests/quant_quality.rs. For each bit width, every matrix (a .npy file, axis 0 =
output channels) becomes the weight of a `linear` in one tiny MIL program, converted with
fp16 compute precision (so the consts are fp16, as in ANEMLL's packages) and palettized with
exactly ANEMLL's call:

    cto.palettize_weights(model, cto.OptimizationConfig(global_config=cto.OpPalettizerConfig(
        mode="kmeans", nbits=b, granularity="per_grouped_channel", group_size=8, ...)))

(`weight_threshold` is lowered so that every given matrix is palettized). The palettized
program's `constexpr_lut_to_dense` ops are decompressed by hand (out[i, j] =
lut[i // (d0 / G), 0, idx[i, j], 0]) and compared with the fp16 weights the palettizer saw:
rel_err = ||W16 - W_hat|| / ||W16||.

Usage: palettize_reference.py [--bits 4 6] [--group-size 8] [--out result.json] a.npy b.npy …
Prints (or writes) JSON: {"coremltools": …, "results": [{"name", "shape", "bits",
"rel_err", "rel_err_fp32", "kmeans"}]}, where name is the file stem and kmeans says which
clustering coremltools used for the matrix ("kmeans1d" for fp16 groups of >= 10000 elements
when the kmeans1d package is installed, else "sklearn").

Exit status 3 when a needed package (coremltools, scikit-learn) is missing.
"""

import argparse
import importlib.metadata
import json
import logging
import os
import sys
import warnings


def missing(what):
    print(f"palettize_reference.py: {what} is not installed in {sys.executable}", file=sys.stderr)
    sys.exit(3)


try:
    import numpy as np
except ImportError:
    missing("numpy")

warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)
try:
    import coremltools as ct
    import coremltools.optimize.coreml as cto
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import Function, Program
except ImportError:
    missing("coremltools")
try:
    import sklearn  # noqa: F401  (coremltools' k-means for groups under 10000 weights)
except ImportError:
    missing("scikit-learn")


def version(pkg):
    try:
        return importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
        return None


def palettize(weights, bits, group_size):
    """{name: W_hat} from coremltools' palettizer for {name: fp32 matrix}."""
    names = list(weights)
    mats = [weights[n].reshape(weights[n].shape[0], -1) for n in names]
    inputs = {f"x{i}": mb.placeholder(shape=(1, m.shape[1])) for i, m in enumerate(mats)}
    with Function(inputs, opset_version=ct.target.iOS18) as fn:
        outs = [mb.linear(x=fn.inputs[f"x{i}"], weight=m, name=f"w{i}_") for i, m in enumerate(mats)]
        fn.set_outputs(outs)
    prog = Program()
    prog.add_function("main", fn)
    model = ct.convert(
        prog,
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS18,
        compute_precision=ct.precision.FLOAT16,
    )
    threshold = min(m.size for m in mats) - 1
    config = cto.OptimizationConfig(
        global_config=cto.OpPalettizerConfig(
            mode="kmeans",
            nbits=bits,
            granularity="per_grouped_channel",
            group_size=group_size,
            weight_threshold=threshold,
        )
    )
    palettized = cto.palettize_weights(model, config)
    out = {}
    for op in palettized._mil_program.functions["main"].operations:
        if op.op_type != "constexpr_lut_to_dense":
            continue
        i = next(i for i in range(len(mats)) if op.name.startswith(f"w{i}_"))
        idx = op.indices.val.astype(np.int64)
        lut = op.lut.val.astype(np.float64)  # [G, 1, 2^bits, 1]
        groups = lut.shape[0]
        rows = idx.shape[0] // groups
        dense = np.empty(idx.shape, dtype=np.float64)
        for g in range(groups):
            dense[g * rows : (g + 1) * rows] = lut[g, 0, :, 0][idx[g * rows : (g + 1) * rows]]
        out[names[i]] = dense
    lost = [n for n in names if n not in out]
    if lost:
        raise SystemExit(f"coremltools did not palettize {lost}")
    return out


def rel_err(ref, approx):
    num = np.linalg.norm((ref - approx).ravel())
    den = np.linalg.norm(ref.ravel())
    return float(num / den) if num > 0 else 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bits", type=int, nargs="+", default=[4, 6])
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--out", help="write the JSON here instead of stdout")
    ap.add_argument("npy", nargs="+")
    args = ap.parse_args()

    weights = {}
    for path in args.npy:
        w = np.load(path).astype(np.float32)
        weights[os.path.splitext(os.path.basename(path))[0]] = w
    try:
        import kmeans1d  # noqa: F401

        has_kmeans1d = True
    except ImportError:
        has_kmeans1d = False

    results = []
    for bits in args.bits:
        recon = palettize(weights, bits, args.group_size)
        for name, w in weights.items():
            w16 = w.astype(np.float16).astype(np.float64)
            w_hat = recon[name].reshape(w.shape)
            group_weights = w.size // (w.shape[0] // args.group_size)
            results.append(
                {
                    "name": name,
                    "shape": list(w.shape),
                    "bits": bits,
                    "rel_err": rel_err(w16, w_hat),
                    "rel_err_fp32": rel_err(w.astype(np.float64), w_hat),
                    "kmeans": "kmeans1d" if has_kmeans1d and group_weights >= 10_000 else "sklearn",
                }
            )
    doc = {
        "coremltools": version("coremltools"),
        "numpy": version("numpy"),
        "scikit_learn": version("scikit-learn"),
        "kmeans1d": version("kmeans1d"),
        "group_size": args.group_size,
        "results": results,
    }
    text = json.dumps(doc, indent=1)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    main()
