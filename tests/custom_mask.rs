//! Custom attention patterns (a mask written as an expression over `q`, `k` and `n`)
//! through the whole stack: the fused kernel's plan, the kernels a run picks, the
//! trainer's losses, the validator's refusals and the experiment file. (Parsing,
//! evaluation and error columns have unit tests in `src/attention/expr.rs`; masks
//! against the built-in patterns are in `tests/patterns.rs`.)

use attnlab::attention::AttentionPattern;
use attnlab::config::{Experiment, RunPlan};
use attnlab::device::CpuBackend;
use attnlab::model::fused::AttentionPlan;
use attnlab::model::{KernelKind, Mixing, SparseMode};

mod common;
use common::attention::custom;
use common::experiments::{first_plan, tiny_recall};
use common::train::train_all;

/// An experiment file: a tiny recall task at `seq_len`, a small transformer whose
/// `[model]` table adds the lines `model` (layers, attention, causal), six CPU steps.
fn experiment(model: &str, seq_len: usize) -> String {
    tiny_recall("c", seq_len, model, "")
}

/// The one-layer run of `attention` (a TOML value) at `seq_len`, not causal.
fn plan(attention: &str, seq_len: usize) -> RunPlan {
    first_plan(&experiment(
        &format!("layers = 1\nattention = {attention}\n"),
        seq_len,
    ))
}

/// The validator's errors for `model` lines that should be refused.
fn refused(model: &str) -> String {
    let text = experiment(model, 16);
    match Experiment::from_toml(&text).expect("parses").plan() {
        Ok(_) => panic!("expected a refusal for:\n{text}"),
        Err(e) => e.to_string(),
    }
}

/// Two plans are the same tiles, keys and visibility bits, pass by pass.
fn assert_same_plan(a: &AttentionPlan, b: &AttentionPlan, what: &str) {
    assert_eq!(a.n(), b.n(), "{what}");
    assert_eq!(a.computed_pairs(), b.computed_pairs(), "{what}");
    assert_eq!(a.visible_pairs(), b.visible_pairs(), "{what}");
    assert_eq!(a.passes().len(), b.passes().len(), "{what}");
    for (p, (x, y)) in a.passes().iter().zip(b.passes()).enumerate() {
        assert_eq!(x.len(), y.len(), "{what}: pass {p}");
        for (t, (s, u)) in x.iter().zip(y).enumerate() {
            assert_eq!(s.queries, u.queries, "{what}: pass {p} tile {t}");
            assert_eq!(s.keys, u.keys, "{what}: pass {p} tile {t}");
            assert_eq!(s.bits, u.bits, "{what}: pass {p} tile {t}");
        }
    }
}

/// A custom mask equal to a built-in pattern is planned like it: the same mask, the
/// same tiles. (Strided and dilated patterns group queries by residue; a custom mask
/// is always planned in one pass of consecutive queries, so their plans differ even
/// where their masks agree.)
#[test]
fn a_custom_mask_equal_to_a_built_in_pattern_gets_the_identical_plan() {
    let twins = [
        (
            AttentionPattern::Local { window: 4 },
            custom("abs(q - k) <= 4"),
        ),
        (
            AttentionPattern::Block { size: 8 },
            custom("q / 8 == k / 8"),
        ),
        (
            AttentionPattern::Longformer {
                window: 3,
                global: 2,
            },
            custom("abs(q - k) <= 3 || q < 2 || k < 2"),
        ),
        (AttentionPattern::Dense, custom("0 == 0")),
    ];
    for (built_in, written) in twins {
        for n in [1, 8, 40, 64, 130] {
            for causal in [false, true] {
                let what = format!("{built_in} vs {written} n={n} causal={causal}");
                let mask = built_in.mask(n, causal, 3);
                let written_mask = written.mask(n, causal, 3);
                assert_eq!(written_mask, mask, "{what}");
                let a = AttentionPlan::new(&built_in, &mask).expect("covers the mask");
                let b = AttentionPlan::new(&written, &written_mask).expect("covers the mask");
                assert_same_plan(&a, &b, &what);
            }
        }
    }
}

/// A sparse custom mask is computed sparsely: the fused kernel plans only its tiles,
/// and burn's composed ops (wgpu, remote) gather the blocks its mask turns on;
/// neither falls back to dense attention.
#[test]
fn a_sparse_custom_mask_is_computed_sparsely() {
    let n = 512;
    let run = plan(
        "{ kind = \"custom\", mask = \"abs(q - k) <= 8 || k < 2\" }",
        n,
    );
    let mask = &run.layer_masks()[0];
    let device = CpuBackend::device().autodiff();
    let kernels = Mixing::for_plan(&run, &device, SparseMode::WherePaysOff);
    let layer = &kernels.layers()[0];
    match layer.kind {
        KernelKind::Fused => {
            let tiles = kernels.fused_plan(0).expect("a fused layer has a plan");
            assert_eq!(tiles.visible_pairs(), mask.attended_pairs());
            assert!(
                tiles.computed_pairs() * 3 < n * n,
                "{} of {} pairs computed",
                tiles.computed_pairs(),
                n * n
            );
        }
        // ATTNLAB_FUSED=0: the composed ops, as below.
        other => assert_eq!(other, KernelKind::BlockSparse, "{:?}", layer.reason),
    }
    let composed = Mixing::for_plan(&run, &device, SparseMode::Composed);
    let layer = &composed.layers()[0];
    assert_eq!(layer.kind, KernelKind::BlockSparse, "{:?}", layer.reason);
    assert!(!layer.fault, "{:?}", layer.reason);
}

