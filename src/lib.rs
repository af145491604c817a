//! attnlab: a workbench for seeing how self-attention captures long-range
//! dependencies and what sparse attention gains or loses.
//!
//! The library is layered; a module uses only the modules below it (checked by
//! `tests/architecture.rs`, drawn in ARCHITECTURE.md):
//!
//! ```text
//! app, cli          front ends: the workbench window and the headless commands
//! bench, export     the reference workloads, timed; figures and numbers out of records
//! trainer           the pool of executor threads: one session per run, Command/Event
//! inspect           a finished model loaded and measured: eval, ablate, patch, probes
//! device            backend choice (CPU, wgpu, remote), credentials, `attnlab serve`
//! model, records    burn models and attention kernels; run records on disk
//! config            experiment files -> validated RunPlans; the field registry
//! attention, memory, tasks
//!                   pattern definitions, masks, layouts; the counting allocator;
//!                   synthetic tasks
//! ```

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
// A function is one idea: past 80 lines of code (clippy.toml) it is split by meaning.
#![warn(clippy::too_many_lines)]

pub mod app;
pub mod attention;
pub mod bench;
pub mod cli;
pub mod config;
pub mod device;
pub mod export;
pub mod inspect;
pub mod memory;
pub mod model;
pub mod records;
pub mod tasks;
pub mod trainer;
