//! Hand-computed tests of the reference interpreter (one or more per op family), the weight
//! materialiser and the runtime driver. Expected values are written out here (computed by
//! hand or with mpmath), never produced by the code under test.

// Literals such as 1.0009765625 (= 1 + 2^-10) are exact binary values whose full decimal
// spelling is the point of the test; reference values are quoted at full mpmath precision.
#![allow(clippy::excessive_precision)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anemllc::interp::{InterpError, Session, Tensor, evaluate};
use anemllc::ir::{DType, Recipe, TensorType, parse_module, verify_module};
use anemllc::weights::{TensorSource, WeightCache, WeightError, materialize};

type Source = HashMap<String, (Vec<usize>, Vec<f32>)>;

fn module(src: &str) -> anemllc::ir::Module {
    let m = parse_module(src).unwrap_or_else(|e| panic!("parse: {e}"));
    verify_module(&m).unwrap_or_else(|e| panic!("verify: {e}"));
    m
}

/// Wraps a function body in a module and runs `@f` on `inputs` with no states.
fn run_with(src: &str, weights: Source, inputs: Vec<(&str, Tensor)>) -> Result<HashMap<String, Tensor>, InterpError> {
    let m = module(src);
    let cache = WeightCache::new(&m, Arc::new(weights));
    let inputs = inputs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    evaluate(&m, "f", &inputs, &mut HashMap::new(), &cache)
}

fn run(body: &str, inputs: Vec<(&str, Tensor)>) -> Result<HashMap<String, Tensor>, InterpError> {
    run_with(&format!("module @t {{\n{body}\n}}"), HashMap::new(), inputs)
}

fn f32t(shape: &[usize], v: &[f32]) -> Tensor {
    Tensor::f32(shape, v.to_vec()).unwrap()
}

fn i32t(shape: &[usize], v: &[i64]) -> Tensor {
    Tensor::i32(shape, v.to_vec()).unwrap()
}

fn out<'a>(r: &'a HashMap<String, Tensor>, name: &str) -> &'a Tensor {
    r.get(name).unwrap_or_else(|| panic!("no output {name}"))
}

fn floats(t: &Tensor) -> Vec<f32> {
    t.as_f32().expect("float tensor").iter().copied().collect()
}

fn ints(t: &Tensor) -> Vec<i64> {
    t.to_i64_vec().expect("int tensor")
}

fn assert_close(got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "got {got:?}, want {want:?}");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = f64::from(g) == w || (f64::from(g) - w).abs() <= tol * w.abs().max(1.0) || (g.is_nan() && w.is_nan());
        assert!(ok, "element {i}: got {g}, want {w} (all: {got:?})");
    }
}

// ---------------------------------------------------------------------------------------
// Elementwise

#[test]
fn add_broadcasts() {
    let r = run(
        "func @f(%a: fp32[2, 1], %b: fp32[3]) -> (y: fp32[2, 3]) {
           %y = add(%a, %b) : fp32[2, 3]
           return %y
         }",
        vec![("a", f32t(&[2, 1], &[1.0, 2.0])), ("b", f32t(&[3], &[10.0, 20.0, 30.0]))],
    )
    .unwrap();
    let y = out(&r, "y");
    assert_eq!(y.shape(), &[2, 3]);
    assert_eq!(floats(y), vec![11.0, 21.0, 31.0, 12.0, 22.0, 32.0]);
}

#[test]
fn binary_float_ops() {
    let r = run(
        "func @f(%a: fp32[4], %b: fp32[4]) -> (s: fp32[4], m: fp32[4], d: fp32[4], p: fp32[4], mx: fp32[4], mn: fp32[4]) {
           %s = sub(%a, %b) : fp32[4]
           %m = mul(%a, %b) : fp32[4]
           %d = div(%a, %b) : fp32[4]
           %p = pow(%a, %b) : fp32[4]
           %mx = maximum(%a, %b) : fp32[4]
           %mn = minimum(%a, %b) : fp32[4]
           return %s, %m, %d, %p, %mx, %mn
         }",
        vec![("a", f32t(&[4], &[2.0, -3.0, 1.0, f32::NAN])), ("b", f32t(&[4], &[3.0, 2.0, 0.0, 1.0]))],
    )
    .unwrap();
    assert_close(&floats(out(&r, "s")), &[-1.0, -5.0, 1.0, f64::NAN], 0.0);
    assert_close(&floats(out(&r, "m")), &[6.0, -6.0, 0.0, f64::NAN], 0.0);
    assert_close(&floats(out(&r, "d")), &[2.0 / 3.0, -1.5, f64::INFINITY, f64::NAN], 1e-7);
    assert_close(&floats(out(&r, "p")), &[8.0, 9.0, 1.0, f64::NAN], 0.0);
    assert_close(&floats(out(&r, "mx")), &[3.0, 2.0, 1.0, f64::NAN], 0.0);
    assert_close(&floats(out(&r, "mn")), &[2.0, -3.0, 0.0, f64::NAN], 0.0);
}

#[test]
fn integer_arithmetic_wraps_and_truncates() {
    let r = run(
        "func @f(%a: int32[3], %b: int32[3]) -> (s: int32[3], d: int32[3]) {
           %s = add(%a, %b) : int32[3]
           %d = div(%a, %b) : int32[3]
           return %s, %d
         }",
        vec![("a", i32t(&[3], &[2147483647, -7, 7])), ("b", i32t(&[3], &[1, 2, -2]))],
    )
    .unwrap();
    assert_eq!(ints(out(&r, "s")), vec![-2147483648, -5, 5]);
    assert_eq!(ints(out(&r, "d")), vec![2147483647, -3, -3]);
}

#[test]
fn integer_division_by_zero_is_an_error() {
    let err = run(
        "func @f(%a: int32[2], %b: int32[2]) -> (d: int32[2]) {
           %d = div(%a, %b) : int32[2]
           return %d
         }",
        vec![("a", i32t(&[2], &[1, 2])), ("b", i32t(&[2], &[1, 0]))],
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("@f") && msg.contains("`div`") && msg.contains("division by zero"), "{msg}");
}

