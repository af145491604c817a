//! The trainer pool, the only run queue: a dispatcher thread owns the queue and
//! hands runs, in order, to executor threads (each a [`Worker`] with its own command
//! channel) as they come free; a trainer that trains one run at a time is a pool of
//! one. Every thread sends its events into the same channel; a run's events all
//! come from one thread, so they keep their order. Model initialisation is
//! serialised in `session` (burn's CPU backend seeds one process-wide generator), so
//! a run gives the same metrics alone or beside others.
//!
//! A remote call has no timeout of its own (burn's client waits for the server's
//! answer), so the dispatcher watches each remote executor: one silent for longer
//! than [`remote_timeout`] (its server frozen, e.g. stopped with SIGSTOP) has its run
//! ended as `failed` and its record finished here; its thread is left behind and its
//! server takes no more runs, while the other servers go on.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, bounded, select};

use super::protocol::{Command, Event, RunId, STOPPED_BEFORE_START, StartRun};
use super::sink::{EventSink, Wake};
use super::worker::{RunDone, Watch, Worker};
use crate::config::RunPlan;
use crate::records::{RunRecord, RunStatus, write_summary_in};

/// How long a run on a remote server may go without a sign of life (a step, an
/// evaluation batch) before its server counts as frozen: `ATTNLAB_REMOTE_TIMEOUT`
/// seconds if set, else 300 s, far above any step a server should take; never less
/// than [`MIN_REMOTE_TIMEOUT`], so a slow connection or first step on a loaded machine
/// is not taken for a frozen server.
pub fn remote_timeout() -> Duration {
    std::env::var("ATTNLAB_REMOTE_TIMEOUT")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Duration::from_secs(300), Duration::from_secs)
        .max(MIN_REMOTE_TIMEOUT)
}

/// The shortest [`remote_timeout`]: longer than connecting may take
/// ([`super::CONNECT_TIMEOUT`]).
pub const MIN_REMOTE_TIMEOUT: Duration = Duration::from_secs(30);

/// How many of `plans` to train at once: `jobs` if given, else one per two cores
/// (flex's matrix products use both threads of a pair well); never more than there
/// are runs, nor than fit in the memory available side by side (the limits read once).
pub fn workers_for(plans: &[RunPlan], jobs: Option<usize>) -> usize {
    let asked = jobs.unwrap_or_else(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        cores / 2
    });
    let largest = plans
        .iter()
        .map(|p| crate::config::estimate(p.settings()).total())
        .max()
        .unwrap_or(1)
        .max(1);
    let fit = crate::config::available_memory().map_or(usize::MAX, |m| (m / largest) as usize);
    asked.min(plans.len()).min(fit).max(1)
}

/// One executor thread and what it is training.
struct Executor {
    commands: Sender<Command>,
    running: Option<RunId>,
    /// The run it trains, kept to end it should its thread be given up on.
    run: Option<StartRun>,
    watch: Arc<Watch>,
    thread: Option<JoinHandle<()>>,
    /// Its remote server, if any.
    server: Option<String>,
    /// Its server went away: it takes no more runs.
    lost: bool,
}

/// Starts one executor per entry of `devices` (`None` trains on this machine,
/// `Some(address)` on that remote server) and the dispatcher that feeds them.
pub(super) fn spawn(
    devices: Vec<Option<String>>,
    commands: Receiver<Command>,
    events: Sender<Event>,
    snapshot_bytes: Arc<AtomicUsize>,
    wake: Wake,
) -> std::io::Result<JoinHandle<()>> {
    let (done_tx, done_rx) = bounded(devices.len() * 2 + 2);
    let mut executors = Vec::new();
    for (index, server) in devices.into_iter().enumerate() {
        let (tx, rx) = bounded(64);
        let sink = EventSink::new(events.clone(), snapshot_bytes.clone(), wake.clone());
        let watch = Arc::new(Watch::new());
        let worker = Worker::new(
            index,
            rx,
            sink,
            done_tx.clone(),
            server.clone(),
            watch.clone(),
        );
        let spawned = std::thread::Builder::new()
            .name(format!("attnlab-trainer-{}", index + 1))
            .spawn(move || worker.run());
        let thread = match spawned {
            Ok(thread) => thread,
            Err(e) => {
                shut_down(&mut executors);
                return Err(e);
            }
        };
        executors.push(Executor {
            commands: tx,
            running: None,
            run: None,
            watch,
            thread: Some(thread),
            server,
            lost: false,
        });
    }
    let sink = EventSink::new(events, snapshot_bytes, wake);
    let dispatcher = Dispatcher {
        commands,
        done: done_rx,
        sink,
        queue: VecDeque::new(),
        executors,
        timeout: remote_timeout(),
    };
    std::thread::Builder::new()
        .name("attnlab-trainer".into())
        .spawn(move || dispatcher.run())
}

