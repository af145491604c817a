//! Pre-LN transformer encoder with one pattern per layer and learned, sinusoidal,
//! rotary (in attention, [`super::positions`]), ALiBi (a score bias in attention,
//! [`super::alibi`]; nothing added to the embeddings) or no positions;
//! blocks without a feed-forward part when `d_ff` is 0 (attention-only).

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::{Device, Int, Tensor};

use super::dropout::StepDropout;
use super::fused::{gelu, layer_norm, linear};
use super::mixers::TokenMixer;
use super::self_attention::{SelfAttention, SelfAttentionConfig};
use super::{Mixing, Positions, SequenceModel};
use crate::config::{Mixer, RunPlan};

/// The shape of a [`Transformer`].
#[derive(Config, Debug)]
pub struct TransformerConfig {
    /// Token vocabulary.
    pub vocab: usize,
    /// Longest sequence (learned positions).
    pub seq_len: usize,
    /// Transformer blocks.
    pub layers: usize,
    /// Width of the residual stream.
    pub d_model: usize,
    /// Attention heads per block.
    pub heads: usize,
    /// Width of the feed-forward block (0: none, attention-only blocks).
    pub d_ff: usize,
    /// Whether the model owns a learned position table (`Positions::Learned`; every
    /// other scheme enters through [`Mixing::positions`] at run time).
    #[config(default = true)]
    pub learned_positions: bool,
    /// Each layer's token mixer (empty: attention in every layer).
    #[config(default = "Vec::new()")]
    pub mixers: Vec<Mixer>,
    /// Whether a position may only see those before it (the mixers' causality;
    /// attention's comes with its mask).
    #[config(default = false)]
    pub causal: bool,
}

impl TransformerConfig {
    /// The transformer a validated run describes.
    pub fn from_plan(plan: &RunPlan) -> Self {
        let (m, t) = (&plan.settings().model, &plan.settings().task);
        let mixers = m.layer_mixers();
        let mixers = if mixers.iter().all(Mixer::is_attention) {
            Vec::new()
        } else {
            mixers
        };
        Self::new(t.vocab, t.seq_len, m.layers, m.d_model, m.heads, m.d_ff)
            .with_learned_positions(Positions::of(m).is_learned())
            .with_mixers(mixers)
            .with_causal(m.causal)
    }

    /// A model with fresh parameters (drawn from the device's RNG). With `d_ff` 0 the
    /// blocks have no feed-forward norm or linears at all.
    pub fn init(&self, device: &Device) -> Transformer {
        let d = self.d_model;
        let feed_forward = self.d_ff > 0;
        let blocks = (0..self.layers)
            .map(|l| {
                let mixer = self.mixers.get(l).and_then(|m| {
                    TokenMixer::new(m, d, self.heads, self.seq_len, self.causal, device)
                });
                Block {
                    norm_attn: LayerNormConfig::new(d).init(device),
                    attention: mixer
                        .is_none()
                        .then(|| SelfAttentionConfig::new(d, self.heads).init(device)),
                    mixer,
                    heads: self.heads,
                    norm_ff: feed_forward.then(|| LayerNormConfig::new(d).init(device)),
                    ff_in: feed_forward.then(|| LinearConfig::new(d, self.d_ff).init(device)),
                    ff_out: feed_forward.then(|| LinearConfig::new(self.d_ff, d).init(device)),
                }
            })
            .collect();
        Transformer {
            tokens: EmbeddingConfig::new(self.vocab, d).init(device),
            positions: self
                .learned_positions
                .then(|| EmbeddingConfig::new(self.seq_len, d).init(device)),
            blocks,
            norm: LayerNormConfig::new(d).init(device),
            head: LinearConfig::new(d, self.vocab).init(device),
        }
    }
}

/// Token + position embeddings, `layers` pre-LN blocks, a final norm and a linear head
/// over the vocabulary at every position.
#[derive(Module, Debug)]
pub struct Transformer {
    tokens: Embedding,
    /// Learned positions (only when `model.positions = "learned"`).
    positions: Option<Embedding>,
    blocks: Vec<Block>,
    norm: LayerNorm,
    head: Linear,
}

