//! One optimiser step: the step the trainer runs and the benchmarks time, with the
//! run's optimiser ([`optimizer`]: Adam, or AdamW with `train.weight_decay`) and what a
//! step may add ([`StepOptions`]: the step's scheduled learning rate, dropout, global
//! gradient-norm clipping).

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{AdamConfig, AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};

use crate::config::{Settings, TrainConfig, lr_at};
use crate::model::{
    Mixing, ReadbackError, SequenceModel, StepDropout, accuracy, masked_cross_entropy, scalar,
    tokens_tensor,
};
use crate::tasks::Batch;

/// The run's optimiser: Adam, or AdamW (decoupled weight decay) when
/// `train.weight_decay` is above 0. Both keep the same state (two moments per
/// parameter), so a resumed run may change the weight decay.
pub fn optimizer(train: &TrainConfig) -> ModuleOptimizer {
    if train.weight_decay > 0.0 {
        AdamWConfig::new()
            .with_weight_decay(train.weight_decay as f32)
            .init()
    } else {
        AdamConfig::new().init()
    }
}

/// What one step does besides forward, loss, backward and update.
pub struct StepOptions {
    /// The step's learning rate.
    pub lr: f64,
    /// The step's dropout masks (`None`: no dropout).
    pub dropout: Option<StepDropout>,
    /// Largest global gradient norm (`None`: no clipping).
    pub grad_clip: Option<f64>,
}

impl StepOptions {
    /// A step at learning rate `lr`, without dropout or clipping.
    pub fn plain(lr: f64) -> Self {
        Self {
            lr,
            dropout: None,
            grad_clip: None,
        }
    }

    /// Step `step` (from 1) of a run with `settings`: its scheduled learning rate
    /// ([`lr_at`]), `model.dropout` with masks drawn from the seed and the step, and
    /// `train.grad_clip`.
    pub fn for_step(settings: &Settings, step: usize) -> Self {
        let train = &settings.train;
        Self {
            lr: lr_at(step, train),
            dropout: StepDropout::new(settings.model.dropout, train.seed, step),
            grad_clip: (train.grad_clip > 0.0).then_some(train.grad_clip),
        }
    }
}

/// What one training step measured (before the update).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepOutcome {
    /// Mean cross-entropy of the batch.
    pub loss: f64,
    /// Fraction of the batch's targets predicted exactly.
    pub accuracy: f64,
}

/// Forward, loss, backward and an Adam update of `model` on `batch`, as `options`
/// say (learning rate, dropout, gradient clipping); returns the updated model and the
/// batch's loss and accuracy (with dropout, of the dropped forward pass). A loss that
/// is not finite leaves the model as it was (no update with NaN gradients); the
/// caller decides what that means.
///
/// # Shapes
/// `batch.tokens`, `batch.targets`: `batch.batch * batch.seq_len`, row-major.
pub fn train_step<M: SequenceModel>(
    model: M,
    optim: &mut ModuleOptimizer,
    batch: &Batch,
    mixing: &Mixing,
    options: StepOptions,
    device: &Device,
) -> Result<(M, StepOutcome), ReadbackError> {
    let tokens = tokens_tensor(batch, device);
    let logits = match options.dropout {
        Some(mut dropout) => model.forward_train(tokens, mixing, &mut dropout),
        None => model.forward(tokens, mixing),
    };
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
    let mut grads = GradientsParams::from_grads(loss.backward(), &model);
    if let Some(max_norm) = options.grad_clip {
        grads = clip_grad_norm(grads, &model, max_norm);
    }
    Ok((optim.step(options.lr, model, grads), outcome))
}

/// The L2 norm of all of `model`'s gradients in `grads` together, as a `[1]` tensor
/// on the gradients' device (`None` when there are none).
pub fn grad_norm<M: Module>(grads: &GradientsParams, model: &M) -> Option<Tensor<1>> {
    let mut squares = SquaredNorm { grads, sum: None };
    model.visit(&mut squares);
    squares.sum.map(|sum| sum.sqrt())
}

/// Scales every gradient by `min(1, max_norm / (norm + 1e-6))`, `norm` the L2 norm of
/// all of them together ([`grad_norm`]), as PyTorch's `clip_grad_norm_` does: the
/// direction of the update is kept. (burn's own `GradientClipping::Norm` clips each
/// parameter's gradient by its own norm.) Computed on the device, without a read-back.
pub fn clip_grad_norm<M: Module>(
    mut grads: GradientsParams,
    model: &M,
    max_norm: f64,
) -> GradientsParams {
    let Some(norm) = grad_norm(&grads, model) else {
        return grads;
    };
    let coef = norm
        .add_scalar(1e-6)
        .recip()
        .mul_scalar(max_norm)
        .clamp_max(1.0);
    model.visit(&mut ScaleGrads {
        grads: &mut grads,
        coef,
    });
    grads
}

/// Sums the squares of every gradient of a module's float parameters.
struct SquaredNorm<'a> {
    grads: &'a GradientsParams,
    sum: Option<Tensor<1>>,
}

impl ModuleVisitor for SquaredNorm<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some(grad) = self.grads.get::<D>(param.id) else {
            return;
        };
        let square = grad.square().sum();
        self.sum = Some(match self.sum.take() {
            Some(sum) => sum + square,
            None => square,
        });
    }
}

/// Multiplies every gradient of a module's float parameters by `coef` (`[1]`).
struct ScaleGrads<'a> {
    grads: &'a mut GradientsParams,
    coef: Tensor<1>,
}

impl ModuleVisitor for ScaleGrads<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some(grad) = self.grads.remove::<D>(param.id) else {
            return;
        };
        let coef = self.coef.clone().unsqueeze::<D>();
        self.grads.register::<D>(param.id, grad * coef);
    }
}
