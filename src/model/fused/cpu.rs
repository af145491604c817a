//! The fused attention kernel on raw `f32` slices (burn's `flex` CPU backend hands
//! them over without a copy): flash-style tiles with an online softmax forward, the
//! log-sum-exp saved, and a backward that recomputes each tile's probabilities from
//! it. Never an `n x n` buffer: memory per (batch, head) is `O(n * head_dim)`.
//!
//! Layouts: `qkv` is the packed projection `[batch, n, 3 * d_model]` (q | k | v, head
//! `h` in columns `h * head_dim..`), the output `[batch, n, d_model]` (what the output
//! projection reads), `lse` `[batch, heads, n]`.
//!
//! Every inner loop runs over the [`TILE_K`] keys of a chunk (a fixed 64), so it
//! vectorises whatever the head width; the kernels are compiled three times (AVX-512,
//! AVX2 + FMA, and plain x86-64 / other targets) and picked at run time.

use rayon::prelude::*;

use super::plan::{AttentionPlan, TILE_K, TILE_Q};
use super::simd::{dispatch, exp_neg, fmadd, variants};

/// Shapes of one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    /// Batch.
    pub batch: usize,
    /// Sequence length.
    pub n: usize,
    /// Heads.
    pub heads: usize,
    /// Width of one head.
    pub head_dim: usize,
}

impl Dims {
    fn d_model(self) -> usize {
        self.heads * self.head_dim
    }
}

type Chunk = [f32; TILE_K];

/// `acc[j] += a * row[j]` over one chunk.
#[inline(always)]
fn axpy<const FMA: bool>(a: f32, row: &Chunk, acc: &mut Chunk) {
    for j in 0..TILE_K {
        acc[j] = fmadd::<FMA>(a, row[j], acc[j]);
    }
}

/// `sum_j a[j] * b[j]` over one chunk, in 16 independent lanes.
#[inline(always)]
fn dot<const FMA: bool>(a: &Chunk, b: &Chunk) -> f32 {
    let mut lanes = [0.0f32; 16];
    for c in 0..TILE_K / 16 {
        for l in 0..16 {
            lanes[l] = fmadd::<FMA>(a[c * 16 + l], b[c * 16 + l], lanes[l]);
        }
    }
    let mut s = 0.0;
    for l in lanes {
        s += l;
    }
    s
}

/// Per-thread scratch for one (batch, head): a chunk of keys and values, transposed.
struct Scratch {
    /// `[head_dim]` chunks: `kt[d][j]` = dimension `d` of the chunk's key `j`.
    kt: Vec<Chunk>,
    /// The same for values.
    vt: Vec<Chunk>,
    /// Queries of the tile (scaled), `[TILE_Q][head_dim]`.
    q: Vec<f32>,
    /// Scores, then probabilities, of the tile's rows for one chunk.
    s: Vec<Chunk>,
}

impl Scratch {
    fn new(head_dim: usize) -> Self {
        Self {
            kt: vec![[0.0; TILE_K]; head_dim],
            vt: vec![[0.0; TILE_K]; head_dim],
            q: vec![0.0; TILE_Q * head_dim],
            s: vec![[0.0; TILE_K]; TILE_Q],
        }
    }

    /// Loads keys and values of `keys` (at most one chunk), zero past its end.
    #[inline(always)]
    fn load_chunk(&mut self, qkv: &[f32], dims: Dims, b: usize, h: usize, keys: &[u32]) {
        let (dm, hd) = (dims.d_model(), dims.head_dim);
        let stride = 3 * dm;
        for (j, &key) in keys.iter().enumerate() {
            let base = (b * dims.n + key as usize) * stride + h * hd;
            let k = &qkv[base + dm..base + dm + hd];
            let v = &qkv[base + 2 * dm..base + 2 * dm + hd];
            for d in 0..hd {
                self.kt[d][j] = k[d];
                self.vt[d][j] = v[d];
            }
        }
        for j in keys.len()..TILE_K {
            for d in 0..hd {
                self.kt[d][j] = 0.0;
                self.vt[d][j] = 0.0;
            }
        }
    }

    /// `s[r] = q[r] . kt` for the first `rows` rows, `-inf` where `bits` hides a key.
    #[inline(always)]
    fn scores<const FMA: bool>(&mut self, rows: usize, hd: usize, bits: impl Fn(usize) -> u64) {
        for r in 0..rows {
            let mut acc = [0.0f32; TILE_K];
            let q = &self.q[r * hd..(r + 1) * hd];
            for (d, &a) in q.iter().enumerate() {
                axpy::<FMA>(a, &self.kt[d], &mut acc);
            }
            let word = bits(r);
            for (j, s) in acc.iter_mut().enumerate() {
                if word >> j & 1 == 0 {
                    *s = f32::NEG_INFINITY;
                }
            }
            self.s[r] = acc;
        }
    }
}

