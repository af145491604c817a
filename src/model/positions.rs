//! How a model knows where each token is: [`Positions`], resolved once from the plan
//! (`model.positions`) and handed to every forward pass inside [`super::Mixing`]; the
//! fixed sinusoids added to the tokens' embeddings, and rotary embeddings (RoPE)
//! applied to q and k. (ALiBi's slopes live in [`super::alibi`]; a learned table is a
//! parameter of the model, which owns it.)
//!
//! RoPE (Su et al. 2021, the GPT-NeoX "rotate half" layout): a head's dimensions are
//! split into halves `x1`, `x2`; pair `i` (dimension `i` with `i + head_dim / 2`) turns
//! by `position * base^(-2i / head_dim)`. Turning q and k by their own positions makes
//! their dot product depend on the offset only. Applied to q and k before the
//! attention kernel, so the fused kernel, the block-sparse and the masked-dense paths
//! see the same rotated inputs. On the fused kernel's path ([`rope_qkv`], CPU backend)
//! it is one fused operation with its own backward ([`super::fused::fused_rope_qkv`]);
//! elsewhere (wgpu, remote, the split-heads paths) it is composed from burn ops and
//! autodiff derives the backward. Both compute the same values.

use burn::tensor::{Device, Tensor, TensorData};

use super::alibi::Alibi;
use crate::config::{ModelConfig, PositionScheme};

/// The position scheme of a run, with what it needs at run time (RoPE's base,
/// ALiBi's slopes), decided once per run from `model.positions`: no other code
/// reads that field to decide how positions enter.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Positions {
    /// A learned table `[seq_len, d_model]` added to the embeddings (the model owns
    /// the table: it is a parameter).
    #[default]
    Learned,
    /// The fixed sinusoids added to the embeddings ([`sinusoidal_table`]).
    Sinusoidal,
    /// q and k turned by RoPE with this base before every attention kernel.
    Rope {
        /// The longest wavelength's scale (10000 in Su et al.).
        base: f64,
    },
    /// Every score biased per head by `-m_h * |i - j|` ([`Alibi`]), inside the kernels.
    Alibi(Alibi),
    /// None: order enters only through causal masks.
    None,
}

impl Positions {
    /// The scheme `model` asks for, with ALiBi's slopes for its heads.
    pub fn of(model: &ModelConfig) -> Self {
        match model.positions {
            PositionScheme::Learned => Self::Learned,
            PositionScheme::Sinusoidal => Self::Sinusoidal,
            PositionScheme::Rope => Self::Rope {
                base: model.rope_base,
            },
            PositionScheme::Alibi => Self::Alibi(Alibi::new(model.heads)),
            PositionScheme::None => Self::None,
        }
    }

    /// Whether the model carries a learned position table.
    pub fn is_learned(&self) -> bool {
        matches!(self, Self::Learned)
    }

    /// The fixed table added to the embeddings, `[seq, d_model]` (`None` unless
    /// sinusoidal).
    pub fn added_table(&self, seq: usize, d_model: usize, device: &Device) -> Option<Tensor<2>> {
        matches!(self, Self::Sinusoidal).then(|| sinusoidal_table(seq, d_model, device))
    }

    /// RoPE's base when the model is rotary.
    pub fn rope_base(&self) -> Option<f64> {
        match self {
            Self::Rope { base } => Some(*base),
            _ => None,
        }
    }

    /// ALiBi's slopes when the model uses them.
    pub fn alibi(&self) -> Option<&Alibi> {
        match self {
            Self::Alibi(a) => Some(a),
            _ => None,
        }
    }

    /// ALiBi's bias of queries `0..rows` against keys `0..cols`, `[1, heads, rows,
    /// cols]` on `device` (`None` without ALiBi): what the composed paths add to the
    /// scores. Built per call from two position ranges; never stored at `n x n`.
    pub fn bias(&self, rows: usize, cols: usize, device: &Device) -> Option<Tensor<4>> {
        self.alibi().map(|a| a.bias_tensor(rows, cols, device))
    }
}

