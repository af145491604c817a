//! The fused attention kernel on raw `f32` slices (burn's `flex` CPU backend hands
//! them over without a copy): flash-style tiles with an online softmax forward, the
//! log-sum-exp saved, and a backward that recomputes each tile's probabilities from
//! it. Never an `n x n` buffer: memory per (batch, head) is `O(n * head_dim)`.
//!
//! Layouts: `qkv` is the packed projection `[batch, n, 3 * d_model]` (q | k | v, head
//! `h` in columns `h * head_dim..`), the output `[batch, n, d_model]` (what the output
//! projection reads), `lse` `[batch, heads, n]`.
//!
//! Every product of a tile is one register-blocked micro-kernel, `gemm_bcast` (4
//! rows by 32 columns on AVX-512, by 16 otherwise; one operand broadcast), on per-head copies of
//! K and V in both layouts, so that a chunk of consecutive keys is read in place. The
//! kernels are compiled for AVX-512, AVX2 + FMA and plain x86-64 and picked at run
//! time ([`super::simd`]). Parallel over (batch, head): each task writes its head's
//! columns of the output in place, through a `HeadOut` that owns them.
//!
//! With ALiBi (`model.positions = "alibi"`, the plan's slopes) each score tile gets
//! `-slope_h * |i - j|` added right after its product, in the forward and in the
//! backward's recomputation alike; without, that step is one branch per chunk.
//!
//! [`forward`] and [`backward`] check every length against [`Dims`] and the plan, in
//! release builds too, before any kernel runs: a mismatched call panics with a
//! message naming what mismatched.

use rayon::prelude::*;

use super::gemm::{ColVecs, LANES, RowBlocks, gemm_bcast};
pub use super::heads::Dims;
use super::heads::{HeadOut, HeadWriter};
use super::plan::{AttentionPlan, TILE_K, TILE_Q, Tile};
use super::simd::{self, dispatch, exp_neg, fmadd, variants};

/// The chunk of `TILE_K` keys as whole vectors of columns (a score row).
const KEY_COLS: ColVecs = ColVecs::exactly(TILE_K);
/// The chunk of `TILE_K` keys as whole blocks of rows.
const KEY_ROWS: RowBlocks = RowBlocks::exactly(TILE_K);

// Score rows are whole vectors: `row_max` and `exp_sum` walk them in `LANES` chunks.
const _: () = assert!(TILE_K.is_multiple_of(LANES));

/// Which pass a [`HeadKv`] serves: each reads only two of its four layouts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// Scores (`kt`) and `P V` (`vr`).
    Forward,
    /// Scores (`kt`), `dO V^T` (`vt`) and `dS K` (`kr`).
    Backward,
}

/// One (batch, head)'s keys and values, copied once per call in the layouts its pass
/// reads (the others stay empty).
struct HeadKv {
    /// `[hd][n + TILE_K]`: `kt[d * ld + j]` = dimension `d` of key `j` (zero past `n`).
    kt: Vec<f32>,
    vt: Vec<f32>,
    /// `[n + TILE_K][hdp]`: row `j` = key `j`, zero-padded to `hdp` columns.
    kr: Vec<f32>,
    vr: Vec<f32>,
    /// Leading dimension of `kt`, `vt`.
    ld: usize,
    pass: Pass,
}

impl HeadKv {
    fn new(qkv: &[f32], dims: Dims, b: usize, h: usize, hdp: usize, pass: Pass) -> Self {
        let (n, hd, dm) = (dims.n, dims.head_dim, dims.d_model());
        let ld = n + TILE_K;
        let backward = pass == Pass::Backward;
        let sized = |wanted: bool, len: usize| if wanted { vec![0.0; len] } else { Vec::new() };
        let mut s = Self {
            kt: vec![0.0; hd * ld],
            vt: sized(backward, hd * ld),
            kr: sized(backward, ld * hdp),
            vr: sized(!backward, ld * hdp),
            ld,
            pass,
        };
        for j in 0..n {
            let base = (b * n + j) * 3 * dm + h * hd;
            let k = &qkv[base + dm..base + dm + hd];
            let v = &qkv[base + 2 * dm..base + 2 * dm + hd];
            for (d, &kd) in k.iter().enumerate() {
                s.kt[d * ld + j] = kd;
            }
            if backward {
                s.kr[j * hdp..j * hdp + hd].copy_from_slice(k);
                for (d, &vd) in v.iter().enumerate() {
                    s.vt[d * ld + j] = vd;
                }
            } else {
                s.vr[j * hdp..j * hdp + hd].copy_from_slice(v);
            }
        }
        s
    }
}

