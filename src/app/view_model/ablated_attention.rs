//! The Interventions pane's "Attention with heads ablated", without the window: the
//! run's probe attention at a saved step, every layer and head, computed twice on a
//! helper thread (as trained, and with the ticked heads zeroed;
//! `inspect::probe_attention`), so the pane can show how later layers' attention
//! changes when an earlier head is removed.
//!
//! Results are cached per record, step and ablated set: the weights a record keeps at
//! a step never change.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::intervention_jobs::Wake;
use super::keyed_job::KeyedJobs;
use crate::config::BackendChoice;
use crate::inspect::{LoadedRun, probe_attention};
use crate::model::HeadRef;

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

/// The section's choices, its cached results and its running computation.
pub struct AblatedAttentionView {
    /// The heads ticked; `None` until the user ticks one (then the head picked in
    /// the grids is taken).
    pub ticked: Option<Vec<HeadRef>>,
    jobs: KeyedJobs<Key, AblatedAttention>,
}

impl Default for AblatedAttentionView {
    fn default() -> Self {
        Self {
            ticked: None,
            jobs: KeyedJobs::new(
                "attnlab-interventions",
                "drawing the attention failed unexpectedly",
                MAX_CACHED,
            ),
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
        let key = Key {
            record: record.to_path_buf(),
            step,
            ablated,
        };
        self.jobs.start(key, wake, compute);
    }

    /// Stops the computation running (it ends after the pass it is on).
    pub fn cancel(&mut self) {
        self.jobs.cancel();
    }

    /// What the running computation does now, while it runs.
    pub fn progress(&self) -> Option<&str> {
        self.jobs.running().map(|(_, what)| what)
    }

    /// Why the last computation failed.
    pub fn error(&self) -> Option<&str> {
        self.jobs.error().map(|(_, e)| e)
    }

    /// The result for `record` at `step` with `ablated` (sorted) zeroed, if computed.
    pub fn result(
        &self,
        record: &Path,
        step: usize,
        ablated: &[HeadRef],
    ) -> Option<Arc<AblatedAttention>> {
        self.jobs.result(&Key {
            record: record.to_path_buf(),
            step,
            ablated: ablated.to_vec(),
        })
    }

    /// Applies what the helper thread reported (every frame the section is drawn).
    pub fn poll(&mut self) {
        self.jobs.poll();
    }
}

/// Loads the weights and runs the probe twice.
fn compute(
    key: &Key,
    cancel: &AtomicBool,
    phase: &dyn Fn(String),
) -> Result<AblatedAttention, String> {
    phase(format!("loading the weights of step {}", key.step));
    let run = LoadedRun::load(&key.record, Some(key.step), BackendChoice::Cpu, &[])
        .map_err(|e| e.problem.to_string())?;
    let stopped = || "cancelled".to_string();
    if cancel.load(Ordering::Relaxed) {
        return Err(stopped());
    }
    phase("the probe's attention as trained".into());
    let clean_maps = probe_attention(&run, &[]).map_err(|e| e.problem.to_string())?;
    if cancel.load(Ordering::Relaxed) {
        return Err(stopped());
    }
    phase(format!(
        "the probe's attention with {} ablated",
        heads_label(&key.ablated)
    ));
    let ablated_maps = probe_attention(&run, &key.ablated).map_err(|e| e.problem.to_string())?;
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
