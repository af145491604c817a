//! The data every task produces: examples, batches, and the shuffle their
//! generators share.

use rand::{RngExt, rngs::StdRng};
use serde::{Deserialize, Serialize};

/// Moves `count` uniformly chosen elements to the front (a partial Fisher-Yates shuffle).
pub(super) fn partial_shuffle<T>(items: &mut [T], count: usize, rng: &mut StdRng) {
    for i in 0..count.min(items.len()) {
        let j = rng.random_range(i..items.len());
        items.swap(i, j);
    }
}

/// One sequence with its targets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// Input tokens, `seq_len`.
    pub tokens: Vec<i64>,
    /// Target per position, or [`IGNORE`].
    pub targets: Vec<i64>,
    /// `(query position, key position)`: where each answer must come from.
    pub dependencies: Vec<(usize, usize)>,
}

/// A batch of sequences, row-major `[batch, seq_len]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// Number of sequences.
    pub batch: usize,
    /// Tokens per sequence.
    pub seq_len: usize,
    /// Input tokens.
    pub tokens: Vec<i64>,
    /// Targets or [`IGNORE`].
    pub targets: Vec<i64>,
    /// Per position with a target: how far back its answer lies (query minus the
    /// dependency's key position); 0 elsewhere.
    pub distances: Vec<u32>,
}
