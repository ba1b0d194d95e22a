//! Property: for randomly built (valid) modules, `print(parse(print(m))) == print(m)` and
//! `parse(print(m)) == m`; the verifier accepts what the builder produced.

use anemllc::ir::{
    AttrValue, ConstData, DType, FunctionBuilder, GeluMode, Module, Op, Recipe, TensorType, Weight, parse_module,
    print_module, verify_module,
};
use proptest::prelude::*;

/// One step of a random program: which op, on which earlier value, with a few random knobs.
#[derive(Clone, Debug)]
struct Step {
    kind: u8,
    pick: usize,
    other: usize,
    knob: i64,
    value: f64,
}

fn step() -> impl Strategy<Value = Step> {
    (0u8..20, 0usize..64, 0usize..64, -3i64..4, prop_oneof![any::<f64>(), Just(1e-5), Just(-0.0), Just(f64::INFINITY)])
        .prop_map(|(kind, pick, other, knob, value)| Step { kind, pick, other, knob, value })
}

fn build(shapes: Vec<Vec<usize>>, steps: Vec<Step>, name: String) -> Module {
    let mut m = Module::new(name);
    m.attrs.insert("seed_note".into(), AttrValue::Str("quote \" and \\ and \n newline".into()));
    m.attrs.insert("floats".into(), AttrValue::Floats(vec![0.1, -2.5e-8, 3.0]));
    m.weights.push(Weight {
        name: "w.0-a".into(),
        ty: TensorType::new(DType::F16, vec![2, 3]),
        recipe: Recipe::Cast {
            input: Box::new(Recipe::Checkpoint { tensor: "t".into(), ty: TensorType::new(DType::BF16, vec![2, 3]) }),
            dtype: DType::F16,
        },
    });
    let module_snapshot = m.clone();
    let mut b = FunctionBuilder::new(&module_snapshot, "f.main");
    let mut values = Vec::new();
    for (i, s) in shapes.iter().enumerate() {
        values.push(b.input(&format!("in{i}"), TensorType::new(DType::F32, s.clone())));
    }
    values.push(b.weight("w.0-a", "w").unwrap());
    for st in steps {
        let x = values[st.pick % values.len()];
        let y = values[st.other % values.len()];
        let tx = b.tensor_ty(x).clone();
        let rank = tx.rank() as i64;
        let axis = if rank == 0 { 0 } else { st.knob.rem_euclid(rank) };
        let op = match st.kind {
            0 => Op::Add,
            1 => Op::Mul,
            2 => Op::Sub,
            3 => Op::Neg,
            4 => Op::Exp,
            5 => Op::Silu,
            6 => Op::Gelu { mode: if st.knob > 0 { GeluMode::Tanh } else { GeluMode::Exact } },
            7 => Op::Softmax { axis },
            8 => Op::ReduceMean { axes: vec![axis], keep_dims: st.knob % 2 == 0 },
            9 => Op::Transpose { perm: (0..tx.rank()).rev().collect() },
            10 => Op::Reshape { shape: vec![tx.numel()] },
            11 => Op::Concat { axis },
            12 => {
                Op::Split { axis, sizes: vec![1, tx.shape.get(axis as usize).copied().unwrap_or(1).saturating_sub(1)] }
            }
            13 => Op::LayerNorm { axes: vec![axis], eps: st.value.abs().min(1.0) },
            14 => Op::ExpandDims { axes: vec![0] },
            15 => Op::Cast { dtype: DType::F16 },
            16 => Op::Const { ty: TensorType::new(DType::F32, vec![]), data: ConstData::Floats(vec![st.value]) },
            17 => Op::Maximum,
            18 => Op::Slice { begin: vec![0; tx.rank()], end: tx.shape.clone() },
            _ => Op::Argmax { axis, keep_dims: true },
        };
        let operands: Vec<_> = match &op {
            Op::Add | Op::Mul | Op::Sub | Op::Maximum => vec![x, y],
            Op::Concat { .. } => vec![x, x],
            Op::Const { .. } => vec![],
            _ => vec![x],
        };
        // Random steps may violate a typing rule; the builder refuses those, which is fine.
        if let Ok(results) = b.op_multi(op, &operands, &format!("v{}", st.kind)) {
            values.extend(results.into_iter().filter(|&r| b.tensor_ty(r).dtype.is_float()));
        }
    }
    let last = *values.last().unwrap();
    b.output("out", last);
    b.output("first", values[0]);
    m.functions.push(b.finish());
    m
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn print_parse_round_trip(
        shapes in prop::collection::vec(prop::collection::vec(1usize..4, 0..4), 1..4),
        steps in prop::collection::vec(step(), 0..40),
        name in "[a-z][a-z0-9_.-]{0,8}",
    ) {
        let m = build(shapes, steps, name);
        verify_module(&m).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let printed = print_module(&m);
        let parsed = parse_module(&printed).map_err(|e| TestCaseError::fail(format!("{e}\n{printed}")))?;
        verify_module(&parsed).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(print_module(&parsed), printed.clone());
        // NaN-free modules also compare equal structurally.
        if !printed.contains("nan") {
            prop_assert_eq!(parsed, m);
        }
    }
}
