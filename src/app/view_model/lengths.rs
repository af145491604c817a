//! The numbers behind evaluation at other lengths (`train.eval_lengths`), without
//! egui: for the Length pane, each run's latest held-out scores at every length it
//! was evaluated at (its training length included), seed replicates as a mean with a
//! min-max band and the fraction of seeds that solved the task; the lengths a run can
//! be probed at; and the per-length series the Curves and Distance panes draw.

use std::collections::{BTreeMap, BTreeSet};

use super::run_views::RunView;
use crate::records::{DistanceAccuracy, Metrics};

/// One run's latest held-out scores at one length.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LengthPoint {
    /// The sequence length evaluated at.
    pub seq_len: usize,
    /// The step of the evaluation.
    pub step: usize,
    /// Held-out loss.
    pub loss: f64,
    /// Held-out accuracy.
    pub accuracy: f64,
}

/// Each length's latest scores, lengths ascending: every length of `run.lengths` and
/// the training length (`task.seq_len`, from the latest evaluation); only the latter
/// for a run never evaluated at another length (learned positions, say), none for a
/// run not evaluated yet.
pub fn run_points(run: &RunView) -> Vec<LengthPoint> {
    let mut at: BTreeMap<usize, LengthPoint> = BTreeMap::new();
    let mut put = |seq_len: usize, m: &Metrics| {
        if at.get(&seq_len).is_some_and(|old| old.step > m.step) {
            return;
        }
        at.insert(
            seq_len,
            LengthPoint {
                seq_len,
                step: m.step,
                loss: m.loss,
                accuracy: m.accuracy,
            },
        );
    };
    for scores in &run.lengths {
        put(scores.seq_len, &scores.metrics);
    }
    if let Some(m) = run.eval.last() {
        put(run.settings.task.seq_len, m);
    }
    at.into_values().collect()
}

/// The mean, lowest and highest of some values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    /// Their mean.
    pub mean: f64,
    /// The lowest.
    pub min: f64,
    /// The highest.
    pub max: f64,
}

impl Spread {
    /// The spread of `values`; `None` for none.
    pub fn of(values: &[f64]) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let (min, max) = values
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        Some(Self {
            mean: values.iter().sum::<f64>() / values.len() as f64,
            min,
            max,
        })
    }
}

/// A series' scores at one length, over the members evaluated there.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SeriesPoint {
    /// The sequence length.
    pub seq_len: usize,
    /// Held-out accuracy over the members.
    pub accuracy: Spread,
    /// Held-out loss over the members.
    pub loss: Spread,
    /// Members with a score at this length.
    pub runs: usize,
    /// Of those, the members whose accuracy reached their `train.solved_at`.
    pub solved: usize,
    /// The latest step among the members' evaluations.
    pub step: usize,
}

impl SeriesPoint {
    /// The fraction of members that solved the task at this length.
    pub fn solved_fraction(&self) -> f64 {
        self.solved as f64 / self.runs.max(1) as f64
    }

    /// `2/3 solved`.
    pub fn solved_text(&self) -> String {
        format!("{}/{} solved", self.solved, self.runs)
    }
}

/// One line of the Length pane: a run, or the seed replicates of a group.
#[derive(Clone, Debug, PartialEq)]
pub struct LengthSeries {
    /// The run's label, or `group (3 seeds)`.
    pub label: String,
    /// The colour index of its first run.
    pub color: usize,
    /// Runs in it (more than one: seed replicates drawn as a mean and band).
    pub seeds: usize,
    /// Its training length (`task.seq_len`).
    pub trained_at: usize,
    /// Its task's chance accuracy.
    pub chance: f64,
    /// Whether it learned its positions (a transformer with `model.positions =
    /// "learned"`): it has none past `trained_at`, so longer lengths are refused.
    pub learned_positions: bool,
    /// Its scores, lengths ascending.
    pub points: Vec<SeriesPoint>,
}

/// The Length pane's lines over `runs` (each with its colour index): one per
/// evaluated run, or with `group_seeds` one per replicate group (runs that differ only
/// in their seed), in the order of their first run; none unless some run was
/// evaluated at another length. A run evaluated at its training length only (learned
/// positions refuse others) is a single point there, beside the runs it compares with.
pub fn length_series(runs: &[(usize, &RunView)], group_seeds: bool) -> Vec<LengthSeries> {
    if runs.iter().all(|(_, run)| run.lengths.is_empty()) {
        return Vec::new();
    }
    // Members by group (or by run), in order of first appearance.
    let mut groups: Vec<(String, usize, Vec<&RunView>)> = Vec::new();
    for &(color, run) in runs {
        if run.eval.is_empty() {
            continue;
        }
        let key = if group_seeds {
            run.group.clone()
        } else {
            format!("{}\u{0}{}", run.id, run.name)
        };
        match groups.iter_mut().find(|(k, _, _)| *k == key) {
            Some((_, _, members)) => members.push(run),
            None => groups.push((key, color, vec![run])),
        }
    }
    groups
        .into_iter()
        .filter_map(|(_, color, members)| {
            let first = *members.first()?;
            let label = if members.len() > 1 {
                format!("{} ({} seeds)", first.group, members.len())
            } else {
                first.label().into_owned()
            };
            Some(LengthSeries {
                label,
                color,
                seeds: members.len(),
                trained_at: first.settings.task.seq_len,
                chance: first.settings.task.chance_accuracy(),
                learned_positions: first.settings.positions_end().is_some(),
                points: series_points(&members),
            })
        })
        .collect()
}

