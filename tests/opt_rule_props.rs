//! Numeric property tests of every rule in `passes/*.rules`: each rule's left and right sides
//! are evaluated by the reference interpreter on the same random inputs and compared.
//!
//! Approach, per case (a small IR function `@f` the rule matches, in one or more shapes and
//! dtypes) and per seed:
//! 1. `opt::testing::rewritten` runs *only that rule* on `@f` and rebuilds the function
//!    choosing, in every e-class, a node the rule added where there is one — the rewritten
//!    form, also for enabling rules whose form the cost model never extracts on its own.
//!    The test asserts the rule fired and the function changed (a property test where the
//!    rule never fired proves nothing).
//! 2. For passes without an IR step (all but `precision`, whose step changes the signature
//!    to fp16), `run_pass_with(…, Some(&[rule]))` gives what the pass itself produces
//!    (extraction and weight folding included); that is evaluated too.
//! 3. Inputs and checkpoint weights are random (a seeded xorshift generator below; no new
//!    dependency), rounded to their dtype; integer inputs (positions) lie in the case's range.
//!    Original and rewritten functions run on the same values and every output is compared:
//!    bit-exact where the rule is an exact identity in floating-point arithmetic, otherwise
//!    within a tolerance justified at the case ([`Tol::Close`]); `argmax-in-fp16` has its
//!    own property ([`Tol::ArgmaxFp16`]).
//!
//! `every_rule_has_a_property_case` iterates `RULE_FILES`, so a rule added later without a
//! case here fails it. A failing case is a finding about the rule, not a reason to loosen
//! the tolerance.

use std::collections::HashMap;
use std::sync::Arc;

use half::f16;

use anemllc::interp::{Tensor, evaluate};
use anemllc::ir::{DType, Module, Recipe, Type, parse_module, print_module, verify_module};
use anemllc::opt::passes::{RULE_FILES, pass};
use anemllc::opt::testing::rewritten;
use anemllc::opt::{rules, run_pass_with};
use anemllc::weights::WeightCache;

/// How the outputs of the original and the rewritten function must agree.
#[derive(Clone, Copy, Debug)]
enum Tol {
    /// Bit for bit (NaN equals NaN).
    Exact,
    /// `|a − b| ≤ abs + rel·max(|a|, |b|)` per element; the case says why.
    Close { rel: f64, abs: f64 },
    /// Output `y` is an argmax of input `x` along its last axis: the rewritten index must be
    /// the first whose fp16-rounded value equals the fp16 rounding of the reference's.
    ArgmaxFp16,
}

/// One property case: a module with a function `@f` that rule `rule` of `pass` rewrites.
struct Case {
    rule: &'static str,
    pass: &'static str,
    src: String,
    tol: Tol,
    /// Range of random float inputs and weights.
    floats: (f32, f32),
    /// Range (inclusive) of random integer inputs.
    ints: (i64, i64),
}

fn case(rule: &'static str, pass: &'static str, src: impl Into<String>, tol: Tol) -> Case {
    Case { rule, pass, src: src.into(), tol, floats: (-2.0, 2.0), ints: (0, 0) }
}

impl Case {
    fn floats(mut self, lo: f32, hi: f32) -> Case {
        self.floats = (lo, hi);
        self
    }
    fn ints(mut self, lo: i64, hi: i64) -> Case {
        self.ints = (lo, hi);
        self
    }
}

/// xorshift64*: deterministic, seeded per case and seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn float(&mut self, (lo, hi): (f32, f32)) -> f32 {
        let u = (self.next() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }
    fn int(&mut self, (lo, hi): (i64, i64)) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }
}

fn module(src: &str) -> Module {
    let m = parse_module(src).unwrap_or_else(|e| panic!("{e}\n{src}"));
    verify_module(&m).unwrap_or_else(|e| panic!("{e}\n{src}"));
    m
}

fn random_tensor(rng: &mut Rng, c: &Case, dtype: DType, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    if dtype.is_float() {
        Tensor::from_f32(dtype, shape, (0..n).map(|_| rng.float(c.floats)).collect()).unwrap()
    } else {
        Tensor::from_i64(dtype, shape, (0..n).map(|_| rng.int(c.ints)).collect()).unwrap()
    }
}

/// Checkpoint tensors by name: shape and row-major values (an in-memory `TensorSource`).
type Source = HashMap<String, (Vec<usize>, Vec<f32>)>;

/// Random values for every input of `@f` and every checkpoint tensor the weights read.
fn random_inputs(m: &Module, c: &Case, seed: u64) -> (HashMap<String, Tensor>, Source) {
    let mut rng = Rng::new(seed);
    let f = m.function("f").expect("@f");
    let mut inputs = HashMap::new();
    for &i in &f.inputs {
        let v = &f.values[i];
        let Type::Tensor(t) = &v.ty else { panic!("states are not used by property cases") };
        inputs.insert(v.name.clone(), random_tensor(&mut rng, c, t.dtype, &t.shape));
    }
    let mut source = HashMap::new();
    for w in &m.weights {
        let Recipe::Checkpoint { tensor, ty } = &w.recipe else { panic!("weights of cases are checkpoint tensors") };
        let values = random_tensor(&mut rng, c, ty.dtype, &ty.shape).to_f32_vec();
        source.insert(tensor.clone(), (ty.shape.clone(), values));
    }
    (inputs, source)
}

