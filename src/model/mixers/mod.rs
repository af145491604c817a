//! The token mixers that replace attention in a layer (`model.mixer`,
//! `model.layer_mixers`): linear attention and Based (`linear`), a gated long
//! convolution (`conv`) and a selective state-space layer (`ssm`). Each maps
//! `[batch, seq, d_model]` to the same, through the head edits of its layer (heads are
//! groups of `d_model / heads` channels for the convolution and the SSM), and is, for
//! a given input, a matrix mixing positions: [`TokenMixer::mixing_matrices`] gives it
//! per head for the panes, as attention gives its weights.
//!
//! These run as composed burn ops on every backend (the CPU's fused kernels cover
//! softmax attention only, so far).

mod conv;
mod linear;
mod ssm;

use burn::module::Module;
use burn::tensor::{Device, Tensor};

pub use conv::GatedConv;
pub use linear::{
    Based, EPS, LinearAttention, elu_feature, linear_recurrent, taylor_features, taylor_recurrent,
};
pub use ssm::SelectiveSsm;

use super::Mixing;
use crate::config::Mixer;

/// A layer's token mixer other than softmax attention.
// One per layer: boxing the larger variants would save nothing worth an indirection.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum TokenMixer {
    Linear(LinearAttention),
    Based(Based),
    Conv(GatedConv),
    Ssm(SelectiveSsm),
}

impl TokenMixer {
    /// The module `mixer` describes (`None` for attention), with fresh parameters.
    /// `max_len`: the training length (a convolution's filter length).
    pub fn new(
        mixer: &Mixer,
        d_model: usize,
        heads: usize,
        max_len: usize,
        causal: bool,
        device: &Device,
    ) -> Option<Self> {
        Some(match *mixer {
            Mixer::Attention => return None,
            Mixer::Linear => Self::Linear(LinearAttention::new(d_model, heads, causal, device)),
            Mixer::Based {
                feature_dim,
                window,
            } => Self::Based(Based::new(
                d_model,
                heads,
                feature_dim,
                window,
                causal,
                device,
            )),
            Mixer::Conv { short } => Self::Conv(GatedConv::new(d_model, max_len, short, device)),
            Mixer::Ssm { state } => Self::Ssm(SelectiveSsm::new(d_model, state, device)),
        })
    }

    /// The layer's output before its projection, `[batch, seq, d_model]`.
    pub fn mixed(&self, x: Tensor<3>) -> Tensor<3> {
        match self {
            Self::Linear(m) => m.mixed(x),
            Self::Based(m) => m.mixed(x),
            Self::Conv(m) => m.mixed(x),
            Self::Ssm(m) => m.mixed(x),
        }
    }

    /// The layer: mixed, `heads` head edits of `layer` applied, projected.
    ///
    /// # Shapes
    /// `x`: `[batch, seq, d_model]` → same.
    pub fn forward(&self, x: Tensor<3>, mixing: &Mixing, layer: usize, heads: usize) -> Tensor<3> {
        let mixed = mixing.intervene(layer, heads, self.mixed(x));
        self.project(mixed)
    }

    fn project(&self, x: Tensor<3>) -> Tensor<3> {
        match self {
            Self::Linear(m) => m.project(x),
            Self::Based(m) => m.project(x),
            Self::Conv(m) => m.project(x),
            Self::Ssm(m) => m.project(x),
        }
    }

    /// The exact mixing matrices and the values they mix: per head
    /// (`[batch, heads, seq, seq]` and `[batch, heads, seq, head_dim]`) for linear
    /// attention and Based, per channel (`[batch, d_model, seq, seq]` and
    /// `[batch, d_model, seq, 1]`) for the convolution and the SSM. Their product,
    /// heads merged, is [`Self::mixed`].
    pub fn raw_mixing(&self, x: Tensor<3>) -> (Tensor<4>, Tensor<4>) {
        match self {
            Self::Linear(m) => m.mixing(x),
            Self::Based(m) => m.mixing(x),
            Self::Conv(m) => m.mixing(x),
            Self::Ssm(m) => m.mixing(x),
        }
    }

    /// What the panes show of the layer, `[batch, heads, seq, seq]`: row `t` says how
    /// much of each position reaches `t`. Linear attention and Based: their matrices,
    /// rows already summing to 1. The convolution and the SSM: the magnitude of each
    /// channel's matrix averaged over the head's channels, each row scaled to sum to 1
    /// (the signed matrices are [`Self::raw_mixing`]).
    pub fn mixing_matrices(&self, x: Tensor<3>, heads: usize) -> Tensor<4> {
        let (m, _) = self.raw_mixing(x);
        match self {
            Self::Linear(_) | Self::Based(_) => m,
            Self::Conv(_) | Self::Ssm(_) => {
                let [batch, channels, seq, _] = m.dims();
                let heads = heads.max(1);
                let per_head = m
                    .abs()
                    .reshape([batch, heads, channels / heads, seq * seq])
                    .mean_dim(2)
                    .reshape([batch, heads, seq, seq]);
                let total = per_head.clone().sum_dim(3) + EPS;
                per_head / total
            }
        }
    }
}
