//! The recurrent baseline: stacked LSTM layers over token embeddings.

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig, Lstm, LstmConfig};
use burn::tensor::{Device, Int, Tensor};

use super::{LayerMasks, SequenceModel};
use crate::config::RunPlan;

/// Embedding, `layers` unidirectional LSTMs of width `d_model`, a linear head.
#[derive(Module, Debug)]
pub struct LstmNet {
    tokens: Embedding,
    layers: Vec<Lstm>,
    head: Linear,
}

impl LstmNet {
    /// Builds the LSTM of a run.
    pub fn new(plan: &RunPlan, device: &Device) -> Self {
        let m = &plan.settings.model;
        let vocab = plan.settings.task.vocab;
        Self {
            tokens: EmbeddingConfig::new(vocab, m.d_model).init(device),
            layers: (0..m.layers)
                .map(|_| LstmConfig::new(m.d_model, m.d_model, true).init(device))
                .collect(),
            head: LinearConfig::new(m.d_model, vocab).init(device),
        }
    }
}

impl SequenceModel for LstmNet {
    fn forward(&self, tokens: Tensor<2, Int>, _masks: &LayerMasks) -> Tensor<3> {
        let mut x = self.tokens.forward(tokens);
        for layer in &self.layers {
            x = layer.forward(x, None).0;
        }
        self.head.forward(x)
    }

    fn forward_with_attention(
        &self,
        tokens: Tensor<2, Int>,
        masks: &LayerMasks,
    ) -> (Tensor<3>, Vec<Tensor<4>>) {
        (self.forward(tokens, masks), Vec::new())
    }
}
