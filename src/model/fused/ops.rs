//! The element-wise fused operations and the linear layer as burn backend
//! extensions, each with its own backward pass: GELU, LayerNorm, softmax
//! cross-entropy with an ignore mask, and `x w + b`.
//! Same shape of code as the attention operation in the parent module: the inner
//! backend computes (and returns what the backward needs), `Autodiff` records it.
//! The `Flex` implementations check their tensors' shapes against each other (in
//! release builds too) before handing the data to the slice kernels, which check
//! the lengths again.

use std::sync::Arc;

use burn::backend::autodiff::{
    Autodiff,
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
};
use burn::backend::flex::{Flex, FlexTensor};
use burn::backend::tensor::FloatTensor;
use burn::backend::{AutodiffBackend, Backend, TensorMetadata, backend_extension};

use super::elementwise as cpu;
use super::linear;
use super::{check_shape, f32_data, flex_from, slice};

/// `(d_in, d_out)` of a linear layer's `weight` `[d_in, d_out]`, checked against its
/// input `x` `[.., d_in]`.
///
/// # Panics
/// When `weight` is not 2-D or `x`'s last dimension is not `d_in`.
fn linear_dims(what: &str, x: &FlexTensor, weight: &FlexTensor) -> (usize, usize) {
    let ws = weight.shape();
    let &[d_in, d_out] = ws.as_slice() else {
        panic!(
            "{what}: the weight is [d_in, d_out], got {:?}",
            ws.as_slice()
        );
    };
    let xs = x.shape();
    assert_eq!(
        xs.as_slice().last(),
        Some(&d_in),
        "{what}: x {:?} does not end in the weight's d_in",
        xs.as_slice()
    );
    (d_in, d_out)
}

/// `x`'s shape with its last dimension replaced by `last`.
fn with_last(x: &FlexTensor, last: usize) -> Vec<usize> {
    let mut dims = x.shape().as_slice().to_vec();
    if let Some(end) = dims.last_mut() {
        *end = last;
    }
    dims
}

/// The rows of LayerNorm's `x` `[.., d]` for `gamma` `[d]`.
///
/// # Panics
/// When `gamma` is not 1-D or `x`'s last dimension is not its length.
fn layer_norm_rows(what: &str, x: &FlexTensor, gamma: &FlexTensor) -> usize {
    let gs = gamma.shape();
    let &[d] = gs.as_slice() else {
        panic!("{what}: gamma is [d], got {:?}", gs.as_slice());
    };
    let xs = x.shape();
    assert_eq!(
        xs.as_slice().last(),
        Some(&d),
        "{what}: x {:?} does not end in gamma's {d}",
        xs.as_slice()
    );
    xs.as_slice().iter().product::<usize>() / d.max(1)
}

/// The rows of cross-entropy's `logits` `[rows, vocab]`, one per target.
///
/// # Panics
/// When `logits` is not 2-D or its rows are not one per target.
fn logit_rows(what: &str, logits: &FlexTensor, targets: &[i64]) -> usize {
    let ls = logits.shape();
    let &[rows, _] = ls.as_slice() else {
        panic!("{what}: logits are [rows, vocab], got {:?}", ls.as_slice());
    };
    assert_eq!(
        rows,
        targets.len(),
        "{what}: logits' rows are not one per target"
    );
    rows
}

/// GELU (erf form) with a fused, parallel backward.
#[backend_extension(Flex, Autodiff)]
pub trait FusedGelu: Backend {
    /// `x * Phi(x)`.
    fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// The gradient of `x` from the output's gradient.
    fn fused_gelu_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// LayerNorm over the last dimension, forward and backward in one pass each.
#[backend_extension(Flex, Autodiff)]
pub trait FusedLayerNorm: Backend {
    /// `y` and per row `(mean, rstd)` `[rows, 2]`.
    fn layer_norm_forward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        eps: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);
    /// `dx`, `dgamma`, `dbeta`.
    fn layer_norm_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
    /// `(x - mean) * rstd * gamma + beta`.
    fn fused_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        eps: f64,
    ) -> FloatTensor<Self>;
}

