//! The Interventions pane's measurements, each on its own helper thread
//! ("attnlab-interventions") that reports over the view's channel: the saved steps of
//! a record, every head of one step ablated alone and patched alone
//! (`inspect::ablate`, `inspect::patch`), and one head ablated at every saved step. A
//! cancelled measurement stops after the layer or step it is on; a panic ends it with
//! a message instead of leaving it running for ever.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_channel::Sender;

use crate::config::BackendChoice;
use crate::inspect::{AblationMode, LoadedRun, ablate, checkpoint_steps, patch};
use crate::model::HeadRef;

/// Seed of the evaluated examples (the command line's default): every head of a
/// grid, and every step of a curve, sees the same examples.
pub const SEED: u64 = 12345;

/// What a record without saved weights says.
const NO_WEIGHTS: &str =
    "the record has no saved model yet (train.checkpoint_every sets how often one is saved)";

/// Asks the window for a frame (a measurement reported something): the trainer's
/// callback type, defined once.
pub use crate::trainer::Wake;

/// Every head of a run at one step, each ablated alone and patched alone.
#[derive(Clone, Debug, PartialEq)]
pub struct HeadGrid {
    /// The step of the weights measured.
    pub step: usize,
    /// Layers of the model.
    pub layers: usize,
    /// Heads per layer.
    pub heads: usize,
    /// Examples each measurement evaluated (batches x `train.batch`).
    pub examples: usize,
    /// Accuracy with no head ablated.
    pub clean_accuracy: f64,
    /// Per head, layer-major: accuracy with that head ablated.
    pub ablated: Vec<f64>,
    /// Per head, layer-major: the fraction of the clean-corrupted logit difference
    /// that patching it restores (`None` where clean and corrupted do not differ); or
    /// why the task has no clean/corrupted pair.
    pub recovery: Result<Vec<Option<f64>>, String>,
}

impl HeadGrid {
    fn index(&self, head: HeadRef) -> Option<usize> {
        (head.layer < self.layers && head.head < self.heads)
            .then_some(head.layer * self.heads + head.head)
    }

    /// Accuracy drop with `head` ablated: clean minus ablated accuracy.
    pub fn drop_of(&self, head: HeadRef) -> Option<f64> {
        let i = self.index(head)?;
        self.ablated.get(i).map(|a| self.clean_accuracy - a)
    }

    /// Every head's accuracy drop, layer-major.
    pub fn drops(&self) -> Vec<f64> {
        self.ablated
            .iter()
            .map(|a| self.clean_accuracy - a)
            .collect()
    }

    /// The fraction of the answer patching `head` restores.
    pub fn recovery_of(&self, head: HeadRef) -> Option<f64> {
        let i = self.index(head)?;
        self.recovery.as_ref().ok()?.get(i).copied().flatten()
    }
}

/// One head's ablation at one saved step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CurvePoint {
    /// The step of the weights.
    pub step: usize,
    /// Accuracy with no head ablated.
    pub clean_accuracy: f64,
    /// Accuracy with the head ablated.
    pub ablated: f64,
}

impl CurvePoint {
    /// Clean minus ablated accuracy.
    pub fn drop(&self) -> f64 {
        self.clean_accuracy - self.ablated
    }
}

/// What a helper thread reports.
pub(super) enum Message {
    /// A record's saved steps, listed.
    Steps {
        record: PathBuf,
        steps: Result<Vec<usize>, String>,
    },
    /// How far a job got.
    Progress {
        job: u64,
        fraction: f32,
        what: String,
    },
    /// A job's grid.
    Grid {
        job: u64,
        record: PathBuf,
        mode: AblationMode,
        batches: usize,
        grid: HeadGrid,
    },
    /// A curve job's point.
    Point { job: u64, point: CurvePoint },
    /// A job ended, with the reason if it failed.
    Ended { job: u64, error: Option<String> },
}

/// A job's side of the channel.
pub(super) struct Reporter {
    job: u64,
    tx: Sender<Message>,
    wake: Wake,
    cancel: Arc<AtomicBool>,
}

impl Reporter {
    pub(super) fn new(job: u64, tx: Sender<Message>, wake: Wake, cancel: Arc<AtomicBool>) -> Self {
        Self {
            job,
            tx,
            wake,
            cancel,
        }
    }

    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// Progress is dropped when the window is behind: the next supersedes it.
    fn progress(&self, fraction: f32, what: String) {
        let message = Message::Progress {
            job: self.job,
            fraction: fraction.clamp(0.0, 1.0),
            what,
        };
        if self.tx.try_send(message).is_ok() {
            (self.wake)();
        }
    }

