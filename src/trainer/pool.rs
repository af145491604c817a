//! The trainer pool, the only run queue: a dispatcher thread owns the queue and
//! hands runs, in order, to executor threads (each a [`Worker`] with its own command
//! channel) as they come free; a trainer that trains one run at a time is a pool of
//! one. Every thread sends its events into the same channel; a run's events all
//! come from one thread, so they keep their order. Model initialisation is
//! serialised in `session` (burn's CPU backend seeds one process-wide generator), so
//! a run gives the same metrics alone or beside others.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, bounded, select};

use super::protocol::{Command, Event, RunId, STOPPED_BEFORE_START, StartRun};
use super::sink::{EventSink, Wake};
use super::worker::{RunDone, Worker};
use crate::config::RunPlan;
use crate::records::RunStatus;

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
        let worker = Worker::new(index, rx, sink, done_tx.clone(), server.clone());
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
                        e.lost |= done.server_lost;
                    }
                    self.fail_if_no_server_left();
                }
            }
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
            if self.executors[index]
                .commands
                .send(Command::Start(Box::new(run)))
                .is_ok()
            {
                self.executors[index].running = Some(id);
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

    /// Ends a run that never reached an executor.
    fn end_unstarted(&mut self, run: &StartRun, status: RunStatus, message: &str) {
        let summary = run.ended_unstarted(status, message.to_string());
        self.sink.send(Event::Finished {
            id: run.id,
            summary: Box::new(summary),
        });
    }
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
