//! The tile plan of one layer's attention pattern at one sequence length, built once
//! per run: which (query, key) pairs the fused kernel computes, in tiles of at most
//! [`TILE_Q`] queries by chunks of [`TILE_K`] keys.
//!
//! A plan is a list of passes. Each pass cuts the queries into tiles (disjoint within
//! the pass); a tile lists the keys any of its queries may see in this pass, and one
//! 64-bit word per (query, key chunk) says which of them each query sees. Every
//! visible pair of the mask is computed in exactly one pass (the pass that claims it
//! first), so running the passes one after another with an online softmax is exactly
//! one softmax over each query's visible keys.
//!
//! One pass of consecutive queries covers every pattern whose visible keys lie near
//! their queries or in a few shared columns (dense, causal, local, block, Longformer,
//! BigBird, fixed): a tile's key list is then short, and cost grows like `n * w`.
//! Two patterns are cheaper with queries grouped by residue (the Sparse Transformer's
//! reshape-transpose trick): dilated windows (one pass by residue mod the dilation)
//! and strided attention (a local pass, then a pass by residue mod the stride).
//!
//! A plan may also carry ALiBi's per-head slopes ([`AttentionPlan::with_alibi`]): the
//! kernel then adds `-slope_h * |i - j|` to every score of head `h` it computes,
//! forward and backward (see [`crate::model::alibi_slopes`]).

use std::fmt;
use std::sync::Arc;

use crate::attention::{AttentionPattern, Mask};

/// Queries per tile.
pub const TILE_Q: usize = 64;
/// Keys per chunk (one `u64` of visibility bits per query).
pub const TILE_K: usize = 64;

/// A tile: up to [`TILE_Q`] queries and the keys they attend to in one pass.
#[derive(Clone)]
pub struct Tile {
    /// Query positions (distinct, at most [`TILE_Q`]).
    pub queries: Vec<u32>,
    /// Key positions, ascending; processed in chunks of [`TILE_K`].
    pub keys: Vec<u32>,
    /// `bits[r * chunks + c]`: bit `j` is set when query `r` sees key `c * 64 + j` of
    /// this tile (never set past the end of `keys`).
    pub bits: Vec<u64>,
}

impl Tile {
    /// Key chunks of this tile.
    pub fn chunks(&self) -> usize {
        self.keys.len().div_ceil(TILE_K)
    }

    /// Which keys of chunk `c` query `r` sees.
    #[inline]
    pub fn chunk_bits(&self, r: usize, c: usize) -> u64 {
        self.bits[r * self.chunks() + c]
    }
}

/// How one layer's attention is computed by the fused kernel at one length.
#[derive(Clone)]
pub struct AttentionPlan {
    n: usize,
    passes: Vec<Vec<Tile>>,
    computed_pairs: usize,
    visible_pairs: usize,
    /// ALiBi's slopes, one per head (`None`: no bias).
    alibi: Option<Arc<[f32]>>,
}

impl fmt::Debug for AttentionPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttentionPlan")
            .field("n", &self.n)
            .field("passes", &self.passes.len())
            .field("computed_pairs", &self.computed_pairs)
            .field("visible_pairs", &self.visible_pairs)
            .field("alibi_heads", &self.alibi.as_ref().map(|s| s.len()))
            .finish()
    }
}

/// A mask the plan does not cover (a bug in the plan builder; tests check every
/// pattern).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the fused attention plan misses the visible pair (query {query}, key {key})")]
pub struct PlanError {
    /// Query position.
    pub query: usize,
    /// Key position.
    pub key: usize,
}

/// How the queries of a pass are ordered before being cut into tiles.
#[derive(Clone, Copy, Debug)]
enum Order {
    Consecutive,
    /// Grouped by residue mod `m`: `r, r + m, r + 2m, ...` for each `r`.
    Residue(usize),
}

impl Order {
    fn queries(self, n: usize) -> Vec<u32> {
        match self {
            Order::Consecutive => (0..n as u32).collect(),
            Order::Residue(m) => {
                let m = m.clamp(1, n.max(1));
                (0..m)
                    .flat_map(|r| (r..n).step_by(m))
                    .map(|q| q as u32)
                    .collect()
            }
        }
    }
}

impl AttentionPlan {
    /// The plan of `pattern`'s `mask` (causal or not: the mask decides visibility; the
    /// pattern only picks how queries are grouped).
    pub fn new(pattern: &AttentionPattern, mask: &Mask) -> Result<Self, PlanError> {
        let passes: Vec<(Order, Option<usize>)> = match *pattern {
            AttentionPattern::Dilated { dilation, .. } if dilation > 1 => {
                vec![(Order::Residue(dilation), None)]
            }
            // Local pairs first (|i - j| < stride), then the residue class.
            AttentionPattern::Strided { stride } if stride > 1 => vec![
                (Order::Consecutive, Some(stride - 1)),
                (Order::Residue(stride), None),
            ],
            _ => vec![(Order::Consecutive, None)],
        };
        Self::build(mask, &passes)
    }

