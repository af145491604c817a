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
//! blocking; `backend` picks the device (and `credentials` holds the tokens remote
//! servers are shown); `evaluate` evaluates a record's saved model
//! again (`attnlab eval`), `length_probe` shows its attention on the probe at another
//! length (the window's Length pane), and `causal` and `patching` test its heads by ablating and
//! patching them (`attnlab ablate`, `attnlab patch`).

mod backend;
mod cadence;
mod causal;
mod credentials;
mod evaluate;
mod fit;
mod handle;
mod length_probe;
mod lengths;
mod patching;
mod pool;
mod protocol;
mod recorder;
mod serve;
mod session;
mod sink;
mod step;
mod worker;

pub use backend::{
    BackendError, CONNECT_TIMEOUT, CpuBackend, connect, local_gpu, select_backend, select_device,
    server_answers,
};
pub use causal::{
    Ablation, AblationMode, CausalError, LoadedRun, PATTERN_FIELDS, Scores, ablate,
    checkpoint_steps, probe_attention, probe_statistics,
};
pub use credentials::{
    MAX_TOKEN_LEN, TOKEN_ENV, Token, TokenError, set_default_token, set_server_token,
    split_backend_tokens, token_for,
};
pub use evaluate::{EvalError, RecordEval, evaluate_record};
pub use handle::{Placement, Trainer, TrainerGone, TrySendCommandError, TryStartError};
pub use length_probe::{LengthProbe, probe_at_length};
pub use patching::{PatchBase, Patched, patch};
pub use pool::workers_for;
pub use protocol::{Command, Event, Fault, RunId, RunPhase, STOPPED_BEFORE_START, StartRun};
pub use serve::{Listening, ServeOptions, ServeTransport, serve};
pub use session::MAX_SNAPSHOT_SIDE;
pub(crate) use session::panic_text;
pub use sink::EventReceiver;
pub use step::{
    StepOptions, StepOutcome, clip_grad_norm, grad_norm, optimizer, tokens_tensor, train_step,
};
