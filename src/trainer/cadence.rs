//! When a periodic action of a run falls due. Evaluation, attention snapshots and
//! checkpoints each happen every `n` steps (`train.eval_every`, `snapshot_every`,
//! `checkpoint_every`) and once more at the last step, so a run always ends with
//! fresh metrics, a last snapshot and a checkpoint to resume from.

/// The steps of a run (`1..=total_steps`) on which one action is due: every
/// `every`-th step, and the last step whatever `every` is (`every = 0`: only the
/// last).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Cadence {
    /// The period in steps; 0 means none.
    every: usize,
    /// The run's last step.
    last: usize,
}

impl Cadence {
    /// Due every `every` steps and at `total_steps`, the run's last step (`every = 0`:
    /// only there).
    pub(super) fn every(every: usize, total_steps: usize) -> Self {
        Self {
            every,
            last: total_steps,
        }
    }

    /// Whether the action falls on `step` (a trained step, `1..=total_steps`).
    pub(super) fn due(self, step: usize) -> bool {
        step == self.last || (self.every > 0 && step.is_multiple_of(self.every))
    }
}

#[cfg(test)]
mod tests {
    use super::Cadence;

    /// The steps of a `steps`-step run on which a cadence of `every` is due.
    fn due_steps(every: usize, steps: usize) -> Vec<usize> {
        let cadence = Cadence::every(every, steps);
        (1..=steps).filter(|&step| cadence.due(step)).collect()
    }

    #[test]
    fn due_every_n_steps_and_at_the_last() {
        assert_eq!(due_steps(3, 7), [3, 6, 7]);
        assert_eq!(due_steps(2, 6), [2, 4, 6]);
        assert_eq!(due_steps(1, 4), [1, 2, 3, 4]);
        assert_eq!(due_steps(5, 12), [5, 10, 12]);
    }

    #[test]
    fn zero_means_only_at_the_last_step() {
        assert_eq!(due_steps(0, 5), [5]);
        assert_eq!(due_steps(0, 1), [1]);
    }

    #[test]
    fn a_period_longer_than_the_run_is_due_only_at_the_last_step() {
        assert_eq!(due_steps(10, 4), [4]);
        assert_eq!(due_steps(4, 4), [4]);
    }

    #[test]
    fn a_run_without_steps_has_nothing_due() {
        assert_eq!(due_steps(3, 0), Vec::<usize>::new());
    }
}
