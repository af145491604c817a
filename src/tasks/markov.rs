//! In-context Markov chains (Edelman, Edelman, Goel, Malach and Tsilivis 2024, "The
//! Evolution of Statistical Induction Heads: In-Context Learning Markov Chains"), and
//! the closed-form in-context predictors whose losses mark the task's phases.
//!
//! Every sequence comes from its own chain over `k = vocab` states: a fresh transition
//! matrix whose rows are drawn from Dirichlet(1, ..., 1), a first state drawn from
//! that matrix's stationary distribution, then `seq_len` steps. The input is the first
//! `seq_len` states and every position's target is the next state, as in the text
//! task; no position has a dependency.
//!
//! A model can only learn the chain in context, so its loss is compared with three
//! predictors that see the same prefix `x_1..x_t` (the inputs up to and including
//! position `t`) and score the target `x_{t+1}`:
//!
//! - uniform: `1 / k`, loss `ln k`;
//! - in-context unigram: `p(j) = (#{s <= t: x_s = j} + 1) / (t + k)`, the add-one
//!   estimate of the states' frequencies;
//! - in-context bigram: `p(j) = (#{s < t: x_s = x_t, x_{s+1} = j} + 1) /
//!   (#{s < t: x_s = x_t} + k)`, the transitions out of the current state seen so far
//!   (`(x_s, x_{s+1})` with `s + 1 <= t`). Under the Dirichlet(1) prior on the current
//!   state's row this is the posterior mean of `P(x_t, j)`, the Bayes-optimal
//!   prediction given the transitions (it ignores the little the first state, drawn
//!   from the stationary distribution, says about the matrix).
//!
//! Edelman et al. see a transformer's loss fall to the uniform level, rest near the
//! unigram level, then drop to the bigram level as an induction head forms.

use rand::{RngExt, rngs::StdRng};
use serde::{Deserialize, Serialize};

use super::{Batch, Example, IGNORE, TaskConfig, TaskKind};

/// The most states the Markov task allows: every sequence draws a fresh `k x k`
/// transition matrix and solves for its stationary distribution (`k^3` steps).
pub const MAX_MARKOV_STATES: usize = 64;

/// One example of the Markov task (see the module docs). A number of states
/// [`TaskConfig::check`] refuses yields zeros with no target rather than panic.
pub(super) fn example(task: &TaskConfig, rng: &mut StdRng) -> Example {
    let (k, n) = (task.vocab, task.seq_len);
    if !(2..=MAX_MARKOV_STATES).contains(&k) {
        return Example {
            tokens: vec![0; n],
            targets: vec![IGNORE; n],
            dependencies: Vec::new(),
        };
    }
    let matrix = transition_matrix(k, rng);
    let mut state = draw(&stationary(&matrix, k), rng);
    let mut tokens = Vec::with_capacity(n);
    let mut targets = Vec::with_capacity(n);
    for _ in 0..n {
        tokens.push(state as i64);
        state = draw(&matrix[state * k..(state + 1) * k], rng);
        targets.push(state as i64);
    }
    Example {
        tokens,
        targets,
        dependencies: Vec::new(),
    }
}

/// A `k x k` transition matrix, row-major, each row drawn from Dirichlet(1, ..., 1):
/// `k` draws of Exp(1) (`-ln(1 - U)`), normalised (exact for concentration 1). Every
/// entry is positive, so the chain is irreducible and aperiodic.
fn transition_matrix(k: usize, rng: &mut StdRng) -> Vec<f64> {
    let mut matrix = Vec::with_capacity(k * k);
    for _ in 0..k {
        let row: Vec<f64> = (0..k)
            .map(|_| (-(1.0 - rng.random::<f64>()).ln()).max(f64::MIN_POSITIVE))
            .collect();
        let sum: f64 = row.iter().sum();
        matrix.extend(row.iter().map(|e| e / sum));
    }
    matrix
}

