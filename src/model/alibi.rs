//! ALiBi (Press et al. 2022, "Train Short, Test Long"): attention with linear biases,
//! `model.positions = "alibi"`. No position embedding is added to the tokens; head `h`
//! adds `-m_h * |i - j|` to the score of query `i` and key `j` before the softmax, with
//! fixed slopes `m_h` (nothing is learned, and the bias has no gradient).
//!
//! The slopes are the paper's: for a power of two `h`, the geometric sequence
//! `2^(-8/h), 2^(-16/h), ..., 2^(-8)`; for any other count, those of the closest power
//! of two below, then every other slope of twice that count until there are `h`
//! (the reference code, `get_slopes` in ofirpress/attention_with_linear_biases).
//!
//! The distance is `|i - j|`, not `i - j`: on the pairs a causal mask leaves visible
//! (`j <= i`) the two are equal, and the absolute value defines the bias for the
//! non-causal patterns too (symmetric, as the paper's encoder variants use). Where the
//! bias lives: the fused CPU kernel adds it inside its score tile, forward and backward
//! (the plan carries the slopes, [`super::fused::AttentionPlan::with_alibi`]); the
//! composed paths (masked dense, block-sparse, the probe's weights) add a bias tensor
//! built on the device ([`Alibi::bias_tensor`], [`Alibi::bias_of`]).

use std::sync::Arc;

use burn::tensor::{Device, Int, Tensor, TensorData};

/// ALiBi's slopes for `heads` heads, head 0 first (Press et al. 2022).
///
/// A power of two `h` gets `2^(-8 i / h)` for `i = 1..=h`; any other count the slopes
/// of the closest power of two below, then every other slope of twice that count
/// (the 1st, 3rd, ...) until there are `heads`.
pub fn alibi_slopes(heads: usize) -> Vec<f32> {
    fn power_of_two(h: usize) -> impl Iterator<Item = f32> {
        (1..=h).map(move |i| 2f64.powf(-8.0 * i as f64 / h as f64) as f32)
    }
    if heads == 0 {
        return Vec::new();
    }
    if heads.is_power_of_two() {
        return power_of_two(heads).collect();
    }
    let below = 1usize << heads.ilog2();
    power_of_two(below)
        .chain(power_of_two(2 * below).step_by(2).take(heads - below))
        .collect()
}

/// The bias ALiBi adds to the score of query `i` and key `j` with slope `slope`:
/// `-slope * |i - j|`.
#[inline]
pub fn alibi_bias(slope: f32, i: usize, j: usize) -> f32 {
    -slope * i.abs_diff(j) as f32
}

/// ALiBi's per-head slopes for one model, shared by every layer.
#[derive(Clone, Debug, PartialEq)]
pub struct Alibi {
    slopes: Arc<[f32]>,
}

impl Alibi {
    /// The paper's slopes for `heads` heads ([`alibi_slopes`]).
    pub fn new(heads: usize) -> Self {
        Self {
            slopes: alibi_slopes(heads).into(),
        }
    }

    /// Heads (one slope each).
    pub fn heads(&self) -> usize {
        self.slopes.len()
    }

    /// The slopes, head 0 first.
    pub fn slopes(&self) -> &[f32] {
        &self.slopes
    }

    /// The slopes, shared without a copy (what a fused plan carries).
    pub fn shared_slopes(&self) -> Arc<[f32]> {
        self.slopes.clone()
    }

    /// `[1, heads, 1, 1]` slopes, negated (so `distance * this` is the bias).
    fn neg_slopes(&self, device: &Device) -> Tensor<4> {
        let heads = self.heads();
        let values: Vec<f32> = self.slopes.iter().map(|s| -s).collect();
        Tensor::from_data(TensorData::new(values, [1, heads, 1, 1]), device)
    }

    /// The bias of queries `0..rows` against keys `0..cols`, built on `device` from
    /// two position ranges (no `rows x cols` transfer): `-slope_h * |i - j|`.
    ///
    /// # Shapes
    /// `[1, heads, rows, cols]`: broadcasts over a batch of scores
    /// `[batch, heads, rows, cols]`.
    pub fn bias_tensor(&self, rows: usize, cols: usize, device: &Device) -> Tensor<4> {
        let positions = |len: usize| Tensor::<1, Int>::arange(0..len as i64, device).float();
        let queries = positions(rows).reshape([1, 1, rows, 1]);
        let keys = positions(cols).reshape([1, 1, 1, cols]);
        (queries - keys).abs() * self.neg_slopes(device)
    }