#[test]
fn unary_ops() {
    let r = run(
        "func @f(%x: fp32[3]) -> (n: fp32[3], sq: fp32[3], rs: fp32[3], e: fp32[3], sg: fp32[3], sl: fp32[3]) {
           %n = neg(%x) : fp32[3]
           %sq = sqrt(%x) : fp32[3]
           %rs = rsqrt(%x) : fp32[3]
           %e = exp(%x) : fp32[3]
           %sg = sigmoid(%x) : fp32[3]
           %sl = silu(%x) : fp32[3]
           return %n, %sq, %rs, %e, %sg, %sl
         }",
        vec![("x", f32t(&[3], &[0.0, 1.0, 4.0]))],
    )
    .unwrap();
    assert_close(&floats(out(&r, "n")), &[0.0, -1.0, -4.0], 0.0);
    assert_close(&floats(out(&r, "sq")), &[0.0, 1.0, 2.0], 0.0);
    assert_close(&floats(out(&r, "rs")), &[f64::INFINITY, 1.0, 0.5], 0.0);
    assert_close(&floats(out(&r, "e")), &[1.0, std::f64::consts::E, 54.598150033144236], 1e-7);
    // σ(1) = 0.7310585786300049, σ(4) = 0.9820137900379085
    assert_close(&floats(out(&r, "sg")), &[0.5, 0.7310585786300049, 0.9820137900379085], 1e-7);
    assert_close(&floats(out(&r, "sl")), &[0.0, 0.7310585786300049, 4.0 * 0.9820137900379085], 1e-7);
}

#[test]
fn gelu_exact_and_tanh() {
    let r = run(
        r#"func @f(%x: fp32[5]) -> (e: fp32[5], t: fp32[5]) {
           %e = gelu(%x) {mode = "exact"} : fp32[5]
           %t = gelu(%x) {mode = "tanh"} : fp32[5]
           return %e, %t
         }"#,
        vec![("x", f32t(&[5], &[1.0, -1.0, 0.5, -3.0, 2.0]))],
    )
    .unwrap();
    // mpmath: x·Φ(x) and ½x(1 + tanh(√(2/π)(x + 0.044715x³))).
    let exact =
        [0.8413447460685429, -0.15865525393145705, 0.34573123063700655, -0.004049694094890284, 1.9544997361036416];
    let tanh =
        [0.8411919906082767, -0.15880800939172328, 0.3457140098251439, -0.0036373920817730197, 1.954597694087775];
    assert_close(&floats(out(&r, "e")), &exact, 2e-7);
    assert_close(&floats(out(&r, "t")), &tanh, 2e-7);
}

#[test]
fn erf_matches_known_values() {
    use anemllc::interp::erf::{erf, erfc, std_normal_cdf};
    assert!((erf(1.0) - 0.8427007929497149).abs() < 1e-15);
    assert!((erf(-0.5) + 0.5204998778130465).abs() < 1e-15);
    assert!((erfc(4.0) / 1.541725790028002e-8 - 1.0).abs() < 1e-13);
    assert!((std_normal_cdf(1.0) - 0.8413447460685429).abs() < 1e-15);
}

// ---------------------------------------------------------------------------------------
// Reductions, argmax

#[test]
fn reductions() {
    let r = run(
        "func @f(%x: fp32[2, 3]) -> (s: fp32[2, 1], m: fp32[3], mx: fp32[]) {
           %s = reduce_sum(%x) {axes = [-1], keep_dims = true} : fp32[2, 1]
           %m = reduce_mean(%x) {axes = [0], keep_dims = false} : fp32[3]
           %mx = reduce_max(%x) {axes = [1, 0], keep_dims = false} : fp32[]
           return %s, %m, %mx
         }",
        vec![("x", f32t(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]))],
    )
    .unwrap();
    assert_eq!(floats(out(&r, "s")), vec![6.0, 15.0]);
    assert_eq!(floats(out(&r, "m")), vec![2.5, 3.5, 4.5]);
    assert_eq!(out(&r, "mx").shape(), &[] as &[usize]);
    assert_eq!(floats(out(&r, "mx")), vec![6.0]);
}

#[test]
fn integer_reductions_wrap() {
    let r = run(
        "func @f(%x: int32[2, 2]) -> (s: int32[2], m: int32[2]) {
           %s = reduce_sum(%x) {axes = [1], keep_dims = false} : int32[2]
           %m = reduce_max(%x) {axes = [-1], keep_dims = false} : int32[2]
           return %s, %m
         }",
        vec![("x", i32t(&[2, 2], &[2147483647, 1, -5, -7]))],
    )
    .unwrap();
    assert_eq!(ints(out(&r, "s")), vec![-2147483648, -12]);
    assert_eq!(ints(out(&r, "m")), vec![2147483647, -5]);
}

#[test]
fn argmax_first_maximum() {
    let r = run(
        "func @f(%x: fp32[2, 4]) -> (a: int32[2], k: int32[1, 4]) {
           %a = argmax(%x) {axis = -1, keep_dims = false} : int32[2]
           %k = argmax(%x) {axis = 0, keep_dims = true} : int32[1, 4]
           return %a, %k
         }",
        vec![("x", f32t(&[2, 4], &[1.0, 3.0, 3.0, 2.0, 5.0, -1.0, 5.0, 2.0]))],
    )
    .unwrap();
    assert_eq!(out(&r, "a").dtype(), DType::I32);
    assert_eq!(ints(out(&r, "a")), vec![1, 0]);
    assert_eq!(ints(out(&r, "k")), vec![1, 0, 1, 0]);
}

// ---------------------------------------------------------------------------------------
// Normalisation

#[test]
fn softmax_subtracts_the_max() {
    let r = run(
        "func @f(%x: fp32[3, 3]) -> (y: fp32[3, 3]) {
           %y = softmax(%x) {axis = -1} : fp32[3, 3]
           return %y
         }",
        vec![("x", f32t(&[3, 3], &[1.0, 2.0, 3.0, 1000.0, 1000.0, 1000.0, 0.0, f32::NEG_INFINITY, 0.0]))],
    )
    .unwrap();
    let third = 1.0 / 3.0;
    assert_close(
        &floats(out(&r, "y")),
        &[0.09003057317038046, 0.24472847105479765, 0.6652409557748219, third, third, third, 0.5, 0.0, 0.5],
        1e-7,
    );
}

