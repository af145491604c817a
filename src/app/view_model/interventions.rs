//! The Interventions pane's state, without the window: which heads a recorded run
//! needs, measured off the UI thread. At the step the record keeps nearest the
//! scrubber's, each head alone is ablated (zeros or its mean) and patched from a clean
//! into a corrupted input; for a picked head, its ablation at every kept step
//! (`intervention_jobs` does the measuring, one helper thread per request).
//!
//! Results are cached per record, step, mode and batch count: the weights a record
//! keeps at a step never change (a resume only adds later steps), so switching panes
//! or runs never measures again. The pane ranks a head statistic against the ablation
//! drops with `attention::spearman`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded};

pub use super::intervention_jobs::{CurvePoint, HeadGrid, SEED, Wake, nearest_step};
use super::intervention_jobs::{Message, Reporter, grid_job, list_in_background, spawn, steps_job};
use crate::inspect::AblationMode;
use crate::model::HeadRef;

/// Batches each measurement evaluates unless the user picks another count.
pub const DEFAULT_BATCHES: usize = 4;

/// Most batches the pane offers.
pub const MAX_BATCHES: usize = 64;

/// Grids, curves and step listings kept; beyond it the oldest go.
const MAX_CACHED: usize = 64;

/// How often a training run's saved steps are listed again while the pane shows it.
const RELIST_EVERY: Duration = Duration::from_secs(5);

/// A grid's cache key.
#[derive(Clone, Debug, PartialEq, Eq)]
struct GridKey {
    record: PathBuf,
    step: usize,
    mode: AblationMode,
    batches: usize,
}

/// A picked head's curve's cache key.
#[derive(Clone, Debug, PartialEq, Eq)]
struct CurveKey {
    record: PathBuf,
    head: HeadRef,
    mode: AblationMode,
    batches: usize,
}

/// A measurement under way: how far it got.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    /// The run measured.
    pub run: String,
    /// Done, `0..=1`.
    pub fraction: f32,
    /// What it does now.
    pub what: String,
}

struct Job {
    id: u64,
    cancel: Arc<AtomicBool>,
    progress: Progress,
}

impl Job {
    fn new(id: u64, cancel: Arc<AtomicBool>, run: &str) -> Self {
        Self {
            id,
            cancel,
            progress: Progress {
                run: run.to_string(),
                fraction: 0.0,
                what: "starting".into(),
            },
        }
    }
}

/// The saved steps of one record, as last listed.
struct Listing {
    record: PathBuf,
    steps: Option<Result<Vec<usize>, String>>,
    stamp: usize,
    asked: Instant,
    in_flight: bool,
}

/// The pane's choices, its cached results and its running measurements.
pub struct InterventionsView {
    /// What replaces an ablated head's output.
    pub mode: AblationMode,
    /// Batches evaluated per measurement (each the run's `train.batch` examples).
    pub batches: usize,
    /// The head whose ablation over training is drawn.
    pub picked: Option<HeadRef>,
    /// The probe's attention with chosen heads ablated.
    pub ablated: super::ablated_attention::AblatedAttentionView,
    grids: Vec<(GridKey, HeadGrid)>,
    curves: Vec<(CurveKey, Vec<CurvePoint>)>,
    listings: Vec<Listing>,
    grid_job: Option<Job>,
    curve_job: Option<(CurveKey, Job)>,
    grid_error: Option<String>,
    curve_error: Option<String>,
    next_id: u64,
    tx: Sender<Message>,
    rx: Receiver<Message>,
}

impl Default for InterventionsView {
    fn default() -> Self {
        // Progress is dropped when the channel is full; results wait for the frame,
        // which drains the channel every time.
        let (tx, rx) = bounded(256);
        Self {
            mode: AblationMode::Zero,
            batches: DEFAULT_BATCHES,
            picked: None,
            ablated: Default::default(),
            grids: Vec::new(),
            curves: Vec::new(),
            listings: Vec::new(),
            grid_job: None,
            curve_job: None,
            grid_error: None,
            curve_error: None,
            next_id: 0,
            tx,
            rx,
        }
    }
}

/// Adds `value` under `key`, replacing an older one, dropping the oldest beyond
/// [`MAX_CACHED`].
fn cache<K: PartialEq, V>(entries: &mut Vec<(K, V)>, key: K, value: V) {
    entries.retain(|(k, _)| *k != key);
    entries.push((key, value));
    if entries.len() > MAX_CACHED {
        entries.remove(0);
    }
}

