//! The selective scan of an SSM layer (Mamba's S6) as one fused CPU operation with its
//! own backward, where burn composes one slice, product and sum per token (and keeps
//! every step's state for its backward).
//!
//! Per sequence `b`, channel `c` and state `k`:
//! `h_t = exp(Δ_t[c] A[c, k]) h_{t-1} + Δ_t[c] x_t[c] B_t[k]`,
//! `y_t[c] = sum_k C_t[k] h_t[c, k]`. The forward keeps nothing but its inputs; the
//! backward runs the scan again to keep each step's state of one sequence, then walks
//! back carrying the adjoint of `h`. Sequences are split over rayon's threads; `A`'s
//! gradient is summed over them.

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
use super::{Op, applies, check_shape, f32_data, flex_from, slice};

/// The selective scan.
#[backend_extension(Flex, Autodiff)]
pub trait FusedScan: Backend {
    /// `y` `[batch, n, d]` from Δ and x `[batch, n, d]`, B and C `[batch, n, state]`,
    /// A `[d, state]`.
    fn fused_scan(
        delta: FloatTensor<Self>,
        x: FloatTensor<Self>,
        b: FloatTensor<Self>,
        c: FloatTensor<Self>,
        a: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
    /// The gradients of Δ, x, B, C and A from `y`'s gradient `grad`.
    #[allow(clippy::type_complexity)]
    fn fused_scan_backward(
        delta: FloatTensor<Self>,
        x: FloatTensor<Self>,
        b: FloatTensor<Self>,
        c: FloatTensor<Self>,
        a: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
    );
}

/// The selective scan of `x` with steps `delta`, selections `b` and `c` and decays
/// `a`, fused on the CPU backend; `None` elsewhere (the caller composes it).
///
/// # Shapes
/// `delta`, `x`: `[batch, n, d]`; `b`, `c`: `[batch, n, state]`; `a`: `[d, state]`
/// → `[batch, n, d]`.
pub fn selective_scan(
    delta: &Tensor<3>,
    x: &Tensor<3>,
    b: &Tensor<3>,
    c: &Tensor<3>,
    a: &Tensor<2>,
) -> Option<Tensor<3>> {
    if !applies(Op::Scan, x) || x.dims().contains(&0) {
        return None;
    }
    Some(Tensor::from_dispatch(<Dispatch as FusedScan>::fused_scan(
        delta.clone().into_dispatch(),
        x.clone().into_dispatch(),
        b.clone().into_dispatch(),
        c.clone().into_dispatch(),
        a.clone().into_dispatch(),
    )))
}

/// The sizes of a scan: `(batch, n, d, state)`, every input's shape checked.
fn scan_dims(
    delta: &FlexTensor,
    x: &FlexTensor,
    b: &FlexTensor,
    c: &FlexTensor,
    a: &FlexTensor,
) -> (usize, usize, usize, usize) {
    let shape = x.shape();
    let &[batch, n, d] = shape.as_slice() else {
        panic!("fused scan: x is [batch, n, d], got {shape:?}");
    };
    let a_shape = a.shape();
    let &[_, state] = a_shape.as_slice() else {
        panic!("fused scan: A is [d, state], got {a_shape:?}");
    };
    check_shape("fused scan", "Δ", delta, &[batch, n, d]);
    check_shape("fused scan", "B", b, &[batch, n, state]);
    check_shape("fused scan", "C", c, &[batch, n, state]);
    check_shape("fused scan", "A", a, &[d, state]);
    (batch, n, d, state)
}

/// One sequence's inputs, as slices of its rows.
struct Sequence<'a> {
    delta: &'a [f32],
    x: &'a [f32],
    b: &'a [f32],
    c: &'a [f32],
}

/// The forward of one sequence into `y` (`n x d`); with `states`, every step's state
/// (`n x d x state`) is kept there too.
fn forward_one(
    s: &Sequence<'_>,
    a: &[f32],
    dims: (usize, usize),
    y: &mut [f32],
    mut states: Option<&mut [f32]>,
) {
    let (d, state) = dims;
    let n = y.len() / d.max(1);
    let mut h = vec![0f32; d * state];
    for t in 0..n {
        let (bt, ct) = (
            &s.b[t * state..(t + 1) * state],
            &s.c[t * state..(t + 1) * state],
        );
        for ch in 0..d {
            let dt = s.delta[t * d + ch];
            let u = dt * s.x[t * d + ch];
            let hc = &mut h[ch * state..(ch + 1) * state];
            let ac = &a[ch * state..(ch + 1) * state];
            let mut out = 0f32;
            for k in 0..state {
                hc[k] = (dt * ac[k]).exp() * hc[k] + u * bt[k];
                out += ct[k] * hc[k];
            }
            y[t * d + ch] = out;
        }
        if let Some(states) = states.as_deref_mut() {
            states[t * d * state..(t + 1) * d * state].copy_from_slice(&h);
        }
    }
}

