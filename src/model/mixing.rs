//! Everything a forward pass needs besides the weights, built once per run (and per
//! evaluation length): what mixes tokens in each layer, how positions enter, and the
//! head edits. Every [`SequenceModel`](super::SequenceModel) pass takes one
//! [`Mixing`].
//!
//! What mixes tokens in layer `l` is one [`LayerMixer`]: today an attention layer with
//! its kernel. A layer whose token mixer is not attention (linear attention, a gated
//! convolution, a selective SSM) is one more variant; every such layer is, for a
//! given input, a matrix mixing positions, which
//! [`SequenceModel::forward_with_mixing`](super::SequenceModel::forward_with_mixing)
//! returns per layer and head, so the panes read every mixer through that one
//! interface.

use std::sync::Arc;

use burn::tensor::{Bool, Device, Tensor};

use super::fused::AttentionPlan;
use super::interventions::{HeadEdits, HeadRef, Interventions};
use super::kernels::{AttentionKernels, LayerKernel, SparseMode};
use super::positions::Positions;
use crate::config::{Mixer, RunPlan};

/// What mixes tokens in one layer, as built for a run.
#[derive(Clone, Copy, Debug)]
pub enum LayerMixer<'a> {
    /// Softmax attention under the layer's pattern, computed by its kernel.
    Attention(&'a LayerKernel),
    /// Another token mixer (`model.mixer`): linear attention, Based, a gated
    /// convolution or a selective SSM, composed of burn ops.
    Other(&'a Mixer),
}

/// Every layer's token mixer, the positions and the head edits of one run on one
/// device. Empty kernels for a model without attention (the LSTM).
#[derive(Clone, Debug, Default)]
pub struct Mixing {
    kernels: AttentionKernels,
    positions: Positions,
    edits: HeadEdits,
    /// Each layer's mixer (empty for the LSTM).
    mixers: Vec<Mixer>,
}

impl Mixing {
    /// What every layer of `plan` needs on `device` ([`AttentionKernels::for_plan`]
    /// says which kernel each attention layer gets under `mode`); the positions
    /// resolved once from `model.positions`, and `model.ablated_heads` zeroed.
    pub fn for_plan(plan: &RunPlan, device: &Device, mode: SparseMode) -> Self {
        let model = &plan.settings().model;
        let positions = Positions::of(model);
        let kernels = AttentionKernels::for_plan(plan, device, mode, positions.alibi());
        let ablated: Vec<HeadRef> = model
            .ablated()
            .unwrap_or_default()
            .into_iter()
            .map(|(layer, head)| HeadRef { layer, head })
            .collect();
        let mixers = match model.kind {
            crate::config::ModelKind::Transformer => model.layer_mixers(),
            crate::config::ModelKind::Lstm => Vec::new(),
        };
        Self {
            kernels,
            positions,
            edits: HeadEdits::ablated(&ablated),
            mixers,
        }
    }

    /// The same mixing with `interventions` applied to every forward pass (an empty
    /// set removes any; `model.ablated_heads` stay).
    pub fn with_interventions(&self, interventions: Interventions) -> Self {
        Self {
            kernels: self.kernels.clone(),
            positions: self.positions.clone(),
            edits: self.edits.with_interventions(interventions),
            mixers: self.mixers.clone(),
        }
    }

    /// What mixes tokens in layer `l` (`None` beyond the last layer).
    pub fn layer(&self, l: usize) -> Option<LayerMixer<'_>> {
        match self.mixers.get(l) {
            Some(m) if !m.is_attention() => Some(LayerMixer::Other(m)),
            _ => self.kernels.layers().get(l).map(LayerMixer::Attention),
        }
    }

    /// Every attention layer's kernel, first layer first.
    pub fn layers(&self) -> &[LayerKernel] {
        self.kernels.layers()
    }

    /// How positions enter the model.
    pub fn positions(&self) -> &Positions {
        &self.positions
    }

    /// The fused kernel's tile plan of layer `l`, where it has one.
    pub fn fused_plan(&self, l: usize) -> Option<&Arc<AttentionPlan>> {
        self.kernels.fused_plan(l)
    }

    /// The blocking mask of layer `l` (`None` for a dense layer, and beyond the last).
    pub fn mask(&self, l: usize) -> Option<&Tensor<4, Bool>> {
        self.kernels.mask(l)
    }

    /// Attention output of layer `l` by its kernel, ALiBi's bias included when the
    /// model uses it.
    ///
    /// # Shapes
    /// `q`, `k`, `v`: `[batch, heads, seq, head_dim]` → same.
    pub fn attend(&self, l: usize, q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
        let (rows, cols, device) = (q.dims()[2], k.dims()[2], q.device());
        self.kernels
            .attend(l, q, k, v, || self.positions.bias(rows, cols, &device))
    }

    /// Layer `l`'s concatenated head outputs `[batch, seq, d_model]` with the head
    /// edits applied (unchanged without any).
    pub(crate) fn intervene(&self, l: usize, heads: usize, out: Tensor<3>) -> Tensor<3> {
        self.edits.apply(l, heads, out)
    }
}
