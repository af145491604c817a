//! The handle the front ends hold: starts the trainer (a pool of executors, placed on
//! this machine or on remote servers), sends commands, receives events, and shuts
//! the trainer down when dropped.

use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Sender, TrySendError, bounded};

use super::protocol::{Command, StartRun};
use super::sink::EventReceiver;
use crate::config::RunPlan;

/// Capacity of the command channel.
const COMMAND_CAPACITY: usize = 64;
/// How long dropping a [`Trainer`] waits for its threads to finish their step.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(60);
/// Capacity of the event channel; beyond it metrics wait in the trainer's backlog.
const EVENT_CAPACITY: usize = 1024;

/// Where a trainer's runs train.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// On this machine, up to `workers` runs at once.
    Local {
        /// Runs at once (at least 1).
        workers: usize,
    },
    /// One run at a time on each of these remote servers (`ws://host:port`). A server
    /// that goes away takes no more runs; when none is left, the runs still queued
    /// fail with the reason.
    Servers(Vec<String>),
}

impl Placement {
    /// This machine, `workers` runs at once.
    pub fn local(workers: usize) -> Self {
        Self::Local {
            workers: workers.max(1),
        }
    }

    /// The servers when there are any, else this machine with
    /// [`super::workers_for`] runs at once. What the window and the command line
    /// both decide with.
    pub fn choose(servers: Vec<String>, jobs: Option<usize>, plans: &[RunPlan]) -> Self {
        if servers.is_empty() {
            Self::local(super::workers_for(plans, jobs))
        } else {
            Self::Servers(servers)
        }
    }

    /// The distinct remote servers `plans` name in `train.backend`, in order.
    pub fn servers_of(plans: &[RunPlan]) -> Vec<String> {
        let mut servers: Vec<String> = Vec::new();
        for plan in plans {
            for a in plan.settings().train.backend.addresses() {
                if !servers.contains(&a) {
                    servers.push(a);
                }
            }
        }
        servers
    }
}

/// The trainer thread has ended (it only does on `Shutdown` or when dropped).
#[derive(Debug, thiserror::Error)]
#[error("the trainer thread is no longer running")]
pub struct TrainerGone;

/// Handle to the trainer thread. Dropping it stops every run and joins the thread.
pub struct Trainer {
    commands: Sender<Command>,
    events: EventReceiver,
    thread: Option<JoinHandle<()>>,
    workers: usize,
    /// The remote servers it trains on (empty: this machine).
    servers: Vec<String>,
}

impl Trainer {
    /// Starts the trainer: a pool of executor threads placed as `placement` says, fed
    /// in queue order by a dispatcher thread. `wake` is called (from the trainer's
    /// threads) whenever events are waiting; the GUI passes a closure that requests
    /// a repaint. Every run's events keep their order.
    pub fn spawn(placement: Placement, wake: Box<dyn Fn() + Send + Sync>) -> std::io::Result<Self> {
        let devices: Vec<Option<String>> = match &placement {
            Placement::Local { workers } => vec![None; (*workers).max(1)],
            Placement::Servers(servers) if servers.is_empty() => vec![None],
            Placement::Servers(servers) => servers.iter().cloned().map(Some).collect(),
        };
        let workers = devices.len();
        let servers: Vec<String> = devices.iter().flatten().cloned().collect();
        let (command_tx, command_rx) = bounded(COMMAND_CAPACITY);
        let (event_tx, event_rx) = bounded(EVENT_CAPACITY);
        let snapshot_bytes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let sink_bytes = snapshot_bytes.clone();
        let wake: super::sink::Wake = std::sync::Arc::from(wake);
        let thread = super::pool::spawn(devices, command_rx, event_tx, sink_bytes, wake)?;
        Ok(Self {
            commands: command_tx,
            events: EventReceiver::new(event_rx, snapshot_bytes),
            thread: Some(thread),
            workers,
            servers,
        })
    }

    /// The remote servers it trains on (empty: this machine).
    pub fn servers(&self) -> &[String] {
        &self.servers
    }

    /// How many runs it trains at once.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Queues a run.
    pub fn start(&self, run: StartRun) -> Result<(), TrainerGone> {
        self.send(Command::Start(Box::new(run)))
    }

    /// Sends any command, waiting while the command channel is full (the command
    /// line may wait; a window must use [`Trainer::try_send`]).
    pub fn send(&self, command: Command) -> Result<(), TrainerGone> {
        self.commands.send(command).map_err(|_| TrainerGone)
    }

    /// Sends a command if the command channel has room now; never blocks (a window
    /// must not wait on the trainer, e.g. while a long step holds its commands). A
    /// full channel hands the command back, to send again later.
    pub fn try_send(&self, command: Command) -> Result<(), TrySendCommandError> {
        self.commands.try_send(command).map_err(|e| match e {
            TrySendError::Full(command) => TrySendCommandError::Full(command),
            TrySendError::Disconnected(_) => TrySendCommandError::Gone,
        })
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

/// Why [`Trainer::try_send`] did not send a command.
#[derive(Debug)]
pub enum TrySendCommandError {
    /// The command channel is full right now (the trainer has not taken the commands
    /// before it, e.g. while a step is running): try again later with this command.
    Full(Command),
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
        // Bounded: a step stuck on a server that stopped answering must not hold the
        // process forever (its record then reads as interrupted).
        if let Some(thread) = self.thread.take() {
            let deadline = std::time::Instant::now() + SHUTDOWN_WAIT;
            while !thread.is_finished() {
                if std::time::Instant::now() > deadline {
                    eprintln!(
                        "attnlab: the trainer did not stop within {} s; leaving it behind",
                        SHUTDOWN_WAIT.as_secs()
                    );
                    return;
                }
                while self.events.try_recv().is_ok() {}
                std::thread::sleep(Duration::from_millis(5));
            }
            // Ignored: a panic on the thread was already reported as a failed run.
            let _ = thread.join();
        }
    }
}