#[test]
fn rms_norm_last_axis_and_channel_axis() {
    let r = run(
        "func @f(%x: fp32[1, 2], %g: fp32[2], %c: fp32[1, 2, 1, 2]) -> (y: fp32[1, 2], z: fp32[1, 2, 1, 2]) {
           %y = rms_norm(%x, %g) {axis = -1, eps = 0.0} : fp32[1, 2]
           %z = rms_norm(%c, %g) {axis = 1, eps = 0.0} : fp32[1, 2, 1, 2]
           return %y, %z
         }",
        vec![
            ("x", f32t(&[1, 2], &[3.0, 4.0])),
            ("g", f32t(&[2], &[1.0, 2.0])),
            // channel 0 = [3, 1], channel 1 = [4, 1]: lanes along C are (3, 4) and (1, 1).
            ("c", f32t(&[1, 2, 1, 2], &[3.0, 1.0, 4.0, 1.0])),
        ],
    )
    .unwrap();
    // mean(x²) = 12.5: 3/√12.5 = 0.848528137423857, 2·4/√12.5 = 2.262741699796952.
    assert_close(&floats(out(&r, "y")), &[0.848528137423857, 2.262741699796952], 1e-7);
    assert_close(&floats(out(&r, "z")), &[0.848528137423857, 1.0, 2.262741699796952, 2.0], 1e-7);
}

#[test]
fn layer_norm_biased_variance() {
    let r = run(
        "func @f(%x: fp32[4], %m: fp32[2, 2]) -> (y: fp32[4], z: fp32[2, 2]) {
           %y = layer_norm(%x) {axes = [-1], eps = 0.0} : fp32[4]
           %z = layer_norm(%m) {axes = [0], eps = 0.0} : fp32[2, 2]
           return %y, %z
         }",
        vec![("x", f32t(&[4], &[1.0, 2.0, 3.0, 4.0])), ("m", f32t(&[2, 2], &[1.0, 10.0, 3.0, 30.0]))],
    )
    .unwrap();
    // mean 2.5, biased variance 1.25.
    let s = 1.118033988749895;
    assert_close(&floats(out(&r, "y")), &[-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s], 1e-7);
    // Per column: (1, 3) → (−1, 1); (10, 30) → (−1, 1).
    assert_close(&floats(out(&r, "z")), &[-1.0, -1.0, 1.0, 1.0], 1e-7);
}

// ---------------------------------------------------------------------------------------
// Linear algebra

#[test]
fn matmul_transpose_b_with_batch_broadcast() {
    let r = run(
        "func @f(%a: fp32[2, 2, 3], %b: fp32[2, 3]) -> (y: fp32[2, 2, 2]) {
           %y = matmul(%a, %b) {transpose_a = false, transpose_b = true} : fp32[2, 2, 2]
           return %y
         }",
        vec![
            ("a", f32t(&[2, 2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0])),
            ("b", f32t(&[2, 3], &[1.0, 0.0, 1.0, 0.0, 1.0, 0.0])),
        ],
    )
    .unwrap();
    assert_eq!(floats(out(&r, "y")), vec![4.0, 2.0, 10.0, 5.0, 1.0, 0.0, 0.0, 1.0]);
}

#[test]
fn matmul_transpose_a_and_two_sided_broadcast() {
    let r = run(
        "func @f(%a: fp32[3, 2], %o: fp32[3, 1], %p: fp32[2, 1, 2, 2], %q: fp32[3, 2, 2]) -> (y: fp32[2, 1], z: fp32[2, 3, 2, 2]) {
           %y = matmul(%a, %o) {transpose_a = true, transpose_b = false} : fp32[2, 1]
           %z = matmul(%p, %q) {transpose_a = false, transpose_b = false} : fp32[2, 3, 2, 2]
           return %y, %z
         }",
        vec![
            ("a", f32t(&[3, 2], &[1.0, 4.0, 2.0, 5.0, 3.0, 6.0])),
            ("o", f32t(&[3, 1], &[1.0, 1.0, 1.0])),
            // p[0] = I, p[1] = 2·I
            ("p", f32t(&[2, 1, 2, 2], &[1.0, 0.0, 0.0, 1.0, 2.0, 0.0, 0.0, 2.0])),
            // q[j] = [[j+1, 1], [0, 1]]
            ("q", f32t(&[3, 2, 2], &[1.0, 1.0, 0.0, 1.0, 2.0, 1.0, 0.0, 1.0, 3.0, 1.0, 0.0, 1.0])),
        ],
    )
    .unwrap();
    assert_eq!(floats(out(&r, "y")), vec![6.0, 15.0]);
    let want: Vec<f32> = vec![
        1.0, 1.0, 0.0, 1.0, 2.0, 1.0, 0.0, 1.0, 3.0, 1.0, 0.0, 1.0, // p[0] = I
        2.0, 2.0, 0.0, 2.0, 4.0, 2.0, 0.0, 2.0, 6.0, 2.0, 0.0, 2.0, // p[1] = 2I
    ];
    assert_eq!(floats(out(&r, "z")), want);
}

#[test]
fn linear_with_bias() {
    let r = run(
        "func @f(%x: fp32[1, 2, 3], %w: fp32[2, 3], %b: fp32[2]) -> (y: fp32[1, 2, 2]) {
           %y = linear(%x, %w, %b) : fp32[1, 2, 2]
           return %y
         }",
        vec![
            ("x", f32t(&[1, 2, 3], &[1.0, 2.0, 3.0, 0.0, 1.0, 0.0])),
            ("w", f32t(&[2, 3], &[1.0, 0.0, -1.0, 2.0, 1.0, 0.0])),
            ("b", f32t(&[2], &[0.5, -1.0])),
        ],
    )
    .unwrap();
    assert_eq!(floats(out(&r, "y")), vec![-1.5, 3.0, 0.5, 0.0]);
}

#[test]
fn conv_groups_stride_pad_bias() {
    let r = run(
        "func @f(%x: fp32[1, 2, 3, 3], %w: fp32[2, 1, 2, 2], %b: fp32[2]) -> (y: fp32[1, 2, 2, 2]) {
           %y = conv(%x, %w, %b) {strides = [2, 2], pads = [1, 0, 1, 0], dilations = [1, 1], groups = 2} : fp32[1, 2, 2, 2]
           return %y
         }",
        vec![
            ("x", f32t(&[1, 2, 3, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])),
            ("w", f32t(&[2, 1, 2, 2], &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0])),
            ("b", f32t(&[2], &[10.0, 20.0])),
        ],
    )
    .unwrap();
    // Channel 0 (diagonal kernel on the top/left-padded 1..9): 1, 3, 7, 14; channel 1 (box
    // sum of the padded ones): 1, 2, 2, 4; plus the biases.
    assert_eq!(floats(out(&r, "y")), vec![11.0, 13.0, 17.0, 24.0, 21.0, 22.0, 22.0, 24.0]);
}

