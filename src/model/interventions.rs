//! Head interventions in the forward pass: a head's output, taken where the heads are
//! concatenated and before the output projection, replaced by zeros, by its mean over
//! a reference batch, or by the same head's output on another input (activation
//! patching, as in TransformerLens `patching.py`; zero and mean ablation as in Olsson
//! et al. 2022). One place applies them, after whichever kernel computed attention
//! (fused, block-sparse or masked dense), so every path gives the same result.
//!
//! They ride beside the kernels as [`HeadEdits`] inside [`Mixing`](super::Mixing),
//! which every forward pass takes: a model without any pays two `Option` checks per
//! layer.

use std::sync::{Arc, Mutex, PoisonError};

use burn::tensor::Tensor;

/// What replaces one head's output.
// A tensor handle is larger than a unit variant; there is one edit per head at most,
// so boxing it would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum HeadEdit {
    /// Zeros (zero ablation).
    Zero,
    /// These values, `[1 or batch, seq, head_dim]`: a per-position mean over a
    /// reference batch (mean ablation, batch 1, broadcast), or the head's output on
    /// another input of the same batch size (patching).
    Replace(Tensor<3>),
}

/// A (layer, head) of a transformer, both from 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HeadRef {
    /// The block.
    pub layer: usize,
    /// The head within it.
    pub head: usize,
}

impl std::fmt::Display for HeadRef {
    /// `L.H`, counting from 1 as the command line and the window do.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.layer + 1, self.head + 1)
    }
}

/// The concatenated head outputs of every layer, `[batch, seq, d_model]` each, as a
/// forward pass with [`Interventions::capturing`] left them (before any edit).
#[derive(Clone, Debug, Default)]
pub struct Captured {
    slots: Arc<Mutex<Vec<Option<Tensor<3>>>>>,
}

impl Captured {
    /// Layer `layer`'s head outputs from the last forward pass, if it ran.
    pub fn layer(&self, layer: usize) -> Option<Tensor<3>> {
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(layer)
            .cloned()
            .flatten()
    }

    fn store(&self, layer: usize, out: &Tensor<3>) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if slots.len() <= layer {
            slots.resize(layer + 1, None);
        }
        slots[layer] = Some(out.clone());
    }
}

/// Edits to apply to head outputs, and whether to capture them.
#[derive(Clone, Debug, Default)]
pub struct Interventions {
    /// Per layer: (head, edit).
    edits: Vec<Vec<(usize, HeadEdit)>>,
    capture: Option<Captured>,
}

impl Interventions {
    /// No edit, no capture: the forward pass as trained.
    pub fn none() -> Self {
        Self::default()
    }

    /// Zeros for each of `heads`.
    pub fn zero(heads: &[HeadRef]) -> Self {
        let mut i = Self::none();
        for h in heads {
            i.set(*h, HeadEdit::Zero);
        }
        i
    }

    /// No edit, and every layer's head outputs kept in the returned [`Captured`].
    pub fn capturing() -> (Self, Captured) {
        let captured = Captured::default();
        (
            Self {
                edits: Vec::new(),
                capture: Some(captured.clone()),
            },
            captured,
        )
    }

    /// Replaces `head`'s output by `edit` (a later edit of the same head wins).
    pub fn set(&mut self, head: HeadRef, edit: HeadEdit) {
        if self.edits.len() <= head.layer {
            self.edits.resize_with(head.layer + 1, Vec::new);
        }
        let layer = &mut self.edits[head.layer];
        layer.retain(|(h, _)| *h != head.head);
        layer.push((head.head, edit));
    }

    /// Whether it edits nothing and captures nothing.
    pub fn is_empty(&self) -> bool {
        self.capture.is_none() && self.edits.iter().all(Vec::is_empty)
    }

    /// Layer `layer`'s concatenated head outputs `out` (`[batch, seq, heads *
    /// head_dim]`), captured if asked and with this layer's edits applied.
    pub(crate) fn apply(&self, layer: usize, heads: usize, out: Tensor<3>) -> Tensor<3> {
        if let Some(captured) = &self.capture {
            captured.store(layer, &out);
        }
        let Some(edits) = self.edits.get(layer).filter(|e| !e.is_empty()) else {
            return out;
        };
        let [batch, seq, width] = out.dims();
        let head_dim = width / heads.max(1);
        let mut out = out;
        for (head, edit) in edits {
            if *head >= heads {
                continue;
            }
            let columns = head * head_dim..(head + 1) * head_dim;
            let values = match edit {
                HeadEdit::Zero => Tensor::zeros([batch, seq, head_dim], &out.device()),
                HeadEdit::Replace(values) => {
                    let [b, s, d] = values.dims();
                    assert!(
                        (b == 1 || b == batch) && s == seq && d == head_dim,
                        "a head's replacement is [{b}, {s}, {d}], the head's output [{batch}, {seq}, {head_dim}]"
                    );
                    if b == batch {
                        values.clone()
                    } else {
                        values.clone().expand([batch, seq, head_dim])
                    }
                }
            };
            out = out.slice_assign([0..batch, 0..seq, columns], values);
        }
        out
    }
}

/// The head edits of every forward pass of a run: the chosen interventions (an
/// ablation, a patch, a capture) and `model.ablated_heads`, heads zeroed for good,
/// which apply after any intervention, in training too.
#[derive(Clone, Debug, Default)]
pub struct HeadEdits {
    /// Chosen for one measurement (`None`: the model as trained).
    interventions: Option<Arc<Interventions>>,
    /// `model.ablated_heads` (`None`: none).
    ablated: Option<Arc<Interventions>>,
}

impl HeadEdits {
    /// `model.ablated_heads` of a run, zeroed in every pass (none: no edit at all).
    pub fn ablated(heads: &[HeadRef]) -> Self {
        Self {
            interventions: None,
            ablated: (!heads.is_empty()).then(|| Arc::new(Interventions::zero(heads))),
        }
    }

    /// The same permanent ablations with `interventions` applied first (an empty set
    /// removes any).
    pub fn with_interventions(&self, interventions: Interventions) -> Self {
        Self {
            interventions: (!interventions.is_empty()).then(|| Arc::new(interventions)),
            ablated: self.ablated.clone(),
        }
    }

    /// Layer `layer`'s concatenated head outputs `[batch, seq, d_model]` with the
    /// interventions, then the permanent ablations, applied (unchanged without any).
    pub(crate) fn apply(&self, layer: usize, heads: usize, out: Tensor<3>) -> Tensor<3> {
        let out = match &self.interventions {
            None => out,
            Some(i) => i.apply(layer, heads, out),
        };
        match &self.ablated {
            None => out,
            Some(a) => a.apply(layer, heads, out),
        }
    }
}

/// One head's columns of a layer's captured output `[batch, seq, heads * head_dim]`.
pub fn head_columns(out: &Tensor<3>, heads: usize, head: usize) -> Tensor<3> {
    let [batch, seq, width] = out.dims();
    let head_dim = width / heads.max(1);
    out.clone()
        .slice([0..batch, 0..seq, head * head_dim..(head + 1) * head_dim])
}

/// The per-position mean over the batch of one head's columns, `[1, seq, head_dim]`.
pub fn head_mean(out: &Tensor<3>, heads: usize, head: usize) -> Tensor<3> {
    head_columns(out, heads, head).mean_dim(0)
}
