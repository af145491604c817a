//! A selective state-space layer in Mamba's form (Gu & Dao 2023, S6): per channel
//! `c` and state `k`, `h_t = exp(Δ_t A) h_{t-1} + Δ_t B_t x_t`, `y_t = C_t h_t + D x_t`,
//! with the step `Δ_t` (per channel), `B_t` and `C_t` computed from the input (the
//! selection), `A = -exp(A_log)` per channel and state; the output gated by SiLU(z).
//! As in Mamba's block, `x` is first a 4-tap causal convolution of the input's
//! projection, through SiLU; the mixing matrix is the scan's, over those `x`.
//!
//! The scan is computed exactly, token by token ([`SelectiveSsm::mixed`]). For a
//! given input the layer is also, per channel, the lower-triangular matrix
//! `M_c[t, s] = sum_k C_t[k] exp(A[c, k] (S_t - S_s)) B_s[k] Δ_s` with `S` the running
//! sum of `Δ` ("The Hidden Attention of Mamba Models", Ali et al. 2024), plus `D` on
//! the diagonal, times the gate: [`SelectiveSsm::mixing`] materialises it.

use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::{silu, softplus};
use burn::tensor::{Bool, Device, Distribution, Int, Tensor};

use crate::model::fused::linear;

/// A selective SSM layer.
#[derive(Module, Debug)]
pub struct SelectiveSsm {
    /// `d_model` → `[x, z]`.
    input: Linear,
    /// `x` → Δ before the softplus, per channel.
    step: Linear,
    /// `x` → `[B, C]`, `state` each.
    selection: Linear,
    /// `[d_model, state]`: `A = -exp(a_log)`.
    a_log: Param<Tensor<2>>,
    /// `[d_model]`: the skip.
    skip: Param<Tensor<1>>,
    /// `[d_model, SHORT_TAPS]`: the causal convolution before the scan.
    short: Param<Tensor<2>>,
    proj: Linear,
    state: usize,
}

/// Taps of the convolution before the scan (Mamba's `d_conv`).
const SHORT_TAPS: usize = 4;

/// What the scan needs of an input: `x` and `z` `[batch, seq, d]`, `Δ` `[batch, seq, d]`,
/// `B` and `C` `[batch, seq, state]`.
pub struct Selected {
    pub x: Tensor<3>,
    pub z: Tensor<3>,
    pub delta: Tensor<3>,
    pub b: Tensor<3>,
    pub c: Tensor<3>,
}

impl SelectiveSsm {
    /// Mamba's initialisation: `A[c, k] = -(k + 1)`, `D = 1`, Δ's bias such that
    /// softplus gives steps spread log-uniformly over 0.001..0.1.
    pub fn new(d_model: usize, state: usize, device: &Device) -> Self {
        let a: Vec<f32> = (0..d_model)
            .flat_map(|_| (1..=state).map(|k| (k as f32).ln()))
            .collect();
        let a_log = Tensor::<1>::from_floats(a.as_slice(), device).reshape([d_model, state]);
        let mut step = LinearConfig::new(d_model, d_model).init(device);
        let uniform = Tensor::<1>::random([d_model], Distribution::Uniform(0.0, 1.0), device);
        let dt = (uniform * (0.1f64.ln() - 0.001f64.ln()) + 0.001f64.ln()).exp();
        // The inverse of softplus: dt + log(1 - exp(-dt)).
        let bias = dt.clone() + (dt.neg().exp().neg() + 1.0).log();
        step.bias = Some(Param::from_tensor(bias));
        Self {
            input: LinearConfig::new(d_model, 2 * d_model).init(device),
            step,
            selection: LinearConfig::new(d_model, 2 * state).init(device),
            a_log: Param::from_tensor(a_log),
            skip: Param::from_tensor(Tensor::ones([d_model], device)),
            // PyTorch's Conv1d initialisation, as Mamba's: U(-1/sqrt(k), 1/sqrt(k)).
            short: Param::from_tensor(Tensor::random(
                [d_model, SHORT_TAPS],
                Distribution::Uniform(-0.5, 0.5),
                device,
            )),
            proj: LinearConfig::new(d_model, d_model).init(device),
            state,
        }
    }

    /// `x`, `z`, Δ, B and C of an input `[batch, seq, d_model]`.
    pub fn select(&self, input: Tensor<3>) -> Selected {
        let [batch, seq, d] = input.dims();
        let both = linear(&self.input, input);
        let x = silu(super::conv::convolve(
            both.clone().slice([0..batch, 0..seq, 0..d]),
            self.short.val(),
        ));
        let z = both.slice([0..batch, 0..seq, d..2 * d]);
        let delta = softplus(linear(&self.step, x.clone()), 1.0);
        let bc = linear(&self.selection, x.clone());
        let n = self.state;
        Selected {
            b: bc.clone().slice([0..batch, 0..seq, 0..n]),
            c: bc.slice([0..batch, 0..seq, n..2 * n]),
            x,
            z,
            delta,
        }
    }

