//! A gated long convolution (H3 / BaseConv; Fu et al. 2023, Arora et al. 2023): the
//! input projected to `u` and a gate `g`; per channel, `u` convolved causally with a
//! learned filter as long as the training sequence (taps beyond it are zero, so the
//! layer runs at any length); the result times `g` (BaseConv's linear gate). With
//! `short`, a 3-tap causal convolution of `u` comes first, as H3's shift SSM does.
//!
//! For a given input the layer is, per channel `c`, the matrix
//! `M_c[t, s] = g_c[t] h_c[t - s]` (a Toeplitz matrix times the gate), which is how it
//! is computed here: exactly, and its mixing matrix at once.

use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Distribution, Int, Tensor};

use crate::model::fused::linear;

/// Taps of the short convolution.
const SHORT_TAPS: usize = 3;

/// A gated long convolution.
#[derive(Module, Debug)]
pub struct GatedConv {
    /// `d_model` → `[u, g]`.
    input: Linear,
    /// `[d_model, max_len]`: tap `k` of each channel's filter.
    filter: Param<Tensor<2>>,
    /// `[d_model, SHORT_TAPS]` with `short`.
    short: Option<Param<Tensor<2>>>,
    proj: Linear,
}

impl GatedConv {
    /// Filters of `max_len` taps initialised decaying (`exp(-k / tau_c)` times a
    /// random sign and scale, `tau_c` spread over channels from 1 to `max_len`), so a
    /// fresh layer mixes mostly nearby tokens and some far ones.
    pub fn new(d_model: usize, max_len: usize, short: bool, device: &Device) -> Self {
        let len = max_len.max(1);
        let taps = Tensor::<1, Int>::arange(0..len as i64, device)
            .float()
            .reshape([1, len]);
        let tau: Vec<f32> = (0..d_model)
            .map(|c| (len as f32).powf(c as f32 / d_model.max(2).saturating_sub(1) as f32))
            .collect();
        let tau = Tensor::<1>::from_floats(tau.as_slice(), device).reshape([d_model, 1]);
        let decay = (taps.neg() / tau).exp();
        let noise = Tensor::<2>::random([d_model, len], Distribution::Normal(0.0, 1.0), device);
        let filter = decay * noise / (len as f64).sqrt().max(1.0);
        let short = short.then(|| {
            let identity = Tensor::<2>::zeros([d_model, SHORT_TAPS], device)
                .slice_assign([0..d_model, 0..1], Tensor::ones([d_model, 1], device));
            let noise = Tensor::<2>::random(
                [d_model, SHORT_TAPS],
                Distribution::Normal(0.0, 0.1),
                device,
            );
            Param::from_tensor(identity + noise)
        });
        Self {
            input: LinearConfig::new(d_model, 2 * d_model).init(device),
            filter: Param::from_tensor(filter),
            short,
            proj: LinearConfig::new(d_model, d_model).init(device),
        }
    }

    /// `[u, g]`, each `[batch, seq, d_model]`.
    fn split(&self, x: Tensor<3>) -> (Tensor<3>, Tensor<3>) {
        let [batch, seq, d_model] = x.dims();
        let both = linear(&self.input, x);
        (
            both.clone().slice([0..batch, 0..seq, 0..d_model]),
            both.slice([0..batch, 0..seq, d_model..2 * d_model]),
        )
    }

    /// The Toeplitz matrices of the filters at length `n`, `[d_model, n, n]`: entry
    /// `[c, t, s]` is tap `t - s` of channel `c` (0 above the diagonal and beyond the
    /// filter's taps), the short convolution folded in.
    pub fn toeplitz(&self, n: usize, device: &Device) -> Tensor<3> {
        let long = toeplitz_of(self.filter.val(), n, device);
        match &self.short {
            Some(short) => long.matmul(toeplitz_of(short.val(), n, device)),
            None => long,
        }
    }

    /// The mixing matrix per channel `[batch, d_model, seq, seq]` (the gate times the
    /// Toeplitz matrix) and the values it mixes `[batch, d_model, seq, 1]` (`u`).
    pub fn mixing(&self, x: Tensor<3>) -> (Tensor<4>, Tensor<4>) {
        let [_, seq, _] = x.dims();
        let device = x.device();
        let (u, g) = self.split(x);
        let toeplitz = self.toeplitz(seq, &device).unsqueeze::<4>();
        // Row t of channel c scaled by g[t, c].
        let gate = g.swap_dims(1, 2).unsqueeze_dim::<4>(3);
        (toeplitz * gate, u.swap_dims(1, 2).unsqueeze_dim::<4>(3))
    }

    /// The layer's output before its projection, `[batch, seq, d_model]`: the short
    /// and the long convolution by the fused CPU op where it runs (memory like
    /// `n x d`), else by the Toeplitz matrices.
    pub fn mixed(&self, x: Tensor<3>) -> Tensor<3> {
        let (u, g) = self.split(x);
        let u = match &self.short {
            Some(short) => convolve(u, short.val()),
            None => u,
        };
        convolve(u, self.filter.val()) * g
    }

    pub fn project(&self, x: Tensor<3>) -> Tensor<3> {
        linear(&self.proj, x)
    }

    /// The filters (and the short filter) as they are, for the tests' direct
    /// convolution: `(long [d, taps], short [d, 3])`.
    pub fn filters(&self) -> (Tensor<2>, Option<Tensor<2>>) {
        (self.filter.val(), self.short.as_ref().map(Param::val))
    }

    /// `[u, g]` of `x` (for the tests).
    pub fn inputs(&self, x: Tensor<3>) -> (Tensor<3>, Tensor<3>) {
        self.split(x)
    }
}

/// `u` `[batch, n, d]` convolved causally with each channel's `taps` `[d, taps]`.
pub(super) fn convolve(u: Tensor<3>, taps: Tensor<2>) -> Tensor<3> {
    if let Some(y) = crate::model::fused::causal_conv(&u, &taps) {
        return y;
    }
    let [_, n, _] = u.dims();
    let device = u.device();
    // One product per channel, the batch as its columns: [d, n, n] x [d, n, batch].
    toeplitz_of(taps, n, &device)
        .matmul(u.permute([2, 1, 0]))
        .permute([2, 1, 0])
}

/// `[channels, n, n]` with entry `[c, t, s] = taps[c, t - s]` for `0 <= t - s < taps`,
/// else 0.
fn toeplitz_of(taps: Tensor<2>, n: usize, device: &Device) -> Tensor<3> {
    let [channels, len] = taps.dims();
    // Tap index t - s, clamped into 0..=n; index `n` reads an appended zero, which
    // stands for every tap above the diagonal or beyond the filter.
    let width = n.max(len) + 1;
    let padded = Tensor::cat(
        vec![taps, Tensor::zeros([channels, width - len], device)],
        1,
    );
    let index: Vec<i64> = (0..n)
        .flat_map(|t| {
            (0..n).map(move |s| {
                if t >= s && t - s < len {
                    (t - s) as i64
                } else {
                    (width - 1) as i64
                }
            })
        })
        .collect();
    let index = Tensor::<1, Int>::from_ints(index.as_slice(), device)
        .reshape([1, n * n])
        .repeat_dim(0, channels);
    padded.gather(1, index).reshape([channels, n, n])
}
