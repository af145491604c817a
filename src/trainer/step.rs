//! One optimiser step: the step the trainer runs and the benchmarks time.

use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::model::{
    AttentionKernels, ReadbackError, SequenceModel, accuracy, masked_cross_entropy, scalar,
};
use crate::tasks::Batch;

/// What one training step measured (before the update).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepOutcome {
    /// Mean cross-entropy of the batch.
    pub loss: f64,
    /// Fraction of the batch's targets predicted exactly.
    pub accuracy: f64,
}

/// Forward, loss, backward and an Adam update of `model` on `batch`; returns the
/// updated model and the batch's loss and accuracy. A loss that is not finite leaves
/// the model as it was (no update with NaN gradients); the caller decides what that
/// means.
///
/// # Shapes
/// `batch.tokens`, `batch.targets`: `batch.batch * batch.seq_len`, row-major.
pub fn train_step<M: SequenceModel>(
    model: M,
    optim: &mut ModuleOptimizer,
    batch: &Batch,
    kernels: &AttentionKernels,
    lr: f64,
    device: &Device,
) -> Result<(M, StepOutcome), ReadbackError> {
    let tokens = tokens_tensor(batch, device);
    let logits = model.forward(tokens, kernels);
    let loss = masked_cross_entropy(logits.clone(), &batch.targets);
    let loss_value = scalar(loss.clone(), "the training loss")?;
    let accuracy = accuracy(logits.detach(), &batch.targets)?;
    let outcome = StepOutcome {
        loss: loss_value,
        accuracy,
    };
    if !loss_value.is_finite() {
        return Ok((model, outcome));
    }
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    Ok((optim.step(lr, model, grads), outcome))
}

/// Tokens of a batch as an int tensor `[batch, seq]`.
pub fn tokens_tensor(batch: &Batch, device: &Device) -> Tensor<2, Int> {
    Tensor::from_data(
        TensorData::new(batch.tokens.clone(), [batch.batch, batch.seq_len]),
        device,
    )
}
