//! What the window knows about runs: live ones fed by trainer events and past ones
//! loaded from run records. Plain data, no egui, so it is tested without a window.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use crate::attention::HeadStats;
use crate::attention::Mask;
use crate::config::{RunPlan, Settings};
use crate::inspect::MAX_SNAPSHOT_SIDE;
use crate::records::{
    AttentionSnapshot, BackendInfo, DistanceAccuracy, ForkOrigin, LayerKernelInfo, LengthScores,
    Metrics, Probe, RecordError, RunRecord, RunStatus, RunSummary,
};
use crate::trainer::{Event, RunId};

/// Snapshot bytes one run keeps in the window (a 10,000-step run with snapshots every
/// 10 steps would otherwise hold gigabytes).
pub const MAX_VIEW_SNAPSHOT_BYTES: usize = 64 << 20;

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
    /// Its replicate group: the name without ` seed=<n>` (runs of one group differ
    /// only in their seed).
    pub group: String,
    /// Where it sits in its experiment's grid: `("run", name)` and each sweep axis's
    /// value (empty for a reopened record).
    pub coordinates: Vec<(String, String)>,
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
    /// Held-out accuracy by dependency distance, one per evaluation.
    pub by_distance: Vec<DistanceAccuracy>,
    /// Held-out scores at each of `train.eval_lengths`, per evaluation (steps ascending).
    pub lengths: Vec<LengthScores>,
    /// Every attention snapshot received, in step order.
    pub snapshots: Vec<Arc<AttentionSnapshot>>,
    /// Every head's statistics at each snapshot's step, layer-major, in step order:
    /// kept for every snapshot received, also those later thinned out.
    pub head_stats: Vec<(usize, Vec<HeadStats>)>,
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
    /// The run it was forked from, and at which step (its record's summary says).
    pub forked_from: Option<ForkOrigin>,
    /// The published figure its experiment's `[reference]` gives it.
    pub reference: Option<crate::config::RunReference>,
    /// The in-context Markov task's closed-form losses on its held-out examples.
    pub baselines: Option<crate::tasks::InContextBaselines>,
    /// Whether the trainer reported it paused.
    pub paused: bool,
    /// Warnings the trainer sent.
    pub warnings: Vec<String>,
    /// The attention mask of every layer (for overlays) at the snapshots' side,
    /// built the first time it is drawn; never for a damaged record's settings.
    masks: OnceLock<Vec<Mask>>,
    /// The structural reach of its layers (`analysis::structural_reach`), computed once.
    reach: OnceLock<Option<usize>>,
    /// Whether the settings are valid (a damaged record's are not: no overlays).
    valid: bool,
    /// Bytes of snapshots kept.
    snapshot_bytes: usize,
    /// Floating-point work of one training step (`config::step_flops`), computed once.
    pub step_flops: f64,
    /// Estimated peak memory of the run, bytes (`config::estimate`), computed once.
    pub estimated_bytes: u64,
}

impl RunView {
    /// A run queued from the window.
    pub fn live(id: RunId, plan: &RunPlan) -> Self {
        let mut view = Self::new(
            id,
            plan.name(),
            plan.experiment(),
            plan.settings().clone(),
            true,
        );
        view.coordinates = plan.coordinates().to_vec();
        view.reference = plan.reference().cloned();
        view
    }

    /// A queued run with no events yet.
    fn new(id: RunId, name: &str, experiment: &str, settings: Settings, valid: bool) -> Self {
        Self {
            id,
            name: name.to_string(),
            group: crate::config::group_of(name).to_string(),
            coordinates: Vec::new(),
            experiment: experiment.to_string(),
            source: Source::Live,
            status: RunStatus::Queued,
            train: Vec::new(),
            eval: Vec::new(),
            by_distance: Vec::new(),
            lengths: Vec::new(),
            snapshots: Vec::new(),
            head_stats: Vec::new(),
            probe: None,
            backend: None,
            kernels: Vec::new(),
            record_dir: None,
            summary: None,
            forked_from: None,
            reference: None,
            baselines: None,
            paused: false,
            warnings: Vec::new(),
            masks: OnceLock::new(),
            reach: OnceLock::new(),
            valid,
            snapshot_bytes: 0,
            step_flops: crate::config::step_flops(&settings),
            estimated_bytes: crate::config::estimate(&settings).total(),
            settings,
        }
    }

    /// The attention mask of every layer, averaged down as the snapshots are (at most
    /// [`MAX_SNAPSHOT_SIDE`] per side: never `n x n` at long sequences); empty for an
    /// LSTM or a damaged record. Built on first use.
    pub fn masks(&self) -> &[Mask] {
        self.masks.get_or_init(|| {
            if !self.valid {
                return Vec::new();
            }
            self.settings.model.fitted_layer_masks(
                self.settings.task.seq_len,
                self.settings.train.seed,
                MAX_SNAPSHOT_SIDE,
            )
        })
    }

    /// The largest distance its stack of masks links at every position (`None`: all,
    /// the LSTM, or a sequence too long to compose cheaply). Computed once.
    pub fn reach(&self) -> Option<usize> {
        *self.reach.get_or_init(|| {
            if self.valid {
                super::analysis::structural_reach(&self.settings)
            } else {
                None
            }
        })
    }

