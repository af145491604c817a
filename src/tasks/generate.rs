//! Drawing data: each task's sequences, targets and dependencies, and batches of
//! them, from a seeded generator.

use rand::{RngExt, SeedableRng, rngs::StdRng};

use super::data::partial_shuffle;
use super::text::{self, Split};
use super::{Batch, Example, IGNORE, TaskConfig, TaskKind};

impl TaskConfig {
    /// One seeded training example: tokens, targets and dependencies.
    pub fn example(&self, rng: &mut StdRng) -> Example {
        self.example_from(Split::Train, rng)
    }

    /// One seeded example of `split` (only the text task has separate parts; the
    /// synthetic tasks draw both from the same distribution).
    pub fn example_from(&self, split: Split, rng: &mut StdRng) -> Example {
        let n = self.seq_len;
        let mut tokens = vec![0i64; n];
        let mut targets = vec![IGNORE; n];
        let mut deps = Vec::new();
        match self.kind {
            TaskKind::Recall => {
                for t in tokens.iter_mut() {
                    *t = rng.random_range(0..self.vocab as i64);
                }
                for t in self.distance..n {
                    targets[t] = tokens[t - self.distance];
                    deps.push((t, t - self.distance));
                }
            }
            TaskKind::Induction => {
                let trigger = self.vocab as i64 - 1;
                for t in tokens.iter_mut() {
                    *t = rng.random_range(0..trigger);
                }
                let distance = if self.vary_distance {
                    rng.random_range(1..=self.distance)
                } else {
                    self.distance
                };
                let value_pos = n - 1 - distance;
                tokens[value_pos - 1] = trigger;
                tokens[n - 1] = trigger;
                targets[n - 1] = tokens[value_pos];
                deps.push((n - 1, value_pos));
            }
            TaskKind::Mqar => {
                let keys = (self.vocab - 1) / 2;
                let mut key_ids: Vec<i64> = (1..=keys as i64).collect();
                partial_shuffle(&mut key_ids, self.pairs, rng);
                let values: Vec<i64> = (0..self.pairs)
                    .map(|_| rng.random_range(1 + keys as i64..self.vocab as i64))
                    .collect();
                for p in 0..self.pairs {
                    tokens[2 * p] = key_ids[p];
                    tokens[2 * p + 1] = values[p];
                }
                let mut slots: Vec<usize> = (2 * self.pairs..n).collect();
                partial_shuffle(&mut slots, self.pairs, rng);
                for p in 0..self.pairs {
                    let q = slots[p];
                    tokens[q] = key_ids[p];
                    targets[q] = values[p];
                    deps.push((q, 2 * p + 1));
                }
            }
            TaskKind::ZoologyMqar => return super::zoology::example(self, rng),
            TaskKind::Markov => return super::markov::example(self, rng),
            TaskKind::Text => {
                // A file that cannot be read was refused by `check`; a text task
                // built without it yields filler rather than panic.
                if let Ok(corpus) = text::load(&self.file) {
                    (tokens, targets) = corpus.window(n, split, rng);
                }
            }
            TaskKind::SelectiveCopy => {
                let marker = self.vocab as i64 - 1;
                let body = n - self.tokens;
                let mut slots: Vec<usize> = (0..body).collect();
                partial_shuffle(&mut slots, self.tokens, rng);
                let mut chosen = slots[..self.tokens].to_vec();
                chosen.sort_unstable();
                for (k, &pos) in chosen.iter().enumerate() {
                    tokens[pos] = rng.random_range(1..marker);
                    let q = body + k;
                    tokens[q] = marker;
                    targets[q] = tokens[pos];
                    deps.push((q, pos));
                }
            }
        }
        Example {
            tokens,
            targets,
            dependencies: deps,
        }
    }

    /// A batch of `batch` training examples, flattened row-major `[batch, seq_len]`.
    pub fn batch(&self, batch: usize, rng: &mut StdRng) -> Batch {
        self.batch_from(Split::Train, batch, rng)
    }

    /// A batch of evaluation examples (the text's held-out part).
    pub fn eval_batch(&self, batch: usize, rng: &mut StdRng) -> Batch {
        self.batch_from(Split::Eval, batch, rng)
    }

    fn batch_from(&self, split: Split, batch: usize, rng: &mut StdRng) -> Batch {
        let examples: Vec<Example> = (0..batch).map(|_| self.example_from(split, rng)).collect();
        self.batch_of(&examples)
    }

    /// `examples` (each `seq_len` long) as one batch, with each answer's distance
    /// read from the examples' dependencies.
    pub(super) fn batch_of(&self, examples: &[Example]) -> Batch {
        let n = self.seq_len;
        let mut tokens = Vec::with_capacity(examples.len() * n);
        let mut targets = Vec::with_capacity(examples.len() * n);
        let mut distances = vec![0u32; examples.len() * n];
        for (b, ex) in examples.iter().enumerate() {
            for &(q, k) in &ex.dependencies {
                distances[b * n + q] = (q - k) as u32;
            }
            tokens.extend_from_slice(&ex.tokens);
            targets.extend_from_slice(&ex.targets);
        }
        Batch {
            batch: examples.len(),
            seq_len: n,
            tokens,
            targets,
            distances,
        }
    }

    /// The fixed example whose attention the trainer snapshots: the same for every
    /// run of an experiment with the same task and seed, so runs compare on one input.
    pub fn probe(&self, seed: u64) -> Example {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x9E37_79B9_7F4A_7C15);
        self.example_from(Split::Eval, &mut rng)
    }
}
