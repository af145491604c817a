//! Linear attention (Katharopoulos et al. 2020: feature map elu(x) + 1) and Based
//! (Arora et al. 2024: the 2nd-order Taylor map of exp(q.k) on projected q and k, plus
//! exact softmax attention over a sliding window). Both are computed in their parallel
//! form, the normalised matrix `phi(q) phi(k)^T` (masked causal with `model.causal`)
//! times the values: exact, and the layer's mixing matrix at once. Their recurrent
//! forms, which carry a `d_k x d_v` state per head, are [`linear_recurrent`] and
//! [`taylor_recurrent`], for the tests.

use std::sync::{Arc, Mutex, PoisonError};

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::{elu, softmax};
use burn::tensor::{Bool, Device, Tensor};

use crate::attention::AttentionPattern;
use crate::model::fused::{AttentionPlan, linear};

/// Added to each row's normaliser.
pub const EPS: f64 = 1e-6;

/// q, k and v projections split into heads, and the output projection.
#[derive(Module, Debug)]
pub struct HeadProjections {
    qkv: Linear,
    proj: Linear,
    heads: usize,
}

impl HeadProjections {
    pub fn new(d_model: usize, heads: usize, device: &Device) -> Self {
        Self {
            qkv: LinearConfig::new(d_model, 3 * d_model).init(device),
            proj: LinearConfig::new(d_model, d_model).init(device),
            heads,
        }
    }

    /// `[batch, seq, d_model]` → q, k, v as `[batch, heads, seq, head_dim]`.
    pub fn split(&self, x: Tensor<3>) -> [Tensor<4>; 3] {
        self.split_packed(self.packed(x))
    }

    /// The packed projection q|k|v, `[batch, seq, 3 d_model]` (what the fused
    /// attention kernel reads).
    pub fn packed(&self, x: Tensor<3>) -> Tensor<3> {
        linear(&self.qkv, x)
    }

    /// A packed q|k|v split into heads.
    pub fn split_packed(&self, qkv: Tensor<3>) -> [Tensor<4>; 3] {
        let [batch, seq, width] = qkv.dims();
        let d_model = width / 3;
        let head_dim = d_model / self.heads;
        [0, 1, 2].map(|part| {
            qkv.clone()
                .slice([0..batch, 0..seq, part * d_model..(part + 1) * d_model])
                .reshape([batch, seq, self.heads, head_dim])
                .swap_dims(1, 2)
        })
    }

    /// Heads `[batch, heads, seq, head_dim]` → `[batch, seq, d_model]`.
    pub fn merge(out: Tensor<4>) -> Tensor<3> {
        let [batch, heads, seq, head_dim] = out.dims();
        out.swap_dims(1, 2).reshape([batch, seq, heads * head_dim])
    }

    /// The output projection.
    pub fn project(&self, x: Tensor<3>) -> Tensor<3> {
        linear(&self.proj, x)
    }

    pub fn heads(&self) -> usize {
        self.heads
    }
}

/// `scores` (non-negative) masked causal when `causal`, each row divided by its sum.
fn normalised(scores: Tensor<4>, causal: bool) -> Tensor<4> {
    let [_, _, n, _] = scores.dims();
    let scores = if causal {
        let above = Tensor::<2, Bool>::tril_mask([n, n], 0, &scores.device());
        scores.mask_fill(above.unsqueeze::<4>(), 0.0)
    } else {
        scores
    };
    let total = scores.clone().sum_dim(3) + EPS;
    scores / total
}

/// elu(x) + 1: positive everywhere.
pub fn elu_feature(x: Tensor<4>) -> Tensor<4> {
    elu(x, 1.0) + 1.0
}

/// Linear attention: per head, row-normalised `phi(q) phi(k)^T`.
#[derive(Module, Debug)]
pub struct LinearAttention {
    heads: HeadProjections,
    causal: bool,
}

impl LinearAttention {
    pub fn new(d_model: usize, heads: usize, causal: bool, device: &Device) -> Self {
        Self {
            heads: HeadProjections::new(d_model, heads, device),
            causal,
        }
    }

    /// The mixing matrix `[batch, heads, seq, seq]` and the values it mixes
    /// `[batch, heads, seq, head_dim]`: their product is the heads' output.
    pub fn mixing(&self, x: Tensor<3>) -> (Tensor<4>, Tensor<4>) {
        let [q, k, v] = self.heads.split(x);
        let scores = elu_feature(q).matmul(elu_feature(k).swap_dims(2, 3));
        (normalised(scores, self.causal), v)
    }

    /// The layer's output before its projection, `[batch, seq, d_model]`: by prefix
    /// sums, never an `n x n` matrix ([`attend`]).
    pub fn mixed(&self, x: Tensor<3>) -> Tensor<3> {
        let [q, k, v] = self.heads.split(x);
        HeadProjections::merge(attend(elu_feature(q), elu_feature(k), v, self.causal))
    }

