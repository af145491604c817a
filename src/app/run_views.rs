//! What the window knows about runs: live ones fed by trainer events and past ones
//! loaded from run records. Plain data, no egui, so it is tested without a window.

use std::path::PathBuf;
use std::sync::Arc;

use crate::attention::Mask;
use crate::config::{RunPlan, Settings};
use crate::records::{
    AttentionSnapshot, BackendInfo, LayerKernelInfo, Metrics, Probe, RecordError, RunRecord,
    RunStatus, RunSummary,
};
use crate::trainer::{Event, RunId};

/// Where a run's data comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// Trained in this session.
    Live,
    /// Loaded from a run record folder.
    Record(PathBuf),
}

/// One run as the window shows it.
#[derive(Clone, Debug)]
pub struct RunView {
    /// Unique within the window session (also the trainer's run id for live runs).
    pub id: RunId,
    /// The run's name.
    pub name: String,
    /// The experiment it belongs to.
    pub experiment: String,
    /// Its resolved settings.
    pub settings: Settings,
    /// Live or from disk.
    pub source: Source,
    /// Current status.
    pub status: RunStatus,
    /// Training metrics per step.
    pub train: Vec<Metrics>,
    /// Held-out metrics.
    pub eval: Vec<Metrics>,
    /// Every attention snapshot received, in step order.
    pub snapshots: Vec<Arc<AttentionSnapshot>>,
    /// The probe example the snapshots are of.
    pub probe: Option<Probe>,
    /// Backend, once started.
    pub backend: Option<BackendInfo>,
    /// How each layer computes attention, once started.
    pub kernels: Vec<LayerKernelInfo>,
    /// Record folder, once known.
    pub record_dir: Option<PathBuf>,
    /// Final summary, once finished.
    pub summary: Option<RunSummary>,
    /// Whether the trainer reported it paused.
    pub paused: bool,
    /// Warnings the trainer sent.
    pub warnings: Vec<String>,
    /// The attention mask of every layer (for overlays), built once; empty when
    /// the run's settings are not valid (a damaged record).
    pub masks: Vec<Mask>,
}

impl RunView {
    /// A run queued from the window.
    pub fn live(id: RunId, plan: &RunPlan) -> Self {
        Self::new(
            id,
            plan.name(),
            plan.experiment(),
            plan.settings().clone(),
            plan.layer_masks(),
        )
    }

    /// A queued run with no events yet.
    fn new(id: RunId, name: &str, experiment: &str, settings: Settings, masks: Vec<Mask>) -> Self {
        Self {
            id,
            name: name.to_string(),
            experiment: experiment.to_string(),
            settings,
            source: Source::Live,
            status: RunStatus::Queued,
            train: Vec::new(),
            eval: Vec::new(),
            snapshots: Vec::new(),
            probe: None,
            backend: None,
            kernels: Vec::new(),
            record_dir: None,
            summary: None,
            paused: false,
            warnings: Vec::new(),
            masks,
        }
    }

    /// Loads a finished (or interrupted) run from its record. A `config.toml` that
    /// parses but no longer validates still opens (curves and maps), with a warning
    /// and without mask overlays.
    pub fn from_record(id: RunId, record: &RunRecord) -> Result<Self, RecordError> {
        let experiment = record.experiment()?;
        let mut view = match experiment.plan() {
            Ok(mut plans) if !plans.is_empty() => Self::live(id, &plans.remove(0)),
            planned => {
                let settings = experiment
                    .run_settings(0)
                    .unwrap_or_else(|_| experiment.base.clone());
                let why = match planned {
                    Err(e) => e.to_string(),
                    Ok(_) => "it has no run".into(),
                };
                let mut view = Self::new(id, "", &experiment.name, settings, Vec::new());
                view.warnings
                    .push(format!("the record's config.toml is not valid: {why}"));
                view
            }
        };
        view.name = record.summary.name.clone();
        view.source = Source::Record(record.dir.clone());
        view.record_dir = Some(record.dir.clone());
        view.status = match record.summary.status {
            // A record still saying "running" was cut off (the process ended).
            RunStatus::Running | RunStatus::Queued => RunStatus::Stopped,
            other => other,
        };
        for row in record.metrics()? {
            if row.eval {
                view.eval.push(row.metrics);
            } else {
                view.train.push(row.metrics);
            }
        }
        if let Some((header, snapshots)) = record.snapshots()? {
            view.probe = Some(header.probe);
            view.snapshots = snapshots.into_iter().map(Arc::new).collect();
        }
        view.backend = Some(BackendInfo {
            backend: record.summary.backend.clone(),
            adapter: record.summary.adapter.clone(),
            reason: "from the run record".into(),
        });
        view.kernels = record.summary.kernels.clone();
        view.summary = Some(record.summary.clone());
        Ok(view)
    }