/// Tells every executor to stop and waits for it.
fn shut_down(executors: &mut [Executor]) {
    for e in executors.iter() {
        // Ignored: an executor that is gone has nothing left to stop.
        let _ = e.commands.send(Command::Shutdown);
    }
    for e in executors.iter_mut() {
        if let Some(thread) = e.thread.take() {
            // Ignored: a panic there was already reported as a failed run.
            let _ = thread.join();
        }
    }
}

struct Dispatcher {
    commands: Receiver<Command>,
    done: Receiver<RunDone>,
    sink: EventSink,
    queue: VecDeque<StartRun>,
    executors: Vec<Executor>,
    /// See [`remote_timeout`].
    timeout: Duration,
}

impl Dispatcher {
    fn run(mut self) {
        loop {
            self.dispatch();
            select! {
                recv(self.commands) -> command => match command {
                    Ok(command) => {
                        if self.handle(command) {
                            break;
                        }
                    }
                    Err(_) => break,
                },
                recv(self.done) -> done => {
                    if let Ok(done) = done
                        && let Some(e) = self.executors.get_mut(done.executor)
                        && e.running == Some(done.id)
                    {
                        e.running = None;
                        e.run = None;
                        e.lost |= done.server_lost;
                    }
                    self.fail_if_no_server_left();
                }
                default(Duration::from_secs(1)) => {}
            }
            self.abandon_frozen();
            if self.sink.disconnected {
                break;
            }
        }
        while let Some(run) = self.queue.pop_front() {
            self.end_unstarted(&run, RunStatus::Stopped, "the trainer shut down");
        }
        shut_down(&mut self.executors);
        self.sink.drain_blocking();
    }

    /// When every executor's server is gone, the queued runs cannot train anywhere.
    fn fail_if_no_server_left(&mut self) {
        if !self.executors.iter().all(|e| e.lost) {
            return;
        }
        let servers: Vec<&str> = self
            .executors
            .iter()
            .filter_map(|e| e.server.as_deref())
            .collect();
        let message = format!(
            "no remote server is left to train on ({} unreachable)",
            servers.join(", ")
        );
        while let Some(run) = self.queue.pop_front() {
            self.end_unstarted(&run, RunStatus::Failed, &message);
        }
    }

    /// Hands queued runs to idle executors, in queue order.
    fn dispatch(&mut self) {
        self.fail_if_no_server_left();
        while let Some(index) = self
            .executors
            .iter()
            .position(|e| e.running.is_none() && !e.lost)
        {
            let Some(run) = self.queue.pop_front() else {
                return;
            };
            let id = run.id;
            let kept = run.clone();
            let e = &mut self.executors[index];
            if e.commands.send(Command::Start(Box::new(run))).is_ok() {
                e.running = Some(id);
                e.run = Some(kept);
            }
        }
    }