/// Where a chunk's keys and values are read: in place for consecutive keys, else
/// gathered into the scratch copies.
struct ChunkKv<'a> {
    kt: &'a [f32],
    vt: &'a [f32],
    kr: &'a [f32],
    vr: &'a [f32],
    ld: usize,
    /// The first key, when the chunk is consecutive keys.
    start: Option<usize>,
}

/// Per-(batch, head) scratch of a tile.
struct Scratch {
    /// Gathered chunk copies for non-consecutive keys, `[hd][TILE_K]` and
    /// `[TILE_K][hdp]`.
    kt: Vec<f32>,
    vt: Vec<f32>,
    kr: Vec<f32>,
    vr: Vec<f32>,
    /// The tile's queries (scaled), `[TILE_Q][hdp]`.
    q: Vec<f32>,
    /// Scores, then probabilities, `[TILE_Q][TILE_K]`.
    s: Vec<f32>,
}

impl Scratch {
    fn new(hd: usize, hdp: usize) -> Self {
        Self {
            kt: vec![0.0; hd * TILE_K],
            vt: vec![0.0; hd * TILE_K],
            kr: vec![0.0; TILE_K * hdp],
            vr: vec![0.0; TILE_K * hdp],
            q: vec![0.0; TILE_Q * hdp],
            s: vec![0.0; TILE_Q * TILE_K],
        }
    }
}

/// The chunk `keys` of `kv`: consecutive keys in place, others gathered into `sc`
/// (only the layouts `kv`'s pass reads; the others come back empty).
#[inline(always)]
fn chunk<'a>(
    kv: &'a HeadKv,
    gathered: (&'a mut [f32], &'a mut [f32], &'a mut [f32], &'a mut [f32]),
    keys: &[u32],
    hd: usize,
    hdp: usize,
) -> ChunkKv<'a> {
    let backward = kv.pass == Pass::Backward;
    let first = keys[0] as usize;
    if keys[keys.len() - 1] as usize - first + 1 == keys.len() {
        // A layout this pass does not read is empty; one it reads is sliced as ever.
        let from = |layout: &'a [f32], start: usize| {
            if layout.is_empty() {
                layout
            } else {
                &layout[start..]
            }
        };
        return ChunkKv {
            kt: &kv.kt[first..],
            vt: from(&kv.vt, first),
            kr: from(&kv.kr, first * hdp),
            vr: from(&kv.vr, first * hdp),
            ld: kv.ld,
            start: Some(first),
        };
    }
    let (kt, vt, kr, vr) = gathered;
    kt.fill(0.0);
    for (j, &key) in keys.iter().enumerate() {
        for d in 0..hd {
            kt[d * TILE_K + j] = kv.kt[d * kv.ld + key as usize];
        }
    }
    if backward {
        vt.fill(0.0);
        kr.fill(0.0);
        for (j, &key) in keys.iter().enumerate() {
            let key = key as usize;
            kr[j * hdp..(j + 1) * hdp].copy_from_slice(&kv.kr[key * hdp..(key + 1) * hdp]);
            for d in 0..hd {
                vt[d * TILE_K + j] = kv.vt[d * kv.ld + key];
            }
        }
    } else {
        vr.fill(0.0);
        for (j, &key) in keys.iter().enumerate() {
            let key = key as usize;
            vr[j * hdp..(j + 1) * hdp].copy_from_slice(&kv.vr[key * hdp..(key + 1) * hdp]);
        }
    }
    ChunkKv {
        kt,
        vt,
        kr,
        vr,
        ld: TILE_K,
        start: None,
    }
}