/// The sinusoidal table `[seq, d_model]`: `sin(pos / 10000^(2i / d))` at dimension
/// `2i`, `cos` at `2i + 1` (Vaswani et al. 2017).
pub fn sinusoidal_table(seq: usize, d_model: usize, device: &Device) -> Tensor<2> {
    let mut values = vec![0.0f32; seq * d_model];
    for pos in 0..seq {
        for i in (0..d_model).step_by(2) {
            let angle = pos as f64 / 10_000f64.powf(i as f64 / d_model as f64);
            values[pos * d_model + i] = angle.sin() as f32;
            if i + 1 < d_model {
                values[pos * d_model + i + 1] = angle.cos() as f32;
            }
        }
    }
    Tensor::from_data(TensorData::new(values, [seq, d_model]), device)
}

/// RoPE's cosines and sines `[seq, head_dim]` for positions `0..seq` (each pair's
/// angle repeated in both halves).
pub fn rope_tables(
    seq: usize,
    head_dim: usize,
    base: f64,
    device: &Device,
) -> (Tensor<2>, Tensor<2>) {
    let half = head_dim / 2;
    let mut cos = vec![0.0f32; seq * head_dim];
    let mut sin = vec![0.0f32; seq * head_dim];
    for pos in 0..seq {
        for i in 0..half {
            let angle = super::fused::rope_angle(pos, i, head_dim, base);
            for d in [i, i + half] {
                cos[pos * head_dim + d] = angle.cos() as f32;
                sin[pos * head_dim + d] = angle.sin() as f32;
            }
        }
    }
    let table = |v: Vec<f32>| Tensor::from_data(TensorData::new(v, [seq, head_dim]), device);
    (table(cos), table(sin))
}

/// `x` turned by RoPE, its last axis a head's dimensions; `cos` and `sin` are
/// [`rope_tables`] reshaped to broadcast over `x` (positions on `x`'s position axis).
pub fn rotate(x: Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>) -> Tensor<4> {
    let dims = x.dims();
    let half = dims[3] / 2;
    let x1 = x
        .clone()
        .slice([0..dims[0], 0..dims[1], 0..dims[2], 0..half]);
    let x2 = x
        .clone()
        .slice([0..dims[0], 0..dims[1], 0..dims[2], half..dims[3]]);
    let turned = Tensor::cat(vec![x2.neg(), x1], 3);
    x * cos.clone() + turned * sin.clone()
}

/// `[batch, heads, seq, head_dim]` q and k turned by their positions (one table for
/// both).
pub fn rope_heads(q: Tensor<4>, k: Tensor<4>, base: f64) -> (Tensor<4>, Tensor<4>) {
    let [_, _, seq, head_dim] = q.dims();
    let (cos, sin) = rope_tables(seq, head_dim, base, &q.device());
    let shape = [1, 1, seq, head_dim];
    let (cos, sin) = (cos.reshape(shape), sin.reshape(shape));
    (rotate(q, &cos, &sin), rotate(k, &cos, &sin))
}

/// The fused qkv projection `[batch, seq, 3 * d_model]` with its q and k parts turned
/// by their positions (v unchanged), for the fused kernel: one fused operation on the
/// CPU backend, [`rope_qkv_composed`] elsewhere.
pub fn rope_qkv(qkv: Tensor<3>, heads: usize, base: f64) -> Tensor<3> {
    match super::fused::fused_rope_qkv(&qkv, heads, base) {
        Some(turned) => turned,
        None => rope_qkv_composed(qkv, heads, base),
    }
}

