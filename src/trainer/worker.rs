//! The trainer thread and the handle that owns it.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError, bounded};

use super::protocol::{Command, Event, RunId, StartRun};
use super::session::{self, Flow, panic_text};
use super::sink::{EventReceiver, EventSink};
use crate::records::RunStatus;

/// Capacity of the command channel.
const COMMAND_CAPACITY: usize = 64;
/// Capacity of the event channel; beyond it metrics wait in the trainer's backlog.
const EVENT_CAPACITY: usize = 1024;

/// The trainer thread has ended (it only does on `Shutdown` or when dropped).
#[derive(Debug, thiserror::Error)]
#[error("the trainer thread is no longer running")]
pub struct TrainerGone;

/// Handle to the trainer thread. Dropping it stops every run and joins the thread.
pub struct Trainer {
    commands: Sender<Command>,
    events: EventReceiver,
    thread: Option<JoinHandle<()>>,
}

impl Trainer {
    /// Starts the trainer thread. `wake` is called (from the trainer thread) whenever
    /// events are waiting; the GUI passes a closure that requests a repaint.
    pub fn spawn(wake: Box<dyn Fn() + Send>) -> std::io::Result<Self> {
        let (command_tx, command_rx) = bounded(COMMAND_CAPACITY);
        let (event_tx, event_rx) = bounded(EVENT_CAPACITY);
        let snapshot_bytes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let sink_bytes = snapshot_bytes.clone();
        let thread = std::thread::Builder::new()
            .name("attnlab-trainer".into())
            .spawn(move || {
                Worker {
                    commands: command_rx,
                    sink: EventSink::new(event_tx, sink_bytes, wake),
                    queue: VecDeque::new(),
                    paused: false,
                    shutdown: false,
                    stop_pending: false,
                    deferred: VecDeque::new(),
                }
                .run();
            })?;
        Ok(Self {
            commands: command_tx,
            events: EventReceiver::new(event_rx, snapshot_bytes),
            thread: Some(thread),
        })
    }

    /// Queues a run.
    pub fn start(&self, run: StartRun) -> Result<(), TrainerGone> {
        self.send(Command::Start(Box::new(run)))
    }

    /// Sends any command.
    pub fn send(&self, command: Command) -> Result<(), TrainerGone> {
        self.commands.send(command).map_err(|_| TrainerGone)
    }

    /// Queues a run if the command channel has room now; never blocks (a window must
    /// not wait on the trainer). A full channel hands the run back.
    pub fn try_start(&self, run: StartRun) -> Result<(), TryStartError> {
        match self.commands.try_send(Command::Start(Box::new(run))) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(Command::Start(run))) => Err(TryStartError::Full(run)),
            Err(_) => Err(TryStartError::Gone),
        }
    }

    /// A sender for commands, e.g. for a Ctrl+C handler.
    pub fn commands(&self) -> Sender<Command> {
        self.commands.clone()
    }

    /// The events, in the order documented in [`super::protocol`].
    pub fn events(&self) -> &EventReceiver {
        &self.events
    }
}

/// Why [`Trainer::try_start`] did not queue a run.
#[derive(Debug)]
pub enum TryStartError {
    /// The command channel is full right now: try again later with this run.
    Full(Box<StartRun>),
    /// The trainer thread has ended.
    Gone,
}

impl Drop for Trainer {
    fn drop(&mut self) {
        // Never block on a full command channel while the trainer may be waiting for
        // us to take its events: drain events between tries.
        while let Err(TrySendError::Full(_)) = self.commands.try_send(Command::Shutdown) {
            while self.events.try_recv().is_ok() {}
            std::thread::sleep(Duration::from_millis(5));
        }
        // Let the thread finish its current step; drain events so it never waits on us.
        if let Some(thread) = self.thread.take() {
            while !thread.is_finished() {
                while self.events.try_recv().is_ok() {}
                std::thread::sleep(Duration::from_millis(5));
            }
            // Ignored: a panic on the thread was already reported as a failed run.
            let _ = thread.join();
        }
    }
}

/// State owned by the trainer thread.
struct Worker {
    commands: Receiver<Command>,
    sink: EventSink,
    queue: VecDeque<StartRun>,
    paused: bool,
    shutdown: bool,
    /// A stop for the running run arrived while it was evaluating or setting up;
    /// the next `poll` stops it.
    stop_pending: bool,
    /// Pause/Resume read during evaluation, applied at the next `poll`.
    deferred: VecDeque<Command>,
}

