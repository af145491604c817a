//! The Length pane's "probe at length", without the window: a record's last saved
//! model run on the probe example generated at a chosen (usually longer) length
//! (`trainer::probe_at_length`), on a helper thread ("attnlab-length-probe") that
//! reports over the view's channel, then every head's statistics on that attention
//! the way `run_views` computes them for the training length. So the pane shows what
//! a head does beyond the lengths it saw.
//!
//! A cancelled probe is forgotten: its thread ends after the pass it is on and its
//! result is dropped. A panic ends it with a message. Results are cached per record,
//! length and step.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_channel::{Receiver, Sender, bounded};

use super::intervention_jobs::Wake;
use crate::attention::HeadStats;
use crate::config::{BackendChoice, Settings};
use crate::records::{AttentionSnapshot, Probe};
use crate::trainer::{MAX_SNAPSHOT_SIDE, RunId, probe_at_length};

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

/// What the helper thread reports.
enum Message {
    /// What the job does now.
    Phase { job: u64, what: String },
    /// The job ended: its result, or why it failed.
    Done {
        job: u64,
        result: Result<ProbedLength, String>,
    },
}

/// The section's choices, its cached results and its running probe.
pub struct LengthProbeView {
    /// The run probed; `None`: the selected run.
    pub run: Option<RunId>,
    /// The length chosen; `None`: the run's default (`lengths::default_probe_length`).
    pub seq_len: Option<usize>,
    results: Vec<Arc<ProbedLength>>,
    /// The running probe: its id, cancel flag, key and what it does now.
    job: Option<(u64, Arc<AtomicBool>, Key, String)>,
    /// The last failure, with what it was for.
    error: Option<(Key, String)>,
    next_id: u64,
    tx: Sender<Message>,
    rx: Receiver<Message>,
}

impl Default for LengthProbeView {
    fn default() -> Self {
        let (tx, rx) = bounded(64);
        Self {
            run: None,
            seq_len: None,
            results: Vec::new(),
            job: None,
            error: None,
            next_id: 0,
            tx,
            rx,
        }
    }
}

impl LengthProbeView {
    /// Probes the last checkpoint of `record` (a run with `settings`) at `seq_len` on
    /// a helper thread; a probe running is cancelled.
    pub fn start(&mut self, record: &Path, settings: &Settings, seq_len: usize, wake: &Wake) {
        self.cancel();
        self.next_id += 1;
        let job = self.next_id;
        let key = Key {
            record: record.to_path_buf(),
            seq_len,
        };
        self.error = None;
        let cancel = Arc::new(AtomicBool::new(false));
        let (tx, wake2, stop) = (self.tx.clone(), wake.clone(), cancel.clone());
        let (dir, settings) = (key.record.clone(), settings.clone());
        let spawned = std::thread::Builder::new()
            .name("attnlab-length-probe".into())
            .spawn(move || {
                let phase = |what: String| {
                    if tx.try_send(Message::Phase { job, what }).is_ok() {
                        wake2();
                    }
                };
                let done = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    compute(&dir, &settings, seq_len, &stop, &phase)
                }));
                let result = done.unwrap_or_else(|_| {
                    Err("probing at this length failed unexpectedly".to_string())
                });
                // Ignored: if the window is gone nobody waits for the maps.
                let _ = tx.send(Message::Done { job, result });
                wake2();
            });
        match spawned {
            Ok(_) => self.job = Some((job, cancel, key, "starting".into())),
            Err(e) => self.error = Some((key, format!("cannot start a helper thread: {e}"))),
        }
    }

    /// Stops waiting for the probe running (its thread ends after the pass it is on).
    pub fn cancel(&mut self) {
        if let Some((_, cancel, _, _)) = self.job.take() {
            cancel.store(true, Ordering::Relaxed);
        }
    }

    /// What the running probe does now, and the length it probes, while it runs.
    pub fn progress(&self) -> Option<(usize, &str)> {
        self.job
            .as_ref()
            .map(|(_, _, key, what)| (key.seq_len, what.as_str()))
    }

    /// Why the last probe of `record` at `seq_len` failed.
    pub fn error(&self, record: &Path, seq_len: usize) -> Option<&str> {
        self.error
            .as_ref()
            .filter(|(k, _)| k.record == record && k.seq_len == seq_len)
            .map(|(_, e)| e.as_str())
    }

    /// The probe of `record` at `seq_len`, if computed.
    pub fn result(&self, record: &Path, seq_len: usize) -> Option<Arc<ProbedLength>> {
        self.results
            .iter()
            .rev()
            .find(|r| r.record == record && r.seq_len == seq_len)
            .cloned()
    }

    /// Applies what the helper thread reported (every frame the section is drawn).
    pub fn poll(&mut self) {
        while let Ok(message) = self.rx.try_recv() {
            match message {
                Message::Phase { job, what } => {
                    if let Some(j) = self.job.as_mut().filter(|j| j.0 == job) {
                        j.3 = what;
                    }
                }
                Message::Done { job, result } => {
                    let Some((_, _, key, _)) = self.job.take_if(|j| j.0 == job) else {
                        // A cancelled probe's result: nobody asked for it any more.
                        continue;
                    };
                    match result {
                        Ok(r) => {
                            self.results
                                .retain(|o| !(o.record == r.record && o.seq_len == r.seq_len));
                            self.results.push(Arc::new(r));
                            if self.results.len() > MAX_CACHED {
                                self.results.remove(0);
                            }
                        }
                        Err(e) => self.error = Some((key, e)),
                    }
                }
            }
        }
    }
}

impl Drop for LengthProbeView {
    /// The window is closing: the probe's result is no longer waited for.
    fn drop(&mut self) {
        self.cancel();
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
    let probed = probe_at_length(dir, seq_len, BackendChoice::Cpu).map_err(|e| e.problem)?;
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