#[test]
fn conv_dilation() {
    let r = run(
        "func @f(%x: fp32[1, 1, 3, 3], %w: fp32[1, 1, 2, 2]) -> (y: fp32[1, 1, 1, 1]) {
           %y = conv(%x, %w) {strides = [1, 1], pads = [0, 0, 0, 0], dilations = [2, 2], groups = 1} : fp32[1, 1, 1, 1]
           return %y
         }",
        vec![
            ("x", f32t(&[1, 1, 3, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0])),
            ("w", f32t(&[1, 1, 2, 2], &[1.0, 2.0, 3.0, 4.0])),
        ],
    )
    .unwrap();
    // 1·1 + 3·2 + 7·3 + 9·4
    assert_eq!(floats(out(&r, "y")), vec![64.0]);
}

// ---------------------------------------------------------------------------------------
// Shape ops

#[test]
fn shape_ops() {
    let r = run(
        "func @f(%x: fp32[2, 3]) -> (t: fp32[3, 2], r: fp32[3, 2], c: fp32[2, 5], s0: fp32[2, 1], s1: fp32[2, 2], sl: fp32[1, 2], e: fp32[2, 2, 3], sq: fp32[3], ed: fp32[1, 2, 3, 1]) {
           %t = transpose(%x) {perm = [1, 0]} : fp32[3, 2]
           %r = reshape(%x) {shape = [3, 2]} : fp32[3, 2]
           %p = slice(%x) {begin = [0, 0], end = [2, 2]} : fp32[2, 2]
           %c = concat(%x, %p) {axis = -1} : fp32[2, 5]
           %s0, %s1 = split(%x) {axis = 1, sizes = [1, 2]} : fp32[2, 1], fp32[2, 2]
           %sl = slice(%x) {begin = [1, 1], end = [2, 3]} : fp32[1, 2]
           %x1 = expand_dims(%x) {axes = [0]} : fp32[1, 2, 3]
           %e = expand(%x1) {shape = [2, 2, 3]} : fp32[2, 2, 3]
           %row = slice(%x) {begin = [1, 0], end = [2, 3]} : fp32[1, 3]
           %sq = squeeze(%row) {axes = [0]} : fp32[3]
           %ed = expand_dims(%x) {axes = [0, -1]} : fp32[1, 2, 3, 1]
           return %t, %r, %c, %s0, %s1, %sl, %e, %sq, %ed
         }",
        vec![("x", f32t(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]))],
    )
    .unwrap();
    assert_eq!(floats(out(&r, "t")), vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    assert_eq!(floats(out(&r, "r")), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert_eq!(floats(out(&r, "c")), vec![1.0, 2.0, 3.0, 1.0, 2.0, 4.0, 5.0, 6.0, 4.0, 5.0]);
    assert_eq!(floats(out(&r, "s0")), vec![1.0, 4.0]);
    assert_eq!(floats(out(&r, "s1")), vec![2.0, 3.0, 5.0, 6.0]);
    assert_eq!(floats(out(&r, "sl")), vec![5.0, 6.0]);
    assert_eq!(floats(out(&r, "e")), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert_eq!(floats(out(&r, "sq")), vec![4.0, 5.0, 6.0]);
    assert_eq!(out(&r, "ed").shape(), &[1, 2, 3, 1]);
}

// ---------------------------------------------------------------------------------------
// Indexing

const GATHER: &str =
    "func @f(%t: fp32[3, 2], %i: int32[2, 2], %m: fp32[2, 3], %k: int32[]) -> (g: fp32[2, 2, 2], h: fp32[2]) {
   %g = gather(%t, %i) {axis = 0} : fp32[2, 2, 2]
   %h = gather(%m, %k) {axis = -1} : fp32[2]
   return %g, %h
 }";

fn gather_inputs(idx: &[i64]) -> Vec<(&'static str, Tensor)> {
    vec![
        ("t", f32t(&[3, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])),
        ("i", i32t(&[2, 2], idx)),
        ("m", f32t(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])),
        ("k", i32t(&[], &[2])),
    ]
}

#[test]
fn gather_rows_and_scalar_index() {
    let r = run(GATHER, gather_inputs(&[2, 0, 1, 1])).unwrap();
    assert_eq!(floats(out(&r, "g")), vec![5.0, 6.0, 1.0, 2.0, 3.0, 4.0, 3.0, 4.0]);
    assert_eq!(floats(out(&r, "h")), vec![3.0, 6.0]);
}

#[test]
fn gather_out_of_range_or_negative_is_an_error() {
    for bad in [3, -1] {
        let err = run(GATHER, gather_inputs(&[0, bad, 1, 1])).unwrap_err();
        match &err {
            InterpError::Op { func, index, op, .. } => {
                assert_eq!((func.as_str(), *index, *op), ("f", 0, "gather"));
            }
            other => panic!("unexpected error {other}"),
        }
        assert!(err.to_string().contains(&format!("index {bad}")), "{err}");
    }
}

const SLICE_UPDATE: &str = "func @f(%x: fp32[2, 3], %u: fp32[1, 2], %b: int32[2]) -> (y: fp32[2, 3]) {
   %y = slice_update(%x, %u, %b) : fp32[2, 3]
   return %y
 }";

fn slice_update_inputs(begin: &[i64]) -> Vec<(&'static str, Tensor)> {
    vec![
        ("x", f32t(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])),
        ("u", f32t(&[1, 2], &[70.0, 80.0])),
        ("b", i32t(&[2], begin)),
    ]
}

#[test]
fn slice_update_replaces_the_box() {
    let r = run(SLICE_UPDATE, slice_update_inputs(&[1, 1])).unwrap();
    assert_eq!(floats(out(&r, "y")), vec![1.0, 2.0, 3.0, 4.0, 70.0, 80.0]);
    let r = run(SLICE_UPDATE, slice_update_inputs(&[0, 0])).unwrap();
    assert_eq!(floats(out(&r, "y")), vec![70.0, 80.0, 3.0, 4.0, 5.0, 6.0]);
}

