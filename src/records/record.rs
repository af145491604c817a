//! Writing a run record while the run trains, and reading records back.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::distance::{self, DistanceAccuracy};
use super::files::{
    RecordError, create_new, io_at, keep_rows_through, open_append, open_regular, open_rewrite,
    read_small, table_lines, write_atomically,
};
use super::lengths::{self, LengthScores};
use super::lock::RecordLock;
use super::snapshots::{self, AttentionSnapshot, SnapshotHeader};
use super::summary::{Metrics, RunStatus, RunSummary};
use crate::config::Experiment;

/// Longest slug of a name in a record id (long names still make valid folder names).
const MAX_SLUG: usize = 48;
/// The most snapshot bytes read back from one `attention.bin`; longer files are
/// thinned evenly in time (the last snapshot always kept).
pub const MAX_SNAPSHOT_BYTES: u64 = 256 << 20;

/// The stem of a record id: `YYYYMMDD-HHMMSS-<experiment>-<run>`.
fn record_stem(experiment: &str, run: &str) -> String {
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let stamp: String = stamp.chars().filter(char::is_ascii_digit).collect();
    let (date, time) = stamp.split_at(8.min(stamp.len()));
    format!("{date}-{time}-{}-{}", slug(experiment), slug(run))
}

/// A file-system-safe, lower-case version of a name (`Dense vs Local` -> `dense-vs-local`),
/// at most 48 characters.
pub fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if out.len() >= MAX_SLUG {
            break;
        }
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches('-').to_string();
    if out.is_empty() { "run".into() } else { out }
}

/// Writes one run's record as the run trains, holding the record's lock (one writer
/// at a time) until dropped.
pub struct RecordWriter {
    dir: PathBuf,
    metrics: BufWriter<File>,
    snapshots: Option<BufWriter<File>>,
    /// Held for the writer's life.
    _lock: RecordLock,
}

impl RecordWriter {
    /// Claims a new folder `<root>/<record-id>/` (record id
    /// `YYYYMMDD-HHMMSS-<experiment>-<run>`, suffixed `-2`, `-3`... when taken) and
    /// locks it and writes `config.toml`, the CSV header and a `running` summary (so
    /// a record whose process died still lists). The folder is created exclusively:
    /// two processes starting the same run in the same second never share one. Sets
    /// `summary.record_id`.
    pub fn create(
        root: &Path,
        experiment: &str,
        run: &str,
        config_toml: &str,
        summary: &mut RunSummary,
    ) -> Result<Self, RecordError> {
        fs::create_dir_all(root).map_err(io_at(root))?;
        let stem = record_stem(experiment, run);
        let mut k = 1;
        let (dir, record_id) = loop {
            let id = if k == 1 {
                stem.clone()
            } else {
                format!("{stem}-{k}")
            };
            let dir = root.join(&id);
            match fs::create_dir(&dir) {
                Ok(()) => break (dir, id),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && k < 10_000 => k += 1,
                Err(e) => return Err(io_at(&dir)(e)),
            }
        };
        let mut lock = RecordLock::acquire(&dir)?;
        lock.claim()?;
        let config = dir.join("config.toml");
        write_atomically(&config, config_toml.as_bytes()).map_err(io_at(&config))?;
        let path = dir.join("metrics.csv");
        let mut metrics = BufWriter::new(create_new(&path)?);
        writeln!(metrics, "step,split,loss,accuracy,elapsed_secs").map_err(io_at(&path))?;
        metrics.flush().map_err(io_at(&path))?;
        summary.record_id = Some(record_id);
        summary.pid = Some(std::process::id());
        let writer = Self {
            dir,
            metrics,
            snapshots: None,
            _lock: lock,
        };
        writer.write_summary(summary)?;
        Ok(writer)
    }

    /// Reopens the record `lock` holds to continue its run from `step` (a
    /// checkpoint): rows and snapshots after `step` (written after the checkpoint,
    /// before the run ended) are dropped, so the curves continue from the checkpoint
    /// without a seam. The first write to the record: call it once the record is known
    /// to resume ([`check_resume`](super::check_resume)) and its checkpoint has loaded.
    pub fn reopen(
        lock: RecordLock,
        step: usize,
        summary: &mut RunSummary,
    ) -> Result<Self, RecordError> {
        let dir = lock.dir().to_path_buf();
        let dir = dir.as_path();
        let path = dir.join("metrics.csv");
        keep_rows_through(&path, step)?;
        distance::truncate_after(dir, step)?;
        lengths::truncate_after(dir, step)?;
        let metrics = BufWriter::new(open_append(&path)?);
        let snapshots_path = dir.join("attention.bin");
        let snapshots = if fs::symlink_metadata(&snapshots_path).is_ok() {
            let file = open_rewrite(&snapshots_path)?;
            let len =
                snapshots::length_up_to(&snapshots_path, step).map_err(io_at(&snapshots_path))?;
            file.set_len(len).map_err(io_at(&snapshots_path))?;
            let mut file = file;
            io::Seek::seek(&mut file, io::SeekFrom::End(0)).map_err(io_at(&snapshots_path))?;
            Some(BufWriter::new(file))
        } else {
            None
        };
        summary.record_id = dir.file_name().map(|n| n.to_string_lossy().to_string());
        summary.pid = Some(std::process::id());
        let writer = Self {
            dir: dir.to_path_buf(),
            metrics,
            snapshots,
            _lock: lock,
        };
        writer.write_summary(summary)?;
        Ok(writer)
    }

