//! The block-sparse computation equals the masked-dense reference, forward and
//! backward, for every pattern, on random inputs and shapes with ragged ends; and its
//! layouts compute far fewer pairs than dense.

use attnlab::attention::{AttentionPattern, SparseLayout};
use attnlab::device::CpuBackend;
use attnlab::model::{BlockSparseAttention, SparseUnavailable, attention_output, masked_attention};
use burn::tensor::{Bool, Distribution, Tensor};
use proptest::prelude::*;

mod common;
use common::attention::{Bounds, hidden, valid_pattern};
use common::float::{Tolerance, assert_close, values};

/// The patterns that allow any length, with windows of a few blocks.
const PATTERNS: Bounds = Bounds {
    local: 20,
    stride: 12,
    longformer: 10,
    on_blocks: false,
};

/// Output and input gradients of a fast computation against the masked-dense
/// reference, on random inputs.
fn compare(
    n: usize,
    hidden: &Tensor<4, Bool>,
    fast: impl Fn(Tensor<4>, Tensor<4>, Tensor<4>) -> Tensor<4>,
    tag: &str,
) {
    let device = CpuBackend::device().autodiff();
    let shape = [2, 2, n, 8];
    let inputs: Vec<Tensor<4>> = (0..3)
        .map(|_| Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.5), &device))
        .collect();
    let weight = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
    let run = |use_fast: bool| {
        let [q, k, v] = [0, 1, 2].map(|i| inputs[i].clone().detach().require_grad());
        let out = if use_fast {
            fast(q.clone(), k.clone(), v.clone())
        } else {
            masked_attention(q.clone(), k.clone(), v.clone(), Some(hidden)).0
        };
        let grads = (out.clone() * weight.clone()).sum().backward();
        let g = |t: &Tensor<4>| values(t.grad(&grads).expect("gradient"));
        (values(out), g(&q), g(&k), g(&v))
    };
    let (o1, q1, k1, v1) = run(true);
    let (o2, q2, k2, v2) = run(false);
    assert_close(&o1, &o2, Tolerance::BLOCK_SPARSE, &format!("{tag} output"));
    assert_close(&q1, &q2, Tolerance::BLOCK_SPARSE, &format!("{tag} dq"));
    assert_close(&k1, &k2, Tolerance::BLOCK_SPARSE, &format!("{tag} dk"));
    assert_close(&v1, &v2, Tolerance::BLOCK_SPARSE, &format!("{tag} dv"));
}

/// The block-sparse computation of `pattern` (and the dense training path with its
/// mask) against the reference.
fn check(pattern: &AttentionPattern, n: usize, causal: bool, seed: u64) {
    let device = CpuBackend::device().autodiff();
    device.seed(seed);
    let mask = pattern.mask(n, causal, seed);
    let hidden = hidden(&mask, &device);
    let tag = format!("{pattern} n={n} causal={causal}");
    compare(
        n,
        &hidden,
        |q, k, v| attention_output(q, k, v, Some(&hidden)),
        &format!("{tag} (dense path)"),
    );
    let sparse = match BlockSparseAttention::new(pattern, &mask, seed, &device) {
        Ok(sparse) => sparse,
        Err(SparseUnavailable::NoLayout) => {
            // Nothing to gain: the model uses the dense path, checked above.
            assert!(SparseLayout::of(pattern, n, seed).is_none());
            return;
        }
        Err(e) => panic!("{pattern} n={n}: {e}"),
    };
    compare(n, &hidden, |q, k, v| sparse.forward(q, k, v), &tag);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Patterns that allow any length, including ragged ends (n not a multiple of the
    /// block).
    #[test]
    fn sparse_equals_reference_any_length(pattern in valid_pattern(PATTERNS), n in 9usize..90, causal: bool, seed in 0u64..100) {
        check(&pattern, n, causal, seed);
    }

    /// Patterns on whole blocks (their block must divide n).
    #[test]
    fn sparse_equals_reference_blocks(
        block in 2usize..9,
        blocks in 2usize..9,
        kind in 0usize..3,
        causal: bool,
        seed in 0u64..100,
    ) {
        let n = block * blocks;
        let pattern = match kind {
            0 => AttentionPattern::Block { size: block },
            1 => AttentionPattern::Fixed { block, summary: 1 + seed as usize % block },
            _ => AttentionPattern::BigBird {
                block,
                window_blocks: 1 + 2 * (seed as usize % 2),
                global_blocks: seed as usize % 2,
                random_blocks: seed as usize % 3,
            },
        };
        check(&pattern, n, causal, seed);
    }
}

#[test]
fn the_benchmark_patterns_check_out_at_a_realistic_size() {
    for pattern in [
        AttentionPattern::Local { window: 64 },
        AttentionPattern::Block { size: 64 },
        AttentionPattern::Strided { stride: 16 },
        AttentionPattern::Longformer {
            window: 32,
            global: 4,
        },
        AttentionPattern::BigBird {
            block: 32,
            window_blocks: 3,
            global_blocks: 1,
            random_blocks: 2,
        },
    ] {
        check(&pattern, 256, false, 3);
    }
}

#[test]
fn layouts_compute_like_n_times_w_not_n_squared() {
    let n = 4096;
    let pairs = |p: AttentionPattern| SparseLayout::of(&p, n, 1).expect("sparse").computed_pairs();
    // Local window 64 in blocks of 64: 3 key blocks per query block.
    assert_eq!(pairs(AttentionPattern::Local { window: 64 }), n * 3 * 64);
    assert_eq!(pairs(AttentionPattern::Block { size: 64 }), n * 64);
    // Doubling n doubles the work of local attention (dense would quadruple).
    let twice = SparseLayout::of(&AttentionPattern::Local { window: 64 }, 2 * n, 1)
        .expect("sparse")
        .computed_pairs();
    assert_eq!(twice, 2 * n * 3 * 64);
    // Strided 64: a local band plus n / 64 keys per query (reshape-transpose).
    assert!(pairs(AttentionPattern::Strided { stride: 64 }) <= n * (3 * 64 + n / 64));
    assert!(
        pairs(AttentionPattern::Longformer {
            window: 64,
            global: 4
        }) < n * n / 10
    );
    assert!(SparseLayout::of(&AttentionPattern::Dense, n, 1).is_none());
}

/// A custom mask gets blocks read off its mask: the block-sparse computation equals
/// the reference on ragged lengths, and a local mask costs like local attention.
#[test]
fn custom_masks_are_computed_from_their_mask() {
    for mask in [
        "abs(q - k) <= 5 || k < 2",
        "q / 8 == k / 8",
        "(q - k) % 7 == 0",
        "abs(q - k) <= 3 || (q + k) % 11 == 0",
    ] {
        let pattern = AttentionPattern::Custom { mask: mask.into() };
        for n in [40, 96, 200] {
            for causal in [false, true] {
                check(&pattern, n, causal, 1);
            }
        }
    }
    let n = 4096;
    let written = AttentionPattern::Custom {
        mask: "abs(q - k) <= 64".into(),
    };
    let layout = SparseLayout::of(&written, n, 1).expect("sparse");
    assert!(
        layout.computed_pairs() <= n * 3 * 64,
        "{}",
        layout.computed_pairs()
    );
    let empty = AttentionPattern::Custom {
        mask: "k > n".into(),
    };
    assert!(
        SparseLayout::of(&empty, 64, 1).is_none(),
        "nothing to compute"
    );
}