/// [`rope_qkv`] composed from burn ops (any device), its backward derived by autodiff.
pub fn rope_qkv_composed(qkv: Tensor<3>, heads: usize, base: f64) -> Tensor<3> {
    let [batch, seq, three_d] = qkv.dims();
    let d_model = three_d / 3;
    let head_dim = d_model / heads;
    let (cos, sin) = rope_tables(seq, head_dim, base, &qkv.device());
    let shape = [1, seq, 1, head_dim];
    let (cos, sin) = (cos.reshape(shape), sin.reshape(shape));
    // q and k side by side as 2 * heads heads: one rotation for both.
    let qk = qkv
        .clone()
        .slice([0..batch, 0..seq, 0..2 * d_model])
        .reshape([batch, seq, 2 * heads, head_dim]);
    let v = qkv.slice([0..batch, 0..seq, 2 * d_model..3 * d_model]);
    let qk = rotate(qk, &cos, &sin).reshape([batch, seq, 2 * d_model]);
    Tensor::cat(vec![qk, v], 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> Device {
        Device::default()
    }

    fn values(t: Tensor<4>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().expect("f32")
    }

    /// A `[1, 1, seq, dim]` tensor of the same vector at every position.
    fn repeated(v: &[f32], seq: usize) -> Tensor<4> {
        let data: Vec<f32> = (0..seq).flat_map(|_| v.iter().copied()).collect();
        Tensor::from_data(TensorData::new(data, [1, 1, seq, v.len()]), &device())
    }

    #[test]
    fn rope_at_position_zero_is_the_identity() {
        let v = [0.3f32, -1.2, 0.7, 2.0, -0.4, 0.9];
        let turned = values(rope_heads(repeated(&v, 3), repeated(&v, 3), 10_000.0).0);
        for (a, b) in turned[..6].iter().zip(v) {
            assert!((a - b).abs() < 1e-6, "{turned:?}");
        }
        assert!(
            turned[6..12]
                .iter()
                .zip(v)
                .any(|(a, b)| (a - b).abs() > 1e-3)
        );
    }

    #[test]
    fn rope_scores_depend_only_on_the_offset() {
        let (q, k) = ([0.5f32, -0.3, 1.1, 0.2], [-0.7f32, 0.4, 0.9, -1.5]);
        let seq = 12;
        let (q, k) = rope_heads(repeated(&q, seq), repeated(&k, seq), 100.0);
        let (q, k) = (values(q), values(k));
        let score =
            |i: usize, j: usize| -> f32 { (0..4).map(|d| q[i * 4 + d] * k[j * 4 + d]).sum() };
        for (i, j) in [(3, 1), (7, 2), (5, 5), (2, 9)] {
            for shift in [1, 2] {
                let (a, b) = (score(i, j), score(i + shift, j + shift));
                assert!((a - b).abs() < 1e-4, "({i},{j}) +{shift}: {a} vs {b}");
            }
        }
        assert!((score(3, 1) - score(3, 2)).abs() > 1e-3, "offsets differ");
    }

    #[test]
    fn the_fused_layout_turns_q_and_k_as_the_heads_layout_does() {
        let (batch, seq, heads, head_dim) = (2, 5, 2, 4);
        let d = heads * head_dim;
        let data: Vec<f32> = (0..batch * seq * 3 * d)
            .map(|i| (i as f32 * 0.37).sin())
            .collect();
        let qkv = Tensor::<3>::from_data(TensorData::new(data, [batch, seq, 3 * d]), &device());
        let fused = rope_qkv(qkv.clone(), heads, 50.0);
        for part in 0..3 {
            let split_part = |t: Tensor<3>, p: usize| {
                t.slice([0..batch, 0..seq, p * d..(p + 1) * d])
                    .reshape([batch, seq, heads, head_dim])
                    .swap_dims(1, 2)
            };
            let split = |t: Tensor<3>| split_part(t, part);
            let split_at = |p: usize| split_part(qkv.clone(), p);
            let (q, k) = rope_heads(split_at(0), split_at(1), 50.0);
            let expected = [q, k, split_at(2)][part].clone();
            let (a, b) = (values(split(fused.clone())), values(expected));
            assert!(
                a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-6),
                "part {part}"
            );
        }
    }

    #[test]
    fn sinusoids_follow_the_formula() {
        let t = sinusoidal_table(7, 6, &device());
        let v = t.into_data().try_to_vec::<f32>().expect("f32");
        for pos in 0..7 {
            for i in (0..6).step_by(2) {
                let angle = pos as f64 / 10_000f64.powf(i as f64 / 6.0);
                assert!((v[pos * 6 + i] as f64 - angle.sin()).abs() < 1e-6);
                assert!((v[pos * 6 + i + 1] as f64 - angle.cos()).abs() < 1e-6);
            }
        }
    }
}