/// The same seed, the same mask written two ways: the same losses, exactly. (This is
/// the only test in this file that trains, so no other test draws from burn's
/// process-wide generator meanwhile.)
#[test]
fn a_custom_mask_equal_to_a_built_in_pattern_trains_to_the_same_losses() {
    let losses = train_all(vec![
        plan("{ kind = \"local\", window = 4 }", 16),
        plan("{ kind = \"custom\", mask = \"abs(q - k) <= 4\" }", 16),
        plan("{ kind = \"block\", size = 8 }", 16),
        plan("{ kind = \"custom\", mask = \"q / 8 == k / 8\" }", 16),
    ]);
    assert_eq!(losses[0].len(), 6, "every step reported");
    assert_eq!(losses[0], losses[1], "local w=4 and abs(q - k) <= 4");
    assert_eq!(losses[2], losses[3], "block 8 and q / 8 == k / 8");
    assert_ne!(
        losses[0], losses[2],
        "two different masks train differently"
    );
}

#[test]
fn a_mask_that_leaves_a_query_without_keys_is_refused_naming_the_query() {
    let error = refused("layers = 1\nattention = { kind = \"custom\", mask = \"k > q + 100\" }\n");
    assert!(error.contains("model.attention.mask"), "{error}");
    assert!(error.contains("query 0 sees no key"), "{error}");
    // Every query sees the last key: fine, unless causality hides it.
    let last = "layers = 1\nattention = { kind = \"custom\", mask = \"k == n - 1\" }\n";
    Experiment::from_toml(&experiment(last, 16))
        .expect("parses")
        .plan()
        .expect("not causal: every query sees the last key");
    let error = refused(&format!("{last}causal = true\n"));
    assert!(error.contains("query 0 sees no key"), "{error}");
    assert!(error.contains("model.causal"), "{error}");
    // A later query, in one layer of several.
    let error = refused(
        "layers = 2\nlayer_attention = [\"dense\", { kind = \"custom\", mask = \"q < 5 && abs(q - k) <= 1\" }]\n",
    );
    assert!(error.contains("model.layer_attention[1].mask"), "{error}");
    assert!(error.contains("query 5 sees no key"), "{error}");
}

#[test]
fn a_broken_mask_is_refused_with_its_column() {
    let error =
        refused("layers = 1\nattention = { kind = \"custom\", mask = \"abs(q - k) <= 8 ||\" }\n");
    assert!(error.contains("model.attention.mask"), "{error}");
    assert!(
        error.contains("column 17: expected an operand after `||`"),
        "{error}"
    );
    let error = refused("layers = 1\nattention = { kind = \"custom\", mask = \"x < 3\" }\n");
    assert!(error.contains("column 1: unknown name `x`"), "{error}");
    let error = refused(
        "layers = 1\nattention = { kind = \"custom\", mask = \"k == q || q / (k - 3) > 100\" }\n",
    );
    assert!(
        error.contains("divides by zero at query 0, key 3"),
        "{error}"
    );
}

#[test]
fn a_custom_pattern_survives_the_experiment_file() {
    let text = experiment(
        "layers = 2\nattention = { kind = \"custom\", mask = \"abs(q - k) <= 8 || k < 2\" }\n",
        16,
    ) + "[[runs]]\nname = \"a\"\n[[runs]]\nname = \"b\"\n\
         model.layer_attention = [{ kind = \"custom\", mask = \"(q - k) % 4 == 0\" }, \"dense\"]\n";
    let e = Experiment::from_toml(&text).expect("parses");
    let written = e.to_toml().expect("writes");
    assert!(written.contains("custom"), "{written}");
    let again = Experiment::from_toml(&written).expect("reads back");
    assert_eq!(again, e);
    let plans = again.plan().expect("valid");
    assert_eq!(
        plans[0].settings().model.attention,
        custom("abs(q - k) <= 8 || k < 2")
    );
    assert_eq!(
        plans[1].settings().model.layer_patterns()[0],
        custom("(q - k) % 4 == 0")
    );
    // A bare name takes the default mask.
    let bare = experiment("layers = 1\nattention = \"custom\"\n", 16);
    let plans = Experiment::from_toml(&bare)
        .expect("parses")
        .plan()
        .expect("the default mask is valid");
    assert_eq!(
        plans[0].settings().model.attention,
        custom(attnlab::attention::DEFAULT_MASK)
    );
}
