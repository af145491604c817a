//! Hostile records and sizes, as an attacker would send them (issue 35's second
//! round): every case is refused or coped with, never a process killed by a signal,
//! the refusal names the field or the file, nothing outside the working folder
//! changes, and each finishes in seconds.

use std::path::{Path, PathBuf};
use std::process::Command;

use attnlab::records::list_records;

mod common;
use common::bin::{BIN, attnlab_no_color as attnlab, text};
use common::experiments::tiny_recall;

/// A finished tiny run recorded under `<dir>/runs`, with `model` and `train` lines;
/// returns its record folder.
fn recorded(dir: &Path, model: &str, train: &str) -> PathBuf {
    std::fs::write(dir.join("t.toml"), tiny_recall("t", 16, model, train)).expect("write");
    let out = attnlab(&["run", "t.toml", "--out", "runs", "-q"], dir);
    assert!(out.status.success(), "{}", text(&out));
    list_records(&dir.join("runs")).pop().expect("a record").dir
}

fn arg(path: &Path) -> String {
    path.display().to_string()
}

/// Case 3: `--batches` is bounded (a usage error naming it, not an abort), and
/// `eval --seq-len` is held to the memory budget: a length whose forward pass would
/// not fit is refused naming `task.seq_len`, before anything is allocated.
#[test]
fn eval_batches_and_lengths_are_held_to_the_budget() {
    let dir = tempfile::tempdir().expect("tempdir");
    let record = recorded(
        dir.path(),
        "positions = \"sinusoidal\"\n",
        "steps = 1\nbatch = 2048\neval_every = 1\nsnapshot_every = 0\n",
    );
    for command in ["eval", "ablate", "patch"] {
        let out = attnlab(
            &[command, &arg(&record), "--batches", "10000000000000"],
            dir.path(),
        );
        assert_eq!(out.status.code(), Some(2), "{command}: {}", text(&out));
        assert!(text(&out).contains("--batches"), "{}", text(&out));
    }
    let prlimit = Command::new("prlimit").arg("--version").output();
    if !prlimit.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped the length: prlimit (util-linux) is not installed");
        return;
    }
    // 2048 examples of 8192 tokens: gigabytes of activations, over a 3 GB limit.
    let out = Command::new("prlimit")
        .arg("--as=3000000000")
        .arg(BIN)
        .args(["eval", &arg(&record), "--seq-len", "8192"])
        .current_dir(dir.path())
        .env("XDG_CONFIG_HOME", common::bin::config_home())
        .output()
        .expect("prlimit runs");
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("task.seq_len") && said.contains("memory"),
        "{said}"
    );
}

/// Case 4: a record whose `config.toml` says `layers = 2^50` is exported without
/// its statistics (before, `export` aborted with signal 6 and took every other
/// record with it), and the window opens it with its settings refused.
#[test]
fn a_record_with_absurd_settings_is_exported_and_opened_without_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let record = recorded(dir.path(), "", "");
    let config = record.join("config.toml");
    let text_now = std::fs::read_to_string(&config).expect("config");
    let hostile = text_now.replace("layers = 1", "layers = 1125899906842624");
    assert_ne!(text_now, hostile, "{text_now}");
    std::fs::write(&config, hostile).expect("write");
    let out = attnlab(
        &["export", &arg(&dir.path().join("runs")), "--to", "out"],
        dir.path(),
    );
    assert!(
        out.status.code().is_some(),
        "killed by a signal: {}",
        text(&out)
    );
    assert!(dir.path().join("out").is_dir(), "{}", text(&out));

    let opened = list_records(&dir.path().join("runs"))
        .pop()
        .expect("record");
    let view = attnlab::app::RunView::from_record(0, &opened).expect("opens");
    assert!(
        view.settings.model.layers < 1000,
        "the record's layers were taken: {}",
        view.settings.model.layers
    );
    assert!(
        view.warnings.iter().any(|w| w.contains("model.layers")),
        "{:?}",
        view.warnings
    );
    let eval = attnlab(&["eval", &arg(&record)], dir.path());
    assert_eq!(eval.status.code(), Some(1), "{}", text(&eval));
    assert!(text(&eval).contains("model.layers"), "{}", text(&eval));
}

