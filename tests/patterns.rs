//! Each pattern's mask matches its written definition, and what L layers of a pattern
//! can link (the composed reach) matches the L * window argument.

use attnlab::attention::{AttentionPattern, BigBirdLayout, compose};
use proptest::prelude::*;

mod common;
use common::attention::custom;

/// Checks every (query, key) pair of `pattern`'s mask at length `n` against `expected`,
/// with and without causality.
fn assert_mask(pattern: &AttentionPattern, n: usize, expected: impl Fn(usize, usize) -> bool) {
    for causal in [false, true] {
        let mask = pattern.mask(n, causal, 7);
        assert_eq!(mask.n(), n);
        for i in 0..n {
            assert!(mask.get(i, i), "{pattern}: query {i} must see itself");
            for j in 0..n {
                let want = expected(i, j) && (!causal || j <= i);
                assert_eq!(
                    mask.get(i, j),
                    want,
                    "{pattern} causal={causal} n={n}: ({i}, {j})"
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn dense_sees_everything(n in 1usize..48) {
        assert_mask(&AttentionPattern::Dense, n, |_, _| true);
    }

    #[test]
    fn local_is_a_radius(n in 1usize..64, window in 1usize..20) {
        let p = AttentionPattern::Local { window };
        assert_mask(&p, n, |i, j| (i as i64 - j as i64).abs() <= window as i64);
    }

    #[test]
    fn dilated_steps_by_dilation(n in 1usize..64, window in 1usize..6, dilation in 1usize..6) {
        let p = AttentionPattern::Dilated { window, dilation };
        assert_mask(&p, n, |i, j| {
            (-(window as i64)..=window as i64).any(|k| i as i64 + k * dilation as i64 == j as i64)
        });
    }

    #[test]
    fn strided_is_recent_or_on_the_stride(n in 1usize..64, stride in 1usize..12) {
        let p = AttentionPattern::Strided { stride };
        assert_mask(&p, n, |i, j| {
            let d = i as i64 - j as i64;
            d.abs() < stride as i64 || d.rem_euclid(stride as i64) == 0
        });
    }

    #[test]
    fn fixed_is_own_block_or_summary_cells(blocks in 1usize..6, block in 1usize..10, summary_frac in 0.0f64..1.0) {
        let summary = 1 + ((block - 1) as f64 * summary_frac) as usize;
        let n = blocks * block;
        let p = AttentionPattern::Fixed { block, summary };
        prop_assert!(p.check(n).is_ok());
        assert_mask(&p, n, |i, j| {
            let last_of_block = (j / block) * block + block - 1;
            i / block == j / block || last_of_block - j < summary
        });
    }

    #[test]
    fn block_is_same_block_only(blocks in 1usize..6, size in 1usize..12) {
        let n = blocks * size;
        let p = AttentionPattern::Block { size };
        assert_mask(&p, n, |i, j| i / size == j / size);
    }

    #[test]
    fn longformer_is_local_plus_global(n in 2usize..64, window in 1usize..8, global_frac in 0.0f64..1.0) {
        let global = ((n - 1) as f64 * global_frac) as usize;
        let p = AttentionPattern::Longformer { window, global };
        assert_mask(&p, n, |i, j| i.abs_diff(j) <= window || i < global || j < global);
    }

    #[test]
    fn bigbird_is_window_global_and_random_blocks(
        blocks in 2usize..10,
        block in 1usize..6,
        half in 0usize..2,
        global_blocks in 0usize..2,
        random_blocks in 0usize..3,
        seed in 0u64..1000,
    ) {
        let n = blocks * block;
        let window_blocks = 2 * half + 1;
        let global_blocks = global_blocks.min(blocks - 1);
        let layout = BigBirdLayout::new(n, block, window_blocks, global_blocks, random_blocks, seed);
        prop_assert_eq!(layout.blocks(), blocks);
        for q in 0..blocks {
            let structural = |k: usize| q < global_blocks || k < global_blocks || q.abs_diff(k) <= half;
            let extra = (0..blocks).filter(|&k| layout.block_on(q, k) && !structural(k)).count();
            let free = (0..blocks).filter(|&k| !structural(k)).count();
            // Every structural block is on, and exactly min(random, free) others.
            prop_assert!((0..blocks).filter(|&k| structural(k)).all(|k| layout.block_on(q, k)));
            prop_assert_eq!(extra, random_blocks.min(free));
        }
        // The mask is the block layout expanded to positions, and the seed fixes it.
        let p = AttentionPattern::BigBird { block, window_blocks, global_blocks, random_blocks };
        let again = BigBirdLayout::new(n, block, window_blocks, global_blocks, random_blocks, seed);
        assert_eq!(layout, again);
        let mask = p.mask(n, false, seed);
        for i in 0..n {
            for j in 0..n {
                prop_assert_eq!(mask.get(i, j), layout.block_on(i / block, j / block));
            }
        }
    }

    /// The reason local attention fails on long-range recall: L layers of radius w link
    /// exactly the pairs at most L * w apart.
    #[test]
    fn local_layers_reach_exactly_l_times_w(n in 2usize..80, window in 1usize..6, layers in 1usize..5, causal: bool) {
        let masks: Vec<_> = (0..layers).map(|_| AttentionPattern::Local { window }.mask(n, causal, 0)).collect();
        let reach = compose(&masks);
        for i in 0..n {
            for j in 0..n {
                let linked = i.abs_diff(j) <= layers * window && (!causal || j <= i);
                prop_assert_eq!(reach.links(i, j), linked, "({}, {})", i, j);
            }
        }
        prop_assert_eq!(reach.full_radius(causal), (layers * window).min(n - 1));
        for d in 1..n {
            prop_assert_eq!(reach.links_distance(d), d <= layers * window);
        }
    }
}

#[test]
fn two_layers_of_strided_link_every_pair() {
    let n = 64;
    let masks: Vec<_> = (0..2)
        .map(|_| AttentionPattern::Strided { stride: 8 }.mask(n, false, 0))
        .collect();
    let reach = compose(&masks);
    assert!((reach.coverage() - 1.0).abs() < 1e-12);
    let one = compose(&masks[..1]);
    assert!(one.coverage() < 0.5, "one strided layer alone is sparse");
}

#[test]
fn block_layers_never_cross_a_boundary() {
    let masks: Vec<_> = (0..4)
        .map(|_| AttentionPattern::Block { size: 16 }.mask(64, false, 0))
        .collect();
    let reach = compose(&masks);
    assert!(reach.links(15, 0));
    assert!(!reach.links(16, 15), "blocks never mix, however deep");
    assert_eq!(reach.full_radius(false), 0);
}

#[test]
fn per_layer_mix_links_everything_through_the_dense_top() {
    let local = AttentionPattern::Local { window: 4 }.mask(64, false, 0);
    let dense = AttentionPattern::Dense.mask(64, false, 0);
    assert!(!compose(&[local.clone(), local.clone()]).links_distance(40));
    assert!(compose(&[local.clone(), local, dense]).links_distance(40));
}

#[test]
fn attended_pairs_grow_like_n_times_w_for_local() {
    let w = 8;
    for n in [64usize, 128, 256] {
        let pairs = AttentionPattern::Local { window: w }
            .mask(n, false, 0)
            .attended_pairs();
        assert!(pairs <= n * (2 * w + 1));
        assert!(pairs >= n * (w + 1));
        assert_eq!(
            AttentionPattern::Dense.mask(n, false, 0).attended_pairs(),
            n * n
        );
    }
}

#[test]
fn every_kind_name_parses_with_defaults() {
    for kind in attnlab::attention::PATTERN_KINDS {
        let p = AttentionPattern::from_kind(kind).expect(kind);
        assert_eq!(p.kind(), kind);
        assert!(p.check(64).is_ok(), "{kind} defaults must be valid at n=64");
    }
    assert!(AttentionPattern::from_kind("sparse").is_none());
}

/// Custom masks written to equal built-in patterns give the identical mask at every
/// length, causal or not (`%` is Euclidean, so the strided residue needs no care
/// about signs).
#[test]
fn custom_masks_equal_the_built_in_patterns_they_spell_out() {
    let twins = [
        (AttentionPattern::Dense, "1 > 0"),
        (AttentionPattern::Local { window: 4 }, "abs(q - k) <= 4"),
        (
            AttentionPattern::Dilated {
                window: 2,
                dilation: 3,
            },
            "abs(q - k) <= 6 && (q - k) % 3 == 0",
        ),
        (
            AttentionPattern::Strided { stride: 8 },
            "abs(q - k) < 8 || (q - k) % 8 == 0",
        ),
        (AttentionPattern::Block { size: 8 }, "q / 8 == k / 8"),
        (
            AttentionPattern::Fixed {
                block: 8,
                summary: 2,
            },
            "q / 8 == k / 8 || k % 8 >= 6",
        ),
        (
            AttentionPattern::Longformer {
                window: 3,
                global: 2,
            },
            "abs(q - k) <= 3 || min(q, k) < 2",
        ),
    ];
    for (built_in, mask) in twins {
        let written = custom(mask);
        for n in [1, 5, 8, 24, 64, 100] {
            for causal in [false, true] {
                assert_eq!(
                    written.mask(n, causal, 0),
                    built_in.mask(n, causal, 0),
                    "{built_in} vs {mask} n={n} causal={causal}"
                );
            }
        }
        assert_eq!(written.check_for(64, true), Ok(()), "{mask}");
        assert_eq!(written.check_for(64, false), Ok(()), "{mask}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// A written window is the local pattern, and `n` is the length the mask is
    /// built at.
    #[test]
    fn a_written_window_is_the_local_pattern(n in 1usize..80, window in 0usize..20, causal: bool) {
        let written = custom(&format!("abs(q - k) <= {window}"));
        prop_assert_eq!(written.mask(n, causal, 0), AttentionPattern::Local { window }.mask(n, causal, 0));
        let last = custom("k == n - 1 || k == q").mask(n, false, 0);
        for i in 0..n {
            prop_assert!(last.get(i, n - 1) && last.get(i, i));
        }
    }
}

#[test]
fn custom_masks_are_checked_for_empty_rows_and_errors() {
    // The crate's built-in patterns always show a query itself; a custom mask need
    // not, as long as every query sees some key.
    let global_only = custom("k < 2");
    assert_eq!(global_only.check_for(64, true), Ok(()));
    assert!(!global_only.mask(64, false, 0).get(5, 5));
    let e = custom("k > q + 100")
        .check(64)
        .expect_err("no query sees a key");
    assert_eq!(e.param, "mask");
    assert_eq!(e.value, "\"k > q + 100\"");
    assert!(e.reason.contains("query 0 sees no key"), "{e}");
    // Causality matters only where it is known.
    let last = custom("k == n - 1");
    assert_eq!(last.check(64), Ok(()));
    assert_eq!(last.check_for(64, false), Ok(()));
    let e = last.check_for(64, true).expect_err("query 0 sees nothing");
    assert!(e.reason.contains("query 0 sees no key"), "{e}");
    // Parse errors keep their column.
    let e = custom("abs(q - k) <= 8 ||").check(64).expect_err("broken");
    assert!(e.reason.starts_with("column 17: "), "{e}");
    // A broken mask shows nothing rather than failing.
    assert_eq!(custom("q <").mask(8, false, 0).attended_pairs(), 0);
}

#[test]
fn a_custom_pattern_is_labelled_by_its_mask() {
    let p = custom("abs(q - k) <= 8");
    assert_eq!(p.kind(), "custom");
    assert_eq!(p.label(), "custom \"abs(q - k) <= 8\"");
    assert_eq!(p.local_reach(), None);
    let default = AttentionPattern::from_kind("custom").expect("a kind");
    assert_eq!(default, custom(attnlab::attention::DEFAULT_MASK));
}
