//! A fused softmax over the last dimension with an additive mask, and its backward
//! pass, as a burn backend extension (issue 10, first step). On burn's `flex` CPU
//! backend both passes are one parallel sweep over the rows of raw `f32` data (burn's
//! composed softmax is five single-threaded element-wise ops forward and as many
//! backward); on `Cube` (wgpu) the composed ops; under `Autodiff` the backward is
//! ours: `dS = P * (dP - rowsum(dP * P))`, from the saved output `P`.
//!
//! Only for devices it was written for (`flex`, wgpu, their autodiff): a remote
//! device has no such operation, so callers check [`supported`] first.

use burn::backend::autodiff::{
    Autodiff,
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
};
use burn::backend::flex::{Flex, FlexTensor, Layout};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Cube, Dispatch, TensorMetadata, backend_extension};
use burn::tensor::{Bytes, DType, Shape, Tensor};
use rayon::prelude::*;

/// Softmax over the last dimension of `scores + bias`.
#[backend_extension(Flex, Cube, Autodiff)]
pub trait FusedSoftmax: Backend {
    /// `softmax(scores + bias, last dim)`; `bias` is `[1, 1, rows, cols]` (0 where a
    /// pair is visible, `-inf` where hidden) or the same shape as `scores`.
    fn fused_softmax(scores: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self>;

    /// The gradient of the scores from the output `p` and its gradient `grad`.
    fn fused_softmax_backward(p: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self>;
}

impl FusedSoftmax for Cube {
    fn fused_softmax(scores: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self> {
        composed_softmax::<Self>(scores, bias)
    }

    fn fused_softmax_backward(p: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        composed_backward::<Self>(p, grad)
    }
}

/// The softmax as burn composes it, on any backend (wgpu, and data that is not `f32`).
fn composed_softmax<B: Backend>(scores: FloatTensor<B>, bias: FloatTensor<B>) -> FloatTensor<B> {
    let shape = scores.shape();
    let s = B::float_add(scores, B::float_expand(bias, shape));
    let last = s.shape().num_dims() - 1;
    let m = B::float_max_dim(s.clone(), last);
    let e = B::float_exp(B::float_sub(s, m));
    let l = B::float_sum_dim(e.clone(), last);
    B::float_div(e, l)
}

/// The softmax's backward, composed: `p * (grad - rowsum(p * grad))`.
fn composed_backward<B: Backend>(p: FloatTensor<B>, grad: FloatTensor<B>) -> FloatTensor<B> {
    let last = p.shape().num_dims() - 1;
    let row = B::float_sum_dim(B::float_mul(p.clone(), grad.clone()), last);
    B::float_mul(p, B::float_sub(grad, row))
}

fn contiguous_f32(t: &FlexTensor) -> FlexTensor {
    t.to_contiguous()
}

fn flex_from(values: Vec<f32>, shape: Shape) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(values),
        Layout::contiguous(shape),
        DType::F32,
    )
}

impl FusedSoftmax for Flex {
    fn fused_softmax(scores: FlexTensor, bias: FlexTensor) -> FlexTensor {
        let (scores, bias) = (contiguous_f32(&scores), contiguous_f32(&bias));
        let shape = scores.shape();
        let cols = *shape.as_slice().last().unwrap_or(&1);
        let rows_per_map = shape.as_slice().iter().rev().nth(1).copied().unwrap_or(1);
        let (Some(s), Some(b)) = (scores.as_slice::<f32>(), bias.as_slice::<f32>()) else {
            // Not f32: fall back to the composed ops.
            return composed_softmax::<Flex>(scores, bias);
        };
        let broadcast = b.len() != s.len();
        let mut out = vec![0.0f32; s.len()];
        out.par_chunks_mut(cols)
            .enumerate()
            .for_each(|(r, row_out)| {
                let row = &s[r * cols..(r + 1) * cols];
                let bias_row = if broadcast {
                    let i = r % rows_per_map;
                    &b[i * cols..(i + 1) * cols]
                } else {
                    &b[r * cols..(r + 1) * cols]
                };
                let mut max = f32::NEG_INFINITY;
                for (o, (x, m)) in row_out.iter_mut().zip(row.iter().zip(bias_row)) {
                    *o = x + m;
                    max = max.max(*o);
                }
                let mut sum = 0.0f32;
                for o in row_out.iter_mut() {
                    *o = (*o - max).exp();
                    sum += *o;
                }
                let inv = 1.0 / sum;
                for o in row_out.iter_mut() {
                    *o *= inv;
                }
            });
        flex_from(out, shape)
    }

