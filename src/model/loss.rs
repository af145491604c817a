//! Cross-entropy and accuracy over the positions that carry a target.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};

use crate::tasks::IGNORE;

/// A tensor could not be read back from the device as numbers.
#[derive(Clone, Debug, thiserror::Error)]
#[error("cannot read {what} back from the device: {message}")]
pub struct ReadbackError {
    /// What was being read.
    pub what: &'static str,
    /// burn's reason.
    pub message: String,
}

/// Reads every element of `data` as `E`.
pub fn read_back<E: burn::tensor::Element>(
    data: TensorData,
    what: &'static str,
) -> Result<Vec<E>, ReadbackError> {
    data.try_into_vec_as::<E>().map_err(|e| ReadbackError {
        what,
        message: e.to_string(),
    })
}

/// Mean cross-entropy over positions whose target is not [`IGNORE`].
///
/// # Shapes
/// `logits`: `[batch, seq, vocab]`; `targets`: `batch * seq` values, row-major.
/// Returns a scalar tensor `[1]`.
pub fn masked_cross_entropy(logits: Tensor<3>, targets: &[i64]) -> Tensor<1> {
    let [batch, seq, vocab] = logits.dims();
    let device = logits.device();
    let rows = batch * seq;
    let logits = logits.reshape([rows, vocab]);
    if let Some(loss) = super::fused::cross_entropy(logits.clone(), targets) {
        return loss;
    }
    let clamped: Vec<i64> = targets.iter().map(|&t| t.max(0)).collect();
    let weights: Vec<f32> = targets
        .iter()
        .map(|&t| if t == IGNORE { 0.0 } else { 1.0 })
        .collect();
    let count = weights.iter().filter(|&&w| w > 0.0).count().max(1);
    let index = Tensor::<2, Int>::from_data(TensorData::new(clamped, [rows, 1]), &device);
    let weight = Tensor::<1>::from_data(TensorData::new(weights, [rows]), &device);
    let log_probs = log_softmax(logits, 1);
    let picked = log_probs.gather(1, index).reshape([rows]);
    picked.mul(weight).sum().neg().div_scalar(count as f64)
}

/// The value of a scalar tensor `[1]`.
pub fn scalar(t: Tensor<1>, what: &'static str) -> Result<f64, ReadbackError> {
    let values = read_back::<f32>(t.into_data(), what)?;
    values.first().map(|&v| f64::from(v)).ok_or(ReadbackError {
        what,
        message: "the tensor is empty".into(),
    })
}

/// Fraction of positions with a target whose arg-max prediction is right (0 when no
/// position has a target).
///
/// # Shapes
/// `logits`: `[batch, seq, vocab]`; `targets`: `batch * seq`, row-major.
pub fn accuracy(logits: Tensor<3>, targets: &[i64]) -> Result<f64, ReadbackError> {
    let predicted = predictions(logits)?;
    Ok(accuracy_of(&predicted, targets))
}

/// The arg-max token at every position, row-major `[batch * seq]`.
pub fn predictions(logits: Tensor<3>) -> Result<Vec<i64>, ReadbackError> {
    read_back::<i64>(logits.argmax(2).into_data(), "the predictions")
}

/// Fraction of positions with a target that `predicted` gets right (0 when none has
/// a target).
pub fn accuracy_of(predicted: &[i64], targets: &[i64]) -> f64 {
    let (mut right, mut counted) = (0usize, 0usize);
    for (p, &t) in predicted.iter().zip(targets) {
        if t != IGNORE {
            counted += 1;
            right += usize::from(*p == t);
        }
    }
    if counted == 0 {
        0.0
    } else {
        right as f64 / counted as f64
    }
}
