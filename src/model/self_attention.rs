//! Multi-head self-attention: one fused qkv projection, the layer's attention kernel,
//! any head interventions ([`super::interventions`]), an output projection. Shared by the transformer block and the W2 benchmark.
//! Position schemes that act inside attention apply here: RoPE turns q and k before
//! the kernel; ALiBi's bias is added by the kernel itself (the fused plan carries its
//! slopes, the composed paths take [`super::Positions::bias`]).

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

use super::Mixing;
use super::fused::linear;
use super::reference::masked_attention_with_bias;

/// The shape of a [`SelfAttention`].
#[derive(Config, Debug)]
pub struct SelfAttentionConfig {
    /// Width of the residual stream.
    pub d_model: usize,
    /// Heads; must divide `d_model` (checked by the experiment's validation).
    pub heads: usize,
}

impl SelfAttentionConfig {
    /// A module with fresh parameters (drawn from the device's RNG).
    pub fn init(&self, device: &Device) -> SelfAttention {
        SelfAttention {
            qkv: LinearConfig::new(self.d_model, 3 * self.d_model).init(device),
            proj: LinearConfig::new(self.d_model, self.d_model).init(device),
            heads: self.heads,
        }
    }
}

/// Multi-head self-attention over a whole sequence.
#[derive(Module, Debug)]
pub struct SelfAttention {
    qkv: Linear,
    proj: Linear,
    heads: usize,
}

impl SelfAttention {
    /// Attention of layer `layer` computed by its kernel (block-sparse where chosen).
    ///
    /// # Shapes
    /// `x`: `[batch, seq, d_model]` → same.
    pub fn forward(&self, x: Tensor<3>, mixing: &Mixing, layer: usize) -> Tensor<3> {
        let [batch, seq, d_model] = x.dims();
        if let Some(plan) = mixing.fused_plan(layer) {
            let mut qkv = linear(&self.qkv, x.clone());
            if let Some(base) = mixing.positions().rope_base() {
                qkv = super::positions::rope_qkv(qkv, self.heads, base);
            }
            if let Some(out) = super::fused::fused_attention(qkv, plan, self.heads) {
                return linear(&self.proj, mixing.intervene(layer, self.heads, out));
            }
        }
        let (q, k, v) = self.split_heads(x, mixing);
        let out = mixing
            .attend(layer, q, k, v)
            .swap_dims(1, 2)
            .reshape([batch, seq, d_model]);
        linear(&self.proj, mixing.intervene(layer, self.heads, out))
    }

    /// Attention computed by the masked-dense reference, with its weights (ALiBi's
    /// bias included when the model uses it).
    ///
    /// # Shapes
    /// `x`: `[batch, seq, d_model]` → same, and weights `[batch, heads, seq, seq]`.
    pub fn forward_with_weights(
        &self,
        x: Tensor<3>,
        mixing: &Mixing,
        layer: usize,
    ) -> (Tensor<3>, Tensor<4>) {
        let [batch, seq, d_model] = x.dims();
        let bias = mixing.positions().bias(seq, seq, &x.device());
        let (q, k, v) = self.split_heads(x, mixing);
        let (out, weights) = masked_attention_with_bias(q, k, v, mixing.mask(layer), bias);
        let out = out.swap_dims(1, 2).reshape([batch, seq, d_model]);
        let out = linear(&self.proj, mixing.intervene(layer, self.heads, out));
        (out, weights)
    }

    /// `[batch, seq, d_model]` → q, k, v as `[batch, heads, seq, head_dim]`, q and k
    /// turned by RoPE when the model is rotary.
    fn split_heads(&self, x: Tensor<3>, mixing: &Mixing) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
        let [batch, seq, d_model] = x.dims();
        let heads = self.heads;
        let head_dim = d_model / heads;
        let qkv = linear(&self.qkv, x);
        let split = |part: usize| {
            qkv.clone()
                .slice([0..batch, 0..seq, part * d_model..(part + 1) * d_model])
                .reshape([batch, seq, heads, head_dim])
                .swap_dims(1, 2)
        };
        match mixing.positions().rope_base() {
            Some(base) => {
                let (q, k) = super::positions::rope_heads(split(0), split(1), base);
                (q, k, split(2))
            }
            None => (split(0), split(1), split(2)),
        }
    }
}
