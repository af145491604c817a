//! What a head does, in numbers: statistics of one attention map (row = query,
//! column = key, each row a distribution), as the interpretability literature defines
//! them (mean attention distance and entropy as in ViT analyses; previous-token and
//! induction scores as TransformerLens' head detectors), plus what this workbench
//! knows that those tools do not: the task's true dependencies, the pattern's global
//! tokens and its mask.
//!
//! Maps may be downsampled (each cell the mean of a tile of `scale x scale` positions):
//! distances are then given in positions (bins times `scale`), and positions map to
//! their bin.

use super::{AttentionPattern, Mask};

/// Statistics of one head's map. A statistic the task or pattern does not define is
/// `None` (no dependencies, no global tokens, no mask).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct HeadStats {
    /// Mean over queries of the expected |query - key|, in positions.
    pub mean_distance: f64,
    /// Mean over queries of the row's entropy, in nats (log n for a uniform row).
    pub entropy: f64,
    /// Mean weight a dependency's query puts on its key (the task's true link).
    pub dependency_mass: Option<f64>,
    /// Mean weight on the previous position.
    pub previous_token: f64,
    /// Mean weight from a token to the position after that token's previous
    /// occurrence (TransformerLens' induction score); `None` without repeats.
    pub induction: Option<f64>,
    /// Mean weight on the pattern's global tokens.
    pub global_mass: Option<f64>,
    /// Of the keys the mask allows, the fraction used: the mean over queries of the
    /// effective number of keys (exp(entropy)) over the allowed count.
    pub mask_usage: Option<f64>,
}

/// Which statistic (for curves, tables and jumps).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stat {
    MeanDistance,
    Entropy,
    DependencyMass,
    PreviousToken,
    Induction,
    GlobalMass,
    MaskUsage,
}

impl Stat {
    /// Every statistic, in display order.
    pub const ALL: [Stat; 7] = [
        Stat::DependencyMass,
        Stat::MeanDistance,
        Stat::Entropy,
        Stat::PreviousToken,
        Stat::Induction,
        Stat::GlobalMass,
        Stat::MaskUsage,
    ];

    /// Its name in the window and in CSV headers.
    pub fn name(self) -> &'static str {
        match self {
            Stat::MeanDistance => "mean distance",
            Stat::Entropy => "entropy",
            Stat::DependencyMass => "dependency mass",
            Stat::PreviousToken => "previous token",
            Stat::Induction => "induction",
            Stat::GlobalMass => "global mass",
            Stat::MaskUsage => "mask usage",
        }
    }

    /// What it means, for a tooltip.
    pub fn help(self) -> &'static str {
        match self {
            Stat::MeanDistance => {
                "Mean over queries of the expected distance |query - key| (positions)"
            }
            Stat::Entropy => "Mean entropy of a query's row (nats): 0 = one key, log n = uniform",
            Stat::DependencyMass => {
                "Weight on the position each answer must be read from (the task's true link)"
            }
            Stat::PreviousToken => {
                "Weight on the previous position (TransformerLens' previous-token score)"
            }
            Stat::Induction => {
                "Weight on the position after the token's previous occurrence (TransformerLens' induction score)"
            }
            Stat::GlobalMass => "Weight on the pattern's global tokens",
            Stat::MaskUsage => {
                "Effective keys attended (exp(entropy)) over the keys the mask allows"
            }
        }
    }

    /// Whether its values lie in [0, 1] (weights and fractions).
    pub fn is_fraction(self) -> bool {
        !matches!(self, Stat::MeanDistance | Stat::Entropy)
    }

    /// Its value in `s`.
    pub fn of(self, s: &HeadStats) -> Option<f64> {
        match self {
            Stat::MeanDistance => Some(s.mean_distance),
            Stat::Entropy => Some(s.entropy),
            Stat::DependencyMass => s.dependency_mass,
            Stat::PreviousToken => Some(s.previous_token),
            Stat::Induction => s.induction,
            Stat::GlobalMass => s.global_mass,
            Stat::MaskUsage => s.mask_usage,
        }
    }
}

