//! The `attnlab` binary headless: `run` writes complete run records, `validate` exit codes.

use std::path::Path;
use std::process::Command;
use std::sync::LazyLock;

use attnlab::records::{RunRecord, RunStatus};

mod common;
// The binary without colours, whatever the terminal.
use common::bin::{BIN, attnlab_no_color as attnlab, json_lines, text};
use common::experiments::{DENSE, LOCAL_W1, LSTM, Tiny, many, prose, text_experiment};
use common::files::{changed_files, copy_folder, files_under};

static TINY: LazyLock<String> = LazyLock::new(|| {
    Tiny {
        name: "tiny",
        steps: 5,
        eval_every: 5,
        snapshot_every: 2,
        runs: &[DENSE, LOCAL_W1, LSTM],
    }
    .toml()
});

#[test]
fn run_writes_a_complete_record_per_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("tiny.toml"), TINY.as_str()).expect("write");
    let out = attnlab(&["run", "tiny.toml", "--out", "records"], dir.path());
    assert!(out.status.success(), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains("dense") && all.contains("local w=1") && all.contains("lstm"),
        "{all}"
    );

    let mut dirs: Vec<_> = std::fs::read_dir(dir.path().join("records"))
        .expect("records/")
        .map(|e| e.expect("entry").path())
        .collect();
    dirs.sort();
    assert_eq!(dirs.len(), 3, "{dirs:?}");
    let mut names = Vec::new();
    for d in &dirs {
        for file in ["config.toml", "metrics.csv", "summary.json"] {
            assert!(d.join(file).is_file(), "{} lacks {file}", d.display());
        }
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("summary.json")).expect("read"))
                .expect("json");
        for key in [
            "name",
            "status",
            "steps",
            "final_loss",
            "final_accuracy",
            "backend",
        ] {
            assert!(
                summary.get(key).is_some(),
                "summary.json lacks {key}: {summary}"
            );
        }
        assert_eq!(summary["status"], "finished");
        assert_eq!(summary["steps"], 5);
        assert_eq!(summary["backend"], "cpu");
        // The binary counts allocations: each run's step was measured alone, and holds
        // at least the parameters and Adam's two moments.
        let peak = summary["peak_memory_bytes"]
            .as_u64()
            .expect("measured peak");
        let params = summary["params"].as_u64().expect("params");
        assert!(peak > params * 12, "peak {peak} B for {params} parameters");
        assert!(peak < 256 << 20, "a tiny model's step peaks at {peak} B");
        let csv = std::fs::read_to_string(d.join("metrics.csv")).expect("read");
        let mut lines = csv.lines();
        assert_eq!(lines.next(), Some("step,split,loss,accuracy,elapsed_secs"));
        assert_eq!(lines.clone().filter(|l| l.contains(",train,")).count(), 5);
        assert_eq!(lines.filter(|l| l.contains(",eval,")).count(), 1);

        let record = RunRecord::open(d).expect("opens");
        assert_eq!(record.summary.status, RunStatus::Finished);
        let snapshots = record.snapshots().expect("readable");
        if record.summary.name == "lstm" {
            assert!(snapshots.is_none());
        } else {
            let (header, snaps) = snapshots.expect("attention.bin");
            assert_eq!((header.layers, header.heads, header.n), (2, 2, 16));
            assert_eq!(
                snaps.iter().map(|s| s.step).collect::<Vec<_>>(),
                vec![0, 2, 4, 5]
            );
        }
        // config.toml is a valid experiment file with exactly this run.
        let e = record.experiment().expect("config.toml");
        assert_eq!(e.runs.len(), 1);
        names.push(e.runs[0].name.clone());
    }
    names.sort();
    assert_eq!(names, vec!["dense", "local w=1", "lstm"]);
}

