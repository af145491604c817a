//! The memory estimate against what a training step really allocates: the W1 step
//! (the trainer's own `train_step`) measured by the binary's counting allocator, one
//! configuration per process (`attnlab bench --single`).

use std::path::Path;

use attnlab::bench::{default_pattern, w1_plan};
use attnlab::config::{BackendChoice, estimate};

mod common;
use common::bin::attnlab;

fn measured_peak_mb(attn: &str, seq: usize) -> f64 {
    let seq = seq.to_string();
    let out = attnlab(
        &[
            "bench",
            "--single",
            "--workload",
            "w1",
            "--attn",
            attn,
            "--seq",
            &seq,
            "--steps",
            "1",
            "--warmup",
            "1",
        ],
        Path::new(env!("CARGO_MANIFEST_DIR")),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("one JSON line on stdout");
    line["peak_alloc_mb"].as_f64().expect("peak_alloc_mb")
}

/// Within 0.6x-1.6x of the measured peak on dense, masked-dense and block-sparse
/// layers (the probe's snapshot is not part of a bare step, so it is left out).
#[test]
fn the_estimate_is_within_a_stated_factor_of_measured_peaks() {
    for (attn, seq) in [("dense", 256), ("local", 256), ("block", 512)] {
        let pattern = default_pattern(attn).expect("pattern");
        let plan = w1_plan(&pattern, seq, 2, BackendChoice::Cpu, 1).expect("valid");
        let e = estimate(plan.settings());
        let estimated_mb = (e.total() - e.snapshot - e.eval_data) as f64 / (1024.0 * 1024.0);
        let measured_mb = measured_peak_mb(attn, seq);
        let ratio = estimated_mb / measured_mb;
        println!(
            "{attn} n={seq}: estimated {estimated_mb:.0} MiB, measured {measured_mb:.0} MiB, ratio {ratio:.2}"
        );
        assert!(
            (0.6..=1.6).contains(&ratio),
            "{attn} n={seq}: estimated {estimated_mb:.0} MiB vs measured {measured_mb:.0} MiB"
        );
    }
}

/// The shipped dense_vs_local at seq_len 8192 and batch 64 (which once grew the
/// window to 23 GB until the kernel killed it) is refused before anything trains.
#[test]
fn a_run_that_cannot_fit_is_refused_with_the_field_to_change() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/experiments/dense_vs_local.toml"
    ))
    .expect("shipped");
    let mut experiment = attnlab::config::Experiment::from_toml(&text).expect("parses");
    experiment.base.task.seq_len = 8192;
    experiment.base.train.batch = 64;
    let errors = experiment
        .plan_within(Some(23 << 30))
        .expect_err("too big for 23 GB");
    let e = errors
        .for_field("runs[0].task.seq_len")
        .or_else(|| errors.for_field("task.seq_len"))
        .unwrap_or_else(|| panic!("names task.seq_len: {errors}"));
    assert!(e.message.contains("needs ~"), "{}", e.message);
    assert!(experiment.plan_within(Some(1 << 50)).is_ok());
}
