//! Block-sparse attention: computes only the (query, key) pairs a pattern's
//! [`SparseLayout`] lists, with burn tensor ops, so autodiff gives the backward pass
//! and it runs on every backend.
//!
//! Each component (key blocks gathered per query block; a shared key set) yields a
//! partial softmax per query: its row maximum `m`, the sum of `exp(s - m)` (`l`) and
//! the weighted values (`o`). They are merged with the log-sum-exp rule,
//! `out = sum_c e^(m_c - M) o_c / sum_c e^(m_c - M) l_c`, exactly as one softmax over
//! the union of their keys. Global query rows are computed densely. Memory grows with
//! the computed pairs (`n * w` for local patterns), never with `n^2`.
//!
//! With ALiBi ([`BlockSparseAttention::new_with_alibi`]) each component's scores get
//! the bias of the (query, key) pairs it gathers, `-slope_h * |i - j|`, built once per
//! run from the layout's positions (`heads x` the computed pairs, as floats).

use burn::tensor::{Bool, Device, Int, Tensor, TensorData};

use super::alibi::Alibi;
use super::reference::attention_output_with_bias;
use crate::attention::{
    AttentionPattern, BlockComponent, Mask, PAD, SharedComponent, SparseLayout,
};

/// Stands in for "no visible key" maxima so that `exp(m - M)` is 0, not NaN.
const NO_KEY: f32 = -1.0e30;

/// The order of a block component's sequence.
#[derive(Clone, Copy, Debug)]
enum Order {
    /// Positions in order, zero-padded at the end to whole blocks.
    Identity,
    /// Grouped by residue mod `modulus` in classes of `class_len` slots: a zero pad,
    /// a reshape and a transpose (the Sparse Transformer's trick), no gather.
    Residue { modulus: usize, class_len: usize },
}

/// How a query block's key blocks are fetched.
#[derive(Clone)]
enum KeyAccess {
    /// Row `qb` is blocks `qb + o` for each offset `o` (out of range: zeros): shifted
    /// copies of the sequence, whose backward pass is a slice, not a scatter-add.
    Shifts(Vec<isize>),
    /// Any layout: an index per (query block, slot), `blocks` = an appended zero block.
    Gather(Box<Tensor<1, Int>>),
}

#[derive(Clone)]
struct BlockPart {
    block: usize,
    blocks: usize,
    width: usize,
    order: Order,
    keys: KeyAccess,
    /// `[1, blocks, block, width * block]`, `true` = not computed here.
    hidden: Tensor<4, Bool>,
    /// ALiBi's bias of each gathered pair, `[1, heads, blocks * block, width * block]`.
    bias: Option<Tensor<4>>,
}

#[derive(Clone)]
struct SharedPart {
    keys: Tensor<1, Int>,
    /// `[1, n, keys]`, `true` = not computed here.
    hidden: Tensor<3, Bool>,
    /// ALiBi's bias, `[1, heads, n, keys]`.
    bias: Option<Tensor<4>>,
}

/// A pattern's block-sparse computation at one sequence length, built once per run
/// (index and mask tensors live on the device).
#[derive(Clone)]
pub struct BlockSparseAttention {
    n: usize,
    dense_rows: usize,
    /// `[1, 1, dense_rows, n]`, `true` = hidden (for the dense global rows).
    dense_hidden: Option<Tensor<4, Bool>>,
    /// ALiBi's bias of the dense global rows, `[1, heads, dense_rows, n]`.
    dense_bias: Option<Tensor<4>>,
    blocks: Vec<BlockPart>,
    shared: Vec<SharedPart>,
    computed_pairs: usize,
    /// The heads ALiBi's biases were built for (`None`: no bias).
    alibi_heads: Option<usize>,
}

fn int_tensor(values: Vec<i64>, device: &Device) -> Tensor<1, Int> {
    let len = values.len();
    Tensor::from_data(TensorData::new(values, [len]), device)
}

