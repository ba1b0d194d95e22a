#!/usr/bin/env python3
"""Builds a small ML Program package with coremltools' own MIL builder and serializer, plus a
numpy reference of its outputs, so the Rust reader can be tested on a package it did not
write.

Usage: make_reference_package.py OUT_DIR
Writes OUT_DIR/reference.mlpackage and OUT_DIR/reference.json with
{"inputs": {name: {"shape", "data"}}, "states": {...}, "outputs": {...}, "states_after": {...}}.

The program covers: gather (embedding), layer_norm with gamma/beta, linear with bias, silu,
tanh-gelu, transpose, expand_dims, an iOS18 constexpr_lut_to_dense (uint4, per-channel
groups) feeding a same-padded conv, squeeze, a state read + slice_update + write, softmax,
reduce_mean, real_div, rsqrt and reduce_argmax. Everything is fp16 inside.
"""

import json
import os
import sys
import warnings

warnings.filterwarnings("ignore")
saved = os.dup(1)
devnull = os.open(os.devnull, os.O_WRONLY)
os.dup2(devnull, 1)
try:
    import coremltools as ct
    import numpy as np
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types
finally:
    os.dup2(saved, 1)

V, H, S, C, O, G = 64, 16, 8, 16, 16, 4
rng = np.random.default_rng(1234)
emb = rng.standard_normal((V, H)).astype(np.float16)
gamma = (1 + 0.1 * rng.standard_normal(H)).astype(np.float16)
beta = (0.1 * rng.standard_normal(H)).astype(np.float16)
w_lin = (0.3 * rng.standard_normal((32, H))).astype(np.float16)
b_lin = (0.1 * rng.standard_normal(32)).astype(np.float16)
indices = rng.integers(0, 16, size=(O, 32, 1, 3)).astype(np.uint8)
lut = (0.2 * rng.standard_normal((G, 1, 1, 1, 16, 1))).astype(np.float16)


@mb.program(
    input_specs=[
        mb.TensorSpec((1, S), dtype=types.int32),
        mb.TensorSpec((1,), dtype=types.int32),
        mb.StateTensorSpec((1, O, C), dtype=types.fp16),
    ],
    opset_version=ct.target.iOS18,
)
def prog(input_ids, pos, kv):
    x = mb.gather(x=emb, indices=input_ids, axis=0, name="embed")
    ln = mb.layer_norm(x=x, axes=[-1], gamma=gamma, beta=beta, epsilon=np.float16(1e-5), name="ln")
    y = mb.linear(x=ln, weight=w_lin, bias=b_lin, name="proj")
    a = mb.silu(x=y, name="act")
    g = mb.gelu(x=y, mode="TANH_APPROXIMATION", name="gel")
    z = mb.mul(x=a, y=g, name="gated")
    t = mb.transpose(x=z, perm=[0, 2, 1], name="chan_first")
    t4 = mb.expand_dims(x=t, axes=[2], name="nchw")
    w = mb.constexpr_lut_to_dense(indices=indices.astype(types.np_uint4_dtype), lut=lut, name="w_pal")
    c = mb.conv(x=t4, weight=w, pad_type="same", name="conv")
    c3 = mb.squeeze(x=c, axes=[2], name="c3")
    cache = mb.read_state(input=kv, name="cache")
    zero = np.array([0, 0], dtype=np.int32)
    begin = mb.concat(values=[zero, pos], axis=0, name="begin")
    end = mb.add(x=begin, y=np.array([1, O, S], dtype=np.int32), name="end")
    upd = mb.slice_update(x=cache, update=c3, begin=begin, end=end, name="upd")
    new = mb.coreml_update_state(state=kv, value=upd, name="kv_new")
    head = mb.slice_by_index(x=new, begin=[0, 0, 0], end=[1, O, S], name="head")
    small = mb.mul(x=head, y=np.float16(0.02), name="small")
    scores = mb.matmul(x=small, y=head, transpose_x=True, name="scores")
    p = mb.softmax(x=scores, axis=-1, name="probs")
    m = mb.reduce_mean(x=p, axes=[-1], keep_dims=True, name="mean")
    r = mb.rsqrt(x=m, epsilon=np.float16(1e-3), name="inv")
    out = mb.mul(x=p, y=r, name="out")
    best = mb.reduce_argmax(x=p, axis=-1, name="best")
    return out, best


def f16(a):
    return np.asarray(a, dtype=np.float32).astype(np.float16).astype(np.float32)


def reference(ids, pos, kv):
    x = emb.astype(np.float32)[ids]
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    ln = f16((x - mu) / np.sqrt(var + 1e-5) * gamma.astype(np.float32) + beta.astype(np.float32))
    y = f16(ln @ w_lin.astype(np.float32).T + b_lin.astype(np.float32))
    a = f16(y / (1 + np.exp(-y)))
    g = f16(0.5 * y * (1 + np.tanh(np.sqrt(2 / np.pi) * (y + 0.044715 * y ** 3))))
    z = f16(a * g)
    t4 = z.transpose(0, 2, 1)[:, :, None, :]
    groups = lut.reshape(G, 16).astype(np.float32)
    w = groups[np.arange(O)[:, None, None, None] // (O // G), indices]
    # same padding along W for a 1x3 kernel: 1 before, 1 after.
    xp = np.pad(t4, ((0, 0), (0, 0), (0, 0), (1, 1)))
    c = np.zeros((1, O, 1, S), dtype=np.float32)
    for o in range(O):
        for s in range(S):
            c[0, o, 0, s] = np.sum(w[o, :, 0, :] * xp[0, :, 0, s:s + 3])
    c3 = f16(c[:, :, 0, :])
    kv = kv.copy()
    kv[0, :, pos:pos + S] = c3[0]
    head = kv[:, :, :S]
    small = f16(head * np.float32(np.float16(0.02)))
    scores = f16(small.transpose(0, 2, 1) @ head)
    e = np.exp(scores - scores.max(-1, keepdims=True))
    p = f16(e / e.sum(-1, keepdims=True))
    m = f16(p.mean(-1, keepdims=True))
    r = f16(1 / np.sqrt(m + f16(1e-3)))
    return f16(p * r), p.argmax(-1).astype(np.int32), kv


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    pkg = os.path.join(out_dir, "reference.mlpackage")
    model = ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS18,
                       compute_precision=ct.precision.FLOAT16, skip_model_load=True)
    model.save(pkg)
    ids = rng.integers(0, V, size=(1, S)).astype(np.int32)
    pos = np.array([3], dtype=np.int32)
    kv = f16(rng.standard_normal((1, O, C)))
    out, best, kv_after = reference(ids, int(pos[0]), kv)
    t = lambda a: {"shape": list(a.shape), "data": a.reshape(-1).tolist()}  # noqa: E731
    ref = {"inputs": {"input_ids": t(ids), "pos": t(pos)}, "states": {"kv": t(kv)},
           "outputs": {"out": t(out), "best": t(best)}, "states_after": {"kv": t(kv_after)}}
    with open(os.path.join(out_dir, "reference.json"), "w") as f:
        json.dump(ref, f)
    print(pkg)


if __name__ == "__main__":
    main(sys.argv[1])