    pub fn project(&self, x: Tensor<3>) -> Tensor<3> {
        self.heads.project(x)
    }

    pub fn heads(&self) -> usize {
        self.heads.heads()
    }

    /// q, k, v of `x` (for the recurrent reference).
    pub fn qkv(&self, x: Tensor<3>) -> [Tensor<4>; 3] {
        self.heads.split(x)
    }
}

/// Based: the Taylor-map linear attention on projected q and k, averaged with exact
/// softmax attention over a window of `window` positions.
#[derive(Module, Debug)]
pub struct Based {
    heads: HeadProjections,
    /// q and k projected to `feature_dim` per head for the Taylor map.
    features: Linear,
    feature_dim: usize,
    window: usize,
    causal: bool,
}

impl Based {
    pub fn new(
        d_model: usize,
        heads: usize,
        feature_dim: usize,
        window: usize,
        causal: bool,
        device: &Device,
    ) -> Self {
        Self {
            heads: HeadProjections::new(d_model, heads, device),
            features: LinearConfig::new(d_model, 2 * heads * feature_dim).init(device),
            feature_dim,
            window,
            causal,
        }
    }

    /// The projected q and k of the Taylor part, `[batch, heads, seq, feature_dim]`.
    pub fn feature_qk(&self, x: Tensor<3>) -> (Tensor<4>, Tensor<4>) {
        let [batch, seq, _] = x.dims();
        let (h, f) = (self.heads.heads(), self.feature_dim);
        let both = linear(&self.features, x);
        let part = |i: usize| {
            both.clone()
                .slice([0..batch, 0..seq, i * h * f..(i + 1) * h * f])
                .reshape([batch, seq, h, f])
                .swap_dims(1, 2)
        };
        (part(0), part(1))
    }

    /// The mixing matrix (the mean of the Taylor part's and the window's) and the
    /// values it mixes.
    pub fn mixing(&self, x: Tensor<3>) -> (Tensor<4>, Tensor<4>) {
        let [q, k, v] = self.heads.split(x.clone());
        let (fq, fk) = self.feature_qk(x);
        let s = fq.matmul(fk.swap_dims(2, 3)) / (self.feature_dim as f64).sqrt();
        // 1 + s + s^2 / 2 = ((s + 1)^2 + 1) / 2 > 0.
        let taylor = normalised(s.clone().powf_scalar(2.0) / 2.0 + s + 1.0, self.causal);
        let [_, _, n, head_dim] = q.dims();
        let scores = q.matmul(k.swap_dims(2, 3)) / (head_dim as f64).sqrt();
        let window = softmax(
            scores.mask_fill(
                window_blocked(n, self.window, self.causal, &v.device()),
                -1e30,
            ),
            3,
        );
        ((taylor + window) / 2.0, v)
    }

    /// The layer's output before its projection: the Taylor part by prefix sums
    /// ([`attend`]), the window by masked softmax.
    pub fn mixed(&self, x: Tensor<3>) -> Tensor<3> {
        let qkv = self.heads.packed(x.clone());
        let [q, k, v] = self.heads.split_packed(qkv.clone());
        let (fq, fk) = self.feature_qk(x);
        let taylor = HeadProjections::merge(attend(
            taylor_features(fq),
            taylor_features(fk),
            v.clone(),
            self.causal,
        ));
        let [_, _, n, head_dim] = q.dims();
        // The window by the fused tile kernel where it runs (O(n w), no n x n matrix).
        let fused = window_plan(n, self.window, self.causal)
            .and_then(|plan| crate::model::fused::fused_attention(qkv, &plan, self.heads.heads()));
        let window = match fused {
            Some(out) => out,
            None => {
                let scores = q.matmul(k.swap_dims(2, 3)) / (head_dim as f64).sqrt();
                let blocked = window_blocked(n, self.window, self.causal, &v.device());
                HeadProjections::merge(softmax(scores.mask_fill(blocked, -1e30), 3).matmul(v))
            }
        };
        (taylor + window) / 2.0
    }

    pub fn project(&self, x: Tensor<3>) -> Tensor<3> {
        self.heads.project(x)
    }

    pub fn heads(&self) -> usize {
        self.heads.heads()
    }

    pub fn feature_dim(&self) -> usize {
        self.feature_dim
    }
}

