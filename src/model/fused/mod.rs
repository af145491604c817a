//! Fused operations for burn's `flex` CPU backend, as a burn backend extension with
//! their own backward passes.
//!
//! [`fused_attention`] computes multi-head attention for any pattern from one
//! [`AttentionPlan`] per layer (built once per run): it takes the packed q|k|v
//! projection `[batch, n, 3 d_model]` and returns `[batch, n, d_model]`, the layout
//! the output projection reads, so no split or transpose copies exist. Forward and
//! backward are flash-style tiles ([`cpu`]): the backward recomputes each tile's
//! probabilities from the saved log-sum-exp, so no `n x n` tensor is ever built.
//!
//! Only the CPU backend (and its autodiff) has these operations; callers check
//! [`supported`] and keep burn's composed ops elsewhere (wgpu, remote devices).
//!
//! The kernels write their outputs into uninitialised memory and load without bounds
//! checks in their inner loops. Every public entry (here, in `ops`, and the slice
//! kernels under them) is sound for any input: it checks shapes and lengths, in
//! release builds too, before any `unsafe` relies on them, and panics with a message
//! naming what mismatched. Where a function needs a promise from its caller it is an
//! `unsafe fn` with a `# Safety` section, and each `unsafe` block says why it holds
//! (`// SAFETY:`), as in BurntSushi/memchr.

mod conv;
pub mod cpu;
mod elementwise;
mod gemm;
mod heads;
mod linear;
mod ops;
mod plan;
mod prefix;
mod rope;
mod scan;
pub mod simd;
mod uninit;

use std::sync::Arc;

use burn::backend::autodiff::{
    Autodiff,
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
};
use burn::backend::flex::{Flex, FlexTensor, Layout};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, TensorMetadata, backend_extension};
use burn::tensor::{Bytes, DType, Shape, Tensor};

pub use conv::{FusedCausalConv, causal_conv};
pub use ops::{FusedCrossEntropy, FusedGelu, FusedLayerNorm, FusedLinear};
pub use plan::{AttentionPlan, PlanError, TILE_K, TILE_Q, Tile};
pub use prefix::{FusedPrefixAttention, prefix_attention};
pub use rope::{FusedRope, fused_rope_qkv, rope_angle};
pub use scan::{FusedScan, selective_scan};

/// Multi-head attention from a tile plan.
#[backend_extension(Flex, Autodiff)]
pub trait FusedAttention: Backend {
    /// `qkv` `[batch, n, 3 * heads * head_dim]` → output `[batch, n, heads * head_dim]`
    /// and log-sum-exp `[batch, heads, n]`.
    fn attention_forward(
        qkv: FloatTensor<Self>,
        plan: Arc<AttentionPlan>,
        heads: usize,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// The gradient of `qkv` from the forward's output and log-sum-exp and the
    /// output's gradient `grad`.
    fn attention_backward(
        qkv: FloatTensor<Self>,
        out: FloatTensor<Self>,
        lse: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        plan: Arc<AttentionPlan>,
        heads: usize,
    ) -> FloatTensor<Self>;

    /// The output alone (what the model calls; under autodiff it records the backward).
    fn fused_attention(
        qkv: FloatTensor<Self>,
        plan: Arc<AttentionPlan>,
        heads: usize,
    ) -> FloatTensor<Self>;
}

/// A contiguous tensor of `f32` (the fused kernels' input). The models train in `f32`
/// only; [`supported`] is checked before any fused operation is recorded.
fn f32_data(t: FlexTensor) -> FlexTensor {
    let t = t.to_contiguous();
    assert!(
        t.as_slice::<f32>().is_some(),
        "fused operations run on f32 data"
    );
    t
}

/// The `f32` data of a tensor that went through [`f32_data`].
fn slice(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().unwrap_or_default()
}

/// Panics unless tensor `name` of operation `op`, `t`, has shape `want`.
fn check_shape(op: &str, name: &str, t: &FlexTensor, want: &[usize]) {
    let shape = t.shape();
    assert_eq!(
        shape.as_slice(),
        want,
        "{op}: {name} has shape {:?}, expected {want:?}",
        shape.as_slice()
    );
}

fn flex_from(values: Vec<f32>, shape: impl Into<Shape>) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(values),
        Layout::contiguous(shape.into()),
        DType::F32,
    )
}

/// `[batch, n, 3 d_model]` → the kernel's shapes.
fn dims_of(qkv: &FlexTensor, heads: usize) -> cpu::Dims {
    let shape = qkv.shape();
    let [batch, n, width] = shape.as_slice() else {
        panic!("fused attention takes qkv as [batch, n, 3 d_model], got {shape:?}");
    };
    let d_model = width / 3;
    assert!(
        heads > 0 && width.is_multiple_of(3) && d_model.is_multiple_of(heads),
        "fused attention: {width} columns do not split into q|k|v of {heads} heads"
    );
    cpu::Dims {
        batch: *batch,
        n: *n,
        heads,
        head_dim: d_model / heads,
    }
}

