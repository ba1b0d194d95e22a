//! The compiled execution plan (`interp::exec`, issue #16): a plan run many times gives the
//! same bits as `evaluate`, reuses its buffers from the second call on, leaves the states
//! untouched by a failing call, and reports bad inputs and ill-typed ops as `evaluate` does.

use std::collections::HashMap;
use std::sync::Arc;

use anemllc::interp::{BufferPool, ExecPlan, InterpError, Tensor, evaluate};
use anemllc::ir::{Module, parse_module, verify_module};
use anemllc::weights::WeightCache;

type Source = HashMap<String, (Vec<usize>, Vec<f32>)>;

/// A KV-cache-like step: the state is read, updated at `pos` with `x · g + x` (fp16, so
/// every op rounds), written back, and attended over; a weight and elementwise ops in
/// between, and a `gather` that fails for an out-of-range `i` after the state write.
const STEP: &str = "module @t {
  weight @g : fp32[1, 4] = checkpoint(\"g\" : fp32[1, 4])
  func @f(%cache: state<fp16[3, 4]>, %x: fp16[1, 4], %pos: int32[1], %i: int32[1]) -> (y: fp16[1, 3], s: fp16[1, 4]) {
    %c = read_state(%cache) : fp16[3, 4]
    %gw = weight @g : fp32[1, 4]
    %g = cast(%gw) {dtype = fp16} : fp16[1, 4]
    %xg = mul(%x, %g) : fp16[1, 4]
    %u = add(%xg, %x) : fp16[1, 4]
    %e = exp(%u) : fp16[1, 4]
    %s = silu(%e) : fp16[1, 4]
    %zero = const [0] : int32[1]
    %begin = concat(%pos, %zero) {axis = 0} : int32[2]
    %c2 = slice_update(%c, %u, %begin) : fp16[3, 4]
    write_state(%cache, %c2)
    %y = matmul(%s, %c2) {transpose_a = false, transpose_b = true} : fp16[1, 3]
    %t = const [1.0, 2.0] : fp32[2]
    %check = gather(%t, %i) {axis = 0} : fp32[1]
    return %y, %s
  }
}";

fn module(src: &str) -> Module {
    let m = parse_module(src).unwrap_or_else(|e| panic!("parse: {e}"));
    verify_module(&m).unwrap_or_else(|e| panic!("verify: {e}"));
    m
}

fn cache(m: &Module) -> WeightCache {
    let source: Source = HashMap::from([("g".to_string(), (vec![1, 4], vec![0.5, -1.25, 3.0, 0.1]))]);
    WeightCache::new(m, Arc::new(source))
}

fn fp16(shape: &[usize], v: &[f32]) -> Tensor {
    Tensor::from_f32(anemllc::ir::DType::F16, shape, v.to_vec()).unwrap()
}

fn inputs(step: usize, i: i64) -> HashMap<String, Tensor> {
    let x: Vec<f32> = (0..4).map(|k| 0.1 * (step * 4 + k) as f32 - 0.7).collect();
    HashMap::from([
        ("x".to_string(), fp16(&[1, 4], &x)),
        ("pos".to_string(), Tensor::i32(&[1], vec![step as i64 % 3]).unwrap()),
        ("i".to_string(), Tensor::i32(&[1], vec![i]).unwrap()),
    ])
}

fn fresh_states() -> HashMap<String, Tensor> {
    HashMap::from([("cache".to_string(), fp16(&[3, 4], &[0.0; 12]))])
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.as_f32().expect("float").iter().map(|v| v.to_bits()).collect()
}

fn all_bits(outputs: &HashMap<String, Tensor>) -> Vec<(String, Vec<u32>)> {
    let mut v: Vec<_> = outputs.iter().map(|(k, t)| (k.clone(), bits(t))).collect();
    v.sort();
    v
}

