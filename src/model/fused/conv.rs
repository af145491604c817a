//! A causal depthwise convolution as one fused CPU operation with its own backward:
//! `y[b, t, c] = sum_{k <= t, k < taps} h[c, k] u[b, t - k, c]`, the gated
//! convolution's long filter and its short one. Memory grows like `n x d` (burn's
//! composed form builds an `n x n` Toeplitz matrix per channel); the arithmetic is the
//! direct sum, `n x taps` per channel and sequence. Channels are split over rayon's
//! threads.

use burn::backend::autodiff::{
    Autodiff,
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
};
use burn::backend::flex::{Flex, FlexTensor};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, TensorMetadata, backend_extension};
use burn::tensor::Tensor;
use rayon::prelude::*;

use super::ops::lift;
use super::{Op, applies, f32_data, flex_from, slice};

/// The causal depthwise convolution.
#[backend_extension(Flex, Autodiff)]
pub trait FusedCausalConv: Backend {
    /// `y` `[batch, n, d]` of `u` `[batch, n, d]` and `taps` `[d, taps]`.
    fn causal_conv(u: FloatTensor<Self>, taps: FloatTensor<Self>) -> FloatTensor<Self>;
    /// The gradients of `u` and `taps` from `y`'s gradient `grad`.
    fn causal_conv_backward(
        u: FloatTensor<Self>,
        taps: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);
}

/// `u` convolved causally with each channel's `taps`, fused on the CPU backend; `None`
/// elsewhere (the caller composes it).
///
/// # Shapes
/// `u`: `[batch, n, d]`; `taps`: `[d, taps]` → `[batch, n, d]`.
pub fn causal_conv(u: &Tensor<3>, taps: &Tensor<2>) -> Option<Tensor<3>> {
    let [_, _, d] = u.dims();
    if !applies(Op::Conv, u) || u.dims().contains(&0) || taps.dims() != [d, taps.dims()[1]] {
        return None;
    }
    Some(Tensor::from_dispatch(
        <Dispatch as FusedCausalConv>::causal_conv(
            u.clone().into_dispatch(),
            taps.clone().into_dispatch(),
        ),
    ))
}

/// `(batch, n, d, taps)`, the shapes checked.
fn conv_dims(u: &FlexTensor, taps: &FlexTensor) -> (usize, usize, usize, usize) {
    let shape = u.shape();
    let &[batch, n, d] = shape.as_slice() else {
        panic!("fused causal conv: u is [batch, n, d], got {shape:?}");
    };
    let t_shape = taps.shape();
    let &[td, len] = t_shape.as_slice() else {
        panic!("fused causal conv: taps is [d, taps], got {t_shape:?}");
    };
    assert_eq!(td, d, "fused causal conv: {td} filters for {d} channels");
    (batch, n, d, len)
}

/// Channel `c` of `x` `[batch, n, d]` as `batch x n` contiguous values.
fn channel(x: &[f32], (batch, n, d): (usize, usize, usize), c: usize) -> Vec<f32> {
    (0..batch * n).map(|i| x[i * d + c]).collect()
}

/// The convolution of one channel's sequences `u` (`batch x n`) with `h`.
fn convolve(u: &[f32], h: &[f32], n: usize) -> Vec<f32> {
    let mut y = vec![0f32; u.len()];
    for (ys, us) in y.chunks_mut(n).zip(u.chunks(n)) {
        for (t, out) in ys.iter_mut().enumerate() {
            let reach = h.len().min(t + 1);
            *out = (0..reach).map(|k| h[k] * us[t - k]).sum();
        }
    }
    y
}

/// Channel-major values (`d` blocks of `batch x n`) back to `[batch, n, d]`.
fn interleave(blocks: &[Vec<f32>], (batch, n, d): (usize, usize, usize)) -> Vec<f32> {
    let mut out = vec![0f32; batch * n * d];
    for (c, block) in blocks.iter().enumerate() {
        for (i, &v) in block.iter().enumerate() {
            out[i * d + c] = v;
        }
    }
    out
}