fn run(m: &Module, inputs: &HashMap<String, Tensor>, source: &Source) -> HashMap<String, Tensor> {
    let weights = WeightCache::new(m, Arc::new(source.clone()));
    evaluate(m, "f", inputs, &mut HashMap::new(), &weights).unwrap_or_else(|e| panic!("{e}\n{}", print_module(m)))
}

fn same_bits(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// Compares the outputs; `Err` names the first differing element.
fn compare(
    tol: Tol,
    inputs: &HashMap<String, Tensor>,
    want: &HashMap<String, Tensor>,
    got: &HashMap<String, Tensor>,
) -> Result<(), String> {
    for (name, w) in want {
        let g = &got[name];
        if w.tensor_type() != g.tensor_type() {
            return Err(format!("output {name}: type {} vs {}", w.tensor_type(), g.tensor_type()));
        }
        if let Tol::ArgmaxFp16 = tol {
            let x = inputs["x"].to_f32_vec();
            let row = *inputs["x"].shape().last().unwrap();
            let (wi, gi) = (w.to_i64_vec().unwrap(), g.to_i64_vec().unwrap());
            for (r, (&a, &b)) in wi.iter().zip(&gi).enumerate() {
                let h = |i: i64| f16::from_f32(x[r * row + i as usize]);
                let first = (0..row as i64).find(|&i| h(i) == h(a)).unwrap();
                if b != first {
                    return Err(format!("output {name}[{r}]: argmax {b}, want {first} (fp32 argmax {a})"));
                }
            }
            continue;
        }
        let (wv, gv) = (w.to_f32_vec(), g.to_f32_vec());
        for (i, (&a, &b)) in wv.iter().zip(&gv).enumerate() {
            let ok = match tol {
                Tol::Exact | Tol::ArgmaxFp16 => same_bits(a, b),
                Tol::Close { rel, abs } => {
                    same_bits(a, b) || ((a - b).abs() as f64) <= abs + rel * (a.abs().max(b.abs()) as f64)
                }
            };
            if !ok {
                return Err(format!("output {name}[{i}]: original {a:e}, rewritten {b:e} ({tol:?})"));
            }
        }
    }
    Ok(())
}

const SEEDS: u64 = 4;

/// Runs one case on every seed; `Err` describes the first failure with its inputs.
fn check(c: &Case) -> Result<(), String> {
    let m = module(&c.src);
    let rw = rewritten(&m, c.pass, &[c.rule], "f")?;
    if !rw.fired.iter().any(|(r, n)| r == c.rule && *n > 0) {
        return Err(format!("the rule never fired (fired: {:?})", rw.fired));
    }
    let before = print_module(&m);
    let after = print_module(&rw.module);
    if before == after {
        return Err("the rule fired but the rewritten function is the original".into());
    }
    let p = pass(c.pass).expect("pass");
    let pipeline = match p.name {
        "precision" => None,
        _ => Some(run_pass_with(&m, p, Some(&[c.rule])).map_err(|e| e.to_string())?.0),
    };
    for seed in 0..SEEDS {
        let (inputs, source) = random_inputs(&m, c, seed * 7919 + c.rule.len() as u64);
        let want = run(&m, &inputs, &source);
        let show = |e: String, form: &str, got: &Module| {
            let mut ins: Vec<_> = inputs.iter().map(|(k, v)| format!("%{k} = {:?}", v.to_f32_vec())).collect();
            ins.sort();
            format!("seed {seed}, {form}: {e}\n  inputs: {}\n  rewritten:\n{}", ins.join("; "), print_module(got))
        };
        compare(c.tol, &inputs, &want, &run(&rw.module, &inputs, &source))
            .map_err(|e| show(e, "rewritten form", &rw.module))?;
        if let Some(out) = &pipeline {
            compare(c.tol, &inputs, &want, &run(out, &inputs, &source)).map_err(|e| show(e, "pass output", out))?;
        }
    }
    Ok(())
}

/// Runs every case of the rules of one rule file and reports all failures together.
fn check_file(file: &str) {
    let names = rule_names(file);
    let mut failures = Vec::new();
    let mut ran = 0;
    for c in cases().iter().filter(|c| names.iter().any(|n| n == c.rule)) {
        ran += 1;
        if let Err(e) = check(c) {
            failures.push(format!("rule `{}` ({} pass):\n{}\n  case:\n{}", c.rule, c.pass, e, c.src));
        }
    }
    assert!(ran > 0, "{file}: no cases");
    assert!(failures.is_empty(), "{} of {ran} cases failed:\n\n{}", failures.len(), failures.join("\n\n"));
}

fn rule_names(file: &str) -> Vec<String> {
    let f = RULE_FILES.iter().find(|f| f.path.ends_with(file)).expect("rule file");
    rules::load(f.path, f.source).unwrap().rules.into_iter().map(|r| r.name).collect()
}

#[test]
fn every_rule_has_a_property_case() {
    let cases = cases();
    let mut missing = Vec::new();
    for f in RULE_FILES {
        for r in rules::load(f.path, f.source).unwrap().rules {
            if !cases.iter().any(|c| c.rule == r.name) {
                missing.push(format!("{}: {}", f.path, r.name));
            }
        }
    }
    assert!(missing.is_empty(), "rules without a numeric property case in tests/opt_rule_props.rs: {missing:?}");
}

#[test]
fn cleanup_rules_hold_numerically() {
    check_file("cleanup.rules");
}

#[test]
fn precision_rules_hold_numerically() {
    check_file("precision.rules");
}

#[test]
fn layout_rules_hold_numerically() {
    check_file("layout.rules");
}

#[test]
fn rmsnorm_rules_hold_numerically() {
    check_file("rmsnorm.rules");
}

#[test]
fn attention_rules_hold_numerically() {
    check_file("attention.rules");
}

#[test]
fn kvstate_rules_hold_numerically() {
    check_file("kvstate.rules");
}

/// `module @t { <weights> func @f(<sig>) -> (<outs>) { <body> return … } }`, with `T`
/// replaced by the dtype.
fn func(t: &str, weights: &str, sig: &str, outs: &str, body: &str, ret: &str) -> String {
    format!("module @t {{\n{weights}\n  func @f({sig}) -> ({outs}) {{\n{body}\n    return {ret}\n  }}\n}}\n")
        .replace('T', t)
}

const FLOATS: [&str; 2] = ["fp32", "fp16"];

/// fp16 rounding: a relative error of at most 2⁻¹¹ per rounding (round to nearest).
const HALF_ULP16: f64 = 1.0 / 2048.0;

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    cleanup_cases(&mut v);
    precision_cases(&mut v);
    layout_cases(&mut v);
    rmsnorm_cases(&mut v);
    attention_cases(&mut v);
    kvstate_cases(&mut v);
    economy_cases(&mut v);
    v
}