/// `dst[i] = src[i] * s + add * dst[i]` over whole `LANES` chunks (a head row of 32 is
/// two vectors; a plain loop would leave it to the scalar remainder of a 64-wide
/// vectorised body), then the rest.
#[inline(always)]
fn axpby<const FMA: bool>(dst: &mut [f32], src: &[f32], s: f32, keep: bool) {
    debug_assert_eq!(dst.len(), src.len());
    let mut d = dst.chunks_exact_mut(LANES);
    let mut x = src.chunks_exact(LANES);
    for (d, x) in (&mut d).zip(&mut x) {
        for (d, &x) in d.iter_mut().zip(x) {
            *d = if keep { fmadd::<FMA>(x, s, *d) } else { x * s };
        }
    }
    for (d, &x) in d.into_remainder().iter_mut().zip(x.remainder()) {
        *d = if keep { fmadd::<FMA>(x, s, *d) } else { x * s };
    }
}

/// `x *= s`, in whole vectors as [`axpby`].
#[inline(always)]
fn scale_in_place(x: &mut [f32], s: f32) {
    let mut v = x.chunks_exact_mut(LANES);
    for v in &mut v {
        for x in v {
            *x *= s;
        }
    }
    for x in v.into_remainder() {
        *x *= s;
    }
}

/// `a . b`, accumulated in vector lanes.
#[inline(always)]
fn dot<const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let mut x = a.chunks_exact(LANES);
    let mut y = b.chunks_exact(LANES);
    for (x, y) in (&mut x).zip(&mut y) {
        for ((acc, &x), &y) in lanes.iter_mut().zip(x).zip(y) {
            *acc = fmadd::<FMA>(x, y, *acc);
        }
    }
    let tail: f32 = x
        .remainder()
        .iter()
        .zip(y.remainder())
        .map(|(x, y)| x * y)
        .sum();
    lanes.iter().sum::<f32>() + tail
}

/// Loads the tile's queries, scaled, into `q` (`[TILE_Q][hdp]`).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn load_queries<const FMA: bool>(
    q: &mut [f32],
    tile: &Tile,
    qkv: &[f32],
    dims: Dims,
    b: usize,
    h: usize,
    hdp: usize,
    scale: f32,
) {
    let (n, hd, dm) = (dims.n, dims.head_dim, dims.d_model());
    for (r, &query) in tile.queries.iter().enumerate() {
        let base = (b * n + query as usize) * 3 * dm + h * hd;
        axpby::<FMA>(
            &mut q[r * hdp..r * hdp + hd],
            &qkv[base..base + hd],
            scale,
            false,
        );
    }
}

/// `s = q . k^T` for the tile's rows (`keys`: chunk `c`'s keys), minus ALiBi's
/// `slope * |i - j|` when the head has a `slope`, `-inf` where the plan hides a key.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn scores<const FMA: bool>(
    wide: bool,
    s: &mut [f32],
    q: &[f32],
    kv: &ChunkKv,
    tile: &Tile,
    c: usize,
    keys: &[u32],
    slope: Option<f32>,
    hd: usize,
    hdp: usize,
) {
    let rows = tile.queries.len();
    let m = RowBlocks::covering(rows);
    gemm_bcast::<FMA, true>(wide, m, hd, KEY_COLS, q, (hdp, 1), kv.kt, kv.ld, s, TILE_K);
    // Branched once per chunk: without ALiBi the tile is untouched.
    if let Some(slope) = slope {
        for (r, &query) in tile.queries.iter().enumerate() {
            let query = query as f32;
            for (x, &key) in s[r * TILE_K..(r + 1) * TILE_K].iter_mut().zip(keys) {
                *x = fmadd::<FMA>(-slope, (query - key as f32).abs(), *x);
            }
        }
    }
    for r in 0..rows {
        let word = tile.chunk_bits(r, c);
        if word == u64::MAX {
            continue;
        }
        for (j, x) in s[r * TILE_K..(r + 1) * TILE_K].iter_mut().enumerate() {
            if word >> j & 1 == 0 {
                *x = f32::NEG_INFINITY;
            }
        }
    }
}

/// The largest of a score row (`TILE_K` long), in vector lanes.
#[inline(always)]
fn row_max(s: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; LANES];
    for part in s.chunks_exact(LANES) {
        for (m, &x) in lanes.iter_mut().zip(part) {
            *m = m.max(x);
        }
    }
    lanes.into_iter().fold(f32::NEG_INFINITY, f32::max)
}