/// Mean softmax cross-entropy over the rows whose target is not negative.
#[backend_extension(Flex, Autodiff)]
pub trait FusedCrossEntropy: Backend {
    /// The loss `[1]` and per row the log-sum-exp.
    fn cross_entropy_forward(
        logits: FloatTensor<Self>,
        targets: Arc<Vec<i64>>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);
    /// The logits' gradient from the loss's gradient `grad` (`[1]`).
    fn cross_entropy_backward(
        logits: FloatTensor<Self>,
        lse: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        targets: Arc<Vec<i64>>,
    ) -> FloatTensor<Self>;
    /// The loss `[1]`.
    fn fused_cross_entropy(logits: FloatTensor<Self>, targets: Arc<Vec<i64>>) -> FloatTensor<Self>;
}

/// A linear layer `x w + b` (burn's `Linear` layout: `w` `[d_in, d_out]`) with the
/// bias fused into the product and its gradients from strided products.
#[backend_extension(Flex, Autodiff)]
pub trait FusedLinear: Backend {
    /// `x` `[.., d_in]` → `[.., d_out]`.
    fn fused_linear(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
    /// `dx`, `dw`, `db` from the output's gradient.
    fn fused_linear_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

impl FusedLinear for Flex {
    fn fused_linear(x: FlexTensor, weight: FlexTensor, bias: FlexTensor) -> FlexTensor {
        let what = "fused linear";
        let (d_in, d_out) = linear_dims(what, &x, &weight);
        check_shape(what, "bias", &bias, &[d_out]);
        let dims = with_last(&x, d_out);
        let (x, w, b) = (f32_data(x), f32_data(weight), f32_data(bias));
        let y = linear::forward(slice(&x), slice(&w), slice(&b), d_in, d_out);
        flex_from(y, dims)
    }

    fn fused_linear_backward(
        x: FlexTensor,
        weight: FlexTensor,
        grad: FlexTensor,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let what = "fused linear backward";
        let shape = x.shape();
        let (d_in, d_out) = linear_dims(what, &x, &weight);
        check_shape(what, "grad", &grad, &with_last(&x, d_out));
        let (x, w, g) = (f32_data(x), f32_data(weight), f32_data(grad));
        let (dx, dw, db) = linear::backward(slice(&x), slice(&w), slice(&g), d_in, d_out);
        (
            flex_from(dx, shape),
            flex_from(dw, [d_in, d_out]),
            flex_from(db, [d_out]),
        )
    }
}

impl FusedGelu for Flex {
    fn fused_gelu(x: FlexTensor) -> FlexTensor {
        let x = f32_data(x);
        let y = cpu::gelu(x.as_slice::<f32>().unwrap_or_default());
        flex_from(y, x.shape())
    }

    fn fused_gelu_backward(x: FlexTensor, grad: FlexTensor) -> FlexTensor {
        check_shape("fused gelu backward", "grad", &grad, x.shape().as_slice());
        let (x, grad) = (f32_data(x), f32_data(grad));
        flex_from(cpu::gelu_backward(slice(&x), slice(&grad)), x.shape())
    }
}

impl FusedLayerNorm for Flex {
    fn layer_norm_forward(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        eps: f64,
    ) -> (FlexTensor, FlexTensor) {
        let what = "fused layer norm";
        layer_norm_rows(what, &x, &gamma);
        check_shape(what, "beta", &beta, gamma.shape().as_slice());
        let (x, gamma, beta) = (f32_data(x), f32_data(gamma), f32_data(beta));
        let (y, stats) = cpu::layer_norm(slice(&x), slice(&gamma), slice(&beta), eps as f32);
        let rows = stats.len() / 2;
        (flex_from(y, x.shape()), flex_from(stats, [rows, 2]))
    }

    fn layer_norm_backward(
        x: FlexTensor,
        gamma: FlexTensor,
        stats: FlexTensor,
        grad: FlexTensor,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let what = "fused layer norm backward";
        let rows = layer_norm_rows(what, &x, &gamma);
        check_shape(what, "grad", &grad, x.shape().as_slice());
        check_shape(what, "stats", &stats, &[rows, 2]);
        let (x, gamma, stats, grad) = (
            f32_data(x),
            f32_data(gamma),
            f32_data(stats),
            f32_data(grad),
        );
        let (dx, dg, db) =
            cpu::layer_norm_backward(slice(&x), slice(&gamma), slice(&stats), slice(&grad));
        (
            flex_from(dx, x.shape()),
            flex_from(dg, gamma.shape()),
            flex_from(db, gamma.shape()),
        )
    }

    fn fused_layer_norm(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        eps: f64,
    ) -> FlexTensor {
        Self::layer_norm_forward(x, gamma, beta, eps).0
    }
}

impl FusedCrossEntropy for Flex {
    fn cross_entropy_forward(
        logits: FlexTensor,
        targets: Arc<Vec<i64>>,
    ) -> (FlexTensor, FlexTensor) {
        logit_rows("fused cross entropy", &logits, &targets);
        let logits = f32_data(logits);
        let (loss, lse) =
            cpu::cross_entropy(logits.as_slice::<f32>().unwrap_or_default(), &targets);
        let rows = lse.len();
        (flex_from(vec![loss], [1]), flex_from(lse, [rows]))
    }

    fn cross_entropy_backward(
        logits: FlexTensor,
        lse: FlexTensor,
        grad: FlexTensor,
        targets: Arc<Vec<i64>>,
    ) -> FlexTensor {
        let what = "fused cross entropy backward";
        let rows = logit_rows(what, &logits, &targets);
        check_shape(what, "lse", &lse, &[rows]);
        let (logits, lse, grad) = (f32_data(logits), f32_data(lse), f32_data(grad));
        let g = slice(&grad).first().copied().unwrap_or(0.0);
        flex_from(
            cpu::cross_entropy_backward(slice(&logits), &targets, slice(&lse), g),
            logits.shape(),
        )
    }

    fn fused_cross_entropy(logits: FlexTensor, targets: Arc<Vec<i64>>) -> FlexTensor {
        Self::cross_entropy_forward(logits, targets).0
    }
}

/// An inner backend's tensor as an untracked autodiff tensor (a gradient itself:
/// no second-order gradients).
pub(super) fn lift<B: Backend, C: CheckpointStrategy>(
    t: FloatTensor<B>,
) -> FloatTensor<Autodiff<B, C>> {
    <Autodiff<B, C> as AutodiffBackend>::from_inner(t)
}

impl<B: FusedGelu, C: CheckpointStrategy> FusedGelu for Autodiff<B, C> {
    fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct GeluBackward;

        impl<B: FusedGelu> Backward<B, 1> for GeluBackward {
            type State = FloatTensor<B>;

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let [node] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                if let Some(node) = node {
                    grads.register::<B>(node.id, B::fused_gelu_backward(ops.state, grad));
                }
            }
        }

        match GeluBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let inner = x.into_primitive();
                let y = B::fused_gelu(inner.clone());
                prep.finish(inner, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::fused_gelu(x.into_primitive())),
        }
    }

    fn fused_gelu_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        lift::<B, C>(B::fused_gelu_backward(
            x.into_primitive(),
            grad.into_primitive(),
        ))
    }
}