// ---------------------------------------------------------------------------------------
// cleanup: layout and cast identities move or drop data without arithmetic: exact.

fn cleanup_cases(v: &mut Vec<Case>) {
    for t in FLOATS {
        v.push(case(
            "transpose-compose",
            "layout",
            func(t, "", "%x: T[2, 3, 4]", "y: T[4, 3, 2]", "    %a = transpose(%x) {perm = [1, 2, 0]} : T[3, 4, 2]\n    %y = transpose(%a) {perm = [1, 0, 2]} : T[4, 3, 2]", "%y"),
            Tol::Exact,
        ));
        v.push(case(
            "transpose-compose",
            "layout",
            func(t, "", "%x: T[2, 3, 4, 5]", "y: T[5, 2, 4, 3]", "    %a = transpose(%x) {perm = [0, 3, 2, 1]} : T[2, 5, 4, 3]\n    %y = transpose(%a) {perm = [1, 0, 2, 3]} : T[5, 2, 4, 3]", "%y"),
            Tol::Exact,
        ));
        v.push(case(
            "transpose-identity",
            "layout",
            func(
                t,
                "",
                "%x: T[2, 3, 4]",
                "y: T[2, 3, 4]",
                "    %n = neg(%x) : T[2, 3, 4]\n    %y = transpose(%n) {perm = [0, 1, 2]} : T[2, 3, 4]",
                "%y",
            ),
            Tol::Exact,
        ));
        for (shape, perm, out) in
            [("1, 1, 1, 8", "0, 3, 2, 1", "1, 8, 1, 1"), ("1, 3, 1, 5", "0, 2, 1, 3", "1, 1, 3, 5")]
        {
            v.push(case(
                "transpose-unit-axes",
                "layout",
                func(
                    t,
                    "",
                    &format!("%x: T[{shape}]"),
                    &format!("y: T[{out}]"),
                    &format!("    %y = transpose(%x) {{perm = [{perm}]}} : T[{out}]"),
                    "%y",
                ),
                Tol::Exact,
            ));
        }
        v.push(case(
            "reshape-compose",
            "layout",
            func(
                t,
                "",
                "%x: T[2, 6]",
                "y: T[3, 4]",
                "    %a = reshape(%x) {shape = [12]} : T[12]\n    %y = reshape(%a) {shape = [3, 4]} : T[3, 4]",
                "%y",
            ),
            Tol::Exact,
        ));
        v.push(case(
            "reshape-identity",
            "layout",
            func(
                t,
                "",
                "%x: T[2, 6]",
                "y: T[2, 6]",
                "    %n = neg(%x) : T[2, 6]\n    %y = reshape(%n) {shape = [2, 6]} : T[2, 6]",
                "%y",
            ),
            Tol::Exact,
        ));
        v.push(case(
            "cast-identity",
            "layout",
            func(t, "", "%x: T[4]", "y: T[4]", "    %y = cast(%x) {dtype = T} : T[4]", "%y"),
            Tol::Exact,
        ));
        v.push(case(
            "slice-compose",
            "kv-state",
            func(t, "", "%x: T[4, 6]", "y: T[1, 2]", "    %a = slice(%x) {begin = [1, 2], end = [3, 6]} : T[2, 4]\n    %y = slice(%a) {begin = [1, 1], end = [2, 3]} : T[1, 2]", "%y"),
            Tol::Exact,
        ));
        v.push(case(
            "slice-identity",
            "kv-state",
            func(
                t,
                "",
                "%x: T[4, 6]",
                "y: T[4, 6]",
                "    %n = neg(%x) : T[4, 6]\n    %y = slice(%n) {begin = [0, 0], end = [4, 6]} : T[4, 6]",
                "%y",
            ),
            Tol::Exact,
        ));
    }
    // A literal cast in place. Down to fp16: the literal denotes its number rounded to fp32,
    // then cast; the new fp16 literal rounds the number (through f32, as the interpreter
    // rounds every f64: `interp::tensor::round_f64`) — the third number (1 + 2⁻¹¹ + 2⁻³⁰,
    // an fp16 tie once rounded to fp32) probes the double rounding. Up from fp16: the cast
    // literal must hold the fp16 value (0.3 → 0.2998046875), not the number as written.
    for lit in ["0.1", "1e-6", "1.0004882822930813"] {
        v.push(case(
            "cast-literal",
            "layout",
            func("fp16", "", "%x: T[4]", "y: T[4]", &format!("    %c = const [{lit}] : fp32[]\n    %h = cast(%c) {{dtype = T}} : T[]\n    %y = mul(%x, %h) : T[4]"), "%y"),
            Tol::Exact,
        ));
    }
    for lit in ["0.3", "1.0", "1e-6"] {
        v.push(case(
            "cast-literal",
            "layout",
            func("fp32", "", "%x: T[4]", "y: T[4]", &format!("    %c = const [{lit}] : fp16[]\n    %h = cast(%c) {{dtype = T}} : T[]\n    %y = mul(%x, %h) : T[4]"), "%y"),
            Tol::Exact,
        ));
    }
}

