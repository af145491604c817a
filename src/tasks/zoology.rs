//! Multi-query associative recall exactly as Zoology generates it (Arora, Eyuboglu
//! et al. 2023, "Zoology: Measuring and Improving Recall in Efficient Language
//! Models"; HazyResearch/zoology, `zoology/data/associative_recall.py`, `_mqar`).
//!
//! Zoology draws a whole data set with numpy; this draws the same distribution one
//! example at a time from the run's seeded generator:
//!
//! - `context = 2 x pairs` tokens of key-value pairs: `pairs` distinct keys from
//!   `1..vocab / 2`, `pairs` distinct values from `vocab / 2..vocab`, key `p` at `2p`
//!   and its value at `2p + 1`;
//! - `space = (seq_len - context) / 2` possible query gaps; gap `g` has weight
//!   `(g + 1)^(power_a - 1)` (Zoology's `power_a * i^(power_a - 1)`, `i = g + 1`,
//!   normalised), and `pairs` gaps are drawn without replacement, one per pair in
//!   order (numpy's `choice(space, pairs, replace=False, p)`);
//! - pair `p` is queried at `context + 2 x gap_p`: the key there, the value as the
//!   target, read from `2p + 1`; every other position has no target;
//! - every other position after the pairs holds 0, or with `random_fill` (Zoology's
//!   `random_non_queries`, on by default) a uniformly random token of `0..vocab`.
//!   Zoology replaces every 0 of the input, and only these positions hold one: keys
//!   start at 1 and values at `vocab / 2`.

use std::collections::HashSet;
use std::ops::Range;

use rand::{RngExt, rngs::StdRng};

use super::data::partial_shuffle;
use super::{Example, IGNORE, TaskConfig};

/// One example of Zoology's MQAR (see the module docs). A configuration
/// [`TaskConfig::check`] refuses yields zeros with no target rather than panic.
pub(super) fn example(task: &TaskConfig, rng: &mut StdRng) -> Example {
    let n = task.seq_len;
    let mut tokens = vec![0i64; n];
    let mut targets = vec![IGNORE; n];
    if task.check().is_err() {
        return Example {
            tokens,
            targets,
            dependencies: Vec::new(),
        };
    }
    let mut dependencies = Vec::with_capacity(task.pairs);
    let vocab = task.vocab as i64;
    let half = vocab / 2;
    let context = 2 * task.pairs;
    let keys = distinct(1..half, task.pairs, rng);
    let values = distinct(half..vocab, task.pairs, rng);
    for p in 0..task.pairs {
        tokens[2 * p] = keys[p];
        tokens[2 * p + 1] = values[p];
    }
    let space = (n - context) / 2;
    for (p, gap) in gaps(space, task.pairs, task.power_a, rng)
        .into_iter()
        .enumerate()
    {
        let q = context + 2 * gap;
        tokens[q] = keys[p];
        targets[q] = values[p];
        dependencies.push((q, 2 * p + 1));
    }
    if task.random_fill {
        for (token, &target) in tokens.iter_mut().zip(&targets).skip(context) {
            if target == IGNORE {
                *token = rng.random_range(0..vocab);
            }
        }
    }
    Example {
        tokens,
        targets,
        dependencies,
    }
}

/// `count` distinct tokens of `range` (at most its length), uniformly in random order
/// (numpy's `choice(range, count, replace=False)`): by rejection when they are few
/// beside the range, else by a partial shuffle of the whole range.
fn distinct(range: Range<i64>, count: usize, rng: &mut StdRng) -> Vec<i64> {
    let len = usize::try_from(range.end - range.start).unwrap_or(0);
    let count = count.min(len);
    if 2 * count > len {
        let mut all: Vec<i64> = range.collect();
        partial_shuffle(&mut all, count, rng);
        all.truncate(count);
        return all;
    }
    let mut out = Vec::with_capacity(count);
    let mut seen = HashSet::with_capacity(count);
    while out.len() < count {
        let token = rng.random_range(range.clone());
        if seen.insert(token) {
            out.push(token);
        }
    }
    out
}

