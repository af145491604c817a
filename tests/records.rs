//! Run records read back defensively: damaged, truncated, bit-flipped and hostile
//! files (FIFOs, links to devices, implausible headers) give an error or a partial
//! record, never a panic, a hang or an allocation beyond the file's size.

use std::path::Path;
use std::sync::Arc;

use attnlab::app::RunView;
use attnlab::records::{
    AttentionSnapshot, Metrics, Probe, RecordWriter, RunRecord, RunStatus, RunSummary,
    SnapshotHeader,
};
use proptest::prelude::*;

mod common;
use common::experiments::{RECORD_CONFIG as CONFIG, first_plan, tiny_recall};
use common::train::{DEADLINE, Wait, finish_all};

/// A complete record: config, 5 metric rows, 3 snapshots, a finished summary.
fn write_record(root: &Path) -> std::path::PathBuf {
    let mut summary = RunSummary::unstarted("r", "r", 5, RunStatus::Running);
    let mut writer =
        RecordWriter::create(root, "r", "r", CONFIG, &mut summary).expect("record created");
    let header = SnapshotHeader {
        layers: 1,
        heads: 1,
        n: 8,
        seq_len: 8,
        probe: Probe {
            tokens: vec![1; 8],
            dependencies: vec![(7, 5)],
        },
    };
    for step in 1..=5 {
        let m = Metrics {
            step,
            loss: 1.0 / step as f64,
            accuracy: 0.1 * step as f64,
            elapsed_secs: step as f64,
        };
        writer.metric("train", &m).expect("metric");
        if step % 2 == 1 {
            let snap = AttentionSnapshot {
                step,
                layers: 1,
                heads: 1,
                n: 8,
                seq_len: 8,
                weights: vec![0.125; 64],
            };
            writer.snapshot(&header, &snap).expect("snapshot");
        }
    }
    summary.status = RunStatus::Finished;
    summary.steps = 5;
    let dir = writer.dir().to_path_buf();
    writer.finish(&summary).expect("finished");
    dir
}

/// Everything a reader does with a record: nothing may panic.
fn read_everything(dir: &Path) {
    if let Ok(record) = RunRecord::open(dir) {
        let _ = record.metrics();
        let _ = record.snapshots();
        let _ = record.experiment();
        let _ = RunView::from_record(1, &record);
    }
}

#[test]
fn an_intact_record_reads_back() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = write_record(root.path());
    let record = RunRecord::open(&dir).expect("opens");
    assert_eq!(record.summary.status, RunStatus::Finished);
    assert_eq!(record.metrics().expect("metrics").len(), 5);
    let (_, snaps) = record.snapshots().expect("readable").expect("present");
    assert_eq!(snaps.iter().map(|s| s.step).collect::<Vec<_>>(), [1, 3, 5]);
    let view = RunView::from_record(1, &record).expect("view");
    assert_eq!(view.snapshots.len(), 3);
    assert!(
        view.snapshots
            .iter()
            .all(|s: &Arc<AttentionSnapshot>| s.weights.len() == 64)
    );
}

#[test]
fn a_running_record_of_a_dead_process_reads_as_interrupted() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut summary = RunSummary::unstarted("r", "r", 5, RunStatus::Running);
    let writer =
        RecordWriter::create(root.path(), "r", "r", CONFIG, &mut summary).expect("created");
    let dir = writer.dir().to_path_buf();
    // Still ours (alive): running.
    assert_eq!(
        RunRecord::open(&dir).expect("opens").summary.status,
        RunStatus::Running
    );
    // A process id that does not exist: the process died.
    summary.pid = Some(u32::MAX - 7);
    writer.write_summary(&summary).expect("summary");
    let record = RunRecord::open(&dir).expect("opens");
    assert_eq!(record.summary.status, RunStatus::Interrupted);
    assert!(record.summary.message.is_some());
}

