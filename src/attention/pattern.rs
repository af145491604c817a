//! The [`AttentionPattern`] enum: the patterns an experiment file can name.

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::custom::{self, MaskFault};
use super::{Mask, blockwise, local, longformer, sparse_transformer};

/// Names of every pattern `kind`, in the order the GUI and the docs list them.
pub const PATTERN_KINDS: [&str; 9] = [
    "dense",
    "local",
    "dilated",
    "strided",
    "fixed",
    "block",
    "longformer",
    "bigbird",
    "custom",
];

/// Largest value any pattern parameter may take (sequences are at most 8192 long;
/// the bound keeps products such as `window * dilation` far from overflowing).
pub const MAX_PARAM: usize = 1 << 20;

/// A pattern parameter that is not allowed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{param} = {value}: {reason}")]
pub struct PatternError {
    /// The parameter, e.g. `window` (`mask` for a custom pattern).
    pub param: &'static str,
    /// Its value as written: a number, or a custom mask quoted.
    pub value: String,
    /// What is allowed.
    pub reason: String,
}

/// Which keys a query may attend to in one attention layer.
///
/// In an experiment file a pattern is a name (`attention = "dense"`, parameters take
/// their defaults) or a table (`attention = { kind = "local", window = 8 }`).
/// Distances are in positions; `window` is a radius, so key `j` is visible from
/// query `i` when `|i - j| <= window`. Every built-in pattern lets a query see
/// itself, so no softmax row is ever empty; a custom mask need not, so
/// [`AttentionPattern::check_for`] refuses one that leaves a query without a key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(
    remote = "Self",
    tag = "kind",
    rename_all = "snake_case",
    deny_unknown_fields
)]
pub enum AttentionPattern {
    /// Every query sees every key: O(n^2).
    #[default]
    Dense,
    /// `|i - j| <= window`.
    Local {
        #[serde(default = "default_window")]
        window: usize,
    },
    /// `j = i + k * dilation` with `|k| <= window`: a local window with holes.
    Dilated {
        #[serde(default = "default_dilated_window")]
        window: usize,
        #[serde(default = "default_dilation")]
        dilation: usize,
    },
    /// Sparse Transformer "strided": `|i - j| < stride`, or `(i - j) mod stride == 0`.
    Strided {
        #[serde(default = "default_block")]
        stride: usize,
    },
    /// Sparse Transformer "fixed": the same block of `block` positions, or `j` among
    /// the last `summary` positions of its own block.
    Fixed {
        #[serde(default = "default_block")]
        block: usize,
        #[serde(default = "default_summary")]
        summary: usize,
    },
    /// Only the same block of `size` positions.
    Block {
        #[serde(default = "default_block")]
        size: usize,
    },
    /// Longformer: local `window` plus the first `global` positions, which see and are
    /// seen by every position.
    Longformer {
        #[serde(default = "default_window")]
        window: usize,
        #[serde(default = "default_global")]
        global: usize,
    },
    /// BigBird on blocks of `block` positions: a sliding window of `window_blocks`
    /// blocks (odd: itself and `(window_blocks - 1) / 2` on each side), the first
    /// `global_blocks` blocks global, and `random_blocks` seeded random key blocks per
    /// query block.
    #[serde(rename = "bigbird")]
    BigBird {
        #[serde(default = "default_block")]
        block: usize,
        #[serde(default = "default_window_blocks")]
        window_blocks: usize,
        #[serde(default = "default_global_blocks")]
        global_blocks: usize,
        #[serde(default = "default_random_blocks")]
        random_blocks: usize,
    },
    /// A mask written as an expression over `q` (query position), `k` (key position)
    /// and `n` (length), e.g. `abs(q - k) <= 8 || k < 2` (grammar in `expr`).
    Custom {
        #[serde(default = "default_mask")]
        mask: String,
    },
}