#[test]
fn slice_update_out_of_range_is_an_error() {
    for begin in [[1, 2], [2, 0], [-1, 0]] {
        let err = run(SLICE_UPDATE, slice_update_inputs(&begin)).unwrap_err();
        assert!(matches!(err, InterpError::Op { op: "slice_update", .. }), "{err}");
    }
}

#[test]
fn lut_to_dense_groups() {
    let r = run(
        "func @f(%i: uint2[4, 2], %l: fp32[2, 4]) -> (y: fp32[4, 2]) {
           %y = lut_to_dense(%i, %l) : fp32[4, 2]
           return %y
         }",
        vec![
            ("i", Tensor::from_i64(DType::U2, &[4, 2], vec![0, 3, 1, 2, 3, 3, 0, 1]).unwrap()),
            ("l", f32t(&[2, 4], &[0.5, 1.5, 2.5, 3.5, -1.0, -2.0, -3.0, -4.0])),
        ],
    )
    .unwrap();
    assert_eq!(floats(out(&r, "y")), vec![0.5, 3.5, 1.5, 2.5, -4.0, -4.0, -1.0, -2.0]);
}

#[test]
fn index_tensors_reject_out_of_range_values() {
    assert!(Tensor::from_i64(DType::U2, &[1], vec![4]).is_err());
    assert!(Tensor::from_i64(DType::Bool, &[1], vec![2]).is_err());
    assert!(Tensor::i32(&[1], vec![1 << 31]).is_err());
}

// ---------------------------------------------------------------------------------------
// Casts, consts and fp16 rounding

#[test]
fn cast_to_fp16_and_bf16_rounds_to_nearest_even() {
    let r = run(
        "func @f(%x: fp32[6]) -> (h: fp16[6], b: bf16[6]) {
           %h = cast(%x) {dtype = fp16} : fp16[6]
           %b = cast(%x) {dtype = bf16} : bf16[6]
           return %h, %b
         }",
        vec![("x", f32t(&[6], &[1.0009765625, 1.0004, 1.00048828125, 1.00146484375, 65520.0, 1.00390625]))],
    )
    .unwrap();
    let h = out(&r, "h");
    assert_eq!(h.dtype(), DType::F16);
    // 1+2^-10 is an fp16; 1.0004 → 1; the tie 1+2^-11 → 1 (even); the tie 1+3·2^-11 →
    // 1+2^-9 (even); 65520 is the midpoint above the largest fp16 → inf; 1+2^-8 → 1.00390625.
    assert_eq!(floats(h), vec![1.0009765625, 1.0, 1.0, 1.001953125, f32::INFINITY, 1.00390625]);
    // bf16 has 7 fraction bits: everything near 1 rounds to 1 except ties; 1+2^-8 is a tie → 1.
    assert_eq!(floats(out(&r, "b")), vec![1.0, 1.0, 1.0, 1.0, 65536.0, 1.0]);
}

#[test]
fn fp16_ops_round_after_every_op() {
    let r = run(
        "func @f() -> (y: fp16[1], c: fp16[1]) {
           %one = const [1.0] : fp16[1]
           %c = const [0.0004] : fp16[1]
           %y = add(%one, %c) : fp16[1]
           return %y, %c
         }",
        vec![],
    )
    .unwrap();
    // fp16(0.0004) = 0.0004000663757324219 = 839·2^-21 (exponent 2^-12, 10 fraction bits);
    // 1 + that is below 1 + 2^-11, so it rounds to 1.
    assert_eq!(floats(out(&r, "c")), vec![0.0004000663757324219]);
    assert_eq!(floats(out(&r, "y")), vec![1.0]);
}

#[test]
fn cast_between_kinds() {
    let r = run(
        "func @f(%x: fp32[4], %i: int64[3]) -> (a: int32[4], b: bool[4], c: fp32[3], d: int32[3], e: fp32[4]) {
           %a = cast(%x) {dtype = int32} : int32[4]
           %b = cast(%x) {dtype = bool} : bool[4]
           %c = cast(%i) {dtype = fp32} : fp32[3]
           %d = cast(%i) {dtype = int32} : int32[3]
           %e = cast(%b) {dtype = fp32} : fp32[4]
           return %a, %b, %c, %d, %e
         }",
        vec![
            ("x", f32t(&[4], &[2.7, -2.7, f32::NAN, 3.0e10])),
            ("i", Tensor::from_i64(DType::I64, &[3], vec![16777217, -5, 4294967297]).unwrap()),
        ],
    )
    .unwrap();
    assert_eq!(ints(out(&r, "a")), vec![2, -2, 0, 2147483647]);
    assert_eq!(ints(out(&r, "b")), vec![1, 1, 1, 1]);
    // 2^24 + 1 rounds to 2^24 (tie to even); 2^32 + 1 → 4294967296.
    assert_eq!(floats(out(&r, "c")), vec![16777216.0, -5.0, 4294967296.0]);
    assert_eq!(ints(out(&r, "d")), vec![16777217, -5, 1]);
    assert_eq!(floats(out(&r, "e")), vec![1.0, 1.0, 1.0, 1.0]);
}

#[test]
fn const_splat_and_full() {
    let r = run(
        "func @f() -> (s: fp32[2, 2], v: int32[3]) {
           %s = const [0.5] : fp32[2, 2]
           %v = const [1, -2, 3] : int32[3]
           return %s, %v
         }",
        vec![],
    )
    .unwrap();
    assert_eq!(floats(out(&r, "s")), vec![0.5; 4]);
    assert_eq!(ints(out(&r, "v")), vec![1, -2, 3]);
}

// ---------------------------------------------------------------------------------------
// State

const ACCUMULATE: &str = "module @t {
  func @f(%s: state<fp32[2]>, %x: fp32[2], %i: int32[1]) -> (old: fp32[2], after: fp32[2]) {
    %old = read_state(%s) : fp32[2]
    %new = add(%old, %x) : fp32[2]
    write_state(%s, %new)
    %after = read_state(%s) : fp32[2]
    %t = const [1.0, 2.0] : fp32[2]
    %check = gather(%t, %i) {axis = 0} : fp32[1]
    return %old, %after
  }
}";