/// The forward pass of one (batch, head): `o` (`[n][head_dim]`) and `lse` (`[n]`).
#[inline(always)]
fn forward_head<const FMA: bool>(
    plan: &AttentionPlan,
    qkv: &[f32],
    dims: Dims,
    bh: usize,
    o: &mut [f32],
    lse: &mut [f32],
) {
    let (b, h) = (bh / dims.heads, bh % dims.heads);
    let (n, hd, dm) = (dims.n, dims.head_dim, dims.d_model());
    let scale = 1.0 / (hd as f32).sqrt();
    let mut m = vec![f32::NEG_INFINITY; n];
    let mut l = vec![0.0f32; n];
    o.fill(0.0);
    let mut sc = Scratch::new(hd);
    for tile in plan.passes().iter().flatten() {
        let rows = tile.queries.len();
        for (r, &query) in tile.queries.iter().enumerate() {
            let base = (b * n + query as usize) * 3 * dm + h * hd;
            for d in 0..hd {
                sc.q[r * hd + d] = qkv[base + d] * scale;
            }
        }
        for (c, keys) in tile.keys.chunks(TILE_K).enumerate() {
            sc.load_chunk(qkv, dims, b, h, keys);
            sc.scores::<FMA>(rows, hd, |r| tile.chunk_bits(r, c));
            for (r, &query) in tile.queries.iter().enumerate() {
                let query = query as usize;
                let s = &mut sc.s[r];
                let mut mx = f32::NEG_INFINITY;
                for &x in s.iter() {
                    mx = mx.max(x);
                }
                if mx == f32::NEG_INFINITY {
                    continue; // this query sees no key of the chunk
                }
                let m_new = m[query].max(mx);
                let alpha = exp_neg::<FMA>(m[query] - m_new);
                let mut sum = 0.0f32;
                for x in s.iter_mut() {
                    *x = exp_neg::<FMA>(*x - m_new);
                }
                for &x in s.iter() {
                    sum += x;
                }
                m[query] = m_new;
                l[query] = fmadd::<FMA>(l[query], alpha, sum);
                let row = &mut o[query * hd..(query + 1) * hd];
                for (d, out) in row.iter_mut().enumerate() {
                    *out = fmadd::<FMA>(*out, alpha, dot::<FMA>(s, &sc.vt[d]));
                }
            }
        }
    }
    for q in 0..n {
        let inv = if l[q] > 0.0 { 1.0 / l[q] } else { 0.0 };
        for x in &mut o[q * hd..(q + 1) * hd] {
            *x *= inv;
        }
        lse[q] = if l[q] > 0.0 {
            m[q] + l[q].ln()
        } else {
            f32::INFINITY
        };
    }
}

/// The backward pass of one (batch, head): `dq`, `dk`, `dv` (each `[n][head_dim]`).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn backward_head<const FMA: bool>(
    plan: &AttentionPlan,
    qkv: &[f32],
    out: &[f32],
    lse: &[f32],
    grad: &[f32],
    dims: Dims,
    bh: usize,
    dqkv: &mut [f32],
) {
    let (b, h) = (bh / dims.heads, bh % dims.heads);
    let (n, hd, dm) = (dims.n, dims.head_dim, dims.d_model());
    let scale = 1.0 / (hd as f32).sqrt();
    let lse = &lse[bh * n..(bh + 1) * n];
    // D_i = dO_i . O_i
    let row_of = |q: usize| -> usize { (b * n + q) * dm + h * hd };
    let delta: Vec<f32> = (0..n)
        .map(|q| {
            let base = row_of(q);
            (0..hd).map(|d| out[base + d] * grad[base + d]).sum()
        })
        .collect();
    let (dq, rest) = dqkv.split_at_mut(n * hd);
    let (dk, dv) = rest.split_at_mut(n * hd);
    dq.fill(0.0);
    dk.fill(0.0);
    dv.fill(0.0);
    let mut sc = Scratch::new(hd);
    let mut go = vec![0.0f32; TILE_Q * hd];
    let mut dkt = vec![[0.0f32; TILE_K]; hd];
    let mut dvt = vec![[0.0f32; TILE_K]; hd];
    for tile in plan.passes().iter().flatten() {
        let rows = tile.queries.len();
        for (r, &query) in tile.queries.iter().enumerate() {
            let query = query as usize;
            let base = (b * n + query) * 3 * dm + h * hd;
            let gbase = row_of(query);
            for d in 0..hd {
                sc.q[r * hd + d] = qkv[base + d] * scale;
                go[r * hd + d] = grad[gbase + d];
            }
        }
        for (c, keys) in tile.keys.chunks(TILE_K).enumerate() {
            sc.load_chunk(qkv, dims, b, h, keys);
            sc.scores::<FMA>(rows, hd, |r| tile.chunk_bits(r, c));
            for row in dkt.iter_mut().chain(dvt.iter_mut()) {
                *row = [0.0; TILE_K];
            }
            for (r, &query) in tile.queries.iter().enumerate() {
                let query = query as usize;
                let p = &mut sc.s[r];
                let l = lse[query];
                for x in p.iter_mut() {
                    *x = exp_neg::<FMA>(*x - l);
                }
                let g = &go[r * hd..(r + 1) * hd];
                // dV^T += dO^T P ; dP = dO V^T
                let mut dp = [0.0f32; TILE_K];
                for (d, &gd) in g.iter().enumerate() {
                    axpy::<FMA>(gd, p, &mut dvt[d]);
                    axpy::<FMA>(gd, &sc.vt[d], &mut dp);
                }
                // dS = P * (dP - D)
                let dl = delta[query];
                for j in 0..TILE_K {
                    dp[j] = p[j] * (dp[j] - dl);
                }
                // dK^T += dS^T Qs ; dQ += dS K
                let q = &sc.q[r * hd..(r + 1) * hd];
                let dq_row = &mut dq[query * hd..(query + 1) * hd];
                for d in 0..hd {
                    axpy::<FMA>(q[d], &dp, &mut dkt[d]);
                    dq_row[d] = fmadd::<FMA>(scale, dot::<FMA>(&dp, &sc.kt[d]), dq_row[d]);
                }
            }
            for (j, &key) in keys.iter().enumerate() {
                let key = key as usize;
                for d in 0..hd {
                    dk[key * hd + d] += dkt[d][j];
                    dv[key * hd + d] += dvt[d][j];
                }
            }
        }
    }
}

