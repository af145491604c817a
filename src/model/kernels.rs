//! How each layer of a run computes attention, decided and built once per run.

use std::sync::Arc;

use burn::tensor::{Bool, Device, Tensor, TensorData};

use super::alibi::Alibi;
use super::block_sparse::{BlockSparseAttention, SparseUnavailable};
use super::fused::{self, AttentionPlan};
use super::interventions::{HeadRef, Interventions};
use super::reference::attention_output_with_bias;
use crate::attention::sparse_pays_off;
use crate::config::{PositionScheme, RunPlan};

/// Which computation a layer uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelKind {
    /// Every pair visible: plain attention, no mask.
    Dense,
    /// Only the blocks the pattern's layout turns on ([`BlockSparseAttention`]).
    BlockSparse,
    /// The masked-dense reference: O(n^2) for any pattern.
    MaskedDense,
    /// The fused tile kernel on the CPU backend ([`fused::fused_attention`]): any
    /// pattern, computing only the tiles its plan lists, forward and backward.
    Fused,
}

impl KernelKind {
    /// The name used in events, records and the bench's JSON.
    pub fn name(self) -> &'static str {
        match self {
            KernelKind::Dense => "dense",
            KernelKind::BlockSparse => "block_sparse",
            KernelKind::MaskedDense => "masked_dense",
            KernelKind::Fused => "fused",
        }
    }
}

/// One layer's kernel and why it was chosen.
#[derive(Clone, Debug)]
pub struct LayerKernel {
    /// The computation used in training and evaluation.
    pub kind: KernelKind,
    /// Why, when a sparse pattern does not use its block-sparse computation.
    pub reason: Option<String>,
    /// Whether that reason is a fault (the layout could not be built) rather than a
    /// choice (gathering would not pay off, or it was turned off).
    pub fault: bool,
    /// `[1, 1, seq, seq]`, `true` = hidden; `None` for a dense layer. Used by the
    /// masked-dense reference and the probe's attention weights.
    mask: Option<Tensor<4, Bool>>,
    sparse: Option<BlockSparseAttention>,
    /// The fused kernel's tile plan (CPU backend).
    plan: Option<Arc<AttentionPlan>>,
}

/// Whether sparse patterns may use their block-sparse computation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SparseMode {
    /// Where it [pays off](sparse_pays_off).
    WherePaysOff,
    /// Never: every sparse pattern uses the masked-dense reference (`bench --masked`).
    Off,
    /// Burn's composed ops even on the CPU backend (no fused kernel): block-sparse
    /// where it pays off, masked dense elsewhere; what wgpu and remote devices use
    /// (`ATTNLAB_FUSED=0` makes [`SparseMode::WherePaysOff`] behave like this).
    Composed,
}

/// How every layer of a run attends, built once per run on one device (index and
/// mask tensors live there). Empty for a model without attention.
///
/// The per-layer boolean mask is `n x n` bytes (16 MiB at n = 4096), built once per
/// run for the reference computation and the probe's weights; the block-sparse
/// training path never builds an `n x n` float tensor.
#[derive(Clone, Debug, Default)]
pub struct AttentionKernels {
    layers: Vec<LayerKernel>,
    /// Head edits applied after attention, before the output projection (`None`:
    /// the model as trained).
    interventions: Option<Arc<Interventions>>,
    /// `model.ablated_heads`: heads zeroed in every pass, training included, whatever
    /// `interventions` says (`None`: none).
    ablated: Option<Arc<Interventions>>,
    /// `model.positions = "rope"`: the base q and k are turned with before every
    /// layer's kernel (`None`: not rotary).
    rope: Option<f64>,
    /// `model.positions = "alibi"`: the per-head slopes every layer's scores are
    /// biased with (in the fused plans, the block-sparse parts and [`Self::bias`]).
    alibi: Option<Alibi>,
}

