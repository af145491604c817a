//! The head statistics and the rollout on random attention maps: every statistic
//! stays within its bounds, and the rollout's rows stay distributions that never reach
//! past what the masks compose.

use attnlab::attention::{
    AttentionPattern, StatsContext, compose, head_stats, rollout, rollout_row,
};
use proptest::prelude::*;

/// A random row-stochastic map over `mask` (weights only where it allows).
fn masked_map(n: usize, pattern: &AttentionPattern, raw: &[f32]) -> Vec<f32> {
    let mask = pattern.mask(n, false, 3);
    let mut map = vec![0.0f32; n * n];
    for i in 0..n {
        let mut sum = 0.0;
        for j in 0..n {
            if mask.get(i, j) {
                let w = raw[(i * n + j) % raw.len()].abs() + 1e-3;
                map[i * n + j] = w;
                sum += w;
            }
        }
        for j in 0..n {
            map[i * n + j] /= sum;
        }
    }
    map
}

fn pattern(kind: u8, w: usize) -> AttentionPattern {
    match kind % 3 {
        0 => AttentionPattern::Dense,
        1 => AttentionPattern::Local { window: w },
        _ => AttentionPattern::Longformer {
            window: w,
            global: 2,
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn statistics_stay_within_their_bounds(
        n in 2usize..40,
        kind in 0u8..3,
        w in 1usize..6,
        raw in prop::collection::vec(0.0f32..1.0, 1..200),
        tokens in prop::collection::vec(0i64..5, 40),
    ) {
        let p = pattern(kind, w);
        let map = masked_map(n, &p, &raw);
        let mask = p.mask(n, false, 3);
        let ctx = StatsContext::new(&tokens[..n], &[(n - 1, 0)], n, Some(&p), Some(mask));
        let s = head_stats(&map, n, &ctx);
        prop_assert!(s.mean_distance >= 0.0 && s.mean_distance <= (n - 1) as f64 + 1e-6);
        prop_assert!(s.entropy >= -1e-6 && s.entropy <= (n as f64).ln() + 1e-4);
        prop_assert!((0.0..=1.0 + 1e-6).contains(&s.previous_token));
        for v in [s.dependency_mass, s.induction, s.global_mass, s.mask_usage].into_iter().flatten() {
            prop_assert!((-1e-6..=1.0 + 1e-4).contains(&v), "{s:?}");
        }
        prop_assert_eq!(s.global_mass.is_some(), kind % 3 == 2);
    }

    #[test]
    fn rollout_rows_are_distributions_within_the_composed_reach(
        n in 2usize..32,
        kind in 0u8..3,
        w in 1usize..5,
        layers in 1usize..4,
        raw in prop::collection::vec(0.0f32..1.0, 1..200),
        query in 0usize..32,
    ) {
        let p = pattern(kind, w);
        let maps: Vec<Vec<f32>> = (0..layers).map(|l| masked_map(n, &p, &raw[l.min(raw.len() - 1)..])).collect();
        let full = rollout(&maps, n);
        let q = query % n;
        let rows = rollout_row(&maps, n, q);
        let masks: Vec<_> = (0..layers).map(|_| p.mask(n, false, 3)).collect();
        for l in 0..layers {
            let row = &rows[l];
            let sum: f32 = row.iter().sum();
            prop_assert!((sum - 1.0).abs() < 1e-3, "layer {l} sums to {sum}");
            let reach = compose(&masks[..=l]);
            for k in 0..n {
                prop_assert!((row[k] - full[l][q * n + k]).abs() < 1e-4);
                if !reach.links(q, k) {
                    prop_assert!(row[k] == 0.0, "key {k} beyond the reach got {}", row[k]);
                }
            }
        }
    }
}
