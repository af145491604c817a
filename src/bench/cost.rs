//! The cost view's measurement: one attention or token-mixer layer (W2's shape) at one length, timed
//! and its peak memory counted, in this process.

use serde::Serialize;

use super::workloads::{BenchError, median_ms, mixer_layer, w2};
use crate::attention::{AttentionPattern, SparseLayout};
use crate::config::{BackendChoice, Mixer};
use crate::device::select_backend;
use crate::model::SparseMode;

/// One point of the cost view: an attention layer's step at one length.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct LayerCost {
    /// The pattern's label (`local w=64`).
    pub pattern: String,
    /// Sequence length.
    pub seq: usize,
    /// Median ms per forward + backward step (batch 4, d_model 128, 4 heads).
    pub step_ms: f64,
    /// Peak bytes allocated during the step beyond what was live before, MiB
    /// (`None` where the counting allocator is not installed).
    pub peak_mb: Option<f64>,
    /// Pairs the pattern attends (per head).
    pub attended_pairs: usize,
    /// Pairs the kernel computes (per head).
    pub computed_pairs: usize,
}

/// What the cost view times: an attention layer under a pattern, or another token
/// mixer's layer (both in W2's shape).
#[derive(Clone, Debug, PartialEq)]
pub enum CostLayer {
    /// Softmax attention under this pattern.
    Attention(AttentionPattern),
    /// A token mixer other than attention (its causal form).
    Mixer(Mixer),
}

impl CostLayer {
    /// The label the view shows and caches under (`local w=64`, `SSM N=16`).
    pub fn label(&self) -> String {
        match self {
            Self::Attention(p) => p.label(),
            Self::Mixer(m) => m.label(),
        }
    }

    /// Whether it can be measured at length `n`.
    pub fn fits(&self, n: usize) -> bool {
        match self {
            Self::Attention(p) => p.check(n).is_ok(),
            Self::Mixer(m) => m.check(n).is_ok(),
        }
    }
}

/// Measures one layer (W2's shape) of `layer` at `seq` in this process: the time per
/// step and, with the counting allocator, the peak memory of the step.
pub fn measure_layer(
    layer: &CostLayer,
    seq: usize,
    backend: BackendChoice,
    warmup: usize,
    steps: usize,
) -> Result<LayerCost, BenchError> {
    if let CostLayer::Attention(pattern) = layer {
        pattern.check(seq).map_err(|error| BenchError::Pattern {
            pattern: pattern.label(),
            seq,
            error,
        })?;
    }
    let (device, _) = select_backend(backend)?;
    // Alone: a training run in the same process neither adds to the peak nor slows
    // the timing (its steps wait).
    let (times, peak) = crate::memory::measure_alone(|| match layer {
        CostLayer::Attention(pattern) => w2(
            pattern,
            seq,
            &device,
            SparseMode::WherePaysOff,
            warmup,
            steps.max(1),
        ),
        CostLayer::Mixer(mixer) => mixer_layer(mixer, seq, &device, warmup, steps.max(1)),
    });
    let times = times?;
    // A mixer layer links every earlier position (and computes no pairs as such).
    let (attended_pairs, computed_pairs) = match layer {
        CostLayer::Attention(pattern) => (
            pattern.mask(seq, false, 1).attended_pairs(),
            SparseLayout::of(pattern, seq, 1).map_or(seq * seq, |l| l.computed_pairs()),
        ),
        CostLayer::Mixer(_) => (seq * (seq + 1) / 2, 0),
    };
    Ok(LayerCost {
        pattern: layer.label(),
        seq,
        step_ms: median_ms(times),
        peak_mb: peak.map(|p| p as f64 / (1024.0 * 1024.0)),
        attended_pairs,
        computed_pairs,
    })
}