#[test]
fn state_persists_across_calls_and_rolls_back_on_error() {
    let m = module(ACCUMULATE);
    let cache = WeightCache::new(&m, Arc::new(Source::new()));
    let mut states = HashMap::from([("s".to_string(), f32t(&[2], &[0.0, 0.0]))]);
    let inputs = |x: &[f32], i: i64| -> HashMap<String, Tensor> {
        HashMap::from([("x".to_string(), f32t(&[2], x)), ("i".to_string(), i32t(&[1], &[i]))])
    };

    let r = evaluate(&m, "f", &inputs(&[1.0, 2.0], 0), &mut states, &cache).unwrap();
    assert_eq!(floats(out(&r, "old")), vec![0.0, 0.0]);
    assert_eq!(floats(out(&r, "after")), vec![1.0, 2.0]);
    assert_eq!(floats(&states["s"]), vec![1.0, 2.0]);

    let r = evaluate(&m, "f", &inputs(&[10.0, 10.0], 1), &mut states, &cache).unwrap();
    assert_eq!(floats(out(&r, "old")), vec![1.0, 2.0]);
    assert_eq!(floats(&states["s"]), vec![11.0, 12.0]);

    // The gather after the write fails: the write must not be committed.
    let err = evaluate(&m, "f", &inputs(&[5.0, 5.0], 7), &mut states, &cache).unwrap_err();
    assert!(matches!(err, InterpError::Op { op: "gather", index: 5, .. }), "{err}");
    assert_eq!(floats(&states["s"]), vec![11.0, 12.0]);
}

#[test]
fn missing_state_is_an_error() {
    let m = module(ACCUMULATE);
    let cache = WeightCache::new(&m, Arc::new(Source::new()));
    let inputs = HashMap::from([("x".to_string(), f32t(&[2], &[0.0, 0.0])), ("i".to_string(), i32t(&[1], &[0]))]);
    let err = evaluate(&m, "f", &inputs, &mut HashMap::new(), &cache).unwrap_err();
    assert!(matches!(&err, InterpError::Input { input, .. } if input == "s"), "{err}");
}

// ---------------------------------------------------------------------------------------
// Input checking

#[test]
fn bad_inputs_are_named() {
    let body = "func @f(%x: fp32[2]) -> (y: fp32[2]) {
       %y = neg(%x) : fp32[2]
       return %y
     }";
    let err = run(body, vec![("x", f32t(&[3], &[1.0, 2.0, 3.0]))]).unwrap_err();
    assert!(matches!(&err, InterpError::Input { input, .. } if input == "x"), "{err}");
    let err = run(body, vec![]).unwrap_err();
    assert!(matches!(&err, InterpError::Input { input, .. } if input == "x"), "{err}");
    let err = run(body, vec![("x", f32t(&[2], &[1.0, 2.0])), ("z", f32t(&[1], &[0.0]))]).unwrap_err();
    assert!(matches!(&err, InterpError::Input { input, .. } if input == "z"), "{err}");
    let err = run(body, vec![("x", i32t(&[2], &[1, 2]))]).unwrap_err();
    assert!(matches!(&err, InterpError::Input { input, .. } if input == "x"), "{err}");
}

// ---------------------------------------------------------------------------------------
// Weights

fn src(entries: &[(&str, &[usize], &[f32])]) -> Source {
    entries.iter().map(|(n, s, v)| (n.to_string(), (s.to_vec(), v.to_vec()))).collect()
}

fn ckpt(name: &str, dtype: DType, shape: &[usize]) -> Box<Recipe> {
    Box::new(Recipe::Checkpoint { tensor: name.into(), ty: TensorType::new(dtype, shape.to_vec()) })
}

