//! The window's state and the numbers its panes draw, without egui (checked by
//! `tests/architecture.rs`), so each is tested without a window: `editor` (the
//! experiment being edited), `run_views` (what the window knows of each run),
//! `analysis` (receptive fields and reach), `curves`, `compare` and `sweep` (what
//! those panes plot and tabulate), `cost` with its on-disk `cost_cache` (the Cost
//! pane's measurements).

pub mod analysis;
pub mod compare;
pub mod cost;
pub mod cost_cache;
pub mod curves;
pub mod editor;
pub mod run_views;
pub mod sweep;