impl Worker {
    fn run(mut self) {
        while !self.shutdown && !self.sink.disconnected {
            if let Some(run) = self.queue.pop_front() {
                self.train(run);
                continue;
            }
            match self.commands.recv() {
                Ok(command) => {
                    self.handle(command, None);
                }
                Err(_) => break,
            }
        }
        // Anything still queued ends as stopped, so every run gets its `Finished`.
        while let Some(run) = self.queue.pop_front() {
            self.finish_unstarted(&run, RunStatus::Stopped, "the trainer shut down");
        }
        self.sink.drain_blocking();
    }

    fn train(&mut self, run: StartRun) {
        let id = run.id;
        self.stop_pending = false;
        self.deferred.clear();
        let result = catch_unwind(AssertUnwindSafe(|| session::train(&run, &mut *self)));
        let summary = match result {
            Ok(summary) => summary,
            Err(panic) => {
                let mut summary = run.unstarted_summary(RunStatus::Failed);
                summary.message = Some(format!(
                    "the trainer panicked: {}",
                    panic_text(panic.as_ref())
                ));
                summary
            }
        };
        self.paused = false;
        self.sink.send(Event::Finished {
            id,
            summary: Box::new(summary),
        });
        self.sink.drain_blocking();
    }

    fn finish_unstarted(&mut self, run: &StartRun, status: RunStatus, message: &str) {
        let mut summary = run.unstarted_summary(status);
        summary.message = Some(message.into());
        self.sink.send(Event::Finished {
            id: run.id,
            summary: Box::new(summary),
        });
    }

    /// Applies one command; `current` is the running run, if any. Returns whether the
    /// current run must stop.
    fn handle(&mut self, command: Command, current: Option<RunId>) -> bool {
        match command {
            Command::Start(run) => {
                self.sink.send(Event::Queued { id: run.id });
                self.queue.push_back(*run);
                false
            }
            Command::Stop(id) => {
                if Some(id) == current {
                    return true;
                }
                if let Some(pos) = self.queue.iter().position(|r| r.id == id)
                    && let Some(run) = self.queue.remove(pos)
                {
                    self.finish_unstarted(&run, RunStatus::Stopped, "stopped before it started");
                }
                false
            }
            Command::StopAll => {
                while let Some(run) = self.queue.pop_front() {
                    self.finish_unstarted(&run, RunStatus::Stopped, "stopped before it started");
                }
                current.is_some()
            }
            Command::Pause => {
                if let Some(id) = current
                    && !self.paused
                {
                    self.paused = true;
                    self.sink.send(Event::Paused { id });
                }
                false
            }
            Command::Resume => {
                if let Some(id) = current
                    && self.paused
                {
                    self.paused = false;
                    self.sink.send(Event::Resumed { id });
                }
                false
            }
            Command::Shutdown => {
                self.shutdown = true;
                true
            }
        }
    }
}

impl session::Control for Worker {
    fn stop_requested(&mut self, current: RunId) -> bool {
        while let Ok(command) = self.commands.try_recv() {
            // Pause and Resume wait for the end of the step (a paused run must not
            // send events); everything else is handled now.
            if matches!(command, Command::Pause | Command::Resume) {
                self.deferred.push_back(command);
            } else if self.handle(command, Some(current)) {
                self.stop_pending = true;
            }
        }
        self.stop_pending || self.sink.disconnected
    }

    fn poll(&mut self, current: RunId) -> Flow {
        if std::mem::take(&mut self.stop_pending) {
            self.deferred.clear();
            return Flow::Stop;
        }
        while let Some(command) = self.deferred.pop_front() {
            if self.handle(command, Some(current)) {
                return Flow::Stop;
            }
        }
        loop {
            while let Ok(command) = self.commands.try_recv() {
                if self.handle(command, Some(current)) {
                    return Flow::Stop;
                }
            }
            if self.sink.disconnected {
                return Flow::Stop;
            }
            if !self.paused {
                return Flow::Continue;
            }
            match self.commands.recv_timeout(Duration::from_millis(200)) {
                Ok(command) => {
                    if self.handle(command, Some(current)) {
                        return Flow::Stop;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Flow::Stop,
            }
        }
    }

    fn sink(&mut self) -> &mut EventSink {
        &mut self.sink
    }
}
