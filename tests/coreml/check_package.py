#!/usr/bin/env python3
"""Type-checks Core ML .mlpackage directories with coremltools on Linux.

Usage: check_package.py [--strict-states] [--dump-constexpr] PKG.mlpackage [PKG2.mlpackage ...]

For each package, in order:
  1. Manifest.json: three keys, fileFormatVersion 1.0.0, four strings per item, the root
     item and the weights item exist on disk.
  2. model.mlmodel: strict protobuf parse (unknown fields are an error), spec version vs
     function opsets, description vs program (functions, default function, inputs, states).
  3. weight.bin: header (version 2, count), chain walk with sentinel/alignment checks, and
     every BlobFileValue offset points at a record of the declared dtype and size.
  4. coremltools.models.MLModel(pkg, skip_model_load=True).
  5. The milproto loader (coremltools.converters.mil.frontend.milproto.load), which rebuilds
     the program op by op, running every op's input validation and type inference for the
     opset; then each function's inferred output types are compared with the declared ones
     (proto op outputs and description features).
States that are not fp16 are warnings (errors with --strict-states): coremltools' exporter
refuses them and Core ML only runs fp16 states.
With --dump-constexpr, every constexpr_* op's value as coremltools decompresses it (its own
blob reader and sub-byte unpacking) is added to the report (flattened, up to 65536 values),
for an independent check of the emitter's packing.

Prints one JSON object {"ok": bool, "packages": [...]} on stdout; exit status 0 iff all ok.
"""

import json
import os
import struct
import sys
import traceback
import warnings

warnings.filterwarnings("ignore")


def _quiet_import():
    # coremltools prints "Failed to load _MLModelProxy ..." lines on Linux; keep stdout clean.
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    try:
        import coremltools as ct  # noqa: F401
        from coremltools.converters.mil.frontend.milproto import load as milproto_load  # noqa: F401
        from coremltools.proto import MIL_pb2, Model_pb2  # noqa: F401
    finally:
        os.dup2(saved, 1)
        os.close(devnull)
        os.close(saved)
    import coremltools as ct
    from coremltools.converters.mil.frontend.milproto import load as milproto_load
    from coremltools.proto import MIL_pb2, Model_pb2
    return ct, milproto_load, MIL_pb2, Model_pb2


ct, milproto_load, MIL_pb2, Model_pb2 = _quiet_import()
import numpy as np  # noqa: E402
from coremltools.converters.mil.mil import types  # noqa: E402
from coremltools.converters.mil.mil.types.symbolic import is_symbolic  # noqa: E402

OPSET_OF_SPEC = {6: "CoreML5", 7: "CoreML6", 8: "CoreML7", 9: "CoreML8", 10: "CoreML9"}
ARRAY_DTYPES = {65568: "fp32", 65552: "fp16", 131104: "int32", 131080: "int8", 65600: "fp64"}
BLOB_CODES = {1: ("fp16", 16), 2: ("fp32", 32), 3: ("uint8", 8), 4: ("int8", 8), 5: ("bf16", 16),
              6: ("int16", 16), 7: ("uint16", 16), 8: ("int4", 4), 9: ("uint1", 1), 10: ("uint2", 2),
              11: ("uint4", 4), 12: ("uint3", 3), 13: ("uint6", 6), 14: ("int32", 32), 15: ("uint32", 32)}
MIL_TO_BLOB = {10: 1, 11: 2, 31: 3, 21: 4, 13: 5, 22: 6, 32: 7, 25: 8, 37: 9, 36: 10, 35: 11, 39: 12, 38: 13,
               23: 14, 33: 15}
MIL_BITS = {10: 16, 11: 32, 31: 8, 21: 8, 13: 16, 22: 16, 32: 16, 25: 4, 37: 1, 36: 2, 35: 4, 39: 3, 38: 6,
            23: 32, 33: 32}


def check_manifest(pkg, errors):
    path = os.path.join(pkg, "Manifest.json")
    try:
        with open(path) as f:
            m = json.load(f)
    except Exception as e:  # noqa: BLE001
        errors.append(f"manifest: {e}")
        return None
    if set(m) != {"fileFormatVersion", "itemInfoEntries", "rootModelIdentifier"}:
        errors.append(f"manifest: top-level keys {sorted(m)}")
    if m.get("fileFormatVersion") != "1.0.0":
        errors.append(f"manifest: fileFormatVersion {m.get('fileFormatVersion')!r}")
    items = m.get("itemInfoEntries", {})
    for key, item in items.items():
        if set(item) != {"author", "description", "name", "path"} or not all(isinstance(v, str) for v in item.values()):
            errors.append(f"manifest: item {key} is not four strings")
            continue
        if item["path"] != f"{item['author']}/{item['name']}":
            errors.append(f"manifest: item {key} path {item['path']!r} is not <author>/<name>")
        if not os.path.exists(os.path.join(pkg, "Data", item["path"])):
            errors.append(f"manifest: item {key} path {item['path']} does not exist")
    root = items.get(m.get("rootModelIdentifier"))
    if root is None:
        errors.append("manifest: rootModelIdentifier names no item")
        return None
    return os.path.join(pkg, "Data", root["path"])


