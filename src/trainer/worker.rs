//! An executor thread of the pool: trains the run the dispatcher hands it, with pause
//! and stop, then tells the dispatcher it is free. It keeps no queue: the pool's
//! dispatcher owns the only one. It shows signs of life through its [`Watch`], so the
//! dispatcher can give up on a run stuck on a remote server that stopped answering.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::protocol::{Command, Event, RunId, StartRun};
use super::session::{self, Flow, panic_text};
use super::sink::EventSink;
use crate::records::RunStatus;

/// An executor's report to the dispatcher that a run ended.
#[derive(Clone, Copy, Debug)]
pub(super) struct RunDone {
    /// Which executor (its index in the pool).
    pub executor: usize,
    /// The run that ended.
    pub id: RunId,
    /// Whether the executor's remote server went away (it takes no more runs).
    pub server_lost: bool,
}

/// What an executor shares with the dispatcher: when it last showed a sign of life
/// (a step, a command check, an evaluation batch), the record its run writes, and
/// whether the dispatcher gave up on it.
#[derive(Debug)]
pub(super) struct Watch {
    epoch: Instant,
    /// Milliseconds after `epoch` of the last sign of life.
    last: AtomicU64,
    /// The dispatcher gave up on the running run: its thread is left behind, writes
    /// nothing more and sends nothing more.
    abandoned: AtomicBool,
    /// The record folder of the running run, once claimed.
    record: Mutex<Option<PathBuf>>,
}

impl Watch {
    pub(super) fn new() -> Self {
        Self {
            epoch: Instant::now(),
            last: AtomicU64::new(0),
            abandoned: AtomicBool::new(false),
            record: Mutex::new(None),
        }
    }

    fn beat(&self) {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(now, Ordering::Relaxed);
    }

    /// How long since the last sign of life.
    pub(super) fn silent_for(&self) -> Duration {
        let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(last)
    }

    /// Gives up on the running run; returns its record folder, if it had claimed one.
    pub(super) fn abandon(&self) -> Option<PathBuf> {
        self.abandoned.store(true, Ordering::SeqCst);
        self.record
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    fn is_abandoned(&self) -> bool {
        self.abandoned.load(Ordering::SeqCst)
    }

    fn set_record(&self, dir: Option<&Path>) {
        *self.record.lock().unwrap_or_else(PoisonError::into_inner) = dir.map(Path::to_path_buf);
    }
}

/// State owned by one executor thread.
pub(super) struct Worker {
    index: usize,
    commands: Receiver<Command>,
    sink: EventSink,
    done: Sender<RunDone>,
    /// The remote server this executor trains on, if any.
    server: Option<String>,
    paused: bool,
    shutdown: bool,
    /// A stop for the running run arrived while it was evaluating or setting up;
    /// the next `poll` stops it.
    stop_pending: bool,
    /// Pause/Continue read during evaluation, applied at the next `poll`.
    deferred: VecDeque<Command>,
    watch: std::sync::Arc<Watch>,
}

impl Worker {
    /// Executor `index`, reading `commands` from the dispatcher, sending events
    /// through `sink` and reporting finished runs to `done`.
    pub(super) fn new(
        index: usize,
        commands: Receiver<Command>,
        sink: EventSink,
        done: Sender<RunDone>,
        server: Option<String>,
        watch: std::sync::Arc<Watch>,
    ) -> Self {
        Self {
            index,
            commands,
            sink,
            done,
            server,
            paused: false,
            shutdown: false,
            stop_pending: false,
            deferred: VecDeque::new(),
            watch,
        }
    }

    /// Waits for runs until `Shutdown` (or the dispatcher is gone).
    pub(super) fn run(mut self) {
        while !self.shutdown && !self.sink.disconnected {
            match self.commands.recv() {
                Ok(Command::Start(run)) => self.train(*run),
                Ok(Command::Shutdown) | Err(_) => break,
                // Stop, pause and continue with nothing running: nothing to do.
                Ok(_) => {}
            }
        }
        self.sink.drain_blocking();
    }