#[test]
fn run_filters_and_overrides() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("tiny.toml"), TINY.as_str()).expect("write");
    let out = attnlab(
        &[
            "run",
            "tiny.toml",
            "--out",
            "r",
            "--run",
            "lstm",
            "--steps",
            "2",
            "--backend",
            "cpu",
            "-q",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let records: Vec<_> = std::fs::read_dir(dir.path().join("r"))
        .expect("r/")
        .collect();
    assert_eq!(records.len(), 1);
    let record = RunRecord::open(&records[0].as_ref().expect("entry").path()).expect("opens");
    assert_eq!(
        (record.summary.name.as_str(), record.summary.steps),
        ("lstm", 2)
    );

    let out = attnlab(&["run", "tiny.toml", "--run", "nope"], dir.path());
    assert!(!out.status.success());
    assert!(text(&out).contains("nope"), "{}", text(&out));

    // --set goes through the field registry: the value is typed and bounded as in a
    // file, a misspelt path gets the nearest one.
    let out = attnlab(
        &[
            "run",
            "tiny.toml",
            "--out",
            "s",
            "--run",
            "dense",
            "--set",
            "train.steps=3",
            "--set",
            "model.attention={ kind = \"local\", window = 2 }",
            "-q",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let records: Vec<_> = std::fs::read_dir(dir.path().join("s"))
        .expect("s/")
        .collect();
    let record = RunRecord::open(&records[0].as_ref().expect("entry").path()).expect("opens");
    assert_eq!(record.summary.steps, 3);
    let config = std::fs::read_to_string(record.dir.join("config.toml")).expect("config");
    assert!(config.contains("window = 2"), "{config}");
    let out = attnlab(&["run", "tiny.toml", "--set", "train.stesp=3"], dir.path());
    assert!(!out.status.success());
    assert!(
        text(&out).contains("did you mean `train.steps`"),
        "{}",
        text(&out)
    );
    let out = attnlab(
        &["run", "tiny.toml", "--set", "task.seq_len=9000"],
        dir.path(),
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("8192"), "{}", text(&out));
}

#[test]
fn validate_exit_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("good.toml"), TINY.as_str()).expect("write");
    std::fs::write(
        dir.path().join("bad.toml"),
        "name = \"x\"\n[model]\nhead = 4\n",
    )
    .expect("write");

    let out = attnlab(&["validate", "good.toml"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // Each run with its estimated peak memory, and what the process can get.
    let all = text(&out);
    for run in ["dense", "local w=1", "lstm"] {
        assert!(
            all.lines()
                .any(|l| l.contains(run) && l.contains("B peak memory")),
            "{run}: {all}"
        );
    }
    assert!(all.contains("available: "), "{all}");

    let out = attnlab(&["validate", "good.toml", "bad.toml"], dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = text(&out);
    assert!(all.contains("bad.toml:3") && all.contains("heads"), "{all}");

    let out = attnlab(&["validate", "missing.toml"], dir.path());
    assert_eq!(out.status.code(), Some(1));

    // A bad file given to `run` trains nothing.
    let out = attnlab(&["run", "bad.toml", "--out", "r"], dir.path());
    assert!(!out.status.success());
    assert!(!dir.path().join("r").exists());
}

#[test]
fn shipped_experiments_validate_from_the_cli() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<String> = std::fs::read_dir(root.join("experiments"))
        .expect("experiments/")
        .chain(std::fs::read_dir(root.join("experiments/reference")).expect("reference/"))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    let mut args = vec!["validate"];
    args.extend(files.iter().map(String::as_str));
    let out = attnlab(&args, root);
    assert!(out.status.success(), "{}", text(&out));
}

/// Hundreds of runs in one file stream through (they used to fill the command
/// channel while the trainer waited to deliver events: a hang after ~147 runs).
#[test]
fn a_file_of_hundreds_of_runs_does_not_hang() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("many.toml"), many(300)).expect("write");
    let out = attnlab(&["run", "many.toml", "--out", "records", "-q"], dir.path());
    assert!(out.status.success(), "{}", text(&out));
    let records = attnlab::records::list_records(&dir.path().join("records"));
    assert_eq!(records.len(), 300);
    assert!(
        records
            .iter()
            .all(|r| r.summary.status == RunStatus::Finished)
    );
}

/// `run --resume RUN_DIR` continues a recorded run from its checkpoint (here: a
/// finished run trained further with --steps), in the same record.
#[test]
fn resume_continues_a_record_from_its_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let one = TINY.split("[[runs]]").next().expect("base");
    std::fs::write(dir.path().join("one.toml"), one).expect("write");
    let out = attnlab(&["run", "one.toml", "--out", "records", "-q"], dir.path());
    assert!(out.status.success(), "{}", text(&out));
    let records = attnlab::records::list_records(&dir.path().join("records"));
    assert_eq!(records.len(), 1);
    let record_dir = records[0].dir.clone();
    assert_eq!(records[0].checkpoint_step, Some(5));
    let shown = record_dir.display().to_string();

    let out = attnlab(&["run", "--resume", &shown], dir.path());
    assert!(!out.status.success());
    assert!(text(&out).contains("--steps"), "{}", text(&out));
    // A resumed run may change only what the registry lets change mid-run.
    let out = attnlab(
        &[
            "run",
            "--resume",
            &shown,
            "--steps",
            "8",
            "--set",
            "model.layers=3",
        ],
        dir.path(),
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("cannot change when resuming"),
        "{}",
        text(&out)
    );

    let out = attnlab(
        &["run", "--resume", &shown, "--steps", "8", "-q"],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let record = RunRecord::open(&record_dir).expect("record");
    assert_eq!(record.summary.status, RunStatus::Finished);
    assert_eq!(record.summary.steps, 8);
    let steps: Vec<usize> = record
        .metrics()
        .expect("metrics")
        .iter()
        .filter(|m| !m.eval)
        .map(|m| m.metrics.step)
        .collect();
    assert_eq!(steps, (1..=8).collect::<Vec<_>>());
}

/// Seeds replicate each run; the final table groups them with mean +- sd and the
/// fraction that solved the task.
#[test]
fn seeded_sweeps_train_and_the_table_groups_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = TINY
        .split("[[runs]]")
        .next()
        .expect("base")
        .replace("steps = 5", "steps = 2\nseeds = [1, 2]\nsolved_at = 0.0")
        + "[sweep]\ntask.distance = [2, 4]\n";
    std::fs::write(dir.path().join("s.toml"), text).expect("write");
    // Two runs at once (a pool), the table as from one at a time.
    let out = attnlab(
        &["run", "s.toml", "--out", "records", "-q", "--jobs", "2"],
        dir.path(),
    );
    assert!(out.status.success(), "{}", self::text(&out));
    let all = self::text(&out);
    assert!(all.contains("group (seeds)"), "{all}");
    assert!(all.contains("tiny distance=2"), "{all}");
    assert!(
        all.contains("2/2"),
        "every seed solves accuracy >= 0: {all}"
    );
    let records = attnlab::records::list_records(&dir.path().join("records"));
    assert_eq!(records.len(), 4);
}