impl AttentionKernels {
    /// The kernels of every layer of `plan` on `device`: the fused kernel on the CPU
    /// backend (unless `mode` is [`SparseMode::Off`] or `ATTNLAB_FUSED=0`), else
    /// block-sparse where it pays off and masked dense elsewhere.
    pub fn for_plan(plan: &RunPlan, device: &Device, mode: SparseMode) -> Self {
        let n = plan.settings().task.seq_len;
        let seed = plan.settings().train.seed;
        let model = &plan.settings().model;
        let alibi = (model.positions == PositionScheme::Alibi).then(|| Alibi::new(model.heads));
        let use_fused =
            mode == SparseMode::WherePaysOff && fused::enabled() && fused::supported(device);
        let mut layers = Vec::new();
        for (l, (pattern, mask)) in plan
            .layer_patterns()
            .iter()
            .zip(plan.layer_masks())
            .enumerate()
        {
            let dense = mask.attended_pairs() == n * n;
            let tiles = if use_fused {
                match AttentionPlan::new(pattern, &mask) {
                    Ok(p) => Some(Arc::new(match &alibi {
                        Some(a) => p.with_alibi(a.shared_slopes()),
                        None => p,
                    })),
                    Err(e) => {
                        layers.push(LayerKernel::fallback(&mask, device, e.to_string()));
                        continue;
                    }
                }
            } else {
                None
            };
            if let Some(tiles) = tiles {
                layers.push(LayerKernel {
                    kind: KernelKind::Fused,
                    reason: None,
                    fault: false,
                    mask: (!dense).then(|| blocking_tensor(&mask, device)),
                    sparse: None,
                    plan: Some(tiles),
                });
                continue;
            }
            if dense {
                layers.push(LayerKernel {
                    kind: KernelKind::Dense,
                    reason: None,
                    fault: false,
                    mask: None,
                    sparse: None,
                    plan: None,
                });
                continue;
            }
            let tensor = blocking_tensor(&mask, device);
            let (sparse, reason, fault) = match mode {
                SparseMode::Off => (
                    None,
                    Some("block-sparse computation turned off".into()),
                    false,
                ),
                SparseMode::WherePaysOff | SparseMode::Composed => {
                    match BlockSparseAttention::new_with_alibi(
                        pattern,
                        &mask,
                        seed.wrapping_add(l as u64),
                        alibi.as_ref(),
                        device,
                    ) {
                        Ok(s) if sparse_pays_off(s.computed_pairs(), n) => (Some(s), None, false),
                        Ok(s) => {
                            let share = 100.0 * s.computed_pairs() as f64 / (n * n) as f64;
                            (
                                None,
                                Some(format!(
                                    "gathering blocks would compute {share:.0}% of the n x n pairs, \
                                     so masked dense attention is as fast"
                                )),
                                false,
                            )
                        }
                        Err(e @ SparseUnavailable::NoLayout) => (None, Some(e.to_string()), false),
                        Err(e) => (
                            None,
                            Some(format!(
                                "no block-sparse computation for {}: {e}",
                                pattern.label()
                            )),
                            true,
                        ),
                    }
                }
            };
            layers.push(LayerKernel {
                kind: if sparse.is_some() {
                    KernelKind::BlockSparse
                } else {
                    KernelKind::MaskedDense
                },
                reason,
                fault,
                mask: Some(tensor),
                sparse,
                plan: None,
            });
        }
        let ablated: Vec<HeadRef> = plan
            .settings()
            .model
            .ablated()
            .unwrap_or_default()
            .into_iter()
            .map(|(layer, head)| HeadRef { layer, head })
            .collect();
        Self {
            layers,
            interventions: None,
            ablated: (!ablated.is_empty()).then(|| Arc::new(Interventions::zero(&ablated))),
            rope: (model.positions == PositionScheme::Rope).then_some(model.rope_base),
            alibi,
        }
    }

    /// The same kernels with `interventions` applied to every forward pass (an empty
    /// set removes any).
    pub fn with_interventions(&self, interventions: Interventions) -> Self {
        Self {
            layers: self.layers.clone(),
            interventions: (!interventions.is_empty()).then(|| Arc::new(interventions)),
            ablated: self.ablated.clone(),
            rope: self.rope,
            alibi: self.alibi.clone(),
        }
    }

    /// Layer `l`'s concatenated head outputs `[batch, seq, d_model]` with the
    /// interventions applied (unchanged without any).
    pub(crate) fn intervene(&self, l: usize, heads: usize, out: Tensor<3>) -> Tensor<3> {
        let out = match &self.interventions {
            None => out,
            Some(i) => i.apply(l, heads, out),
        };
        match &self.ablated {
            None => out,
            Some(a) => a.apply(l, heads, out),
        }
    }

    /// RoPE's base when the model is rotary (`model.positions = "rope"`).
    pub fn rope(&self) -> Option<f64> {
        self.rope
    }

    /// ALiBi's slopes when the model uses them (`model.positions = "alibi"`).
    pub fn alibi(&self) -> Option<&Alibi> {
        self.alibi.as_ref()
    }

    /// ALiBi's bias of queries `0..rows` against keys `0..cols`, `[1, heads, rows,
    /// cols]` on `device` (`None` without ALiBi): what the composed paths add to the
    /// scores. Built per call from two position ranges; never stored at `n x n`.
    pub fn bias(&self, rows: usize, cols: usize, device: &Device) -> Option<Tensor<4>> {
        self.alibi
            .as_ref()
            .map(|a| a.bias_tensor(rows, cols, device))
    }

    /// The fused kernel's tile plan of layer `l`, where it has one.
    pub fn fused_plan(&self, l: usize) -> Option<&Arc<AttentionPlan>> {
        self.layers.get(l).and_then(|k| k.plan.as_ref())
    }

    /// Every layer's kernel, first layer first.
    pub fn layers(&self) -> &[LayerKernel] {
        &self.layers
    }

    /// The blocking mask of layer `l` (`None` for a dense layer, and beyond the last).
    pub fn mask(&self, l: usize) -> Option<&Tensor<4, Bool>> {
        self.layers.get(l).and_then(|k| k.mask.as_ref())
    }

    /// Attention output of layer `l`: block-sparse where chosen, else the masked
    /// reference; either with ALiBi's bias when the model uses it.
    ///
    /// # Shapes
    /// `q`, `k`, `v`: `[batch, heads, seq, head_dim]` → same.
    pub fn attend(&self, l: usize, q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
        match self.layers.get(l).and_then(|k| k.sparse.as_ref()) {
            Some(sparse) => sparse.forward(q, k, v),
            None => {
                let bias = self.bias(q.dims()[2], k.dims()[2], &q.device());
                attention_output_with_bias(q, k, v, self.mask(l), bias)
            }
        }
    }
}

impl LayerKernel {
    /// Masked dense attention because the fused plan could not be built (a fault).
    fn fallback(mask: &crate::attention::Mask, device: &Device, reason: String) -> Self {
        Self {
            kind: KernelKind::MaskedDense,
            reason: Some(reason),
            fault: true,
            mask: Some(blocking_tensor(mask, device)),
            sparse: None,
            plan: None,
        }
    }
}

/// `[1, 1, n, n]`, `true` where `mask` hides a pair.
fn blocking_tensor(mask: &crate::attention::Mask, device: &Device) -> Tensor<4, Bool> {
    let n = mask.n();
    let blocked: Vec<bool> = mask.as_slice().iter().map(|v| !v).collect();
    Tensor::<4, Bool>::from_data(TensorData::new(blocked, [1, 1, n, n]), device)
}