/// The members' scores pooled per length.
fn series_points(members: &[&RunView]) -> Vec<SeriesPoint> {
    let mut at: BTreeMap<usize, Vec<(LengthPoint, f64)>> = BTreeMap::new();
    for run in members {
        for p in run_points(run) {
            at.entry(p.seq_len)
                .or_default()
                .push((p, run.settings.train.solved_at));
        }
    }
    at.into_iter()
        .filter_map(|(seq_len, points)| {
            let accuracies: Vec<f64> = points.iter().map(|(p, _)| p.accuracy).collect();
            let losses: Vec<f64> = points.iter().map(|(p, _)| p.loss).collect();
            Some(SeriesPoint {
                seq_len,
                accuracy: Spread::of(&accuracies)?,
                loss: Spread::of(&losses)?,
                runs: points.len(),
                solved: points.iter().filter(|(p, at)| p.accuracy >= *at).count(),
                step: points.iter().map(|(p, _)| p.step).max().unwrap_or(0),
            })
        })
        .collect()
}

/// The distinct training lengths of `series`, ascending.
pub fn training_lengths(series: &[LengthSeries]) -> Vec<usize> {
    let set: BTreeSet<usize> = series.iter().map(|s| s.trained_at).collect();
    set.into_iter().collect()
}

/// Every length any of `series` has a score at, ascending (the table's columns).
pub fn all_lengths(series: &[LengthSeries]) -> Vec<usize> {
    let set: BTreeSet<usize> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.seq_len))
        .collect();
    set.into_iter().collect()
}

/// The table under the Length pane's chart as CSV: one row per line and length,
/// `series,trained_at,seq_len,step,accuracy,accuracy_min,accuracy_max,loss,runs,solved`.
pub fn lengths_csv(series: &[LengthSeries]) -> String {
    let mut out = String::from(
        "series,trained_at,seq_len,step,accuracy,accuracy_min,accuracy_max,loss,runs,solved\n",
    );
    for s in series {
        let label = if s.label.contains([',', '"']) {
            format!("\"{}\"", s.label.replace('"', "\"\""))
        } else {
            s.label.clone()
        };
        for p in &s.points {
            out.push_str(&format!(
                "{label},{},{},{},{:.4},{:.4},{:.4},{:.4},{},{}\n",
                s.trained_at,
                p.seq_len,
                p.step,
                p.accuracy.mean,
                p.accuracy.min,
                p.accuracy.max,
                p.loss.mean,
                p.runs,
                p.solved
            ));
        }
    }
    out
}

/// A run's held-out metrics at each length other than its training one, over its
/// evaluations: `(seq_len, metrics in step order)`, lengths ascending (the extra
/// lines of the Curves pane).
pub fn length_curves(run: &RunView) -> Vec<(usize, Vec<Metrics>)> {
    let mut at: BTreeMap<usize, Vec<Metrics>> = BTreeMap::new();
    for scores in &run.lengths {
        if scores.seq_len != run.settings.task.seq_len {
            at.entry(scores.seq_len).or_default().push(scores.metrics);
        }
    }
    for metrics in at.values_mut() {
        metrics.sort_by_key(|m| m.step);
        metrics.dedup_by_key(|m| m.step);
    }
    at.into_iter().collect()
}

/// The latest accuracy by distance of `run` at `seq_len`: its training length's
/// (`None`, or `task.seq_len`) or one of its evaluation lengths'.
pub fn latest_by_distance(run: &RunView, seq_len: Option<usize>) -> Option<&DistanceAccuracy> {
    match seq_len {
        None => run.by_distance.last(),
        Some(n) if n == run.settings.task.seq_len => run.by_distance.last(),
        Some(n) => run
            .lengths
            .iter()
            .rev()
            .find(|s| s.seq_len == n)
            .map(|s| &s.by_distance),
    }
}