    /// Keeps a snapshot; beyond [`MAX_VIEW_SNAPSHOT_BYTES`] every other older
    /// snapshot is dropped (the first and the latest always kept), so a long run
    /// keeps snapshots evenly spread over its history in bounded memory.
    pub fn push_snapshot(&mut self, snapshot: Arc<AttentionSnapshot>) {
        let stats = crate::export::snapshot_stats(
            &self.settings,
            self.probe.as_ref(),
            self.masks(),
            &snapshot,
        );
        if self
            .head_stats
            .last()
            .is_some_and(|(s, _)| *s >= snapshot.step)
        {
            self.head_stats.retain(|(s, _)| *s < snapshot.step);
        }
        self.head_stats.push((snapshot.step, stats));
        self.snapshot_bytes += snapshot.weights.len() * 4;
        self.snapshots.push(snapshot);
        while self.snapshot_bytes > MAX_VIEW_SNAPSHOT_BYTES && self.snapshots.len() > 2 {
            let last = self.snapshots.len() - 1;
            let mut index = 0;
            self.snapshots.retain(|_| {
                let keep = index == 0 || index == last || index % 2 == 0;
                index += 1;
                keep
            });
            self.snapshot_bytes = self.snapshots.iter().map(|s| s.weights.len() * 4).sum();
        }
    }

    /// Loads a finished (or interrupted) run from its record. A `config.toml` that
    /// parses but no longer validates still opens (curves and maps), with a warning
    /// and without mask overlays.
    pub fn from_record(id: RunId, record: &RunRecord) -> Result<Self, RecordError> {
        // Read as every record is (bounds, budget, its text file confined): a record
        // from elsewhere cannot make the window read `~/.ssh/id_rsa` or size a mask
        // from `layers = 2^50`.
        let mut view = match record.resume_plan() {
            Ok(plan) => Self::live(id, &plan),
            Err(why) => {
                // Its settings where they are within every bound (a run over this
                // machine's memory budget still shows its masks), else the defaults.
                let (settings, bounds) = match record.checked_settings() {
                    Ok(settings) => (settings, None),
                    Err(e) => (Settings::default(), Some(e)),
                };
                let mut view = Self::new(id, "", &record.summary.experiment, settings, false);
                view.warnings
                    .push(format!("the record's config.toml is not valid: {why}"));
                if let Some(e) = bounds {
                    view.warnings
                        .push(format!("its settings are not shown (nor its masks): {e}"));
                }
                view
            }
        };
        view.name = record.summary.name.clone();
        view.group = crate::config::group_of(&view.name).to_string();
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
        // Accuracy by distance and at other lengths are additions: a record without
        // them (or with damaged ones) still opens.
        view.by_distance = record.distances().unwrap_or_default();
        view.lengths = record.lengths().unwrap_or_default();
        if let Some((header, snapshots)) = record.snapshots()? {
            view.probe = Some(header.probe);
            for snapshot in snapshots {
                view.push_snapshot(Arc::new(snapshot));
            }
        }
        view.backend = Some(BackendInfo {
            backend: record.summary.backend.clone(),
            adapter: record.summary.adapter.clone(),
            reason: "from the run record".into(),
        });
        view.kernels = record.summary.kernels.clone();
        view.baselines = record.summary.baselines;
        view.summary = Some(record.summary.clone());
        if let Some(origin) = &record.summary.forked_from {
            view.forked_from = Some(origin.clone());
            // A fork is no seed replicate of its parent: its group is its own.
            let id = record.dir.file_name().unwrap_or_default().to_string_lossy();
            view.group = format!("{} [{id}]", view.label());
        }
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

    /// Applies one trainer event of this run (through `RunViews::apply`).
    pub(super) fn apply(&mut self, event: Event) {
        match event {
            Event::Queued { .. } => self.status = RunStatus::Queued,
            Event::Started {
                backend,
                kernels,
                record_dir,
                probe,
                resumed_from,
                baselines,
                ..
            } => {
                if let Some(step) = resumed_from {
                    // Continues from a checkpoint: what came after it is retrained.
                    self.train.retain(|m| m.step <= step);
                    self.eval.retain(|m| m.step <= step);
                    self.by_distance.retain(|d| d.step <= step);
                    self.lengths.retain(|l| l.metrics.step <= step);
                    self.snapshots.retain(|s| s.step <= step);
                    self.head_stats.retain(|(s, _)| *s <= step);
                    self.summary = None;
                }
                self.status = RunStatus::Running;
                self.backend = Some(backend);
                self.kernels = kernels;
                self.record_dir = record_dir;
                self.probe = Some(probe);
                self.baselines = baselines;
            }
            Event::Step { metrics, .. } => self.train.push(metrics),
            Event::Eval {
                metrics,
                by_distance,
                lengths,
                ..
            } => {
                self.eval.push(metrics);
                self.by_distance.push(by_distance);
                self.lengths.extend(lengths);
            }
            Event::Snapshot { snapshot, .. } => self.push_snapshot(snapshot),
            Event::Paused { .. } => self.paused = true,
            Event::Continued { .. } => self.paused = false,
            Event::Warning { message, .. } => self.warnings.push(message),
            Event::Finished { summary, .. } => {
                self.status = summary.status;
                self.paused = false;
                if summary.forked_from.is_some() {
                    self.forked_from.clone_from(&summary.forked_from);
                }
                self.summary = Some(*summary);
            }
        }
    }
}

/// A live run named `name` with the default experiment, trained at 64 and solved at
/// 0.9, with no metrics yet: what the unit tests of the length views start from.
#[cfg(test)]
pub(crate) fn test_run(id: RunId, name: &str) -> RunView {
    let plan = crate::config::Experiment::from_toml("name = \"t\"\n[train]\nsteps = 1\n")
        .and_then(|e| e.plan())
        .map(|mut p| p.remove(0))
        .expect("valid");
    let mut view = RunView::live(id, &plan);
    view.name = name.to_string();
    view.group = crate::config::group_of(name).to_string();
    view.settings.task.seq_len = 64;
    view.settings.train.solved_at = 0.9;
    view
}