/// Why a pattern has no block-sparse computation at some length.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SparseUnavailable {
    /// No block layout: the pattern is dense, or so dense at this length that
    /// blocks would skip nothing.
    #[error("no block layout skips anything at this length")]
    NoLayout,
    /// The layout misses a pair the mask allows (a layout bug; the property tests
    /// check every pattern, so this should never be seen).
    #[error("its block layout misses the visible pair (query {query}, key {key})")]
    Uncovered {
        /// Query position.
        query: usize,
        /// Key position.
        key: usize,
    },
    /// A component orders positions in a way the kernel does not implement.
    #[error("its block layout uses a position order the kernel does not implement")]
    UnsupportedOrder,
}

impl std::fmt::Debug for BlockSparseAttention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockSparseAttention")
            .field("n", &self.n)
            .field("dense_rows", &self.dense_rows)
            .field("block_components", &self.blocks.len())
            .field("shared_components", &self.shared.len())
            .field("computed_pairs", &self.computed_pairs)
            .field("alibi_heads", &self.alibi_heads)
            .finish()
    }
}

impl BlockPart {
    /// Component `c` of a layout at length `n` on `device`, `visible` its pairs the
    /// mask allows (ALiBi's bias on each computed pair when `alibi` is given).
    fn build(
        c: &BlockComponent,
        visible: &[bool],
        n: usize,
        alibi: Option<&Alibi>,
        device: &Device,
    ) -> Result<Self, SparseUnavailable> {
        let (block, blocks, width) = (c.block, c.blocks(), c.width());
        let order = match c.residue_modulus(n) {
            Some(modulus) => Order::Residue {
                modulus,
                class_len: c.positions.len() / modulus,
            },
            None if c.is_identity() => Order::Identity,
            // No other orders are built; refuse rather than compute wrongly.
            None => return Err(SparseUnavailable::UnsupportedOrder),
        };
        let keys = match c.band_offsets() {
            Some(offsets) => KeyAccess::Shifts(offsets),
            None => KeyAccess::Gather(Box::new(int_tensor(
                c.key_blocks
                    .iter()
                    .flatten()
                    .map(|&b| if b == PAD { blocks as i64 } else { b as i64 })
                    .collect(),
                device,
            ))),
        };
        let hidden: Vec<bool> = visible.iter().map(|v| !v).collect();
        let hidden = Tensor::from_data(
            TensorData::new(hidden, [1, blocks, block, width * block]),
            device,
        );
        let bias = alibi.map(|a| {
            let rows = blocks * block;
            a.bias_of(block_distances(c), rows, width * block, device)
        });
        Ok(Self {
            block,
            blocks,
            width,
            order,
            keys,
            hidden,
            bias,
        })
    }
}

impl SharedPart {
    /// Shared component `s` (keys every query may see) at length `n` on `device`,
    /// `visible` its pairs the mask allows.
    fn build(
        s: &SharedComponent,
        visible: &[bool],
        n: usize,
        alibi: Option<&Alibi>,
        device: &Device,
    ) -> Self {
        let m = s.keys.len();
        let hidden: Vec<bool> = visible.iter().map(|v| !v).collect();
        let bias = alibi.map(|a| {
            let distances = (0..n)
                .flat_map(|q| s.keys.iter().map(move |&k| q.abs_diff(k) as f32))
                .collect();
            a.bias_of(distances, n, m, device)
        });
        Self {
            keys: int_tensor(s.keys.iter().map(|&k| k as i64).collect(), device),
            hidden: Tensor::from_data(TensorData::new(hidden, [1, n, m]), device),
            bias,
        }
    }
}

impl BlockSparseAttention {
    /// The sparse computation of `pattern` at length `n` (`mask` is its mask, causal
    /// or not); an error says why there is none (then the masked-dense reference is
    /// used, and for anything but a dense pattern the trainer says so).
    pub fn new(
        pattern: &AttentionPattern,
        mask: &Mask,
        seed: u64,
        device: &Device,
    ) -> Result<Self, SparseUnavailable> {
        Self::new_with_alibi(pattern, mask, seed, None, device)
    }

