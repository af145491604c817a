//! The Interventions pane's "Attention with heads ablated", without the window: the
//! run's probe attention at a saved step, every layer and head, computed twice on a
//! helper thread (as trained, and with the ticked heads zeroed;
//! `trainer::probe_attention`), so the pane can show how later layers' attention
//! changes when an earlier head is removed.
//!
//! Results are cached per record, step and ablated set: the weights a record keeps at
//! a step never change.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_channel::{Receiver, Sender, bounded};

use super::intervention_jobs::Wake;
use crate::config::BackendChoice;
use crate::model::HeadRef;
use crate::trainer::{LoadedRun, probe_attention};

/// Results kept; beyond it the oldest go (each is two full sets of attention maps).
const MAX_CACHED: usize = 8;

/// The probe's attention of every head, as trained and with some heads ablated.
#[derive(Clone, Debug, PartialEq)]
pub struct AblatedAttention {
    /// The step of the weights.
    pub step: usize,
    /// Layers of the model.
    pub layers: usize,
    /// Heads per layer.
    pub heads: usize,
    /// The probe's length: each map is `n x n`.
    pub n: usize,
    /// The heads zeroed, sorted.
    pub ablated: Vec<HeadRef>,
    /// Per layer, `[heads, n, n]`: nothing ablated.
    pub clean_maps: Vec<Vec<f32>>,
    /// Per layer, `[heads, n, n]`: with [`Self::ablated`] zeroed.
    pub ablated_maps: Vec<Vec<f32>>,
}

impl AblatedAttention {
    /// The `n x n` map (row = query, column = key) of `head`, as trained or ablated;
    /// empty where there is none.
    pub fn map(&self, ablated: bool, head: HeadRef) -> &[f32] {
        let maps = if ablated {
            &self.ablated_maps
        } else {
            &self.clean_maps
        };
        let size = self.n * self.n;
        maps.get(head.layer)
            .and_then(|m| m.get(head.head * size..(head.head + 1) * size))
            .unwrap_or(&[])
    }

    /// The ablated set as the window names heads: `1.2, 2.1`.
    pub fn ablated_label(&self) -> String {
        heads_label(&self.ablated)
    }
}

/// `1.2, 2.1`, or `no head` for an empty set.
pub fn heads_label(heads: &[HeadRef]) -> String {
    if heads.is_empty() {
        return "no head".into();
    }
    heads
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A result's cache key.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Key {
    record: PathBuf,
    step: usize,
    ablated: Vec<HeadRef>,
}

/// What the helper thread reports.
enum Message {
    /// What the job does now.
    Phase { job: u64, what: String },
    /// The job ended: its result, or why it failed.
    Done {
        job: u64,
        key: Key,
        result: Result<AblatedAttention, String>,
    },
}

/// The section's choices, its cached results and its running computation.
pub struct AblatedAttentionView {
    /// The heads ticked; `None` until the user ticks one (then the head picked in
    /// the grids is taken).
    pub ticked: Option<Vec<HeadRef>>,
    results: Vec<(Key, Arc<AblatedAttention>)>,
    /// The running job: its id, cancel flag and what it does now.
    job: Option<(u64, Arc<AtomicBool>, String)>,
    error: Option<String>,
    next_id: u64,
    tx: Sender<Message>,
    rx: Receiver<Message>,
}

impl Default for AblatedAttentionView {
    fn default() -> Self {
        let (tx, rx) = bounded(64);
        Self {
            ticked: None,
            results: Vec::new(),
            job: None,
            error: None,
            next_id: 0,
            tx,
            rx,
        }
    }
}

impl AblatedAttentionView {
    /// The heads to ablate: those ticked, else `picked`, sorted.
    pub fn chosen(&self, picked: Option<HeadRef>) -> Vec<HeadRef> {
        let mut heads = match &self.ticked {
            Some(t) => t.clone(),
            None => picked.into_iter().collect(),
        };
        heads.sort_unstable();
        heads.dedup();
        heads
    }

    /// Ticks or unticks `head` (starting from `picked` the first time).
    pub fn toggle(&mut self, head: HeadRef, on: bool, picked: Option<HeadRef>) {
        let mut heads = self.chosen(picked);
        heads.retain(|h| *h != head);
        if on {
            heads.push(head);
            heads.sort_unstable();
        }
        self.ticked = Some(heads);
    }

    /// Computes the probe's attention of `record` at `step`, as trained and with
    /// `ablated` zeroed, on a helper thread; a computation running is cancelled.
    pub fn draw(&mut self, record: &Path, step: usize, ablated: Vec<HeadRef>, wake: &Wake) {
        self.cancel();
        self.error = None;
        self.next_id += 1;
        let job = self.next_id;
        let cancel = Arc::new(AtomicBool::new(false));
        let key = Key {
            record: record.to_path_buf(),
            step,
            ablated,
        };
        let (tx, wake2, stop) = (self.tx.clone(), wake.clone(), cancel.clone());
        let spawned = std::thread::Builder::new()
            .name("attnlab-interventions".into())
            .spawn(move || {
                let phase = |what: &str| {
                    let what = what.to_string();
                    if tx.try_send(Message::Phase { job, what }).is_ok() {
                        wake2();
                    }
                };
                let done =
                    std::panic::catch_unwind(AssertUnwindSafe(|| compute(&key, &stop, &phase)));
                let result = done.unwrap_or_else(|_| {
                    Err("drawing the attention failed unexpectedly".to_string())
                });
                // Ignored: if the window is gone nobody waits for the maps.
                let _ = tx.send(Message::Done { job, key, result });
                wake2();
            });
        match spawned {
            Ok(_) => self.job = Some((job, cancel, "starting".into())),
            Err(e) => self.error = Some(format!("cannot start a helper thread: {e}")),
        }
    }