/// The stationary distribution `pi = pi P` of the row-major `k x k` matrix `p`, every
/// entry positive, by the Grassmann-Taksar-Heyman state reduction (Grassmann, Taksar
/// and Heyman 1985): it eliminates states from the last, with no subtraction, so it
/// stays accurate for chains that mix slowly, where power iteration would not have
/// converged.
fn stationary(p: &[f64], k: usize) -> Vec<f64> {
    let mut a = p.to_vec();
    for m in (1..k).rev() {
        let out: f64 = a[m * k..m * k + m].iter().sum();
        for i in 0..m {
            a[i * k + m] /= out;
        }
        for i in 0..m {
            for j in 0..m {
                a[i * k + j] += a[i * k + m] * a[m * k + j];
            }
        }
    }
    let mut pi = vec![0.0; k];
    pi[0] = 1.0;
    for j in 1..k {
        pi[j] = (0..j).map(|i| pi[i] * a[i * k + j]).sum();
    }
    let sum: f64 = pi.iter().sum();
    pi.iter().map(|x| x / sum).collect()
}

/// An index drawn with probability proportional to `p` (non-negative weights).
fn draw(p: &[f64], rng: &mut StdRng) -> usize {
    let mut u = rng.random::<f64>() * p.iter().sum::<f64>();
    for (j, &w) in p.iter().enumerate() {
        if u < w {
            return j;
        }
        u -= w;
    }
    p.len().saturating_sub(1)
}

/// The losses of the in-context predictors of the Markov task (see the module docs),
/// in nats per position with a target, on given examples.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct InContextBaselines {
    /// `ln k`: guessing uniformly among the `k` states.
    pub uniform: f64,
    /// The in-context unigram predictor's mean loss: add-one state frequencies of the
    /// prefix.
    pub unigram: f64,
    /// The in-context bigram predictor's mean loss: add-one transition counts out of
    /// the current state within the prefix (Bayes-optimal under the Dirichlet prior).
    pub bigram: f64,
}