/// What the statistics need besides the map, at the map's resolution.
#[derive(Clone, Debug, Default)]
pub struct StatsContext {
    /// Positions per map cell (1 when not downsampled).
    pub scale: usize,
    /// `(query, key)` cells of the task's dependencies.
    pub dependencies: Vec<(usize, usize)>,
    /// `(query, key)` cells for the induction score.
    pub induction: Vec<(usize, usize)>,
    /// Key cells of the pattern's global tokens.
    pub globals: Vec<usize>,
    /// The layer's mask at the map's resolution, for sparse layers.
    pub mask: Option<Mask>,
}

impl StatsContext {
    /// The context of a probe of `seq_len` tokens shown at side `n`, for a layer with
    /// `pattern` (`mask`: that layer's mask at side `n`, `None` for dense).
    pub fn new(
        tokens: &[i64],
        dependencies: &[(usize, usize)],
        n: usize,
        pattern: Option<&AttentionPattern>,
        mask: Option<Mask>,
    ) -> Self {
        let seq_len = tokens.len().max(1);
        let scale = seq_len.div_ceil(n.max(1)).max(1);
        let cell = |p: usize| (p / scale).min(n.saturating_sub(1));
        let mut induction = Vec::new();
        let mut last_seen = std::collections::HashMap::new();
        for (i, t) in tokens.iter().enumerate() {
            if let Some(&p) = last_seen.get(t)
                && p + 1 < i
            {
                induction.push((cell(i), cell(p + 1)));
            }
            last_seen.insert(*t, i);
        }
        let globals: Vec<usize> = match pattern {
            Some(AttentionPattern::Longformer { global, .. }) => {
                (0..(*global).min(seq_len)).collect()
            }
            Some(AttentionPattern::BigBird {
                block,
                global_blocks,
                ..
            }) => (0..(block * global_blocks).min(seq_len)).collect(),
            _ => Vec::new(),
        };
        let mut globals: Vec<usize> = globals.into_iter().map(cell).collect();
        globals.dedup();
        Self {
            scale,
            dependencies: dependencies
                .iter()
                .map(|&(q, k)| (cell(q), cell(k)))
                .collect(),
            induction,
            globals,
            mask,
        }
    }
}

/// The statistics of one `n x n` map.
pub fn head_stats(map: &[f32], n: usize, ctx: &StatsContext) -> HeadStats {
    if n == 0 || map.len() < n * n {
        return HeadStats::default();
    }
    let w = |i: usize, j: usize| f64::from(map[i * n + j]);
    let (mut distance, mut entropy, mut usage, mut rows, mut masked_rows) =
        (0.0, 0.0, 0.0, 0usize, 0usize);
    for i in 0..n {
        let row = &map[i * n..(i + 1) * n];
        let mass: f64 = row.iter().map(|&v| f64::from(v)).sum();
        if mass <= 0.0 {
            continue; // a padded or fully masked row says nothing
        }
        rows += 1;
        let mut h = 0.0;
        for (j, &v) in row.iter().enumerate() {
            let p = f64::from(v) / mass;
            distance += p * i.abs_diff(j) as f64;
            if p > 0.0 {
                h -= p * p.ln();
            }
        }
        entropy += h;
        if let Some(mask) = &ctx.mask {
            let allowed = mask.row(i).iter().filter(|&&a| a).count();
            if allowed > 0 {
                usage += (h.exp() / allowed as f64).min(1.0);
                masked_rows += 1;
            }
        }
    }
    let rows_f = rows.max(1) as f64;
    let mean_at = |cells: &[(usize, usize)]| {
        let valid: Vec<f64> = cells
            .iter()
            .filter(|&&(q, k)| q < n && k < n)
            .map(|&(q, k)| w(q, k))
            .collect();
        (!valid.is_empty()).then(|| valid.iter().sum::<f64>() / valid.len() as f64)
    };
    let previous: Vec<(usize, usize)> = (1..n).map(|i| (i, i - 1)).collect();
    let global_mass = (!ctx.globals.is_empty()).then(|| {
        (0..n)
            .map(|i| ctx.globals.iter().map(|&g| w(i, g)).sum::<f64>())
            .sum::<f64>()
            / n as f64
    });
    HeadStats {
        mean_distance: distance / rows_f * ctx.scale as f64,
        entropy: entropy / rows_f,
        dependency_mass: mean_at(&ctx.dependencies),
        previous_token: mean_at(&previous).unwrap_or(0.0),
        induction: mean_at(&ctx.induction),
        global_mass,
        mask_usage: (masked_rows > 0).then(|| usage / masked_rows as f64),
    }
}

