//! attnlab: a workbench for seeing how self-attention captures long-range
//! dependencies and what sparse attention gains or loses.
//!
//! The library is everything below the GUI: experiment files ([`config`]), attention
//! patterns ([`attention`]), synthetic tasks ([`tasks`]), the burn models ([`model`]),
//! the background trainer and its protocol ([`trainer`]) and run records on disk
//! ([`runs`]). On top sit the two front ends: the command line ([`cli`]) and the
//! workbench window ([`app`]).

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod app;
pub mod attention;
pub mod bench;
pub mod cli;
pub mod config;
pub mod model;
pub mod runs;
pub mod tasks;
pub mod trainer;
