//! Block-sparse layouts: how a pattern is *computed* without touching the pairs it
//! hides, in the spirit of DeepSpeed / xformers sparsity configs.
//!
//! A layout is a set of components whose key sets together cover every visible
//! (query, key) pair exactly once:
//!
//! * [`BlockComponent`]: queries and keys cut into blocks of `block` positions; each
//!   query block attends to a fixed number of key blocks (a row of the block layout),
//!   optionally after permuting positions (the Sparse Transformer's reshape-transpose
//!   trick puts every `stride`-th position next to each other, so "same residue mod
//!   stride" becomes block-diagonal).
//! * [`SharedComponent`]: a small set of key positions every query may see (global
//!   tokens, the summary cells of the fixed pattern).
//! * `dense_rows`: the first queries (global tokens) that see every key are computed
//!   as dense rows.
//!
//! A custom pattern (a written mask) gets blocks read off its mask: each query block
//! attends to the key blocks holding any of its visible pairs, with the block size
//! (8 to 64) that computes the fewest pairs.
//!
//! Which pairs are *visible* is always decided by the pattern's own [`Mask`]; the
//! layout only decides which pairs are *computed*, and [`SparseLayout::visibility`]
//! assigns each visible pair to the first component that computes it. The cost is the
//! number of computed pairs, [`SparseLayout::computed_pairs`], which grows like
//! `n * w` for local patterns instead of `n^2`.

use super::custom::{self, TILE};
use super::{AttentionPattern, BigBirdLayout, Mask};

/// Per component, which computed pairs are visible: block components first, then
/// shared ones (see [`SparseLayout::visibility`]).
pub type Visibility = (Vec<Vec<bool>>, Vec<Vec<bool>>);

/// Marks a padded slot of a permuted or padded sequence.
pub const PAD: usize = usize::MAX;

/// Query and key blocks, each query block attending to `key_blocks[qb]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockComponent {
    /// Block size (queries and keys).
    pub block: usize,
    /// The component's sequence: slot -> original position (or [`PAD`]). Its length is
    /// a multiple of `block`.
    pub positions: Vec<usize>,
    /// Per query block, the key blocks it attends to; every row has the same length
    /// (repeats and [`PAD`] entries are masked out).
    pub key_blocks: Vec<Vec<usize>>,
}

impl BlockComponent {
    /// Blocks of the component's sequence.
    pub fn blocks(&self) -> usize {
        self.positions.len() / self.block
    }

    /// Key blocks per query block.
    pub fn width(&self) -> usize {
        self.key_blocks.first().map_or(0, Vec::len)
    }

    /// Whether the positions are the identity (no permutation), padded at the end.
    pub fn is_identity(&self) -> bool {
        self.positions
            .iter()
            .enumerate()
            .all(|(i, &p)| p == i || p == PAD)
    }

    /// The modulus `m` when the positions are grouped by residue mod `m` (see
    /// [`residue_major`]), `None` for the identity order (or any other order).
    pub fn residue_modulus(&self, n: usize) -> Option<usize> {
        let len = self.positions.len();
        let m = *self.positions.get(1)?;
        (m > 1
            && m != PAD
            && len.is_multiple_of(m)
            && self.positions == residue_major(n, m, len / m))
        .then_some(m)
    }

    /// The offsets `o_j` when every row is `qb + o_j` (or [`PAD`]) in every slot `j`:
    /// then key blocks can be gathered by shifting.
    pub fn band_offsets(&self) -> Option<Vec<isize>> {
        let width = self.width();
        let mut offsets: Vec<Option<isize>> = vec![None; width];
        for (qb, row) in self.key_blocks.iter().enumerate() {
            for (j, &kb) in row.iter().enumerate() {
                if kb == PAD {
                    continue;
                }
                let o = kb as isize - qb as isize;
                match offsets[j] {
                    Some(prev) if prev != o => return None,
                    _ => offsets[j] = Some(o),
                }
            }
        }
        Some(offsets.into_iter().map(|o| o.unwrap_or(0)).collect())
    }

    fn identity(n: usize, block: usize, key_blocks: impl Fn(usize, usize) -> Vec<usize>) -> Self {
        let blocks = n.div_ceil(block).max(1);
        let positions = (0..blocks * block)
            .map(|i| if i < n { i } else { PAD })
            .collect();
        let rows: Vec<Vec<usize>> = (0..blocks).map(|qb| key_blocks(qb, blocks)).collect();
        Self {
            block,
            positions,
            key_blocks: pad_rows(rows),
        }
    }
}

