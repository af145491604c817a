//! The trainer thread driven through its public protocol: runs started, events
//! collected within a deadline, losses read off them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use attnlab::config::RunPlan;
use attnlab::records::{RunStatus, RunSummary};
use attnlab::trainer::{Event, Placement, StartRun, Trainer};

/// The longest any one test waits for its events, in all: a broken Stop or a hung
/// trainer fails the test in minutes, not hours.
pub const DEADLINE: Duration = Duration::from_secs(240);

/// burn's CPU backend keeps one process-wide RNG, which `device.seed` resets at the
/// start of each run; tests that train take turns so that one test's parameter
/// initialisation never draws from another's seeded stream.
static TRAINING: Mutex<()> = Mutex::new(());

/// This test's turn to train (see [`TRAINING`]); held until dropped.
pub fn one_at_a_time() -> MutexGuard<'static, ()> {
    TRAINING.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A trainer on this machine with `workers` runs side by side.
pub fn local_trainer(workers: usize) -> Trainer {
    Trainer::spawn(Placement::local(workers), Box::new(|| {})).expect("spawn")
}

/// Starts run `id` of `plan`, recorded under `root` if given.
pub fn start(trainer: &Trainer, id: u64, plan: RunPlan, root: Option<&Path>) {
    trainer
        .start(StartRun::new(id, plan, root.map(Into::into)))
        .expect("trainer alive");
}

/// The next event, failing the test once `deadline` has passed.
pub fn next(trainer: &Trainer, deadline: Instant) -> Event {
    let left = deadline.saturating_duration_since(Instant::now());
    trainer
        .events()
        .recv_timeout(left)
        .unwrap_or_else(|_| panic!("no event within the test's {DEADLINE:?} deadline"))
}

/// Events until `count` runs have finished, within [`DEADLINE`] from `since`.
pub fn collect_since(trainer: &Trainer, count: usize, since: Instant) -> Vec<Event> {
    let deadline = since + DEADLINE;
    let mut events = Vec::new();
    let mut finished = 0;
    while finished < count {
        let event = next(trainer, deadline);
        if matches!(event, Event::Finished { .. }) {
            finished += 1;
        }
        events.push(event);
    }
    events
}

/// Events until `count` runs have finished, within [`DEADLINE`] from now.
pub fn collect(trainer: &Trainer, count: usize) -> Vec<Event> {
    collect_since(trainer, count, Instant::now())
}

/// Run `id`'s training losses, step by step.
pub fn losses(events: &[Event], id: u64) -> Vec<f64> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Step { id: i, metrics } if *i == id => Some(metrics.loss),
            _ => None,
        })
        .collect()
}

/// Trains each plan once, one after the other (ids 1, 2, ...), asserts each
/// finished, and returns their training losses.
pub fn train_all(plans: Vec<RunPlan>) -> Vec<Vec<f64>> {
    let trainer = local_trainer(1);
    let count = plans.len();
    for (id, p) in plans.into_iter().enumerate() {
        start(&trainer, id as u64 + 1, p, None);
    }
    let events = collect(&trainer, count);
    for e in &events {
        if let Event::Finished { summary, .. } = e {
            assert_eq!(summary.status, RunStatus::Finished, "{:?}", summary.message);
        }
    }
    (1..=count as u64).map(|id| losses(&events, id)).collect()
}

/// How long [`finish_all`] waits.
#[derive(Clone, Copy, Debug)]
pub enum Wait {
    /// For all its runs together.
    InAll(Duration),
    /// For each event (a long run may take longer in all).
    PerEvent(Duration),
}

/// Starts `runs` on a trainer of one worker, waits until each has finished and
/// asserts it finished well; returns each run's record folder (`None` where it
/// records nothing) and summary, in the order of `runs`.
pub fn finish_all(runs: Vec<StartRun>, wait: Wait) -> Vec<(Option<PathBuf>, RunSummary)> {
    let trainer = local_trainer(1);
    let index: HashMap<u64, usize> = runs.iter().enumerate().map(|(i, r)| (r.id, i)).collect();
    for run in runs {
        trainer.start(run).expect("trainer alive");
    }
    let began = Instant::now();
    let mut dirs = vec![None; index.len()];
    let mut summaries = vec![None; index.len()];
    while summaries.iter().any(Option::is_none) {
        let left = match wait {
            Wait::InAll(all) => (began + all).saturating_duration_since(Instant::now()),
            Wait::PerEvent(each) => each,
        };
        match trainer
            .events()
            .recv_timeout(left)
            .expect("an event in time")
        {
            Event::Started { id, record_dir, .. } => dirs[index[&id]] = record_dir,
            Event::Finished { id, summary } => summaries[index[&id]] = Some(*summary),
            _ => {}
        }
    }
    dirs.into_iter()
        .zip(summaries)
        .map(|(dir, summary)| {
            let summary = summary.expect("finished");
            assert_eq!(
                summary.status,
                RunStatus::Finished,
                "{}: {:?}",
                summary.name,
                summary.message
            );
            (dir, summary)
        })
        .collect()
}
