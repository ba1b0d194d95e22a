//! Human-readable views of a package for `anemllc inspect`: the program in MIL text form
//! (the syntax of a compiled model's `model.mil`) and a summary of the interface, op counts
//! and weight storage. Works on any ML Program package, including coremltools-made ones.
//!
//! Text form: `program(1.3)`, then per function
//! `func <name><iosNN>(<type> <input>, …) {`, one op per line
//! `<type> <out> = <op>(<param> = <name or literal>, …)[name = string("<op>")];`
//! (parameters in key order, variadic ones as `(a, b)`), and `} -> (<outputs>);`. Unknown
//! dims print as `?`; immediate tensors longer than [`MAX_ELEMENTS`] are abbreviated.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use super::dtype::mil_text_name;
use super::proto::argument::binding::Binding as B;
use super::proto::feature_type::Type as FT;
use super::proto::value::Value as VK;
use super::proto::value::immediate_value::Value as IV;
use super::proto::{ArrayDataType, Block, DataType, FeatureDescription, Operation, Value, ValueType};
use super::reader::PackageContents;
use super::tensor_data::{ConstTensor, Elements};
use super::types::{MilTensorType, MilType, decode_type};

/// Immediate tensors with more elements are printed abbreviated.
pub const MAX_ELEMENTS: usize = 16;

/// `CoreML8` → `ios18` (coremltools' opset ↔ deployment target table).
pub fn opset_target(opset: &str) -> String {
    match opset {
        "CoreML5" => "ios15".into(),
        "CoreML6" => "ios16".into(),
        "CoreML7" => "ios17".into(),
        "CoreML8" => "ios18".into(),
        "CoreML9" => "ios26".into(),
        other => other.to_lowercase(),
    }
}

fn dims_text(dims: &[Option<usize>]) -> String {
    let d: Vec<String> = dims.iter().map(|d| d.map_or("?".to_string(), |v| v.to_string())).collect();
    format!("[{}]", d.join(", "))
}

fn tensor_text(t: &MilTensorType) -> String {
    if t.dims.is_empty() {
        mil_text_name(t.dtype).to_string()
    } else {
        format!("tensor<{}, {}>", mil_text_name(t.dtype), dims_text(&t.dims))
    }
}

/// The MIL text spelling of a value type.
pub fn type_text(t: Option<&ValueType>) -> String {
    match t.map(decode_type) {
        Some(Ok(MilType::Tensor(t))) => tensor_text(&t),
        Some(Ok(MilType::State(t))) => format!("state<{}>", tensor_text(&t)),
        Some(Ok(MilType::Other(k))) => k.to_string(),
        Some(Err(e)) => format!("<invalid type: {e}>"),
        None => "<untyped>".to_string(),
    }
}

fn scalar_text(c: &ConstTensor, i: usize) -> String {
    match &c.elements {
        Elements::Float(v) if matches!(c.dtype, DataType::Float32 | DataType::Float16) => format!("{:?}", v[i] as f32),
        Elements::Float(v) => format!("{:?}", v[i]),
        Elements::Int(v) if c.dtype == DataType::Bool => (v[i] != 0).to_string(),
        Elements::Int(v) => v[i].to_string(),
        Elements::Str(v) => format!("{:?}", v[i]),
    }
}

fn const_text(c: &ConstTensor) -> String {
    let n = c.numel();
    if c.shape.is_empty() {
        return format!("{}({})", mil_text_name(c.dtype), scalar_text(c, 0));
    }
    let mut items: Vec<String> = (0..n.min(MAX_ELEMENTS)).map(|i| scalar_text(c, i)).collect();
    if n > MAX_ELEMENTS {
        items.push(format!("... {n} values"));
    }
    let dims: Vec<Option<usize>> = c.shape.iter().map(|&d| Some(d)).collect();
    format!("tensor<{}, {}>([{}])", mil_text_name(c.dtype), dims_text(&dims), items.join(", "))
}