impl FusedCausalConv for Flex {
    fn causal_conv(u: FlexTensor, taps: FlexTensor) -> FlexTensor {
        let (batch, n, d, len) = conv_dims(&u, &taps);
        let (u, taps) = (f32_data(u), f32_data(taps));
        let (us, hs) = (slice(&u), slice(&taps));
        let blocks: Vec<Vec<f32>> = (0..d)
            .into_par_iter()
            .map(|c| {
                convolve(
                    &channel(us, (batch, n, d), c),
                    &hs[c * len..(c + 1) * len],
                    n,
                )
            })
            .collect();
        flex_from(interleave(&blocks, (batch, n, d)), [batch, n, d])
    }

    fn causal_conv_backward(
        u: FlexTensor,
        taps: FlexTensor,
        grad: FlexTensor,
    ) -> (FlexTensor, FlexTensor) {
        let (batch, n, d, len) = conv_dims(&u, &taps);
        super::check_shape("fused causal conv backward", "grad", &grad, &[batch, n, d]);
        let (u, taps, grad) = (f32_data(u), f32_data(taps), f32_data(grad));
        let (us, hs, gs) = (slice(&u), slice(&taps), slice(&grad));
        let per_channel: Vec<(Vec<f32>, Vec<f32>)> = (0..d)
            .into_par_iter()
            .map(|c| {
                let (uc, gc) = (channel(us, (batch, n, d), c), channel(gs, (batch, n, d), c));
                let h = &hs[c * len..(c + 1) * len];
                let mut gu = vec![0f32; batch * n];
                let mut gh = vec![0f32; len];
                for ((gus, us), gys) in gu.chunks_mut(n).zip(uc.chunks(n)).zip(gc.chunks(n)) {
                    for (s, g) in gus.iter_mut().enumerate() {
                        let reach = len.min(n - s);
                        *g = (0..reach).map(|k| h[k] * gys[s + k]).sum();
                    }
                    for (k, gk) in gh.iter_mut().enumerate().take(n) {
                        *gk += (k..n).map(|t| gys[t] * us[t - k]).sum::<f32>();
                    }
                }
                (gu, gh)
            })
            .collect();
        let (gu, gh): (Vec<Vec<f32>>, Vec<Vec<f32>>) = per_channel.into_iter().unzip();
        (
            flex_from(interleave(&gu, (batch, n, d)), [batch, n, d]),
            flex_from(gh.concat(), [d, len]),
        )
    }
}

impl<B: FusedCausalConv, C: CheckpointStrategy> FusedCausalConv for Autodiff<B, C> {
    fn causal_conv(u: FloatTensor<Self>, taps: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct ConvBackward;

        impl<B: FusedCausalConv> Backward<B, 2> for ConvBackward {
            type State = [FloatTensor<B>; 2];

            fn backward(
                self,
                ops: Ops<Self::State, 2>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let grad = grads.consume::<B>(&ops.node);
                let [u, taps] = ops.state;
                let (gu, gh) = B::causal_conv_backward(u, taps, grad);
                for (node, g) in ops.parents.into_iter().zip([gu, gh]) {
                    if let Some(node) = node {
                        grads.register::<B>(node.id, g);
                    }
                }
            }
        }

        match ConvBackward
            .prepare::<C>([u.node(), taps.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let inputs = [u, taps].map(|t| t.into_primitive());
                let [u1, h1] = inputs.clone();
                let y = B::causal_conv(u1, h1);
                prep.finish(inputs, y)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::causal_conv(u.into_primitive(), taps.into_primitive()))
            }
        }
    }

    fn causal_conv_backward(
        u: FloatTensor<Self>,
        taps: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (gu, gh) = B::causal_conv_backward(
            u.into_primitive(),
            taps.into_primitive(),
            grad.into_primitive(),
        );
        (lift::<B, C>(gu), lift::<B, C>(gh))
    }
}