/// Where a statistic jumps: the steps (of `series`, `(step, value)` in step order)
/// where it rises or falls by at least `threshold` from one point to the next, the
/// largest first, at most `max`.
pub fn jumps(series: &[(usize, f64)], threshold: f64, max: usize) -> Vec<(usize, f64)> {
    let mut found: Vec<(usize, f64)> = series
        .windows(2)
        .map(|w| (w[1].0, w[1].1 - w[0].1))
        .filter(|(_, d)| d.abs() >= threshold)
        .collect();
    found.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
    found.truncate(max);
    found
}

/// Spearman's rank correlation of `a` and `b` (pairs with a non-finite value left
/// out; tied values share their mean rank). `None` with fewer than three pairs or
/// when either side is constant.
pub fn spearman(a: &[f64], b: &[f64]) -> Option<f64> {
    let (a, b): (Vec<f64>, Vec<f64>) = a
        .iter()
        .zip(b)
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .map(|(x, y)| (*x, *y))
        .unzip();
    if a.len() < 3 {
        return None;
    }
    let (ra, rb) = (ranks(&a), ranks(&b));
    let mean = (a.len() as f64 + 1.0) / 2.0;
    let (mut cov, mut va, mut vb) = (0.0, 0.0, 0.0);
    for (x, y) in ra.iter().zip(&rb) {
        cov += (x - mean) * (y - mean);
        va += (x - mean) * (x - mean);
        vb += (y - mean) * (y - mean);
    }
    (va > 0.0 && vb > 0.0).then(|| cov / (va * vb).sqrt())
}