/// `attnlab eval` evaluates a record's saved model: on the run's own evaluation
/// examples it reproduces the run's final accuracy exactly; one JSON line per run and
/// distance; a folder that is not a record is an error, the others still evaluated.
#[test]
fn eval_reproduces_the_runs_accuracy_by_distance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let toml = TINY.replace("[train]\n", "[train]\nseed = 7\n");
    std::fs::write(dir.path().join("tiny.toml"), toml).expect("write");
    let out = attnlab(
        &["run", "tiny.toml", "--out", "records", "--quiet"],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    // The run's evaluation stream is seeded `seed ^ 0x5EED_E7A1`.
    let seed = (7u64 ^ 0x5EED_E7A1).to_string();
    let out = attnlab(
        &["eval", "records", "--seed", &seed, "--batches", "1"],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 3, "recall: one distance per run: {lines:?}");
    for line in &lines {
        assert_eq!(line["distance"], 4);
        assert_eq!(line["examples"], 4 * 12, "batch 4 x 12 answers");
        let record = dir
            .path()
            .join("records")
            .join(line["record"].as_str().expect("record"));
        let summary = RunRecord::open(&record).expect("record").summary;
        assert_eq!(line["run"], summary.name.as_str());
        let accuracy = line["accuracy"].as_f64().expect("accuracy");
        let trained = summary.final_accuracy.expect("evaluated");
        assert!(
            (accuracy - trained).abs() < 1e-9,
            "{}: eval {accuracy} vs training's {trained}",
            summary.name
        );
        // The run's own accuracy by distance says the same.
        let by = RunRecord::open(&record)
            .and_then(|r| r.distances())
            .expect("distance.csv");
        let last = by.last().expect("evaluated");
        assert_eq!(last.step, 5);
        assert!((last.accuracy() - trained).abs() < 1e-9);
    }
    // A folder that is no record: an error naming it, exit 1, the record still done.
    let record = lines[0]["record"].as_str().expect("record").to_string();
    std::fs::create_dir(dir.path().join("empty")).expect("mkdir");
    std::fs::create_dir(dir.path().join("empty/not-a-record")).expect("mkdir");
    std::fs::write(dir.path().join("empty/not-a-record/summary.json"), "{").expect("write");
    let out = attnlab(
        &["eval", &format!("records/{record}"), "empty/not-a-record"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
}

/// The text task reads its file relative to the experiment file (from any working
/// folder), trains on it, and reports bits per character; a missing file or a
/// vocabulary too small for its characters is an error naming the field.
#[test]
fn a_text_experiment_reads_its_file_next_to_it_and_reports_bits_per_character() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sub = dir.path().join("exp");
    std::fs::create_dir_all(sub.join("data")).expect("mkdir");
    std::fs::write(sub.join("data/prose.txt"), prose()).expect("write");
    let toml = |vocab: usize, file: &str| text_experiment(file, vocab, 4);
    std::fs::write(sub.join("t.toml"), toml(32, "data/prose.txt")).expect("write");
    // Run from the parent folder: the path is relative to the file, not the cwd.
    let out = attnlab(&["run", "exp/t.toml", "--out", "records"], dir.path());
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("bits per character"), "{}", text(&out));
    // 28 distinct characters: a vocabulary of 8 is refused, saying how many.
    std::fs::write(sub.join("small.toml"), toml(8, "data/prose.txt")).expect("write");
    let out = attnlab(&["validate", "exp/small.toml"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("task.vocab") && text(&out).contains("28"),
        "{}",
        text(&out)
    );
    std::fs::write(sub.join("missing.toml"), toml(32, "data/none.txt")).expect("write");
    let out = attnlab(&["validate", "exp/missing.toml"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("task.file"), "{}", text(&out));
}

/// `run --resume` with an edited `config.toml` (here `lr`) is refused, naming the
/// field, before anything is written: every file of the record stays as it was. The
/// same change made on purpose with `--set` (lr may change mid-run) continues.
#[test]
fn resume_refuses_edited_settings_and_leaves_the_record_as_it_was() {
    let dir = tempfile::tempdir().expect("tempdir");
    let one = TINY.split("[[runs]]").next().expect("base");
    std::fs::write(dir.path().join("one.toml"), one).expect("write");
    let out = attnlab(&["run", "one.toml", "--out", "records", "-q"], dir.path());
    assert!(out.status.success(), "{}", text(&out));
    let records = attnlab::records::list_records(&dir.path().join("records"));
    let record_dir = records[0].dir.clone();
    let config = record_dir.join("config.toml");
    let edited: String = std::fs::read_to_string(&config)
        .expect("config.toml")
        .lines()
        .map(|l| {
            if l.starts_with("lr = ") {
                "lr = 0.002\n".to_string()
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    assert!(edited.contains("lr = 0.002"), "{edited}");
    std::fs::write(&config, edited).expect("edit config.toml");
    let before = files_under(&record_dir);
    let shown = record_dir.display().to_string();

    let out = attnlab(
        &["run", "--resume", &shown, "--steps", "8", "-q"],
        dir.path(),
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("train.lr"), "{}", text(&out));
    let changed = changed_files(&before, &files_under(&record_dir));
    assert!(changed.is_empty(), "a refused resume changed {changed:?}");

    let out = attnlab(
        &[
            "run",
            "--resume",
            &shown,
            "--steps",
            "8",
            "--set",
            "train.lr=0.002",
            "-q",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let record = RunRecord::open(&record_dir).expect("record");
    assert_eq!(record.summary.steps, 8);
}

/// A record whose `config.toml` holds several runs resumes the one its
/// `summary.json` names, not the file's last.
#[test]
fn resume_continues_the_run_the_summary_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("tiny.toml"), TINY.as_str()).expect("write");
    let out = attnlab(
        &[
            "run",
            "tiny.toml",
            "--out",
            "records",
            "--run",
            "dense",
            "-q",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let records = attnlab::records::list_records(&dir.path().join("records"));
    assert_eq!(records.len(), 1);
    let record_dir = records[0].dir.clone();
    // Every run of the experiment, the record's ("dense") first, "lstm" last.
    std::fs::write(record_dir.join("config.toml"), TINY.as_str()).expect("write config.toml");
    let shown = record_dir.display().to_string();

    let out = attnlab(
        &["run", "--resume", &shown, "--steps", "8", "-q"],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let record = RunRecord::open(&record_dir).expect("record");
    assert_eq!(record.summary.name, "dense");
    assert_eq!(record.summary.status, RunStatus::Finished);
    assert_eq!(record.summary.steps, 8);
}

/// An experiment that estimates ~6.6 GB (every layer's and head's `8192 x 8192`
/// snapshot), refused by `validate` under a 3 GB `RLIMIT_AS` although the machine may
/// have far more free: the address-space limit is what the process can get.
const BIG: &str = r#"
name = "big"
[task]
seq_len = 8192
vocab = 8
distance = 4
[model]
layers = 2
heads = 4
d_model = 16
d_ff = 32
[train]
steps = 1
batch = 1
eval_batches = 1
backend = "cpu"
"#;

#[test]
fn validate_refuses_a_run_over_the_address_space_limit() {
    // Enough for the debug binary to start (it needs ~300-500 MB of address space),
    // well under BIG's estimate.
    const LIMIT: u64 = 3_000_000_000;
    let prlimit = Command::new("prlimit").arg("--version").output();
    if !prlimit.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: prlimit (util-linux) is not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("big.toml"), BIG).expect("write");
    std::fs::write(dir.path().join("tiny.toml"), TINY.as_str()).expect("write");
    let settings = attnlab::config::Experiment::from_toml(BIG)
        .expect("parses")
        .plan_within(None)
        .expect("valid without a memory check");
    let needs = attnlab::config::estimate(settings[0].settings()).total();
    assert!(needs > 2 * LIMIT, "{needs}");

    let validate = |file: &str| {
        Command::new("prlimit")
            .arg(format!("--as={LIMIT}"))
            .arg(BIN)
            .args(["validate", file])
            .current_dir(dir.path())
            .env("NO_COLOR", "1")
            .output()
            .expect("prlimit runs")
    };
    // Under the limit the binary starts and a small experiment fits.
    let out = validate("tiny.toml");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let all = text(&out);
    // Unless the machine (or its cgroup) has even less, the limit named is RLIMIT_AS.
    if attnlab::config::available_memory().is_some_and(|m| m > LIMIT) {
        assert!(all.contains("(RLIMIT_AS)"), "{all}");
    }

    let out = validate("big.toml");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains("big.toml") && all.contains("task.seq_len") && all.contains("needs ~"),
        "{all}"
    );
}

/// `eval` and `export` take each record on its own: a damaged record (a garbled
/// checkpoint; a config whose shapes no longer fit the saved model; an unreadable
/// summary) is reported on stderr by name, the good one is still done, and the exit
/// status is 1. Nothing panics the process away.
#[test]
fn eval_and_export_do_the_good_records_and_report_the_damaged_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let one = TINY.split("[[runs]]").next().expect("base");
    std::fs::write(dir.path().join("one.toml"), one).expect("write");
    let out = attnlab(&["run", "one.toml", "--out", "records", "-q"], dir.path());
    assert!(out.status.success(), "{}", text(&out));
    let good = attnlab::records::list_records(&dir.path().join("records"))[0]
        .dir
        .clone();
    let good_id = good.file_name().expect("id").to_string_lossy().to_string();
    let damaged = dir.path().join("damaged");
    // A garbled checkpoint.
    copy_folder(&good, &damaged.join("garbled"));
    for entry in std::fs::read_dir(damaged.join("garbled/checkpoint")).expect("checkpoint") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            std::fs::write(path, b"\x00garbage\xff").expect("garble");
        }
    }
    // A model wider than the one saved.
    copy_folder(&good, &damaged.join("reshaped"));
    let config = std::fs::read_to_string(good.join("config.toml")).expect("config.toml");
    let wider = config.replace("d_model = 16", "d_model = 32");
    assert_ne!(wider, config);
    std::fs::write(damaged.join("reshaped/config.toml"), wider).expect("write");
    // A summary that does not read.
    copy_folder(&good, &damaged.join("unreadable"));
    std::fs::write(damaged.join("unreadable/summary.json"), "{").expect("write");
    let shown = good.display().to_string();
    let names = ["garbled", "reshaped", "unreadable"];
    let bad: Vec<String> = names
        .iter()
        .map(|n| damaged.join(n).display().to_string())
        .collect();

    let mut args = vec!["eval", "--batches", "1", bad[0].as_str(), &shown];
    args.extend([bad[1].as_str(), bad[2].as_str()]);
    let out = attnlab(&args, dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines = json_lines(&out);
    assert!(
        !lines.is_empty(),
        "the good record is evaluated: {}",
        text(&out)
    );
    assert!(
        lines.iter().all(|l| l["record"] == good_id.as_str()),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    for name in names {
        assert!(stderr.contains(name), "{name} is reported: {stderr}");
    }

    let mut args = vec!["export", "--to", "figures", bad[0].as_str(), &shown];
    args.extend([bad[1].as_str(), bad[2].as_str()]);
    let out = attnlab(&args, dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let figures = dir.path().join("figures");
    assert!(
        figures.join(&good_id).join("metrics.csv").is_file(),
        "{}",
        text(&out)
    );
    assert!(figures.join("summary.csv").is_file());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unreadable"),
        "{}",
        text(&out)
    );
}

/// Ctrl+C (SIGINT) stops a run and records it as stopped, exit 130; a second Ctrl+C
/// exits at once, also 130, whatever the trainer is doing.
#[test]
fn ctrl_c_stops_and_records_and_a_second_one_exits_at_once() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().expect("tempdir");
    let long = TINY.replace("steps = 5", "steps = 100000000");
    std::fs::write(dir.path().join("long.toml"), long).expect("write");
    let signal = |child: &std::process::Child, name: &str| {
        let status = Command::new("kill")
            .args([name, &child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    };
    let start = |out: &str| {
        let mut child = common::bin::command(&["run", "long.toml", "--out", out])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starts");
        // Wait until it trains (a progress or evaluation line), so the handler is set.
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let mut line = String::new();
        while stderr.read_line(&mut line).expect("read") > 0 && !line.contains("step") {
            line.clear();
        }
        (child, stderr)
    };
    let wait = |child: &mut std::process::Child| {
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "it did not exit"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    let (mut child, _stderr) = start("once");
    signal(&child, "-INT");
    assert_eq!(wait(&mut child).code(), Some(130));
    let records = attnlab::records::list_records(&dir.path().join("once"));
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0].summary.status,
        RunStatus::Stopped,
        "{:?}",
        records[0].summary
    );

    let (mut child, _stderr) = start("twice");
    signal(&child, "-INT");
    signal(&child, "-INT");
    assert_eq!(wait(&mut child).code(), Some(130));
}

/// A `[reference]` table: `run` prints ours beside the published figure per run
/// (reproduced, not reproduced, not comparable), `summary.json` records it, and the
/// exit code does not depend on it; a table naming a run that does not exist is
/// refused with its line.
#[test]
fn run_compares_with_the_published_figures() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = format!(
        "{}\n[reference]\nsource = \"a test\"\nmetric = \"accuracy\"\ntolerance = 0.0\n[reference.runs.dense]\npublished = \"chance\"\nrule = \"at_most\"\ntolerance = 1.0\n[reference.runs.\"local w=1\"]\npublished = 1.5\n",
        TINY.replace("steps = 5", "steps = 3")
            .replace("eval_every = 5", "eval_every = 3")
    );
    std::fs::write(dir.path().join("ref.toml"), &file).expect("write");
    let out = attnlab(&["run", "ref.toml", "--out", "records"], dir.path());
    let all = text(&out);
    assert!(out.status.success(), "a verdict never fails the run: {all}");
    assert!(all.contains("checked against a test"), "{all}");
    let line = |run: &str| {
        all.lines()
            .find(|l| {
                l.starts_with(run)
                    && !l.contains("published")
                    && (l.contains('>') || l.contains('<'))
            })
            .unwrap_or_default()
            .to_string()
    };
    assert!(line("local w=1").ends_with("not reproduced"), "{all}");
    let mut verdicts = Vec::new();
    for entry in std::fs::read_dir(dir.path().join("records")).expect("records") {
        let record = RunRecord::open(&entry.expect("entry").path()).expect("record");
        let verdict = record.summary.reference.as_ref().map(|r| r.verdict);
        verdicts.push((record.summary.name.clone(), verdict));
    }
    verdicts.sort_by(|a, b| a.0.cmp(&b.0));
    use attnlab::config::Verdict;
    assert_eq!(
        verdicts,
        [
            ("dense".to_string(), Some(Verdict::Reproduced)),
            ("local w=1".to_string(), Some(Verdict::NotReproduced)),
            ("lstm".to_string(), None),
        ],
        "{all}"
    );

    let bad = file.replace("[reference.runs.dense]", "[reference.runs.dnese]");
    std::fs::write(dir.path().join("bad.toml"), bad).expect("write");
    let out = attnlab(&["validate", "bad.toml"], dir.path());
    let all = text(&out);
    assert!(!out.status.success());
    assert!(
        all.contains("reference.runs.dnese") && all.contains("names no run"),
        "{all}"
    );
}

/// `attnlab eval --seq-len`: a model without learned positions is evaluated at each
/// length asked for (its JSON lines say which); learned positions are refused beyond
/// their length, naming `model.positions`, and the other lengths still evaluated.
#[test]
fn eval_at_other_lengths_refuses_learned_positions_beyond_theirs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = TINY
        .replace("steps = 5", "steps = 2")
        .replace("eval_every = 5", "eval_every = 2")
        .replace(
            "name = \"local w=1\"",
            "name = \"local w=1\"\nmodel.positions = \"none\"",
        );
    std::fs::write(dir.path().join("len.toml"), file).expect("write");
    let out = attnlab(
        &[
            "run",
            "len.toml",
            "--out",
            "records",
            "--run",
            "dense",
            "--run",
            "local w=1",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let mut by_run = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(dir.path().join("records")).expect("records") {
        let path = entry.expect("entry").path();
        let record = RunRecord::open(&path).expect("record");
        by_run.insert(record.summary.name.clone(), path);
    }
    let eval = |run: &str| {
        let path = by_run[run].display().to_string();
        attnlab(
            &["eval", &path, "--seq-len", "16,32", "--batches", "1"],
            dir.path(),
        )
    };
    let out = eval("local w=1");
    assert!(out.status.success(), "{}", text(&out));
    let lengths: std::collections::BTreeSet<u64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json line");
            v["seq_len"].as_u64().expect("seq_len")
        })
        .collect();
    assert_eq!(lengths, [16, 32].into(), "{}", text(&out));
    let out = eval("dense");
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains("model.positions") && all.contains("seq_len 32"),
        "{all}"
    );
    assert!(
        all.contains("\"seq_len\":16"),
        "length 16 still evaluated: {all}"
    );
}

/// A causal local window with RoPE sees only offsets it trained on, so evaluated at
/// 4x its training length it keeps its accuracy (recall at distance 4, window 4).
#[test]
fn rope_with_a_causal_local_window_keeps_its_accuracy_at_four_times_the_length() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = "name = \"rope length\"\n[task]\nkind = \"recall\"\nseq_len = 32\nvocab = 16\ndistance = 4\n[model]\nlayers = 2\nheads = 2\nd_model = 16\nd_ff = 32\ncausal = true\npositions = \"rope\"\nattention = { kind = \"local\", window = 4 }\n[train]\nsteps = 300\nbatch = 16\nlr = 3e-3\neval_every = 300\ncheckpoint_every = 0\nsnapshot_every = 0\nbackend = \"cpu\"\n";
    std::fs::write(dir.path().join("rope.toml"), file).expect("write");
    let out = attnlab(
        &["run", "rope.toml", "--out", "records", "--quiet"],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = attnlab(
        &["eval", "records", "--seq-len", "32,128", "--batches", "4"],
        dir.path(),
    );
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    let accuracy = |n: usize| -> f64 {
        let marker = format!("seq_len {n}, accuracy ");
        let line = all.lines().find(|l| l.contains(&marker)).expect(&all);
        let rest = &line[line.find(&marker).expect("marker") + marker.len()..];
        rest.split(',')
            .next()
            .expect("number")
            .trim()
            .parse()
            .expect(&all)
    };
    let (trained, longer) = (accuracy(32), accuracy(128));
    assert!(trained >= 0.99, "trained to {trained}: {all}");
    assert!(
        longer >= trained - 0.01,
        "{trained} at 32, {longer} at 128: {all}"
    );
}

/// `train.eval_lengths`: every evaluation also scores held-out examples at twice the
/// training length (recorded in `lengths.csv`, with distances, and in the summary and
/// the final table); learned positions with a longer length are refused at
/// validation, naming `model.positions`.
#[test]
fn eval_lengths_are_scored_at_every_evaluation_and_learned_positions_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = "name = \"lengths\"\n[task]\nkind = \"recall\"\nseq_len = 16\nvocab = 8\ndistance = 4\n[model]\nlayers = 1\nheads = 2\nd_model = 16\nd_ff = 32\ncausal = true\npositions = \"rope\"\nattention = { kind = \"local\", window = 4 }\n[train]\nsteps = 6\nbatch = 4\neval_every = 3\neval_batches = 2\neval_lengths = [32]\ncheckpoint_every = 0\nsnapshot_every = 0\nbackend = \"cpu\"\n";
    std::fs::write(dir.path().join("lengths.toml"), file).expect("write");
    let out = attnlab(&["run", "lengths.toml", "--out", "records"], dir.path());
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("at other lengths: 32: acc "), "{all}");
    let record_dir = std::fs::read_dir(dir.path().join("records"))
        .expect("records")
        .next()
        .expect("one record")
        .expect("entry")
        .path();
    let record = RunRecord::open(&record_dir).expect("record");
    let scores = record.lengths().expect("lengths.csv reads");
    assert_eq!(
        scores
            .iter()
            .map(|s| (s.metrics.step, s.seq_len))
            .collect::<Vec<_>>(),
        vec![(3, 32), (6, 32)],
        "{scores:?}"
    );
    for s in &scores {
        assert!(!s.by_distance.counts.is_empty(), "{s:?}");
        assert!((0.0..=1.0).contains(&s.metrics.accuracy) && s.metrics.loss.is_finite());
    }
    let last = record.summary.final_lengths.first().expect("final_lengths");
    assert_eq!(last.seq_len, 32);
    assert_eq!(last.accuracy, scores[1].metrics.accuracy);

    // The Length pane's probe: the attention on the probe generated at 4x the length.
    let probe =
        attnlab::inspect::probe_at_length(&record_dir, 64, attnlab::config::BackendChoice::Cpu)
            .expect("probes at 64");
    assert_eq!((probe.step, probe.seq_len), (6, 64));
    assert_eq!(probe.probe.tokens.len(), 64);
    let snap = &probe.snapshot;
    assert_eq!(
        (snap.layers, snap.heads, snap.n, snap.seq_len),
        (1, 2, 64, 64)
    );
    assert_eq!(snap.weights.len(), 2 * 64 * 64);

    let learned = file.replace("positions = \"rope\"\n", "");
    std::fs::write(dir.path().join("learned.toml"), learned).expect("write");
    let out = attnlab(&["validate", "learned.toml"], dir.path());
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains("train.eval_lengths") && all.contains("model.positions"),
        "{all}"
    );
}