    /// Steps the run is configured for.
    pub fn planned_steps(&self) -> usize {
        self.settings.train.steps
    }

    /// Optimiser steps done.
    pub fn steps_done(&self) -> usize {
        self.train.last().map_or(0, |m| m.step)
    }

    /// Fraction done, 0..=1.
    pub fn progress(&self) -> f32 {
        if self.status == RunStatus::Finished {
            return 1.0;
        }
        (self.steps_done() as f32 / self.planned_steps().max(1) as f32).clamp(0.0, 1.0)
    }

    /// Training steps per second of compute (from the trainer's own timing).
    pub fn steps_per_sec(&self) -> Option<f64> {
        if let Some(s) = &self.summary {
            return (s.steps_per_sec > 0.0).then_some(s.steps_per_sec);
        }
        let last = self.train.last()?;
        (last.elapsed_secs > 0.0).then(|| last.step as f64 / last.elapsed_secs)
    }

    /// Estimated seconds left, while running.
    pub fn eta_secs(&self) -> Option<f64> {
        if self.status != RunStatus::Running {
            return None;
        }
        let rate = self.steps_per_sec()?;
        Some(self.planned_steps().saturating_sub(self.steps_done()) as f64 / rate)
    }

    /// The last held-out accuracy.
    pub fn final_accuracy(&self) -> Option<f64> {
        self.summary
            .as_ref()
            .and_then(|s| s.final_accuracy)
            .or_else(|| self.eval.last().map(|m| m.accuracy))
    }

    /// The index of the last snapshot taken at or before `step`.
    pub fn snapshot_at(&self, step: usize) -> Option<usize> {
        match self.snapshots.binary_search_by_key(&step, |s| s.step) {
            Ok(i) => Some(i),
            Err(0) => None,
            Err(i) => Some(i - 1),
        }
    }

    /// The message to show when the run did not finish.
    pub fn message(&self) -> Option<&str> {
        self.summary.as_ref().and_then(|s| s.message.as_deref())
    }

    fn apply(&mut self, event: Event) {
        match event {
            Event::Queued { .. } => self.status = RunStatus::Queued,
            Event::Started {
                backend,
                kernels,
                record_dir,
                probe,
                ..
            } => {
                self.status = RunStatus::Running;
                self.backend = Some(backend);
                self.kernels = kernels;
                self.record_dir = record_dir;
                self.probe = Some(probe);
            }
            Event::Step { metrics, .. } => self.train.push(metrics),
            Event::Eval { metrics, .. } => self.eval.push(metrics),
            Event::Snapshot { snapshot, .. } => self.snapshots.push(snapshot),
            Event::Paused { .. } => self.paused = true,
            Event::Resumed { .. } => self.paused = false,
            Event::Warning { message, .. } => self.warnings.push(message),
            Event::Finished { summary, .. } => {
                self.status = summary.status;
                self.paused = false;
                self.summary = Some(*summary);
            }
        }
    }
}

/// Every run the window knows, in the order they were added.
#[derive(Debug, Default)]
pub struct RunViews {
    /// The runs.
    pub views: Vec<RunView>,
    next_id: RunId,
}

impl RunViews {
    /// A fresh id for a new run.
    pub fn next_id(&mut self) -> RunId {
        self.next_id += 1;
        self.next_id
    }

    /// Adds a run.
    pub fn push(&mut self, view: RunView) {
        self.views.push(view);
    }

    /// The run with `id`.
    pub fn get(&self, id: RunId) -> Option<&RunView> {
        self.views.iter().find(|v| v.id == id)
    }

    /// Applies one trainer event; events of unknown runs are ignored.
    pub fn apply(&mut self, event: Event) {
        let id = event.run_id();
        if let Some(view) = self.views.iter_mut().find(|v| v.id == id) {
            view.apply(event);
        }
    }

    /// Whether any run is queued or training.
    pub fn any_active(&self) -> bool {
        self.views.iter().any(|v| !v.status.is_terminal())
    }

    /// Whether a record folder is already open.
    pub fn has_record(&self, dir: &std::path::Path) -> bool {
        self.views
            .iter()
            .any(|v| v.record_dir.as_deref() == Some(dir))
    }

    /// Removes every run that is not queued or training.
    pub fn clear_finished(&mut self) {
        self.views.retain(|v| !v.status.is_terminal());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Experiment;

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
}