    /// The record's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends one metrics row; `split` is `train` or `eval`.
    pub fn metric(&mut self, split: &str, m: &Metrics) -> Result<(), RecordError> {
        writeln!(
            self.metrics,
            "{},{split},{},{},{:.3}",
            m.step, m.loss, m.accuracy, m.elapsed_secs
        )
        .map_err(io_at(&self.dir.join("metrics.csv")))
    }

    /// Appends one evaluation's accuracy by distance (`distance.csv`).
    pub fn distance(&mut self, tally: &DistanceAccuracy) -> Result<(), RecordError> {
        distance::append(&self.dir, tally)
    }

    /// Appends one evaluation's scores at `train.eval_lengths` (`lengths.csv`;
    /// nothing when there are none).
    pub fn lengths(&mut self, scores: &[LengthScores]) -> Result<(), RecordError> {
        lengths::append(&self.dir, scores)
    }

    /// Appends a snapshot, writing the file's header on the first.
    pub fn snapshot(
        &mut self,
        header: &SnapshotHeader,
        snapshot: &AttentionSnapshot,
    ) -> Result<(), RecordError> {
        let path = self.dir.join("attention.bin");
        if self.snapshots.is_none() {
            let mut out = BufWriter::new(create_new(&path)?);
            snapshots::write_header(&mut out, header).map_err(io_at(&path))?;
            self.snapshots = Some(out);
        }
        if let Some(out) = &mut self.snapshots {
            snapshots::write_record(out, snapshot).map_err(io_at(&path))?;
        }
        Ok(())
    }

    /// Flushes metrics and snapshots to disk.
    pub fn flush(&mut self) -> Result<(), RecordError> {
        self.metrics
            .flush()
            .map_err(io_at(&self.dir.join("metrics.csv")))?;
        if let Some(out) = &mut self.snapshots {
            out.flush()
                .map_err(io_at(&self.dir.join("attention.bin")))?;
        }
        Ok(())
    }

    /// Writes `summary.json` (atomically and synced: a reader or a crash never sees
    /// half a file).
    pub fn write_summary(&self, summary: &RunSummary) -> Result<(), RecordError> {
        write_summary_in(&self.dir, summary)
    }

    /// Flushes everything and writes the final summary.
    pub fn finish(mut self, summary: &RunSummary) -> Result<(), RecordError> {
        self.flush()?;
        self.write_summary(summary)
    }
}

/// Writes `summary.json` into the record folder `dir` (atomically and synced). Used by
/// the writer, and by the trainer pool to end a run whose thread it gave up on.
pub fn write_summary_in(dir: &Path, summary: &RunSummary) -> Result<(), RecordError> {
    let path = dir.join("summary.json");
    let json = serde_json::to_string_pretty(summary).map_err(|source| RecordError::Summary {
        path: path.clone(),
        source,
    })?;
    write_atomically(&path, (json + "\n").as_bytes()).map_err(io_at(&path))
}

/// One row of `metrics.csv`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MetricRow {
    /// `true` for held-out evaluation, `false` for training.
    pub eval: bool,
    /// The metrics.
    pub metrics: Metrics,
}

/// A run record read back from disk.
#[derive(Clone, Debug)]
pub struct RunRecord {
    /// Its folder.
    pub dir: PathBuf,
    /// `summary.json`.
    pub summary: RunSummary,
    /// The step of its last checkpoint, if it has one (the run can be resumed there).
    pub checkpoint_step: Option<usize>,
}

impl RunRecord {
    /// Whether the run can be continued: it did not finish (stopped, interrupted or
    /// failed) and has a checkpoint to continue from.
    pub fn resumable(&self) -> bool {
        self.checkpoint_step
            .is_some_and(|step| step < self.summary.planned_steps)
            && matches!(
                self.summary.status,
                RunStatus::Stopped | RunStatus::Interrupted | RunStatus::Failed
            )
    }