/// Replaces each score `x` of a row (`TILE_K` long) by `exp(x - max)` and returns
/// their sum, accumulated in vector lanes (a sequential sum would be one add's
/// latency per element).
#[inline(always)]
fn exp_sum<const FMA: bool>(s: &mut [f32], max: f32) -> f32 {
    let mut lanes = [0.0f32; LANES];
    for part in s.chunks_exact_mut(LANES) {
        for (acc, x) in lanes.iter_mut().zip(part) {
            *x = exp_neg::<FMA>(*x - max);
            *acc += *x;
        }
    }
    lanes.iter().sum()
}

/// The forward pass of the (batch, head) that `o` owns: its head's columns of the
/// output (`[batch, n, heads * hd]`) and its `lse` (`[n]`). `wide`: the gemm's larger
/// blocks (AVX-512).
#[inline(always)]
fn forward_head<const FMA: bool>(
    plan: &AttentionPlan,
    qkv: &[f32],
    o: HeadOut<'_>,
    lse: &mut [f32],
    wide: bool,
) {
    let (dims, b, h) = (o.dims(), o.batch(), o.head());
    let (n, hd) = (dims.n, dims.head_dim);
    let hdp_cols = ColVecs::covering(hd);
    let hdp = hdp_cols.cols();
    let scale = 1.0 / (hd as f32).sqrt();
    let slope = plan.alibi().map(|slopes| slopes[h]);
    let kv = HeadKv::new(qkv, dims, b, h, hdp, Pass::Forward);
    let mut m = vec![f32::NEG_INFINITY; n];
    let mut l = vec![0.0f32; n];
    let mut acc = vec![0.0f32; n * hdp];
    let mut sc = Scratch::new(hd, hdp);
    let mut ot = vec![0.0f32; TILE_Q * hdp];
    for tile in plan.passes().iter().flatten() {
        let mr = RowBlocks::covering(tile.queries.len());
        load_queries::<FMA>(&mut sc.q, tile, qkv, dims, b, h, hdp, scale);
        for (r, &query) in tile.queries.iter().enumerate() {
            let query = query as usize;
            ot[r * hdp..(r + 1) * hdp].copy_from_slice(&acc[query * hdp..(query + 1) * hdp]);
        }
        for (c, keys) in tile.keys.chunks(TILE_K).enumerate() {
            let gathered = (
                &mut sc.kt[..],
                &mut sc.vt[..],
                &mut sc.kr[..],
                &mut sc.vr[..],
            );
            let ck = chunk(&kv, gathered, keys, hd, hdp);
            scores::<FMA>(wide, &mut sc.s, &sc.q, &ck, tile, c, keys, slope, hd, hdp);
            for (r, &query) in tile.queries.iter().enumerate() {
                let query = query as usize;
                let s = &mut sc.s[r * TILE_K..(r + 1) * TILE_K];
                let mx = row_max(s);
                if mx == f32::NEG_INFINITY {
                    s.fill(0.0); // this query sees no key of the chunk
                    continue;
                }
                let m_new = m[query].max(mx);
                let alpha = exp_neg::<FMA>(m[query] - m_new);
                let sum = exp_sum::<FMA>(s, m_new);
                m[query] = m_new;
                l[query] = fmadd::<FMA>(l[query], alpha, sum);
                scale_in_place(&mut ot[r * hdp..(r + 1) * hdp], alpha);
            }
            gemm_bcast::<FMA, false>(
                wide,
                mr,
                keys.len(),
                hdp_cols,
                &sc.s,
                (TILE_K, 1),
                ck.vr,
                hdp,
                &mut ot,
                hdp,
            );
        }
        for (r, &query) in tile.queries.iter().enumerate() {
            let query = query as usize;
            acc[query * hdp..(query + 1) * hdp].copy_from_slice(&ot[r * hdp..(r + 1) * hdp]);
        }
    }
    let (acc, l) = (&acc[..], &l[..]);
    o.store(move |q, _| {
        let inv = if l[q] > 0.0 { 1.0 / l[q] } else { 0.0 };
        (&acc[q * hdp..q * hdp + hd], inv)
    });
    for ((lse, &m), &l) in lse.iter_mut().zip(&m).zip(l) {
        *lse = if l > 0.0 { m + l.ln() } else { f32::INFINITY };
    }
}