/// A set of keys every query may attend to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedComponent {
    /// Key positions.
    pub keys: Vec<usize>,
}

/// How a pattern is computed sparsely at one sequence length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SparseLayout {
    /// Sequence length.
    pub n: usize,
    /// Queries `0..dense_rows` attend densely (global tokens).
    pub dense_rows: usize,
    /// Block components.
    pub blocks: Vec<BlockComponent>,
    /// Shared-key components.
    pub shared: Vec<SharedComponent>,
}

/// Every row padded to the longest by repeating its first entry (repeats are masked).
fn pad_rows(mut rows: Vec<Vec<usize>>) -> Vec<Vec<usize>> {
    let width = rows.iter().map(Vec::len).max().unwrap_or(0);
    for row in &mut rows {
        let first = row.first().copied().unwrap_or(0);
        row.resize(width, first);
    }
    rows
}

/// Key blocks `qb - radius ..= qb + radius`, [`PAD`] where that falls outside
/// `0..blocks`: every row has the same offsets, so the blocks can be gathered by
/// shifting the sequence instead of indexing it.
fn neighbours(qb: usize, blocks: usize, radius: usize) -> Vec<usize> {
    (qb as isize - radius as isize..=(qb + radius) as isize)
        .map(|kb| {
            if (0..blocks as isize).contains(&kb) {
                kb as usize
            } else {
                PAD
            }
        })
        .collect()
}

/// Positions grouped by residue mod `modulus` (the reshape-transpose trick): slot
/// `r * class_len + t` holds position `t * modulus + r`, or [`PAD`] past the end.
pub fn residue_major(n: usize, modulus: usize, class_len: usize) -> Vec<usize> {
    (0..modulus * class_len)
        .map(|slot| {
            let (r, t) = (slot / class_len, slot % class_len);
            let p = t * modulus + r;
            if p < n { p } else { PAD }
        })
        .collect()
}

/// Block size for a local reach of `reach` positions: big enough that few blocks
/// cover the window, at most 64 and at most `n`.
fn local_block(reach: usize, n: usize) -> usize {
    reach.clamp(8, 64).min(n.max(1))
}

/// Whether gathering blocks pays off: only when it skips at least half of the `n^2`
/// pairs. Otherwise (short sequences, wide windows) masked dense attention is as fast
/// or faster (measured on W2: local w=64 at n = 256 computes 75% of the pairs and is
/// 6% slower block-sparse than masked dense; at n = 512, 38% and 1.6x faster).
pub fn sparse_pays_off(computed_pairs: usize, n: usize) -> bool {
    computed_pairs * 2 <= n * n
}

/// The (query, key) pairs per head that training computes for `pattern` at length
/// `n`: the block-sparse layout's where it [pays off](sparse_pays_off), else `n^2`.
pub fn trained_pairs(pattern: &AttentionPattern, n: usize, seed: u64) -> usize {
    match SparseLayout::of(pattern, n, seed) {
        Some(layout) if sparse_pays_off(layout.computed_pairs(), n) => layout.computed_pairs(),
        _ => n * n,
    }
}

impl SparseLayout {
    /// The layout of `pattern` at length `n`, or `None` when the pattern is dense (or
    /// so dense at this length that blocks would not save anything).
    pub fn of(pattern: &AttentionPattern, n: usize, seed: u64) -> Option<Self> {
        let mut layout = Self {
            n,
            dense_rows: 0,
            blocks: Vec::new(),
            shared: Vec::new(),
        };
        match *pattern {
            AttentionPattern::Dense => return None,
            AttentionPattern::Local { window } => layout.local(window),
            AttentionPattern::Dilated { window, dilation } if dilation > 1 => {
                layout.dilated(window, dilation);
            }
            AttentionPattern::Dilated { window, .. } => layout.local(window),
            AttentionPattern::Block { size } => {
                layout
                    .blocks
                    .push(BlockComponent::identity(n, size.max(1), |qb, _| vec![qb]));
            }
            AttentionPattern::Strided { stride } => layout.strided(stride),
            AttentionPattern::Fixed { block, summary } => layout.fixed(block, summary),
            AttentionPattern::Longformer { window, global } => layout.longformer(window, global),
            AttentionPattern::BigBird {
                block,
                window_blocks,
                global_blocks,
                random_blocks,
            } => layout.bigbird(block, window_blocks, global_blocks, random_blocks, seed),
            AttentionPattern::Custom { ref mask } => {
                let tiles = custom::tiles(mask, n);
                if !tiles.contains(&true) {
                    return None;
                }
                layout.fill_from_tiles(&tiles);
            }
        }
        // Nothing saved: as many computed pairs as dense.
        (layout.computed_pairs() < n * n).then_some(layout)
    }