    fn train(&mut self, mut run: StartRun) {
        let id = run.id;
        if self.server.is_some() {
            run.device = self.server.clone();
        }
        self.stop_pending = false;
        self.paused = false;
        self.deferred.clear();
        self.watch.set_record(None);
        self.watch.beat();
        let result = catch_unwind(AssertUnwindSafe(|| session::train(&run, &mut *self)));
        let summary = match result {
            Ok(summary) => summary,
            Err(panic) => run.ended_unstarted(
                RunStatus::Failed,
                format!("the trainer panicked: {}", panic_text(panic.as_ref())),
            ),
        };
        self.paused = false;
        if self.watch.is_abandoned() {
            // The dispatcher already ended the run and wrote its record; this thread
            // came back too late and takes no more runs.
            self.shutdown = true;
            return;
        }
        // A run that failed on a remote server that no longer answers: the server is
        // gone (the session said so in the run's message), and this executor takes
        // no more runs.
        let server_lost = summary.status == RunStatus::Failed
            && self
                .server
                .as_deref()
                .is_some_and(|s| !crate::device::server_answers(s));
        self.sink.send(Event::Finished {
            id,
            summary: Box::new(summary),
        });
        self.sink.drain_blocking();
        // Ignored: a dispatcher that is gone is shutting down anyway.
        let _ = self.done.send(RunDone {
            executor: self.index,
            id,
            server_lost,
        });
    }

    /// Applies one command while `current` trains. Returns whether it must stop.
    fn handle(&mut self, command: Command, current: RunId) -> bool {
        match command {
            Command::Start(run) => {
                // The dispatcher hands a run only to an idle executor; should one
                // arrive anyway, it ends at once rather than vanish.
                let summary = run.ended_unstarted(
                    RunStatus::Failed,
                    "its executor was busy: start it again".to_string(),
                );
                self.sink.send(Event::Finished {
                    id: run.id,
                    summary: Box::new(summary),
                });
                false
            }
            Command::Stop(id) => id == current,
            Command::StopAll => true,
            Command::Pause => {
                if !self.paused {
                    self.paused = true;
                    self.sink.send(Event::Paused { id: current });
                }
                false
            }
            Command::Continue => {
                if self.paused {
                    self.paused = false;
                    self.sink.send(Event::Continued { id: current });
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

impl Worker {
    /// Records a sign of life; true when the dispatcher gave up on the run (nothing
    /// more is sent).
    fn alive(&mut self) -> bool {
        self.watch.beat();
        if self.watch.is_abandoned() {
            self.sink.disconnected = true;
            return false;
        }
        true
    }
}

impl session::Control for Worker {
    fn opened(&mut self, record: Option<&Path>) {
        self.watch.set_record(record);
        // Connected: connecting's own wait does not count against the run.
        self.watch.beat();
    }

    fn abandoned(&self) -> bool {
        self.watch.is_abandoned()
    }

    fn stop_requested(&mut self, current: RunId) -> bool {
        if !self.alive() {
            return true;
        }
        while let Ok(command) = self.commands.try_recv() {
            // Pause and Continue wait for the end of the step (a paused run must not
            // send events); everything else is handled now.
            if matches!(command, Command::Pause | Command::Continue) {
                self.deferred.push_back(command);
            } else if self.handle(command, current) {
                self.stop_pending = true;
            }
        }
        self.stop_pending || self.sink.disconnected
    }

    fn poll(&mut self, current: RunId) -> Flow {
        if !self.alive() {
            return Flow::Stop;
        }
        if std::mem::take(&mut self.stop_pending) {
            self.deferred.clear();
            return Flow::Stop;
        }
        while let Some(command) = self.deferred.pop_front() {
            if self.handle(command, current) {
                return Flow::Stop;
            }
        }
        loop {
            while let Ok(command) = self.commands.try_recv() {
                if self.handle(command, current) {
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
                    if self.handle(command, current) {
                        return Flow::Stop;
                    }
                }
                Err(RecvTimeoutError::Timeout) => self.watch.beat(),
                Err(RecvTimeoutError::Disconnected) => return Flow::Stop,
            }
        }
    }

    fn sink(&mut self) -> &mut EventSink {
        &mut self.sink
    }
}