/// `D_i = dO_i . O_i` for each of the head's `n` queries (its row of `out` and
/// `grad` starts at `row_of(i)`, `hd` wide).
#[inline(always)]
fn output_grad_dots<const FMA: bool>(
    out: &[f32],
    grad: &[f32],
    n: usize,
    hd: usize,
    row_of: impl Fn(usize) -> usize,
) -> Vec<f32> {
    (0..n)
        .map(|q| {
            let base = row_of(q);
            dot::<FMA>(&out[base..base + hd], &grad[base..base + hd])
        })
        .collect()
}

/// Adds a tile's `dQ` rows (`dqt`, `[rows][hdp]`, for the scaled queries) into the
/// head's `dq` at each query's row, times `scale`.
#[inline(always)]
fn scatter_query_grads<const FMA: bool>(
    dq: &mut [f32],
    dqt: &[f32],
    queries: &[u32],
    (hd, hdp): (usize, usize),
    scale: f32,
) {
    for (r, &query) in queries.iter().enumerate() {
        let query = query as usize * hdp;
        axpby::<FMA>(
            &mut dq[query..query + hd],
            &dqt[r * hdp..r * hdp + hd],
            scale,
            true,
        );
    }
}

/// Turns a tile's scores `s` (`[rows][TILE_K]`) into probabilities `P = exp(s -
/// lse)` in place, and `dp` (`dO V^T`) into the scores' gradient `dS = P * (dP - D)`
/// in place (`D_i = dO_i . O_i`, `delta`).
#[inline(always)]
fn probs_and_score_grads<const FMA: bool>(
    s: &mut [f32],
    dp: &mut [f32],
    queries: &[u32],
    lse: &[f32],
    delta: &[f32],
) {
    for (r, &query) in queries.iter().enumerate() {
        let query = query as usize;
        let (l, dl) = (lse[query], delta[query]);
        let p = &mut s[r * TILE_K..(r + 1) * TILE_K];
        let ds = &mut dp[r * TILE_K..(r + 1) * TILE_K];
        for (x, d) in p.iter_mut().zip(ds.iter_mut()) {
            *x = exp_neg::<FMA>(*x - l);
            *d = *x * (*d - dl); // dS = P * (dP - D)
        }
    }
}

/// One head's key and value gradients (`[n + TILE_K][hdp]`, slack for in-place
/// chunks) and the scratch rows a scattered chunk adds through.
struct KeyGrads<'a> {
    dk: &'a mut [f32],
    dv: &'a mut [f32],
    dkc: &'a mut [f32],
    dvc: &'a mut [f32],
}

impl KeyGrads<'_> {
    /// `dV += P^T dO` and `dK += dS^T Qs` for one chunk of `keys`: in place when the
    /// keys are consecutive from `start`, else through the scratch rows and added
    /// key by key. `inputs` are `(P, dS, dO, Qs)`, `shape` `(rows, hd, hdp_cols)`.
    #[inline(always)]
    fn add<const FMA: bool>(
        self,
        wide: bool,
        (rows, hd, hdp_cols): (usize, usize, ColVecs),
        keys: &[u32],
        start: Option<usize>,
        (p, ds, go, q): (&[f32], &[f32], &[f32], &[f32]),
    ) {
        let hdp = hdp_cols.cols();
        let Self { dk, dv, dkc, dvc } = self;
        let (dk_c, dv_c): (&mut [f32], &mut [f32]) = match start {
            Some(first) => (&mut dk[first * hdp..], &mut dv[first * hdp..]),
            None => {
                dkc.fill(0.0);
                dvc.fill(0.0);
                (&mut dkc[..], &mut dvc[..])
            }
        };
        gemm_bcast::<FMA, false>(
            wide,
            KEY_ROWS,
            rows,
            hdp_cols,
            p,
            (1, TILE_K),
            go,
            hdp,
            dv_c,
            hdp,
        );
        gemm_bcast::<FMA, false>(
            wide,
            KEY_ROWS,
            rows,
            hdp_cols,
            ds,
            (1, TILE_K),
            q,
            hdp,
            dk_c,
            hdp,
        );
        if start.is_none() {
            for (j, &key) in keys.iter().enumerate() {
                let (key, row) = (key as usize * hdp, j * hdp);
                axpby::<FMA>(&mut dk[key..key + hd], &dkc[row..row + hd], 1.0, true);
                axpby::<FMA>(&mut dv[key..key + hd], &dvc[row..row + hd], 1.0, true);
            }
        }
    }
}

