//! The background trainer: a pool of named threads that trains queued runs (one at a
//! time per executor) and streams [`Event`]s back.
//!
//! The GUI and the CLI hold a [`Trainer`] handle: commands go in through a bounded
//! channel, events come out through another. The trainer never blocks on a slow
//! consumer: metric events wait in a small backlog on the trainer's side, attention
//! snapshots are dropped (and counted) instead. A callback (`wake`) tells the consumer
//! that events are waiting, so the GUI can request a repaint without the trainer
//! knowing about egui.
//!
//! Inside: `handle` (the `Trainer` the front ends hold) starts a `pool`: a dispatcher
//! that owns the one queue and `worker` executors (pause, stop); a worker drives `session` (one run:
//! set-up, backend, model, checkpoint restore, the events around it), whose `fit` is
//! the step loop (evaluation, snapshots and checkpoints as their `cadence` falls due;
//! `lengths` holds the held-out sets and kernels at `train.eval_lengths`)
//! and whose `recorder` writes the run record; `fit` runs `step` (one
//! optimiser step, also what the benchmarks time: the step's scheduled learning
//! rate, dropout and gradient clipping) on the batches of a fresh or fixed training
//! set; `sink` sends events without
//! blocking. The device comes from [`crate::device`]; scoring and attention
//! snapshots from [`crate::inspect`], which also measures finished records without
//! the pool.

mod cadence;
mod fit;
mod handle;
mod lengths;
mod pool;
mod protocol;
mod recorder;
mod session;
mod sink;
mod step;
mod worker;

pub use handle::{Placement, Trainer, TrainerGone, TrySendCommandError, TryStartError};
pub use pool::workers_for;
pub use protocol::{Command, Event, Fault, RunId, RunPhase, STOPPED_BEFORE_START, StartRun};
pub(crate) use session::panic_text;
pub use sink::{EventReceiver, Wake};
pub use step::{StepOptions, StepOutcome, clip_grad_norm, grad_norm, optimizer, train_step};