    /// The bias of arbitrary (query, key) pairs: `distances` holds `|i - j|` for each
    /// pair, `rows x cols` row-major (what a block-sparse layout gathers), built once.
    ///
    /// # Shapes
    /// `[1, heads, rows, cols]`.
    ///
    /// # Panics
    /// When `distances` is not `rows x cols` long.
    pub fn bias_of(
        &self,
        distances: Vec<f32>,
        rows: usize,
        cols: usize,
        device: &Device,
    ) -> Tensor<4> {
        assert_eq!(
            distances.len(),
            rows * cols,
            "ALiBi bias: {} distances for a {rows} x {cols} grid",
            distances.len()
        );
        let distances =
            Tensor::<4>::from_data(TensorData::new(distances, [1, 1, rows, cols]), device);
        distances * self.neg_slopes(device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_slopes(heads: usize, exponents: &[f64]) {
        let want: Vec<f32> = exponents.iter().map(|e| 2f64.powf(*e) as f32).collect();
        let got = alibi_slopes(heads);
        assert_eq!(got.len(), want.len(), "{heads} heads");
        for (h, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-7 * w,
                "{heads} heads, head {h}: {g} vs {w}"
            );
        }
    }

    #[test]
    fn slopes_of_a_power_of_two_are_the_papers() {
        // Press et al. 2022: 8 heads get 1/2, 1/4, ..., 1/256.
        assert_slopes(8, &[-1.0, -2.0, -3.0, -4.0, -5.0, -6.0, -7.0, -8.0]);
        // 16 heads: 1/sqrt(2), 1/2, ..., 1/256.
        let sixteen: Vec<f64> = (1..=16).map(|i| -0.5 * i as f64).collect();
        assert_slopes(16, &sixteen);
        assert_slopes(1, &[-8.0]);
        assert_slopes(2, &[-4.0, -8.0]);
        assert_slopes(4, &[-2.0, -4.0, -6.0, -8.0]);
        assert!(alibi_slopes(0).is_empty());
    }

    #[test]
    fn slopes_of_other_counts_follow_the_reference_code() {
        // get_slopes(6) = get_slopes_power_of_2(4) + get_slopes(8)[0::2][:2]:
        // [2^-2, 2^-4, 2^-6, 2^-8] + [2^-1, 2^-3].
        assert_slopes(6, &[-2.0, -4.0, -6.0, -8.0, -1.0, -3.0]);
        // get_slopes(3) = [2^-4, 2^-8] + get_slopes(4)[0::2][:1] = ... + [2^-2].
        assert_slopes(3, &[-4.0, -8.0, -2.0]);
        // 12 heads: the 8 of 8, then the odd-numbered of 16 (2^-0.5, 2^-1.5, ...).
        let mut twelve: Vec<f64> = (1..=8).map(|i| -(i as f64)).collect();
        twelve.extend([-0.5, -1.5, -2.5, -3.5]);
        assert_slopes(12, &twelve);
        // Every slope is in (0, 1) and distinct.
        for heads in 1..=40 {
            let s = alibi_slopes(heads);
            assert_eq!(s.len(), heads);
            assert!(s.iter().all(|&m| m > 0.0 && m < 1.0), "{heads}: {s:?}");
            for (a, x) in s.iter().enumerate() {
                assert!(s[a + 1..].iter().all(|y| y != x), "{heads}: {s:?}");
            }
        }
    }

    #[test]
    fn the_bias_is_minus_slope_times_distance() {
        assert_eq!(alibi_bias(0.5, 7, 3), -2.0);
        assert_eq!(alibi_bias(0.5, 3, 7), -2.0);
        assert_eq!(alibi_bias(0.25, 5, 5), 0.0);
        let device = Device::flex();
        let alibi = Alibi::new(4);
        let (rows, cols) = (5, 7);
        let dense = alibi
            .bias_tensor(rows, cols, &device)
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32");
        let distances: Vec<f32> = (0..rows)
            .flat_map(|i| (0..cols).map(move |j| i.abs_diff(j) as f32))
            .collect();
        let gathered = alibi
            .bias_of(distances, rows, cols, &device)
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32");
        assert_eq!(dense.len(), 4 * rows * cols);
        for (h, &slope) in alibi.slopes().iter().enumerate() {
            for i in 0..rows {
                for j in 0..cols {
                    let at = (h * rows + i) * cols + j;
                    let want = -slope * i.abs_diff(j) as f32;
                    assert_eq!(dense[at], want, "head {h} ({i}, {j})");
                    assert_eq!(gathered[at], want, "head {h} ({i}, {j})");
                    assert_eq!(alibi_bias(slope, i, j), want);
                }
            }
        }
    }
}
