//! The receptive field through the layers, learned: attention rollout (Abnar &
//! Zuidema, 2020). Each layer's heads are averaged and the residual path added
//! (`0.5 * A + 0.5 * I`, rows renormalised); the product of the first `l` layers says
//! how much of each input position reaches each output after layer `l`. Beside the
//! structural answer (`reach::compose` of the masks: what *can* reach), it shows what
//! the trained weights actually carry.

/// Rollout after each layer: `result[l]` is the `n x n` matrix (row = output position,
/// column = input position, rows summing to 1) after layers `0..=l`. `layers[l]` is
/// layer `l`'s attention averaged over heads, `n x n`, row-major.
pub fn rollout(layers: &[Vec<f32>], n: usize) -> Vec<Vec<f32>> {
    let mut out = Vec::with_capacity(layers.len());
    let mut current: Vec<f32> = (0..n * n)
        .map(|c| if c / n == c % n { 1.0 } else { 0.0 })
        .collect();
    for attention in layers {
        if attention.len() < n * n {
            break;
        }
        let mut mixed = vec![0.0f32; n * n];
        for i in 0..n {
            let row = &attention[i * n..(i + 1) * n];
            let mass: f32 = row.iter().sum::<f32>() + 1.0;
            for j in 0..n {
                let residual = if i == j { 1.0 } else { 0.0 };
                mixed[i * n + j] = (row[j] + residual) / mass;
            }
        }
        // next = mixed * current
        let mut next = vec![0.0f32; n * n];
        for i in 0..n {
            let out_row = &mut next[i * n..(i + 1) * n];
            for m in 0..n {
                let a = mixed[i * n + m];
                if a == 0.0 {
                    continue;
                }
                for (o, c) in out_row.iter_mut().zip(&current[m * n..(m + 1) * n]) {
                    *o += a * c;
                }
            }
        }
        current = next;
        out.push(current.clone());
    }
    out
}

/// One output position's row of [`rollout`] after each layer, without the full
/// matrices: `result[l]` is row `query` of the rollout after layers `0..=l`. Costs
/// O(L^2 n^2) instead of O(L n^3), cheap enough to follow the pointer.
pub fn rollout_row(layers: &[Vec<f32>], n: usize, query: usize) -> Vec<Vec<f32>> {
    if query >= n {
        return Vec::new();
    }
    let usable = layers.iter().take_while(|a| a.len() >= n * n).count();
    // Each row's mass with the residual added, per layer.
    let masses: Vec<Vec<f32>> = layers[..usable]
        .iter()
        .map(|a| {
            (0..n)
                .map(|i| a[i * n..(i + 1) * n].iter().sum::<f32>() + 1.0)
                .collect()
        })
        .collect();
    (0..usable)
        .map(|l| {
            // e_q^T * mixed_l * mixed_(l-1) * ... * mixed_0
            let mut v = vec![0.0f32; n];
            v[query] = 1.0;
            for k in (0..=l).rev() {
                let attention = &layers[k];
                let mut next = vec![0.0f32; n];
                for (m, &vm) in v.iter().enumerate() {
                    if vm == 0.0 {
                        continue;
                    }
                    let w = vm / masses[k][m];
                    for (o, a) in next.iter_mut().zip(&attention[m * n..(m + 1) * n]) {
                        *o += w * a;
                    }
                    next[m] += w; // the residual path
                }
                v = next;
            }
            v
        })
        .collect()
}

/// The heads of one layer averaged: `maps` is `heads` maps of `n x n`.
pub fn mean_over_heads(maps: &[&[f32]], n: usize) -> Vec<f32> {
    let mut mean = vec![0.0f32; n * n];
    let k = maps.len().max(1) as f32;
    for map in maps {
        for (m, v) in mean.iter_mut().zip(map.iter()) {
            *m += v / k;
        }
    }
    mean
}

#[cfg(test)]
mod tests {
    use super::super::{AttentionPattern, compose};
    use super::*;

    /// Uniform attention over a causal local window of radius `w`.
    fn local_uniform(n: usize, w: usize) -> Vec<f32> {
        let mut m = vec![0.0f32; n * n];
        for i in 0..n {
            let lo = i.saturating_sub(w);
            let count = (i - lo + 1) as f32;
            for j in lo..=i {
                m[i * n + j] = 1.0 / count;
            }
        }
        m
    }

    #[test]
    fn rollout_of_a_local_pattern_reaches_exactly_l_times_w() {
        let (n, w, layers) = (48, 3, 4);
        let maps: Vec<Vec<f32>> = (0..layers).map(|_| local_uniform(n, w)).collect();
        let r = rollout(&maps, n);
        assert_eq!(r.len(), layers);
        let masks: Vec<_> = (0..layers)
            .map(|_| AttentionPattern::Local { window: w }.mask(n, true, 1))
            .collect();
        let q = n - 1;
        for l in 0..layers {
            let row = &r[l][q * n..(q + 1) * n];
            let reached: Vec<usize> = (0..n).filter(|&j| row[j] > 1e-9).collect();
            assert_eq!(reached.first().copied(), Some(q - (l + 1) * w), "layer {l}");
            assert_eq!(reached.len(), (l + 1) * w + 1);
            // The same as the composed masks say.
            let reach = compose(&masks[..=l]);
            let structural: Vec<usize> = (0..n).filter(|&j| reach.links(q, j)).collect();
            assert_eq!(reached, structural, "layer {l}");
            let sum: f32 = row.iter().sum();
            assert!((sum - 1.0).abs() < 1e-4);
        }
    }

    #[test]
    fn one_row_equals_the_full_rollout() {
        let n = 20;
        let maps: Vec<Vec<f32>> = vec![
            local_uniform(n, 2),
            local_uniform(n, 5),
            local_uniform(n, 1),
        ];
        let full = rollout(&maps, n);
        let q = 13;
        let rows = rollout_row(&maps, n, q);
        assert_eq!(rows.len(), 3);
        for l in 0..3 {
            for j in 0..n {
                assert!(
                    (rows[l][j] - full[l][q * n + j]).abs() < 1e-5,
                    "layer {l} key {j}"
                );
            }
        }
        assert!(rollout_row(&maps, n, n).is_empty());
    }

    #[test]
    fn heads_average() {
        let a = [1.0f32, 0.0, 0.0, 1.0];
        let b = [0.0f32, 1.0, 1.0, 0.0];
        assert_eq!(mean_over_heads(&[&a, &b], 2), vec![0.5; 4]);
    }
}