// ---------------------------------------------------------------------------------------
// precision

fn precision_cases(v: &mut Vec<Case>) {
    v.push(case(
        "cast-round-trip",
        "precision",
        func(
            "fp16",
            "",
            "%x: T[2, 3]",
            "y: T[2, 3]",
            "    %a = cast(%x) {dtype = fp32} : fp32[2, 3]\n    %y = cast(%a) {dtype = T} : T[2, 3]",
            "%y",
        ),
        Tol::Exact,
    ));
    // sink-cast computes every op in fp16 from fp16-rounded operands. Bound: each rounding
    // is ≤ 2⁻¹¹ relative; along any path of this function there are at most 4 (operand,
    // exp, mul, add) plus exp's amplification of its input's rounding by |x| ≤ 2, and all
    // operands are positive (no cancellation in the add), so ≤ 8 · 2⁻¹¹ relative.
    v.push(
        case(
            "sink-cast",
            "precision",
            "module @t {
  weight @w : fp32[8] = checkpoint(\"w\" : fp32[8])

  func @f(%x: fp32[2, 8]) -> (y: fp16[2, 8]) {
    %w = weight @w : fp32[8]
    %e = exp(%x) : fp32[2, 8]
    %m = mul(%e, %w) : fp32[2, 8]
    %s = add(%m, %x) : fp32[2, 8]
    %y = cast(%s) {dtype = fp16} : fp16[2, 8]
    return %y
  }
}",
            Tol::Close { rel: 8.0 * HALF_ULP16, abs: 0.0 },
        )
        .floats(0.25, 2.0),
    );
    // Through an integer operand (gather indices are kept) and through `get` of a split: the
    // only rounding is the table's to fp16, which the original does last: exact.
    v.push(
        case(
            "sink-cast",
            "precision",
            "module @t {
  func @f(%table: fp32[6, 4], %ids: int32[3]) -> (y: fp16[3, 2]) {
    %g = gather(%table, %ids) {axis = 0} : fp32[3, 4]
    %lo, %hi = split(%g) {axis = 1, sizes = [2, 2]} : fp32[3, 2], fp32[3, 2]
    %y = cast(%hi) {dtype = fp16} : fp16[3, 2]
    return %y
  }
}",
            Tol::Exact,
        )
        .ints(0, 5),
    );
    // argmax over fp32 read in fp16: values within [1, 1.01] make fp16 ties common.
    for range in [(-2.0, 2.0), (1.0, 1.01)] {
        v.push(
            case(
                "argmax-in-fp16",
                "precision",
                func(
                    "fp32",
                    "",
                    "%x: T[3, 16]",
                    "y: int32[3]",
                    "    %y = argmax(%x) {axis = -1, keep_dims = false} : int32[3]",
                    "%y",
                ),
                Tol::ArgmaxFp16,
            )
            .floats(range.0, range.1),
        );
    }
}

// ---------------------------------------------------------------------------------------
// layout

