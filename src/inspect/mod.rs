//! A finished model loaded and measured: a record's saved weights evaluated again
//! (`attnlab eval`), its heads ablated and patched (`attnlab ablate`, `attnlab
//! patch`), its attention on the probe with heads ablated or at another length (the
//! window's Interventions and Length panes), and the attention snapshots the trainer
//! records while a run trains.
//!
//! Nothing here touches the trainer's pool: these are plain functions over a loaded
//! model, called from the CLI directly and from the window on helper threads (burn
//! keeps evaluation of a finished model outside its learner, and so do we). The
//! trainer uses [`score_while`] and [`attention_snapshot`] from here, never the other
//! way round.
//!
//! Inside: `loaded` ([`LoadedRun`]: a record's plan and transformer at a kept step),
//! `evaluate` (scores over seeded batches), `interventions` (ablation, and the
//! probe's attention with heads ablated), `patching` (activation patching),
//! `length_probe` (the probe at another length) and `snapshot` (attention read back and
//! averaged down).

mod error;
mod evaluate;
mod interventions;
mod length_probe;
mod loaded;
mod patching;
mod snapshot;

pub use error::{InspectError, Problem};

/// The most batches `attnlab eval`, `ablate` and `patch` take (`--batches`).
pub const MAX_BATCHES: usize = 100_000;

pub use evaluate::{RecordEval, Scores, evaluate_record, score, score_while};
pub use interventions::{Ablation, AblationMode, ablate, probe_attention, probe_statistics};
pub use length_probe::{LengthProbe, probe_at_length};
pub use loaded::{LoadedRun, PATTERN_FIELDS, checkpoint_steps};
pub use patching::{PatchBase, Patched, patch};
pub use snapshot::{MAX_SNAPSHOT_SIDE, attention_snapshot};
