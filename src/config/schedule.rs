//! The learning rate of each step: `train.warmup` steps of linear warm-up from 0 to
//! `train.lr`, then `train.schedule` (constant, or a cosine or linear decay that
//! reaches 0 at the last step, `train.steps`).
//!
//! Steps count from 1, as the run's metrics and checkpoints number them: step 1 is the
//! first update. A resumed run continues from its checkpoint's step, so its schedule
//! goes on where it stopped; `--steps` (a run extended) stretches the decay that is
//! left over the new length.

use super::{LrSchedule, TrainConfig};

/// The learning rate of step `step` (1-based: the first update is step 1).
///
/// During the warm-up (`step <= warmup`) it is `lr * step / warmup`: step 1 uses
/// `lr / warmup`, step `warmup` the full `lr`. After it, `constant` keeps `lr`;
/// `cosine` is `lr * (1 + cos(pi * p)) / 2` and `linear` is `lr * (1 - p)`, where
/// `p = (step - warmup) / (steps - warmup)` runs from just above 0 to 1 at the last
/// step, whose rate is therefore 0. Steps past `train.steps` keep the last step's rate.
pub fn lr_at(step: usize, train: &TrainConfig) -> f64 {
    let lr = train.lr;
    let warmup = train.warmup;
    if step <= warmup {
        return lr * step as f64 / warmup as f64;
    }
    // step > warmup, so steps > warmup whenever step <= steps.
    let span = train.steps.saturating_sub(warmup);
    if span == 0 {
        return lr;
    }
    let p = ((step - warmup) as f64 / span as f64).min(1.0);
    match train.schedule {
        LrSchedule::Constant => lr,
        LrSchedule::Cosine => lr * 0.5 * (1.0 + (std::f64::consts::PI * p).cos()),
        LrSchedule::Linear => lr * (1.0 - p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn train(steps: usize, warmup: usize, schedule: LrSchedule) -> TrainConfig {
        TrainConfig {
            steps,
            warmup,
            schedule,
            lr: 1e-3,
            ..TrainConfig::default()
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12
    }

    #[test]
    fn the_default_is_todays_constant_rate() {
        let t = TrainConfig::default();
        for step in [1, 2, t.steps / 2, t.steps] {
            assert_eq!(lr_at(step, &t), t.lr);
        }
    }

    #[test]
    fn warmup_rises_linearly_from_the_first_step() {
        let t = train(100, 10, LrSchedule::Constant);
        assert!(close(lr_at(1, &t), 1e-3 / 10.0), "{}", lr_at(1, &t));
        assert!(close(lr_at(5, &t), 1e-3 * 5.0 / 10.0));
        assert!(close(lr_at(10, &t), 1e-3));
        assert!(close(lr_at(11, &t), 1e-3));
        assert!(close(lr_at(100, &t), 1e-3));
    }

    #[test]
    fn cosine_and_linear_reach_zero_at_the_last_step() {
        for schedule in [LrSchedule::Cosine, LrSchedule::Linear] {
            let t = train(110, 10, schedule);
            assert!(
                close(lr_at(10, &t), 1e-3),
                "{schedule:?} full after warm-up"
            );
            assert!(lr_at(11, &t) < 1e-3 && lr_at(11, &t) > 0.98e-3);
            assert!(close(lr_at(110, &t), 0.0), "{schedule:?} at the last step");
            assert!(close(lr_at(500, &t), 0.0), "{schedule:?} past the end");
            let mut last = f64::INFINITY;
            for step in 10..=110 {
                let lr = lr_at(step, &t);
                assert!(lr <= last, "{schedule:?} never rises after the warm-up");
                last = lr;
            }
        }
        // Halfway through the decay: linear is at half, cosine too (cos(pi/2) = 0).
        let linear = train(110, 10, LrSchedule::Linear);
        assert!(close(lr_at(60, &linear), 0.5e-3));
        let cosine = train(110, 10, LrSchedule::Cosine);
        assert!(close(lr_at(60, &cosine), 0.5e-3));
        // A quarter of the way: cosine is still above the line.
        assert!(lr_at(35, &cosine) > lr_at(35, &linear));
    }

    #[test]
    fn a_warmup_as_long_as_the_run_never_decays() {
        let t = train(10, 10, LrSchedule::Cosine);
        assert!(close(lr_at(10, &t), 1e-3));
        assert!(close(lr_at(11, &t), 1e-3));
        let t = train(10, 0, LrSchedule::Linear);
        assert!(close(lr_at(1, &t), 1e-3 * 0.9));
        assert!(close(lr_at(10, &t), 0.0));
    }
}
