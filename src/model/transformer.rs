//! Pre-LN transformer encoder with learned positions and one pattern per layer.

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::gelu;
use burn::tensor::{Device, Int, Tensor};

use super::{LayerMasks, SequenceModel, masked_attention};
use crate::config::RunPlan;

/// Token + position embeddings, `layers` pre-LN blocks, a final norm and a linear head
/// over the vocabulary at every position.
#[derive(Module, Debug)]
pub struct Transformer {
    tokens: Embedding,
    positions: Embedding,
    blocks: Vec<Block>,
    norm: LayerNorm,
    head: Linear,
}

/// `x + attn(ln(x))`, then `x + mlp(ln(x))`.
#[derive(Module, Debug)]
pub struct Block {
    norm_attn: LayerNorm,
    qkv: Linear,
    proj: Linear,
    norm_ff: LayerNorm,
    ff_in: Linear,
    ff_out: Linear,
    heads: usize,
}

impl Transformer {
    /// Builds the transformer of a run (parameters drawn from the device's RNG).
    pub fn new(plan: &RunPlan, device: &Device) -> Self {
        let m = &plan.settings.model;
        let t = &plan.settings.task;
        let blocks = (0..m.layers)
            .map(|_| Block {
                norm_attn: LayerNormConfig::new(m.d_model).init(device),
                qkv: LinearConfig::new(m.d_model, 3 * m.d_model).init(device),
                proj: LinearConfig::new(m.d_model, m.d_model).init(device),
                norm_ff: LayerNormConfig::new(m.d_model).init(device),
                ff_in: LinearConfig::new(m.d_model, m.d_ff).init(device),
                ff_out: LinearConfig::new(m.d_ff, m.d_model).init(device),
                heads: m.heads,
            })
            .collect();
        Self {
            tokens: EmbeddingConfig::new(t.vocab, m.d_model).init(device),
            positions: EmbeddingConfig::new(t.seq_len, m.d_model).init(device),
            blocks,
            norm: LayerNormConfig::new(m.d_model).init(device),
            head: LinearConfig::new(m.d_model, t.vocab).init(device),
        }
    }
}

impl Block {
    /// With `weights`, attention is the masked-dense reference and its weights come
    /// back; without, the layer's block-sparse computation is used where it has one.
    ///
    /// # Shapes
    /// `x`: `[batch, seq, d_model]` → same, plus weights `[batch, heads, seq, seq]`.
    fn forward(
        &self,
        x: Tensor<3>,
        masks: &LayerMasks,
        layer: usize,
        weights: bool,
    ) -> (Tensor<3>, Option<Tensor<4>>) {
        let [batch, seq, d_model] = x.dims();
        let heads = self.heads;
        let head_dim = d_model / heads;
        let qkv = self.qkv.forward(self.norm_attn.forward(x.clone()));
        let split = |part: usize| {
            qkv.clone()
                .slice([0..batch, 0..seq, part * d_model..(part + 1) * d_model])
                .reshape([batch, seq, heads, head_dim])
                .swap_dims(1, 2)
        };
        let (out, weights) = if weights {
            let (out, w) = masked_attention(split(0), split(1), split(2), masks.layer(layer));
            (out, Some(w))
        } else {
            (masks.attend(layer, split(0), split(1), split(2)), None)
        };
        let out = out.swap_dims(1, 2).reshape([batch, seq, d_model]);
        let x = x + self.proj.forward(out);
        let ff = self
            .ff_out
            .forward(gelu(self.ff_in.forward(self.norm_ff.forward(x.clone()))));
        (x + ff, weights)
    }
}

impl SequenceModel for Transformer {
    fn forward(&self, tokens: Tensor<2, Int>, masks: &LayerMasks) -> Tensor<3> {
        self.run(tokens, masks, false).0
    }

    fn forward_with_attention(
        &self,
        tokens: Tensor<2, Int>,
        masks: &LayerMasks,
    ) -> (Tensor<3>, Vec<Tensor<4>>) {
        self.run(tokens, masks, true)
    }
}

impl Transformer {
    fn run(
        &self,
        tokens: Tensor<2, Int>,
        masks: &LayerMasks,
        with_weights: bool,
    ) -> (Tensor<3>, Vec<Tensor<4>>) {
        let [_, seq] = tokens.dims();
        let device = tokens.device();
        let positions = Tensor::<1, Int>::arange(0..seq as i64, &device).reshape([1, seq]);
        let mut x = self.tokens.forward(tokens) + self.positions.forward(positions);
        let mut weights = Vec::with_capacity(self.blocks.len());
        for (layer, block) in self.blocks.iter().enumerate() {
            let (next, w) = block.forward(x, masks, layer, with_weights);
            x = next;
            weights.extend(w);
        }
        (self.head.forward(self.norm.forward(x)), weights)
    }
}