    /// [`Self::new`], with ALiBi's bias on every computed pair when `alibi` is given
    /// (then [`Self::forward`] takes exactly `alibi.heads()` heads).
    pub fn new_with_alibi(
        pattern: &AttentionPattern,
        mask: &Mask,
        seed: u64,
        alibi: Option<&Alibi>,
        device: &Device,
    ) -> Result<Self, SparseUnavailable> {
        let n = mask.n();
        let layout = SparseLayout::of(pattern, n, seed).ok_or(SparseUnavailable::NoLayout)?;
        let (block_masks, shared_masks) = layout
            .visibility(mask)
            .map_err(|(query, key)| SparseUnavailable::Uncovered { query, key })?;
        let blocks = layout
            .blocks
            .iter()
            .zip(block_masks)
            .map(|(c, visible)| BlockPart::build(c, &visible, n, alibi, device))
            .collect::<Result<Vec<_>, _>>()?;
        let shared = layout
            .shared
            .iter()
            .zip(shared_masks)
            .map(|(s, visible)| SharedPart::build(s, &visible, n, alibi, device))
            .collect();
        let dense_rows = layout.dense_rows;
        let dense_hidden = (dense_rows > 0).then(|| {
            let hidden: Vec<bool> = (0..dense_rows)
                .flat_map(|q| mask.row(q).iter().map(|v| !v).collect::<Vec<_>>())
                .collect();
            Tensor::from_data(TensorData::new(hidden, [1, 1, dense_rows, n]), device)
        });
        let dense_bias = alibi
            .filter(|_| dense_rows > 0)
            .map(|a| a.bias_tensor(dense_rows, n, device));
        Ok(Self {
            n,
            dense_rows,
            dense_hidden,
            dense_bias,
            blocks,
            shared,
            computed_pairs: layout.computed_pairs(),
            alibi_heads: alibi.map(Alibi::heads),
        })
    }

    /// (query, key) pairs computed per head, padding included.
    pub fn computed_pairs(&self) -> usize {
        self.computed_pairs
    }

    /// Scaled dot-product attention over the pattern's visible pairs (plus ALiBi's
    /// bias when built with it).
    ///
    /// # Shapes
    /// `q`, `k`, `v`: `[batch, heads, n, head_dim]` → `[batch, heads, n, head_dim]`.
    ///
    /// # Panics
    /// When built with ALiBi for another number of heads.
    pub fn forward(&self, q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
        let [batch, heads, n, d] = q.dims();
        debug_assert_eq!(n, self.n);
        if let Some(built) = self.alibi_heads {
            assert_eq!(
                built, heads,
                "block-sparse attention: ALiBi's bias was built for {built} heads, not {heads}"
            );
        }
        let scale = 1.0 / (d as f64).sqrt();
        let bh = batch * heads;
        // The scale goes on q (n x d), not on the scores.
        let q3 = q.clone().reshape([bh, n, d]).mul_scalar(scale);
        let (k3, v3) = (k.clone().reshape([bh, n, d]), v.clone().reshape([bh, n, d]));
        let mut parts: Vec<(Tensor<3>, Tensor<3>, Tensor<3>)> = Vec::new();
        for part in &self.blocks {
            parts.push(block_part(part, q3.clone(), k3.clone(), v3.clone()));
        }
        for part in &self.shared {
            let keys = k3.clone().select(1, part.keys.clone());
            let values = v3.clone().select(1, part.keys.clone());
            let m = part.keys.dims()[0];
            let scores = biased(q3.clone().matmul(keys.swap_dims(1, 2)), part.bias.as_ref());
            let scores =
                scores.mask_fill(part.hidden.clone().expand([bh, n, m]), f32::NEG_INFINITY);
            parts.push(partial_softmax(scores, values));
        }
        let merged = if parts.len() == 1 {
            // One component (local, block, dilated, BigBird): nothing to rescale.
            parts
                .pop()
                .map(|(_, l, o)| (o / l).reshape([batch, heads, n, d]))
        } else {
            merge(parts).map(|out| out.reshape([batch, heads, n, d]))
        };
        let sparse = merged.unwrap_or_else(|| Tensor::zeros([batch, heads, n, d], &q.device()));
        match &self.dense_hidden {
            Some(hidden) if self.dense_rows > 0 => {
                let g = self.dense_rows;
                let rows = q.slice([0..batch, 0..heads, 0..g, 0..d]);
                let bias = self.dense_bias.clone();
                let dense = attention_output_with_bias(rows, k, v, Some(hidden), bias);
                if g == n {
                    dense
                } else {
                    Tensor::cat(
                        vec![dense, sparse.slice([0..batch, 0..heads, g..n, 0..d])],
                        2,
                    )
                }
            }
            _ => sparse,
        }
    }
}