#[cfg(unix)]
#[test]
fn fifos_and_devices_are_refused_without_blocking() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = write_record(root.path());
    // summary.json as a link to /dev/zero: refused, not read forever.
    std::fs::remove_file(dir.join("summary.json")).expect("rm");
    std::os::unix::fs::symlink("/dev/zero", dir.join("summary.json")).expect("link");
    let err = RunRecord::open(&dir).expect_err("a device is not a summary");
    assert!(err.to_string().contains("symbolic link"), "{err}");
    // attention.bin as a FIFO nobody writes to: refused, not waited on.
    let fifo = dir.join("fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    if made.is_ok_and(|s| s.success()) {
        std::fs::remove_file(dir.join("summary.json")).expect("rm");
        std::fs::rename(&fifo, dir.join("summary.json")).expect("mv");
        assert!(RunRecord::open(&dir).is_err());
    }
    // An experiment file that is a folder or a device.
    let e = attnlab::config::Experiment::load(root.path()).expect_err("a folder");
    assert!(e.to_string().contains("folder"), "{e}");
    let e = attnlab::config::Experiment::load(Path::new("/dev/zero")).expect_err("a device");
    assert!(e.to_string().contains("not a regular file"), "{e}");
}

#[test]
fn a_snapshot_header_that_claims_more_than_the_file_holds_is_refused() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = write_record(root.path());
    let path = dir.join("attention.bin");
    let mut bytes = std::fs::read(&path).expect("read");
    // A header length of 4 GiB in a file of a few KiB.
    bytes[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(&path, &bytes).expect("write");
    let record = RunRecord::open(&dir).expect("summary is fine");
    assert!(record.snapshots().is_err());
    // A huge shape: layers * heads * n * n overflows.
    let header = serde_json::json!({"layers": usize::MAX, "heads": 3, "n": 1 << 20, "seq_len": 1 << 20,
        "probe": {"tokens": [], "dependencies": []}});
    let json = serde_json::to_vec(&header).expect("json");
    let mut hostile = b"ATTNSNP1".to_vec();
    hostile.extend_from_slice(&(json.len() as u32).to_le_bytes());
    hostile.extend_from_slice(&json);
    hostile.extend_from_slice(&[0u8; 64]);
    std::fs::write(&path, &hostile).expect("write");
    assert!(record.snapshots().is_err());
}

/// An `attention.bin` of `header` (any JSON) followed by `body`.
fn snapshot_file(header: &serde_json::Value, body: &[u8]) -> Vec<u8> {
    let json = serde_json::to_vec(header).expect("json");
    let mut bytes = b"ATTNSNP1".to_vec();
    bytes.extend_from_slice(&(json.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&json);
    bytes.extend_from_slice(body);
    bytes
}

#[test]
fn snapshot_headers_beyond_what_a_run_writes_are_refused_fast() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = write_record(root.path());
    let path = dir.join("attention.bin");
    let record = RunRecord::open(&dir).expect("summary is fine");
    let probe = serde_json::json!({"tokens": [], "dependencies": []});
    let hostile = [
        // seq_len = 2^40 behind a 1 x 1 map: one record of 12 bytes.
        serde_json::json!({"layers": 1, "heads": 1, "n": 1, "seq_len": 1u64 << 40, "probe": probe}),
        // A 2^14-side map: 2^28 weights, 1 GiB per record.
        serde_json::json!({"layers": 1, "heads": 1, "n": 1 << 14, "seq_len": 1 << 14, "probe": probe}),
        // More layers and heads than a model can have.
        serde_json::json!({"layers": 1 << 20, "heads": 1, "n": 1, "seq_len": 8, "probe": probe}),
        serde_json::json!({"layers": 1, "heads": 1 << 20, "n": 1, "seq_len": 8, "probe": probe}),
        // A probe longer than its sequence.
        serde_json::json!({"layers": 1, "heads": 1, "n": 1, "seq_len": 2,
            "probe": {"tokens": [1, 2, 3], "dependencies": []}}),
    ];
    let mut body = 7u64.to_le_bytes().to_vec();
    body.extend_from_slice(&1f32.to_le_bytes());
    for header in hostile {
        std::fs::write(&path, snapshot_file(&header, &body)).expect("write");
        let started = std::time::Instant::now();
        let err = record.snapshots().expect_err("refused");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "{header}"
        );
        assert!(err.to_string().contains("implausible"), "{header}: {err}");
    }
    // The same file with a header a run writes reads back.
    let fine = serde_json::json!({"layers": 1, "heads": 1, "n": 1, "seq_len": 8, "probe": probe});
    std::fs::write(&path, snapshot_file(&fine, &body)).expect("write");
    let (_, snaps) = record.snapshots().expect("reads").expect("present");
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0].step, 7);
}