    /// Whether the window is still there to read it.
    fn send(&self, message: Message) -> bool {
        let sent = self.tx.send(message).is_ok();
        (self.wake)();
        sent
    }
}

/// Runs `work` on a helper thread, which ends by reporting [`Message::Ended`].
pub(super) fn spawn(
    reporter: Reporter,
    work: impl FnOnce(&Reporter) -> Result<(), String> + Send + 'static,
) -> Result<(), String> {
    std::thread::Builder::new()
        .name("attnlab-interventions".into())
        .spawn(move || {
            let done = std::panic::catch_unwind(AssertUnwindSafe(|| work(&reporter)));
            let error = match done {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(panic) => Some(format!(
                    "the measurement failed unexpectedly: {}",
                    panic_text(panic.as_ref())
                )),
            };
            reporter.send(Message::Ended {
                job: reporter.job,
                error,
            });
        })
        .map(drop)
        .map_err(|e| format!("cannot start a helper thread: {e}"))
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic")
}

/// The steps of `record`'s saved weights, ascending.
fn list_steps(record: &Path) -> Result<Vec<usize>, String> {
    checkpoint_steps(record).map_err(|e| e.problem.to_string())
}

/// Lists `record`'s saved steps on a helper thread, answered by [`Message::Steps`].
pub(super) fn list_in_background(
    tx: Sender<Message>,
    wake: Wake,
    record: &Path,
) -> Result<(), String> {
    let record = record.to_path_buf();
    std::thread::Builder::new()
        .name("attnlab-interventions".into())
        .spawn(move || {
            let steps = list_steps(&record);
            // Ignored: if the window is gone nobody waits for the list.
            let _ = tx.send(Message::Steps { record, steps });
            wake();
        })
        .map(drop)
        .map_err(|e| format!("cannot start a helper thread: {e}"))
}

/// The step of `steps` (ascending) nearest `wanted`, the earlier of two as near;
/// `None` wanted: the latest. `None` when there is no step.
pub fn nearest_step(steps: &[usize], wanted: Option<usize>) -> Option<usize> {
    match wanted {
        None => steps.last().copied(),
        Some(w) => steps.iter().copied().min_by_key(|&s| (s.abs_diff(w), s)),
    }
}

/// Each head of `layer` alone.
fn layer_sets(layer: usize, heads: usize) -> Vec<Vec<HeadRef>> {
    (0..heads)
        .map(|head| vec![HeadRef { layer, head }])
        .collect()
}

/// Every head of `record` at the saved step nearest `wanted`: ablated alone, then
/// patched alone (a task without a patch pair keeps its reason instead).
pub(super) fn grid_job(
    r: &Reporter,
    record: &Path,
    wanted: Option<usize>,
    mode: AblationMode,
    batches: usize,
) -> Result<(), String> {
    let steps = list_steps(record);
    r.send(Message::Steps {
        record: record.to_path_buf(),
        steps: steps.clone(),
    });
    let step = nearest_step(&steps?, wanted).ok_or_else(|| NO_WEIGHTS.to_string())?;
    r.progress(0.0, format!("loading the weights of step {step}"));
    let run = LoadedRun::load(record, Some(step), BackendChoice::Cpu, &[])
        .map_err(|e| e.problem.to_string())?;
    let (layers, heads) = run.shape();
    let Some((clean_accuracy, ablated)) = ablate_each_head(r, &run, step, mode, batches)? else {
        return Ok(());
    };
    let Some(recovery) = patch_each_head(r, &run, step, batches) else {
        return Ok(());
    };
    let grid = HeadGrid {
        step,
        layers,
        heads,
        examples: batches.max(1) * run.plan.settings().train.batch,
        clean_accuracy,
        ablated,
        recovery,
    };
    r.send(Message::Grid {
        job: r.job,
        record: record.to_path_buf(),
        mode,
        batches,
        grid,
    });
    Ok(())
}

