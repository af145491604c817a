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

const CONFIG: &str = "name = \"r\"\n[task]\nseq_len = 8\nvocab = 4\ndistance = 2\n[model]\nlayers = 1\nheads = 1\nd_model = 4\nd_ff = 4\n";

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
