//! Fixtures shared by the integration tests (`mod common;` in each `tests/*.rs`): the
//! binary and a server of it, the small experiments they train, the trainer driven
//! through its protocol, float comparisons, attention patterns and their proptest
//! strategies, and folder snapshots.

// Every test binary compiles this module and uses a different subset of it.
#![allow(dead_code)]

pub mod attention;
pub mod bin;
pub mod experiments;
pub mod files;
pub mod float;
pub mod train;