    /// Stops the computation running (it ends after the pass it is on).
    pub fn cancel(&mut self) {
        if let Some((_, cancel, _)) = self.job.take() {
            cancel.store(true, Ordering::Relaxed);
        }
    }

    /// What the running computation does now, while it runs.
    pub fn progress(&self) -> Option<&str> {
        self.job.as_ref().map(|(_, _, what)| what.as_str())
    }

    /// Why the last computation failed.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// The result for `record` at `step` with `ablated` (sorted) zeroed, if computed.
    pub fn result(
        &self,
        record: &Path,
        step: usize,
        ablated: &[HeadRef],
    ) -> Option<Arc<AblatedAttention>> {
        self.results
            .iter()
            .find(|(k, _)| k.record == record && k.step == step && k.ablated == ablated)
            .map(|(_, r)| r.clone())
    }

    /// Applies what the helper thread reported (every frame the section is drawn).
    pub fn poll(&mut self) {
        while let Ok(message) = self.rx.try_recv() {
            match message {
                Message::Phase { job, what } => {
                    if let Some(j) = self.job.as_mut().filter(|j| j.0 == job) {
                        j.2 = what;
                    }
                }
                Message::Done { job, key, result } => {
                    let current = self.job.as_ref().is_some_and(|j| j.0 == job);
                    if current {
                        self.job = None;
                    }
                    match result {
                        Ok(r) => {
                            self.results.retain(|(k, _)| *k != key);
                            self.results.push((key, Arc::new(r)));
                            if self.results.len() > MAX_CACHED {
                                self.results.remove(0);
                            }
                        }
                        Err(e) if current => self.error = Some(e),
                        Err(_) => {}
                    }
                }
            }
        }
    }
}

impl Drop for AblatedAttentionView {
    /// The window is closing: the computation stops after the pass it is on.
    fn drop(&mut self) {
        self.cancel();
    }
}

/// Loads the weights and runs the probe twice.
fn compute(
    key: &Key,
    cancel: &AtomicBool,
    phase: &dyn Fn(&str),
) -> Result<AblatedAttention, String> {
    phase(&format!("loading the weights of step {}", key.step));
    let run =
        LoadedRun::load(&key.record, Some(key.step), BackendChoice::Cpu).map_err(|e| e.problem)?;
    let stopped = || "cancelled".to_string();
    if cancel.load(Ordering::Relaxed) {
        return Err(stopped());
    }
    phase("the probe's attention as trained");
    let clean_maps = probe_attention(&run, &[]).map_err(|e| e.problem)?;
    if cancel.load(Ordering::Relaxed) {
        return Err(stopped());
    }
    phase(&format!(
        "the probe's attention with {} ablated",
        heads_label(&key.ablated)
    ));
    let ablated_maps = probe_attention(&run, &key.ablated).map_err(|e| e.problem)?;
    let (layers, heads) = run.shape();
    let per_map = clean_maps.first().map_or(0, |m| m.len() / heads.max(1));
    let n = per_map.isqrt();
    if n * n != per_map {
        return Err(format!("attention maps of {per_map} cells are not square"));
    }
    Ok(AblatedAttention {
        step: key.step,
        layers,
        heads,
        n,
        ablated: key.ablated.clone(),
        clean_maps,
        ablated_maps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_picked_head_is_chosen_until_the_user_ticks() {
        let (a, b) = (HeadRef { layer: 0, head: 1 }, HeadRef { layer: 1, head: 0 });
        let mut view = AblatedAttentionView::default();
        assert_eq!(view.chosen(None), []);
        assert_eq!(view.chosen(Some(a)), [a]);
        view.toggle(b, true, Some(a));
        assert_eq!(view.chosen(None), [a, b]);
        view.toggle(a, false, None);
        assert_eq!(view.chosen(Some(a)), [b]);
        assert_eq!(heads_label(&[a, b]), "1.2, 2.1");
    }

    #[test]
    fn a_record_without_weights_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut view = AblatedAttentionView::default();
        let wake: Wake = Arc::new(|| {});
        view.draw(dir.path(), 0, Vec::new(), &wake);
        let started = std::time::Instant::now();
        while view.progress().is_some() {
            assert!(started.elapsed().as_secs() < 60, "timed out");
            std::thread::sleep(std::time::Duration::from_millis(10));
            view.poll();
        }
        assert!(view.error().is_some());
        assert!(view.result(dir.path(), 0, &[]).is_none());
    }
}
