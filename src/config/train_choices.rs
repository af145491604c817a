//! The `[train]` table's choices that are more than a number: which checkpoints'
//! models a run keeps (`train.keep_checkpoints`, written `"all"`, a count or
//! `"latest"`) and how the learning rate changes after the warm-up (`train.schedule`);
//! and the `[model]` table's `model.positions`.

use std::fmt;
use std::num::NonZeroUsize;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The most checkpoints a run may keep the models of (`train.keep_checkpoints`, a
/// count or what `"all"` comes to): the most a record's `kept/` folder is read with.
pub const MAX_KEPT_CHECKPOINTS: usize = 100_000;

/// `train.keep_checkpoints`: the checkpoints whose model weights a run keeps besides
/// its latest checkpoint (which always holds the model and the optimiser state, for a
/// resume). Written `"all"`, a count (`5`), or `"latest"` (the default, as when the
/// field is left out: nothing kept beyond the latest checkpoint).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum KeepCheckpoints {
    /// Only the latest checkpoint, the one a resume continues from.
    #[default]
    Latest,
    /// The model weights of every checkpoint.
    All,
    /// The model weights of the latest this many checkpoints (older ones deleted first).
    Last(NonZeroUsize),
}

impl KeepCheckpoints {
    /// Whether nothing is kept beyond the latest checkpoint (the default).
    pub fn is_latest(&self) -> bool {
        *self == Self::Latest
    }

    /// How many checkpoints' models are kept: `None` for every one (`"all"`), `Some(0)`
    /// for none (`"latest"`: no model is kept, and none kept before is deleted).
    pub fn limit(self) -> Option<usize> {
        match self {
            Self::Latest => Some(0),
            Self::All => None,
            Self::Last(n) => Some(n.get()),
        }
    }
}

impl fmt::Display for KeepCheckpoints {
    /// As the file writes it: `latest`, `all`, `5`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Latest => f.write_str("latest"),
            Self::All => f.write_str("all"),
            Self::Last(n) => write!(f, "{n}"),
        }
    }
}

impl Serialize for KeepCheckpoints {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Latest => serializer.serialize_str("latest"),
            Self::All => serializer.serialize_str("all"),
            Self::Last(n) => serializer.serialize_u64(n.get() as u64),
        }
    }
}

impl<'de> Deserialize<'de> for KeepCheckpoints {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(KeepVisitor)
    }
}

/// Reads `"all"`, `"latest"` or a count of at least 1.
struct KeepVisitor;

impl KeepVisitor {
    fn count<E: serde::de::Error>(n: u64) -> Result<KeepCheckpoints, E> {
        usize::try_from(n)
            .ok()
            .and_then(NonZeroUsize::new)
            .map(KeepCheckpoints::Last)
            .ok_or_else(|| {
                E::custom(format!(
                    "{n} checkpoints cannot be kept: write a count of at least 1, \"all\", or \"latest\" (only the latest checkpoint, as when left out)"
                ))
            })
    }
}

impl serde::de::Visitor<'_> for KeepVisitor {
    type Value = KeepCheckpoints;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"all\", \"latest\" or a count of checkpoints to keep (at least 1)")
    }

    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<KeepCheckpoints, E> {
        Self::count(n)
    }

    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<KeepCheckpoints, E> {
        match u64::try_from(n) {
            Ok(n) => Self::count(n),
            Err(_) => Err(E::custom(format!(
                "{n} checkpoints cannot be kept: write a count of at least 1, \"all\", or \"latest\" (only the latest checkpoint, as when left out)"
            ))),
        }
    }

    fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<KeepCheckpoints, E> {
        match name {
            "all" => Ok(KeepCheckpoints::All),
            "latest" => Ok(KeepCheckpoints::Latest),
            _ => Err(E::unknown_variant(name, &["all", "latest"])),
        }
    }
}

/// `train.schedule`: how the learning rate changes after the warm-up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrSchedule {
    /// `train.lr` to the end.
    #[default]
    Constant,
    /// Half a cosine from `train.lr` down to 0 at the last step.
    Cosine,
    /// A straight line from `train.lr` down to 0 at the last step.
    Linear,
}

impl LrSchedule {
    /// Every schedule, in the order the docs and the editor list them.
    pub const ALL: [LrSchedule; 3] = [LrSchedule::Constant, LrSchedule::Cosine, LrSchedule::Linear];

    /// The name as written in experiment files.
    pub fn name(self) -> &'static str {
        match self {
            LrSchedule::Constant => "constant",
            LrSchedule::Cosine => "cosine",
            LrSchedule::Linear => "linear",
        }
    }

    /// Whether this is the default (left out of written files).
    pub fn is_constant(&self) -> bool {
        *self == LrSchedule::Constant
    }
}

/// `model.positions`: how the transformer knows where a token is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PositionScheme {
    /// A learned embedding per position, added to the tokens' (up to `task.seq_len`).
    #[default]
    Learned,
    /// The fixed sinusoids of Vaswani et al. 2017, added to the tokens' embeddings.
    Sinusoidal,
    /// Rotary embeddings (Su et al. 2021): q and k rotated per head by their
    /// position before the scores, so scores depend on the offset only.
    Rope,
    /// ALiBi (Press et al. 2022): no position embedding; head `h` adds
    /// `-slope_h * |i - j|` to its scores inside the score tile, with the paper's
    /// fixed slopes (a geometric sequence per head, nothing learned).
    Alibi,
    /// No position information (causal attention can still count).
    None,
}

impl PositionScheme {
    /// Every scheme, in the order the docs and the editor list them.
    pub const ALL: [PositionScheme; 5] = [
        PositionScheme::Learned,
        PositionScheme::Sinusoidal,
        PositionScheme::Rope,
        PositionScheme::Alibi,
        PositionScheme::None,
    ];

    /// The name as written in experiment files.
    pub fn name(self) -> &'static str {
        match self {
            PositionScheme::Learned => "learned",
            PositionScheme::Sinusoidal => "sinusoidal",
            PositionScheme::Rope => "rope",
            PositionScheme::Alibi => "alibi",
            PositionScheme::None => "none",
        }
    }

    /// Whether this is the default (left out of written files).
    pub fn is_learned(&self) -> bool {
        *self == PositionScheme::Learned
    }
}
