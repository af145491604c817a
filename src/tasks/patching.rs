//! Clean/corrupted input pairs for activation patching.
//!
//! Activation patching asks which part of a model carries an answer: run the model on
//! a *clean* input, then on a *corrupted* one that differs in the single token the
//! answer comes from, and copy one component's activation (a head's output) from the
//! clean run into the corrupted run. The share of the clean-minus-corrupted logit
//! difference on the answer that the copy brings back says how much of the answer
//! passes through that component (TransformerLens, `transformer_lens/patching.py`;
//! Zhang & Nanda 2024, "Towards Best Practices of Activation Patching in Language
//! Models", who recommend exactly this kind of corruption, one token swapped for
//! another of the same kind, over adding noise to embeddings).
//!
//! [`TaskConfig::patch_pair`] builds such pairs for the synthetic tasks. Per example it
//! picks one dependency `(query, source)` with the seeded generator and replaces the
//! source token by a different token of the same kind, so that the corrupted input is
//! still a valid input of the task and its answer at the query differs from the clean
//! one:
//!
//! | task             | source replaced                               | scored at              |
//! |------------------|-----------------------------------------------|------------------------|
//! | `recall`         | `tokens[q - distance]`, any other token       | a query `q >= distance`|
//! | `mqar`           | one pair's value, another value               | that pair's key query  |
//! | `zoology_mqar`   | one pair's value, a value no pair holds       | that pair's key query  |
//! | `induction`      | the value after the first trigger, another non-trigger token | the last position |
//! | `selective_copy` | one content token, another content token      | its output position    |
//!
//! The next-token tasks are refused: changing one character of a text, or one state
//! of a Markov chain, changes the prediction differently at every later position, so
//! there is no single answer to restore.
//!
//! In every synthetic task the replaced source is read by exactly one query (recall's
//! `targets[t] = tokens[t - distance]`, the MQARs' keys are distinct, induction and
//! selective copy have one output per source), so the corrupted batch's targets equal
//! the clean ones except at the scored position. Zoology's MQAR draws its values
//! without replacement, so its replacement is a value no other pair holds, keeping
//! the corrupted input one the task could have drawn.

use std::ops::Range;

use rand::{RngExt, rngs::StdRng};

use super::text::Split;
use super::{Batch, Example, TaskConfig, TaskKind};

/// A clean batch, the same batch with one dependency's source corrupted per example,
/// and where to score.
#[derive(Clone, Debug, PartialEq)]
pub struct PatchPair {
    /// The clean input: exactly what [`TaskConfig::eval_batch`] gives for the same
    /// generator state (tokens, targets, distances).
    pub clean: Batch,
    /// The corrupted input, the same shape as `clean`. Its tokens differ from the clean
    /// ones only at each example's corrupted source. Its targets are what the corrupted
    /// input implies at every position with a target: the corrupted answer at the scored
    /// position and, since no other query reads the replaced source, the clean targets
    /// everywhere else ([`IGNORE`](super::IGNORE) where the clean batch has none). Its
    /// distances are the clean ones (the dependencies do not move).
    pub corrupted: Batch,
    /// Per example: the flat index `b * seq_len + q` of the scored query position.
    pub positions: Vec<usize>,
    /// Per example: the flat index `b * seq_len + s` of the corrupted source position,
    /// the one token where `clean` and `corrupted` differ.
    pub sources: Vec<usize>,
    /// Per example: the answer at the scored position on the clean input.
    pub clean_answers: Vec<i64>,
    /// Per example: the answer at the scored position on the corrupted input; never
    /// equal to the clean answer.
    pub corrupted_answers: Vec<i64>,
}

/// Why a task has no clean/corrupted pair (the next-token tasks, or a vocabulary with
/// a single token of the kind the source holds).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("task.kind = \"{task}\": no clean/corrupted pair: {reason}")]
pub struct PatchRefusal {
    /// The task's name, as written in experiment files (`text`, `mqar`, ...).
    pub task: &'static str,
    /// Why.
    pub reason: String,
}