impl<B: FusedLinear, C: CheckpointStrategy> FusedLinear for Autodiff<B, C> {
    fn fused_linear(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct LinearBackward;

        impl<B: FusedLinear> Backward<B, 3> for LinearBackward {
            type State = (FloatTensor<B>, FloatTensor<B>);

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let [nx, nw, nb] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (x, w) = ops.state;
                let (dx, dw, db) = B::fused_linear_backward(x, w, grad);
                for (node, g) in [(nx, dx), (nw, dw), (nb, db)] {
                    if let Some(node) = node {
                        grads.register::<B>(node.id, g);
                    }
                }
            }
        }

        match LinearBackward
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (x, w) = (x.into_primitive(), weight.into_primitive());
                let y = B::fused_linear(x.clone(), w.clone(), bias.into_primitive());
                prep.finish((x, w), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::fused_linear(
                x.into_primitive(),
                weight.into_primitive(),
                bias.into_primitive(),
            )),
        }
    }

    fn fused_linear_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (dx, dw, db) = B::fused_linear_backward(
            x.into_primitive(),
            weight.into_primitive(),
            grad.into_primitive(),
        );
        (lift::<B, C>(dx), lift::<B, C>(dw), lift::<B, C>(db))
    }
}

impl<B: FusedLayerNorm, C: CheckpointStrategy> FusedLayerNorm for Autodiff<B, C> {
    fn layer_norm_forward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        eps: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (y, stats) = B::layer_norm_forward(
            x.into_primitive(),
            gamma.into_primitive(),
            beta.into_primitive(),
            eps,
        );
        (lift::<B, C>(y), lift::<B, C>(stats))
    }

    fn layer_norm_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (dx, dg, db) = B::layer_norm_backward(
            x.into_primitive(),
            gamma.into_primitive(),
            stats.into_primitive(),
            grad.into_primitive(),
        );
        (lift::<B, C>(dx), lift::<B, C>(dg), lift::<B, C>(db))
    }

    fn fused_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        eps: f64,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct LayerNormBackward;

        impl<B: FusedLayerNorm> Backward<B, 3> for LayerNormBackward {
            type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let [nx, ng, nb] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (x, gamma, stats) = ops.state;
                let (dx, dg, db) = B::layer_norm_backward(x, gamma, stats, grad);
                if let Some(node) = nx {
                    grads.register::<B>(node.id, dx);
                }
                if let Some(node) = ng {
                    grads.register::<B>(node.id, dg);
                }
                if let Some(node) = nb {
                    grads.register::<B>(node.id, db);
                }
            }
        }

        match LayerNormBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (x, gamma) = (x.into_primitive(), gamma.into_primitive());
                let (y, stats) =
                    B::layer_norm_forward(x.clone(), gamma.clone(), beta.into_primitive(), eps);
                prep.finish((x, gamma, stats), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::fused_layer_norm(
                x.into_primitive(),
                gamma.into_primitive(),
                beta.into_primitive(),
                eps,
            )),
        }
    }
}