variants!(forward_head, forward_avx512, forward_avx2,
    (plan: &AttentionPlan, qkv: &[f32], dims: Dims, bh: usize, o: &mut [f32], lse: &mut [f32]));
variants!(backward_head, backward_avx512, backward_avx2,
    (plan: &AttentionPlan, qkv: &[f32], out: &[f32], lse: &[f32], grad: &[f32], dims: Dims, bh: usize, dqkv: &mut [f32]));

/// Attention of every (batch, head) of `qkv` under `plan`: the output
/// `[batch, n, d_model]` and the log-sum-exp `[batch, heads, n]`.
pub fn forward(plan: &AttentionPlan, qkv: &[f32], dims: Dims) -> (Vec<f32>, Vec<f32>) {
    let (n, hd, dm) = (dims.n, dims.head_dim, dims.d_model());
    assert_eq!(qkv.len(), dims.batch * n * 3 * dm, "qkv is [batch, n, 3 d_model]");
    assert_eq!(plan.n(), n, "the plan was built for another length");
    let bhs = dims.batch * dims.heads;
    let mut heads_out = vec![0.0f32; bhs * n * hd];
    let mut lse = vec![0.0f32; bhs * n];
    heads_out
        .par_chunks_mut(n * hd)
        .zip(lse.par_chunks_mut(n))
        .enumerate()
        .for_each(|(bh, (o, l))| {
            dispatch!(forward_head, forward_avx512, forward_avx2, (plan, qkv, dims, bh, o, l))
        });
    // [batch, heads, n, hd] -> [batch, n, heads * hd]
    let mut out = vec![0.0f32; dims.batch * n * dm];
    out.par_chunks_mut(n * dm).enumerate().for_each(|(b, ob)| {
        for h in 0..dims.heads {
            let src = &heads_out[(b * dims.heads + h) * n * hd..][..n * hd];
            for q in 0..n {
                ob[q * dm + h * hd..q * dm + (h + 1) * hd]
                    .copy_from_slice(&src[q * hd..(q + 1) * hd]);
            }
        }
    });
    (out, lse)
}

/// The gradient of `qkv` (`[batch, n, 3 d_model]`) from the forward's output, its
/// log-sum-exp and the output's gradient.
pub fn backward(
    plan: &AttentionPlan,
    qkv: &[f32],
    out: &[f32],
    lse: &[f32],
    grad: &[f32],
    dims: Dims,
) -> Vec<f32> {
    let (n, hd, dm) = (dims.n, dims.head_dim, dims.d_model());
    assert_eq!(out.len(), dims.batch * n * dm);
    assert_eq!(grad.len(), out.len());
    let bhs = dims.batch * dims.heads;
    let mut per_head = vec![0.0f32; bhs * 3 * n * hd];
    per_head
        .par_chunks_mut(3 * n * hd)
        .enumerate()
        .for_each(|(bh, d)| {
            dispatch!(
                backward_head,
                backward_avx512,
                backward_avx2,
                (plan, qkv, out, lse, grad, dims, bh, d)
            )
        });
    // [batch, heads, (q|k|v), n, hd] -> [batch, n, (q|k|v), heads * hd]
    let mut dqkv = vec![0.0f32; dims.batch * n * 3 * dm];
    dqkv.par_chunks_mut(n * 3 * dm).enumerate().for_each(|(b, db)| {
        for h in 0..dims.heads {
            let src = &per_head[(b * dims.heads + h) * 3 * n * hd..][..3 * n * hd];
            for part in 0..3 {
                for q in 0..n {
                    let dst = q * 3 * dm + part * dm + h * hd;
                    db[dst..dst + hd]
                        .copy_from_slice(&src[(part * n + q) * hd..(part * n + q + 1) * hd]);
                }
            }
        }
    });
    dqkv
}