    /// `passes`: each with its query order and, optionally, the largest `|i - j|` it
    /// may claim.
    fn build(mask: &Mask, passes: &[(Order, Option<usize>)]) -> Result<Self, PlanError> {
        let n = mask.n();
        let mut claimed = vec![false; n * n];
        let mut out = Vec::with_capacity(passes.len());
        let mut computed_pairs = 0;
        for &(order, radius) in passes {
            let queries = order.queries(n);
            let mut tiles = Vec::with_capacity(queries.len().div_ceil(TILE_Q));
            for group in queries.chunks(TILE_Q) {
                let eligible = |q: usize, k: usize| {
                    mask.get(q, k)
                        && !claimed[q * n + k]
                        && radius.is_none_or(|r| q.abs_diff(k) <= r)
                };
                let mut seen = vec![false; n];
                for &q in group {
                    let q = q as usize;
                    for (k, s) in seen.iter_mut().enumerate() {
                        *s |= eligible(q, k);
                    }
                }
                let keys: Vec<u32> = (0..n as u32).filter(|&k| seen[k as usize]).collect();
                if keys.is_empty() {
                    continue;
                }
                let chunks = keys.len().div_ceil(TILE_K);
                let mut bits = vec![0u64; group.len() * chunks];
                for (r, &q) in group.iter().enumerate() {
                    let q = q as usize;
                    for (j, &k) in keys.iter().enumerate() {
                        let k = k as usize;
                        if eligible(q, k) {
                            bits[r * chunks + j / TILE_K] |= 1 << (j % TILE_K);
                        }
                    }
                }
                for (r, &q) in group.iter().enumerate() {
                    let q = q as usize;
                    for (j, &k) in keys.iter().enumerate() {
                        if bits[r * chunks + j / TILE_K] >> (j % TILE_K) & 1 == 1 {
                            claimed[q * n + k as usize] = true;
                        }
                    }
                }
                computed_pairs += group.len() * chunks * TILE_K;
                tiles.push(Tile {
                    queries: group.to_vec(),
                    keys,
                    bits,
                });
            }
            out.push(tiles);
        }
        for q in 0..n {
            for k in 0..n {
                if mask.get(q, k) && !claimed[q * n + k] {
                    return Err(PlanError { query: q, key: k });
                }
            }
        }
        Ok(Self {
            n,
            passes: out,
            computed_pairs,
            visible_pairs: mask.attended_pairs(),
            alibi: None,
        })
    }

    /// The same plan with ALiBi's `slopes` (one per head, head 0 first): the kernel
    /// adds `-slopes[h] * |i - j|` to head `h`'s score of query `i` and key `j`
    /// (`model.positions = "alibi"`). Calling the kernel with another head count
    /// panics.
    pub fn with_alibi(mut self, slopes: Arc<[f32]>) -> Self {
        self.alibi = Some(slopes);
        self
    }

    /// ALiBi's slopes, one per head, when the plan carries them.
    pub fn alibi(&self) -> Option<&[f32]> {
        self.alibi.as_deref()
    }

    /// Sequence length.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The passes, in the order the kernel runs them.
    pub fn passes(&self) -> &[Vec<Tile>] {
        &self.passes
    }

    /// (query, key) pairs the kernel computes per head, padding of key chunks included.
    pub fn computed_pairs(&self) -> usize {
        self.computed_pairs
    }

    /// (query, key) pairs the mask lets through.
    pub fn visible_pairs(&self) -> usize {
        self.visible_pairs
    }

    /// The mask back from the tiles (for the composed computation on other backends
    /// and for tests): `true` where a query sees a key.
    pub fn visibility(&self) -> Vec<bool> {
        let n = self.n;
        let mut out = vec![false; n * n];
        for tile in self.passes.iter().flatten() {
            let chunks = tile.chunks();
            for (r, &q) in tile.queries.iter().enumerate() {
                for (j, &k) in tile.keys.iter().enumerate() {
                    if tile.bits[r * chunks + j / TILE_K] >> (j % TILE_K) & 1 == 1 {
                        out[q as usize * n + k as usize] = true;
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pattern: AttentionPattern, n: usize, causal: bool) -> AttentionPlan {
        let mask = pattern.mask(n, causal, 7);
        let plan = AttentionPlan::new(&pattern, &mask).expect("covers the mask");
        assert_eq!(plan.visibility(), mask.as_slice(), "{pattern:?} n={n}");
        plan
    }

    #[test]
    fn every_pattern_is_covered_exactly() {
        for pattern in [
            AttentionPattern::Dense,
            AttentionPattern::Local { window: 5 },
            AttentionPattern::Dilated {
                window: 3,
                dilation: 3,
            },
            AttentionPattern::Strided { stride: 8 },
            AttentionPattern::Fixed {
                block: 16,
                summary: 2,
            },
            AttentionPattern::Block { size: 16 },
            AttentionPattern::Longformer {
                window: 4,
                global: 3,
            },
            AttentionPattern::BigBird {
                block: 8,
                window_blocks: 3,
                global_blocks: 1,
                random_blocks: 2,
            },
        ] {
            for n in [1, 7, 64, 100, 130] {
                for causal in [false, true] {
                    check(pattern.clone(), n, causal);
                }
            }
        }
    }

    #[test]
    fn local_and_strided_cost_grows_like_n_times_w() {
        let local = check(AttentionPattern::Local { window: 64 }, 4096, false);
        // Each tile of 64 queries sees at most 64 + 2 * 64 keys.
        assert!(local.computed_pairs() <= 4096 * 192, "{local:?}");
        let strided = check(AttentionPattern::Strided { stride: 64 }, 4096, false);
        assert!(strided.computed_pairs() * 8 < 4096 * 4096, "{strided:?}");
        let dense = check(AttentionPattern::Dense, 256, false);
        assert_eq!(dense.computed_pairs(), 256 * 256);
    }

    #[test]
    fn causal_dense_skips_the_upper_triangle() {
        let plan = check(AttentionPattern::Dense, 1024, true);
        // Tile t computes keys 0..64(t+1): (16 * 17 / 2) chunks of 64 x 64.
        assert_eq!(plan.computed_pairs(), 136 * 64 * 64);
    }
}