    /// Reads `summary.json` of a record folder (cheap: enough to list it). A record
    /// still saying `running` whose process is gone reads as `interrupted`.
    pub fn open(dir: &Path) -> Result<Self, RecordError> {
        let path = dir.join("summary.json");
        let text = read_small(&path)?;
        let mut summary: RunSummary =
            serde_json::from_str(&text).map_err(|source| RecordError::Summary { path, source })?;
        if matches!(summary.status, RunStatus::Running | RunStatus::Queued)
            && !summary.pid.is_some_and(process_alive)
        {
            summary.status = RunStatus::Interrupted;
            if summary.message.is_none() {
                summary.message = Some(format!(
                    "the process ended while it trained (at step {})",
                    summary.steps
                ));
            }
        }
        let checkpoint_step = super::checkpoint::read_checkpoint(dir)
            .ok()
            .flatten()
            .map(|c| c.step);
        Ok(Self {
            dir: dir.to_path_buf(),
            summary,
            checkpoint_step,
        })
    }

    /// The run's configuration (`config.toml`).
    pub fn experiment(&self) -> Result<Experiment, RecordError> {
        let path = self.dir.join("config.toml");
        let text = read_small(&path)?;
        Ok(Experiment::from_toml(&text).map_err(|e| e.in_file(&path.display().to_string()))?)
    }

    /// Every row of `metrics.csv`, in file order. Malformed lines (wrong field
    /// count, unparsable numbers, bytes that are not UTF-8) are skipped.
    pub fn metrics(&self) -> Result<Vec<MetricRow>, RecordError> {
        let path = self.dir.join("metrics.csv");
        let mut rows = Vec::new();
        for line in table_lines(&path)?.skip(1) {
            let line = line?;
            let Ok(line) = std::str::from_utf8(&line) else {
                continue;
            };
            let f: Vec<&str> = line.trim_end().split(',').collect();
            if f.len() != 5 {
                continue;
            }
            let (Ok(step), Ok(loss), Ok(accuracy), Ok(elapsed_secs)) =
                (f[0].parse(), f[2].parse(), f[3].parse(), f[4].parse())
            else {
                continue;
            };
            rows.push(MetricRow {
                eval: f[1] == "eval",
                metrics: Metrics {
                    step,
                    loss,
                    accuracy,
                    elapsed_secs,
                },
            });
        }
        Ok(rows)
    }

    /// Held-out accuracy by dependency distance at each evaluation (`distance.csv`;
    /// empty for records without one).
    pub fn distances(&self) -> Result<Vec<DistanceAccuracy>, RecordError> {
        distance::read(&self.dir)
    }

    /// Held-out scores at `train.eval_lengths` at each evaluation (`lengths.csv`),
    /// steps ascending and lengths ascending within a step; empty for records
    /// without one.
    pub fn lengths(&self) -> Result<Vec<LengthScores>, RecordError> {
        lengths::read(&self.dir)
    }

    /// The attention snapshots, if the run recorded any: at most
    /// [`MAX_SNAPSHOT_BYTES`] of them, thinned evenly in time beyond that (the first
    /// and the last always kept).
    pub fn snapshots(
        &self,
    ) -> Result<Option<(SnapshotHeader, Vec<AttentionSnapshot>)>, RecordError> {
        let path = self.dir.join("attention.bin");
        match fs::metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_at(&path)(e)),
            Ok(_) => {}
        }
        let (file, len) = open_regular(&path, u64::MAX)?;
        snapshots::read_snapshots_bounded(BufReader::new(file), len, MAX_SNAPSHOT_BYTES)
            .map(Some)
            .map_err(|e| RecordError::Damaged {
                path: path.clone(),
                problem: e.to_string(),
            })
    }
}

/// Whether a process with this id runs on this machine (Linux: `/proc/<pid>`;
/// elsewhere assumed gone, so a stale `running` reads as interrupted).
fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    // `/proc/<pid>/stat` is `pid (comm) state ...`; a zombie (Z) or dead (X) process
    // no longer runs.
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Every readable record under `root`, newest first. Folders without a readable
/// `summary.json` are skipped; a missing `root` is an empty list.
pub fn list_records(root: &Path) -> Vec<RunRecord> {
    let Ok(entries) = fs::read_dir(root) else {
        return Vec::new();
    };
    let mut records: Vec<RunRecord> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .filter_map(|e| RunRecord::open(&e.path()).ok())
        .collect();
    records.sort_by(|a, b| b.dir.file_name().cmp(&a.dir.file_name()));
    records
}

#[cfg(test)]
mod tests {
    use super::slug;

    #[test]
    fn slugs_are_filesystem_safe() {
        assert_eq!(slug("Dense vs Local (w=8)"), "dense-vs-local-w-8");
        assert_eq!(slug("///"), "run");
    }
}