impl FusedAttention for Flex {
    fn attention_forward(
        qkv: FlexTensor,
        plan: Arc<AttentionPlan>,
        heads: usize,
    ) -> (FlexTensor, FlexTensor) {
        let dims = dims_of(&qkv, heads);
        let qkv = f32_data(qkv);
        let data = qkv.as_slice::<f32>().unwrap_or_default();
        let (out, lse) = cpu::forward(&plan, data, dims);
        let d_model = dims.heads * dims.head_dim;
        (
            flex_from(out, [dims.batch, dims.n, d_model]),
            flex_from(lse, [dims.batch, dims.heads, dims.n]),
        )
    }

    fn attention_backward(
        qkv: FlexTensor,
        out: FlexTensor,
        lse: FlexTensor,
        grad: FlexTensor,
        plan: Arc<AttentionPlan>,
        heads: usize,
    ) -> FlexTensor {
        let dims = dims_of(&qkv, heads);
        let shape = qkv.shape();
        let d_model = dims.heads * dims.head_dim;
        let out_shape = [dims.batch, dims.n, d_model];
        let what = "fused attention backward";
        check_shape(what, "out", &out, &out_shape);
        check_shape(what, "grad", &grad, &out_shape);
        check_shape(what, "lse", &lse, &[dims.batch, dims.heads, dims.n]);
        let (qkv, out, lse, grad) = (f32_data(qkv), f32_data(out), f32_data(lse), f32_data(grad));
        let (q, o, l, g) = (slice(&qkv), slice(&out), slice(&lse), slice(&grad));
        flex_from(cpu::backward(&plan, q, o, l, g, dims), shape)
    }

    fn fused_attention(qkv: FlexTensor, plan: Arc<AttentionPlan>, heads: usize) -> FlexTensor {
        Self::attention_forward(qkv, plan, heads).0
    }
}

impl<B: FusedAttention, C: CheckpointStrategy> FusedAttention for Autodiff<B, C> {
    fn attention_forward(
        qkv: FloatTensor<Self>,
        plan: Arc<AttentionPlan>,
        heads: usize,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        // Not differentiated: the log-sum-exp is a by-product.
        let (out, lse) = B::attention_forward(qkv.into_primitive(), plan, heads);
        (
            <Self as burn::backend::AutodiffBackend>::from_inner(out),
            <Self as burn::backend::AutodiffBackend>::from_inner(lse),
        )
    }

    fn attention_backward(
        qkv: FloatTensor<Self>,
        out: FloatTensor<Self>,
        lse: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        plan: Arc<AttentionPlan>,
        heads: usize,
    ) -> FloatTensor<Self> {
        // The gradient itself, not recorded: no second-order gradients.
        let dqkv = B::attention_backward(
            qkv.into_primitive(),
            out.into_primitive(),
            lse.into_primitive(),
            grad.into_primitive(),
            plan,
            heads,
        );
        <Self as burn::backend::AutodiffBackend>::from_inner(dqkv)
    }

    fn fused_attention(
        qkv: FloatTensor<Self>,
        plan: Arc<AttentionPlan>,
        heads: usize,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct AttentionBackward;

        type State<B> = (
            FloatTensor<B>,
            FloatTensor<B>,
            FloatTensor<B>,
            Arc<AttentionPlan>,
            usize,
        );

        impl<B: FusedAttention> Backward<B, 1> for AttentionBackward {
            type State = State<B>;

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let [node] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                if let Some(node) = node {
                    let (qkv, out, lse, plan, heads) = ops.state;
                    let dqkv = B::attention_backward(qkv, out, lse, grad, plan, heads);
                    grads.register::<B>(node.id, dqkv);
                }
            }
        }

        match AttentionBackward
            .prepare::<C>([qkv.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let inner = qkv.into_primitive();
                let (out, lse) = B::attention_forward(inner.clone(), plan.clone(), heads);
                prep.finish((inner, out.clone(), lse, plan, heads), out)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::fused_attention(qkv.into_primitive(), plan, heads))
            }
        }
    }
}

/// LayerNorm's epsilon: burn's default, which every model here uses
/// (`LayerNormConfig::new(d)`); a test compares with burn's own `forward`.
const LAYER_NORM_EPS: f64 = 1e-5;

/// Whether the fused element-wise operations apply to `x`: on, on the CPU backend,
/// `f32`.
fn applies<const D: usize>(op: Op, x: &Tensor<D>) -> bool {
    enabled_op(op) && x.dtype() == DType::F32 && supported(&x.device())
}

/// GELU (erf form), fused on the CPU backend, burn's elsewhere.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if !applies(Op::Gelu, &x) {
        return burn::tensor::activation::gelu(x);
    }
    Tensor::from_dispatch(<Dispatch as FusedGelu>::fused_gelu(x.into_dispatch()))
}

/// `norm.forward(x)`, fused on the CPU backend.
pub fn layer_norm<const D: usize>(norm: &burn::nn::LayerNorm, x: Tensor<D>) -> Tensor<D> {
    match &norm.beta {
        Some(beta) if applies(Op::LayerNorm, &x) => {
            Tensor::from_dispatch(<Dispatch as FusedLayerNorm>::fused_layer_norm(
                x.into_dispatch(),
                norm.gamma.val().into_dispatch(),
                beta.val().into_dispatch(),
                LAYER_NORM_EPS,
            ))
        }
        _ => norm.forward(x),
    }
}

