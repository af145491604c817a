//! What several layers of attention can link: the composition of their masks.
//!
//! After layer 1, position `i` holds information from the keys its mask shows it;
//! after layer 2, also from the keys *those* positions saw; and so on. The composed
//! mask answers "can the output at `i` depend on the input at `j` at all?", which is
//! why a local window of radius `w` over `L` layers cannot link tokens more than
//! `L * w` apart, however long it trains.

use super::Mask;

/// Reachability through a stack of layers, as packed bit rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reach {
    n: usize,
    words: usize,
    /// Row `i`: the input positions the output at `i` can depend on.
    bits: Vec<u64>,
}

impl Reach {
    fn identity(n: usize) -> Self {
        let words = n.div_ceil(64);
        let mut bits = vec![0u64; n * words];
        for i in 0..n {
            bits[i * words + i / 64] |= 1 << (i % 64);
        }
        Self { n, words, bits }
    }

    /// Sequence length.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Whether the output at `query` can depend on the input at `key`.
    pub fn links(&self, query: usize, key: usize) -> bool {
        self.bits[query * self.words + key / 64] & (1 << (key % 64)) != 0
    }

    /// Whether every query `i >= distance` is linked to the key `i - distance`, i.e.
    /// whether a recall task at this distance is solvable at all.
    pub fn links_distance(&self, distance: usize) -> bool {
        (distance..self.n).all(|i| self.links(i, i - distance))
    }

    /// The largest `d` such that every pair of positions at most `d` apart (in either
    /// direction, where the mask allows that direction) is linked; `n - 1` when all are.
    pub fn full_radius(&self, causal: bool) -> usize {
        let n = self.n;
        for d in 1..n {
            let ok = (d..n).all(|i| self.links(i, i - d))
                && (causal || (0..n - d).all(|i| self.links(i, i + d)));
            if !ok {
                return d - 1;
            }
        }
        n.saturating_sub(1)
    }

    /// Fraction of the `n * n` (query, key) pairs that are linked.
    pub fn coverage(&self) -> f64 {
        if self.n == 0 {
            return 0.0;
        }
        let linked: usize = self.bits.iter().map(|w| w.count_ones() as usize).sum();
        linked as f64 / (self.n * self.n) as f64
    }

    /// As a plain mask (row = query), e.g. for drawing.
    pub fn to_mask(&self) -> Mask {
        Mask::from_fn(self.n, |i, j| self.links(i, j))
    }
}

/// Composes the masks of consecutive layers, first layer first.
///
/// All masks must have the same `n`. With no layers, every position reaches only itself.
pub fn compose(layers: &[Mask]) -> Reach {
    let n = layers.first().map_or(0, Mask::n);
    let mut reach = Reach::identity(n);
    for mask in layers {
        debug_assert_eq!(mask.n(), n);
        let words = reach.words;
        let mut next = vec![0u64; n * words];
        for i in 0..n {
            let out = &mut next[i * words..(i + 1) * words];
            for (k, &visible) in mask.row(i).iter().enumerate() {
                if visible {
                    let src = &reach.bits[k * words..(k + 1) * words];
                    for (o, s) in out.iter_mut().zip(src) {
                        *o |= s;
                    }
                }
            }
        }
        reach.bits = next;
    }
    reach
}
