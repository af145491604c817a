//! The `[task]`, `[model]` and `[train]` tables and their defaults.

use serde::{Deserialize, Serialize};

use super::mixer::Mixer;
use super::train_choices::{KeepCheckpoints, LrSchedule, PositionScheme};
use crate::attention::{AttentionPattern, Mask};
use crate::tasks::TaskConfig;

/// Whether a number field is at its default, 0 (left out of written files, so that
/// files and checkpoints written before the field existed read the same).
fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

/// RoPE's default base.
pub const DEFAULT_ROPE_BASE: f64 = 10_000.0;

/// Whether `rope_base` is the default (left out of written files).
fn is_default_rope_base(v: &f64) -> bool {
    *v == DEFAULT_ROPE_BASE
}

/// Whether a count field is at its default, 0 (left out of written files).
fn is_zero_count(v: &usize) -> bool {
    *v == 0
}

/// The most lengths one run evaluates at besides its own (`train.eval_lengths`).
pub const MAX_EVAL_LENGTHS: usize = 8;

/// Everything one run needs besides its name.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The synthetic task.
    pub task: TaskConfig,
    /// The model and its attention patterns.
    pub model: ModelConfig,
    /// Optimisation and logging.
    pub train: TrainConfig,
}

impl Settings {
    /// The longest sequence this model has positions for: `task.seq_len` for a
    /// transformer with learned positions (it has none beyond, and they are never
    /// clamped or wrapped), `None` (any length) otherwise.
    pub fn positions_end(&self) -> Option<usize> {
        (self.model.kind == ModelKind::Transformer && self.model.positions.is_learned())
            .then_some(self.task.seq_len)
    }
}

/// Transformer or the recurrent baseline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// Pre-LN transformer encoder with learned positions.
    #[default]
    Transformer,
    /// Stacked LSTM: the RNN baseline.
    Lstm,
}

/// The `[model]` table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// `transformer` or `lstm`.
    pub kind: ModelKind,
    /// Number of layers (transformer blocks or LSTM layers).
    pub layers: usize,
    /// Attention heads per layer; must divide `d_model`.
    pub heads: usize,
    /// Width of the residual stream (the LSTM's hidden size).
    pub d_model: usize,
    /// Width of the feed-forward block (0: none, attention-only blocks).
    pub d_ff: usize,
    /// Dropout probability on the embeddings and on each block's attention and
    /// feed-forward outputs, in training steps only (0: none; evaluation, probes and
    /// snapshots never drop).
    #[serde(skip_serializing_if = "is_zero")]
    pub dropout: f64,
    /// Whether a query may only see keys at or before it.
    pub causal: bool,
    /// How positions are encoded: learned (default), sinusoidal, rope, alibi or none.
    #[serde(skip_serializing_if = "PositionScheme::is_learned")]
    pub positions: PositionScheme,
    /// RoPE's base (the longest wavelength's scale, 10000 as in Su et al.).
    #[serde(skip_serializing_if = "is_default_rope_base")]
    pub rope_base: f64,
    /// The pattern of every layer, unless `layer_attention` is given.
    pub attention: AttentionPattern,
    /// One pattern per layer, first layer first (overrides `attention` unless empty;
    /// a run turns a base's per-layer patterns off with `layer_attention = []`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub layer_attention: Vec<AttentionPattern>,
    /// What mixes tokens in every layer, unless `layer_mixers` is given: softmax
    /// attention under the layer's pattern (the default), or a sub-quadratic mixer.
    #[serde(skip_serializing_if = "Mixer::is_attention")]
    pub mixer: Mixer,
    /// One mixer per layer, first layer first (overrides `mixer` unless empty): hybrids.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub layer_mixers: Vec<Mixer>,
    /// Heads ablated for good, `"LAYER.HEAD"` from `"1.1"`: their output is zero in
    /// training and evaluation (a fork may prune the heads ablation shows unneeded).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ablated_heads: Vec<String>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            kind: ModelKind::Transformer,
            layers: 2,
            heads: 4,
            d_model: 64,
            d_ff: 256,
            dropout: 0.0,
            causal: false,
            positions: PositionScheme::Learned,
            rope_base: DEFAULT_ROPE_BASE,
            attention: AttentionPattern::Dense,
            layer_attention: Vec::new(),
            mixer: Mixer::Attention,
            layer_mixers: Vec::new(),
            ablated_heads: Vec::new(),
        }
    }
}

