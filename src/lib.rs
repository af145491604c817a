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
//! model, records    burn models and attention kernels; run records on disk
//! config            experiment files -> validated RunPlans; the field registry
//! attention, memory, tasks
//!                   pattern definitions, masks, layouts; the counting allocator;
//!                   synthetic tasks
//! ```

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod app;
pub mod attention;
pub mod bench;
pub mod cli;
pub mod config;
pub mod export;
pub mod memory;
pub mod model;
pub mod records;
pub mod tasks;
pub mod trainer;