#[test]
fn a_plan_run_repeatedly_gives_the_bits_of_evaluate_and_reuses_buffers() {
    let m = module(STEP);
    let weights = cache(&m);
    let mut plan = ExecPlan::compile(&m, "f").unwrap();
    let mut pool = BufferPool::new();
    let (mut by_eval, mut by_plan) = (fresh_states(), fresh_states());
    let mut per_call = Vec::new();
    for step in 0..5 {
        let want = evaluate(&m, "f", &inputs(step, 1), &mut by_eval, &weights).unwrap();
        let got = plan.run(&m, &inputs(step, 1), &mut by_plan, &weights, None, &mut pool).unwrap();
        assert_eq!(all_bits(&got), all_bits(&want), "step {step}");
        assert_eq!(bits(&by_plan["cache"]), bits(&by_eval["cache"]), "state after step {step}");
        assert!(bits(&by_plan["cache"]).iter().any(|&b| b != 0), "the state was written");
        per_call.push(pool.stats());
    }
    // From the second call on, buffers released by the previous call are drawn again, and
    // fewer fresh ones are allocated than by the first call.
    let (first, second) = (per_call[0], per_call[1]);
    assert!(second.hits > first.hits, "{per_call:?}");
    assert!(second.misses - first.misses < first.misses, "{per_call:?}");

    // The same inputs and state again: the same bits again.
    let snapshot = by_plan.clone();
    let first = plan.run(&m, &inputs(9, 1), &mut by_plan, &weights, None, &mut pool).unwrap();
    let mut again = snapshot;
    let second = plan.run(&m, &inputs(9, 1), &mut again, &weights, None, &mut pool).unwrap();
    assert_eq!(all_bits(&first), all_bits(&second));
    assert_eq!(bits(&by_plan["cache"]), bits(&again["cache"]));
}

#[test]
fn a_failing_call_leaves_the_states_as_they_were() {
    let m = module(STEP);
    let weights = cache(&m);
    let mut plan = ExecPlan::compile(&m, "f").unwrap();
    let mut pool = BufferPool::new();
    let mut states = fresh_states();
    plan.run(&m, &inputs(0, 0), &mut states, &weights, None, &mut pool).unwrap();
    let before = bits(&states["cache"]);
    // The gather after the write fails: nothing is committed, by evaluate or by the plan.
    let err = plan.run(&m, &inputs(1, 7), &mut states, &weights, None, &mut pool).unwrap_err();
    assert!(matches!(err, InterpError::Op { op: "gather", index: 13, .. }), "{err}");
    assert_eq!(bits(&states["cache"]), before);
    let mut by_eval = states.clone();
    let want = evaluate(&m, "f", &inputs(1, 7), &mut by_eval, &weights).unwrap_err();
    assert_eq!(err.to_string(), want.to_string());
    // And the plan still runs correctly afterwards (its buffers were not corrupted).
    let got = plan.run(&m, &inputs(1, 0), &mut states, &weights, None, &mut pool).unwrap();
    let want = evaluate(&m, "f", &inputs(1, 0), &mut by_eval, &weights).unwrap();
    assert_eq!(all_bits(&got), all_bits(&want));
    assert_eq!(bits(&states["cache"]), bits(&by_eval["cache"]));
}

#[test]
fn bad_inputs_give_the_errors_of_evaluate() {
    let m = module(STEP);
    let weights = cache(&m);
    let mut plan = ExecPlan::compile(&m, "f").unwrap();
    let mut pool = BufferPool::new();
    let mut wrong_shape = inputs(0, 0);
    wrong_shape.insert("x".into(), fp16(&[1, 3], &[0.0; 3]));
    let mut missing = inputs(0, 0);
    missing.remove("pos");
    let mut unknown = inputs(0, 0);
    unknown.insert("z".into(), fp16(&[1], &[0.0]));
    let mut state_as_input = inputs(0, 0);
    state_as_input.insert("cache".into(), fp16(&[3, 4], &[0.0; 12]));
    let cases = [
        (wrong_shape, fresh_states(), "x"),
        (missing, fresh_states(), "pos"),
        (unknown, fresh_states(), "z"),
        (state_as_input, fresh_states(), "cache"),
        (inputs(0, 0), HashMap::new(), "cache"),
        (inputs(0, 0), HashMap::from([("cache".to_string(), fp16(&[3, 4, 1], &[0.0; 12]))]), "cache"),
    ];
    for (given, states, name) in cases {
        let mut a = states.clone();
        let mut b = states.clone();
        let got = plan.run(&m, &given, &mut a, &weights, None, &mut pool).unwrap_err();
        let want = evaluate(&m, "f", &given, &mut b, &weights).unwrap_err();
        assert!(matches!(&got, InterpError::Input { input, .. } if input == name), "{got}");
        assert_eq!(got.to_string(), want.to_string());
        assert_eq!(a, states, "states untouched");
    }
}