fn default_window() -> usize {
    8
}
fn default_dilated_window() -> usize {
    4
}
fn default_dilation() -> usize {
    2
}
fn default_block() -> usize {
    16
}
fn default_summary() -> usize {
    2
}
fn default_global() -> usize {
    1
}
fn default_window_blocks() -> usize {
    3
}
fn default_global_blocks() -> usize {
    1
}
fn default_random_blocks() -> usize {
    1
}
fn default_mask() -> String {
    custom::DEFAULT_MASK.into()
}

impl AttentionPattern {
    /// The pattern with its default parameters for a `kind` name (see [`PATTERN_KINDS`]).
    pub fn from_kind(kind: &str) -> Option<Self> {
        use serde::de::value::{Error, MapDeserializer};
        let map = MapDeserializer::<_, Error>::new(std::iter::once(("kind", kind)));
        Self::deserialize(map).ok()
    }

    /// The `kind` name as written in experiment files.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Dense => "dense",
            Self::Local { .. } => "local",
            Self::Dilated { .. } => "dilated",
            Self::Strided { .. } => "strided",
            Self::Fixed { .. } => "fixed",
            Self::Block { .. } => "block",
            Self::Longformer { .. } => "longformer",
            Self::BigBird { .. } => "bigbird",
            Self::Custom { .. } => "custom",
        }
    }

    /// The boolean mask of this pattern at sequence length `n`. `seed` fixes BigBird's
    /// random blocks (other patterns ignore it); `causal` also hides keys after the query.
    ///
    /// Defined for any parameters, even those [`AttentionPattern::check`] rejects (a
    /// zero block or dilation counts as 1, a summary longer than its block as the
    /// block, a custom mask that does not parse shows nothing and a pair of one that
    /// divides by zero is hidden), so a preview of a half-edited pattern never fails.
    pub fn mask(&self, n: usize, causal: bool, seed: u64) -> Mask {
        Mask::from_fn(n, self.visibility(n, causal, seed))
    }

    /// Whether query `i` sees key `j` at length `n`, as a function (the mask without
    /// its `n x n` storage).
    pub fn visibility(&self, n: usize, causal: bool, seed: u64) -> impl Fn(usize, usize) -> bool {
        let rule: Box<dyn Fn(usize, usize) -> bool> = match self.sanitized() {
            Self::Dense => Box::new(|_, _| true),
            Self::Local { window } => Box::new(move |i, j| local::local(i, j, window)),
            Self::Dilated { window, dilation } => {
                Box::new(move |i, j| local::dilated(i, j, window, dilation))
            }
            Self::Strided { stride } => {
                Box::new(move |i, j| sparse_transformer::strided(i, j, stride))
            }
            Self::Fixed { block, summary } => {
                Box::new(move |i, j| sparse_transformer::fixed(i, j, block, summary))
            }
            Self::Block { size } => Box::new(move |i, j| blockwise::same_block(i, j, size)),
            Self::Longformer { window, global } => {
                Box::new(move |i, j| longformer::allows(i, j, window, global))
            }
            Self::BigBird {
                block,
                window_blocks,
                global_blocks,
                random_blocks,
            } => {
                let layout = blockwise::BigBirdLayout::new(
                    n,
                    block,
                    window_blocks,
                    global_blocks,
                    random_blocks,
                    seed,
                );
                Box::new(move |i, j| layout.allows(i, j))
            }
            Self::Custom { mask } => custom::rule(&mask, n),
        };
        move |i, j| (!causal || j <= i) && rule(i, j)
    }

    /// The mask averaged down as attention snapshots are: tiles of
    /// `ceil(n / max_side)` positions, a tile visible when any pair in it is. At most
    /// `max_side x max_side`, whatever `n` (no `n x n` storage).
    pub fn fitted_mask(&self, n: usize, causal: bool, seed: u64, max_side: usize) -> Mask {
        let visible = self.visibility(n, causal, seed);
        let factor = n.div_ceil(max_side.max(1)).max(1);
        let side = n.div_ceil(factor);
        let tile = |t: usize| t * factor..((t + 1) * factor).min(n);
        Mask::from_fn(side, |tq, tk| {
            tile(tq).any(|i| tile(tk).any(|j| visible(i, j)))
        })
    }

    /// The same pattern with the parameters that divide clamped to at least 1 and
    /// every parameter to at most [`MAX_PARAM`].
    fn sanitized(&self) -> Self {
        let p = |v: usize| v.clamp(1, MAX_PARAM);
        let any = |v: usize| v.min(MAX_PARAM);
        match *self {
            Self::Dense => Self::Dense,
            Self::Local { window } => Self::Local {
                window: any(window),
            },
            Self::Dilated { window, dilation } => Self::Dilated {
                window: any(window),
                dilation: p(dilation),
            },
            Self::Strided { stride } => Self::Strided { stride: p(stride) },
            Self::Fixed { block, summary } => Self::Fixed {
                block: p(block),
                summary: summary.clamp(1, p(block)),
            },
            Self::Block { size } => Self::Block { size: p(size) },
            Self::Longformer { window, global } => Self::Longformer {
                window: any(window),
                global: any(global),
            },
            Self::BigBird {
                block,
                window_blocks,
                global_blocks,
                random_blocks,
            } => Self::BigBird {
                block: p(block),
                window_blocks: any(window_blocks),
                global_blocks: any(global_blocks),
                random_blocks: any(random_blocks),
            },
            Self::Custom { ref mask } => Self::Custom { mask: mask.clone() },
        }
    }

    /// How far (in positions) one layer of this pattern moves information when only
    /// its local part is counted; `None` when some path links any two positions in one
    /// or two hops (dense, global tokens, strides), and for custom masks (their reach
    /// is measured on the mask, see [`super::compose`]). `L` layers of a pattern with a
    /// local reach of `r` link positions at most `L * r` apart.
    pub fn local_reach(&self) -> Option<usize> {
        match *self {
            Self::Local { window } => Some(window),
            Self::Dilated { window, dilation } => Some(window.saturating_mul(dilation)),
            Self::Block { size } => Some(size.saturating_sub(1)),
            _ => None,
        }
    }

    /// A short human-readable label, e.g. `local w=8`.
    pub fn label(&self) -> String {
        match *self {
            Self::Dense => "dense".into(),
            Self::Local { window } => format!("local w={window}"),
            Self::Dilated { window, dilation } => format!("dilated w={window} d={dilation}"),
            Self::Strided { stride } => format!("strided s={stride}"),
            Self::Fixed { block, summary } => format!("fixed b={block} c={summary}"),
            Self::Block { size } => format!("block {size}"),
            Self::Longformer { window, global } => format!("longformer w={window} g={global}"),
            Self::BigBird {
                block,
                window_blocks,
                global_blocks,
                random_blocks,
            } => format!("bigbird b={block} w={window_blocks} g={global_blocks} r={random_blocks}"),
            Self::Custom { ref mask } => format!("custom {mask:?}"),
        }
    }

    /// Checks the parameters against a sequence length; the error names the
    /// offending parameter and what is allowed. For a custom mask: its parse error
    /// (with the column), a query that sees no key, or a pair before its query that
    /// divides by zero; what depends on causality is left to
    /// [`AttentionPattern::check_for`].
    pub fn check(&self, seq_len: usize) -> Result<(), PatternError> {
        match *self {
            Self::Dense => Ok(()),
            Self::Local { window } => positive("window", window),
            Self::Dilated { window, dilation } => {
                positive("window", window)?;
                positive("dilation", dilation)
            }
            Self::Strided { stride } => positive("stride", stride),
            Self::Fixed { block, summary } => {
                positive("block", block)?;
                divides("block", block, seq_len)?;
                positive("summary", summary)?;
                if summary > block {
                    return Err(refusal(
                        "summary",
                        summary,
                        format!("must be at most block = {block}"),
                    ));
                }
                Ok(())
            }
            Self::Block { size } => {
                positive("size", size)?;
                divides("size", size, seq_len)
            }
            Self::Longformer { window, global } => {
                positive("window", window)?;
                if global >= seq_len {
                    return Err(refusal(
                        "global",
                        global,
                        format!("must be below task.seq_len = {seq_len}"),
                    ));
                }
                Ok(())
            }
            Self::BigBird {
                block,
                window_blocks,
                global_blocks,
                ..
            } => check_bigbird(block, window_blocks, global_blocks, seq_len),
            Self::Custom { ref mask } => {
                custom::check(mask, seq_len, None).map_err(|e| mask_error(mask, e))
            }
        }
    }

    /// [`AttentionPattern::check`] for a model that is `causal` or not: a custom mask
    /// is also refused when a query sees no key once causality hides the keys after
    /// it, or (not causal) when a pair after its query divides by zero. The other
    /// patterns do not depend on causality.
    pub fn check_for(&self, seq_len: usize, causal: bool) -> Result<(), PatternError> {
        match self {
            Self::Custom { mask } => {
                custom::check(mask, seq_len, Some(causal)).map_err(|e| mask_error(mask, e))
            }
            other => other.check(seq_len),
        }
    }
}

