//! Evaluation at `train.eval_lengths` while a run trains. For each length: the plan at
//! that length ([`RunPlan::at_length`]: the task generated there, the patterns
//! planned for it), its attention kernels on the evaluation device, and a fixed
//! held-out set generated at that length once, from the run's seed and the length
//! ([`eval_seed`]), as many batches as the main held-out set. Every evaluation scores
//! them after the main set (`fit`), with the same stop checks between batches.

use burn::tensor::Device;
use rand::{SeedableRng, rngs::StdRng};

use crate::config::RunPlan;
use crate::inspect::score_while;
use crate::model::{Mixing, ReadbackError, SequenceModel, SparseMode};
use crate::records::{LengthScores, Metrics};
use crate::tasks::Batch;

/// Mixed into `train.seed` to seed the run's main held-out set.
pub(super) const EVAL_SEED_MIX: u64 = 0x5EED_E7A1;

/// The seed of a run's held-out set at `seq_len` (`seed`: `train.seed`): the main
/// set's seed with the length in its high 32 bits, so each length's set depends on
/// the run's seed and that length alone (listing another length changes no other
/// set) and none is the main set (a length is at least 2).
pub(super) fn eval_seed(seed: u64, seq_len: usize) -> u64 {
    seed ^ EVAL_SEED_MIX ^ ((seq_len as u64) << 32)
}

/// One evaluation length of a run, ready to score.
pub(super) struct LengthSet {
    /// The sequence length.
    pub(super) seq_len: usize,
    /// The layers' mixing planned for that length, on the evaluation device.
    pub(super) mixing: Mixing,
    /// The fixed held-out batches at that length: `train.eval_batches` of
    /// `train.batch` sequences.
    pub(super) batches: Vec<Batch>,
}

/// The sets of `plan`'s `train.eval_lengths`, shortest first, with kernels on
/// `device`. `Err` says which length cannot be planned (validation refuses such
/// plans, so it does not happen to a plan that passed it).
pub(super) fn length_sets(plan: &RunPlan, device: &Device) -> Result<Vec<LengthSet>, String> {
    let train = &plan.settings().train;
    let mut lengths = train.eval_lengths.clone();
    lengths.sort_unstable();
    lengths.dedup();
    lengths
        .into_iter()
        .map(|n| {
            let at = plan
                .at_length(n)
                .map_err(|e| format!("train.eval_lengths: cannot evaluate at {n}: {e}"))?;
            let task = &at.settings().task;
            let mut rng = StdRng::seed_from_u64(eval_seed(train.seed, n));
            let batches = (0..train.eval_batches)
                .map(|_| task.eval_batch(train.batch, &mut rng))
                .collect();
            Ok(LengthSet {
                seq_len: n,
                mixing: Mixing::for_plan(&at, device, SparseMode::WherePaysOff),
                batches,
            })
        })
        .collect()
}

/// `model`'s scores (the evaluation copy, on `device`) on every set, stamped with
/// `step`; `go_on` is asked after every batch, and once it says no each remaining
/// length is scored on one batch only. `elapsed_secs` is left 0: the caller stamps
/// the time once every length is done.
pub(super) fn score_lengths<M: SequenceModel>(
    model: &M,
    sets: &[LengthSet],
    device: &Device,
    step: usize,
    mut go_on: impl FnMut() -> bool,
) -> Result<Vec<LengthScores>, ReadbackError> {
    let mut out = Vec::with_capacity(sets.len());
    for set in sets {
        let s = score_while(model, &set.mixing, &set.batches, device, step, &mut go_on)?;
        out.push(LengthScores {
            seq_len: set.seq_len,
            metrics: Metrics {
                step,
                loss: s.loss,
                accuracy: s.accuracy,
                elapsed_secs: 0.0,
            },
            by_distance: s.by_distance,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_length_has_its_own_seed_apart_from_the_main_set() {
        let seeds: Vec<u64> = [2, 64, 128, 8192].map(|n| eval_seed(7, n)).to_vec();
        for (i, s) in seeds.iter().enumerate() {
            assert_ne!(*s, 7 ^ EVAL_SEED_MIX);
            assert!(!seeds[..i].contains(s));
        }
        assert_eq!(eval_seed(7, 64), eval_seed(7, 64));
        assert_ne!(eval_seed(7, 64), eval_seed(8, 64));
    }
}
