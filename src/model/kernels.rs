//! How each attention layer of a run computes attention, decided and built once per
//! run: the fused tile kernel on the CPU backend, block-sparse where it pays off, the
//! masked-dense reference elsewhere. Kernels only: positions and head edits ride
//! beside them in [`super::Mixing`].

use std::sync::Arc;

use burn::tensor::{Bool, Device, Tensor, TensorData};

use super::alibi::Alibi;
use super::block_sparse::{BlockSparseAttention, SparseUnavailable};
use super::fused::{self, AttentionPlan};
use super::reference::attention_output_with_bias;
use crate::attention::sparse_pays_off;
use crate::config::RunPlan;

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
}

impl AttentionKernels {
    /// The kernels of every layer of `plan` on `device`: the fused kernel on the CPU
    /// backend (unless `mode` is [`SparseMode::Off`] or `ATTNLAB_FUSED=0`), else
    /// block-sparse where it pays off and masked dense elsewhere. With `alibi`, every
    /// kernel adds its bias inside (the fused plans and block-sparse parts carry the
    /// slopes).
    pub fn for_plan(
        plan: &RunPlan,
        device: &Device,
        mode: SparseMode,
        alibi: Option<&Alibi>,
    ) -> Self {
        let n = plan.settings().task.seq_len;
        let seed = plan.settings().train.seed;
        let use_fused =
            mode == SparseMode::WherePaysOff && fused::enabled() && fused::supported(device);
        let layers = plan
            .layer_patterns()
            .iter()
            .zip(plan.layer_masks())
            .enumerate()
            .map(|(l, (pattern, mask))| {
                let fused = use_fused.then(|| AttentionPlan::new(pattern, &mask));
                match fused {
                    Some(Ok(tiles)) => LayerKernel::fused(tiles, alibi, &mask, n, device),
                    Some(Err(e)) => LayerKernel::fallback(&mask, device, e.to_string()),
                    None if mask.attended_pairs() == n * n => LayerKernel::dense(),
                    None => {
                        let layer_seed = seed.wrapping_add(l as u64);
                        LayerKernel::composed(pattern, &mask, layer_seed, alibi, mode, device)
                    }
                }
            })
            .collect();
        Self { layers }
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

    /// Attention output of layer `l`: block-sparse where chosen (its parts carry
    /// ALiBi's slopes), else the masked reference with `bias` added to the scores.
    ///
    /// # Shapes
    /// `q`, `k`, `v`: `[batch, heads, seq, head_dim]` → same; `bias` `[1, heads, seq,
    /// seq]`.
    pub fn attend(
        &self,
        l: usize,
        q: Tensor<4>,
        k: Tensor<4>,
        v: Tensor<4>,
        bias: impl FnOnce() -> Option<Tensor<4>>,
    ) -> Tensor<4> {
        match self.layers.get(l).and_then(|k| k.sparse.as_ref()) {
            Some(sparse) => sparse.forward(q, k, v),
            None => attention_output_with_bias(q, k, v, self.mask(l), bias()),
        }
    }
}

impl LayerKernel {
    /// Every pair visible, no mask: plain attention.
    fn dense() -> Self {
        Self {
            kind: KernelKind::Dense,
            reason: None,
            fault: false,
            mask: None,
            sparse: None,
            plan: None,
        }
    }

    /// The fused tile kernel with `tiles` (ALiBi's slopes added to the plan), and the
    /// mask for the probe's weights unless every pair of the `n x n` is visible.
    fn fused(
        tiles: AttentionPlan,
        alibi: Option<&Alibi>,
        mask: &crate::attention::Mask,
        n: usize,
        device: &Device,
    ) -> Self {
        let tiles = match alibi {
            Some(a) => tiles.with_alibi(a.shared_slopes()),
            None => tiles,
        };
        Self {
            kind: KernelKind::Fused,
            reason: None,
            fault: false,
            mask: (mask.attended_pairs() != n * n).then(|| blocking_tensor(mask, device)),
            sparse: None,
            plan: Some(Arc::new(tiles)),
        }
    }

    /// A sparse layer on burn's composed ops: block-sparse where `mode` allows it and
    /// gathering pays off, masked dense otherwise (saying why).
    fn composed(
        pattern: &crate::attention::AttentionPattern,
        mask: &crate::attention::Mask,
        seed: u64,
        alibi: Option<&Alibi>,
        mode: SparseMode,
        device: &Device,
    ) -> Self {
        let n = mask.n();
        let (sparse, reason, fault) = match mode {
            SparseMode::Off => (
                None,
                Some("block-sparse computation turned off".into()),
                false,
            ),
            SparseMode::WherePaysOff | SparseMode::Composed => {
                match BlockSparseAttention::new_with_alibi(pattern, mask, seed, alibi, device) {
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
        Self {
            kind: if sparse.is_some() {
                KernelKind::BlockSparse
            } else {
                KernelKind::MaskedDense
            },
            reason,
            fault,
            mask: Some(blocking_tensor(mask, device)),
            sparse,
            plan: None,
        }
    }

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