/// A rejected credential is never quoted back: clap's own error for a refused value
/// prints it, which would put a mistyped token into terminals and CI logs. Each
/// refusal names the flag and the reason, exits 2 (a usage error), and the value's
/// secret part appears nowhere in the output.
#[test]
fn a_rejected_token_is_not_echoed() {
    let dir = tempfile::tempdir().expect("tempdir");
    const SECRET: &str = "Zq7SECRETzq7";
    let cases: [&[&str]; 5] = [
        &["run", "x.toml", "--token", "has space Zq7SECRETzq7"],
        &["serve", "--token", "has space Zq7SECRETzq7"],
        &[
            "run",
            "x.toml",
            "--backend",
            "remote:a b Zq7SECRETzq7@ws://127.0.0.1:9",
        ],
        // Not an address our parser knows: the text before `@` is still hidden.
        &[
            "run",
            "x.toml",
            "--backend",
            "remote:Zq7SECRETzq7@http://127.0.0.1:9",
        ],
        &["run", "x.toml", "--backend", "remote:Zq7SECRETzq7@"],
    ];
    for args in cases {
        let out = attnlab(args, dir.path());
        let shown = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {shown}");
        assert!(
            !shown.contains(SECRET),
            "{args:?} echoed the secret: {shown}"
        );
        assert!(shown.contains("is refused"), "{args:?}: {shown}");
    }
}