/// `/proc/self/pagemap` is a "regular" file of 0 bytes by its metadata that reads out
/// hundreds of gigabytes: linked as a record's file it is refused, quickly.
#[cfg(target_os = "linux")]
#[test]
fn proc_files_linked_as_record_files_are_refused_quickly() {
    let pagemap = Path::new("/proc/self/pagemap");
    if std::fs::File::open(pagemap).is_err() {
        return; // no procfs here
    }
    let root = tempfile::tempdir().expect("tempdir");
    let dir = write_record(root.path());
    let link = |name: &str| {
        let path = dir.join(name);
        let _ = std::fs::remove_file(&path);
        std::os::unix::fs::symlink(pagemap, &path).expect("link");
    };
    let quick = |what: &str, started: std::time::Instant| {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "{what}: {:?}",
            started.elapsed()
        );
    };
    let record = RunRecord::open(&dir).expect("intact");
    for name in ["distance.csv", "attention.bin", "config.toml"] {
        link(name);
        let started = std::time::Instant::now();
        let refused = match name {
            "distance.csv" => record.distances().is_err(),
            "attention.bin" => record.snapshots().is_err(),
            _ => record.experiment().is_err(),
        };
        quick(name, started);
        assert!(refused, "{name} linked to {} was read", pagemap.display());
    }
    link("summary.json");
    let started = std::time::Instant::now();
    assert!(RunRecord::open(&dir).is_err());
    quick("summary.json", started);
}

/// `metrics.csv` linked to `/proc/self/pagemap`: refused (a record holds no links), quickly.
#[cfg(target_os = "linux")]
#[test]
fn a_proc_file_linked_as_metrics_is_refused_quickly() {
    let pagemap = Path::new("/proc/self/pagemap");
    if std::fs::File::open(pagemap).is_err() {
        return; // no procfs here
    }
    let root = tempfile::tempdir().expect("tempdir");
    let dir = write_record(root.path());
    let record = RunRecord::open(&dir).expect("intact");
    std::fs::remove_file(dir.join("metrics.csv")).expect("rm");
    std::os::unix::fs::symlink(pagemap, dir.join("metrics.csv")).expect("link");
    let started = std::time::Instant::now();
    assert!(record.metrics().is_err());
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}

