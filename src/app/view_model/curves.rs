//! The numbers the Curves pane draws (no egui): seed replicates as a mean with a
//! min-max band, and TensorBoard's smoothing of the training curves.

use super::run_views::RunView;
use crate::config::ReferenceMetric;
use crate::records::Metrics;

/// A horizontal line on a plot: a published figure or a level the task computes.
#[derive(Clone, Debug, PartialEq)]
pub struct LevelLine {
    /// The legend's words, e.g. `published: 0.99 (dense)` or `in-context bigram 0.512`.
    pub label: String,
    /// Where it lies.
    pub value: f64,
    /// The loss plot (else the accuracy plot).
    pub on_loss: bool,
    /// A published figure (else a computed level).
    pub published: bool,
}

/// The lines `runs` call for, once each: the published figure of each run with a
/// `[reference]` entry, and the in-context Markov task's closed-form losses (the
/// first run's, where seeds draw slightly different held-out sets).
pub fn level_lines<'a>(runs: impl IntoIterator<Item = &'a RunView>) -> Vec<LevelLine> {
    let mut lines: Vec<LevelLine> = Vec::new();
    let mut push = |line: LevelLine| {
        if !lines.iter().any(|l| l.label == line.label) {
            lines.push(line);
        }
    };
    for run in runs {
        if let Some(b) = &run.baselines {
            for (label, value) in [
                ("uniform (ln k)", b.uniform),
                ("in-context unigram", b.unigram),
                ("in-context bigram (Bayes-optimal)", b.bigram),
            ] {
                push(LevelLine {
                    label: format!("{label} {value:.3}"),
                    value,
                    on_loss: true,
                    published: false,
                });
            }
        }
        if let Some(reference) = &run.reference {
            let chance = run.settings.task.chance_accuracy();
            if let Some(value) = reference.value(chance, run.baselines.as_ref()) {
                push(LevelLine {
                    label: format!(
                        "published: {} ({})",
                        reference.label(chance, run.baselines.as_ref()),
                        run.group
                    ),
                    value,
                    on_loss: reference.metric == ReferenceMetric::Loss,
                    published: true,
                });
            }
        }
    }
    lines
}

/// One step of a group's curve: `[step, mean, min, max]` over its members.
pub type BandPoint = [f64; 4];

/// The mean, lowest and highest value of `members` at every step they all have.
/// Members without any value yet (replicates still queued) are left out, so a group
/// shows while its first seeds train.
pub fn group_band(members: &[&[Metrics]], value: impl Fn(&Metrics) -> f64) -> Vec<BandPoint> {
    let members: Vec<&[Metrics]> = members.iter().copied().filter(|m| !m.is_empty()).collect();
    let Some((first, rest)) = members.split_first() else {
        return Vec::new();
    };
    first
        .iter()
        .filter_map(|m| {
            let mut values = vec![value(m)];
            for other in rest {
                let at = other.binary_search_by_key(&m.step, |o| o.step).ok()?;
                values.push(value(&other[at]));
            }
            let mean = values.iter().sum::<f64>() / values.len() as f64;
            let (lo, hi) = values
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                    (a.min(v), b.max(v))
                });
            Some([m.step as f64, mean, lo, hi])
        })
        .collect()
}

/// Exponential moving average with bias correction (as TensorBoard shows it).
pub fn smooth(values: &[f64], weight: f64) -> Vec<f64> {
    let weight = weight.clamp(0.0, 0.999);
    let mut last = 0.0;
    let mut out = Vec::with_capacity(values.len());
    for (i, &v) in values.iter().enumerate() {
        last = last * weight + (1.0 - weight) * v;
        let correction = 1.0 - weight.powi(i as i32 + 1);
        out.push(if correction > 0.0 {
            last / correction
        } else {
            v
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_bands_span_the_members_at_shared_steps() {
        let m = |step: usize, accuracy: f64| Metrics {
            step,
            loss: 1.0,
            accuracy,
            elapsed_secs: 0.0,
        };
        let a = [m(10, 0.2), m(20, 0.6), m(30, 1.0)];
        let b = [m(10, 0.4), m(20, 0.8)];
        let band = group_band(&[&a, &b], |m| m.accuracy);
        assert_eq!(band.len(), 2, "step 30 is not shared");
        assert!((band[0][1] - 0.3).abs() < 1e-12);
        assert_eq!((band[1][2], band[1][3]), (0.6, 0.8));
        // A replicate still queued (no metrics) does not hide the others.
        let queued: [Metrics; 0] = [];
        assert_eq!(
            group_band(&[&a, &queued, &b], |m| m.accuracy),
            band,
            "the started members' band"
        );
    }

    #[test]
    fn smoothing_keeps_constants_and_follows_the_trend() {
        assert_eq!(smooth(&[2.0, 2.0, 2.0], 0.9), vec![2.0, 2.0, 2.0]);
        assert_eq!(smooth(&[1.0, 3.0], 0.0), vec![1.0, 3.0]);
        let s = smooth(&[0.0, 10.0, 10.0, 10.0], 0.5);
        assert!(s.windows(2).all(|w| w[0] <= w[1]));
        assert!(s[3] < 10.0 && s[3] > 5.0);
    }
}
