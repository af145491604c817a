//! Attention snapshots: every layer's and head's weights on one example, read back and
//! averaged down to at most [`MAX_SNAPSHOT_SIDE`] per side. What a training run
//! records at each snapshot and what the Length pane's probe shows.

use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::model::{Mixing, ReadbackError, SequenceModel, read_back};
use crate::records::AttentionSnapshot;
pub use crate::records::MAX_SNAPSHOT_SIDE;

/// Every layer's and head's attention of `model` on one example's `tokens`, read back
/// and averaged down to at most [`MAX_SNAPSHOT_SIDE`] per side ([`downsample`]),
/// stamped with `step`: what a snapshot records and the Length pane's probe shows.
/// `Ok(None)` for a model without attention (the LSTM).
pub fn attention_snapshot<M: SequenceModel>(
    model: &M,
    mixing: &Mixing,
    tokens: &[i64],
    device: &Device,
    step: usize,
) -> Result<Option<AttentionSnapshot>, ReadbackError> {
    let n = tokens.len();
    let tokens = Tensor::<2, Int>::from_data(TensorData::new(tokens.to_vec(), [1, n]), device);
    let (_, weights) = model.forward_with_mixing(tokens, mixing);
    let Some(first) = weights.first() else {
        return Ok(None);
    };
    let layers = weights.len();
    let [_, heads, _, _] = first.dims();
    let all = read_back::<f32>(Tensor::cat(weights, 0).into_data(), "attention weights")?;
    let (side, weights) = downsample(&all, layers * heads, n, MAX_SNAPSHOT_SIDE);
    Ok(Some(AttentionSnapshot {
        step,
        layers,
        heads,
        n: side,
        seq_len: n,
        weights,
    }))
}

/// Averages `maps` square maps of side `n` down to at most `max_side` (rows stay
/// distributions: the mean of rows that each sum to one sums to one).
fn downsample(weights: &[f32], maps: usize, n: usize, max_side: usize) -> (usize, Vec<f32>) {
    if n <= max_side {
        return (n, weights.to_vec());
    }
    let factor = n.div_ceil(max_side);
    let side = n.div_ceil(factor);
    let mut out = vec![0.0f32; maps * side * side];
    for m in 0..maps {
        let src = &weights[m * n * n..(m + 1) * n * n];
        let dst = &mut out[m * side * side..(m + 1) * side * side];
        for i in 0..n {
            for j in 0..n {
                dst[(i / factor) * side + j / factor] += src[i * n + j];
            }
        }
        for (r, row) in dst.chunks_mut(side).enumerate() {
            let rows_in_tile = (n - r * factor).min(factor) as f32;
            for v in row {
                *v /= rows_in_tile;
            }
        }
    }
    (side, out)
}

#[cfg(test)]
mod tests {
    use super::downsample;

    #[test]
    fn downsampled_rows_stay_distributions() {
        let n = 10;
        let mut w = vec![0.0f32; n * n];
        for i in 0..n {
            w[i * n + (i * 7) % n] = 1.0;
        }
        let (side, d) = downsample(&w, 1, n, 4);
        assert_eq!(side, 4);
        for row in d.chunks(side) {
            let s: f32 = row.iter().sum();
            assert!((s - 1.0).abs() < 1e-5, "{s}");
        }
    }
}