    /// Identity-ordered blocks for a local window of `reach` positions: each query
    /// block attends to its neighbours within `reach`.
    fn local(&mut self, reach: usize) {
        let block = local_block(reach, self.n);
        let radius = reach.div_ceil(block);
        self.blocks
            .push(BlockComponent::identity(self.n, block, |qb, blocks| {
                neighbours(qb, blocks, radius)
            }));
    }

    /// A dilated window (`dilation > 1`) by reshape-transpose: the positions sharing a
    /// residue mod `dilation` become one contiguous class (padded to whole blocks), in
    /// which the dilated window is a plain local window of radius `window`.
    fn dilated(&mut self, window: usize, dilation: usize) {
        let rows = self.n.div_ceil(dilation);
        let block = local_block(window, rows);
        let per_class = rows.div_ceil(block);
        let class_len = per_class * block;
        let positions = residue_major(self.n, dilation, class_len);
        let radius = window.div_ceil(block);
        let key_blocks = (0..dilation * per_class)
            .map(|qb| {
                let (class, local) = (qb / per_class, qb % per_class);
                neighbours(local, per_class, radius)
                    .into_iter()
                    .map(|kb| {
                        if kb == PAD {
                            PAD
                        } else {
                            class * per_class + kb
                        }
                    })
                    .collect()
            })
            .collect();
        self.blocks.push(BlockComponent {
            block,
            positions,
            key_blocks: pad_rows(key_blocks),
        });
    }

    /// The Sparse Transformer's strided pattern: the local part (`stride - 1` each
    /// way), then the positions sharing a residue mod `stride` as one block each.
    fn strided(&mut self, stride: usize) {
        let stride = stride.max(1);
        self.local(stride - 1);
        // Reshape-transpose: slot r * rows + t holds position t * stride + r, so
        // the positions sharing a residue mod stride form one block of `rows`.
        let rows = self.n.div_ceil(stride);
        let positions = residue_major(self.n, stride, rows);
        self.blocks.push(BlockComponent {
            block: rows,
            positions,
            key_blocks: (0..stride).map(|qb| vec![qb]).collect(),
        });
    }

    /// The Sparse Transformer's fixed pattern: each block on itself, and the last
    /// `summary` positions of every block as keys shared by all queries.
    fn fixed(&mut self, block: usize, summary: usize) {
        let n = self.n;
        let block = block.max(1);
        self.blocks
            .push(BlockComponent::identity(n, block, |qb, _| vec![qb]));
        let keys = (0..n)
            .filter(|j| j % block >= block - summary.min(block))
            .collect();
        self.shared.push(SharedComponent { keys });
    }

    /// Longformer: the first `global` queries as dense rows, the local window, and the
    /// `global` positions as keys shared by all queries.
    fn longformer(&mut self, window: usize, global: usize) {
        self.dense_rows = global.min(self.n);
        self.local(window);
        if global > 0 {
            self.shared.push(SharedComponent {
                keys: (0..global.min(self.n)).collect(),
            });
        }
    }

    /// BigBird on blocks of `block` positions, its random blocks drawn from `seed`:
    /// the global blocks' queries as dense rows, every other query block on the key
    /// blocks its layout turns on.
    fn bigbird(
        &mut self,
        block: usize,
        window_blocks: usize,
        global_blocks: usize,
        random_blocks: usize,
        seed: u64,
    ) {
        let block = block.max(1);
        let bb = BigBirdLayout::new(
            self.n,
            block,
            window_blocks,
            global_blocks,
            random_blocks,
            seed,
        );
        self.dense_rows = (global_blocks * block).min(self.n);
        let blocks = bb.blocks();
        self.blocks
            .push(BlockComponent::identity(self.n, block, |qb, _| {
                if qb < global_blocks {
                    // Dense rows: computed apart; keep the row narrow.
                    vec![qb]
                } else {
                    (0..blocks).filter(|&kb| bb.block_on(qb, kb)).collect()
                }
            }));
    }

