//! What the window knows of a run, without a window: live runs fed by trainer events,
//! snapshots kept in bounded memory, overlay masks no larger than the snapshots.

use std::sync::Arc;

use attnlab::app::MAX_VIEW_SNAPSHOT_BYTES;
use attnlab::app::{RunView, RunViews};
use attnlab::config::{Experiment, RunPlan};
use attnlab::inspect::MAX_SNAPSHOT_SIDE;
use attnlab::records::{AttentionSnapshot, BackendInfo, Metrics, Probe, RunStatus};
use attnlab::trainer::Event;

mod common;
use common::experiments::{first_plan, seeded_sweep};

/// The one run of a file of defaults, ten steps long.
fn plan() -> RunPlan {
    first_plan("name = \"x\"\n[train]\nsteps = 10\n")
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
        baselines: None,
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

/// The Sweep pane's table: runs down, a sweep axis across, the mean over seeds in
/// each cell with how many solved; as CSV too.
#[test]
fn sweep_tables_average_seeds_over_two_axes() {
    use attnlab::app::{SweepMetric, sweep_table, table_csv};
    use attnlab::records::RunSummary;
    let text = seeded_sweep("4, 8", "solved_at = 0.9\n");
    let plans = Experiment::from_toml(&text)
        .and_then(|e| e.plan())
        .expect("valid");
    let mut runs = RunViews::default();
    for (i, plan) in plans.iter().enumerate() {
        let id = runs.next_id();
        runs.push(RunView::live(id, plan));
        // dense solves everything; local only distance 4, and only with seed 1.
        let dense = plan.name().starts_with("dense");
        let near = plan.settings().task.distance == 4;
        let accuracy = if dense || (near && i % 2 == 0) {
            1.0
        } else {
            0.5
        };
        let mut summary = RunSummary::unstarted("s", plan.name(), 1, RunStatus::Finished);
        summary.final_accuracy = Some(accuracy);
        summary.final_loss = Some(1.0 - accuracy);
        summary.steps_per_sec = if dense { 10.0 } else { 20.0 };
        // Local runs measured their peak memory (seed replicates 3 and 5 MiB).
        if !dense {
            summary.peak_memory_bytes = Some(if i % 2 == 0 { 3 << 20 } else { 5 << 20 });
        }
        runs.apply(Event::Finished {
            id,
            summary: Box::new(summary),
        });
    }
    let views: Vec<&RunView> = runs.views.iter().collect();
    let table = sweep_table(&views, "task.distance", "run", SweepMetric::Accuracy);
    assert_eq!(table.xs, ["4", "8"]);
    assert_eq!(table.ys, ["dense", "local"]);
    let cell = |y: usize, x: usize| table.cells[y][x].expect("cell");
    assert_eq!(
        (cell(0, 0).mean, cell(0, 0).solved, cell(0, 0).runs),
        (1.0, 2, 2)
    );
    assert_eq!((cell(1, 0).mean, cell(1, 0).solved), (0.75, 1));
    assert_eq!((cell(1, 1).mean, cell(1, 1).solved), (0.5, 0));
    let front = attnlab::app::pareto(&views, attnlab::app::CostAxis::Time);
    assert_eq!(front.len(), 4, "one point per group");
    let on: Vec<&str> = front
        .iter()
        .filter(|(_, on)| *on)
        .map(|(p, _)| p.group.as_str())
        .collect();
    assert_eq!(
        on,
        ["dense distance=4", "dense distance=8", "local distance=4"]
    );
    // By memory: measured where the runs measured it (the mean over seeds), else
    // estimated, the same for the same model.
    let by_memory = attnlab::app::pareto(&views, attnlab::app::CostAxis::Memory);
    assert!(by_memory.iter().all(|(p, _)| p.memory_mib > 0.0));
    for (p, _) in &by_memory {
        assert_eq!(
            p.memory_measured,
            p.group.starts_with("local"),
            "{}",
            p.group
        );
        if p.memory_measured {
            assert_eq!(p.memory_mib, 4.0, "{}", p.group);
        }
    }
    let memory = |g: &str| {
        by_memory
            .iter()
            .find(|(p, _)| p.group == g)
            .map(|(p, _)| p.memory_mib)
            .expect("group")
    };
    assert_eq!(memory("dense distance=4"), memory("dense distance=8"));
    let csv = table_csv(&table, "task.distance", "run");
    assert!(
        csv.starts_with("run,task.distance,mean,runs,solved\n"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 5);
}