/// The lengths the Distance pane offers beyond each run's own ("training"): every
/// length a run was evaluated at, and the training lengths of runs evaluated at
/// others, ascending. When every such run trained at one length, that length is the
/// "training" choice already and is not offered twice.
pub fn distance_lengths<'a>(runs: impl IntoIterator<Item = &'a RunView>) -> Vec<usize> {
    let mut set = BTreeSet::new();
    let mut trained = BTreeSet::new();
    for run in runs {
        if run.lengths.is_empty() {
            continue;
        }
        trained.insert(run.settings.task.seq_len);
        set.extend(run.lengths.iter().map(|s| s.seq_len));
    }
    if trained.len() > 1 {
        set.extend(trained);
    }
    set.into_iter().collect()
}

/// The lengths offered for probing `run`: its training length, its
/// `train.eval_lengths` and any length it was evaluated at, ascending.
pub fn probe_lengths(run: &RunView) -> Vec<usize> {
    let mut set = BTreeSet::from([run.settings.task.seq_len]);
    set.extend(run.settings.train.eval_lengths.iter().copied());
    set.extend(run.lengths.iter().map(|s| s.seq_len));
    set.into_iter().filter(|&n| n > 0).collect()
}

/// Bytes of attention weights a probe may read back (`layers x heads x n^2` floats at
/// full resolution before they are averaged down): beyond it the length is refused
/// before any allocation, rather than running the machine out of memory.
pub const MAX_PROBE_BYTES: usize = 1 << 30;

/// The longest length `run` can be probed at within [`MAX_PROBE_BYTES`].
pub fn max_probe_length(run: &RunView) -> usize {
    let maps = run.settings.model.layers.max(1) * run.settings.model.heads.max(1);
    ((MAX_PROBE_BYTES / 4 / maps) as f64).sqrt().floor() as usize
}

