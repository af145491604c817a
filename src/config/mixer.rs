//! `model.mixer` and `model.layer_mixers`: what mixes tokens in a transformer layer.
//! Softmax attention under the layer's pattern (the default), or one of the
//! sub-quadratic mixers that replace it: linear attention (Katharopoulos et al.
//! 2020), Based (Arora et al. 2024), a gated long convolution (H3 / BaseConv) and a
//! selective state-space layer in Mamba's form (Gu & Dao 2023). A per-layer list makes
//! hybrids (`layer_mixers = [{ kind = "ssm" }, { kind = "attention" }]`).
//!
//! ```toml
//! [model]
//! mixer = { kind = "ssm", state = 16 }
//! ```

use serde::{Deserialize, Serialize};

/// Largest `state` of an SSM layer.
pub const MAX_SSM_STATE: usize = 256;
/// Largest `feature_dim` of a Based layer (its feature map has `1 + f + f^2` entries).
pub const MAX_FEATURE_DIM: usize = 64;

fn default_state() -> usize {
    16
}
fn default_feature_dim() -> usize {
    16
}
fn default_window() -> usize {
    8
}

/// What mixes tokens in one layer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Mixer {
    /// Softmax attention under the layer's pattern (`model.attention`).
    #[default]
    Attention,
    /// Linear attention with the feature map elu(x) + 1, per head: causal with
    /// `model.causal`, else every position sees every other.
    Linear,
    /// Based: linear attention with the 2nd-order Taylor feature map of exp(q.k)
    /// (q and k projected to `feature_dim`), plus exact softmax attention over a
    /// sliding window of `window` positions; the two outputs averaged.
    Based {
        /// Width of the projected q and k the Taylor map expands.
        #[serde(default = "default_feature_dim")]
        feature_dim: usize,
        /// Keys within this distance get exact softmax attention.
        #[serde(default = "default_window")]
        window: usize,
    },
    /// A gated long convolution: a learned causal filter over the whole sequence per
    /// channel (H3 / BaseConv), times an input-dependent gate; with `short`, a
    /// 3-tap causal convolution first.
    Conv {
        /// A short (3-tap) causal convolution before the long one.
        #[serde(default)]
        short: bool,
    },
    /// A selective state-space layer (Mamba's S6): input-dependent step Δ, B and C,
    /// `state` states per channel, the scan computed exactly; gated by SiLU(z).
    Ssm {
        /// State size N per channel.
        #[serde(default = "default_state")]
        state: usize,
    },
}

impl Mixer {
    /// Every kind, in the order the window lists them.
    pub const KINDS: [&'static str; 5] = ["attention", "linear", "based", "conv", "ssm"];

    /// The kind as the file writes it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Attention => "attention",
            Self::Linear => "linear",
            Self::Based { .. } => "based",
            Self::Conv { .. } => "conv",
            Self::Ssm { .. } => "ssm",
        }
    }

    /// The mixer of kind `name` with its default parameters.
    pub fn of_kind(name: &str) -> Option<Self> {
        Some(match name {
            "attention" => Self::Attention,
            "linear" => Self::Linear,
            "based" => Self::Based {
                feature_dim: default_feature_dim(),
                window: default_window(),
            },
            "conv" => Self::Conv { short: false },
            "ssm" => Self::Ssm {
                state: default_state(),
            },
            _ => return None,
        })
    }

    /// A short description with parameters, for tables and legends.
    pub fn label(&self) -> String {
        match self {
            Self::Attention => "attention".into(),
            Self::Linear => "linear attention".into(),
            Self::Based {
                feature_dim,
                window,
            } => format!("Based f={feature_dim} w={window}"),
            Self::Conv { short: false } => "gated conv".into(),
            Self::Conv { short: true } => "gated conv + short".into(),
            Self::Ssm { state } => format!("SSM N={state}"),
        }
    }

    /// Whether this is softmax attention under a pattern.
    pub fn is_attention(&self) -> bool {
        *self == Self::Attention
    }

    /// The floats of state this layer carries from token to token at inference, per
    /// sequence, at length `n`: attention's KV cache (2 x n x d_model); linear
    /// attention's `d_k x d_v` matrix and normaliser per head; Based's expanded
    /// feature map per head plus its window's KV cache; a convolution's input history
    /// (its filter spans the sequence: n x d_model); an SSM's N states per channel.
    pub fn state_floats(&self, n: usize, d_model: usize, heads: usize) -> u64 {
        let (n, d, h) = (n as u64, d_model as u64, heads.max(1) as u64);
        let head_dim = d / h;
        match self {
            Self::Attention => 2 * n * d,
            Self::Linear => h * (head_dim * head_dim + head_dim),
            Self::Based {
                feature_dim,
                window,
            } => {
                let f = *feature_dim as u64;
                let expanded = 1 + f + f * f;
                h * (expanded * head_dim + expanded) + 2 * (*window as u64).min(n) * d
            }
            Self::Conv { .. } => n * d,
            Self::Ssm { state } => d * *state as u64,
        }
    }

    /// Why its parameters are out of bounds at `seq_len`, naming the parameter.
    pub fn check(&self, seq_len: usize) -> Result<(), (&'static str, String)> {
        match *self {
            Self::Based {
                feature_dim,
                window,
            } => {
                if !(1..=MAX_FEATURE_DIM).contains(&feature_dim) {
                    return Err((
                        "feature_dim",
                        format!("{feature_dim}: from 1 to {MAX_FEATURE_DIM}"),
                    ));
                }
                if window == 0 || window > seq_len.max(1) {
                    return Err((
                        "window",
                        format!("{window}: from 1 to task.seq_len ({seq_len})"),
                    ));
                }
                Ok(())
            }
            Self::Ssm { state } if !(1..=MAX_SSM_STATE).contains(&state) => {
                Err(("state", format!("{state}: from 1 to {MAX_SSM_STATE}")))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixers_read_and_write_as_tables() {
        #[derive(Deserialize, Serialize)]
        struct M {
            mixer: Mixer,
        }
        let m: M = toml::from_str("mixer = { kind = \"ssm\" }").expect("parses");
        assert_eq!(m.mixer, Mixer::Ssm { state: 16 });
        let m: M = toml::from_str("mixer = { kind = \"based\", window = 4 }").expect("parses");
        assert_eq!(
            m.mixer,
            Mixer::Based {
                feature_dim: 16,
                window: 4
            }
        );
        assert!(toml::from_str::<M>("mixer = { kind = \"ssm\", stat = 4 }").is_err());
        for kind in Mixer::KINDS {
            let mixer = Mixer::of_kind(kind).expect("a kind");
            assert_eq!(mixer.name(), kind);
            let text = toml::to_string(&M {
                mixer: mixer.clone(),
            })
            .expect("writes");
            assert_eq!(toml::from_str::<M>(&text).expect("reads").mixer, mixer);
        }
    }

    #[test]
    fn state_sizes_follow_the_definitions() {
        // Attention's cache grows with n; the recurrent mixers' state does not.
        let a = Mixer::Attention;
        assert_eq!(a.state_floats(128, 64, 4), 2 * 128 * 64);
        assert_eq!(Mixer::Linear.state_floats(128, 64, 4), 4 * (16 * 16 + 16));
        let ssm = Mixer::Ssm { state: 16 };
        assert_eq!(ssm.state_floats(128, 64, 4), ssm.state_floats(4096, 64, 4));
        assert_eq!(ssm.state_floats(128, 64, 4), 64 * 16);
    }
}