impl TaskConfig {
    /// `batch` seeded clean/corrupted pairs for activation patching (see the module
    /// docs for what each task corrupts). The clean batch is drawn first, exactly as
    /// [`TaskConfig::eval_batch`] draws it, then the corruptions; the same generator
    /// state gives the same pair.
    ///
    /// Refused for the next-token tasks (text, markov), for a configuration
    /// [`TaskConfig::check`] rejects, and where the vocabulary leaves a single token that
    /// could stand at the source.
    pub fn patch_pair(&self, batch: usize, rng: &mut StdRng) -> Result<PatchPair, PatchRefusal> {
        let refuse = |reason: String| PatchRefusal {
            task: self.kind.name(),
            reason,
        };
        match self.kind {
            TaskKind::Text => {
                return Err(refuse(
                    "changing one character changes the text's continuation differently at \
                     every later position, so there is no single answer to restore"
                        .into(),
                ));
            }
            TaskKind::Markov => {
                return Err(refuse(
                    "changing one state changes the in-context counts, and so the next \
                     state's distribution, differently at every later position, so there \
                     is no single answer to restore"
                        .into(),
                ));
            }
            _ => {}
        }
        self.check().map_err(|e| refuse(e.to_string()))?;
        let alphabet = self.source_alphabet().map_err(refuse)?;

        let clean: Vec<Example> = (0..batch)
            .map(|_| self.example_from(Split::Eval, rng))
            .collect();
        let n = self.seq_len;
        let mut corrupted = clean.clone();
        let mut positions = Vec::with_capacity(batch);
        let mut sources = Vec::with_capacity(batch);
        let mut clean_answers = Vec::with_capacity(batch);
        let mut corrupted_answers = Vec::with_capacity(batch);
        for (b, ex) in corrupted.iter_mut().enumerate() {
            let (q, s) = scored_dependency(ex, rng).map_err(refuse)?;
            let old = ex.tokens[s];
            let new = if self.kind == TaskKind::ZoologyMqar {
                // A value no pair holds: Zoology's values are distinct.
                let mut taken: Vec<i64> = (0..self.pairs).map(|p| ex.tokens[2 * p + 1]).collect();
                taken.sort_unstable();
                taken.dedup();
                free_token(&alphabet, &taken, rng)
            } else {
                other_token(&alphabet, old, rng)
            };
            ex.tokens[s] = new;
            // Every answer read from the replaced source follows it (only `q` here).
            for &(q2, k) in &ex.dependencies {
                if k == s {
                    ex.targets[q2] = new;
                }
            }
            positions.push(b * n + q);
            sources.push(b * n + s);
            clean_answers.push(old);
            corrupted_answers.push(new);
        }
        Ok(PatchPair {
            clean: self.batch_of(&clean),
            corrupted: self.batch_of(&corrupted),
            positions,
            sources,
            clean_answers,
            corrupted_answers,
        })
    }

    /// The tokens that may stand at a corrupted source (the task's answer tokens), or
    /// why a source cannot be swapped for another one.
    fn source_alphabet(&self) -> Result<Range<i64>, String> {
        let v = self.vocab as i64;
        let (range, what) = match self.kind {
            TaskKind::Recall => (0..v, "token"),
            TaskKind::Mqar => {
                let keys = (self.vocab.saturating_sub(1) / 2) as i64;
                (
                    1 + keys..v,
                    "value token (1 + (vocab - 1) / 2 to vocab - 1)",
                )
            }
            // `check` leaves a value no pair holds: vocab - vocab / 2 values, at least
            // one more than the vocab / 2 - 1 keys, and so than the pairs.
            TaskKind::ZoologyMqar => (v / 2..v, "value token (vocab / 2 to vocab - 1)"),
            TaskKind::Induction => (0..v - 1, "non-trigger token (0 to vocab - 2)"),
            TaskKind::SelectiveCopy => (1..v - 1, "content token (1 to vocab - 2)"),
            TaskKind::Text | TaskKind::Markov => {
                return Err("the next-token tasks have no pair".into());
            }
        };
        if range.end - range.start < 2 {
            return Err(format!(
                "task.vocab = {} leaves a single {what}, so the source cannot be replaced by another",
                self.vocab
            ));
        }
        Ok(range)
    }
}