/// The first half of a grid's progress: every head of `run` (the weights of `step`)
/// ablated alone, layer by layer. The clean accuracy and each head's ablated
/// accuracy, layer-major; `None` when cancelled.
fn ablate_each_head(
    r: &Reporter,
    run: &LoadedRun,
    step: usize,
    mode: AblationMode,
    batches: usize,
) -> Result<Option<(f64, Vec<f64>)>, String> {
    let (layers, heads) = run.shape();
    let units = (2 * layers).max(1) as f32;
    let mut clean_accuracy = 0.0;
    let mut ablated = Vec::with_capacity(layers * heads);
    for layer in 0..layers {
        if r.cancelled() {
            return Ok(None);
        }
        let sets = layer_sets(layer, heads);
        let mut progress = |done: usize, of: usize| {
            let at = (layer as f32 + done as f32 / of.max(1) as f32) / units;
            r.progress(
                at,
                format!(
                    "step {step}: ablated {done} of layer {}'s {of} heads",
                    layer + 1
                ),
            );
        };
        let (clean, ablations) = ablate(run, &sets, mode, SEED, batches, &mut progress)
            .map_err(|e| e.problem.to_string())?;
        clean_accuracy = clean.accuracy;
        ablated.extend(ablations.iter().map(|a| a.scores.accuracy));
    }
    Ok(Some((clean_accuracy, ablated)))
}

/// The second half of a grid's progress: every head of `run` patched alone, layer
/// by layer. Each head's recovery, layer-major, or why the task cannot be patched;
/// `None` when cancelled.
fn patch_each_head(
    r: &Reporter,
    run: &LoadedRun,
    step: usize,
    batches: usize,
) -> Option<Result<Vec<Option<f64>>, String>> {
    let (layers, heads) = run.shape();
    let units = (2 * layers).max(1) as f32;
    let mut recovery = Ok(Vec::with_capacity(layers * heads));
    for layer in 0..layers {
        if r.cancelled() {
            return None;
        }
        let sets = layer_sets(layer, heads);
        let mut progress = |done: usize, of: usize| {
            let at = ((layers + layer) as f32 + done as f32 / of.max(1) as f32) / units;
            r.progress(
                at,
                format!("step {step}: patching layer {} ({done} of {of})", layer + 1),
            );
        };
        match patch(run, &sets, SEED, batches, &mut progress) {
            Ok((_, patched)) => {
                if let Ok(values) = &mut recovery {
                    values.extend(patched.iter().map(|p| p.recovered));
                }
            }
            Err(e) => {
                recovery = Err(e.problem.to_string());
                break;
            }
        }
    }
    Some(recovery)
}

/// `head` of `record` ablated alone at every saved step not in `known`, one point
/// each, in step order. A step that fails is skipped and named at the end.
pub(super) fn steps_job(
    r: &Reporter,
    record: &Path,
    head: HeadRef,
    mode: AblationMode,
    batches: usize,
    known: &[usize],
) -> Result<(), String> {
    let steps = list_steps(record);
    r.send(Message::Steps {
        record: record.to_path_buf(),
        steps: steps.clone(),
    });
    let todo: Vec<usize> = steps?.into_iter().filter(|s| !known.contains(s)).collect();
    let mut failed = None;
    for (i, &step) in todo.iter().enumerate() {
        if r.cancelled() {
            return Ok(());
        }
        let what = format!("head {head} at step {step} ({} of {})", i + 1, todo.len());
        r.progress(i as f32 / todo.len() as f32, what);
        let measured = LoadedRun::load(record, Some(step), BackendChoice::Cpu, &[])
            .and_then(|run| ablate(&run, &[vec![head]], mode, SEED, batches, &mut |_, _| {}));
        match measured {
            Ok((clean, ablations)) => {
                let Some(a) = ablations.first() else { continue };
                let point = CurvePoint {
                    step,
                    clean_accuracy: clean.accuracy,
                    ablated: a.scores.accuracy,
                };
                if !r.send(Message::Point { job: r.job, point }) {
                    return Ok(());
                }
            }
            Err(e) => failed = Some(format!("step {step}: {}", e.problem)),
        }
    }
    failed.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_saved_step_is_taken_the_earlier_on_a_tie() {
        let steps = [2, 4, 6];
        assert_eq!(nearest_step(&steps, Some(5)), Some(4));
        assert_eq!(nearest_step(&steps, Some(100)), Some(6));
        assert_eq!(nearest_step(&steps, Some(0)), Some(2));
        assert_eq!(nearest_step(&steps, None), Some(6));
        assert_eq!(nearest_step(&[], Some(3)), None);
    }
}
