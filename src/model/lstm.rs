//! The recurrent baseline: stacked LSTM layers over token embeddings.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig, Lstm, LstmConfig};
use burn::tensor::{Device, Int, Tensor};

use super::{Mixing, SequenceModel};
use crate::config::RunPlan;

/// The shape of an [`LstmNet`].
#[derive(Config, Debug)]
pub struct LstmNetConfig {
    /// Token vocabulary.
    pub vocab: usize,
    /// LSTM layers.
    pub layers: usize,
    /// Hidden size.
    pub d_model: usize,
}

impl LstmNetConfig {
    /// The LSTM a validated run describes.
    pub fn from_plan(plan: &RunPlan) -> Self {
        let s = plan.settings();
        Self::new(s.task.vocab, s.model.layers, s.model.d_model)
    }

    /// A model with fresh parameters (drawn from the device's RNG).
    pub fn init(&self, device: &Device) -> LstmNet {
        LstmNet {
            tokens: EmbeddingConfig::new(self.vocab, self.d_model).init(device),
            layers: (0..self.layers)
                .map(|_| LstmConfig::new(self.d_model, self.d_model, true).init(device))
                .collect(),
            head: LinearConfig::new(self.d_model, self.vocab).init(device),
        }
    }
}

/// Embedding, `layers` unidirectional LSTMs of width `d_model`, a linear head.
#[derive(Module, Debug)]
pub struct LstmNet {
    tokens: Embedding,
    layers: Vec<Lstm>,
    head: Linear,
}

impl SequenceModel for LstmNet {
    fn forward(&self, tokens: Tensor<2, Int>, _mixing: &Mixing) -> Tensor<3> {
        let mut x = self.tokens.forward(tokens);
        for layer in &self.layers {
            x = layer.forward(x, None).0;
        }
        self.head.forward(x)
    }

    fn forward_with_mixing(
        &self,
        tokens: Tensor<2, Int>,
        mixing: &Mixing,
    ) -> (Tensor<3>, Vec<Tensor<4>>) {
        (self.forward(tokens, mixing), Vec::new())
    }
}