    /// Identity-ordered blocks covering a custom mask, given which of its tiles
    /// (`TILE x TILE`, see [`custom::tiles`]) hold a visible pair: per query block, the
    /// key blocks holding any of its pairs. Blocks of 1, 2, 4 or 8 tiles: the size
    /// computing the fewest pairs wins.
    fn fill_from_tiles(&mut self, on: &[bool]) {
        let n = self.n;
        let fine = n.div_ceil(TILE).max(1);
        let mut best: Option<(usize, usize, Vec<Vec<usize>>)> = None;
        for scale in [1, 2, 4, 8] {
            let blocks = fine.div_ceil(scale);
            let mut coarse = vec![false; blocks * blocks];
            for fq in 0..fine {
                for fk in 0..fine {
                    coarse[(fq / scale) * blocks + fk / scale] |= on[fq * fine + fk];
                }
            }
            let rows: Vec<Vec<usize>> = (0..blocks)
                .map(|qb| (0..blocks).filter(|&kb| coarse[qb * blocks + kb]).collect())
                .collect();
            let block = TILE * scale;
            let width = rows.iter().map(Vec::len).max().unwrap_or(0);
            let cost = blocks * block * width * block;
            if best.as_ref().is_none_or(|(c, _, _)| cost < *c) {
                best = Some((cost, block, rows));
            }
        }
        if let Some((_, block, rows)) = best {
            self.blocks
                .push(BlockComponent::identity(n, block, |qb, _| {
                    rows.get(qb).cloned().unwrap_or_default()
                }));
        }
    }

    /// (query, key) pairs computed, counting padding: the work this layout does.
    pub fn computed_pairs(&self) -> usize {
        let blocks: usize = self
            .blocks
            .iter()
            .map(|c| c.blocks() * c.block * c.width() * c.block)
            .sum();
        let shared: usize = self.shared.iter().map(|s| self.n * s.keys.len()).sum();
        blocks + shared + self.dense_rows * self.n
    }

    /// For each component, which computed pairs are visible, given the pattern's mask.
    ///
    /// Blocks first, then shared components: a visible pair counts in the first
    /// component that computes it and is hidden in later ones; repeated key blocks of a
    /// row are hidden. Block masks are `[blocks][block][width * block]` flattened,
    /// shared masks `[n][keys]`. Returns an error naming a visible pair no component
    /// computes (a layout bug: the tests check every pattern).
    pub fn visibility(&self, mask: &Mask) -> Result<Visibility, (usize, usize)> {
        let n = self.n;
        let mut claimed = vec![false; n * n];
        let mut block_masks = Vec::with_capacity(self.blocks.len());
        for c in &self.blocks {
            let (b, width) = (c.block, c.width());
            let mut out = vec![false; c.blocks() * b * width * b];
            for (qb, row) in c.key_blocks.iter().enumerate() {
                for (slot, &kb) in row.iter().enumerate() {
                    if kb == PAD || row[..slot].contains(&kb) {
                        continue;
                    }
                    for qi in 0..b {
                        let q = c.positions[qb * b + qi];
                        if q == PAD {
                            continue;
                        }
                        for ki in 0..b {
                            let k = c.positions[kb * b + ki];
                            if k == PAD || !mask.get(q, k) || claimed[q * n + k] {
                                continue;
                            }
                            claimed[q * n + k] = true;
                            out[((qb * b + qi) * width + slot) * b + ki] = true;
                        }
                    }
                }
            }
            block_masks.push(out);
        }
        let mut shared_masks = Vec::with_capacity(self.shared.len());
        for s in &self.shared {
            let m = s.keys.len();
            let mut out = vec![false; n * m];
            for q in 0..n {
                for (slot, &k) in s.keys.iter().enumerate() {
                    if mask.get(q, k) && !claimed[q * n + k] {
                        claimed[q * n + k] = true;
                        out[q * m + slot] = true;
                    }
                }
            }
            shared_masks.push(out);
        }
        for q in self.dense_rows..n {
            for k in 0..n {
                if mask.get(q, k) && !claimed[q * n + k] {
                    return Err((q, k));
                }
            }
        }
        Ok((block_masks, shared_masks))
    }
}