/// `ln -s ~/victim rec/summary.json.tmp` (the temporary name writes used to have):
/// writing the summary leaves the victim untouched, and so does writing through a
/// link at the file's own name (the link is replaced).
#[cfg(unix)]
#[test]
fn a_symlinked_temporary_name_leaves_its_target_untouched() {
    let root = tempfile::tempdir().expect("tempdir");
    let victim = root.path().join("victim");
    std::fs::write(&victim, "secret").expect("victim");
    let mut summary = RunSummary::unstarted("r", "r", 5, RunStatus::Running);
    let writer = RecordWriter::create(&root.path().join("runs"), "r", "r", CONFIG, &mut summary)
        .expect("created");
    let dir = writer.dir().to_path_buf();
    for name in [
        "summary.json.tmp",
        "config.toml.tmp",
        "metrics.csv.tmp",
        "distance.csv.tmp",
    ] {
        std::os::unix::fs::symlink(&victim, dir.join(name)).expect("link");
    }
    summary.steps = 3;
    writer.write_summary(&summary).expect("summary written");
    assert_eq!(std::fs::read_to_string(&victim).expect("victim"), "secret");
    assert_eq!(RunRecord::open(&dir).expect("opens").summary.steps, 3);
    // A link at the name itself is replaced, not written through.
    std::fs::remove_file(dir.join("summary.json")).expect("rm");
    std::os::unix::fs::symlink(&victim, dir.join("summary.json")).expect("link");
    writer.write_summary(&summary).expect("summary written");
    assert_eq!(std::fs::read_to_string(&victim).expect("victim"), "secret");
    assert!(
        !std::fs::symlink_metadata(dir.join("summary.json"))
            .expect("summary")
            .is_symlink()
    );
    // The same through the public writer, with its old temporary name linked.
    let other = root.path().join("other.toml");
    std::os::unix::fs::symlink(&victim, root.path().join("other.toml.tmp")).expect("link");
    attnlab::records::write_atomically(&other, b"x = 1\n").expect("written");
    assert_eq!(std::fs::read_to_string(&victim).expect("victim"), "secret");
    assert_eq!(std::fs::read_to_string(&other).expect("other"), "x = 1\n");
}

/// A dangling `distance.csv` link: the append refuses and does not create its target;
/// a link to an existing file: refused, the file untouched.
#[cfg(unix)]
#[test]
fn appends_refuse_links_and_create_nothing() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut summary = RunSummary::unstarted("r", "r", 5, RunStatus::Running);
    let mut writer =
        RecordWriter::create(&root.path().join("runs"), "r", "r", CONFIG, &mut summary)
            .expect("created");
    let dir = writer.dir().to_path_buf();
    let tally = attnlab::records::DistanceAccuracy::tally(2, &[1, 2], &[1, 0], &[1, 1]);
    let target = root.path().join("created-by-the-append");
    std::os::unix::fs::symlink(&target, dir.join("distance.csv")).expect("link");
    let err = writer
        .distance(&tally)
        .expect_err("a dangling link is refused");
    assert!(err.to_string().contains("symbolic link"), "{err}");
    assert!(!target.exists(), "the append created the link's target");
    let victim = root.path().join("victim");
    std::fs::write(&victim, "secret").expect("victim");
    std::fs::remove_file(dir.join("distance.csv")).expect("rm");
    std::os::unix::fs::symlink(&victim, dir.join("distance.csv")).expect("link");
    assert!(writer.distance(&tally).is_err());
    assert_eq!(std::fs::read_to_string(&victim).expect("victim"), "secret");
    // Without the link the append creates the file and appends to it.
    std::fs::remove_file(dir.join("distance.csv")).expect("rm");
    writer.distance(&tally).expect("created");
    writer.distance(&tally).expect("appended");
    let record = RunRecord::open(&dir).expect("opens");
    let back = record.distances().expect("reads");
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].counts[0].total, 4, "both appends counted");
}

#[derive(Clone, Debug)]
enum Damage {
    Truncate(usize),
    FlipBits(Vec<(usize, u8)>),
    Replace(Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (0usize..4096).prop_map(Damage::Truncate),
        prop::collection::vec((0usize..4096, 1u8..=255), 1..12).prop_map(Damage::FlipBits),
        prop::collection::vec(any::<u8>(), 0..512).prop_map(Damage::Replace),
    ]
}

fn apply(path: &Path, damage: &Damage) {
    let mut bytes = std::fs::read(path).unwrap_or_default();
    match damage {
        Damage::Truncate(at) => bytes.truncate(*at % (bytes.len() + 1)),
        Damage::FlipBits(flips) => {
            if !bytes.is_empty() {
                let len = bytes.len();
                for (at, mask) in flips {
                    bytes[at % len] ^= mask;
                }
            }
        }
        Damage::Replace(new) => bytes = new.clone(),
    }
    std::fs::write(path, bytes).expect("write");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any one file of a record damaged in any of these ways: no reader panics.
    #[test]
    fn damaged_records_never_panic(
        file in prop::sample::select(vec!["summary.json", "metrics.csv", "attention.bin", "config.toml"]),
        damage in damage(),
    ) {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = write_record(root.path());
        apply(&dir.join(file), &damage);
        read_everything(&dir);
        let _ = attnlab::records::list_records(root.path());
    }
}

