//! The background trainer: a named thread that trains queued runs one at a time and
//! streams [`Event`]s back.
//!
//! The GUI and the CLI hold a [`Trainer`] handle: commands go in through a bounded
//! channel, events come out through another. The trainer never blocks on a slow
//! consumer: metric events wait in a small backlog on the trainer's side, attention
//! snapshots are dropped (and counted) instead. A callback (`wake`) tells the consumer
//! that events are waiting, so the GUI can request a repaint without the trainer
//! knowing about egui.
//!
//! Inside: `handle` (the `Trainer` the front ends hold) starts a `worker` (the thread:
//! queue, pause, stop), or a `pool` of them behind a dispatcher; a worker drives `session` (one run:
//! backend, model, loop, evaluation, snapshots, record), which runs `step` (one
//! optimiser step, also what the benchmarks time); `sink` sends events without
//! blocking; `backend` picks the device; `evaluate` evaluates a record's saved model
//! again (`attnlab eval`).

mod backend;
mod evaluate;
mod handle;
mod pool;
mod protocol;
mod serve;
mod session;
mod sink;
mod step;
mod worker;

pub use backend::{
    BackendError, CONNECT_TIMEOUT, CpuBackend, connect, local_gpu, select_backend, select_device,
    server_answers,
};
pub use evaluate::{EvalError, RecordEval, evaluate_record};
pub use handle::{Trainer, TrainerGone, TryStartError};
pub use pool::default_workers;
pub use protocol::{Command, Event, Fault, RunId, StartRun};
pub use serve::{ServeOptions, ServeTransport, serve};
pub use session::MAX_SNAPSHOT_SIDE;
pub use sink::EventReceiver;
pub use step::{StepOutcome, tokens_tensor, train_step};