impl ModelConfig {
    /// `ablated_heads` as (layer, head) from 0; `Err` names the first that is not
    /// `LAYER.HEAD` within this model's layers and heads.
    pub fn ablated(&self) -> Result<Vec<(usize, usize)>, String> {
        self.ablated_heads
            .iter()
            .map(|text| {
                let parsed = text
                    .trim()
                    .split_once('.')
                    .and_then(|(l, h)| Some((l.parse::<usize>().ok()?, h.parse::<usize>().ok()?)));
                match parsed {
                    Some((l, h))
                        if (1..=self.layers).contains(&l) && (1..=self.heads).contains(&h) =>
                    {
                        Ok((l - 1, h - 1))
                    }
                    _ => Err(format!(
                        "{text:?} is not a head of this model: write LAYER.HEAD from 1.1 to {}.{}",
                        self.layers, self.heads
                    )),
                }
            })
            .collect()
    }

    /// The token mixer of each layer, first layer first.
    pub fn layer_mixers(&self) -> Vec<Mixer> {
        if self.layer_mixers.is_empty() {
            vec![self.mixer.clone(); self.layers]
        } else {
            self.layer_mixers.clone()
        }
    }

    /// The pattern of each layer, first layer first. A layer whose token mixer is not
    /// attention links every pair it may (dense; causal with `causal`): its pattern
    /// is not used.
    pub fn layer_patterns(&self) -> Vec<AttentionPattern> {
        let patterns = if self.layer_attention.is_empty() {
            vec![self.attention.clone(); self.layers]
        } else {
            self.layer_attention.clone()
        };
        let mixers = self.layer_mixers();
        patterns
            .into_iter()
            .enumerate()
            .map(|(l, p)| match mixers.get(l) {
                Some(m) if !m.is_attention() => AttentionPattern::Dense,
                _ => p,
            })
            .collect()
    }

    /// The mask of each layer at sequence length `n` (empty for the LSTM). Layer `l`'s
    /// BigBird random blocks are seeded by `seed + l`.
    pub fn layer_masks(&self, n: usize, seed: u64) -> Vec<Mask> {
        if self.kind == ModelKind::Lstm {
            return Vec::new();
        }
        self.layer_patterns()
            .iter()
            .enumerate()
            .map(|(l, p)| p.mask(n, self.causal, seed.wrapping_add(l as u64)))
            .collect()
    }

    /// [`ModelConfig::layer_masks`] averaged down to at most `max_side` per side, as
    /// attention snapshots are (see [`AttentionPattern::fitted_mask`]).
    pub fn fitted_layer_masks(&self, n: usize, seed: u64, max_side: usize) -> Vec<Mask> {
        if self.kind == ModelKind::Lstm {
            return Vec::new();
        }
        self.layer_patterns()
            .iter()
            .enumerate()
            .map(|(l, p)| p.fitted_mask(n, self.causal, seed.wrapping_add(l as u64), max_side))
            .collect()
    }

    /// A short description of how the layers mix tokens, e.g. `local w=8`,
    /// `local w=8 / dense` or `SSM N=16 / dense`.
    pub fn attention_label(&self) -> String {
        let mixers = self.layer_mixers();
        match self.kind {
            ModelKind::Lstm => "lstm".into(),
            ModelKind::Transformer if mixers.iter().any(|m| !m.is_attention()) => {
                // Each layer: its mixer, or its pattern where it attends.
                let patterns = self.layer_patterns();
                let layers: Vec<String> = mixers
                    .iter()
                    .zip(&patterns)
                    .map(|(m, p)| {
                        if m.is_attention() {
                            p.label()
                        } else {
                            m.label()
                        }
                    })
                    .collect();
                let mut distinct = layers.clone();
                distinct.dedup();
                if distinct.len() == 1 {
                    distinct.remove(0)
                } else {
                    layers.join(" / ")
                }
            }
            ModelKind::Transformer if self.layer_attention.is_empty() => self.attention.label(),
            ModelKind::Transformer => self
                .layer_attention
                .iter()
                .map(AttentionPattern::label)
                .collect::<Vec<_>>()
                .join(" / "),
        }
    }
}