/// The MIL text of a value (immediate literal, blob reference or dictionary).
pub fn value_text(v: &Value) -> String {
    let ty = type_text(v.r#type.as_ref());
    match &v.value {
        Some(VK::BlobFileValue(b)) => {
            format!("{ty}(BLOBFILE(path = string({:?}), offset = uint64({})))", b.file_name, b.offset)
        }
        Some(VK::ImmediateValue(iv)) => match &iv.value {
            Some(IV::Tensor(tv)) => {
                let decoded = match v.r#type.as_ref().map(decode_type) {
                    Some(Ok(MilType::Tensor(t))) => t
                        .static_shape()
                        .ok_or_else(|| "flexible".to_string())
                        .and_then(|s| ConstTensor::from_tensor_value(t.dtype, s, tv)),
                    _ => Err("not a tensor".to_string()),
                };
                decoded.map_or_else(|e| format!("{ty}(<{e}>)"), |c| const_text(&c))
            }
            Some(IV::Dictionary(d)) => {
                let pairs: Vec<String> = d
                    .values
                    .iter()
                    .map(|kv| {
                        let k = kv.key.as_ref().map_or("?".into(), value_text);
                        let v = kv.value.as_ref().map_or("?".into(), value_text);
                        format!("{{{}, {}}}", strip_string(&k), strip_string(&v))
                    })
                    .collect();
                format!("dict<string, string>({{{}}})", pairs.join(", "))
            }
            Some(IV::List(l)) => format!("list({})", l.values.iter().map(value_text).collect::<Vec<_>>().join(", ")),
            Some(IV::Tuple(t)) => format!("tuple({})", t.values.iter().map(value_text).collect::<Vec<_>>().join(", ")),
            None => format!("{ty}()"),
        },
        None => format!("{ty}()"),
    }
}

/// `string("x")` → `"x"` (dictionary entries print bare strings).
fn strip_string(s: &str) -> &str {
    s.strip_prefix("string(").and_then(|r| r.strip_suffix(')')).unwrap_or(s)
}