#[test]
fn an_ill_typed_op_is_rejected_at_compile_time_as_evaluate_rejects_it() {
    // Not verified (verification would reject it): `add` of fp32[2] and fp32[3].
    let src = "module @t {
      func @f(%x: fp32[2], %z: fp32[3]) -> (y: fp32[2]) {
        %n = neg(%x) : fp32[2]
        %y = add(%n, %z) : fp32[2]
        return %y
      }
    }";
    let m = parse_module(src).unwrap();
    let err = ExecPlan::compile(&m, "f").err().expect("compile must fail");
    assert!(matches!(err, InterpError::Op { op: "add", index: 1, .. }), "{err}");
    let weights = WeightCache::new(&m, Arc::new(Source::new()));
    let given = HashMap::from([
        ("x".to_string(), Tensor::f32(&[2], vec![1.0, 2.0]).unwrap()),
        ("z".to_string(), Tensor::f32(&[3], vec![1.0, 2.0, 3.0]).unwrap()),
    ]);
    let want = evaluate(&m, "f", &given, &mut HashMap::new(), &weights).unwrap_err();
    assert_eq!(err.to_string(), want.to_string());
    assert!(matches!(ExecPlan::compile(&m, "g"), Err(InterpError::UnknownFunction { .. })));
}

#[test]
fn a_plan_run_on_another_module_is_an_error() {
    let m = module(STEP);
    let other = module(
        "module @o {
          func @f(%x: fp32[2]) -> (y: fp32[2]) {
            %y = neg(%x) : fp32[2]
            return %y
          }
        }",
    );
    let weights = cache(&m);
    let mut plan = ExecPlan::compile(&m, "f").unwrap();
    let given = HashMap::from([("x".to_string(), Tensor::f32(&[2], vec![1.0, 2.0]).unwrap())]);
    let err = plan.run(&other, &given, &mut HashMap::new(), &weights, None, &mut BufferPool::new()).unwrap_err();
    assert!(matches!(err, InterpError::Driver(_)), "{err}");
}

/// The one-layer prefix-sum model of `tests/interp_ops.rs` (a copy): h_p = Σ_{j ≤ p}
/// emb[token_j] through the KV state; logits = head · h_p.
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

#[test]
fn a_session_compiles_each_function_once_and_reuses_buffers() {
    let source: Source = HashMap::from([
        ("emb".to_string(), (vec![3, 2], vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0])),
        ("head".to_string(), (vec![3, 2], vec![1.0, 0.0, 0.0, 1.0, 0.5, 0.5])),
    ]);
    let mut s = anemllc::interp::Session::new(module(PREFIX_SUM), Arc::new(source)).unwrap();
    // Values as in `driver_greedy_generation` of tests/interp_ops.rs.
    assert_eq!(s.generate_greedy(&[2], 3).unwrap(), vec![0, 0, 0]);
    let after_first = s.pool_stats();
    assert!(after_first.hits > 0, "{after_first:?}");
    assert_eq!(s.generate_greedy(&[1, 1], 2).unwrap(), vec![1, 1]);
    assert_eq!(s.generate_greedy(&[2], 3).unwrap(), vec![0, 0, 0]);
    assert!(s.pool_stats().hits > after_first.hits);
    assert!(s.generate_greedy(&[2], 5).is_err(), "positions 0..4 exceed the context of 4");
}