/// The backward pass of the (batch, head) that `dqkv` owns: its head's columns of
/// `dq`, `dk`, `dv` (`[batch, n, (q|k|v), heads * hd]`, the layout of `qkv`). `wide`:
/// the gemm's larger blocks (AVX-512).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn backward_head<const FMA: bool>(
    plan: &AttentionPlan,
    qkv: &[f32],
    out: &[f32],
    lse: &[f32],
    grad: &[f32],
    dqkv: HeadOut<'_>,
    wide: bool,
) {
    let (dims, b, h) = (dqkv.dims(), dqkv.batch(), dqkv.head());
    let bh = b * dims.heads + h;
    let (n, hd, dm) = (dims.n, dims.head_dim, dims.d_model());
    let hdp_cols = ColVecs::covering(hd);
    let hdp = hdp_cols.cols();
    let scale = 1.0 / (hd as f32).sqrt();
    // The same bias as the forward's, so `exp(s - lse)` is its probabilities (the
    // bias is a constant: dS is unchanged, and it has no gradient of its own).
    let slope = plan.alibi().map(|slopes| slopes[h]);
    let lse = &lse[bh * n..(bh + 1) * n];
    let row_of = |q: usize| -> usize { (b * n + q) * dm + h * hd };
    let delta = output_grad_dots::<FMA>(out, grad, n, hd, row_of);
    let kv = HeadKv::new(qkv, dims, b, h, hdp, Pass::Backward);
    // Accumulators with TILE_K rows of slack, so consecutive chunks add in place.
    let mut dq = vec![0.0f32; n * hdp];
    let mut dk = vec![0.0f32; (n + TILE_K) * hdp];
    let mut dv = vec![0.0f32; (n + TILE_K) * hdp];
    let mut sc = Scratch::new(hd, hdp);
    let mut go = vec![0.0f32; TILE_Q * hdp];
    let mut dp = vec![0.0f32; TILE_Q * TILE_K];
    let mut dqt = vec![0.0f32; TILE_Q * hdp];
    let mut dkc = vec![0.0f32; TILE_K * hdp];
    let mut dvc = vec![0.0f32; TILE_K * hdp];
    for tile in plan.passes().iter().flatten() {
        let rows = tile.queries.len();
        let mr = RowBlocks::covering(rows);
        load_queries::<FMA>(&mut sc.q, tile, qkv, dims, b, h, hdp, scale);
        for (r, &query) in tile.queries.iter().enumerate() {
            let g = row_of(query as usize);
            go[r * hdp..r * hdp + hd].copy_from_slice(&grad[g..g + hd]);
        }
        dqt.fill(0.0);
        for (c, keys) in tile.keys.chunks(TILE_K).enumerate() {
            let gathered = (
                &mut sc.kt[..],
                &mut sc.vt[..],
                &mut sc.kr[..],
                &mut sc.vr[..],
            );
            let ck = chunk(&kv, gathered, keys, hd, hdp);
            scores::<FMA>(wide, &mut sc.s, &sc.q, &ck, tile, c, keys, slope, hd, hdp);
            // dP = dO V^T
            gemm_bcast::<FMA, true>(
                wide,
                mr,
                hd,
                KEY_COLS,
                &go,
                (hdp, 1),
                ck.vt,
                ck.ld,
                &mut dp,
                TILE_K,
            );
            probs_and_score_grads::<FMA>(&mut sc.s, &mut dp, &tile.queries, lse, &delta);
            // dV += P^T dO, dK += dS^T Qs: in place for consecutive keys.
            let key_grads = KeyGrads {
                dk: &mut dk,
                dv: &mut dv,
                dkc: &mut dkc,
                dvc: &mut dvc,
            };
            let inputs = (&sc.s[..], &dp[..], &go[..], &sc.q[..]);
            key_grads.add::<FMA>(wide, (rows, hd, hdp_cols), keys, ck.start, inputs);
            // dQ += dS K
            gemm_bcast::<FMA, false>(
                wide,
                mr,
                keys.len(),
                hdp_cols,
                &dp,
                (TILE_K, 1),
                ck.kr,
                hdp,
                &mut dqt,
                hdp,
            );
        }
        scatter_query_grads::<FMA>(&mut dq, &dqt, &tile.queries, (hd, hdp), scale);
    }
    let parts = [&dq[..], &dk[..], &dv[..]];
    dqkv.store(move |j, part| (&parts[part][j * hdp..j * hdp + hd], 1.0));
}

