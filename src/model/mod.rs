//! The burn models: a pre-LN transformer whose layers each use one attention pattern,
//! and an LSTM baseline, each built from a burn `Config` with `init`.
//!
//! Both map tokens `[batch, seq]` to logits `[batch, seq, vocab]`. How each layer
//! computes attention is decided once per run ([`AttentionKernels`]): block-sparse
//! ([`BlockSparseAttention`]: only the blocks the pattern's layout turns on) where it
//! pays off, else the masked-dense reference ([`masked_attention`]), which also gives
//! the probe's attention weights. The patterns themselves come from
//! [`crate::attention`]. A training step with `model.dropout` runs
//! [`SequenceModel::forward_train`] with that step's [`StepDropout`] masks; nothing
//! else ever drops.

mod alibi;
mod block_sparse;
mod dropout;
pub mod fused;
mod interventions;
mod kernels;
mod loss;
mod lstm;
pub mod positions;
mod reference;
mod self_attention;
mod transformer;

use burn::module::Module;
use burn::tensor::{Int, Tensor};

pub use alibi::{Alibi, alibi_bias, alibi_slopes};
pub use block_sparse::{BlockSparseAttention, SparseUnavailable};
pub use dropout::StepDropout;
pub use interventions::{Captured, HeadEdit, HeadRef, Interventions, head_columns, head_mean};
pub use kernels::{AttentionKernels, KernelKind, LayerKernel, SparseMode};
pub use loss::{
    ReadbackError, accuracy, accuracy_of, masked_cross_entropy, predictions, read_back, scalar,
};
pub use lstm::{LstmNet, LstmNetConfig};
pub use reference::{
    attention_output, attention_output_with_bias, masked_attention, masked_attention_with_bias,
};
pub use self_attention::{SelfAttention, SelfAttentionConfig};
pub use transformer::{Transformer, TransformerConfig};

/// What the trainer needs of a model.
pub trait SequenceModel: Module + Sized {
    /// Logits for every position.
    ///
    /// # Shapes
    /// `tokens`: `[batch, seq]` → `[batch, seq, vocab]`.
    fn forward(&self, tokens: Tensor<2, Int>, kernels: &AttentionKernels) -> Tensor<3>;

    /// Logits for a training step with dropout, its masks drawn from `dropout`
    /// (`model.dropout`). Models without dropout (the LSTM) run [`Self::forward`].
    ///
    /// # Shapes
    /// `tokens`: `[batch, seq]` → `[batch, seq, vocab]`.
    fn forward_train(
        &self,
        tokens: Tensor<2, Int>,
        kernels: &AttentionKernels,
        dropout: &mut StepDropout,
    ) -> Tensor<3> {
        let _ = dropout;
        self.forward(tokens, kernels)
    }

    /// Logits and, per layer, the attention weights `[batch, heads, seq, seq]`
    /// (empty for models without attention).
    fn forward_with_attention(
        &self,
        tokens: Tensor<2, Int>,
        kernels: &AttentionKernels,
    ) -> (Tensor<3>, Vec<Tensor<4>>);
}
