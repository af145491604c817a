//! Block patterns: `block` (same block only) and BigBird (Zaheer et al., 2020).

use rand::seq::SliceRandom;
use rand::{SeedableRng, rngs::StdRng};

/// `i` and `j` in the same block of `size` positions.
pub fn same_block(i: usize, j: usize, size: usize) -> bool {
    i / size == j / size
}

/// BigBird's block layout: which (query block, key block) pairs are on.
///
/// A block sees a sliding window of `window_blocks` blocks centred on itself, the
/// first `global_blocks` blocks (which in turn see everything), and `random_blocks`
/// other key blocks drawn with a seeded RNG, so the same seed gives the same layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BigBirdLayout {
    block: usize,
    blocks: usize,
    /// Row-major `[query block][key block]`.
    on: Vec<bool>,
}

impl BigBirdLayout {
    /// Builds the layout for `n` positions (a ragged last block is allowed).
    pub fn new(
        n: usize,
        block: usize,
        window_blocks: usize,
        global_blocks: usize,
        random_blocks: usize,
        seed: u64,
    ) -> Self {
        let block = block.max(1);
        let blocks = n.div_ceil(block);
        let half = window_blocks / 2;
        let mut on = vec![false; blocks * blocks];
        let mut rng = StdRng::seed_from_u64(seed ^ 0xB16B_00B5);
        for q in 0..blocks {
            let row = &mut on[q * blocks..(q + 1) * blocks];
            for (k, cell) in row.iter_mut().enumerate() {
                *cell = q < global_blocks || k < global_blocks || q.abs_diff(k) <= half;
            }
            let mut candidates: Vec<usize> = (0..blocks).filter(|&k| !row[k]).collect();
            candidates.shuffle(&mut rng);
            for &k in candidates.iter().take(random_blocks) {
                row[k] = true;
            }
        }
        Self { block, blocks, on }
    }

    /// Number of blocks per side.
    pub fn blocks(&self) -> usize {
        self.blocks
    }

    /// Whether query block `q` attends to key block `k`.
    pub fn block_on(&self, q: usize, k: usize) -> bool {
        self.on[q * self.blocks + k]
    }

    /// Whether position `i` attends to position `j`.
    pub fn allows(&self, i: usize, j: usize) -> bool {
        self.block_on(i / self.block, j / self.block)
    }
}
