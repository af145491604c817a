//! Cross-entropy over the positions that carry a target.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};

use crate::tasks::IGNORE;

/// Mean cross-entropy over positions whose target is not [`IGNORE`].
///
/// # Shapes
/// `logits`: `[batch, seq, vocab]`; `targets`: `batch * seq` values, row-major.
/// Returns a scalar tensor `[1]`.
pub fn masked_cross_entropy(logits: Tensor<3>, targets: &[i64]) -> Tensor<1> {
    let [batch, seq, vocab] = logits.dims();
    let device = logits.device();
    let rows = batch * seq;
    let clamped: Vec<i64> = targets.iter().map(|&t| t.max(0)).collect();
    let weights: Vec<f32> = targets
        .iter()
        .map(|&t| if t == IGNORE { 0.0 } else { 1.0 })
        .collect();
    let count = weights.iter().filter(|&&w| w > 0.0).count().max(1);
    let index = Tensor::<2, Int>::from_data(TensorData::new(clamped, [rows, 1]), &device);
    let weight = Tensor::<1>::from_data(TensorData::new(weights, [rows]), &device);
    let log_probs = log_softmax(logits.reshape([rows, vocab]), 1);
    let picked = log_probs.gather(1, index).reshape([rows]);
    picked.mul(weight).sum().neg().div_scalar(count as f64)
}