// ---------------------------------------------------------------------------------
// Weights over training: `train.keep_checkpoints`.

/// A tiny seeded run of 6 steps with a checkpoint every 2; `keep` is a `[train]` line.
fn keeping_plan(keep: &str, steps: usize) -> attnlab::config::RunPlan {
    let train = format!("steps = {steps}\ncheckpoint_every = 2\n{keep}\n");
    first_plan(&tiny_recall("k", 16, "", &train))
}

/// Runs `runs` (each a run and, to resume, the record it continues) one after the
/// other and returns each one's record folder and summary, in order.
fn train_recorded(
    root: &Path,
    runs: Vec<(attnlab::config::RunPlan, Option<std::path::PathBuf>)>,
) -> Vec<(std::path::PathBuf, RunSummary)> {
    use attnlab::trainer::StartRun;
    let starts = runs
        .into_iter()
        .enumerate()
        .map(|(id, (plan, resume))| match resume {
            Some(dir) => StartRun::resume(id as u64, plan, dir),
            None => StartRun::new(id as u64, plan, Some(root.to_path_buf())),
        })
        .collect();
    finish_all(starts, Wait::InAll(DEADLINE))
        .into_iter()
        .map(|(dir, summary)| (dir.expect("recorded"), summary))
        .collect()
}

fn kept_steps(dir: &Path) -> Vec<usize> {
    attnlab::records::kept_checkpoints(dir)
        .expect("readable")
        .iter()
        .map(|k| k.step)
        .collect()
}

/// `"all"` keeps the model of every checkpoint (2, 4 and 6), a count the latest
/// ones, the default none; every kept model loads into the run's model, the last one
/// is the latest checkpoint's model byte for byte, and a resume goes on keeping.
#[test]
fn kept_checkpoints_hold_the_model_at_each_checkpoint_step() {
    use attnlab::model::TransformerConfig;
    use attnlab::records::{checkpoint_dir, kept_dir, model_at, read_checkpoint};
    use burn::module::Module;
    let root = tempfile::tempdir().expect("tempdir");
    let plans = [
        keeping_plan("keep_checkpoints = \"all\"", 6),
        keeping_plan("keep_checkpoints = 2", 6),
        keeping_plan("", 6),
    ];
    let runs = plans.iter().map(|p| (p.clone(), None)).collect();
    let done = train_recorded(root.path(), runs);
    let (all, two, default) = (&done[0].0, &done[1].0, &done[2].0);

    assert_eq!(kept_steps(all), [2, 4, 6]);
    assert_eq!(kept_steps(two), [4, 6]);
    assert!(kept_steps(default).is_empty());
    assert!(
        !kept_dir(default).exists(),
        "the default keeps no kept/ folder"
    );
    let names: Vec<String> = std::fs::read_dir(kept_dir(all))
        .expect("kept/")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(names, ["000002.bpk", "000004.bpk", "000006.bpk"]);
    // Only the latest checkpoint holds an optimiser state.
    let optimisers = std::fs::read_dir(checkpoint_dir(all))
        .expect("checkpoint/")
        .filter(|e| {
            let name = e.as_ref().expect("entry").file_name();
            name.to_string_lossy().starts_with("optimizer")
        })
        .count();
    assert_eq!(optimisers, 1);

    let device = attnlab::device::CpuBackend::device();
    let latest = read_checkpoint(all)
        .expect("readable")
        .expect("a checkpoint");
    assert_eq!(latest.step, 6);
    let latest_model = checkpoint_dir(all).join(&latest.model);
    let mut bytes = Vec::new();
    for kept in attnlab::records::kept_checkpoints(all).expect("readable") {
        TransformerConfig::from_plan(&plans[0])
            .init(&device)
            .try_load_file(&kept.path)
            .unwrap_or_else(|e| panic!("step {}: {e}", kept.step));
        assert_eq!(model_at(all, kept.step).expect("saved"), kept.path);
        bytes.push(std::fs::read(&kept.path).expect("kept model"));
    }
    assert_eq!(
        bytes[2],
        std::fs::read(&latest_model).expect("checkpoint model"),
        "the model kept at the last step is the latest checkpoint's"
    );
    assert_ne!(
        bytes[0], bytes[2],
        "the weights moved between steps 2 and 6"
    );

    // The default run's models: the latest checkpoint's only; other steps are named.
    let default_latest = read_checkpoint(default).expect("readable").expect("one");
    assert_eq!(
        model_at(default, 6).expect("the latest"),
        checkpoint_dir(default).join(&default_latest.model)
    );
    let message = model_at(default, 4).expect_err("not kept").to_string();
    assert!(
        message.contains("step 4") && message.contains('6'),
        "{message}"
    );
    let message = model_at(two, 2).expect_err("pruned").to_string();
    assert!(message.contains("4, 6"), "{message}");

    // Resumed to 10 steps, the run that keeps 2 keeps those of steps 8 and 10.
    let resumed = train_recorded(
        root.path(),
        vec![(keeping_plan("keep_checkpoints = 2", 10), Some(two.clone()))],
    );
    assert_eq!(&resumed[0].0, two);
    assert_eq!(resumed[0].1.steps, 10);
    assert_eq!(kept_steps(two), [8, 10]);
}

