//! Writing a run record while the run trains, and reading records back.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::snapshots::{self, AttentionSnapshot, SnapshotHeader};
use super::summary::{Metrics, RunStatus, RunSummary};
use crate::config::{ConfigErrors, Experiment};

/// Problems reading or writing a run record.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// `summary.json` is not valid.
    #[error("{path}: invalid summary: {source}")]
    Summary {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
    /// `config.toml` is not a valid experiment.
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    /// A file is not what a record holds (not a regular file, implausibly large,
    /// not text, a damaged header).
    #[error("{path}: {problem}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> RecordError + '_ {
    move |source| RecordError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Longest slug of a name in a record id (long names still make valid folder names).
const MAX_SLUG: usize = 48;
/// Largest `summary.json` or `config.toml` read back (they are a few KiB).
const MAX_SMALL_FILE: u64 = 1 << 20;
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

/// Writes `bytes` to `path` so that a reader (or a crash) never sees half a file: a
/// temporary file beside it, flushed to disk, then renamed over it.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        // Ignored: the temporary file may not exist; the error returned is the write's.
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Opens `path` for reading only if it is a regular file (following links) of at most
/// `max_bytes`: never blocks on a FIFO, never reads a device. Returns the file and
/// its length.
fn open_regular(path: &Path, max_bytes: u64) -> Result<(File, u64), RecordError> {
    let meta = fs::metadata(path).map_err(io_at(path))?;
    if !meta.is_file() {
        return Err(RecordError::Damaged {
            path: path.to_path_buf(),
            problem: "not a regular file".into(),
        });
    }
    if meta.len() > max_bytes {
        return Err(RecordError::Damaged {
            path: path.to_path_buf(),
            problem: format!("{} bytes, more than the {max_bytes} expected", meta.len()),
        });
    }
    let file = File::open(path).map_err(io_at(path))?;
    Ok((file, meta.len()))
}

/// Reads a small text file (summary, config) defensively.
fn read_small(path: &Path) -> Result<String, RecordError> {
    let (file, len) = open_regular(path, MAX_SMALL_FILE)?;
    let mut bytes = Vec::with_capacity(len as usize);
    io::Read::take(file, MAX_SMALL_FILE)
        .read_to_end(&mut bytes)
        .map_err(io_at(path))?;
    String::from_utf8(bytes).map_err(|_| RecordError::Damaged {
        path: path.to_path_buf(),
        problem: "not UTF-8 text".into(),
    })
}

/// Writes one run's record as the run trains.
pub struct RecordWriter {
    dir: PathBuf,
    metrics: BufWriter<File>,
    snapshots: Option<BufWriter<File>>,
}

impl RecordWriter {
    /// Claims a new folder `<root>/<record-id>/` (record id
    /// `YYYYMMDD-HHMMSS-<experiment>-<run>`, suffixed `-2`, `-3`... when taken) and
    /// writes `config.toml`, the CSV header and a `running` summary (so a record
    /// whose process died still lists). The folder is created exclusively: two
    /// processes starting the same run in the same second never share one. Sets
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
        let config = dir.join("config.toml");
        write_atomically(&config, config_toml.as_bytes()).map_err(io_at(&config))?;
        let path = dir.join("metrics.csv");
        let mut metrics = BufWriter::new(File::create(&path).map_err(io_at(&path))?);
        writeln!(metrics, "step,split,loss,accuracy,elapsed_secs").map_err(io_at(&path))?;
        metrics.flush().map_err(io_at(&path))?;
        summary.record_id = Some(record_id);
        summary.pid = Some(std::process::id());
        let writer = Self {
            dir,
            metrics,
            snapshots: None,
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

    /// Appends a snapshot, writing the file's header on the first.
    pub fn snapshot(
        &mut self,
        header: &SnapshotHeader,
        snapshot: &AttentionSnapshot,
    ) -> Result<(), RecordError> {
        let path = self.dir.join("attention.bin");
        if self.snapshots.is_none() {
            let mut out = BufWriter::new(File::create(&path).map_err(io_at(&path))?);
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
        let path = self.dir.join("summary.json");
        let json =
            serde_json::to_string_pretty(summary).map_err(|source| RecordError::Summary {
                path: path.clone(),
                source,
            })?;
        write_atomically(&path, (json + "\n").as_bytes()).map_err(io_at(&path))
    }

    /// Flushes everything and writes the final summary.
    pub fn finish(mut self, summary: &RunSummary) -> Result<(), RecordError> {
        self.flush()?;
        self.write_summary(summary)
    }
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
}

impl RunRecord {
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
        Ok(Self {
            dir: dir.to_path_buf(),
            summary,
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
        let (file, _) = open_regular(&path, u64::MAX)?;
        let mut rows = Vec::new();
        for line in BufReader::new(file).split(b'\n').skip(1) {
            let line = line.map_err(io_at(&path))?;
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
    pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists()
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