impl InterventionsView {
    /// Lists `record`'s saved steps off the UI thread: the first time, and again when
    /// `stamp` (anything that grows as the run trains) changed, at most every few
    /// seconds while `throttle` (the run trains) and at once otherwise.
    pub fn refresh_steps(&mut self, record: &Path, stamp: usize, throttle: bool, wake: &Wake) {
        let now = Instant::now();
        match self.listings.iter_mut().find(|l| l.record == record) {
            Some(l) => {
                let due = !throttle || now.duration_since(l.asked) >= RELIST_EVERY;
                if l.in_flight || l.stamp == stamp || !due {
                    return;
                }
                l.in_flight = true;
                l.asked = now;
                l.stamp = stamp;
            }
            None => {
                if self.listings.len() >= MAX_CACHED {
                    self.listings.retain(|l| l.in_flight);
                }
                self.listings.push(Listing {
                    record: record.to_path_buf(),
                    steps: None,
                    stamp,
                    asked: now,
                    in_flight: true,
                });
            }
        }
        if let Err(e) = list_in_background(self.tx.clone(), wake.clone(), record) {
            self.on_steps(record, Err(e));
        }
    }

    /// `record`'s saved steps as last listed: `None` until the first listing is in.
    pub fn steps(&self, record: &Path) -> Option<&Result<Vec<usize>, String>> {
        self.listings
            .iter()
            .find(|l| l.record == record)
            .and_then(|l| l.steps.as_ref())
    }

    fn on_steps(&mut self, record: &Path, steps: Result<Vec<usize>, String>) {
        if let Some(l) = self.listings.iter_mut().find(|l| l.record == record) {
            l.steps = Some(steps);
            l.in_flight = false;
        }
    }

    /// Measures every head of `record` (named `run` in the progress) at the saved
    /// step nearest `wanted` (`None`: the latest), with the current mode and batches;
    /// a measurement already running is cancelled.
    pub fn measure(&mut self, record: PathBuf, run: &str, wanted: Option<usize>, wake: &Wake) {
        self.cancel_grid();
        self.grid_error = None;
        let (mode, batches) = (self.mode, self.batches());
        match self.start(wake, move |r| grid_job(r, &record, wanted, mode, batches)) {
            Ok((id, cancel)) => self.grid_job = Some(Job::new(id, cancel, run)),
            Err(e) => self.grid_error = Some(e),
        }
    }

    /// Measures `head`'s ablation at every saved step of `record` not measured yet,
    /// with the current mode and batches; a curve being measured is cancelled.
    pub fn measure_curve(&mut self, record: PathBuf, run: &str, head: HeadRef, wake: &Wake) {
        self.cancel_curve();
        self.curve_error = None;
        let key = CurveKey {
            record: record.clone(),
            head,
            mode: self.mode,
            batches: self.batches(),
        };
        let known: Vec<usize> = self.curve_points(&key).iter().map(|p| p.step).collect();
        let (mode, batches) = (key.mode, key.batches);
        match self.start(wake, move |r| {
            steps_job(r, &record, head, mode, batches, &known)
        }) {
            Ok((id, cancel)) => self.curve_job = Some((key, Job::new(id, cancel, run))),
            Err(e) => self.curve_error = Some(e),
        }
    }

    /// Runs `work` as a new job on a helper thread: its id and cancel flag.
    fn start(
        &mut self,
        wake: &Wake,
        work: impl FnOnce(&Reporter) -> Result<(), String> + Send + 'static,
    ) -> Result<(u64, Arc<AtomicBool>), String> {
        self.next_id += 1;
        let cancel = Arc::new(AtomicBool::new(false));
        let reporter = Reporter::new(self.next_id, self.tx.clone(), wake.clone(), cancel.clone());
        spawn(reporter, work).map(|()| (self.next_id, cancel))
    }

    /// Batches per measurement, within the offered range.
    fn batches(&self) -> usize {
        self.batches.clamp(1, MAX_BATCHES)
    }

    /// Stops the grid's measurement (its thread ends after the head it is on).
    pub fn cancel_grid(&mut self) {
        if let Some(job) = self.grid_job.take() {
            job.cancel.store(true, Ordering::Relaxed);
        }
    }

    /// Stops the picked head's measurement (the points measured are kept).
    pub fn cancel_curve(&mut self) {
        if let Some((_, job)) = self.curve_job.take() {
            job.cancel.store(true, Ordering::Relaxed);
        }
    }

    /// Whether anything is being measured.
    pub fn is_busy(&self) -> bool {
        self.grid_job.is_some() || self.curve_job.is_some()
    }

    /// The grid's measurement, while it runs.
    pub fn grid_progress(&self) -> Option<&Progress> {
        self.grid_job.as_ref().map(|j| &j.progress)
    }