impl TaskConfig {
    /// The losses of the uniform, in-context unigram and in-context bigram predictors
    /// on `batches` (the mean over every position with a target, each row read on its
    /// own), for the Markov task; `None` for the other tasks, for a number of states
    /// [`TaskConfig::check`] refuses, or when no position has a target. Tokens or
    /// targets outside `0..vocab` are skipped.
    pub fn in_context_baselines(&self, batches: &[Batch]) -> Option<InContextBaselines> {
        if self.kind != TaskKind::Markov || !(2..=MAX_MARKOV_STATES).contains(&self.vocab) {
            return None;
        }
        let k = self.vocab;
        let state = |v: i64| usize::try_from(v).ok().filter(|&s| s < k);
        let (mut unigram, mut bigram, mut scored) = (0.0, 0.0, 0usize);
        // Per row: how often each state was seen, each transition, and each state left.
        let mut seen = vec![0usize; k];
        let mut moves = vec![0usize; k * k];
        let mut left = vec![0usize; k];
        for batch in batches {
            let n = batch.seq_len.max(1);
            for (tokens, targets) in batch.tokens.chunks(n).zip(batch.targets.chunks(n)) {
                seen.fill(0);
                moves.fill(0);
                left.fill(0);
                let (mut prefix, mut previous) = (0usize, None);
                for (&token, &target) in tokens.iter().zip(targets) {
                    let Some(x) = state(token) else {
                        previous = None;
                        continue;
                    };
                    prefix += 1;
                    seen[x] += 1;
                    if let Some(p) = previous {
                        moves[p * k + x] += 1;
                        left[p] += 1;
                    }
                    previous = Some(x);
                    let Some(y) = state(target) else {
                        continue;
                    };
                    unigram -= ((seen[y] + 1) as f64 / (prefix + k) as f64).ln();
                    bigram -= ((moves[x * k + y] + 1) as f64 / (left[x] + k) as f64).ln();
                    scored += 1;
                }
            }
        }
        (scored > 0).then(|| InContextBaselines {
            uniform: (k as f64).ln(),
            unigram: unigram / scored as f64,
            bigram: bigram / scored as f64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn cfg(k: usize, seq_len: usize) -> TaskConfig {
        TaskConfig {
            kind: TaskKind::Markov,
            vocab: k,
            seq_len,
            ..TaskConfig::default()
        }
    }

    /// The two predictors' summed losses and the number of positions scored, counted
    /// from scratch for every prefix.
    fn brute_force(k: usize, tokens: &[i64], targets: &[i64]) -> (f64, f64, usize) {
        let (mut unigram, mut bigram, mut scored) = (0.0, 0.0, 0);
        for t in 0..tokens.len() {
            let y = targets[t];
            if y == IGNORE {
                continue;
            }
            let prefix = &tokens[..=t];
            let x = prefix[t];
            let mut count = vec![0usize; k];
            for &s in prefix {
                count[s as usize] += 1;
            }
            let mut table = vec![vec![0usize; k]; k];
            for w in prefix.windows(2) {
                table[w[0] as usize][w[1] as usize] += 1;
            }
            let row = &table[x as usize];
            let row_total: usize = row.iter().sum();
            unigram -= ((count[y as usize] + 1) as f64 / (prefix.len() + k) as f64).ln();
            bigram -= ((row[y as usize] + 1) as f64 / (row_total + k) as f64).ln();
            scored += 1;
        }
        (unigram, bigram, scored)
    }

    fn batch(c: &TaskConfig, rows: &[(Vec<i64>, Vec<i64>)]) -> Batch {
        let examples: Vec<Example> = rows
            .iter()
            .map(|(tokens, targets)| Example {
                tokens: tokens.clone(),
                targets: targets.clone(),
                dependencies: Vec::new(),
            })
            .collect();
        c.batch_of(&examples)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn a_hand_counted_case() {
        // k = 2, states 0 0 1 then 1. Position 1 sees [0]: unigram 2/3 for 0, no
        // transition out of 0 yet, so 1/2. Position 2 sees [0, 0]: unigram 1/4 for 1,
        // one transition 0 -> 0, so 1/3 for 0 -> 1. Position 3 sees [0, 0, 1]: unigram
        // 2/5 for 1, no transition out of 1, so 1/2.
        let c = cfg(2, 3);
        let b = batch(&c, &[(vec![0, 0, 1], vec![0, 1, 1])]);
        let got = c.in_context_baselines(&[b]).expect("markov");
        let unigram = -((2.0f64 / 3.0).ln() + (0.25f64).ln() + (0.4f64).ln()) / 3.0;
        let bigram = -((0.5f64).ln() + (1.0f64 / 3.0).ln() + (0.5f64).ln()) / 3.0;
        assert!(close(got.unigram, unigram), "{got:?}");
        assert!(close(got.bigram, bigram), "{got:?}");
        assert!(close(got.uniform, 2f64.ln()));
    }

    #[test]
    fn the_closed_form_equals_a_brute_force_count() {
        // Every sequence of 5 states over 2 and of 4 over 3, each with its next state,
        // in two batches; then generated examples, some targets ignored.
        for (k, len) in [(2usize, 5usize), (3, 4)] {
            let c = cfg(k, len);
            let mut rows = Vec::new();
            for code in 0..k.pow(len as u32 + 1) {
                let states: Vec<i64> = (0..=len)
                    .map(|i| (code / k.pow(i as u32) % k) as i64)
                    .collect();
                rows.push((states[..len].to_vec(), states[1..].to_vec()));
            }
            let (first, second) = rows.split_at(rows.len() / 3);
            let batches = [batch(&c, first), batch(&c, second)];
            let got = c.in_context_baselines(&batches).expect("markov");
            let (mut u, mut b, mut n) = (0.0, 0.0, 0);
            for (tokens, targets) in &rows {
                let (du, db, dn) = brute_force(k, tokens, targets);
                (u, b, n) = (u + du, b + db, n + dn);
            }
            assert!(close(got.unigram, u / n as f64), "k = {k}");
            assert!(close(got.bigram, b / n as f64), "k = {k}");
        }
        for k in [2, 3] {
            let c = cfg(k, 12);
            let mut rng = StdRng::seed_from_u64(k as u64);
            let mut rows: Vec<(Vec<i64>, Vec<i64>)> = (0..40)
                .map(|_| {
                    let ex = c.example(&mut rng);
                    (ex.tokens, ex.targets)
                })
                .collect();
            for (i, (_, targets)) in rows.iter_mut().enumerate() {
                targets[i % 12] = IGNORE;
            }
            let got = c.in_context_baselines(&[batch(&c, &rows)]).expect("markov");
            let (mut u, mut b, mut n) = (0.0, 0.0, 0);
            for (tokens, targets) in &rows {
                let (du, db, dn) = brute_force(k, tokens, targets);
                (u, b, n) = (u + du, b + db, n + dn);
            }
            assert_eq!(n, 40 * 11);
            assert!(close(got.unigram, u / n as f64), "k = {k}");
            assert!(close(got.bigram, b / n as f64), "k = {k}");
        }
    }

    #[test]
    fn an_example_is_a_walk_over_the_states() {
        let mut rng = StdRng::seed_from_u64(1);
        for k in [2, 3, 8] {
            let c = cfg(k, 50);
            c.check().expect("valid");
            for _ in 0..20 {
                let ex = c.example(&mut rng);
                assert_eq!((ex.tokens.len(), ex.targets.len()), (50, 50));
                assert!(ex.dependencies.is_empty());
                assert!(ex.tokens.iter().all(|&s| (0..k as i64).contains(&s)));
                assert!(ex.targets.iter().all(|&s| (0..k as i64).contains(&s)));
                assert_eq!(ex.tokens[1..], ex.targets[..49], "the next state");
            }
        }
        assert!((cfg(3, 8).chance_accuracy() - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(cfg(1, 8).check().map_err(|e| e.field), Err("vocab"));
        assert_eq!(cfg(65, 8).check().map_err(|e| e.field), Err("vocab"));
        assert!(cfg(64, 8).check().is_ok());
        let other = TaskConfig {
            kind: TaskKind::Recall,
            ..cfg(3, 8)
        };
        let b = cfg(3, 8).batch(2, &mut rng);
        assert_eq!(other.in_context_baselines(&[b]), None);
        assert_eq!(cfg(3, 8).in_context_baselines(&[]), None);
    }

    #[test]
    fn the_matrix_is_stochastic_and_the_first_state_stationary() {
        let mut rng = StdRng::seed_from_u64(2);
        for k in [2, 3, 5, 16] {
            let p = transition_matrix(k, &mut rng);
            for row in p.chunks(k) {
                assert!(row.iter().all(|&x| x > 0.0));
                assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            }
            let pi = stationary(&p, k);
            assert!((pi.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            for j in 0..k {
                let next: f64 = (0..k).map(|i| pi[i] * p[i * k + j]).sum();
                assert!((next - pi[j]).abs() < 1e-12, "k = {k}: {pi:?}");
            }
        }
        // A chain that barely moves: 0 -> 1 with 1e-6, 1 -> 0 with 3e-6.
        let p = [1.0 - 1e-6, 1e-6, 3e-6, 1.0 - 3e-6];
        let pi = stationary(&p, 2);
        assert!(
            (pi[0] - 0.75).abs() < 1e-9 && (pi[1] - 0.25).abs() < 1e-9,
            "{pi:?}"
        );
    }

    #[test]
    fn bigram_beats_unigram_beats_uniform_on_long_sequences() {
        // Expected about 0.86 < 1.00 < 1.10 for 3 states over 256 steps, and 0.51 <
        // 0.57 < 0.69 for 2 states over 100 (Edelman et al.'s setting); the standard
        // errors are below 0.01.
        for (k, seq_len, rows, gap) in [(3, 256, 256, 0.05), (2, 100, 512, 0.03)] {
            let c = cfg(k, seq_len);
            let mut rng = StdRng::seed_from_u64(7);
            let batches: Vec<Batch> = (0..4).map(|_| c.eval_batch(rows / 4, &mut rng)).collect();
            let got = c.in_context_baselines(&batches).expect("markov");
            assert!(close(got.uniform, (k as f64).ln()));
            assert!(got.bigram < got.unigram - gap, "k = {k}: {got:?}");
            assert!(got.unigram < got.uniform - gap, "k = {k}: {got:?}");
        }
    }

    #[test]
    fn the_next_token_tasks_predict_every_position_and_need_no_query() {
        let mut rng = StdRng::seed_from_u64(6);
        let c = cfg(16, 64);
        let b = c.batch(3, &mut rng);
        assert!(b.targets.iter().all(|&t| (0..16).contains(&t)));
        assert!(b.distances.iter().all(|&d| d == 0));
        assert!(c.probe(1).dependencies.is_empty());
        assert_eq!(TaskKind::Markov.next_token_unit(), Some("state"));
        assert_eq!(TaskKind::Text.next_token_unit(), Some("character"));
        assert_eq!(TaskKind::Markov.bits_unit(), Some("bits/state"));
        let next_token: Vec<TaskKind> = TaskKind::ALL
            .into_iter()
            .filter(|k| k.measured_by_loss())
            .collect();
        assert_eq!(next_token, [TaskKind::Text, TaskKind::Markov]);
        assert!(
            TaskKind::ALL
                .iter()
                .all(|k| k.bits_unit().is_some() == k.measured_by_loss())
        );
    }
}