/// Sizes that would overflow the memory estimate are refused, naming the field, by
/// validation and by every command-line change (`--set`, `--steps`): the estimate
/// saturates instead of wrapping to a small number, and a revised plan meets the same
/// budget as a file's. Before, `eval_batches = 2^54` validated and `--set
/// train.eval_batches=10000000000000` aborted the process (signal 6, exit 134).
#[test]
fn sizes_that_overflow_the_estimate_are_refused_naming_the_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let huge = TINY.replace("eval_batches = 1\n", "eval_batches = 18014398509481984\n");
    std::fs::write(dir.path().join("huge.toml"), huge).expect("write");
    std::fs::write(dir.path().join("tiny.toml"), TINY.as_str()).expect("write");
    let validate = attnlab(&["validate", "huge.toml"], dir.path());
    let run = attnlab(
        &[
            "run",
            "tiny.toml",
            "--set",
            "train.eval_batches=10000000000000",
            "--out",
            "r",
            "--quiet",
        ],
        dir.path(),
    );
    for out in [validate, run] {
        let shown = text(&out);
        assert_eq!(out.status.code(), Some(1), "{shown}");
        assert!(shown.contains("train.eval_batches"), "{shown}");
    }
    assert!(
        !dir.path().join("r").exists() || files_under(&dir.path().join("r")).is_empty(),
        "nothing was trained"
    );
}