/// Linear attention of featurised `fq`, `fk` `[batch, heads, n, f]` over `v`
/// `[batch, heads, n, e]`, each row normalised: causal by prefix sums (the fused CPU
/// op, else the parallel form), otherwise by the global sums `phi(q) (phi(k)^T v) /
/// (phi(q) . sum phi(k))`, O(n) either way on the CPU.
pub fn attend(fq: Tensor<4>, fk: Tensor<4>, v: Tensor<4>, causal: bool) -> Tensor<4> {
    if !causal {
        let kv = fk.clone().swap_dims(2, 3).matmul(v);
        let total = fk.sum_dim(2);
        let denominator = (fq.clone() * total).sum_dim(3) + EPS;
        return fq.matmul(kv) / denominator;
    }
    if let Some(out) = crate::model::fused::prefix_attention(&fq, &fk, &v) {
        return out;
    }
    normalised(fq.matmul(fk.swap_dims(2, 3)), true).matmul(v)
}

/// The fused kernel's tile plan of a window of `window` at length `n` (a local
/// pattern), built once per `(n, window, causal)` and kept; `None` where the fused
/// kernel is off.
fn window_plan(n: usize, window: usize, causal: bool) -> Option<Arc<AttentionPlan>> {
    type Plans = Vec<((usize, usize, bool), Arc<AttentionPlan>)>;
    static PLANS: Mutex<Plans> = Mutex::new(Vec::new());
    if !crate::model::fused::enabled() {
        return None;
    }
    let key = (n, window, causal);
    let mut plans = PLANS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, plan)) = plans.iter().find(|(k, _)| *k == key) {
        return Some(plan.clone());
    }
    let pattern = AttentionPattern::Local { window };
    let plan = Arc::new(AttentionPlan::new(&pattern, &pattern.mask(n, causal, 0)).ok()?);
    if plans.len() >= 16 {
        plans.remove(0);
    }
    plans.push((key, plan.clone()));
    Some(plan)
}

/// The pairs the window hides: `|i - j| > window`, and `j > i` when causal.
fn window_blocked(n: usize, window: usize, causal: bool, device: &Device) -> Tensor<4, Bool> {
    let w = window as i64;
    let far_below = Tensor::<2, Bool>::triu_mask([n, n], -w, device);
    let far_above = if causal {
        Tensor::<2, Bool>::tril_mask([n, n], 0, device)
    } else {
        Tensor::<2, Bool>::tril_mask([n, n], w, device)
    };
    // triu_mask(-w) is true below the band (j < i - w), tril_mask above it.
    far_below.bool_or(far_above).unsqueeze::<4>()
}

/// The recurrent form of causal linear attention with feature map `phi` on already
/// featurised `fq`, `fk` `[batch, heads, seq, f]` and values `v`: the state
/// `sum_j phi(k_j) v_j^T` and normaliser `sum_j phi(k_j)` carried token by token.
/// Returns `[batch, heads, seq, head_dim]`.
pub fn linear_recurrent(fq: Tensor<4>, fk: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
    let [batch, heads, seq, f] = fq.dims();
    let head_dim = v.dims()[3];
    let device = fq.device();
    let mut state = Tensor::<4>::zeros([batch, heads, f, head_dim], &device);
    let mut norm = Tensor::<4>::zeros([batch, heads, 1, f], &device);
    let mut out = Vec::with_capacity(seq);
    for t in 0..seq {
        let q = fq.clone().slice([0..batch, 0..heads, t..t + 1, 0..f]);
        let k = fk.clone().slice([0..batch, 0..heads, t..t + 1, 0..f]);
        let vt = v.clone().slice([0..batch, 0..heads, t..t + 1, 0..head_dim]);
        state = state + k.clone().swap_dims(2, 3).matmul(vt);
        norm = norm + k;
        let denominator = (q.clone() * norm.clone()).sum_dim(3) + EPS;
        out.push(q.matmul(state.clone()) / denominator);
    }
    Tensor::cat(out, 2)
}

/// Based's Taylor feature map: `[1, x / f^(1/4), vec(x x^T) / (sqrt(2) sqrt(f))]`, so
/// that `phi(q).phi(k) = 1 + s + s^2 / 2` with `s = q.k / sqrt(f)`.
pub fn taylor_features(x: Tensor<4>) -> Tensor<4> {
    let [batch, heads, seq, f] = x.dims();
    let scale = (f as f64).powf(0.25);
    let first = x.clone() / scale;
    let outer = x.clone().unsqueeze_dim::<5>(4) * x.unsqueeze_dim::<5>(3);
    let second = outer.reshape([batch, heads, seq, f * f]) / (2f64.sqrt() * (f as f64).sqrt());
    let ones = Tensor::<4>::ones([batch, heads, seq, 1], &first.device());
    Tensor::cat(vec![ones, first, second], 3)
}

/// The recurrent form of Based's Taylor part (for the tests).
pub fn taylor_recurrent(fq: Tensor<4>, fk: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
    linear_recurrent(taylor_features(fq), taylor_features(fk), v)
}
