//! The Length pane's "probe at length", without the window: a record's last saved
//! model run on the probe example generated at a chosen (usually longer) length
//! (`inspect::probe_at_length`), on a helper thread ("attnlab-length-probe") that
//! reports over the view's channel, then every head's statistics on that attention
//! the way `run_views` computes them for the training length. So the pane shows what
//! a head does beyond the lengths it saw.
//!
//! The thread is `keyed_job`'s: a cancelled probe ends after the pass it is on, a
//! panic ends it with a message. Results are cached per record and length.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::intervention_jobs::Wake;
use super::keyed_job::KeyedJobs;
use crate::attention::{HeadStats, Stat};
use crate::config::{BackendChoice, Settings};
use crate::inspect::{MAX_SNAPSHOT_SIDE, probe_at_length};
use crate::records::{AttentionSnapshot, Probe};
use crate::trainer::RunId;

/// Results kept; beyond it the oldest go (each is a full set of attention maps).
const MAX_CACHED: usize = 6;

/// The probe's attention at one length, with every head's statistics.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbedLength {
    /// The record's folder.
    pub record: PathBuf,
    /// The run's training length (`task.seq_len`).
    pub trained_at: usize,
    /// The step of the weights (the record's last checkpoint).
    pub step: usize,
    /// The length probed at.
    pub seq_len: usize,
    /// The probe example at that length.
    pub probe: Probe,
    /// Every layer's and head's attention on it (maps downsampled beyond
    /// [`MAX_SNAPSHOT_SIDE`]).
    pub snapshot: AttentionSnapshot,
    /// Every head's statistics on it, layer-major.
    pub stats: Vec<HeadStats>,
}

impl ProbedLength {
    /// `trained at 64, probed at 256 (step 1000)`.
    pub fn caption(&self) -> String {
        format!(
            "trained at {}, probed at {} (weights of step {})",
            self.trained_at, self.seq_len, self.step
        )
    }
}

/// What the probe of a record at a length is keyed by.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Key {
    record: PathBuf,
    seq_len: usize,
}

/// The section's choices, its cached results and its running probe.
pub struct LengthProbeView {
    /// The run probed; `None`: the selected run.
    pub run: Option<RunId>,
    /// The length chosen and the run it was chosen for; `None`, or another run: the
    /// run's default (`lengths::default_probe_length`).
    pub seq_len: Option<(RunId, usize)>,
    /// The head table's sort column (descending); `None`: layer and head order.
    pub sort: Option<Stat>,
    jobs: KeyedJobs<Key, ProbedLength>,
}

impl Default for LengthProbeView {
    fn default() -> Self {
        Self {
            run: None,
            seq_len: None,
            sort: None,
            jobs: KeyedJobs::new(
                "attnlab-length-probe",
                "probing at this length failed unexpectedly",
                MAX_CACHED,
            ),
        }
    }
}

impl LengthProbeView {
    /// Probes the last checkpoint of `record` (a run with `settings`) at `seq_len` on
    /// a helper thread; a probe running is cancelled.
    pub fn start(&mut self, record: &Path, settings: &Settings, seq_len: usize, wake: &Wake) {
        let key = Key {
            record: record.to_path_buf(),
            seq_len,
        };
        let settings = settings.clone();
        self.jobs.start(key, wake, move |key, stop, phase| {
            compute(&key.record, &settings, key.seq_len, stop, phase)
        });
    }

    /// Stops waiting for the probe running (its thread ends after the pass it is on).
    pub fn cancel(&mut self) {
        self.jobs.cancel();
    }

    /// What the running probe does now, and the length it probes, while it runs.
    pub fn progress(&self) -> Option<(usize, &str)> {
        self.jobs.running().map(|(key, what)| (key.seq_len, what))
    }

    /// Why the last probe of `record` at `seq_len` failed.
    pub fn error(&self, record: &Path, seq_len: usize) -> Option<&str> {
        self.jobs
            .error()
            .filter(|(k, _)| k.record == record && k.seq_len == seq_len)
            .map(|(_, e)| e)
    }

    /// The probe of `record` at `seq_len`, if computed.
    pub fn result(&self, record: &Path, seq_len: usize) -> Option<Arc<ProbedLength>> {
        self.jobs.result(&Key {
            record: record.to_path_buf(),
            seq_len,
        })
    }

    /// Applies what the helper thread reported (every frame the section is drawn).
    pub fn poll(&mut self) {
        self.jobs.poll();
    }
}

/// Runs the probe and computes every head's statistics on its attention.
fn compute(
    dir: &Path,
    settings: &Settings,
    seq_len: usize,
    cancel: &AtomicBool,
    phase: &dyn Fn(String),
) -> Result<ProbedLength, String> {
    phase(format!(
        "running the last saved model on the probe at length {seq_len}"
    ));
    let probed =
        probe_at_length(dir, seq_len, BackendChoice::Cpu).map_err(|e| e.problem.to_string())?;
    if cancel.load(Ordering::Relaxed) {
        return Err("cancelled".into());
    }
    phase("head statistics".into());
    let masks =
        settings
            .model
            .fitted_layer_masks(probed.seq_len, settings.train.seed, MAX_SNAPSHOT_SIDE);
    let stats =
        crate::export::snapshot_stats(settings, Some(&probed.probe), &masks, &probed.snapshot);
    Ok(ProbedLength {
        record: dir.to_path_buf(),
        trained_at: settings.task.seq_len,
        step: probed.step,
        seq_len: probed.seq_len,
        probe: probed.probe,
        snapshot: probed.snapshot,
        stats,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait(view: &mut LengthProbeView) {
        let started = std::time::Instant::now();
        while view.progress().is_some() {
            assert!(started.elapsed().as_secs() < 60, "timed out");
            std::thread::sleep(std::time::Duration::from_millis(10));
            view.poll();
        }
    }

    #[test]
    fn a_folder_without_a_record_is_reported_for_its_length() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut view = LengthProbeView::default();
        let wake: Wake = Arc::new(|| {});
        view.start(dir.path(), &Settings::default(), 256, &wake);
        assert_eq!(view.progress().map(|(n, _)| n), Some(256));
        wait(&mut view);
        assert!(view.error(dir.path(), 256).is_some());
        assert!(view.error(dir.path(), 128).is_none(), "another length");
        assert!(view.result(dir.path(), 256).is_none());
    }

    #[test]
    fn a_cancelled_probe_is_forgotten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut view = LengthProbeView::default();
        let wake: Wake = Arc::new(|| {});
        view.start(dir.path(), &Settings::default(), 256, &wake);
        view.cancel();
        assert!(view.progress().is_none());
        std::thread::sleep(std::time::Duration::from_millis(200));
        view.poll();
        assert!(view.error(dir.path(), 256).is_none(), "nobody waits for it");
    }
}