/// The `(query, source)` dependency to corrupt in `ex`: uniform among the example's
/// dependencies (recall: every query `>= distance`; MQAR: one per pair; selective
/// copy: one per content token; induction has one).
fn scored_dependency(ex: &Example, rng: &mut StdRng) -> Result<(usize, usize), String> {
    match ex.dependencies.len() {
        0 => Err("the example has no position with a target".into()),
        1 => Ok(ex.dependencies[0]),
        len => Ok(ex.dependencies[rng.random_range(0..len)]),
    }
}

/// A token of `alphabet` other than `old`, uniform among the `len - 1` others
/// (`alphabet` holds at least two tokens; if `old` lies outside it, any of it).
fn other_token(alphabet: &Range<i64>, old: i64, rng: &mut StdRng) -> i64 {
    if !alphabet.contains(&old) {
        return rng.random_range(alphabet.clone());
    }
    let r = rng.random_range(alphabet.start..alphabet.end - 1);
    if r >= old { r + 1 } else { r }
}

/// A token of `alphabet` not in `taken` (sorted, distinct), uniform among the rest
/// (at least one is left, as [`TaskConfig::check`] ensures for Zoology's MQAR).
fn free_token(alphabet: &Range<i64>, taken: &[i64], rng: &mut StdRng) -> i64 {
    let inside = taken.iter().filter(|t| alphabet.contains(t)).count() as i64;
    let free = alphabet.end - alphabet.start - inside;
    let mut token = alphabet.start + rng.random_range(0..free.max(1));
    // Skip over each taken token at or below the candidate, in increasing order.
    for &t in taken.iter().filter(|t| alphabet.contains(t)) {
        if t <= token {
            token += 1;
        }
    }
    token
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::{IGNORE, SHIPPED_NAME};
    use rand::SeedableRng;

    fn cfg(kind: TaskKind) -> TaskConfig {
        TaskConfig {
            kind,
            seq_len: 48,
            vocab: 16,
            distance: 20,
            pairs: 6,
            tokens: 5,
            file: SHIPPED_NAME.into(),
            ..TaskConfig::default()
        }
    }

    /// The default shapes plus the smallest vocabularies each task allows a pair for,
    /// where collisions (repeated MQAR values, equal tokens) are common.
    fn configs() -> Vec<TaskConfig> {
        let mut out = Vec::new();
        for kind in TaskKind::ALL.into_iter().filter(|k| !k.measured_by_loss()) {
            out.push(cfg(kind));
        }
        out.push(TaskConfig {
            vocab: 2,
            distance: 1,
            ..cfg(TaskKind::Recall)
        });
        out.push(TaskConfig {
            vocab: 6,
            pairs: 2,
            ..cfg(TaskKind::Mqar)
        });
        out.push(TaskConfig {
            vocab: 5,
            pairs: 2,
            seq_len: 6,
            ..cfg(TaskKind::Mqar)
        });
        out.push(TaskConfig {
            vocab: 8,
            pairs: 3,
            seq_len: 12,
            ..cfg(TaskKind::ZoologyMqar)
        });
        out.push(TaskConfig {
            vocab: 3,
            distance: 46,
            ..cfg(TaskKind::Induction)
        });
        out.push(TaskConfig {
            vocab: 4,
            tokens: 24,
            ..cfg(TaskKind::SelectiveCopy)
        });
        out
    }

    fn value_range(c: &TaskConfig) -> Range<i64> {
        match c.kind {
            TaskKind::Recall => 0..c.vocab as i64,
            TaskKind::Mqar => 1 + ((c.vocab - 1) / 2) as i64..c.vocab as i64,
            TaskKind::ZoologyMqar => (c.vocab / 2) as i64..c.vocab as i64,
            TaskKind::Induction => 0..c.vocab as i64 - 1,
            TaskKind::SelectiveCopy => 1..c.vocab as i64 - 1,
            TaskKind::Text | TaskKind::Markov => unreachable!(),
        }
    }

    #[test]
    fn each_pair_differs_in_one_source_read_only_by_the_scored_query() {
        for c in configs() {
            let n = c.seq_len;
            for seed in 0..25 {
                let mut rng = StdRng::seed_from_u64(seed);
                let p = c.patch_pair(4, &mut rng).expect("pair");
                let (cl, co) = (&p.clean, &p.corrupted);
                assert_eq!((co.batch, co.seq_len), (4, n));
                assert_eq!(co.tokens.len(), cl.tokens.len());
                assert_eq!(co.distances, cl.distances);
                assert_eq!(p.positions.len(), 4);
                for b in 0..4 {
                    let row = b * n..(b + 1) * n;
                    let differ: Vec<usize> = row
                        .clone()
                        .filter(|&i| cl.tokens[i] != co.tokens[i])
                        .collect();
                    assert_eq!(differ, [p.sources[b]], "{:?} seed {seed}", c.kind);
                    let (i, s) = (p.positions[b], p.sources[b]);
                    assert!(row.contains(&i) && row.contains(&s));
                    assert_eq!(cl.distances[i] as usize, i - s, "{:?}", c.kind);
                    // The clean answer is the clean target, read from the source.
                    assert_eq!(p.clean_answers[b], cl.targets[i]);
                    assert_eq!(p.clean_answers[b], cl.tokens[s]);
                    // The corrupted answer is the corrupted token and differs.
                    assert_eq!(p.corrupted_answers[b], co.tokens[s]);
                    assert_eq!(p.corrupted_answers[b], co.targets[i]);
                    assert_ne!(p.corrupted_answers[b], p.clean_answers[b]);
                    let values = value_range(&c);
                    assert!(values.contains(&p.clean_answers[b]), "{:?}", c.kind);
                    assert!(values.contains(&p.corrupted_answers[b]), "{:?}", c.kind);
                    // Targets change only at the scored position.
                    let changed: Vec<usize> = row
                        .clone()
                        .filter(|&j| cl.targets[j] != co.targets[j])
                        .collect();
                    assert_eq!(changed, [i], "{:?} seed {seed}", c.kind);
                }
                assert!(co.tokens.iter().all(|&t| (0..c.vocab as i64).contains(&t)));
            }
        }
    }

    #[test]
    fn the_corrupted_targets_are_what_the_corrupted_tokens_imply() {
        // Regenerate each example's dependencies and check every target of the
        // corrupted batch against its source token.
        for c in configs() {
            let n = c.seq_len;
            let mut rng = StdRng::seed_from_u64(11);
            let p = c.patch_pair(3, &mut rng).expect("pair");
            let mut rng = StdRng::seed_from_u64(11);
            for b in 0..3 {
                let ex = c.example_from(Split::Eval, &mut rng);
                for j in 0..n {
                    let dep = ex.dependencies.iter().find(|&&(q, _)| q == j);
                    let want = dep.map_or(IGNORE, |&(_, k)| p.corrupted.tokens[b * n + k]);
                    assert_eq!(p.corrupted.targets[b * n + j], want, "{:?}", c.kind);
                }
            }
        }
    }

    #[test]
    fn the_scored_query_is_the_one_that_reads_the_source() {
        // MQAR: values repeat across pairs with 3 possible values; the scored query
        // must hold the key of the pair whose value was replaced.
        let c = TaskConfig {
            vocab: 7,
            pairs: 3,
            ..cfg(TaskKind::Mqar)
        };
        let n = c.seq_len;
        let mut rng = StdRng::seed_from_u64(4);
        let p = c.patch_pair(64, &mut rng).expect("pair");
        for b in 0..64 {
            let (i, s) = (p.positions[b], p.sources[b]);
            assert_eq!((s - b * n) % 2, 1, "a value slot");
            assert!(s - b * n < 2 * c.pairs);
            assert_eq!(p.clean.tokens[i], p.clean.tokens[s - 1], "the pair's key");
        }
        // Induction: the value after the first trigger, scored at the last position.
        let c = cfg(TaskKind::Induction);
        let mut rng = StdRng::seed_from_u64(4);
        let p = c.patch_pair(8, &mut rng).expect("pair");
        for b in 0..8 {
            assert_eq!(p.positions[b], b * n + n - 1);
            assert_eq!(p.sources[b], b * n + n - 1 - c.distance);
            assert_ne!(p.corrupted.tokens[p.sources[b]], c.vocab as i64 - 1);
        }
    }

    #[test]
    fn scored_positions_are_drawn_not_fixed() {
        for kind in [
            TaskKind::Recall,
            TaskKind::Mqar,
            TaskKind::ZoologyMqar,
            TaskKind::SelectiveCopy,
        ] {
            let c = cfg(kind);
            let mut rng = StdRng::seed_from_u64(9);
            let p = c.patch_pair(32, &mut rng).expect("pair");
            let mut qs: Vec<usize> = p.positions.iter().map(|i| i % c.seq_len).collect();
            qs.sort_unstable();
            qs.dedup();
            assert!(qs.len() > 3, "{kind:?}: {qs:?}");
        }
    }

    #[test]
    fn the_clean_half_is_the_evaluation_batch_and_a_seed_fixes_the_pair() {
        for c in configs() {
            let mut a = StdRng::seed_from_u64(21);
            let mut b = StdRng::seed_from_u64(21);
            let p = c.patch_pair(5, &mut a).expect("pair");
            assert_eq!(p.clean, c.eval_batch(5, &mut b), "{:?}", c.kind);
            let mut a = StdRng::seed_from_u64(21);
            assert_eq!(c.patch_pair(5, &mut a), Ok(p.clone()));
            let mut other = StdRng::seed_from_u64(22);
            assert_ne!(c.patch_pair(5, &mut other), Ok(p));
        }
    }

    #[test]
    fn zoology_replaces_a_value_with_one_no_pair_holds() {
        // vocab 8, 3 pairs: values from 4 to 7, so exactly one value is free.
        let c = TaskConfig {
            vocab: 8,
            pairs: 3,
            seq_len: 12,
            ..cfg(TaskKind::ZoologyMqar)
        };
        let mut rng = StdRng::seed_from_u64(5);
        let p = c.patch_pair(64, &mut rng).expect("pair");
        for b in 0..64 {
            let row = b * 12;
            let values: Vec<i64> = (0..3).map(|q| p.clean.tokens[row + 2 * q + 1]).collect();
            let new = p.corrupted_answers[b];
            assert!(!values.contains(&new), "{values:?} {new}");
            let free: Vec<i64> = (4..8).filter(|v| !values.contains(v)).collect();
            assert_eq!(free, [new]);
        }
        // Wider: the replacement is uniform among the free values.
        let c = cfg(TaskKind::ZoologyMqar);
        let p = c.patch_pair(400, &mut rng).expect("pair");
        let mut seen = std::collections::BTreeSet::new();
        for b in 0..400 {
            let row = b * c.seq_len;
            let values: Vec<i64> = (0..6).map(|q| p.clean.tokens[row + 2 * q + 1]).collect();
            assert!(!values.contains(&p.corrupted_answers[b]));
            seen.insert(p.corrupted_answers[b]);
        }
        assert_eq!(seen.len(), 8, "every value 8 to 15 is used: {seen:?}");
    }

    #[test]
    fn text_and_single_token_alphabets_are_refused_with_the_reason() {
        let mut rng = StdRng::seed_from_u64(1);
        let e = cfg(TaskKind::Text)
            .patch_pair(2, &mut rng)
            .expect_err("text has no pair");
        assert_eq!(e.task, "text");
        let msg = e.to_string();
        assert!(
            msg.starts_with("task.kind = \"text\": no clean/corrupted pair: "),
            "{msg}"
        );
        assert!(msg.contains("continuation"), "{msg}");
        let e = cfg(TaskKind::Markov)
            .patch_pair(2, &mut rng)
            .expect_err("markov has no pair");
        assert_eq!(e.task, "markov");
        assert!(e.reason.contains("every later position"), "{e}");

        let c = TaskConfig {
            vocab: 3,
            ..cfg(TaskKind::SelectiveCopy)
        };
        c.check().expect("a valid task");
        let e = c.patch_pair(2, &mut rng).expect_err("one content token");
        assert_eq!(e.task, "selective_copy");
        assert!(e.reason.contains("task.vocab = 3"), "{e}");

        let c = TaskConfig {
            vocab: 1,
            ..cfg(TaskKind::Recall)
        };
        let e = c.patch_pair(2, &mut rng).expect_err("one token");
        assert!(e.reason.contains("task.vocab = 1"), "{e}");

        let c = TaskConfig {
            distance: 48,
            ..cfg(TaskKind::Recall)
        };
        let e = c.patch_pair(2, &mut rng).expect_err("invalid task");
        assert!(e.reason.contains("task.distance = 48"), "{e}");
    }
}