/// `layer.forward(x)`, fused on the CPU backend (the bias inside the product, no
/// zero-filled or copied outputs, the bias's gradient summed in parallel).
pub fn linear<const D: usize>(layer: &burn::nn::Linear, x: Tensor<D>) -> Tensor<D> {
    let weight = layer.weight.val();
    let [d_in, _] = weight.dims();
    match &layer.bias {
        Some(bias) if d_in > 0 && x.dims()[D - 1] == d_in && applies(Op::Linear, &x) => {
            Tensor::from_dispatch(<Dispatch as FusedLinear>::fused_linear(
                x.into_dispatch(),
                weight.into_dispatch(),
                bias.val().into_dispatch(),
            ))
        }
        _ => layer.forward(x),
    }
}

/// Mean cross-entropy of `logits` `[rows, vocab]` over the rows whose target is not
/// negative, fused on the CPU backend; `None` elsewhere (the caller composes it).
pub fn cross_entropy(logits: Tensor<2>, targets: &[i64]) -> Option<Tensor<1>> {
    let [rows, vocab] = logits.dims();
    if !applies(Op::CrossEntropy, &logits) || rows != targets.len() || rows == 0 || vocab == 0 {
        return None;
    }
    let vocab = vocab as i64;
    if targets.iter().any(|&t| t >= vocab) {
        return None;
    }
    Some(Tensor::from_dispatch(
        <Dispatch as FusedCrossEntropy>::fused_cross_entropy(
            logits.into_dispatch(),
            Arc::new(targets.to_vec()),
        ),
    ))
}

/// Whether training on `device` can use the fused operations: burn's `flex` CPU
/// backend and its autodiff. wgpu and remote devices keep burn's composed ops.
pub fn supported(device: &burn::tensor::Device) -> bool {
    use burn::backend::DispatchDevice;
    match device.as_dispatch() {
        DispatchDevice::Flex(_) => true,
        DispatchDevice::Autodiff(inner) => matches!(inner.clone().inner(), DispatchDevice::Flex(_)),
        _ => false,
    }
}

/// One of the fused operations, to turn on or off one by one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// [`fused_attention`].
    Attention,
    /// [`layer_norm`].
    LayerNorm,
    /// [`gelu`].
    Gelu,
    /// [`cross_entropy`].
    CrossEntropy,
    /// [`linear`].
    Linear,
    /// [`selective_scan`].
    Scan,
    /// [`prefix_attention`].
    Prefix,
    /// [`causal_conv`].
    Conv,
}

impl Op {
    const ALL: [Op; 8] = [
        Op::Attention,
        Op::LayerNorm,
        Op::Gelu,
        Op::CrossEntropy,
        Op::Linear,
        Op::Scan,
        Op::Prefix,
        Op::Conv,
    ];

    fn name(self) -> &'static str {
        match self {
            Op::Attention => "attention",
            Op::LayerNorm => "layer_norm",
            Op::Gelu => "gelu",
            Op::CrossEntropy => "cross_entropy",
            Op::Linear => "linear",
            Op::Scan => "scan",
            Op::Prefix => "prefix",
            Op::Conv => "conv",
        }
    }
}

/// Whether fused operation `op` is on: `ATTNLAB_FUSED` unset or `1` turns every one
/// on, `0` every one off, and a list such as `attention,gelu` only those (to measure
/// each); read once.
pub fn enabled_op(op: Op) -> bool {
    static ON: std::sync::OnceLock<[bool; 8]> = std::sync::OnceLock::new();
    let on = ON.get_or_init(|| {
        let value = std::env::var("ATTNLAB_FUSED").unwrap_or_else(|_| "1".into());
        let value = value.trim();
        Op::ALL.map(|o| match value {
            "1" | "" => true,
            "0" => false,
            list => list.split(',').any(|name| name.trim() == o.name()),
        })
    });
    on[Op::ALL.iter().position(|&o| o == op).unwrap_or(0)]
}

/// Whether the fused attention is on (see [`enabled_op`]).
pub fn enabled() -> bool {
    enabled_op(Op::Attention)
}

/// Multi-head attention of `qkv` under `plan`, or `None` where the device has no
/// fused operation (the caller computes it with burn's ops).
///
/// # Shapes
/// `qkv`: `[batch, n, 3 d_model]` (q | k | v) → `[batch, n, d_model]`.
pub fn fused_attention(
    qkv: Tensor<3>,
    plan: &Arc<AttentionPlan>,
    heads: usize,
) -> Option<Tensor<3>> {
    if !applies(Op::Attention, &qkv) || qkv.dims()[1] != plan.n() {
        return None;
    }
    Some(Tensor::from_dispatch(
        <Dispatch as FusedAttention>::fused_attention(qkv.into_dispatch(), plan.clone(), heads),
    ))
}