impl<B: FusedCrossEntropy, C: CheckpointStrategy> FusedCrossEntropy for Autodiff<B, C> {
    fn cross_entropy_forward(
        logits: FloatTensor<Self>,
        targets: Arc<Vec<i64>>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (loss, lse) = B::cross_entropy_forward(logits.into_primitive(), targets);
        (lift::<B, C>(loss), lift::<B, C>(lse))
    }

    fn cross_entropy_backward(
        logits: FloatTensor<Self>,
        lse: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        targets: Arc<Vec<i64>>,
    ) -> FloatTensor<Self> {
        lift::<B, C>(B::cross_entropy_backward(
            logits.into_primitive(),
            lse.into_primitive(),
            grad.into_primitive(),
            targets,
        ))
    }

    fn fused_cross_entropy(logits: FloatTensor<Self>, targets: Arc<Vec<i64>>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct CrossEntropyBackward;

        impl<B: FusedCrossEntropy> Backward<B, 1> for CrossEntropyBackward {
            type State = (FloatTensor<B>, FloatTensor<B>, Arc<Vec<i64>>);

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let [node] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                if let Some(node) = node {
                    let (logits, lse, targets) = ops.state;
                    grads.register::<B>(
                        node.id,
                        B::cross_entropy_backward(logits, lse, grad, targets),
                    );
                }
            }
        }

        match CrossEntropyBackward
            .prepare::<C>([logits.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let logits = logits.into_primitive();
                let (loss, lse) = B::cross_entropy_forward(logits.clone(), targets.clone());
                prep.finish((logits, lse, targets), loss)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::fused_cross_entropy(logits.into_primitive(), targets))
            }
        }
    }
}