/// Where to train (also the CLI's `--backend` values).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum BackendChoice {
    /// wgpu on a real GPU adapter, otherwise the CPU backend.
    #[default]
    Auto,
    /// burn's `flex` CPU backend.
    Cpu,
    /// burn on wgpu, whatever the adapter (even a software one).
    Wgpu,
}

impl BackendChoice {
    /// Every choice, as listed in docs and the GUI.
    pub const ALL: [BackendChoice; 3] =
        [BackendChoice::Auto, BackendChoice::Cpu, BackendChoice::Wgpu];

    /// The name as written in experiment files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            BackendChoice::Auto => "auto",
            BackendChoice::Cpu => "cpu",
            BackendChoice::Wgpu => "wgpu",
        }
    }
}

/// `train.backend`: this machine's devices (`"auto"`, `"cpu"`, `"wgpu"`), or remote
/// servers (`{ remote = "ws://host:port" }`, or a list of addresses: a pool) running
/// `attnlab serve`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum BackendSetting {
    /// A device of this machine.
    Local(BackendChoice),
    /// Servers reached over the network.
    Remote {
        /// One address or several.
        remote: RemoteAddresses,
    },
}

impl Default for BackendSetting {
    fn default() -> Self {
        Self::Local(BackendChoice::Auto)
    }
}

impl From<BackendChoice> for BackendSetting {
    fn from(choice: BackendChoice) -> Self {
        Self::Local(choice)
    }
}

/// One remote address or a list of them.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RemoteAddresses {
    One(String),
    Many(Vec<String>),
}

/// Why a backend setting (`--backend`, `train.backend`) is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BackendSettingError {
    /// Neither a local device's name nor `remote:...`.
    #[error("{0:?} is not a backend: auto, cpu, wgpu or remote:ADDR[,ADDR...]")]
    UnknownBackend(String),
    /// A remote setting without addresses.
    #[error("names no server: give one or more addresses (ws://host:port)")]
    NoServer,
    /// An address that is neither WebSocket nor Iroh.
    #[error(
        "{0:?} is not a server address: write ws://host:port (WebSocket), iroh:<endpoint id> or iroh:<endpoint id>@host:port (Iroh without relays)"
    )]
    BadAddress(String),
}

impl BackendSetting {
    /// Remote servers, from the command line's `remote:ADDR[,ADDR...]`.
    pub fn remote(addresses: Vec<String>) -> Self {
        Self::Remote {
            remote: RemoteAddresses::Many(addresses),
        }
    }

    /// The remote addresses (empty for a local device).
    pub fn addresses(&self) -> Vec<String> {
        match self {
            Self::Local(_) => Vec::new(),
            Self::Remote {
                remote: RemoteAddresses::One(a),
            } => vec![a.clone()],
            Self::Remote {
                remote: RemoteAddresses::Many(a),
            } => a.clone(),
        }
    }

    /// As written on the command line (`cpu`, `remote:ws://h:1,ws://h:2`).
    pub fn label(&self) -> String {
        match self {
            Self::Local(choice) => choice.name().to_string(),
            Self::Remote { .. } => format!("remote:{}", self.addresses().join(",")),
        }
    }

    /// Parses the command line's `--backend` value.
    pub fn parse(text: &str) -> Result<Self, BackendSettingError> {
        if let Some(rest) = text.strip_prefix("remote:") {
            let addresses: Vec<String> = rest
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(str::to_string)
                .collect();
            let setting = Self::remote(addresses);
            setting.check()?;
            return Ok(setting);
        }
        BackendChoice::ALL
            .into_iter()
            .find(|c| c.name() == text)
            .map(Self::Local)
            .ok_or_else(|| BackendSettingError::UnknownBackend(text.to_string()))
    }

