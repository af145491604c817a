//! The workbench's reason to exist, as a test: on recall at a distance beyond
//! L * window, dense attention learns the task while local attention stays near chance.
//! Small, seeded, on the CPU backend.

use std::time::Duration;

use attnlab::attention::compose;
use attnlab::config::Experiment;
use attnlab::records::RunStatus;
use attnlab::trainer::StartRun;

mod common;
use common::train::{Wait, finish_all};

const EXPERIMENT: &str = r#"
name = "science"
[task]
kind = "recall"
seq_len = 32
vocab = 8
distance = 12
[model]
layers = 2
heads = 2
d_model = 32
d_ff = 64
[train]
steps = 400
batch = 32
lr = 5e-3
seed = 1
eval_every = 0
eval_batches = 4
snapshot_every = 0
backend = "cpu"

[[runs]]
name = "dense"

[[runs]]
name = "local w=2"
model.attention = { kind = "local", window = 2 }
"#;

#[test]
fn dense_learns_long_recall_and_local_cannot() {
    let experiment = Experiment::from_toml(EXPERIMENT).expect("valid");
    let plans = experiment.plan().expect("valid");
    let task = &plans[0].settings().task;
    let chance = task.chance_accuracy();

    // The structural argument first: 2 layers of radius 2 reach 4 < 12.
    assert!(compose(&plans[0].layer_masks()).links_distance(task.distance));
    assert!(!compose(&plans[1].layer_masks()).links_distance(task.distance));

    let starts = plans
        .iter()
        .enumerate()
        .map(|(id, plan)| StartRun::new(id as u64, plan.clone(), None))
        .collect();
    // 400 steps of each run, in a debug build: a bound on each event, not on all.
    let summaries: Vec<_> = finish_all(starts, Wait::PerEvent(Duration::from_secs(900)))
        .into_iter()
        .map(|(_, summary)| summary)
        .collect();
    for s in &summaries {
        assert_eq!(s.status, RunStatus::Finished, "{}: {:?}", s.name, s.message);
    }
    let dense = summaries[0].final_accuracy.expect("evaluated");
    let local = summaries[1].final_accuracy.expect("evaluated");
    eprintln!("chance {chance:.3}  dense {dense:.3}  local {local:.3}");
    assert!(
        dense > 0.9,
        "dense should learn recall at distance 12: accuracy {dense:.3}"
    );
    assert!(
        local < chance + 0.1,
        "local w=2 over 2 layers cannot see 12 back: accuracy {local:.3}, chance {chance:.3}"
    );
}
