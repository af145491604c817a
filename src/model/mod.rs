//! The burn models: a pre-LN transformer whose layers each use one attention pattern,
//! and an LSTM baseline, each built from a burn `Config` with `init`.
//!
//! Both map tokens `[batch, seq]` to logits `[batch, seq, vocab]`, given a [`Mixing`]
//! built once per run: what mixes tokens in each layer, the [`Positions`] resolved
//! from the plan, and the head edits. How each layer computes attention is decided
//! there too ([`AttentionKernels`]): block-sparse
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
mod mixers;
mod mixing;
pub mod positions;
mod reference;
mod self_attention;
mod transformer;

use std::sync::{Mutex, MutexGuard, PoisonError};

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::tasks::Batch;

pub use alibi::{Alibi, alibi_bias, alibi_slopes};
pub use block_sparse::{BlockSparseAttention, SparseUnavailable};
pub use dropout::StepDropout;
pub use interventions::{
    Captured, HeadEdit, HeadEdits, HeadRef, Interventions, head_columns, head_mean,
};
pub use kernels::{AttentionKernels, KernelKind, LayerKernel, SparseMode};
pub use loss::{
    ReadbackError, accuracy, accuracy_of, masked_cross_entropy, predictions, read_back, scalar,
};
pub use lstm::{LstmNet, LstmNetConfig};
pub use mixers::{
    Based, GatedConv, LinearAttention, SelectiveSsm, TokenMixer, elu_feature, linear_recurrent,
    taylor_features, taylor_recurrent,
};
pub use mixing::{LayerMixer, Mixing};
pub use positions::Positions;
pub use reference::{
    attention_output, attention_output_with_bias, masked_attention, masked_attention_with_bias,
};
pub use self_attention::{SelfAttention, SelfAttentionConfig};
pub use transformer::{Transformer, TransformerConfig};

/// Held while a model is built and its parameters drawn (see [`init_lock`]).
static INIT: Mutex<()> = Mutex::new(());

/// The lock to hold while seeding a device and building a model: burn's CPU backend
/// has one process-wide generator, so a run starting beside another (in the window's
/// pool) or a record loaded for inspection would otherwise draw from each other's
/// seeded stream. A poisoned lock is taken anyway (it guards no data).
pub fn init_lock() -> MutexGuard<'static, ()> {
    INIT.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Tokens of a batch as an int tensor.
///
/// # Shapes
/// `[batch.batch, batch.seq_len]`.
pub fn tokens_tensor(batch: &Batch, device: &Device) -> Tensor<2, Int> {
    Tensor::from_data(
        TensorData::new(batch.tokens.clone(), [batch.batch, batch.seq_len]),
        device,
    )
}

/// What the trainer needs of a model.
pub trait SequenceModel: Module + Sized {
    /// Logits for every position.
    ///
    /// # Shapes
    /// `tokens`: `[batch, seq]` → `[batch, seq, vocab]`.
    fn forward(&self, tokens: Tensor<2, Int>, mixing: &Mixing) -> Tensor<3>;

    /// Logits for a training step with dropout, its masks drawn from `dropout`
    /// (`model.dropout`). Models without dropout (the LSTM) run [`Self::forward`].
    ///
    /// # Shapes
    /// `tokens`: `[batch, seq]` → `[batch, seq, vocab]`.
    fn forward_train(
        &self,
        tokens: Tensor<2, Int>,
        mixing: &Mixing,
        dropout: &mut StepDropout,
    ) -> Tensor<3> {
        let _ = dropout;
        self.forward(tokens, mixing)
    }

    /// Logits and, per layer, its mixing matrices `[batch, heads, seq, seq]`: row `i`
    /// says how much of each position reaches position `i` (for attention, its
    /// weights). Empty for models whose layers have none (the LSTM). What the panes
    /// read of every layer, whatever mixes its tokens.
    fn forward_with_mixing(
        &self,
        tokens: Tensor<2, Int>,
        mixing: &Mixing,
    ) -> (Tensor<3>, Vec<Tensor<4>>);
}