/// The refusal of parameter `param` at `value`, saying what is allowed.
fn refusal(param: &'static str, value: usize, reason: String) -> PatternError {
    PatternError {
        param,
        value: value.to_string(),
        reason,
    }
}

/// A parameter that counts something: at least 1 and at most [`MAX_PARAM`].
fn positive(name: &'static str, v: usize) -> Result<(), PatternError> {
    if v == 0 {
        Err(refusal(name, v, "must be at least 1".to_string()))
    } else if v > MAX_PARAM {
        Err(refusal(name, v, format!("must be at most {MAX_PARAM}")))
    } else {
        Ok(())
    }
}

/// A block size of a pattern that works on whole blocks: it divides `seq_len`.
fn divides(name: &'static str, v: usize, seq_len: usize) -> Result<(), PatternError> {
    if !seq_len.is_multiple_of(v) {
        Err(refusal(
            name,
            v,
            format!("must divide task.seq_len = {seq_len} (this pattern works on whole blocks)"),
        ))
    } else {
        Ok(())
    }
}

/// BigBird's parameters at `seq_len`: whole blocks, an odd window (the block itself
/// plus as many on each side), and fewer global blocks than blocks.
fn check_bigbird(
    block: usize,
    window_blocks: usize,
    global_blocks: usize,
    seq_len: usize,
) -> Result<(), PatternError> {
    positive("block", block)?;
    divides("block", block, seq_len)?;
    if window_blocks == 0 || window_blocks.is_multiple_of(2) {
        return Err(refusal(
            "window_blocks",
            window_blocks,
            "must be odd (the block itself plus as many on each side): 1, 3, 5, ...".into(),
        ));
    }
    if global_blocks >= seq_len / block {
        return Err(refusal(
            "global_blocks",
            global_blocks,
            format!("must be below the number of blocks ({})", seq_len / block),
        ));
    }
    Ok(())
}

/// A custom mask's refusal as an error of its `mask` parameter.
fn mask_error(mask: &str, fault: MaskFault) -> PatternError {
    PatternError {
        param: "mask",
        value: format!("{mask:?}"),
        reason: fault.to_string(),
    }
}

impl fmt::Display for AttentionPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

impl Serialize for AttentionPattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Dense => serializer.serialize_str("dense"),
            other => AttentionPattern::serialize(other, serializer),
        }
    }
}

impl<'de> Deserialize<'de> for AttentionPattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PatternVisitor;
        impl<'de> Visitor<'de> for PatternVisitor {
            type Value = AttentionPattern;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a pattern name such as \"dense\" or a table such as { kind = \"local\", window = 8 }",
                )
            }
            fn visit_str<E: de::Error>(self, kind: &str) -> Result<Self::Value, E> {
                let map = de::value::MapDeserializer::<_, E>::new(std::iter::once(("kind", kind)));
                AttentionPattern::deserialize(map)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                AttentionPattern::deserialize(de::value::MapAccessDeserializer::new(map))
            }
        }
        deserializer.deserialize_any(PatternVisitor)
    }
}
