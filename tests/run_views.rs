//! What the window knows of a run, without a window: live runs fed by trainer events,
//! snapshots kept in bounded memory, overlay masks no larger than the snapshots.

use std::sync::Arc;

use attnlab::app::MAX_VIEW_SNAPSHOT_BYTES;
use attnlab::app::{RunView, RunViews};
use attnlab::config::{Experiment, RunPlan};
use attnlab::records::{AttentionSnapshot, BackendInfo, Metrics, Probe, RunStatus};
use attnlab::trainer::{Event, MAX_SNAPSHOT_SIDE};

fn plan() -> RunPlan {
    Experiment::from_toml("name = \"x\"\n[train]\nsteps = 10\n")
        .and_then(|e| e.plan())
        .map(|mut p| p.remove(0))
        .expect("valid")
}

fn metrics(step: usize) -> Metrics {
    Metrics {
        step,
        loss: 1.0,
        accuracy: 0.5,
        elapsed_secs: step as f64 * 0.5,
    }
}

#[test]
fn events_update_status_metrics_and_rates() {
    let mut runs = RunViews::default();
    let id = runs.next_id();
    runs.push(RunView::live(id, &plan()));
    runs.apply(Event::Queued { id });
    assert!(runs.any_active());
    runs.apply(Event::Started {
        id,
        backend: BackendInfo {
            backend: "cpu".into(),
            adapter: "flex".into(),
            reason: "test".into(),
        },
        kernels: Vec::new(),
        record_dir: None,
        params: 1,
        probe: Probe::default(),
        resumed_from: None,
    });
    for step in 1..=4 {
        runs.apply(Event::Step {
            id,
            metrics: metrics(step),
        });
    }
    runs.apply(Event::Step {
        id: 999,
        metrics: metrics(1),
    });
    let v = runs.get(id).expect("run");
    assert_eq!(v.status, RunStatus::Running);
    assert_eq!(v.steps_done(), 4);
    assert!((v.progress() - 0.4).abs() < 1e-6);
    assert_eq!(v.steps_per_sec(), Some(2.0));
    assert_eq!(v.eta_secs(), Some(3.0));
}

#[test]
fn snapshots_kept_are_bounded_in_bytes_and_spread_in_time() {
    let mut v = RunView::live(1, &plan());
    // 1 MiB each: 200 of them would be 200 MiB.
    for step in 0..200 {
        v.push_snapshot(Arc::new(AttentionSnapshot {
            step,
            layers: 1,
            heads: 1,
            n: 512,
            seq_len: 512,
            weights: vec![0.0; 512 * 512],
        }));
    }
    let bytes: usize = v.snapshots.iter().map(|s| s.weights.len() * 4).sum();
    assert!(bytes <= MAX_VIEW_SNAPSHOT_BYTES, "{bytes}");
    assert!(v.snapshots.len() >= 16, "{}", v.snapshots.len());
    assert_eq!(v.snapshots.first().map(|s| s.step), Some(0));
    assert_eq!(
        v.snapshots.last().map(|s| s.step),
        Some(199),
        "the latest is kept"
    );
    assert!(v.snapshots.windows(2).all(|w| w[0].step < w[1].step));
}

#[test]
fn overlay_masks_are_no_larger_than_the_snapshots() {
    let long = Experiment::from_toml(
        "name = \"x\"\n[task]\nseq_len = 4096\ndistance = 8\n[model]\nattention = { kind = \"local\", window = 8 }\n",
    )
    .and_then(|e| e.plan())
    .map(|mut p| p.remove(0))
    .expect("valid");
    let v = RunView::live(1, &long);
    assert_eq!(v.masks().len(), 2);
    assert!(v.masks().iter().all(|m| m.n() == MAX_SNAPSHOT_SIDE));
}

#[test]
fn snapshot_lookup_picks_the_last_at_or_before() {
    let mut v = RunView::live(1, &plan());
    for step in [0, 5, 10] {
        v.snapshots.push(Arc::new(AttentionSnapshot {
            step,
            layers: 1,
            heads: 1,
            n: 1,
            seq_len: 1,
            weights: vec![1.0],
        }));
    }
    assert_eq!(v.snapshot_at(0), Some(0));
    assert_eq!(v.snapshot_at(7), Some(1));
    assert_eq!(v.snapshot_at(100), Some(2));
}