/// `kept/` is read defensively: names that are not `<digits>.<ext>`, links and
/// folders are passed over, a `kept/` that is a link is refused (and never written
/// through), and so is one with more entries than any run keeps.
#[test]
fn kept_checkpoints_are_listed_defensively() {
    use attnlab::config::KeepCheckpoints;
    use attnlab::records::{
        CheckpointState, MAX_KEPT_ENTRIES, checkpoint_dir, commit_checkpoint,
        keep_checkpoint_model, kept_checkpoints, kept_dir,
    };
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("r");
    std::fs::create_dir_all(checkpoint_dir(&dir)).expect("checkpoint/");
    let state = |step: usize| CheckpointState {
        step,
        busy_secs: 0.0,
        model: format!("model-{step}.bpk"),
        optimizer: format!("optimizer-{step}.bpk"),
        settings: None,
    };
    let checkpoint = |step: usize, keep: KeepCheckpoints| {
        let folder = checkpoint_dir(&dir);
        std::fs::write(folder.join(format!("model-{step}.bpk")), format!("m{step}")).expect("m");
        std::fs::write(folder.join(format!("optimizer-{step}.bpk")), "o").expect("o");
        commit_checkpoint(&dir, &state(step)).expect("commit");
        keep_checkpoint_model(&dir, &state(step), keep)
    };
    let three = KeepCheckpoints::Last(std::num::NonZeroUsize::new(3).expect("3"));
    for step in [10, 20, 30, 40] {
        checkpoint(step, three).expect("kept");
    }
    assert_eq!(kept_steps(&dir), [20, 30, 40]);
    assert_eq!(
        std::fs::read(kept_dir(&dir).join("000040.bpk")).expect("kept"),
        b"m40"
    );
    // A commit leaves kept/ alone; "latest" keeps nothing more and deletes nothing.
    checkpoint(50, KeepCheckpoints::Latest).expect("saved");
    assert_eq!(kept_steps(&dir), [20, 30, 40]);
    // Other names, folders and links are passed over.
    let kept = kept_dir(&dir);
    for junk in [
        "notes.txt",
        "12.",
        ".000050.bpk.x1.tmp",
        "0x10.bpk",
        "5.tar.gz",
    ] {
        std::fs::write(kept.join(junk), "junk").expect("junk");
    }
    std::fs::create_dir(kept.join("000060.bpk")).expect("a folder");
    #[cfg(unix)]
    std::os::unix::fs::symlink("/dev/zero", kept.join("000070.bpk")).expect("link");
    assert_eq!(kept_steps(&dir), [20, 30, 40]);
    assert_eq!(
        kept_checkpoints(&dir).expect("readable")[0].path,
        kept.join("000020.bpk")
    );

    #[cfg(unix)]
    {
        // kept/ as a link: refused to read and to write, the target untouched.
        let elsewhere = root.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).expect("elsewhere");
        std::fs::rename(&kept, root.path().join("old-kept")).expect("move kept/");
        std::os::unix::fs::symlink(&elsewhere, &kept).expect("link");
        let err = kept_checkpoints(&dir).expect_err("a link");
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert!(checkpoint(60, KeepCheckpoints::All).is_err());
        assert_eq!(std::fs::read_dir(&elsewhere).expect("dir").count(), 0);
        std::fs::remove_file(&kept).expect("unlink");
    }

    // More entries than any run keeps: refused, not listed.
    std::fs::create_dir_all(&kept).expect("kept/");
    for i in 0..=MAX_KEPT_ENTRIES {
        std::fs::File::create(kept.join(format!("x{i}"))).expect("entry");
    }
    let err = kept_checkpoints(&dir).expect_err("too many");
    assert!(err.to_string().contains("entries"), "{err}");
}