/// The gradients of one sequence: Δ and x (`n x d`), B and C (`n x state`) written,
/// A's (`d x state`) added to `ga`.
#[allow(clippy::too_many_arguments)]
fn backward_one(
    s: &Sequence<'_>,
    a: &[f32],
    gy: &[f32],
    (d, state): (usize, usize),
    gdelta: &mut [f32],
    gx: &mut [f32],
    gb: &mut [f32],
    gc: &mut [f32],
    ga: &mut [f32],
) {
    let n = gy.len() / d.max(1);
    let mut y = vec![0f32; n * d];
    let mut states = vec![0f32; n * d * state];
    forward_one(s, a, (d, state), &mut y, Some(&mut states));
    // The adjoint of h_t, from the steps after t.
    let mut g = vec![0f32; d * state];
    for t in (0..n).rev() {
        let (bt, ct) = (
            &s.b[t * state..(t + 1) * state],
            &s.c[t * state..(t + 1) * state],
        );
        let h_now = &states[t * d * state..(t + 1) * d * state];
        let (gbt, gct) = (
            &mut gb[t * state..(t + 1) * state],
            &mut gc[t * state..(t + 1) * state],
        );
        for ch in 0..d {
            let (dt, xv) = (s.delta[t * d + ch], s.x[t * d + ch]);
            let gyt = gy[t * d + ch];
            let (mut gd, mut gxv) = (0f32, 0f32);
            for k in 0..state {
                let i = ch * state + k;
                let ak = a[i];
                let decay = (dt * ak).exp();
                let h_before = if t > 0 {
                    states[(t - 1) * d * state + i]
                } else {
                    0.0
                };
                gct[k] += gyt * h_now[i];
                let gh = g[i] + gyt * ct[k];
                let g_decay = gh * h_before * decay;
                gd += g_decay * ak + gh * xv * bt[k];
                ga[i] += g_decay * dt;
                gxv += gh * dt * bt[k];
                gbt[k] += gh * dt * xv;
                g[i] = gh * decay;
            }
            gdelta[t * d + ch] = gd;
            gx[t * d + ch] = gxv;
        }
    }
}

impl FusedScan for Flex {
    fn fused_scan(
        delta: FlexTensor,
        x: FlexTensor,
        b: FlexTensor,
        c: FlexTensor,
        a: FlexTensor,
    ) -> FlexTensor {
        let (batch, n, d, state) = scan_dims(&delta, &x, &b, &c, &a);
        let (delta, x, b, c, a) = (
            f32_data(delta),
            f32_data(x),
            f32_data(b),
            f32_data(c),
            f32_data(a),
        );
        let (delta, xs, bs, cs, a) = (slice(&delta), slice(&x), slice(&b), slice(&c), slice(&a));
        let mut y = vec![0f32; batch * n * d];
        y.par_chunks_mut(n * d).enumerate().for_each(|(i, y)| {
            let s = Sequence {
                delta: &delta[i * n * d..(i + 1) * n * d],
                x: &xs[i * n * d..(i + 1) * n * d],
                b: &bs[i * n * state..(i + 1) * n * state],
                c: &cs[i * n * state..(i + 1) * n * state],
            };
            forward_one(&s, a, (d, state), y, None);
        });
        flex_from(y, [batch, n, d])
    }