/// `|i - j|` of every pair a block component gathers, laid out as its scores
/// `[blocks * block, width * block]` (0 where the query or key slot is padding: those
/// pairs are hidden).
fn block_distances(c: &BlockComponent) -> Vec<f32> {
    let (b, width) = (c.block, c.width());
    let mut out = vec![0.0f32; c.blocks() * b * width * b];
    for (qb, row) in c.key_blocks.iter().enumerate() {
        for (slot, &kb) in row.iter().enumerate() {
            for qi in 0..b {
                let q = c.positions[qb * b + qi];
                for ki in 0..b {
                    let k = if kb == PAD {
                        PAD
                    } else {
                        c.positions[kb * b + ki]
                    };
                    if q != PAD && k != PAD {
                        out[((qb * b + qi) * width + slot) * b + ki] = q.abs_diff(k) as f32;
                    }
                }
            }
        }
    }
    out
}

/// `scores` (`[batch * heads, ..]`, the rest `rows x cols` of `bias`) plus `bias`
/// (`[1, heads, rows, cols]`) broadcast over the batch; unchanged without one.
fn biased<const D: usize>(scores: Tensor<D>, bias: Option<&Tensor<4>>) -> Tensor<D> {
    let Some(bias) = bias else {
        return scores;
    };
    let dims = scores.dims();
    let [_, heads, rows, cols] = bias.dims();
    let per_head = scores.reshape([dims[0] / heads.max(1), heads, rows, cols]);
    (per_head + bias.clone()).reshape(dims)
}

/// Merges partial softmax results with the log-sum-exp rule:
/// `sum_c e^(m_c - M) o_c / sum_c e^(m_c - M) l_c`, `M` the largest maximum.
fn merge(parts: Vec<(Tensor<3>, Tensor<3>, Tensor<3>)>) -> Option<Tensor<3>> {
    let top = parts
        .iter()
        .map(|(m, _, _)| m.clone())
        .reduce(|a, b| a.max_pair(b))?;
    let mut sums: Option<(Tensor<3>, Tensor<3>)> = None;
    for (m, l, o) in parts {
        let w = (m - top.clone()).exp();
        let (o, l) = (o * w.clone(), l * w);
        sums = Some(match sums {
            Some((num, den)) => (num + o, den + l),
            None => (o, l),
        });
    }
    sums.map(|(num, den)| num / den)
}

/// One partial softmax: row maximum (detached: the merged result does not depend on
/// it), sum of exponentials and weighted values.
///
/// # Shapes
/// `scores`: `[.., rows, keys]`, `values`: `[.., keys, d]` → `[.., rows, 1]` twice and
/// `[.., rows, d]`.
fn partial_softmax<const D: usize>(
    scores: Tensor<D>,
    values: Tensor<D>,
) -> (Tensor<D>, Tensor<D>, Tensor<D>) {
    let last = D - 1;
    let m = scores.clone().max_dim(last).detach().clamp_min(NO_KEY);
    let p = (scores - m.clone()).exp();
    let l = p.clone().sum_dim(last);
    let o = p.matmul(values);
    (m, l, o)
}