/// Ranks from 1, ties sharing their mean rank.
fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&i, &j| values[i].total_cmp(&values[j]));
    let mut out = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        let rank = (start + end + 1) as f64 / 2.0;
        for &i in &order[start..end] {
            out[i] = rank;
        }
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offset_map(n: usize, k: usize) -> Vec<f32> {
        let mut m = vec![0.0; n * n];
        for i in 0..n {
            m[i * n + i.saturating_sub(k)] = 1.0;
        }
        m
    }

    #[test]
    fn all_weight_at_offset_k_gives_mean_distance_k() {
        let n = 32;
        let m = offset_map(n, 5);
        let s = head_stats(
            &m,
            n,
            &StatsContext {
                scale: 1,
                ..Default::default()
            },
        );
        // Rows 0..5 clamp to key 0: distance i. The rest: exactly 5.
        let expect = ((0..5).sum::<usize>() + 5 * (n - 5)) as f64 / n as f64;
        assert!(
            (s.mean_distance - expect).abs() < 1e-9,
            "{}",
            s.mean_distance
        );
        assert_eq!(s.entropy, 0.0);
        // Downsampled by 4: distances in positions.
        let s4 = head_stats(
            &m,
            n,
            &StatsContext {
                scale: 4,
                ..Default::default()
            },
        );
        assert!((s4.mean_distance - 4.0 * expect).abs() < 1e-9);
        let prev = head_stats(&offset_map(n, 1), n, &StatsContext::default());
        assert!((prev.previous_token - 1.0).abs() < 1e-12);
    }

    #[test]
    fn a_uniform_row_has_entropy_log_n_and_uses_its_whole_mask() {
        let n = 16;
        let m = vec![1.0 / n as f32; n * n];
        let mask = Mask::from_fn(n, |_, _| true);
        let s = head_stats(
            &m,
            n,
            &StatsContext {
                scale: 1,
                mask: Some(mask),
                ..Default::default()
            },
        );
        assert!((s.entropy - (n as f64).ln()).abs() < 1e-5);
        assert!((s.mask_usage.expect("masked") - 1.0).abs() < 1e-4);
        // One key out of a window of 4 uses a quarter of it.
        let local = Mask::from_fn(n, |i, j| i.abs_diff(j) <= 1 || (i == 0 && j == 2));
        let one = offset_map(n, 0);
        let s = head_stats(
            &one,
            n,
            &StatsContext {
                scale: 1,
                mask: Some(local),
                ..Default::default()
            },
        );
        let u = s.mask_usage.expect("masked");
        assert!(u > 0.3 && u < 0.5, "{u}");
    }

    #[test]
    fn dependency_induction_and_global_scores_read_the_right_cells() {
        // Tokens 1 2 3 1 2 3: position 3 (token 1) last saw 1 at 0, so induction looks
        // at position 1; 4 at 2; 5 at 3.
        let tokens = [1, 2, 3, 1, 2, 3];
        let n = 6;
        let pattern = AttentionPattern::Longformer {
            window: 1,
            global: 1,
        };
        let ctx = StatsContext::new(&tokens, &[(5, 2)], n, Some(&pattern), None);
        assert_eq!(ctx.induction, [(3, 1), (4, 2), (5, 3)]);
        assert_eq!(ctx.globals, [0]);
        let mut m = vec![0.0f32; n * n];
        for i in 0..n {
            m[i * n] = 0.5; // half on the global token
        }
        m[3 * n + 1] += 0.5;
        m[4 * n + 2] += 0.5;
        m[5 * n + 3] += 0.5;
        for i in 0..3 {
            m[i * n] += 0.5;
        }
        let s = head_stats(&m, n, &ctx);
        assert!((s.induction.expect("repeats") - 0.5).abs() < 1e-9);
        assert_eq!(s.dependency_mass, Some(0.0));
        assert!((s.global_mass.expect("global") - (0.5 * 3.0 + 3.0) / 6.0).abs() < 1e-9);
        // Downsampled by 2, positions map to their bins.
        let ctx2 = StatsContext::new(&tokens, &[(5, 2)], 3, Some(&pattern), None);
        assert_eq!(
            (ctx2.scale, ctx2.dependencies.as_slice()),
            (2, &[(2, 1)][..])
        );
    }

    #[test]
    fn jumps_are_the_largest_changes() {
        let series = [(0, 0.0), (10, 0.05), (20, 0.6), (30, 0.62), (40, 0.3)];
        let top = jumps(&series, 0.2, 1);
        assert_eq!(top.len(), 1);
        assert_eq!(top[0].0, 20);
        assert!((top[0].1 - 0.55).abs() < 1e-9);
        assert_eq!(jumps(&series, 0.2, 5).len(), 2);
        assert!(jumps(&series, 0.9, 5).is_empty());
    }

    #[test]
    fn spearman_ranks_with_ties_and_refuses_constants() {
        let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-12);
        assert!(close(
            spearman(&[1.0, 2.0, 3.0, 4.0], &[10.0, 20.0, 30.0, 40.0]),
            1.0
        ));
        assert!(close(
            spearman(&[1.0, 2.0, 3.0, 4.0], &[4.0, 3.0, 2.0, 1.0]),
            -1.0
        ));
        // Monotone but not linear: still 1.
        assert!(close(
            spearman(&[1.0, 2.0, 3.0], &[1.0, 100.0, 1000.0]),
            1.0
        ));
        // Ties share a rank: ranks (1.5, 1.5, 3) against (1, 2, 3).
        let r = spearman(&[5.0, 5.0, 9.0], &[1.0, 2.0, 3.0]).expect("defined");
        assert!((r - 0.866_025_403_784_438_6).abs() < 1e-9, "{r}");
        assert_eq!(spearman(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), None);
        assert_eq!(spearman(&[1.0, 2.0], &[1.0, 2.0]), None);
        assert!(close(
            spearman(&[1.0, f64::NAN, 2.0, 3.0], &[1.0, 9.0, 2.0, 3.0]),
            1.0
        ));
    }
}