fn layout_cases(v: &mut Vec<Case>) {
    for t in FLOATS {
        // A 1×1 conv and a linear layer compute the same dot products, but the interpreter's
        // conv and linear kernels accumulate them in different orders in f32: ≤ 4 additions
        // of 2⁻²⁴ relative to Σ|x·w| + |b| ≤ 4·2·2 + 2 = 18, so ≤ 2⁻¹⁷ absolute, plus one
        // rounding of the result's dtype (relative) where those sums round differently.
        let rel = if t == "fp16" { 2.0 * HALF_ULP16 } else { 2.0_f64.powi(-23) };
        let tol = Tol::Close { rel, abs: 2.0_f64.powi(-17) };
        for (x, s) in [("1, 3, 4", "1, 3, 8"), ("2, 1, 4", "2, 1, 8")] {
            v.push(case(
                "linear-to-conv",
                "layout",
                func(
                    t,
                    "  weight @w : T[8, 4] = checkpoint(\"w\" : T[8, 4])\n",
                    &format!("%x: T[{x}]"),
                    &format!("y: T[{s}]"),
                    &format!("    %w = weight @w : T[8, 4]\n    %y = linear(%x, %w) : T[{s}]"),
                    "%y",
                ),
                tol,
            ));
            v.push(case(
                "linear-bias-to-conv",
                "layout",
                func(t, "  weight @w : T[8, 4] = checkpoint(\"w\" : T[8, 4])\n  weight @b : T[8] = checkpoint(\"b\" : T[8])\n", &format!("%x: T[{x}]"), &format!("y: T[{s}]"), &format!("    %w = weight @w : T[8, 4]\n    %b = weight @b : T[8]\n    %y = linear(%x, %w, %b) : T[{s}]"), "%y"),
                tol,
            ));
        }
        // Elementwise ops commute with moving elements around: exact.
        let ew = |layout: &str, out: &str| {
            format!(
                "    %s = silu(%a) : T[2, 3, 4]\n    %n = neg(%b) : T[2, 3, 4]\n    %d = sub(%s, %n) : T[2, 3, 4]\n    %e = exp(%b) : T[2, 3, 4]\n    %q = div(%a, %e) : T[2, 3, 4]\n    %m = maximum(%d, %q) : T[2, 3, 4]\n    %y = {layout} : T[{out}]"
            )
        };
        v.push(case(
            "transpose-sink-elementwise",
            "layout",
            func(
                t,
                "",
                "%a: T[2, 3, 4], %b: T[2, 3, 4]",
                "y: T[4, 2, 3]",
                &ew("transpose(%m) {perm = [2, 0, 1]}", "4, 2, 3"),
                "%y",
            ),
            Tol::Exact,
        ));
        v.push(case(
            "reshape-sink-elementwise",
            "layout",
            func(
                t,
                "",
                "%a: T[2, 3, 4], %b: T[2, 3, 4]",
                "y: T[6, 4]",
                &ew("reshape(%m) {shape = [6, 4]}", "6, 4"),
                "%y",
            ),
            Tol::Exact,
        ));
        // The norm reduces the same elements in the same order wherever its axis is: exact.
        let g = "  weight @g : T[4] = checkpoint(\"g\" : T[4])\n";
        v.push(case(
            "transpose-sink-rms-norm",
            "layout",
            func(t, g, "%x: T[1, 3, 1, 4]", "y: T[1, 4, 1, 3]", "    %g = weight @g : T[4]\n    %n = rms_norm(%x, %g) {axis = -1, eps = 1e-6} : T[1, 3, 1, 4]\n    %y = transpose(%n) {perm = [0, 3, 2, 1]} : T[1, 4, 1, 3]", "%y"),
            Tol::Exact,
        ));
        for (shape, _) in [("1, 3, 1, 4", 3), ("3, 1, 4, 1", 2)] {
            v.push(case(
                "reshape-sink-rms-norm",
                "layout",
                func(t, g, "%x: T[3, 4]", &format!("y: T[{shape}]"), &format!("    %g = weight @g : T[4]\n    %n = rms_norm(%x, %g) {{axis = -1, eps = 1e-6}} : T[3, 4]\n    %y = reshape(%n) {{shape = [{shape}]}} : T[{shape}]"), "%y"),
                Tol::Exact,
            ));
        }
        // Hoisting a layout change out of an add keeps every sum's operands and their order: exact.
        for (rule, sum) in [("add-hoist-transpose-right", "%a, %tb"), ("add-hoist-transpose-left", "%tb, %a")] {
            v.push(case(
                rule,
                "layout",
                func(
                    t,
                    "",
                    "%a: T[3, 2, 4], %b: T[2, 4, 3]",
                    "y: T[3, 2, 4]",
                    &format!(
                        "    %tb = transpose(%b) {{perm = [2, 0, 1]}} : T[3, 2, 4]\n    %y = add({sum}) : T[3, 2, 4]"
                    ),
                    "%y",
                ),
                Tol::Exact,
            ));
        }
        for (rule, sum) in [("add-hoist-reshape-right", "%a, %rb"), ("add-hoist-reshape-left", "%rb, %a")] {
            v.push(case(
                rule,
                "layout",
                func(
                    t,
                    "",
                    "%a: T[6, 4], %b: T[2, 3, 4]",
                    "y: T[6, 4]",
                    &format!("    %rb = reshape(%b) {{shape = [6, 4]}} : T[6, 4]\n    %y = add({sum}) : T[6, 4]"),
                    "%y",
                ),
                Tol::Exact,
            ));
        }
    }
}

// ---------------------------------------------------------------------------------------
// rmsnorm