fn op_line(op: &Operation, indent: &str, out: &mut String) {
    let outs: Vec<String> = op.outputs.iter().map(|o| format!("{} {}", type_text(o.r#type.as_ref()), o.name)).collect();
    let params: Vec<String> = op
        .inputs
        .iter()
        .map(|(k, arg)| {
            let items: Vec<String> = arg
                .arguments
                .iter()
                .map(|b| match &b.binding {
                    Some(B::Name(n)) => n.clone(),
                    Some(B::Value(v)) => value_text(v),
                    None => "<empty>".into(),
                })
                .collect();
            match items.as_slice() {
                [one] => format!("{k} = {one}"),
                _ => format!("{k} = ({})", items.join(", ")),
            }
        })
        .collect();
    let attrs: Vec<String> = op.attributes.iter().map(|(k, v)| format!("{k} = {}", value_text(v))).collect();
    let lhs = if outs.is_empty() { String::new() } else { format!("{} = ", outs.join(", ")) };
    let _ = writeln!(out, "{indent}{lhs}{}({})[{}];", op.r#type, params.join(", "), attrs.join(", "));
    for b in &op.blocks {
        block_text(b, &format!("{indent}    "), out);
    }
}

fn block_text(b: &Block, indent: &str, out: &mut String) {
    for op in &b.operations {
        op_line(op, indent, out);
    }
}

/// The whole program in MIL text form (functions in description order).
pub fn program_text(pkg: &PackageContents) -> Result<String, String> {
    let program = pkg.program().ok_or("not an ML program")?;
    let mut out = String::from("program(1.3)\n");
    if !program.attributes.is_empty() {
        let attrs: Vec<String> = program.attributes.iter().map(|(k, v)| format!("{k} = {}", value_text(v))).collect();
        let _ = writeln!(out, "[{}]", attrs.join(", "));
    }
    out.push_str("{\n");
    for name in pkg.function_names() {
        let f = &program.functions[&name];
        let inputs: Vec<String> =
            f.inputs.iter().map(|i| format!("{} {}", type_text(i.r#type.as_ref()), i.name)).collect();
        let _ = writeln!(out, "    func {name}<{}>({}) {{", opset_target(&f.opset), inputs.join(", "));
        match f.block_specializations.get(&f.opset) {
            Some(b) => {
                block_text(b, "        ", &mut out);
                let _ = writeln!(out, "    }} -> ({});", b.outputs.join(", "));
            }
            None => {
                let _ = writeln!(out, "        // no block for opset {}\n    }}", f.opset);
            }
        }
    }
    out.push_str("}\n");
    Ok(out)
}

fn array_dtype_text(code: i32) -> &'static str {
    match ArrayDataType::try_from(code) {
        Ok(ArrayDataType::Float32) => "fp32",
        Ok(ArrayDataType::Float16) => "fp16",
        Ok(ArrayDataType::Int32) => "int32",
        Ok(ArrayDataType::Int8) => "int8",
        Ok(ArrayDataType::Double) => "fp64",
        _ => "?",
    }
}

fn feature_text(f: &FeatureDescription) -> String {
    let shape = |s: &[i64]| format!("[{}]", s.iter().map(i64::to_string).collect::<Vec<_>>().join(", "));
    match f.r#type.as_ref().and_then(|t| t.r#type.as_ref()) {
        Some(FT::MultiArrayType(a)) => {
            let dims = if a.shape.is_empty() { " (flexible shape)".to_string() } else { shape(&a.shape) };
            let mut s = format!("{}: {}{dims}", f.name, array_dtype_text(a.data_type));
            if let Some(super::proto::array_feature_type::ShapeFlexibility::EnumeratedShapes(e)) = &a.shape_flexibility
            {
                let all: Vec<String> = e.shapes.iter().map(|s| shape(&s.shape)).collect();
                let _ = write!(s, "  enumerated {{{}}}", all.join(", "));
            }
            if let Some(super::proto::array_feature_type::ShapeFlexibility::ShapeRange(r)) = &a.shape_flexibility {
                let all: Vec<String> =
                    r.size_ranges.iter().map(|r| format!("{}..{}", r.lower_bound, r.upper_bound)).collect();
                let _ = write!(s, "  range [{}]", all.join(", "));
            }
            s
        }
        Some(FT::StateType(st)) => match &st.r#type {
            Some(super::proto::state_feature_type::Type::ArrayType(a)) => {
                format!("{}: {}{}", f.name, array_dtype_text(a.data_type), shape(&a.shape))
            }
            None => format!("{}: state", f.name),
        },
        None => format!("{}: (not a multi-array)", f.name),
    }
}

fn counts_text(counts: &BTreeMap<String, usize>) -> String {
    counts.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
}

fn count_ops(b: &Block, counts: &mut BTreeMap<String, usize>) {
    for op in &b.operations {
        *counts.entry(op.r#type.clone()).or_default() += 1;
        for inner in &op.blocks {
            count_ops(inner, counts);
        }
    }
}

fn blob_refs(b: &Block, refs: &mut Vec<u64>) {
    fn visit(v: &Value, refs: &mut Vec<u64>) {
        if let Some(VK::BlobFileValue(f)) = &v.value {
            refs.push(f.offset);
        }
    }
    for op in &b.operations {
        op.attributes.values().for_each(|v| visit(v, refs));
        for arg in op.inputs.values() {
            for bind in &arg.arguments {
                if let Some(B::Value(v)) = &bind.binding {
                    visit(v, refs);
                }
            }
        }
        for inner in &op.blocks {
            blob_refs(inner, refs);
        }
    }
}

fn bytes_text(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{:.1} MiB ({n} bytes)", n as f64 / (1u64 << 20) as f64)
    } else if n >= 1 << 10 {
        format!("{:.1} KiB ({n} bytes)", n as f64 / 1024.0)
    } else {
        format!("{n} bytes")
    }
}

/// Decoder layers of an FFN chunk package, from our `com.anemllc.layers = "a..b"` metadata.
fn chunk_layers(pkg: &PackageContents) -> Option<usize> {
    let md = pkg.model.description.as_ref()?.metadata.as_ref()?;
    let (a, b) = md.user_defined.get("com.anemllc.layers")?.split_once("..")?;
    let (a, b): (usize, usize) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (b > a).then_some(b - a)
}

/// All names an op reads.
fn input_names(op: &Operation) -> impl Iterator<Item = &str> {
    op.inputs.values().flat_map(|a| &a.arguments).filter_map(|b| match &b.binding {
        Some(B::Name(n)) => Some(n.as_str()),
        _ => None,
    })
}

/// Transposes at the function's boundary: those with no `conv` (projection) before them or
/// none after them — an FFN chunk's `[1, S, H]` hidden-state I/O meeting its `(1, C, 1, S)`
/// residual stream (and, in the last chunk, the final norm's layout), not work of a decoder
/// layer. Ops are in topological order.
fn boundary_transposes(b: &Block) -> usize {
    let mut after_conv: BTreeSet<&str> = BTreeSet::new();
    let mut no_conv_before = BTreeSet::new();
    for (i, op) in b.operations.iter().enumerate() {
        let tainted = op.r#type == "conv" || input_names(op).any(|n| after_conv.contains(n));
        if tainted {
            after_conv.extend(op.outputs.iter().map(|o| o.name.as_str()));
        } else if op.r#type == "transpose" {
            no_conv_before.insert(i);
        }
    }
    let mut before_conv: BTreeSet<&str> = BTreeSet::new();
    let mut no_conv_after = BTreeSet::new();
    for (i, op) in b.operations.iter().enumerate().rev() {
        let feeds = op.r#type == "conv" || op.outputs.iter().any(|o| before_conv.contains(o.name.as_str()));
        if feeds {
            before_conv.extend(input_names(op));
        } else if op.r#type == "transpose" {
            no_conv_after.insert(i);
        }
    }
    no_conv_before.union(&no_conv_after).count()
}

/// The ANE graph economy of one function of an FFN chunk: non-const ops and transposes per
/// decoder layer (issue #15's measure), and how many of the transposes sit at the chunk's
/// boundary (`boundary`, see [`boundary_transposes`]; they are per chunk, not per layer).
/// `const` ops only hold values and `constexpr_*` ops (LUT decompression) are evaluated once
/// when the model loads, so neither counts: a LUT6 chunk and its fp16 twin have the same
/// figure.
fn per_layer_line(counts: &BTreeMap<String, usize>, boundary: usize, layers: Option<usize>) -> Option<String> {
    let layers = layers?;
    let runs_per_call = |op: &str| op != "const" && !op.starts_with("constexpr_");
    let ops: usize = counts.iter().filter(|(k, _)| runs_per_call(k)).map(|(_, v)| v).sum();
    let transposes = counts.get("transpose").copied().unwrap_or(0);
    let inside = transposes.saturating_sub(boundary);
    Some(format!(
        "per layer ({layers} layers): {:.1} non-const ops ({ops} in all), {:.1} transposes ({transposes} in all: \
         {:.1} per layer inside the layers, {boundary} at the chunk's input/output)",
        ops as f64 / layers as f64,
        transposes as f64 / layers as f64,
        inside as f64 / layers as f64
    ))
}

/// Counts of `f`'s ops by type and its boundary transposes ([`boundary_transposes`]).
fn function_economy(f: &super::proto::Function) -> (BTreeMap<String, usize>, usize) {
    let mut counts = BTreeMap::new();
    let mut boundary = 0;
    if let Some(b) = f.block_specializations.get(&f.opset) {
        count_ops(b, &mut counts);
        boundary = boundary_transposes(b);
    }
    (counts, boundary)
}

/// The per-layer economy lines of every function (`name: …`), for snapshot tests.
pub fn economy_text(pkg: &PackageContents) -> String {
    let mut out = String::new();
    let Some(program) = pkg.program() else { return out };
    for name in pkg.function_names() {
        let (counts, boundary) = function_economy(&program.functions[&name]);
        if let Some(line) = per_layer_line(&counts, boundary, chunk_layers(pkg)) {
            let _ = writeln!(out, "{name}: {line}");
        }
    }
    out
}

/// The summary: spec version, functions with their interface and op counts, total op
/// counts, weight storage and metadata.
pub fn summary_text(pkg: &PackageContents) -> String {
    let mut out = String::new();
    let m = &pkg.model;
    let _ = writeln!(out, "// {}", pkg.root.display());
    let _ = writeln!(out, "specification version: {}", m.specification_version);
    let Some(program) = pkg.program() else {
        out.push_str("not an ML program\n");
        return out;
    };
    let names = pkg.function_names();
    let default = pkg.default_function();
    let _ = writeln!(out, "functions: {} (default: {default})", names.len());
    let mut total = BTreeMap::new();
    let mut refs = Vec::new();
    for name in &names {
        let f = &program.functions[name];
        if let Some(b) = f.block_specializations.get(&f.opset) {
            blob_refs(b, &mut refs);
        }
        let (counts, boundary) = function_economy(f);
        let n: usize = counts.values().sum();
        let _ = writeln!(out, "  {name} <{}>: {n} ops", opset_target(&f.opset));
        let (inputs, outputs, states) = pkg.features(name);
        for (kind, list) in [("input ", &inputs), ("state ", &states), ("output", &outputs)] {
            for feat in list {
                let _ = writeln!(out, "    {kind} {}", feature_text(feat));
            }
        }
        let _ = writeln!(out, "    ops: {}", counts_text(&counts));
        if let Some(line) = per_layer_line(&counts, boundary, chunk_layers(pkg)) {
            let _ = writeln!(out, "    {line}");
        }
        for (k, v) in counts {
            *total.entry(k).or_default() += v;
        }
    }
    let n: usize = total.values().sum();
    let _ = writeln!(out, "op counts ({n} ops in all functions): {}", counts_text(&total));
    match &pkg.blobs {
        Some(blobs) => {
            let mut by_dtype: BTreeMap<String, (usize, u64)> = BTreeMap::new();
            match blobs.records() {
                Ok(records) => {
                    for r in &records {
                        let e = by_dtype.entry(format!("{:?}", r.meta.dtype)).or_default();
                        e.0 += 1;
                        e.1 += r.meta.size_in_bytes;
                    }
                    let payload: u64 = records.iter().map(|r| r.meta.size_in_bytes).sum();
                    let kinds: Vec<String> =
                        by_dtype.iter().map(|(k, (c, b))| format!("{k} ×{c} ({})", bytes_text(*b))).collect();
                    let _ = writeln!(
                        out,
                        "weights: weight.bin {}, {} blobs, payload {}: {}",
                        bytes_text(blobs.len()),
                        records.len(),
                        bytes_text(payload),
                        kinds.join(", ")
                    );
                }
                Err(e) => {
                    let _ = writeln!(out, "weights: weight.bin {} — invalid: {e}", bytes_text(blobs.len()));
                }
            }
        }
        None => out.push_str("weights: no weight.bin\n"),
    }
    let distinct: BTreeSet<u64> = refs.iter().copied().collect();
    let _ = writeln!(out, "blob references: {} ({} distinct blobs)", refs.len(), distinct.len());
    if let Some(md) = m.description.as_ref().and_then(|d| d.metadata.as_ref()) {
        let fields = [
            ("author", &md.author),
            ("version", &md.version_string),
            ("description", &md.short_description),
            ("license", &md.license),
        ];
        for (k, v) in fields.iter().filter(|(_, v)| !v.is_empty()) {
            let _ = writeln!(out, "metadata {k}: {v}");
        }
        for (k, v) in &md.user_defined {
            let _ = writeln!(out, "metadata {k} = {v}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `const` and `constexpr_*` (load-time) ops are not per-call ops: a LUT chunk and its
    /// fp16 twin get the same per-layer figure.
    #[test]
    fn per_layer_figure_leaves_out_constants_and_constexpr_ops() {
        let counts = |extra: &[(&str, usize)]| {
            let mut c: BTreeMap<String, usize> =
                [("conv", 10), ("add", 6), ("transpose", 2)].iter().map(|(k, v)| (k.to_string(), *v)).collect();
            c.extend(extra.iter().map(|(k, v)| (k.to_string(), *v)));
            c
        };
        let fp16 = per_layer_line(&counts(&[("const", 40)]), 2, Some(2)).unwrap();
        let lut = per_layer_line(&counts(&[("const", 30), ("constexpr_lut_to_dense", 10)]), 2, Some(2)).unwrap();
        assert_eq!(
            fp16,
            "per layer (2 layers): 9.0 non-const ops (18 in all), 1.0 transposes (2 in all: 0.0 per layer inside \
             the layers, 2 at the chunk's input/output)"
        );
        assert_eq!(lut, fp16);
        assert_eq!(per_layer_line(&counts(&[]), 0, None), None, "no layer count, no figure");
    }

    /// A chain h → reshape → transpose → conv → transpose → conv → transpose → reshape → y:
    /// the first transpose has no conv before it, the last none after it; the middle one is
    /// between two convs, inside a layer.
    #[test]
    fn boundary_transposes_are_those_next_to_the_function_io() {
        use super::super::proto::{Argument, NamedValueType, argument};
        let op = |ty: &str, x: &str, out: &str| Operation {
            r#type: ty.into(),
            inputs: [(
                "x".to_string(),
                Argument { arguments: vec![argument::Binding { binding: Some(B::Name(x.into())) }] },
            )]
            .into(),
            outputs: vec![NamedValueType { name: out.into(), r#type: None }],
            ..Default::default()
        };
        let b = Block {
            outputs: vec!["y".into()],
            operations: vec![
                op("reshape", "h", "a"),
                op("transpose", "a", "b"),
                op("conv", "b", "c"),
                op("transpose", "c", "d"),
                op("conv", "d", "e"),
                op("transpose", "e", "f"),
                op("reshape", "f", "y"),
            ],
            ..Default::default()
        };
        assert_eq!(boundary_transposes(&b), 2);
        let mut no_first_conv = b.clone();
        no_first_conv.operations[2].r#type = "add".into();
        assert_eq!(boundary_transposes(&no_first_conv), 3, "nothing before the second conv is inside");
    }
}