def check_unknown_fields(msg, errors):
    copy = type(msg)()
    copy.CopyFrom(msg)
    copy.DiscardUnknownFields()
    if copy.ByteSize() != msg.ByteSize():
        errors.append("model.mlmodel: has unknown protobuf fields (wrong field number or wire type)")


def walk_blobs(path, errors):
    """Returns {metadata offset: (dtype code, size, padding)}."""
    records = {}
    if not os.path.exists(path):
        return records
    data = open(path, "rb").read()
    if len(data) < 64:
        errors.append("weight.bin: shorter than its header")
        return records
    count, version = struct.unpack_from("<II", data, 0)
    if version != 2:
        errors.append(f"weight.bin: version {version}")
    if any(data[8:64]):
        errors.append("weight.bin: reserved header bytes are not zero")
    off = 64
    for i in range(count):
        if off % 64:
            errors.append(f"weight.bin: record {i} at unaligned offset {off}")
        if off + 64 > len(data):
            errors.append(f"weight.bin: record {i} at {off} runs past the end")
            break
        sentinel, code, size, data_off, pad = struct.unpack_from("<IIQQQ", data, off)
        if sentinel != 0xDEADBEEF:
            errors.append(f"weight.bin: bad sentinel at {off}")
            break
        if data_off != off + 64:
            errors.append(f"weight.bin: payload of record at {off} is at {data_off}, not {off + 64}")
        if data_off + size > len(data):
            errors.append(f"weight.bin: payload of record at {off} runs past the end")
        if code not in BLOB_CODES:
            errors.append(f"weight.bin: unknown dtype code {code} at {off}")
        elif BLOB_CODES[code][1] < 8:
            if pad >= 8 or (BLOB_CODES[code][1] in (1, 2, 4) and pad % BLOB_CODES[code][1]):
                errors.append(f"weight.bin: bad sub-byte padding {pad} at {off}")
        elif pad:
            errors.append(f"weight.bin: padding {pad} on a byte type at {off}")
        records[off] = (code, size, pad)
        off = (data_off + size + 63) // 64 * 64
    end = max((o + 64 + s for o, (_, s, _) in records.items()), default=64)
    if count and end != len(data):
        errors.append(f"weight.bin: {len(data) - end} trailing bytes after the last payload")
    return records


def iter_values(program):
    """Yields (where, Value) for every const val and inline binding value."""
    for fname, func in program.functions.items():
        for bname, block in func.block_specializations.items():
            for op in block.operations:
                name = op.attributes["name"].immediateValue.tensor.strings.values[0] if "name" in op.attributes else "?"
                for k, v in op.attributes.items():
                    yield f"{fname}/{name}.{k}", v
                for k, arg in op.inputs.items():
                    for b in arg.arguments:
                        if b.WhichOneof("binding") == "value":
                            yield f"{fname}/{name}.{k}", b.value


def check_blob_refs(program, records, errors):
    refs = 0
    for where, v in iter_values(program):
        if v.WhichOneof("value") != "blobFileValue":
            continue
        refs += 1
        t = v.type.tensorType
        off = v.blobFileValue.offset
        if v.blobFileValue.fileName != "@model_path/weights/weight.bin":
            errors.append(f"{where}: blob file name {v.blobFileValue.fileName!r}")
        rec = records.get(off)
        if rec is None:
            errors.append(f"{where}: offset {off} is not a blob metadata record")
            continue
        code, size, pad = rec
        if MIL_TO_BLOB.get(t.dataType) != code:
            errors.append(f"{where}: blob dtype code {code} does not match proto dtype {t.dataType}")
            continue
        n = int(np.prod([d.constant.size for d in t.dimensions])) if t.dimensions else 1
        bits = MIL_BITS[t.dataType]
        if size != (n * bits + 7) // 8 or (bits < 8 and pad != (8 - n * bits % 8) % 8):
            errors.append(f"{where}: blob of {size} bytes (padding {pad}) does not hold {n} x {bits}-bit elements")
    return refs