fn rmsnorm_cases(v: &mut Vec<Case>) {
    let g = "  weight @g : T[D] = checkpoint(\"g\" : T[D])\n";
    for t in FLOATS {
        // The doubling trick: layer_norm(concat(x, −x)) has mean 0 and variance mean(x²), so
        // its first half is x/√(mean(x²)+ε), exact in real arithmetic. The interpreter
        // accumulates both norms in f64 and rounds once to the dtype, then the gain multiply
        // rounds again, where rms_norm rounds once: ≤ 2 roundings of the dtype apart (2⁻²³
        // for fp32, 2⁻¹⁰ for fp16) relative, plus the f64 differences (≪ fp32's ulp).
        let rel = if t == "fp16" { 2.0 * HALF_ULP16 } else { 2.0_f64.powi(-22) };
        for (x, axis, d) in [("1, 2, 8", "-1", "8"), ("1, 8, 1, 3", "1", "8"), ("2, 4", "0", "2")] {
            let out = x;
            v.push(case(
                "rms-norm-as-layer-norm",
                "rmsnorm",
                func(t, &g.replace('D', d), &format!("%x: T[{x}]"), &format!("y: T[{out}]"), &format!("    %g = weight @g : T[{d}]\n    %y = rms_norm(%x, %g) {{axis = {axis}, eps = 1e-5}} : T[{out}]"), "%y"),
                Tol::Close { rel, abs: 0.0 },
            ));
        }
        // With a unit gain (folded into the projections) the kept half is the result: both
        // sides are one f64 evaluation rounded once to the dtype, of the same real value.
        for (x, axis, d) in [("1, 2, 8", "-1", "8"), ("1, 8, 1, 3", "1", "8"), ("2, 4", "0", "2")] {
            v.push(case(
                "rms-norm-unit-gain-as-layer-norm",
                "rmsnorm",
                func(t, "", &format!("%x: T[{x}]"), &format!("y: T[{x}]"), &format!("    %g = const [1.0] : T[{d}]\n    %y = rms_norm(%x, %g) {{axis = {axis}, eps = 1e-5}} : T[{x}]"), "%y"),
                Tol::Close { rel, abs: 0.0 },
            ));
        }
        // HF's primitive chain (pow, mean, add ε, rsqrt, two muls) rounds after each of its 6
        // ops; the fused norm once (plus its gain). fp32: ≤ 8 roundings of 2⁻²⁴ (plus ε
        // entering as the f32 literal 1e-6 vs the f64 attribute: ≪ 2⁻²⁴ relative of the
        // mean square ≥ 2⁻⁴ here). fp16: ≤ 8 roundings of 2⁻¹¹.
        let rel = if t == "fp16" { 8.0 * HALF_ULP16 } else { 8.0 * 2.0_f64.powi(-24) };
        let prim = |square: &str, tail: &str, out_gain: bool| {
            let gain = if out_gain { "  weight @g : T[4] = checkpoint(\"g\" : T[4])\n" } else { "" };
            func(
                t,
                gain,
                "%x: T[2, 4]",
                "y: T[2, 4]",
                &format!(
                    "    %two = const [2.0] : T[]\n    %sq = {square} : T[2, 4]\n    %ms = reduce_mean(%sq) {{axes = [-1], keep_dims = true}} : T[2, 1]\n    %eps = const [1e-6] : T[]\n    %v = add(%ms, %eps) : T[2, 1]\n    %r = rsqrt(%v) : T[2, 1]\n{tail}"
                ),
                "%y",
            )
        };
        let with_gain = |order: &str| {
            format!("    %n = mul(%x, %r) : T[2, 4]\n    %g = weight @g : T[4]\n    %y = mul({order}) : T[2, 4]")
        };
        let tol = Tol::Close { rel, abs: 0.0 };
        v.push(
            case("rms-norm-primitive", "rmsnorm", prim("pow(%x, %two)", &with_gain("%n, %g"), true), tol)
                .floats(0.25, 2.0),
        );
        v.push(
            case("rms-norm-primitive-gain-first", "rmsnorm", prim("pow(%x, %two)", &with_gain("%g, %n"), true), tol)
                .floats(0.25, 2.0),
        );
        v.push(
            case("rms-norm-primitive-square", "rmsnorm", prim("mul(%x, %x)", &with_gain("%n, %g"), true), tol)
                .floats(0.25, 2.0),
        );
        v.push(
            case(
                "rms-norm-primitive-no-gain",
                "rmsnorm",
                prim("pow(%x, %two)", "    %y = mul(%x, %r) : T[2, 4]", false),
                tol,
            )
            .floats(0.25, 2.0),
        );
        // Signed inputs too (the bounds are relative to each output, which has x's sign).
        v.push(case("rms-norm-primitive", "rmsnorm", prim("pow(%x, %two)", &with_gain("%n, %g"), true), tol));
    }
}

// ---------------------------------------------------------------------------------------
// attention