/// The state is updated twice before it is written, the old content is read again after
/// the first update (so that update must not happen in place), and a `gather` between the
/// updates and the write can fail.
const TWO_UPDATES: &str = "module @t {
  func @f(%cache: state<fp32[3, 2]>, %x: fp32[1, 2], %pos: int32[2], %i: int32[1]) -> (old: fp32[1, 2], new: fp32[3, 2]) {
    %c = read_state(%cache) : fp32[3, 2]
    %c2 = slice_update(%c, %x, %pos) : fp32[3, 2]
    %old = slice(%c) {begin = [0, 0], end = [1, 2]} : fp32[1, 2]
    %x2 = add(%x, %x) : fp32[1, 2]
    %c3 = slice_update(%c2, %x2, %pos) : fp32[3, 2]
    %t = const [1.0, 2.0] : fp32[2]
    %check = gather(%t, %i) {axis = 0} : fp32[1]
    write_state(%cache, %c3)
    %new = read_state(%cache) : fp32[3, 2]
    return %old, %new
  }
}";

#[test]
fn in_place_state_updates_keep_old_readers_and_roll_back() {
    let m = module(TWO_UPDATES);
    let weights = WeightCache::new(&m, Arc::new(Source::new()));
    let mut plan = ExecPlan::compile(&m, "f").unwrap();
    let mut pool = BufferPool::new();
    let given = |row: i64, x: f32, i: i64| {
        HashMap::from([
            ("x".to_string(), Tensor::f32(&[1, 2], vec![x, -x]).unwrap()),
            ("pos".to_string(), Tensor::i32(&[2], vec![row, 0]).unwrap()),
            ("i".to_string(), Tensor::i32(&[1], vec![i]).unwrap()),
        ])
    };
    let start = Tensor::f32(&[3, 2], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
    let mut states = HashMap::from([("cache".to_string(), start.clone())]);
    let r = plan.run(&m, &given(0, 7.0, 0), &mut states, &weights, None, &mut pool).unwrap();
    assert_eq!(r["old"].to_f32_vec(), vec![1.0, 2.0], "the old content, read after the update");
    assert_eq!(r["new"].to_f32_vec(), vec![14.0, -14.0, 3.0, 4.0, 5.0, 6.0]);
    assert_eq!(states["cache"], r["new"]);

    // Fails after both updates, before the write: the state is exactly as before the call.
    let before = states.clone();
    let err = plan.run(&m, &given(2, 9.0, 5), &mut states, &weights, None, &mut pool).unwrap_err();
    assert!(matches!(err, InterpError::Op { op: "gather", .. }), "{err}");
    assert_eq!(states, before);
    // A bad update (out of range) fails without touching the state either.
    let err = plan.run(&m, &given(3, 9.0, 0), &mut states, &weights, None, &mut pool).unwrap_err();
    assert!(matches!(err, InterpError::Op { op: "slice_update", .. }), "{err}");
    assert_eq!(states, before);

    // Then a good call: the same as evaluate on the same state.
    let mut by_eval = states.clone();
    let got = plan.run(&m, &given(2, 0.5, 1), &mut states, &weights, None, &mut pool).unwrap();
    let want = evaluate(&m, "f", &given(2, 0.5, 1), &mut by_eval, &weights).unwrap();
    assert_eq!(all_bits(&got), all_bits(&want));
    assert_eq!(states, by_eval);
    assert_eq!(states["cache"].to_f32_vec(), vec![14.0, -14.0, 3.0, 4.0, 1.0, -1.0]);
}

#[test]
fn a_state_updated_then_written_keeps_its_buffer() {
    // In STEP the cache is read, updated at one row and written back: the update happens in
    // place on the caller's tensor (no copy of the cache), on success and after a rollback.
    let m = module(STEP);
    let weights = cache(&m);
    let mut plan = ExecPlan::compile(&m, "f").unwrap();
    let mut pool = BufferPool::new();
    let mut states = fresh_states();
    let buffer = |s: &HashMap<String, Tensor>| s["cache"].as_f32().unwrap().as_ptr();
    let at_start = buffer(&states);
    for step in 0..3 {
        plan.run(&m, &inputs(step, 0), &mut states, &weights, None, &mut pool).unwrap();
        assert_eq!(buffer(&states), at_start, "step {step}");
    }
    let before = states.clone();
    plan.run(&m, &inputs(3, 9), &mut states, &weights, None, &mut pool).unwrap_err();
    assert_eq!(states, before);
    assert_eq!(buffer(&states), at_start, "rolled back in place");
}