def feature_summary(feature):
    which = feature.type.WhichOneof("Type")
    if which == "multiArrayType":
        a = feature.type.multiArrayType
        return {"kind": "array", "dtype": ARRAY_DTYPES.get(a.dataType, str(a.dataType)), "shape": list(a.shape),
                "enumerated": [list(s.shape) for s in a.enumeratedShapes.shapes]}
    if which == "stateType":
        a = feature.type.stateType.arrayType
        return {"kind": "state", "dtype": ARRAY_DTYPES.get(a.dataType, str(a.dataType)), "shape": list(a.shape)}
    return {"kind": which}


def type_summary(sym_type):
    if types.is_state(sym_type):
        inner = sym_type.wrapped_type()
        return {"kind": "state", "dtype": types.builtin_to_string(inner.get_primitive()),
                "shape": [int(d) if not is_symbolic(d) else None for d in inner.get_shape()]}
    if types.is_tensor(sym_type):
        return {"kind": "tensor", "dtype": types.builtin_to_string(sym_type.get_primitive()),
                "shape": [int(d) if not is_symbolic(d) else None for d in sym_type.get_shape()]}
    return {"kind": "scalar", "dtype": types.builtin_to_string(sym_type), "shape": []}


def dump_constexpr(func):
    out = {}
    for op in func.operations:
        if op.op_type.startswith("constexpr_"):
            val = op.materialized_val_inference()
            if val is not None and np.size(val) <= 65536:
                out[op.outputs[0].name] = {"shape": list(np.shape(val)),
                                           "data": np.asarray(val, dtype=np.float64).reshape(-1).tolist()}
    return out