/// A block component: gather key blocks per query block, attend, return per-position
/// partial softmax results in the original order (`q` already scaled).
fn block_part(
    part: &BlockPart,
    q: Tensor<3>,
    k: Tensor<3>,
    v: Tensor<3>,
) -> (Tensor<3>, Tensor<3>, Tensor<3>) {
    let [bh, n, d] = q.dims();
    let (b, nb, w) = (part.block, part.blocks, part.width);
    let qb = part.to_slots(q, n).reshape([bh, nb, b, d]);
    let (kb, vb) = (part.key_blocks(k, n), part.key_blocks(v, n));
    let scores = biased(qb.matmul(kb.swap_dims(2, 3)), part.bias.as_ref());
    let scores = scores.mask_fill(
        part.hidden.clone().expand([bh, nb, b, w * b]),
        f32::NEG_INFINITY,
    );
    let (m, l, o) = partial_softmax(scores, vb);
    (
        part.slots_back(m, n),
        part.slots_back(l, n),
        part.slots_back(o, n),
    )
}

impl BlockPart {
    /// `[bh, n, d]` padded to the component's `blocks * block` slots, in its order.
    fn to_slots(&self, x: Tensor<3>, n: usize) -> Tensor<3> {
        let [bh, _, d] = x.dims();
        let len = self.blocks * self.block;
        let x = if len > n {
            let device = x.device();
            Tensor::cat(vec![x, Tensor::zeros([bh, len - n, d], &device)], 1)
        } else {
            x
        };
        match self.order {
            Order::Identity => x,
            Order::Residue { modulus, class_len } => x
                .reshape([bh, class_len, modulus, d])
                .swap_dims(1, 2)
                .reshape([bh, len, d]),
        }
    }

    /// The key (or value) blocks each query block sees, `[bh, blocks, width * block,
    /// d]`: shifted copies for a band, a gather otherwise (padding blocks are zeros).
    fn key_blocks(&self, x: Tensor<3>, n: usize) -> Tensor<4> {
        let [bh, _, d] = x.dims();
        let (b, nb, w) = (self.block, self.blocks, self.width);
        let device = x.device();
        let x = self.to_slots(x, n).reshape([bh, nb, b, d]);
        let zeros = |count: usize| Tensor::<4>::zeros([bh, count, b, d], &device);
        match &self.keys {
            KeyAccess::Shifts(offsets) => {
                let shifted: Vec<Tensor<4>> = offsets
                    .iter()
                    .map(|&o| {
                        let s = o.unsigned_abs().min(nb);
                        if o == 0 {
                            x.clone()
                        } else if s == nb {
                            zeros(nb)
                        } else if o < 0 {
                            Tensor::cat(
                                vec![zeros(s), x.clone().slice([0..bh, 0..nb - s, 0..b, 0..d])],
                                1,
                            )
                        } else {
                            Tensor::cat(
                                vec![x.clone().slice([0..bh, s..nb, 0..b, 0..d]), zeros(s)],
                                1,
                            )
                        }
                    })
                    .collect();
                Tensor::cat(shifted, 2)
            }
            KeyAccess::Gather(index) => Tensor::cat(vec![x, zeros(1)], 1)
                .select(1, index.as_ref().clone())
                .reshape([bh, nb, w * b, d]),
        }
    }

    /// Per-slot results `[bh, blocks, block, width]` back to `[bh, n, width]` in the
    /// original order, padding dropped.
    fn slots_back(&self, x: Tensor<4>, n: usize) -> Tensor<3> {
        let [bh, _, _, width] = x.dims();
        let len = self.blocks * self.block;
        let x = match self.order {
            Order::Identity => x.reshape([bh, len, width]),
            Order::Residue { modulus, class_len } => x
                .reshape([bh, modulus, class_len, width])
                .swap_dims(1, 2)
                .reshape([bh, len, width]),
        };
        if len > n {
            x.slice([0..bh, 0..n, 0..width])
        } else {
            x
        }
    }
}
