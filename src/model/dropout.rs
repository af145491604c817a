//! Dropout for one training step (`model.dropout`), with masks drawn from the run's
//! seed and the step rather than from the device's generator.
//!
//! burn's `Dropout` draws its masks from the backend's generator, which on the CPU is
//! one per process: runs training side by side would draw from each other's stream,
//! and a resumed run would drop other units than the run it continues. Here each
//! step's masks come from a generator seeded by `(seed, step)`, drawn in the order the
//! forward pass asks for them, so a run drops the same units alone, in a pool, or
//! resumed. Dropout is a training-step matter only: the models take a
//! [`StepDropout`] in [`super::SequenceModel::forward_train`] and never hold one, so
//! evaluation, probes, snapshots and interventions never drop, and a model's record
//! does not depend on the probability (it may change mid-run).

use burn::tensor::{Tensor, TensorData};
use rand::{RngExt, SeedableRng, rngs::StdRng};

/// Mixed into the seed of dropout's generator (apart from the data's and the
/// evaluation's streams of the same seed).
const DROPOUT_SALT: u64 = 0xD80F_0A7E_5EED_0001;

/// The dropout masks of one training step.
pub struct StepDropout {
    /// Probability that a unit is dropped, in `(0, 1)`.
    prob: f64,
    /// Draws the masks in the order the forward pass applies them.
    rng: StdRng,
}

impl StepDropout {
    /// Dropout with probability `prob` for step `step` of a run seeded `seed`; `None`
    /// when `prob` is 0 (or not a probability below 1), so a run without dropout
    /// runs exactly the forward pass it would without this type.
    pub fn new(prob: f64, seed: u64, step: usize) -> Option<Self> {
        let probability = prob > 0.0 && prob < 1.0;
        if !probability {
            return None;
        }
        let mixed = seed
            ^ DROPOUT_SALT
            ^ (step as u64)
                .wrapping_add(1)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Some(Self {
            prob,
            rng: StdRng::seed_from_u64(mixed),
        })
    }

    /// The probability that a unit is dropped.
    pub fn prob(&self) -> f64 {
        self.prob
    }

    /// `x` with each element zeroed with probability `prob` and the others scaled by
    /// `1 / (1 - prob)` (inverted dropout: the expected value is unchanged).
    ///
    /// # Shapes
    /// `x`: any → same.
    pub fn apply<const D: usize>(&mut self, x: Tensor<D>) -> Tensor<D> {
        let dims = x.dims();
        let count: usize = dims.iter().product();
        let keep = 1.0 - self.prob;
        let scale = (1.0 / keep) as f32;
        let keep = keep as f32;
        let mask: Vec<f32> = (0..count)
            .map(|_| {
                if self.rng.random::<f32>() < keep {
                    scale
                } else {
                    0.0
                }
            })
            .collect();
        let mask = Tensor::<D>::from_data(TensorData::new(mask, dims), &x.device());
        x * mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_probability_builds_nothing() {
        assert!(StepDropout::new(0.0, 1, 1).is_none());
        assert!(StepDropout::new(1.0, 1, 1).is_none());
        assert!(StepDropout::new(f64::NAN, 1, 1).is_none());
        assert!(StepDropout::new(0.1, 1, 1).is_some());
    }

    #[test]
    fn masks_follow_seed_and_step_and_keep_the_expected_value() {
        let device = burn::tensor::Device::flex();
        let ones = || Tensor::<2>::ones([64, 64], &device);
        let read = |t: Tensor<2>| t.into_data().try_to_vec::<f32>().expect("f32");
        let draw = |seed, step| {
            let mut d = StepDropout::new(0.25, seed, step).expect("dropout");
            read(d.apply(ones()))
        };
        let a = draw(7, 3);
        assert_eq!(a, draw(7, 3), "same seed and step, same mask");
        assert_ne!(a, draw(7, 4), "another step, another mask");
        assert_ne!(a, draw(8, 3), "another seed, another mask");
        let dropped = a.iter().filter(|&&v| v == 0.0).count() as f64 / a.len() as f64;
        assert!((dropped - 0.25).abs() < 0.03, "{dropped}");
        let kept: Vec<f32> = a.iter().copied().filter(|&v| v != 0.0).collect();
        assert!(kept.iter().all(|&v| (v - 1.0 / 0.75).abs() < 1e-6));
    }
}