/// The length a probe of `run` starts at: its longest evaluation length beyond the
/// training one, else twice the training length; the training length for a model
/// with no positions beyond it (learned positions).
pub fn default_probe_length(run: &RunView) -> usize {
    let trained = run.settings.task.seq_len;
    if run.settings.positions_end().is_some() {
        return trained.min(max_probe_length(run)).max(1);
    }
    probe_lengths(run)
        .into_iter()
        .filter(|&n| n > trained)
        .max()
        .unwrap_or(trained.saturating_mul(2).max(1))
        .min(max_probe_length(run))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{DistanceCount, LengthScores};

    fn metrics(step: usize, accuracy: f64) -> Metrics {
        Metrics {
            step,
            loss: 1.0 - accuracy,
            accuracy,
            elapsed_secs: 0.0,
        }
    }

    fn scores(step: usize, seq_len: usize, accuracy: f64) -> LengthScores {
        LengthScores {
            seq_len,
            metrics: metrics(step, accuracy),
            by_distance: DistanceAccuracy {
                step,
                counts: vec![DistanceCount {
                    distance: seq_len / 2,
                    correct: 1,
                    total: 2,
                }],
            },
        }
    }

    /// A run named `name` trained at 64, evaluated at steps 10 and 20 at its own
    /// length with `own` and at 128 and 256 with `longer`.
    fn run(id: crate::trainer::RunId, name: &str, own: f64, longer: [f64; 2]) -> RunView {
        let mut view = crate::app::view_model::run_views::test_run(id, name);
        view.eval = vec![metrics(10, 0.5), metrics(20, own)];
        view.lengths = vec![
            scores(10, 128, 0.1),
            scores(10, 256, 0.1),
            scores(20, 128, longer[0]),
            scores(20, 256, longer[1]),
        ];
        view
    }

    #[test]
    fn a_run_scores_its_latest_evaluation_at_each_length() {
        let r = run(1, "dense", 1.0, [0.8, 0.3]);
        let points = run_points(&r);
        let lengths: Vec<usize> = points.iter().map(|p| p.seq_len).collect();
        assert_eq!(lengths, [64, 128, 256], "the training length is included");
        assert!(points.iter().all(|p| p.step == 20));
        assert_eq!(points[0].accuracy, 1.0);
        assert_eq!(points[2].accuracy, 0.3);
        let mut plain = r.clone();
        plain.lengths.clear();
        let only: Vec<usize> = run_points(&plain).iter().map(|p| p.seq_len).collect();
        assert_eq!(
            only,
            [64],
            "never evaluated elsewhere: its training length only"
        );
        plain.eval.clear();
        assert!(run_points(&plain).is_empty(), "not evaluated yet");
    }

    #[test]
    fn seeds_pool_into_a_mean_band_and_solved_fraction() {
        let a = run(1, "dense seed=1", 1.0, [0.95, 0.2]);
        let b = run(2, "dense seed=2", 0.98, [0.85, 0.4]);
        let c = run(3, "local", 1.0, [1.0, 1.0]);
        let runs = [(0, &a), (1, &b), (2, &c)];
        let grouped = length_series(&runs, true);
        assert_eq!(grouped.len(), 2);
        let dense = &grouped[0];
        assert_eq!((dense.label.as_str(), dense.seeds), ("dense (2 seeds)", 2));
        assert_eq!(dense.trained_at, 64);
        let at128 = dense.points[1];
        assert_eq!(at128.seq_len, 128);
        assert!((at128.accuracy.mean - 0.9).abs() < 1e-12);
        assert_eq!((at128.accuracy.min, at128.accuracy.max), (0.85, 0.95));
        assert_eq!((at128.solved, at128.runs), (1, 2));
        assert_eq!(at128.solved_fraction(), 0.5);
        assert_eq!(dense.points[0].solved_text(), "2/2 solved");
        assert_eq!(dense.points[2].solved, 0);
        assert_eq!(grouped[1].color, 2);
        let separate = length_series(&runs, false);
        assert_eq!(separate.len(), 3);
        assert_eq!(separate[0].label, "dense seed=1");
        assert_eq!(training_lengths(&separate), [64]);
        assert_eq!(all_lengths(&separate), [64, 128, 256]);
        let csv = lengths_csv(&grouped);
        assert_eq!(csv.lines().count(), 1 + 3 + 3);
        assert!(
            csv.lines()
                .any(|l| l == "dense (2 seeds),64,128,20,0.9000,0.8500,0.9500,0.1000,2,1"),
            "{csv}"
        );
    }

    #[test]
    fn per_length_curves_and_distances_come_from_the_lengths() {
        let mut r = run(1, "dense", 1.0, [0.8, 0.3]);
        let curves = length_curves(&r);
        assert_eq!(curves.len(), 2);
        assert_eq!(curves[0].0, 128);
        let steps: Vec<usize> = curves[0].1.iter().map(|m| m.step).collect();
        assert_eq!(steps, [10, 20]);
        r.by_distance = vec![DistanceAccuracy {
            step: 20,
            counts: Vec::new(),
        }];
        assert!(latest_by_distance(&r, None).is_some_and(|d| d.counts.is_empty()));
        assert!(latest_by_distance(&r, Some(64)).is_some_and(|d| d.counts.is_empty()));
        let at256 = latest_by_distance(&r, Some(256)).expect("evaluated at 256");
        assert_eq!((at256.step, at256.counts[0].distance), (20, 128));
        assert!(latest_by_distance(&r, Some(512)).is_none());
        // One training length: it is the "training" choice, not offered again.
        assert_eq!(distance_lengths([&r]), [128, 256]);
        let mut longer = run(1, "dense", 1.0, [0.8, 0.3]);
        longer.settings.task.seq_len = 32;
        assert_eq!(distance_lengths([&r, &longer]), [32, 64, 128, 256]);
    }

    #[test]
    fn probes_are_offered_at_the_evaluated_lengths() {
        let mut r = run(1, "dense", 1.0, [0.8, 0.3]);
        r.settings.model.positions = crate::config::PositionScheme::Rope;
        r.settings.train.eval_lengths = vec![512];
        assert_eq!(probe_lengths(&r), [64, 128, 256, 512]);
        assert_eq!(default_probe_length(&r), 512);
        r.settings.train.eval_lengths.clear();
        r.lengths.clear();
        assert_eq!(probe_lengths(&r), [64]);
        assert_eq!(default_probe_length(&r), 128);
        // Learned positions end at the training length: the probe starts there.
        r.settings.model.positions = crate::config::PositionScheme::Learned;
        assert_eq!(default_probe_length(&r), 64);
        r.settings.model.layers = 2;
        r.settings.model.heads = 4;
        let longest = max_probe_length(&r);
        assert!(2 * 4 * longest * longest * 4 <= MAX_PROBE_BYTES);
        assert!(2 * 4 * (longest + 1) * (longest + 1) * 4 > MAX_PROBE_BYTES);
    }

    #[test]
    fn evaluations_bring_their_lengths_into_the_view() {
        let mut r = run(1, "dense", 1.0, [0.8, 0.3]);
        r.lengths.clear();
        r.apply(crate::trainer::Event::Eval {
            id: 1,
            metrics: metrics(30, 0.9),
            by_distance: DistanceAccuracy::default(),
            lengths: vec![scores(30, 128, 0.7)],
        });
        assert_eq!(r.lengths.len(), 1);
        let points: Vec<(usize, usize, f64)> = run_points(&r)
            .iter()
            .map(|p| (p.seq_len, p.step, p.accuracy))
            .collect();
        assert_eq!(points, [(64, 30, 0.9), (128, 30, 0.7)]);
    }
}