variants!(forward_head, forward_avx512, forward_avx2,
    (plan: &AttentionPlan, qkv: &[f32], o: HeadOut<'_>, lse: &mut [f32], wide: bool));
variants!(backward_head, backward_avx512, backward_avx2,
    (plan: &AttentionPlan, qkv: &[f32], out: &[f32], lse: &[f32], grad: &[f32], dqkv: HeadOut<'_>, wide: bool));

/// Panics unless `plan`'s ALiBi slopes, if any, are one per head of `dims`.
fn check_alibi(plan: &AttentionPlan, dims: Dims, what: &str) {
    if let Some(slopes) = plan.alibi() {
        assert_eq!(
            slopes.len(),
            dims.heads,
            "{what}: the plan's ALiBi slopes are for {} heads, not {}",
            slopes.len(),
            dims.heads
        );
    }
}

/// Attention of every (batch, head) of `qkv` under `plan`: the output
/// `[batch, n, d_model]` and the log-sum-exp `[batch, heads, n]`.
///
/// # Panics
/// When `dims` has no head columns, `qkv` is not `[batch, n, 3 d_model]`, the plan
/// was built for another length or carries ALiBi slopes for another head count.
pub fn forward(plan: &AttentionPlan, qkv: &[f32], dims: Dims) -> (Vec<f32>, Vec<f32>) {
    dims.check();
    let n = dims.n;
    assert_eq!(
        qkv.len(),
        dims.elements(3),
        "fused attention forward: qkv's length is not batch x n x 3 d_model of {dims:?}"
    );
    assert_eq!(
        plan.n(),
        n,
        "fused attention forward: the plan was built for another length"
    );
    check_alibi(plan, dims, "fused attention forward");
    if n == 0 {
        return (Vec::new(), Vec::new());
    }
    let mut out = HeadWriter::new(dims, 1);
    let mut lse = vec![0.0f32; dims.batch * dims.heads * n];
    let variant = simd::current();
    let wide = variant.wide();
    out.heads()
        .zip(lse.par_chunks_mut(n))
        .for_each(|(o, l)| {
            dispatch!(variant; forward_head, forward_avx512, forward_avx2, (plan, qkv, o, l, wide))
        });
    (out.finish(), lse)
}

/// The gradient of `qkv` (`[batch, n, 3 d_model]`) from the forward's output, its
/// log-sum-exp and the output's gradient.
///
/// # Panics
/// When `dims` has no head columns, a length differs from what `dims` gives (`qkv`
/// `[batch, n, 3 d_model]`, `out` and `grad` `[batch, n, d_model]`, `lse`
/// `[batch, heads, n]`), the plan was built for another length or carries ALiBi
/// slopes for another head count.
pub fn backward(
    plan: &AttentionPlan,
    qkv: &[f32],
    out: &[f32],
    lse: &[f32],
    grad: &[f32],
    dims: Dims,
) -> Vec<f32> {
    dims.check();
    let what = "fused attention backward";
    assert_eq!(
        qkv.len(),
        dims.elements(3),
        "{what}: qkv's length is not batch x n x 3 d_model of {dims:?}"
    );
    assert_eq!(
        out.len(),
        dims.elements(1),
        "{what}: out's length is not batch x n x d_model of {dims:?}"
    );
    assert_eq!(
        grad.len(),
        out.len(),
        "{what}: grad's length differs from out's"
    );
    assert_eq!(
        lse.len(),
        dims.batch * dims.heads * dims.n,
        "{what}: lse's length is not batch x heads x n of {dims:?}"
    );
    assert_eq!(
        plan.n(),
        dims.n,
        "{what}: the plan was built for another length"
    );
    check_alibi(plan, dims, what);
    let variant = simd::current();
    let wide = variant.wide();
    let mut dqkv = HeadWriter::new(dims, 3);
    dqkv.heads().for_each(|o| {
        dispatch!(variant; backward_head, backward_avx512, backward_avx2,
            (plan, qkv, out, lse, grad, o, wide))
    });
    dqkv.finish()
}