/// Case 5: error texts are capped: 3,000 runs and 3,000 unknown
/// `[reference.runs]` keys print neither every run name per key nor every key.
#[test]
fn error_texts_are_capped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut file = tiny_recall("many", 16, "", "steps = 1\n");
    for i in 0..3000 {
        file.push_str(&format!("[[runs]]\nname = \"run number {i}\"\n"));
    }
    file.push_str("[reference]\nsource = \"x\"\n");
    for i in 0..3000 {
        file.push_str(&format!(
            "[reference.runs.\"nobody {i}\"]\npublished = 0.5\n"
        ));
    }
    std::fs::write(dir.path().join("many.toml"), file).expect("write");
    let out = attnlab(&["validate", "many.toml"], dir.path());
    let said = text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        &said[..said.len().min(2000)]
    );
    assert!(
        said.contains("reference.runs"),
        "{}",
        &said[..said.len().min(2000)]
    );
    assert!(said.len() < 64 * 1024, "{} bytes of errors", said.len());
    assert!(
        said.contains("more problems"),
        "{}",
        &said[..said.len().min(2000)]
    );
}

/// Case 8: the model file of a record's checkpoint through a symbolic link or a hard
/// link is refused by `eval` (and so by resume and fork, which read the same
/// checkpoint), naming the file; the link's target is never read.
#[test]
fn checkpoint_files_through_links_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let record = recorded(dir.path(), "", "");
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(record.join("checkpoint/state.json")).expect("state"),
    )
    .expect("json");
    let model = record
        .join("checkpoint")
        .join(state["model"].as_str().expect("model"));
    let elsewhere = dir.path().join("elsewhere.bpk");
    std::fs::rename(&model, &elsewhere).expect("move");
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(&elsewhere, &model).expect("symlink");
        let out = attnlab(&["eval", &arg(&record)], dir.path());
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(text(&out).contains("symbolic link"), "{}", text(&out));
        let resume = attnlab(
            &["run", "--resume", &arg(&record), "--steps", "9", "-q"],
            dir.path(),
        );
        assert_eq!(resume.status.code(), Some(1), "{}", text(&resume));
        std::fs::remove_file(&model).expect("unlink");
        std::fs::hard_link(&elsewhere, &model).expect("hard link");
        let out = attnlab(&["eval", &arg(&record)], dir.path());
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(text(&out).contains("hard link"), "{}", text(&out));
    }
}

/// Case 9: `keep_checkpoints` is held to what a record's reader accepts (a count,
/// or what `"all"` comes to); a fork refuses a parent's weights file larger than a
/// model of its settings can be (a sparse 50 GB file) before it writes anything; a
/// `lengths.csv` naming 100,000 lengths is read as at most the lengths a run has.
#[test]
fn counts_and_copies_are_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    for keep in [
        "keep_checkpoints = 200000\nsteps = 1000000\ncheckpoint_every = 1\n",
        "keep_checkpoints = \"all\"\nsteps = 1000000\ncheckpoint_every = 1\n",
    ] {
        std::fs::write(dir.path().join("k.toml"), tiny_recall("k", 16, "", keep)).expect("write");
        let out = attnlab(&["validate", "k.toml"], dir.path());
        assert_eq!(out.status.code(), Some(1), "{keep}: {}", text(&out));
        assert!(
            text(&out).contains("train.keep_checkpoints"),
            "{}",
            text(&out)
        );
    }

    let record = recorded(dir.path(), "", "");
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(record.join("checkpoint/state.json")).expect("state"),
    )
    .expect("json");
    let step = state["step"].as_u64().expect("step").to_string();
    let model = record
        .join("checkpoint")
        .join(state["model"].as_str().expect("model"));
    // Sparse: 50 GB long, no blocks written.
    std::fs::File::options()
        .write(true)
        .open(&model)
        .and_then(|f| f.set_len(50 << 30))
        .expect("grow");
    let out = attnlab(
        &[
            "run",
            "--fork",
            &arg(&record),
            "--at",
            &step,
            "--steps",
            "9",
            "--out",
            "forks",
            "-q",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("more than") && text(&out).contains("model"),
        "{}",
        text(&out)
    );
    assert!(
        !dir.path().join("forks").exists()
            || common::files::files_under(&dir.path().join("forks")).is_empty(),
        "nothing written"
    );

    let mut lengths = String::from("step,seq_len,kind,a,b,c\n");
    for n in 0..100_000 {
        lengths.push_str(&format!("1,{},metrics,1.0,0.5,1.0\n", n + 1));
    }
    std::fs::write(record.join("lengths.csv"), lengths).expect("write");
    let opened = list_records(&dir.path().join("runs"))
        .pop()
        .expect("record");
    let read = opened.lengths().expect("reads");
    let distinct: std::collections::BTreeSet<usize> = read.iter().map(|s| s.seq_len).collect();
    assert!(
        distinct.len() <= attnlab::config::MAX_EVAL_LENGTHS + 1,
        "{}",
        distinct.len()
    );
}