def check_package(pkg, strict_states, dump=False):
    errors, warns, report = [], [], {"package": pkg}
    model_path = check_manifest(pkg, errors)
    if model_path is None:
        return {**report, "ok": False, "errors": errors, "warnings": warns}
    raw = open(model_path, "rb").read()
    spec = Model_pb2.Model()
    try:
        spec.ParseFromString(raw)
    except Exception as e:  # noqa: BLE001
        errors.append(f"model.mlmodel: does not parse: {e}")
        return {**report, "ok": False, "errors": errors, "warnings": warns}
    check_unknown_fields(spec, errors)
    report["specificationVersion"] = spec.specificationVersion
    if spec.WhichOneof("Type") != "mlProgram":
        errors.append(f"model type is {spec.WhichOneof('Type')}, not mlProgram")
        return {**report, "ok": False, "errors": errors, "warnings": warns}
    program = spec.mlProgram
    if program.version != 1:
        errors.append(f"program version {program.version}")
    opset = OPSET_OF_SPEC.get(spec.specificationVersion)
    for fname, func in program.functions.items():
        if func.opset != opset or list(func.block_specializations) != [func.opset]:
            errors.append(f"function {fname}: opset {func.opset} / blocks {list(func.block_specializations)} "
                          f"do not match spec {spec.specificationVersion} ({opset})")
        for op in func.block_specializations[func.opset].operations if func.opset in func.block_specializations else []:
            extra = set(op.attributes) - ({"name", "val"} if op.type == "const" else {"name"})
            if "name" not in op.attributes or extra:
                errors.append(f"function {fname}: op {op.type} has attributes {sorted(op.attributes)}")

    desc = spec.description
    if desc.functions:
        described = {f.name: f for f in desc.functions}
        if desc.input or desc.output or desc.state:
            errors.append("description: multi-function model with top-level input/output/state")
        if desc.defaultFunctionName not in described:
            errors.append(f"description: defaultFunctionName {desc.defaultFunctionName!r} is not a function")
    else:
        if desc.defaultFunctionName:
            errors.append("description: defaultFunctionName without functions")
        described = {"main": desc}
    report["default_function"] = desc.defaultFunctionName or "main"
    report["metadata"] = {"author": desc.metadata.author, "version": desc.metadata.versionString,
                          "short_description": desc.metadata.shortDescription,
                          "user_defined": dict(desc.metadata.userDefined)}
    report["described"] = {name: {"inputs": {f.name: feature_summary(f) for f in d.input},
                                  "outputs": {f.name: feature_summary(f) for f in d.output},
                                  "states": {f.name: feature_summary(f) for f in d.state}}
                           for name, d in described.items()}
    if set(described) != set(program.functions):
        errors.append(f"description functions {sorted(described)} != program functions {sorted(program.functions)}")

    weights_dir = os.path.join(os.path.dirname(model_path), "weights")
    records = walk_blobs(os.path.join(weights_dir, "weight.bin"), errors)
    report["blobs"] = len(records)
    report["blob_refs"] = check_blob_refs(program, records, errors)

    try:
        ct.models.MLModel(pkg, skip_model_load=True)
    except Exception as e:  # noqa: BLE001
        errors.append(f"MLModel(skip_model_load=True): {type(e).__name__}: {e}")

    try:
        prog = milproto_load.load(spec, spec.specificationVersion, weights_dir)
    except Exception as e:  # noqa: BLE001
        tb = traceback.format_exc().strip().splitlines()
        errors.append(f"milproto load / type inference: {type(e).__name__}: {e} [{tb[-3].strip() if len(tb) > 2 else ''}]")
        return {**report, "ok": False, "errors": errors, "warnings": warns}

    functions = {}
    for fname, func in prog.functions.items():
        d = described.get(fname)
        info = {"ops": len(list(func.operations)), "inputs": {}, "states": {}, "outputs": []}
        if dump:
            info["constexpr"] = dump_constexpr(func)
        declared_out = {f.name: feature_summary(f) for f in (d.output if d is not None else [])}
        declared_in = {f.name: feature_summary(f) for f in (d.input if d is not None else [])}
        declared_state = {f.name: feature_summary(f) for f in (d.state if d is not None else [])}
        for name, var in func.inputs.items():
            t = type_summary(var.sym_type)
            table = declared_state if t["kind"] == "state" else declared_in
            info["states" if t["kind"] == "state" else "inputs"][name] = t
            f = table.get(name)
            if f is None:
                errors.append(f"{fname}: input {name} is not in the description")
                continue
            if f["dtype"] != t["dtype"]:
                errors.append(f"{fname}: input {name} declared {f['dtype']} but the program has {t['dtype']}")
            if t["kind"] == "state":
                if t["dtype"] != "fp16":
                    (errors if strict_states else warns).append(
                        f"{fname}: state {name} is {t['dtype']}; Core ML requires fp16 states")
                if f["shape"] != t["shape"]:
                    errors.append(f"{fname}: state {name} declared {f['shape']} but the program has {t['shape']}")
            elif f["shape"] != [d if d is not None else f["shape"][i] for i, d in enumerate(t["shape"])]:
                errors.append(f"{fname}: input {name} default shape {f['shape']} does not fit {t['shape']}")
            elif None in t["shape"] and not f["enumerated"]:
                errors.append(f"{fname}: input {name} has flexible dims but no enumerated shapes")
        for name in set(declared_in) | set(declared_state):
            if name not in func.inputs:
                errors.append(f"{fname}: described input {name} is not a program input")
        out_names = [v.name for v in func.outputs]
        if out_names != list(declared_out):
            errors.append(f"{fname}: outputs {out_names} != described {list(declared_out)}")
        for var in func.outputs:
            t = type_summary(var.sym_type)
            f = declared_out.get(var.name, {})
            entry = {"name": var.name, "inferred": t, "declared": f}
            info["outputs"].append(entry)
            if f.get("dtype") != t["dtype"]:
                errors.append(f"{fname}: output {var.name} inferred {t['dtype']} but declared {f.get('dtype')}")
            static = None not in t["shape"]
            if static and f.get("shape") not in (t["shape"], []):
                errors.append(f"{fname}: output {var.name} inferred shape {t['shape']} but declared {f.get('shape')}")
            if not static and f.get("shape"):
                errors.append(f"{fname}: output {var.name} is flexible {t['shape']} but declares shape {f.get('shape')}")
        functions[fname] = info
    report["functions"] = functions
    return {**report, "ok": not errors, "errors": errors, "warnings": warns}


def main(argv):
    strict = "--strict-states" in argv
    dump = "--dump-constexpr" in argv
    pkgs = [a for a in argv if not a.startswith("--")]
    if not pkgs:
        print(__doc__, file=sys.stderr)
        return 2
    results = []
    for pkg in pkgs:
        try:
            results.append(check_package(pkg, strict, dump))
        except Exception as e:  # noqa: BLE001
            results.append({"package": pkg, "ok": False, "errors": [f"checker crashed: {type(e).__name__}: {e}"],
                            "warnings": [], "traceback": traceback.format_exc()})
    out = {"ok": all(r["ok"] for r in results), "coremltools": ct.__version__, "numpy": np.__version__,
           "packages": results}
    print(json.dumps(out, indent=1, default=str))
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