    /// The curve's measurement, while it runs: its head and progress.
    pub fn curve_progress(&self) -> Option<(HeadRef, &Progress)> {
        self.curve_job.as_ref().map(|(k, j)| (k.head, &j.progress))
    }

    /// Why the last grid measurement failed.
    pub fn grid_error(&self) -> Option<&str> {
        self.grid_error.as_deref()
    }

    /// Why the last curve measurement failed (at some step).
    pub fn curve_error(&self) -> Option<&str> {
        self.curve_error.as_deref()
    }

    /// The grid of `record` at `step` with the current mode and batches, if measured.
    pub fn grid(&self, record: &Path, step: usize) -> Option<&HeadGrid> {
        let key = GridKey {
            record: record.to_path_buf(),
            step,
            mode: self.mode,
            batches: self.batches(),
        };
        self.grids.iter().find(|(k, _)| *k == key).map(|(_, g)| g)
    }

    /// `head`'s ablation at each saved step of `record` measured so far (current mode
    /// and batches), in step order.
    pub fn curve(&self, record: &Path, head: HeadRef) -> &[CurvePoint] {
        self.curve_points(&CurveKey {
            record: record.to_path_buf(),
            head,
            mode: self.mode,
            batches: self.batches(),
        })
    }

    fn curve_points(&self, key: &CurveKey) -> &[CurvePoint] {
        self.curves
            .iter()
            .find(|(k, _)| k == key)
            .map_or(&[], |(_, points)| points.as_slice())
    }

    /// Applies what the helper threads reported (every frame).
    pub fn poll(&mut self) {
        while let Ok(message) = self.rx.try_recv() {
            match message {
                Message::Steps { record, steps } => self.on_steps(&record, steps),
                Message::Progress {
                    job,
                    fraction,
                    what,
                } => {
                    let running = [
                        self.grid_job.as_mut(),
                        self.curve_job.as_mut().map(|c| &mut c.1),
                    ];
                    if let Some(j) = running.into_iter().flatten().find(|j| j.id == job) {
                        j.progress.fraction = fraction;
                        j.progress.what = what;
                    }
                }
                Message::Grid {
                    job,
                    record,
                    mode,
                    batches,
                    grid,
                } if self.grid_job.as_ref().is_some_and(|j| j.id == job) => {
                    let key = GridKey {
                        record,
                        step: grid.step,
                        mode,
                        batches,
                    };
                    cache(&mut self.grids, key, grid);
                }
                Message::Point { job, point } => {
                    let Some((key, _)) = self.curve_job.as_ref().filter(|(_, j)| j.id == job)
                    else {
                        continue;
                    };
                    let key = key.clone();
                    let mut points = self.curve_points(&key).to_vec();
                    points.retain(|p| p.step != point.step);
                    points.push(point);
                    points.sort_by_key(|p| p.step);
                    cache(&mut self.curves, key, points);
                }
                Message::Ended { job, error } => {
                    if self.grid_job.as_ref().is_some_and(|j| j.id == job) {
                        self.grid_job = None;
                        self.grid_error = error;
                    } else if self.curve_job.as_ref().is_some_and(|(_, j)| j.id == job) {
                        self.curve_job = None;
                        self.curve_error = error;
                    }
                }
                // A cancelled job's grid.
                Message::Grid { .. } => {}
            }
        }
    }
}

impl Drop for InterventionsView {
    /// The window is closing: its measurements stop after the layer or step they are on.
    fn drop(&mut self) {
        self.cancel_grid();
        self.cancel_curve();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_without_weights_is_reported_not_measured() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut view = InterventionsView::default();
        let wake: Wake = Arc::new(|| {});
        view.measure(dir.path().to_path_buf(), "empty", None, &wake);
        let started = Instant::now();
        while view.is_busy() {
            assert!(started.elapsed() < Duration::from_secs(60), "timed out");
            std::thread::sleep(Duration::from_millis(10));
            view.poll();
        }
        assert!(view.grid_error().is_some());
        assert!(view.grid(dir.path(), 0).is_none());
    }

    #[test]
    fn the_cache_keeps_the_newest_entries() {
        let mut entries = Vec::new();
        for i in 0..MAX_CACHED + 3 {
            cache(&mut entries, i, i);
        }
        cache(&mut entries, MAX_CACHED, 0);
        assert_eq!(entries.len(), MAX_CACHED);
        assert_eq!(entries.first().map(|e| e.0), Some(3));
        assert_eq!(entries.last(), Some(&(MAX_CACHED, 0)));
    }
}