    fn fused_softmax_backward(p: FlexTensor, grad: FlexTensor) -> FlexTensor {
        let (p, grad) = (contiguous_f32(&p), contiguous_f32(&grad));
        let shape = p.shape();
        let cols = *shape.as_slice().last().unwrap_or(&1);
        let (Some(ps), Some(gs)) = (p.as_slice::<f32>(), grad.as_slice::<f32>()) else {
            return composed_backward::<Flex>(p, grad);
        };
        let mut out = vec![0.0f32; ps.len()];
        out.par_chunks_mut(cols)
            .enumerate()
            .for_each(|(r, row_out)| {
                let pr = &ps[r * cols..(r + 1) * cols];
                let gr = &gs[r * cols..(r + 1) * cols];
                let dot: f32 = pr.iter().zip(gr).map(|(a, b)| a * b).sum();
                for ((o, a), b) in row_out.iter_mut().zip(pr).zip(gr) {
                    *o = a * (b - dot);
                }
            });
        flex_from(out, shape)
    }
}

impl<B: FusedSoftmax, C: CheckpointStrategy> FusedSoftmax for Autodiff<B, C> {
    fn fused_softmax(scores: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct SoftmaxBackward;

        impl<B: FusedSoftmax> Backward<B, 1> for SoftmaxBackward {
            type State = FloatTensor<B>;

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let [node] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                if let Some(node) = node {
                    grads.register::<B>(node.id, B::fused_softmax_backward(ops.state, grad));
                }
            }
        }

        let bias = bias.into_primitive(); // a constant: no gradient
        match SoftmaxBackward
            .prepare::<C>([scores.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let p = B::fused_softmax(scores.into_primitive(), bias);
                prep.finish(p.clone(), p)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::fused_softmax(scores.into_primitive(), bias))
            }
        }
    }

    fn fused_softmax_backward(p: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        // Second-order gradients are not needed: the composed form, differentiable.
        composed_backward::<Self>(p, grad)
    }
}

/// Whether training on `device` uses the fused operation: burn's `flex` CPU backend
/// (and its autodiff). wgpu keeps burn's own composed softmax until the `Cube` path
/// is measured on a GPU; a remote device has no such operation.
pub fn supported(device: &burn::tensor::Device) -> bool {
    use burn::backend::DispatchDevice;
    match device.as_dispatch() {
        DispatchDevice::Flex(_) => true,
        DispatchDevice::Autodiff(inner) => matches!(inner.clone().inner(), DispatchDevice::Flex(_)),
        _ => false,
    }
}

/// `softmax(scores + bias)` over the last dimension, fused where the device allows.
///
/// # Shapes
/// `scores`: `[batch, heads, rows, cols]`; `bias`: `[1, 1, rows, cols]`.
pub fn fused_softmax(scores: Tensor<4>, bias: Tensor<4>) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as FusedSoftmax>::fused_softmax(
        scores.into_dispatch(),
        bias.into_dispatch(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;
    use burn::tensor::activation::softmax;

    #[test]
    fn the_cpu_backend_uses_it() {
        assert!(supported(&burn::tensor::Device::flex()));
        assert!(supported(&burn::tensor::Device::flex().autodiff()));
    }

    #[test]
    fn equals_the_composed_softmax_forward_and_backward() {
        let device = burn::tensor::Device::flex().autodiff();
        let scores = Tensor::<4>::random([2, 3, 5, 7], Distribution::Normal(0.0, 2.0), &device)
            .require_grad();
        // Hide a few pairs (never a whole row).
        let mut bias = vec![0.0f32; 5 * 7];
        for (i, b) in bias.iter_mut().enumerate() {
            if i % 3 == 1 {
                *b = f32::NEG_INFINITY;
            }
        }
        let bias =
            Tensor::<4>::from_data(burn::tensor::TensorData::new(bias, [1, 1, 5, 7]), &device);
        let weight = Tensor::<4>::random([2, 3, 5, 7], Distribution::Normal(0.0, 1.0), &device);

        let fused = fused_softmax(scores.clone(), bias.clone());
        let composed = softmax(scores.clone() + bias.clone().expand([2, 3, 5, 7]), 3);
        let a: Vec<f32> = fused.clone().into_data().try_to_vec::<f32>().expect("f32");
        let b: Vec<f32> = composed
            .clone()
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32");
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-6, "{x} vs {y}");
        }
        let ga = (fused * weight.clone()).sum().backward();
        let gfa: Vec<f32> = scores
            .grad(&ga)
            .expect("grad")
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32");
        let gb = (composed * weight).sum().backward();
        let gfb: Vec<f32> = scores
            .grad(&gb)
            .expect("grad")
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32");
        for (x, y) in gfa.iter().zip(&gfb) {
            assert!((x - y).abs() < 1e-5, "{x} vs {y}");
        }
    }
}