/// `train.keep_checkpoints` reads `"all"`, `"latest"` and a count of at least 1, and
/// writes back the same; left out, it is `"latest"` and not written.
#[test]
fn keep_checkpoints_reads_and_writes_its_three_forms() {
    use attnlab::config::{Experiment, KeepCheckpoints};
    let read = |value: &str| {
        Experiment::from_toml(&format!(
            "name = \"x\"\n[train]\nkeep_checkpoints = {value}\n"
        ))
        .and_then(|e| e.plan().map(|_| e))
        .map(|e| e.base.train.keep_checkpoints)
    };
    assert_eq!(read("\"all\"").expect("all"), KeepCheckpoints::All);
    assert_eq!(read("\"latest\"").expect("latest"), KeepCheckpoints::Latest);
    assert_eq!(
        read("5").expect("5"),
        KeepCheckpoints::Last(std::num::NonZeroUsize::new(5).expect("5"))
    );
    for bad in ["0", "-1", "\"some\"", "1.5"] {
        let err = read(bad).expect_err(bad).to_string();
        assert!(err.contains("keep_checkpoints"), "{bad}: {err}");
    }
    for keep in [
        KeepCheckpoints::All,
        KeepCheckpoints::Last(std::num::NonZeroUsize::new(3).expect("3")),
        KeepCheckpoints::Latest,
    ] {
        let mut settings = attnlab::config::Settings::default();
        settings.train.keep_checkpoints = keep;
        let text = Experiment::single("k", settings.clone())
            .to_toml()
            .expect("writes");
        assert_eq!(
            text.contains("keep_checkpoints"),
            keep != KeepCheckpoints::Latest,
            "{text}"
        );
        let back = Experiment::from_toml(&text).expect("reads").base;
        assert_eq!(back, settings, "{text}");
    }
}

/// A hard-linked `writer.lock` is refused before anything is written: the lock's
/// process id would otherwise land in whatever file the link shares (issue 35, case
/// 8; before, the lock was taken and the pid written into the target).
#[cfg(unix)]
#[test]
fn a_hard_linked_lock_file_is_refused_and_its_target_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let record = dir.path().join("record");
    std::fs::create_dir(&record).expect("record folder");
    let precious = dir.path().join("precious.txt");
    std::fs::write(&precious, "keep me").expect("write");
    std::fs::hard_link(&precious, record.join(attnlab::records::LOCK_FILE)).expect("link");
    let refused = attnlab::records::RecordLock::acquire(&record).expect_err("refused");
    assert!(refused.to_string().contains("hard link"), "{refused}");
    assert_eq!(std::fs::read_to_string(&precious).expect("read"), "keep me");
}