    /// Checks remote addresses: at least one, each `ws://host:port` or `iroh:<id>`.
    pub fn check(&self) -> Result<(), BackendSettingError> {
        let Self::Remote { .. } = self else {
            return Ok(());
        };
        let addresses = self.addresses();
        if addresses.is_empty() {
            return Err(BackendSettingError::NoServer);
        }
        for a in &addresses {
            let ok = a
                .strip_prefix("ws://")
                .and_then(|hp| hp.rsplit_once(':'))
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
                || a.strip_prefix("iroh:").is_some_and(|rest| {
                    let (id, direct) = rest.split_once('@').unwrap_or((rest, "h:1"));
                    !id.is_empty()
                        && direct
                            .rsplit_once(':')
                            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
                });
            if !ok {
                return Err(BackendSettingError::BadAddress(a.clone()));
            }
        }
        Ok(())
    }
}

/// The `[train]` table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Optimiser steps.
    pub steps: usize,
    /// Sequences per step.
    pub batch: usize,
    /// Adam learning rate (the peak, reached after `warmup`; see [`super::lr_at`]).
    pub lr: f64,
    /// AdamW's decoupled weight decay (0: plain Adam).
    pub weight_decay: f64,
    /// Steps of linear warm-up from 0 to `lr` (0: none).
    #[serde(skip_serializing_if = "is_zero_count")]
    pub warmup: usize,
    /// How the learning rate decays after the warm-up (constant: it does not).
    #[serde(skip_serializing_if = "LrSchedule::is_constant")]
    pub schedule: LrSchedule,
    /// Largest global gradient norm: gradients are scaled down together when their
    /// norm is above it (0: no clipping).
    #[serde(skip_serializing_if = "is_zero")]
    pub grad_clip: f64,
    /// A fixed training set of this many examples, drawn once from the seed and
    /// reshuffled every epoch (0: fresh examples every step).
    #[serde(skip_serializing_if = "is_zero_count")]
    pub examples: usize,
    /// Seeds parameters, data and BigBird's random blocks.
    pub seed: u64,
    /// Train each run once per seed (replicates grouped in the results); empty: `seed`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub seeds: Vec<u64>,
    /// The held-out accuracy at which a run counts as having solved its task.
    pub solved_at: f64,
    /// Evaluate on fresh held-out batches every this many steps (0: only at the end).
    pub eval_every: usize,
    /// Batches per evaluation.
    pub eval_batches: usize,
    /// Other sequence lengths each evaluation also scores, on held-out examples
    /// generated at each (empty: the training length only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub eval_lengths: Vec<usize>,
    /// Record the probe example's attention every this many steps (0: only at the end).
    pub snapshot_every: usize,
    /// Save the model and optimiser state in the run record every this many steps
    /// (0: only when stopped and at the end), so an interrupted run can be resumed.
    pub checkpoint_every: usize,
    /// Which checkpoints' model weights the record keeps in `checkpoint/kept/`
    /// (`<step>.bpk`), beyond the latest checkpoint a resume continues from: `"all"`,
    /// or the latest N; left out (`"latest"`), none. The optimiser state is kept for
    /// the latest checkpoint only.
    #[serde(skip_serializing_if = "KeepCheckpoints::is_latest")]
    pub keep_checkpoints: KeepCheckpoints,
    /// `auto`, `cpu`, `wgpu`, or `{ remote = "ws://host:port" }` (a list: a pool).
    pub backend: BackendSetting,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            steps: 1500,
            batch: 32,
            lr: 1e-3,
            weight_decay: 0.0,
            warmup: 0,
            schedule: LrSchedule::Constant,
            grad_clip: 0.0,
            examples: 0,
            seed: 1,
            seeds: Vec::new(),
            solved_at: 0.99,
            eval_every: 100,
            eval_batches: 4,
            eval_lengths: Vec::new(),
            snapshot_every: 50,
            checkpoint_every: 250,
            keep_checkpoints: KeepCheckpoints::Latest,
            backend: BackendSetting::Local(BackendChoice::Auto),
        }
    }
}