    /// Applies one command; true on `Shutdown`.
    fn handle(&mut self, command: Command) -> bool {
        match command {
            Command::Start(run) => {
                self.sink.send(Event::Queued { id: run.id });
                self.queue.push_back(*run);
            }
            Command::Stop(id) => {
                if let Some(pos) = self.queue.iter().position(|r| r.id == id) {
                    if let Some(run) = self.queue.remove(pos) {
                        self.end_unstarted(&run, RunStatus::Stopped, STOPPED_BEFORE_START);
                    }
                } else if let Some(e) = self.executors.iter().find(|e| e.running == Some(id)) {
                    // Ignored: an executor that is gone has already ended the run.
                    let _ = e.commands.send(Command::Stop(id));
                }
            }
            Command::StopAll => {
                while let Some(run) = self.queue.pop_front() {
                    self.end_unstarted(&run, RunStatus::Stopped, STOPPED_BEFORE_START);
                }
                self.forward_to_busy(&Command::StopAll);
            }
            Command::Pause | Command::Continue => self.forward_to_busy(&command),
            Command::Shutdown => return true,
        }
        false
    }

    fn forward_to_busy(&self, command: &Command) {
        for e in self.executors.iter().filter(|e| e.running.is_some()) {
            // Ignored: an executor that is gone has already ended its run.
            let _ = e.commands.send(command.clone());
        }
    }

    /// Gives up on every remote executor silent for longer than the timeout: its run
    /// ends `failed` (record finished here), its server takes no more runs.
    fn abandon_frozen(&mut self) {
        for index in 0..self.executors.len() {
            let e = &mut self.executors[index];
            let (Some(server), Some(_)) = (e.server.clone(), e.running) else {
                continue;
            };
            let silent = e.watch.silent_for();
            if silent <= self.timeout {
                continue;
            }
            let record = e.watch.abandon();
            // Detached: a thread stuck in a network call cannot be joined.
            drop(e.thread.take());
            e.lost = true;
            e.running = None;
            let Some(run) = e.run.take() else {
                continue;
            };
            let message = format!(
                "the remote server {server} did not answer for {} s (frozen or cut off); \
                 the run was abandoned there and its record keeps its last checkpoint",
                silent.as_secs()
            );
            let summary = end_abandoned(&run, record.as_deref(), message);
            self.sink.send(Event::Finished {
                id: run.id,
                summary: Box::new(summary),
            });
        }
        self.fail_if_no_server_left();
    }

    /// Ends a run that never reached an executor.
    fn end_unstarted(&mut self, run: &StartRun, status: RunStatus, message: &str) {
        let summary = run.ended_unstarted(status, message.to_string());
        self.sink.send(Event::Finished {
            id: run.id,
            summary: Box::new(summary),
        });
    }
}

/// The summary of a run given up on, written into its record when it has one (the
/// record's own summary, with the steps it reached, marked failed).
fn end_abandoned(
    run: &StartRun,
    record: Option<&std::path::Path>,
    message: String,
) -> crate::records::RunSummary {
    let Some(dir) = record else {
        return run.ended_unstarted(RunStatus::Failed, message);
    };
    let mut summary = match RunRecord::open(dir) {
        Ok(record) => {
            // summary.json is rewritten at evaluations; metrics.csv has every step.
            let reached = record
                .metrics()
                .ok()
                .and_then(|rows| rows.iter().map(|r| r.metrics.step).max());
            let mut summary = record.summary;
            summary.steps = summary.steps.max(reached.unwrap_or(0));
            summary
        }
        Err(_) => run.ended_unstarted(RunStatus::Failed, String::new()),
    };
    summary.status = RunStatus::Failed;
    summary.message = Some(format!("{message} (at step {})", summary.steps));
    summary.pid = None;
    if let Err(e) = write_summary_in(dir, &summary) {
        summary.message = Some(format!(
            "{}; its record could not be finished: {e}",
            summary.message.unwrap_or_default()
        ));
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::workers_for;
    use crate::config::{Experiment, Settings};

    #[test]
    fn never_more_workers_than_runs() {
        let plans = Experiment::single("one", Settings::default())
            .plan_within(None)
            .expect("valid");
        assert_eq!(workers_for(&plans, Some(8)), 1);
        assert_eq!(workers_for(&[], Some(8)), 1, "at least one");
        let three = [plans[0].clone(), plans[0].clone(), plans[0].clone()];
        assert!(workers_for(&three, Some(2)) <= 2);
    }
}