/// `count` distinct gaps of `0..space` (at most `space`), in the order drawn, gap `g`
/// with weight `(g + 1)^(power_a - 1)`, without replacement: each draw picks among
/// the gaps left with their weights renormalised, as numpy's
/// `choice(space, count, replace=False, p)` does.
///
/// An exponential race draws the same ordered sample in one pass: gap `g` finishes at
/// `E_g / w_g` with `E_g ~ Exp(1)` independent; the first to finish is `g` with
/// probability `w_g / sum(w)`, and, the clocks being memoryless, the next among the
/// rest likewise. So the gaps in order of finishing are a successive weighted sample.
fn gaps(space: usize, count: usize, power_a: f64, rng: &mut StdRng) -> Vec<usize> {
    let count = count.min(space);
    let mut finish: Vec<(f64, usize)> = (0..space)
        .map(|g| {
            let exp = -(1.0 - rng.random::<f64>()).ln();
            (exp * ((g + 1) as f64).powf(1.0 - power_a), g)
        })
        .collect();
    if count < finish.len() {
        finish.select_nth_unstable_by(count, |a, b| a.0.total_cmp(&b.0));
        finish.truncate(count);
    }
    finish.sort_by(|a, b| a.0.total_cmp(&b.0));
    finish.into_iter().map(|(_, g)| g).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::{DEFAULT_POWER_A, TaskKind};
    use rand::SeedableRng;

    fn cfg() -> TaskConfig {
        TaskConfig {
            kind: TaskKind::ZoologyMqar,
            seq_len: 64,
            vocab: 256,
            pairs: 4,
            ..TaskConfig::default()
        }
    }

    /// Pair `p`'s query gap in `ex` (its dependencies are in pair order).
    fn gap_of(c: &TaskConfig, ex: &Example, p: usize) -> usize {
        (ex.dependencies[p].0 - 2 * c.pairs) / 2
    }

    #[test]
    fn keys_and_values_come_from_their_halves_and_each_pair_is_queried_once() {
        let mut rng = StdRng::seed_from_u64(1);
        for c in [
            cfg(),
            TaskConfig {
                vocab: 8,
                pairs: 3,
                seq_len: 12,
                ..cfg()
            },
            TaskConfig {
                vocab: 12,
                pairs: 2,
                seq_len: 16,
                random_fill: false,
                ..cfg()
            },
        ] {
            c.check().expect("valid");
            let (half, vocab, context) = (c.vocab as i64 / 2, c.vocab as i64, 2 * c.pairs);
            for _ in 0..200 {
                let ex = c.example(&mut rng);
                assert_eq!(ex.tokens.len(), c.seq_len);
                let keys: Vec<i64> = (0..c.pairs).map(|p| ex.tokens[2 * p]).collect();
                let values: Vec<i64> = (0..c.pairs).map(|p| ex.tokens[2 * p + 1]).collect();
                assert!(keys.iter().all(|k| (1..half).contains(k)), "{keys:?}");
                assert!(
                    values.iter().all(|v| (half..vocab).contains(v)),
                    "{values:?}"
                );
                let unique = |v: &[i64]| v.iter().collect::<HashSet<_>>().len();
                assert_eq!(unique(&keys), c.pairs);
                assert_eq!(unique(&values), c.pairs);
                assert_eq!(ex.dependencies.len(), c.pairs);
                for (p, &(q, k)) in ex.dependencies.iter().enumerate() {
                    assert_eq!(k, 2 * p + 1);
                    assert!(q >= context && (q - context).is_multiple_of(2), "q = {q}");
                    assert!(q < c.seq_len);
                    assert_eq!(ex.tokens[q], keys[p]);
                    assert_eq!(ex.targets[q], values[p]);
                }
                let with_target: Vec<usize> = (0..c.seq_len)
                    .filter(|&t| ex.targets[t] != IGNORE)
                    .collect();
                let mut queries: Vec<usize> = ex.dependencies.iter().map(|d| d.0).collect();
                queries.sort_unstable();
                assert_eq!(with_target, queries, "targets only at the queries");
                assert!(ex.tokens.iter().all(|t| (0..vocab).contains(t)));
            }
        }
    }

    #[test]
    fn without_random_fill_the_rest_is_zero_and_with_it_random() {
        let mut rng = StdRng::seed_from_u64(2);
        let mut c = TaskConfig {
            random_fill: false,
            ..cfg()
        };
        let filler = |ex: &Example| -> Vec<i64> {
            (8..64)
                .filter(|&t| ex.targets[t] == IGNORE)
                .map(|t| ex.tokens[t])
                .collect()
        };
        for _ in 0..50 {
            let ex = c.example(&mut rng);
            assert!(filler(&ex).iter().all(|&t| t == 0));
        }
        c.random_fill = true;
        let mut seen = HashSet::new();
        for _ in 0..50 {
            seen.extend(filler(&c.example(&mut rng)));
        }
        // 50 x 52 uniform draws from 256 tokens cover nearly all of them.
        assert!(seen.len() > 200, "{}", seen.len());
    }

    #[test]
    fn the_gaps_follow_the_power_law() {
        // seq_len 64 and 4 pairs leave 28 gaps. Pair 0's gap is the first drawn: gap
        // g with probability w_g / sum(w), w_g = (g + 1)^(power_a - 1).
        let space = 28;
        let stats = |power_a: f64| {
            let c = TaskConfig { power_a, ..cfg() };
            let mut rng = StdRng::seed_from_u64(3);
            let (mut first_zero, mut included, mut sum) = (0usize, vec![0usize; space], 0);
            let examples = 4000;
            for _ in 0..examples {
                let ex = c.example(&mut rng);
                first_zero += usize::from(gap_of(&c, &ex, 0) == 0);
                let mut gaps: Vec<usize> = (0..4).map(|p| gap_of(&c, &ex, p)).collect();
                sum += gaps.iter().sum::<usize>();
                gaps.sort_unstable();
                gaps.dedup();
                assert_eq!(gaps.len(), 4, "gaps are distinct");
                for g in gaps {
                    included[g] += 1;
                }
            }
            let n = examples as f64;
            let included: Vec<f64> = included.iter().map(|&k| k as f64 / n).collect();
            (first_zero as f64 / n, included, sum as f64 / (4.0 * n))
        };
        let weight = |a: f64, g: usize| ((g + 1) as f64).powf(a - 1.0);
        let p0 = |a: f64| weight(a, 0) / (0..space).map(|g| weight(a, g)).sum::<f64>();

        // Uniform: each gap in 4 of 28 examples, mean gap 13.5.
        let (first, included, mean) = stats(1.0);
        assert!((first - p0(1.0)).abs() < 0.015, "{first}");
        for (g, share) in included.iter().enumerate() {
            assert!((share - 4.0 / 28.0).abs() < 0.035, "gap {g}: {share}");
        }
        assert!((mean - 13.5).abs() < 0.5, "{mean}");

        // Zoology's default: about 1/(g + 1), so short gaps dominate.
        let (first, included, mean) = stats(0.01);
        assert!((p0(0.01) - 0.251).abs() < 0.001);
        assert!((first - p0(0.01)).abs() < 0.025, "{first}");
        assert!(included[0] > 0.6, "{}", included[0]);
        assert!(included[0] > 4.0 * included[space - 1], "{included:?}");
        assert!(mean < 9.0, "{mean}");
    }

    #[test]
    fn the_checks_name_the_field() {
        let check = |c: TaskConfig| c.check().map_err(|e| e.field);
        assert_eq!(check(cfg()), Ok(()));
        assert_eq!(check(TaskConfig { vocab: 3, ..cfg() }), Err("vocab"));
        assert_eq!(
            check(TaskConfig {
                seq_len: 63,
                ..cfg()
            }),
            Err("seq_len")
        );
        assert_eq!(check(TaskConfig { pairs: 17, ..cfg() }), Err("pairs"));
        assert_eq!(check(TaskConfig { pairs: 16, ..cfg() }), Ok(()));
        // vocab 10: keys 1 to 4.
        let small = TaskConfig {
            vocab: 10,
            seq_len: 64,
            ..cfg()
        };
        assert_eq!(
            check(TaskConfig {
                pairs: 4,
                ..small.clone()
            }),
            Ok(())
        );
        assert_eq!(check(TaskConfig { pairs: 5, ..small }), Err("pairs"));
        assert_eq!(check(TaskConfig { pairs: 0, ..cfg() }), Err("pairs"));
        // vocab 16: keys 1 to 7; 7 pairs need seq_len 28.
        let c = TaskConfig {
            vocab: 16,
            pairs: 7,
            seq_len: 26,
            ..cfg()
        };
        assert_eq!(check(c.clone()), Err("pairs"));
        assert_eq!(
            check(TaskConfig {
                seq_len: 28,
                ..c.clone()
            }),
            Ok(())
        );
        assert_eq!(
            check(TaskConfig {
                pairs: 8,
                seq_len: 64,
                ..c
            }),
            Err("pairs")
        );
        let c = TaskConfig {
            vocab: 8192,
            ..cfg()
        };
        assert!((c.chance_accuracy() - 1.0 / 4096.0).abs() < 1e-12);
    }

    #[test]
    fn a_refused_configuration_yields_no_target_rather_than_panic() {
        let mut rng = StdRng::seed_from_u64(4);
        for c in [
            TaskConfig { vocab: 2, ..cfg() },
            TaskConfig { pairs: 40, ..cfg() },
            TaskConfig {
                seq_len: 7,
                ..cfg()
            },
        ] {
            let ex = c.example(&mut rng);
            assert!(ex.dependencies.is_empty());
            assert!(ex.targets.iter().all(|&t| t == IGNORE));
        }
    }

    #[test]
    fn the_new_fields_are_written_only_when_not_the_default() {
        let written = |c: &TaskConfig| toml::to_string(c).unwrap_or_default();
        let c = TaskConfig::default();
        assert!(!written(&c).contains("power_a"));
        assert!(!written(&c).contains("random_fill"));
        let c = TaskConfig {
            power_a: 1.0,
            random_fill: false,
            ..TaskConfig::default()
        };
        let text = written(&c);
        assert!(text.contains("power_a = 1.0"), "{text}");
        assert!(text.contains("random_fill = false"), "{text}");
        assert_eq!(toml::from_str::<TaskConfig>(&text).ok(), Some(c));
        let back: TaskConfig = toml::from_str("kind = \"zoology_mqar\"").expect("parses");
        assert_eq!((back.power_a, back.random_fill), (DEFAULT_POWER_A, true));
    }
}