    /// `A` `[d_model, state]`, negative.
    pub fn a(&self) -> Tensor<2> {
        self.a_log.val().exp().neg()
    }

    /// The scan, token by token: `y` before the gate, `[batch, seq, d_model]`.
    pub fn scan(&self, s: &Selected) -> Tensor<3> {
        let skip = s.x.clone() * self.skip.val().unsqueeze::<3>();
        match crate::model::fused::selective_scan(&s.delta, &s.x, &s.b, &s.c, &self.a()) {
            Some(y) => y + skip,
            None => self.scan_composed(s) + skip,
        }
    }

    /// [`Self::scan`] in burn's ops, without the skip: every step a slice, product and
    /// sum (what wgpu and remote devices run, and the fused scan's reference).
    pub fn scan_composed(&self, s: &Selected) -> Tensor<3> {
        let [batch, seq, d] = s.x.dims();
        let n = self.state;
        let a = self.a().unsqueeze::<4>(); // [1, 1, d, n]
        // Every step's decay and input at once: [batch, seq, d, n].
        let decay = (s.delta.clone().unsqueeze_dim::<4>(3) * a).exp();
        let drive = (s.delta.clone() * s.x.clone()).unsqueeze_dim::<4>(3)
            * s.b.clone().unsqueeze_dim::<4>(2);
        let c = s.c.clone().unsqueeze_dim::<4>(2); // [batch, seq, 1, n]
        let mut h = Tensor::<3>::zeros([batch, d, n], &s.x.device());
        let mut ys = Vec::with_capacity(seq);
        for t in 0..seq {
            let at = |m: &Tensor<4>, w: usize| {
                m.clone()
                    .slice([0..batch, t..t + 1, 0..w, 0..n])
                    .squeeze_dim::<3>(1)
            };
            h = at(&decay, d) * h + at(&drive, d);
            ys.push((h.clone() * at(&c, 1)).sum_dim(2).swap_dims(1, 2));
        }
        Tensor::cat(ys, 1)
    }

    /// The layer's output before its projection: the scan gated by SiLU(z).
    pub fn mixed(&self, input: Tensor<3>) -> Tensor<3> {
        let s = self.select(input);
        self.scan(&s) * silu(s.z)
    }

    /// The mixing matrix per channel `[batch, d_model, seq, seq]` (the gate and the
    /// skip included) and the values it mixes `[batch, d_model, seq, 1]` (`x`): their
    /// product is [`Self::mixed`]. Costs `batch x d x seq^2` floats per state.
    pub fn mixing(&self, input: Tensor<3>) -> (Tensor<4>, Tensor<4>) {
        let s = self.select(input);
        let [batch, seq, d] = s.x.dims();
        let device = s.x.device();
        let a = self.a();
        // Running sums of Δ per channel: [batch, d, seq].
        let sums = s.delta.clone().cumsum(1).swap_dims(1, 2);
        let gap = sums.clone().unsqueeze_dim::<4>(3) - sums.unsqueeze_dim::<4>(2); // S_t - S_s
        let below = Tensor::<2, Bool>::tril_mask([seq, seq], 0, &device).unsqueeze::<4>();
        // Above the diagonal the gap is negative: masked before exp can overflow.
        let gap = gap.mask_fill(below.clone(), 0.0);
        let delta_s = s.delta.clone().swap_dims(1, 2).unsqueeze_dim::<4>(2); // [b, d, 1, seq]
        let mut m = Tensor::<4>::zeros([batch, d, seq, seq], &device);
        for k in 0..self.state {
            let ak = a.clone().slice([0..d, k..k + 1]).reshape([1, d, 1, 1]);
            let ck =
                s.c.clone()
                    .slice([0..batch, 0..seq, k..k + 1])
                    .reshape([batch, 1, seq, 1]);
            let bk =
                s.b.clone()
                    .slice([0..batch, 0..seq, k..k + 1])
                    .reshape([batch, 1, 1, seq]);
            m = m + (gap.clone() * ak).exp() * ck * bk;
        }
        let m = (m * delta_s).mask_fill(below, 0.0);
        let eye = Tensor::<1, Int>::arange(0..seq as i64, &device);
        let diagonal = eye
            .clone()
            .reshape([seq, 1])
            .equal(eye.reshape([1, seq]))
            .float()
            .unsqueeze::<4>();
        let skip = self.skip.val().reshape([1, d, 1, 1]);
        let gate = silu(s.z).swap_dims(1, 2).unsqueeze_dim::<4>(3); // [b, d, seq, 1]
        let m = (m + diagonal * skip) * gate;
        (m, s.x.swap_dims(1, 2).unsqueeze_dim::<4>(3))
    }

    pub fn project(&self, x: Tensor<3>) -> Tensor<3> {
        linear(&self.proj, x)
    }

    pub fn state(&self) -> usize {
        self.state
    }
}