fn attention_cases(v: &mut Vec<Case>) {
    for t in FLOATS {
        // (q·kᵀ)·s = (q·s)·kᵀ: with s a power of two every product and sum is scaled exactly
        // (no overflow, and fp32 has no subnormals in this range): exact in fp32. In fp16 a
        // scaled q element or a scaled score may be subnormal (< 2⁻¹⁴) and lose bits: ≤ 2⁻²⁵
        // absolute per element, times |k| ≤ 2 and 8 products: ≤ 2⁻²⁰ absolute. For s = 1/√3
        // (not a power of two) q·s rounds once more (≤ one rounding of the dtype per product,
        // |q·k| ≤ 4, 8 products: 32 roundings absolute) and the result once (relative).
        let ulp = if t == "fp16" { HALF_ULP16 } else { 2.0_f64.powi(-24) };
        for (s, tol) in [
            ("0.125", if t == "fp16" { Tol::Close { rel: 0.0, abs: 2.0_f64.powi(-20) } } else { Tol::Exact }),
            ("0.5773502691896258", Tol::Close { rel: 2.0 * ulp, abs: 32.0 * ulp }),
        ] {
            v.push(case(
                "scale-queries",
                "attention",
                func(t, "", "%q: T[1, 2, 3, 8], %k: T[1, 2, 5, 8]", "y: T[1, 2, 3, 5]", &format!("    %a = matmul(%q, %k) {{transpose_a = false, transpose_b = true}} : T[1, 2, 3, 5]\n    %s = const [{s}] : T[]\n    %y = mul(%a, %s) : T[1, 2, 3, 5]"), "%y"),
                tol,
            ));
        }
        // sink-scale moves a scalar factor one op towards the weights: through a reshape, a
        // split/get, neg, concat, add, mul (one side), a matmul's left side, a gather, and
        // into the weight and bias of a conv and the gain of an rms_norm. With a power of
        // two, scaling commutes with every rounding: exact in fp32; in fp16 a scaled value
        // may become subnormal and lose bits: ≤ 2⁻²⁴ absolute per rounding (≤ 16 along a
        // path, each amplified by at most the ≤ 2·8 of a dot: bound 2⁻¹⁵).
        let tol = if t == "fp16" { Tol::Close { rel: 4.0 * HALF_ULP16, abs: 2.0_f64.powi(-15) } } else { Tol::Exact };
        let w = "  weight @w : T[4, 4, 1, 1] = checkpoint(\"w\" : T[4, 4, 1, 1])\n  weight @b : T[4] = checkpoint(\"b\" : T[4])\n  weight @g : T[4] = checkpoint(\"g\" : T[4])\n";
        let bodies = [
            // conv weight and bias
            (
                "%x: T[1, 4, 1, 3]",
                "y: T[1, 4, 1, 3]",
                "    %w = weight @w : T[4, 4, 1, 1]\n    %b = weight @b : T[4]\n    %c = conv(%x, %w, %b) {strides = [1, 1], pads = [0, 0, 0, 0], dilations = [1, 1], groups = 1} : T[1, 4, 1, 3]\n    %s = const [0.25] : T[]\n    %y = mul(%c, %s) : T[1, 4, 1, 3]",
            ),
            // rms_norm gain, reshape
            (
                "%x: T[3, 4]",
                "y: T[1, 3, 4]",
                "    %g = weight @g : T[4]\n    %n = rms_norm(%x, %g) {axis = -1, eps = 1e-6} : T[3, 4]\n    %r = reshape(%n) {shape = [1, 3, 4]} : T[1, 3, 4]\n    %s = const [0.25] : T[]\n    %y = mul(%r, %s) : T[1, 3, 4]",
            ),
            // RoPE-like: split, neg, concat, mul by a table, add
            (
                "%x: T[1, 3, 4], %cos: T[1, 1, 4]",
                "y: T[1, 3, 4]",
                "    %lo, %hi = split(%x) {axis = 2, sizes = [2, 2]} : T[1, 3, 2], T[1, 3, 2]\n    %nh = neg(%hi) : T[1, 3, 2]\n    %rot = concat(%nh, %lo) {axis = 2} : T[1, 3, 4]\n    %a = mul(%x, %cos) : T[1, 3, 4]\n    %b = mul(%rot, %cos) : T[1, 3, 4]\n    %r = add(%a, %b) : T[1, 3, 4]\n    %s = const [0.125] : T[]\n    %y = mul(%r, %s) : T[1, 3, 4]",
            ),
            // matmul left side, gather of a table, sub
            (
                "%p: T[2, 3, 5], %v: T[2, 5, 4], %t: T[6, 4], %ids: int32[3]",
                "y: T[2, 3, 4]",
                "    %o = matmul(%p, %v) {transpose_a = false, transpose_b = false} : T[2, 3, 4]\n    %e = gather(%t, %ids) {axis = 0} : T[3, 4]\n    %d = sub(%o, %e) : T[2, 3, 4]\n    %s = const [0.5] : T[]\n    %y = mul(%d, %s) : T[2, 3, 4]",
            ),
        ];
        for (sig, outs, body) in bodies {
            v.push(case("sink-scale", "attention", func(t, w, sig, outs, body, "%y"), tol).ints(0, 5));
        }
        // GQA: every output element is the same dot product in the same order: exact.
        let gqa = |rep: usize, nkv: usize, rows: usize| {
            let nh = nkv * rep;
            format!(
                "module @t {{
  func @f(%q: T[1, {nh}, {rows}, 8], %k: T[1, {nkv}, 6, 8], %p: T[1, {nh}, {rows}, 6]) -> (s: T[1, {nh}, {rows}, 6], o: T[1, {nh}, {rows}, 8]) {{
    %ku = reshape(%k) {{shape = [1, {nkv}, 1, 6, 8]}} : T[1, {nkv}, 1, 6, 8]
    %kr = expand(%ku) {{shape = [1, {nkv}, {rep}, 6, 8]}} : T[1, {nkv}, {rep}, 6, 8]
    %kg = reshape(%kr) {{shape = [1, {nh}, 6, 8]}} : T[1, {nh}, 6, 8]
    %s = matmul(%q, %kg) {{transpose_a = false, transpose_b = true}} : T[1, {nh}, {rows}, 6]
    %o = matmul(%p, %kg) {{transpose_a = false, transpose_b = false}} : T[1, {nh}, {rows}, 8]
    return %s, %o
  }}
}}"
            )
            .replace('T', t)
        };
        for (rep, nkv, rows) in [(2, 2, 3), (3, 1, 1), (2, 1, 4)] {
            v.push(case("gqa-scores", "attention", gqa(rep, nkv, rows), Tol::Exact));
            v.push(case("gqa-values", "attention", gqa(rep, nkv, rows), Tol::Exact));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Chunk economy rules (layout and attention): data movement and a row broadcast: exact.

fn economy_cases(v: &mut Vec<Case>) {
    for t in FLOATS {
        // Heads in prefill: [1, n·d, 1, S] → [1, n, d, S], and back.
        for (n, d, s) in [(2, 3, 4), (3, 2, 5)] {
            let c = n * d;
            let body = format!(
                "    %a = transpose(%x) {{perm = [0, 3, 2, 1]}} : T[1, {s}, 1, {c}]\n    %b = reshape(%a) {{shape = [1, {s}, {n}, {d}]}} : T[1, {s}, {n}, {d}]\n    %y = transpose(%b) {{perm = [0, 2, 3, 1]}} : T[1, {n}, {d}, {s}]"
            );
            let src = func(t, "", &format!("%x: T[1, {c}, 1, {s}]"), &format!("y: T[1, {n}, {d}, {s}]"), &body, "%y");
            v.push(case("heads-from-channels", "layout", src, Tol::Exact));
            let body = format!(
                "    %a = transpose(%x) {{perm = [0, 3, 1, 2]}} : T[1, {s}, {n}, {d}]\n    %b = reshape(%a) {{shape = [1, {s}, 1, {c}]}} : T[1, {s}, 1, {c}]\n    %y = transpose(%b) {{perm = [0, 3, 2, 1]}} : T[1, {c}, 1, {s}]"
            );
            let src = func(t, "", &format!("%x: T[1, {n}, {d}, {s}]"), &format!("y: T[1, {c}, 1, {s}]"), &body, "%y");
            v.push(case("channels-from-heads", "layout", src, Tol::Exact));
        }
        // Decode scores grouped [1, nkv, rep, C] regrouped to [1, nh, 1, C], masked by [1, 1, 1, C].
        for (nkv, rep, c) in [(2, 2, 6), (1, 3, 4)] {
            let nh = nkv * rep;
            let body = format!(
                "    %a = reshape(%z) {{shape = [1, {nh}, 1, {c}]}} : T[1, {nh}, 1, {c}]\n    %y = add(%a, %m) : T[1, {nh}, 1, {c}]"
            );
            let src = func(
                t,
                "",
                &format!("%z: T[1, {nkv}, {rep}, {c}], %m: T[1, 1, 1, {c}]"),
                &format!("y: T[1, {nh}, 1, {c}]"),
                &body,
                "%y",
            );
            v.push(case("mask-before-regroup", "attention", src, Tol::Exact));
            for axis in ["-1", "3"] {
                let body = format!(
                    "    %a = reshape(%z) {{shape = [1, {nh}, 1, {c}]}} : T[1, {nh}, 1, {c}]\n    %y = softmax(%a) {{axis = {axis}}} : T[1, {nh}, 1, {c}]"
                );
                let src = func(
                    t,
                    "",
                    &format!("%z: T[1, {nkv}, {rep}, {c}]"),
                    &format!("y: T[1, {nh}, 1, {c}]"),
                    &body,
                    "%y",
                );
                v.push(case("softmax-before-regroup", "attention", src, Tol::Exact));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// kv-state: region reasoning on slices and updates moves data only: exact. Positions are
// random in their valid range (an update row at current_pos ∈ [0, 7] of an 8-row axis).

fn kvstate_cases(v: &mut Vec<Case>) {
    for t in FLOATS {
        v.push(case(
            "slice-of-concat",
            "kv-state",
            func(t, "", "%a: T[2, 3], %b: T[4, 3]", "x: T[1, 3], y: T[2, 2]", "    %c = concat(%a, %b) {axis = 0} : T[6, 3]\n    %x = slice(%c) {begin = [1, 0], end = [2, 3]} : T[1, 3]\n    %y = slice(%c) {begin = [3, 1], end = [5, 3]} : T[2, 2]", "%x, %y"),
            Tol::Exact,
        ));
        let updated = |lead: &str, slot: usize| {
            func(
                t,
                "",
                "%x: T[4, 2, 8, 3], %u: T[1, 2, 1, 3], %pos: int32[1]",
                "y: T[1, 2, 8, 3]",
                &format!(
                    "    %lead = const [{lead}] : int32[2]\n    %tail = const [0] : int32[1]\n    %at = concat(%lead, %pos, %tail) {{axis = 0}} : int32[4]\n    %w = slice_update(%x, %u, %at) : T[4, 2, 8, 3]\n    %y = slice(%w) {{begin = [{slot}, 0, 0, 0], end = [{}, 2, 8, 3]}} : T[1, 2, 8, 3]",
                    slot + 1
                ),
                "%y",
            )
        };
        v.push(case("slice-skips-update", "kv-state", updated("1, 0", 2), Tol::Exact).ints(0, 7));
        v.push(case("slice-skips-update", "kv-state", updated("3, 0", 0), Tol::Exact).ints(0, 7));
        v.push(case("slice-of-update", "kv-state", updated("2, 0", 2), Tol::Exact).ints(0, 7));
        v.push(case("slice-of-update", "kv-state", updated("0, 0", 0), Tol::Exact).ints(0, 7));
        for slot in [0, 3] {
            v.push(
                case(
                    "update-through-region",
                    "kv-state",
                    func(
                        t,
                        "",
                        "%x: T[4, 2, 8, 3], %u: T[1, 2, 1, 3], %pos: int32[1]",
                        "y: T[4, 2, 8, 3]",
                        &format!(
                            "    %slot = slice(%x) {{begin = [{slot}, 0, 0, 0], end = [{}, 2, 8, 3]}} : T[1, 2, 8, 3]\n    %lead = const [0, 0] : int32[2]\n    %tail = const [0] : int32[1]\n    %rel = concat(%lead, %pos, %tail) {{axis = 0}} : int32[4]\n    %row = slice_update(%slot, %u, %rel) : T[1, 2, 8, 3]\n    %at = const [{slot}, 0, 0, 0] : int32[4]\n    %y = slice_update(%x, %row, %at) : T[4, 2, 8, 3]",
                            slot + 1
                        ),
                        "%y",
                    ),
                    Tol::Exact,
                )
                .ints(0, 7),
            );
        }
    }
}
