//! The trainer thread: its queue, pause and stop, one run at a time (alone, or as
//! one executor of a pool).

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::protocol::{Command, Event, RunId, StartRun};
use super::session::{self, Flow, panic_text};
use super::sink::EventSink;
use crate::records::RunStatus;

/// State owned by the trainer thread.
pub(super) struct Worker {
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
    /// In a pool: this executor's index and where to say a run ended, with whether
    /// its remote server went away (the pool's dispatcher announces `Queued` itself).
    pub(super) done: Option<(usize, Sender<RunDone>)>,
    /// The remote server this worker trains on, if any.
    pub(super) server: Option<String>,
}

/// A pool executor's report that a run ended: its index, the run, and whether its
/// remote server went away.
pub(super) type RunDone = (usize, RunId, bool);

impl Worker {
    /// A worker reading `commands` and sending events through `sink`.
    pub(super) fn new(commands: Receiver<Command>, sink: EventSink) -> Self {
        Self {
            commands,
            sink,
            queue: VecDeque::new(),
            paused: false,
            shutdown: false,
            stop_pending: false,
            deferred: VecDeque::new(),
            done: None,
            server: None,
        }
    }
}

impl Worker {
    pub(super) fn run(mut self) {
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

    fn train(&mut self, mut run: StartRun) {
        let id = run.id;
        if self.server.is_some() {
            run.device = self.server.clone();
        }
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
        // A run that failed on a remote server that no longer answers: the server is
        // gone (the session said so in the run's message), and this worker takes no
        // more runs.
        let lost = summary.status == RunStatus::Failed
            && self
                .server
                .as_deref()
                .is_some_and(|s| !super::backend::server_answers(s));
        self.sink.send(Event::Finished {
            id,
            summary: Box::new(summary),
        });
        self.sink.drain_blocking();
        if let Some((index, done)) = &self.done {
            // Ignored: a dispatcher that is gone is shutting down anyway.
            let _ = done.send((*index, id, lost));
        }
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
                if self.done.is_none() {
                    // A pool's dispatcher announced it already.
                    self.sink.send(Event::Queued { id: run.id });
                }
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