/// `x + attn(ln(x))`, then `x + mlp(ln(x))` (no second step in an attention-only
/// block). The feed-forward parts are all present or all absent; as `Option`s they
/// keep the record's names (`blocks.0.ff_in.weight`) of the blocks that have them.
#[derive(Module, Debug)]
pub struct Block {
    norm_attn: LayerNorm,
    /// Softmax attention, in a layer whose mixer is attention (the record's names of
    /// attention layers stay `blocks.L.attention.*`).
    attention: Option<SelfAttention>,
    /// Any other token mixer (`model.mixer`).
    mixer: Option<TokenMixer>,
    heads: usize,
    norm_ff: Option<LayerNorm>,
    ff_in: Option<Linear>,
    ff_out: Option<Linear>,
}

impl Block {
    /// With `weights`, attention is the masked-dense reference and its weights come
    /// back; without, the layer's kernel is used. With `dropout`, the attention's and
    /// the feed-forward block's outputs are dropped before they join the residual
    /// stream.
    ///
    /// # Shapes
    /// `x`: `[batch, seq, d_model]` → same, plus weights `[batch, heads, seq, seq]`.
    fn forward(
        &self,
        x: Tensor<3>,
        mixing: &Mixing,
        layer: usize,
        weights: bool,
        mut dropout: Option<&mut StepDropout>,
    ) -> (Tensor<3>, Option<Tensor<4>>) {
        let normed = layer_norm(&self.norm_attn, x.clone());
        let (mut attended, weights) = match (&self.attention, &self.mixer) {
            (_, Some(mixer)) => {
                let w = weights.then(|| mixer.mixing_matrices(normed.clone(), self.heads));
                (mixer.forward(normed, mixing, layer, self.heads), w)
            }
            (Some(attention), None) if weights => {
                let (out, w) = attention.forward_with_weights(normed, mixing, layer);
                (out, Some(w))
            }
            (Some(attention), None) => (attention.forward(normed, mixing, layer), None),
            // A block is built with one or the other.
            (None, None) => (normed.zeros_like(), None),
        };
        if let Some(d) = dropout.as_deref_mut() {
            attended = d.apply(attended);
        }
        let x = x + attended;
        let (Some(norm_ff), Some(ff_in), Some(ff_out)) = (&self.norm_ff, &self.ff_in, &self.ff_out)
        else {
            return (x, weights);
        };
        let mut ff = linear(ff_out, gelu(linear(ff_in, layer_norm(norm_ff, x.clone()))));
        if let Some(d) = dropout {
            ff = d.apply(ff);
        }
        (x + ff, weights)
    }
}

impl SequenceModel for Transformer {
    fn forward(&self, tokens: Tensor<2, Int>, mixing: &Mixing) -> Tensor<3> {
        self.run(tokens, mixing, false, None).0
    }

    fn forward_train(
        &self,
        tokens: Tensor<2, Int>,
        mixing: &Mixing,
        dropout: &mut StepDropout,
    ) -> Tensor<3> {
        self.run(tokens, mixing, false, Some(dropout)).0
    }

    fn forward_with_mixing(
        &self,
        tokens: Tensor<2, Int>,
        mixing: &Mixing,
    ) -> (Tensor<3>, Vec<Tensor<4>>) {
        self.run(tokens, mixing, true, None)
    }
}

impl Transformer {
    /// The forward pass; with `dropout`, the embeddings' sum and each block's
    /// residual branches are dropped (a training step's).
    fn run(
        &self,
        tokens: Tensor<2, Int>,
        mixing: &Mixing,
        with_weights: bool,
        mut dropout: Option<&mut StepDropout>,
    ) -> (Tensor<3>, Vec<Tensor<4>>) {
        let [_, seq] = tokens.dims();
        let device = tokens.device();
        let mut x = self.tokens.forward(tokens);
        if let Some(learned) = &self.positions {
            let positions = Tensor::<1, Int>::arange(0..seq as i64, &device).reshape([1, seq]);
            x = x + learned.forward(positions);
        }
        let [_, _, d_model] = x.dims();
        if let Some(table) = mixing.positions().added_table(seq, d_model, &device) {
            x = x + table.unsqueeze::<3>();
        }
        if let Some(d) = dropout.as_deref_mut() {
            x = d.apply(x);
        }
        let mut weights = Vec::with_capacity(self.blocks.len());
        for (layer, block) in self.blocks.iter().enumerate() {
            let (next, w) = block.forward(x, mixing, layer, with_weights, dropout.as_deref_mut());
            x = next;
            weights.extend(w);
        }
        (linear(&self.head, layer_norm(&self.norm, x)), weights)
    }
}
