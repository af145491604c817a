//! Attention weights are distributions over the visible keys and exactly zero elsewhere,
//! for every pattern, computed by the model's real attention function on the CPU backend.

use attnlab::attention::AttentionPattern;
use attnlab::device::CpuBackend;
use attnlab::model::masked_attention;
use burn::tensor::{Distribution, Tensor};

mod common;
use common::attention::hidden;

fn patterns() -> Vec<AttentionPattern> {
    vec![
        AttentionPattern::Dense,
        AttentionPattern::Local { window: 3 },
        AttentionPattern::Dilated {
            window: 2,
            dilation: 3,
        },
        AttentionPattern::Strided { stride: 4 },
        AttentionPattern::Fixed {
            block: 8,
            summary: 2,
        },
        AttentionPattern::Block { size: 8 },
        AttentionPattern::Longformer {
            window: 2,
            global: 3,
        },
        AttentionPattern::BigBird {
            block: 4,
            window_blocks: 3,
            global_blocks: 1,
            random_blocks: 1,
        },
    ]
}

#[test]
fn rows_are_distributions_over_visible_keys() {
    let device = CpuBackend::device();
    let (batch, heads, n, d) = (2, 3, 32, 8);
    for causal in [false, true] {
        for pattern in patterns() {
            let mask = pattern.mask(n, causal, 11);
            let blocked = hidden(&mask, &device);
            let shape = [batch, heads, n, d];
            let q = Tensor::<4>::random(shape, Distribution::Normal(0.0, 2.0), &device);
            let k = Tensor::<4>::random(shape, Distribution::Normal(0.0, 2.0), &device);
            let v = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
            let dense_all = pattern == AttentionPattern::Dense && !causal;
            let (out, weights) = masked_attention(q, k, v, (!dense_all).then_some(&blocked));
            assert_eq!(out.dims(), shape);
            let w: Vec<f32> = weights
                .into_data()
                .try_to_vec::<f32>()
                .expect("f32 weights");
            assert_eq!(w.len(), batch * heads * n * n);
            for (r, row) in w.chunks(n).enumerate() {
                let i = r % n;
                let sum: f32 = row.iter().sum();
                assert!(
                    (sum - 1.0).abs() < 1e-4,
                    "{pattern} causal={causal}: row {i} sums to {sum}"
                );
                for (j, &x) in row.iter().enumerate() {
                    if mask.get(i, j) {
                        assert!(
                            x > 0.0 && x.is_finite(),
                            "{pattern}: visible ({i}, {j}) has weight {x}"
                        );
                    } else {
                        assert_eq!(
                            x, 0.0,
                            "{pattern} causal={causal}: hidden ({i}, {j}) has weight {x}"
                        );
                    }
                }
            }
        }
    }
}
