//! A fixed, finite training set (`train.examples`): drawn once, reshuffled every
//! epoch, batches taken in order.
//!
//! The examples are the first ones the run's fresh data stream would have drawn. The
//! training stream is the epochs' orders one after another (a batch may straddle two
//! epochs), and epoch `e`'s order is a shuffle seeded by the run's seed and `e`; so
//! the batch of any step is a function of the step alone, and a resumed run trains on
//! the batches the uninterrupted one would have.

use rand::{RngExt, SeedableRng, rngs::StdRng};

use super::{Batch, TaskConfig};

/// Mixed into the seed of the epochs' shuffles.
const SHUFFLE_SALT: u64 = 0x5_4FF1_E5EE_D000;

/// A fixed set of training examples, reshuffled every epoch.
pub struct FiniteSet {
    /// Every example, one batch of `len` rows.
    all: Batch,
    /// Seeds the epochs' shuffles.
    seed: u64,
    /// The last epoch whose order was computed, and that order.
    cached: Option<(usize, Vec<usize>)>,
}

impl FiniteSet {
    /// `examples` training examples of `task` (at least 1), drawn from `rng`; the
    /// epochs are shuffled with `seed`.
    pub fn draw(task: &TaskConfig, examples: usize, seed: u64, rng: &mut StdRng) -> Self {
        Self {
            all: task.batch(examples.max(1), rng),
            seed,
            cached: None,
        }
    }

    /// How many examples the set holds.
    pub fn len(&self) -> usize {
        self.all.batch
    }

    /// Whether the set is empty (never: it holds at least one example).
    pub fn is_empty(&self) -> bool {
        self.all.batch == 0
    }

    /// The order of epoch `epoch`: a permutation of the set's indices.
    pub fn epoch_order(&self, epoch: usize) -> Vec<usize> {
        let mixed = self.seed
            ^ SHUFFLE_SALT
            ^ (epoch as u64)
                .wrapping_add(1)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut rng = StdRng::seed_from_u64(mixed);
        let mut order: Vec<usize> = (0..self.len()).collect();
        for i in (1..order.len()).rev() {
            let j = rng.random_range(0..=i);
            order.swap(i, j);
        }
        order
    }

    /// The indices of the examples step `step` trains on (`step` counts from 1, as
    /// the trainer's steps do): positions `(step - 1) * batch ..` of the stream of
    /// epochs.
    pub fn indices(&mut self, step: usize, batch: usize) -> Vec<usize> {
        let n = self.len().max(1);
        let start = step.saturating_sub(1) * batch;
        (start..start + batch)
            .map(|i| {
                let (epoch, at) = (i / n, i % n);
                if self.cached.as_ref().is_none_or(|(e, _)| *e != epoch) {
                    self.cached = Some((epoch, self.epoch_order(epoch)));
                }
                self.cached
                    .as_ref()
                    .and_then(|(_, order)| order.get(at).copied())
                    .unwrap_or(at)
            })
            .collect()
    }

    /// The batch of `batch` examples step `step` (from 1) trains on.
    pub fn batch(&mut self, step: usize, batch: usize) -> Batch {
        let n = self.all.seq_len;
        let indices = self.indices(step, batch);
        let mut out = Batch {
            batch: indices.len(),
            seq_len: n,
            tokens: Vec::with_capacity(indices.len() * n),
            targets: Vec::with_capacity(indices.len() * n),
            distances: Vec::with_capacity(indices.len() * n),
        };
        for k in indices {
            let rows = k * n..(k + 1) * n;
            out.tokens.extend_from_slice(&self.all.tokens[rows.clone()]);
            out.targets
                .extend_from_slice(&self.all.targets[rows.clone()]);
            out.distances.extend_from_slice(&self.all.distances[rows]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> TaskConfig {
        TaskConfig {
            seq_len: 16,
            vocab: 8,
            distance: 4,
            ..TaskConfig::default()
        }
    }

    #[test]
    fn each_epoch_covers_the_set_once_in_a_new_order() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut set = FiniteSet::draw(&task(), 8, 1, &mut rng);
        assert_eq!(set.len(), 8);
        let epoch = |set: &mut FiniteSet, first: usize| {
            let mut seen = set.indices(first, 4);
            seen.extend(set.indices(first + 1, 4));
            seen
        };
        let first = epoch(&mut set, 1);
        let second = epoch(&mut set, 3);
        let sorted = |v: &[usize]| {
            let mut v = v.to_vec();
            v.sort_unstable();
            v
        };
        assert_eq!(sorted(&first), (0..8).collect::<Vec<_>>(), "{first:?}");
        assert_eq!(sorted(&second), (0..8).collect::<Vec<_>>(), "{second:?}");
        assert_ne!(first, second, "reshuffled");
        // The batches are the examples' rows: steps 1-2 and 3-4 hold the same rows.
        let rows =
            |b: &Batch| -> Vec<Vec<i64>> { b.tokens.chunks(16).map(<[i64]>::to_vec).collect() };
        let mut a = rows(&set.batch(1, 4));
        a.extend(rows(&set.batch(2, 4)));
        let mut b = rows(&set.batch(3, 4));
        b.extend(rows(&set.batch(4, 4)));
        a.sort();
        b.sort();
        assert_eq!(a, b);
    }

    #[test]
    fn a_batch_is_a_function_of_its_step() {
        let draw = || FiniteSet::draw(&task(), 6, 3, &mut StdRng::seed_from_u64(3));
        let mut walked = draw();
        let in_order: Vec<Batch> = (1..=7).map(|s| walked.batch(s, 4)).collect();
        let mut jumped = draw();
        assert_eq!(jumped.batch(7, 4), in_order[6], "a resumed run's batch");
        assert_eq!(jumped.batch(2, 4), in_order[1], "and back");
        // 6 examples, batches of 4: step 2 straddles epochs 0 and 1.
        let straddling = walked.indices(2, 4);
        assert_eq!(&straddling[..2], &walked.epoch_order(0)[4..]);
        assert_eq!(&straddling[2..], &walked.epoch_order(1)[..2]);
    }
}
