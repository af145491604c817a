//! The window's state and the numbers its panes draw, without egui (checked by
//! `tests/architecture.rs`), so each is tested without a window: `editor` (the
//! experiment being edited), `run_views` (what the window knows of each run),
//! `analysis` (receptive fields and reach), `curves`, `compare` and `sweep` with `sweep_best` (what
//! those panes plot and tabulate), `cost` with its on-disk `cost_cache` (the Cost
//! pane's measurements), `interventions` with its `intervention_jobs` (the heads a
//! run needs: ablation and patching off the UI thread, and `ablated_attention`, the
//! probe's attention redrawn with chosen heads ablated),
//! `lengths` (scores at other evaluation lengths: the Length pane's lines with seed
//! bands and solved fractions, the per-length series of Curves and Distance) with
//! `length_probe` (the probe's attention at a longer length), both on `keyed_job`'s
//! helper thread (one computation at a time, results kept by what they are for),
//! `outbox` (commands the trainer has not taken yet), `fork` with its `fork_jobs` (what
//! "Fork from here" would start, and its work off the UI thread), `run_list` (every run the window knows).

pub mod ablated_attention;
pub mod analysis;
pub mod compare;
pub mod cost;
pub mod cost_cache;
pub mod curves;
pub mod editor;
pub mod fork;
pub mod fork_jobs;
pub mod intervention_jobs;
pub mod interventions;
pub mod keyed_job;
pub mod length_probe;
pub mod lengths;
pub mod outbox;
pub mod run_list;
pub mod run_views;
pub mod sweep;
pub mod sweep_best;