#[test]
fn weight_recipes() {
    let s = src(&[("a", &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]), ("b", &[1, 3], &[7.0, 8.0, 9.0])]);
    let t = materialize(&Recipe::Transpose { input: ckpt("a", DType::F32, &[2, 3]), perm: vec![1, 0] }, &s).unwrap();
    assert_eq!((t.shape(), floats(&t)), (&[3usize, 2][..], vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]));
    let t =
        materialize(&Recipe::Slice { input: ckpt("a", DType::F32, &[2, 3]), axis: 1, start: 1, end: 3 }, &s).unwrap();
    assert_eq!(floats(&t), vec![2.0, 3.0, 5.0, 6.0]);
    let t = materialize(
        &Recipe::Concat { inputs: vec![*ckpt("a", DType::F32, &[2, 3]), *ckpt("b", DType::F32, &[1, 3])], axis: 0 },
        &s,
    )
    .unwrap();
    assert_eq!(t.shape(), &[3, 3]);
    assert_eq!(floats(&t)[6..], [7.0, 8.0, 9.0]);
    let t = materialize(&Recipe::Reshape { input: ckpt("a", DType::F32, &[2, 3]), shape: vec![3, 2] }, &s).unwrap();
    assert_eq!((t.shape(), floats(&t)), (&[3usize, 2][..], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
    let t = materialize(&Recipe::Scale { input: ckpt("b", DType::F32, &[1, 3]), factor: 0.125 }, &s).unwrap();
    assert_eq!(floats(&t), vec![0.875, 1.0, 1.125]);
}

/// `scale_along(W, g, axis)` is `W · diag(g)` along `axis`: every element equals its input
/// times the factor at its index along that axis, computed here independently in f64 and
/// rounded to the input's dtype (f32, or bf16 through a cast: one rounding of the product).
#[test]
fn scale_along_multiplies_each_index_of_its_axis() {
    // W [3, 4] with non-trivial mantissas, g [4] and h [3] likewise.
    let w: Vec<f32> = (0..12).map(|i| (i as f32 - 5.5) * 0.3173 + 0.0001 * (i * i) as f32).collect();
    let g: Vec<f32> = vec![1.7351, 0.5, -2.25, 1.0e-3];
    let h: Vec<f32> = vec![3.0, 0.1, 1.4173];
    let s = src(&[("w", &[3, 4], &w), ("g", &[4], &g), ("h", &[3], &h)]);
    let along = |axis: usize, scale: &str, len: usize, dtype: DType| {
        let input = if dtype == DType::F32 {
            ckpt("w", DType::F32, &[3, 4])
        } else {
            Box::new(Recipe::Cast { input: ckpt("w", DType::F32, &[3, 4]), dtype })
        };
        Recipe::ScaleAlong { input, scale: ckpt(scale, DType::F32, &[len]), axis }
    };
    for dtype in [DType::F32, DType::BF16] {
        let round = |v: f64| match dtype {
            DType::F32 => v as f32,
            _ => half::bf16::from_f64(v).to_f32(),
        };
        let input: Vec<f64> = w.iter().map(|&v| f64::from(round(f64::from(v)))).collect();
        // Axis 1: column j times g[j] (a projection with a norm gain folded in).
        let t = materialize(&along(1, "g", 4, dtype), &s).unwrap();
        assert_eq!((t.shape(), t.dtype()), (&[3usize, 4][..], dtype));
        let want: Vec<f32> = (0..12).map(|k| round(input[k] * f64::from(g[k % 4]))).collect();
        assert_eq!(floats(&t), want, "{dtype} axis 1");
        // Axis 0: row i times h[i].
        let t = materialize(&along(0, "h", 3, dtype), &s).unwrap();
        let want: Vec<f32> = (0..12).map(|k| round(input[k] * f64::from(h[k / 4]))).collect();
        assert_eq!(floats(&t), want, "{dtype} axis 0");
    }
    // Ill-typed: the scale's length is not the axis size, the axis is out of range.
    let err = materialize(&along(0, "g", 4, DType::F32), &s).unwrap_err();
    assert!(err.to_string().contains("recipe scale_along: the scale fp32[4] must be 1-D with 3 entries"), "{err}");
    let err = materialize(&along(2, "g", 4, DType::F32), &s).unwrap_err();
    assert!(err.to_string().contains("recipe scale_along: axis 2 out of range"), "{err}");
    // The textual form reads back as the same recipe, and names the projection's tensor first.
    let r = along(1, "g", 4, DType::BF16);
    let text = format!("module @m {{\n  weight @x : bf16[3, 4] = {r}\n}}\n");
    assert_eq!(
        r.to_string(),
        "scale_along(cast(checkpoint(\"w\" : fp32[3, 4]), dtype = bf16), checkpoint(\"g\" : fp32[4]), axis = 1)"
    );
    assert_eq!(module(&text).weights[0].recipe, r);
    let mut leaves = Vec::new();
    r.checkpoint_tensors(&mut leaves);
    assert_eq!(leaves, ["w", "g"]);
    let bad = text.replace(", checkpoint(\"g\" : fp32[4])", "");
    let err = parse_module(&bad).unwrap_err().to_string();
    assert!(err.contains("expects 2 input recipes, got 1"), "{err}");
}

#[test]
fn weight_cast_rounds_and_shape_mismatch_names_the_tensor() {
    let s = src(&[("w", &[3], &[1.0004, 1.00146484375, 3.0])]);
    let t = materialize(&Recipe::Cast { input: ckpt("w", DType::F32, &[3]), dtype: DType::F16 }, &s).unwrap();
    assert_eq!(t.dtype(), DType::F16);
    assert_eq!(floats(&t), vec![1.0, 1.001953125, 3.0]);
    let err = materialize(&ckpt("w", DType::F32, &[4]), &s).unwrap_err();
    assert!(matches!(&err, WeightError::Shape { tensor, .. } if tensor == "w"), "{err}");
    assert!(err.to_string().contains("\"w\""), "{err}");
    let err = materialize(&ckpt("nope", DType::F32, &[4]), &s).unwrap_err();
    assert!(matches!(&err, WeightError::NotFound { tensor } if tensor == "nope"), "{err}");
}

#[test]
fn rope_tables() {
    let s = Source::new();
    let cos =
        materialize(&Recipe::RopeCos { inv_freq: vec![1.0, 0.5], len: 3, scale: 1.0, dtype: DType::F32 }, &s).unwrap();
    let sin =
        materialize(&Recipe::RopeSin { inv_freq: vec![1.0, 0.5], len: 3, scale: 2.0, dtype: DType::F32 }, &s).unwrap();
    assert_eq!(cos.shape(), &[3, 4]);
    // f32(cos 1) = 0.5403022766113281, f32(cos 0.5) = 0.8775825500488281, f32(cos 2) = -0.416146844625473
    let (c1, c05, c2) = (0.5403022766113281, 0.8775825500488281, -0.416146844625473);
    assert_close(&floats(&cos), &[1.0, 1.0, 1.0, 1.0, c1, c05, c1, c05, c2, c1, c2, c1], 1e-7);
    // f32(sin 1) = 0.8414709568023682, f32(sin 0.5) = 0.4794255495071411, f32(sin 2) = 0.9092974066734314
    let (s1, s05, s2) = (0.8414709568023682, 0.4794255495071411, 0.9092974066734314);
    let want: Vec<f64> = [0.0, 0.0, 0.0, 0.0, s1, s05, s1, s05, s2, s1, s2, s1].iter().map(|v| 2.0 * v).collect();
    assert_close(&floats(&sin), &want, 1e-7);
}

struct Counting {
    inner: Source,
    reads: AtomicUsize,
}

impl TensorSource for Counting {
    fn read_f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>), WeightError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.read_f32(name)
    }
}

#[test]
fn weight_cache_materialises_once() {
    let m = module(
        r#"module @t {
          weight @w : bf16[2] = checkpoint("w" : bf16[2])
          func @f(%x: bf16[2]) -> (y: bf16[2]) {
            %a = weight @w : bf16[2]
            %b = weight @w : bf16[2]
            %s = add(%a, %b) : bf16[2]
            %y = add(%s, %x) : bf16[2]
            return %y
          }
        }"#,
    );
    let source = Arc::new(Counting { inner: src(&[("w", &[2], &[1.5, -0.25])]), reads: AtomicUsize::new(0) });
    let cache = WeightCache::new(&m, source.clone());
    let x = Tensor::from_f32(DType::BF16, &[2], vec![0.5, 0.5]).unwrap();
    for _ in 0..2 {
        let inputs = HashMap::from([("x".to_string(), x.clone())]);
        let r = evaluate(&m, "f", &inputs, &mut HashMap::new(), &cache).unwrap();
        assert_eq!(floats(out(&r, "y")), vec![3.5, 0.0]);
    }
    assert_eq!(source.reads.load(Ordering::SeqCst), 1);
    assert_eq!(cache.materialized(), 1);
}

#[test]
fn missing_weight_tensor_is_an_interp_error() {
    let m = module(
        r#"module @t {
          weight @w : fp32[2] = checkpoint("w" : fp32[2])
          func @f() -> (y: fp32[2]) {
            %y = weight @w : fp32[2]
            return %y
          }
        }"#,
    );
    let cache = WeightCache::new(&m, Arc::new(Source::new()));
    let err = evaluate(&m, "f", &HashMap::new(), &mut HashMap::new(), &cache).unwrap_err();
    assert!(matches!(&err, InterpError::Weight { weight, .. } if weight == "w"), "{err}");
}

