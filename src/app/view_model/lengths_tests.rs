//! Unit tests of the numbers behind evaluation at other lengths (`lengths.rs`).

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