    fn fused_scan_backward(
        delta: FlexTensor,
        x: FlexTensor,
        b: FlexTensor,
        c: FlexTensor,
        a: FlexTensor,
        grad: FlexTensor,
    ) -> (FlexTensor, FlexTensor, FlexTensor, FlexTensor, FlexTensor) {
        let (batch, n, d, state) = scan_dims(&delta, &x, &b, &c, &a);
        check_shape("fused scan backward", "grad", &grad, &[batch, n, d]);
        let (delta, x, b, c, a, grad) = (
            f32_data(delta),
            f32_data(x),
            f32_data(b),
            f32_data(c),
            f32_data(a),
            f32_data(grad),
        );
        let (delta, xs, bs, cs, a, gy) = (
            slice(&delta),
            slice(&x),
            slice(&b),
            slice(&c),
            slice(&a),
            slice(&grad),
        );
        let per_sequence: Vec<_> = (0..batch)
            .into_par_iter()
            .map(|i| {
                let s = Sequence {
                    delta: &delta[i * n * d..(i + 1) * n * d],
                    x: &xs[i * n * d..(i + 1) * n * d],
                    b: &bs[i * n * state..(i + 1) * n * state],
                    c: &cs[i * n * state..(i + 1) * n * state],
                };
                let (mut gd, mut gx) = (vec![0f32; n * d], vec![0f32; n * d]);
                let (mut gb, mut gc) = (vec![0f32; n * state], vec![0f32; n * state]);
                let mut ga = vec![0f32; d * state];
                backward_one(
                    &s,
                    a,
                    &gy[i * n * d..(i + 1) * n * d],
                    (d, state),
                    &mut gd,
                    &mut gx,
                    &mut gb,
                    &mut gc,
                    &mut ga,
                );
                (gd, gx, gb, gc, ga)
            })
            .collect();
        let mut ga = vec![0f32; d * state];
        let (mut gd, mut gx, mut gb, mut gc) = (
            Vec::with_capacity(batch * n * d),
            Vec::with_capacity(batch * n * d),
            Vec::with_capacity(batch * n * state),
            Vec::with_capacity(batch * n * state),
        );
        for (d1, x1, b1, c1, a1) in per_sequence {
            gd.extend(d1);
            gx.extend(x1);
            gb.extend(b1);
            gc.extend(c1);
            for (sum, v) in ga.iter_mut().zip(a1) {
                *sum += v;
            }
        }
        (
            flex_from(gd, [batch, n, d]),
            flex_from(gx, [batch, n, d]),
            flex_from(gb, [batch, n, state]),
            flex_from(gc, [batch, n, state]),
            flex_from(ga, [d, state]),
        )
    }
}

impl<B: FusedScan, C: CheckpointStrategy> FusedScan for Autodiff<B, C> {
    fn fused_scan(
        delta: FloatTensor<Self>,
        x: FloatTensor<Self>,
        b: FloatTensor<Self>,
        c: FloatTensor<Self>,
        a: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct ScanBackward;

        impl<B: FusedScan> Backward<B, 5> for ScanBackward {
            type State = [FloatTensor<B>; 5];

            fn backward(
                self,
                ops: Ops<Self::State, 5>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let grad = grads.consume::<B>(&ops.node);
                let [delta, x, b, c, a] = ops.state;
                let (gd, gx, gb, gc, ga) = B::fused_scan_backward(delta, x, b, c, a, grad);
                for (node, g) in ops.parents.into_iter().zip([gd, gx, gb, gc, ga]) {
                    if let Some(node) = node {
                        grads.register::<B>(node.id, g);
                    }
                }
            }
        }

        match ScanBackward
            .prepare::<C>([delta.node(), x.node(), b.node(), c.node(), a.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let inputs = [delta, x, b, c, a].map(|t| t.into_primitive());
                let [d1, x1, b1, c1, a1] = inputs.clone();
                let y = B::fused_scan(d1, x1, b1, c1, a1);
                prep.finish(inputs, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::fused_scan(
                delta.into_primitive(),
                x.into_primitive(),
                b.into_primitive(),
                c.into_primitive(),
                a.into_primitive(),
            )),
        }
    }

    fn fused_scan_backward(
        delta: FloatTensor<Self>,
        x: FloatTensor<Self>,
        b: FloatTensor<Self>,
        c: FloatTensor<Self>,
        a: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
    ) {
        let (gd, gx, gb, gc, ga) = B::fused_scan_backward(
            delta.into_primitive(),
            x.into_primitive(),
            b.into_primitive(),
            c.into_primitive(),
            a.into_primitive(),
            grad.into_primitive(),
        );
        (
            lift::<B, C>(gd),
            lift::<B, C>(gx),
            lift::<B, C>(gb),
            lift::<B, C>(gc),
            lift::<B, C>(ga),
        )
    }
}