// ---------------------------------------------------------------------------------------
// Driver

/// A one-layer "model" whose layer returns the prefix sum of the embeddings via the KV
/// state and the causal mask: h_p = Σ_{j ≤ p} emb[token_j]; logits = head · h_p.
const PREFIX_SUM: &str = r#"module @prefix {
  attributes {batch = 2, context = 4, layers = 1, vocab = 3}
  weight @emb : fp32[3, 2] = checkpoint("emb" : fp32[3, 2])
  weight @head : fp32[3, 2] = checkpoint("head" : fp32[3, 2])

  func @embed.infer(%input_ids: int32[1, 1]) -> (hidden_states: fp32[1, 1, 2]) {
    %t = weight @emb : fp32[3, 2]
    %h = gather(%t, %input_ids) {axis = 0} : fp32[1, 1, 2]
    return %h
  }
  func @embed.prefill(%input_ids: int32[1, 2]) -> (hidden_states: fp32[1, 2, 2]) {
    %t = weight @emb : fp32[3, 2]
    %h = gather(%t, %input_ids) {axis = 0} : fp32[1, 2, 2]
    return %h
  }
  func @layer0.infer(%hidden_states: fp32[1, 1, 2], %position_ids: int32[1], %causal_mask: fp32[1, 1, 1, 4], %current_pos: int32[1], %kv_cache_0: state<fp32[4, 2]>) -> (output_hidden_states: fp32[1, 1, 2]) {
    %c = read_state(%kv_cache_0) : fp32[4, 2]
    %h = reshape(%hidden_states) {shape = [1, 2]} : fp32[1, 2]
    %zero = const [0] : int32[1]
    %begin = concat(%current_pos, %zero) {axis = 0} : int32[2]
    %c2 = slice_update(%c, %h, %begin) : fp32[4, 2]
    write_state(%kv_cache_0, %c2)
    %m = reshape(%causal_mask) {shape = [1, 4]} : fp32[1, 4]
    %w = exp(%m) : fp32[1, 4]
    %o = matmul(%w, %c2) {transpose_a = false, transpose_b = false} : fp32[1, 2]
    %y = reshape(%o) {shape = [1, 1, 2]} : fp32[1, 1, 2]
    return %y
  }
  func @layer0.prefill(%hidden_states: fp32[1, 2, 2], %position_ids: int32[2], %causal_mask: fp32[1, 1, 2, 4], %current_pos: int32[1], %kv_cache_0: state<fp32[4, 2]>) -> (output_hidden_states: fp32[1, 2, 2]) {
    %c = read_state(%kv_cache_0) : fp32[4, 2]
    %h = reshape(%hidden_states) {shape = [2, 2]} : fp32[2, 2]
    %zero = const [0] : int32[1]
    %begin = concat(%current_pos, %zero) {axis = 0} : int32[2]
    %c2 = slice_update(%c, %h, %begin) : fp32[4, 2]
    write_state(%kv_cache_0, %c2)
    %m = reshape(%causal_mask) {shape = [2, 4]} : fp32[2, 4]
    %w = exp(%m) : fp32[2, 4]
    %o = matmul(%w, %c2) {transpose_a = false, transpose_b = false} : fp32[2, 2]
    %y = reshape(%o) {shape = [1, 2, 2]} : fp32[1, 2, 2]
    return %y
  }
  func @lm_head.infer(%hidden_states: fp32[1, 1, 2]) -> (logits: fp32[1, 1, 3]) {
    %w = weight @head : fp32[3, 2]
    %l = linear(%hidden_states, %w) : fp32[1, 1, 3]
    return %l
  }
  func @lm_head.prefill(%hidden_states: fp32[1, 2, 2]) -> (logits: fp32[1, 2, 3]) {
    %w = weight @head : fp32[3, 2]
    %l = linear(%hidden_states, %w) : fp32[1, 2, 3]
    return %l
  }
}"#;

fn prefix_session() -> Session {
    let weights =
        src(&[("emb", &[3, 2], &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0]), ("head", &[3, 2], &[1.0, 0.0, 0.0, 1.0, 0.5, 0.5])]);
    Session::new(module(PREFIX_SUM), Arc::new(weights)).unwrap()
}

#[test]
fn driver_teacher_forcing_and_prefill_windows_agree() {
    // Tokens 0, 1, 2: prefix sums [1,0], [1,1], [2,2] → logits (h0, h1, (h0+h1)/2).
    let want = vec![vec![1.0, 0.0, 0.5], vec![1.0, 1.0, 1.0], vec![2.0, 2.0, 2.0]];
    let mut s = prefix_session();
    assert_eq!(s.teacher_forced_logits(&[0, 1, 2], 2).unwrap(), want);
    // P = 3 takes two prefill windows (the second padded) and then decodes position 2.
    assert_eq!(s.teacher_forced_logits(&[0, 1, 2], 3).unwrap(), want);
    assert_eq!(s.teacher_forced_logits(&[0, 1, 2], 1).unwrap(), want);
    assert_eq!(s.prefill(&[0, 1, 2]).unwrap(), want[..2].to_vec());
}

#[test]
fn driver_greedy_generation() {
    let mut s = prefix_session();
    // Token 2 → h = [1,1] → logits [1,1,1]: a tie, the first max (0) wins. Then the sums are
    // [2,1] → [2,1,1.5] → 0 and [3,1] → [3,1,2] → 0.
    assert_eq!(s.generate_greedy(&[2], 3).unwrap(), vec![0, 0, 0]);
    assert_eq!(s.generate_greedy(&[1, 1], 2).unwrap(), vec![1, 1]);
    assert!(s.generate_greedy(&[2], 5).is_err(), "positions 0..4 exceed the context of 4");
}

#[test]
fn driver_rejects_bad_prompts() {
    let mut s = prefix_session();
    assert!(s.prefill(&[]).is_err());
    assert!(s.prefill(&[0, 3]).is_err());
    assert!(s.prefill(&[0, 0, 0, 0, 0]).is_err());
    assert!(s.decode_step(0, 4).is_err());
    assert!(s.teacher_forced_logits(&[0, 1], 0).is_err());
}
