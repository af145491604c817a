//! Writing a run record while the run trains, and reading records back.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::snapshots::{self, AttentionSnapshot, SnapshotHeader};
use super::summary::{Metrics, RunSummary};
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
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> RecordError + '_ {
    move |source| RecordError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A record id (the record's folder name): `YYYYMMDD-HHMMSS-<experiment>-<run>`,
/// made unique under `root`.
pub fn new_record_id(root: &Path, experiment: &str, run: &str) -> String {
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let stamp: String = stamp.chars().filter(char::is_ascii_digit).collect();
    let (date, time) = stamp.split_at(8.min(stamp.len()));
    let base = format!("{date}-{time}-{}-{}", slug(experiment), slug(run));
    let mut id = base.clone();
    let mut k = 2;
    while root.join(&id).exists() {
        id = format!("{base}-{k}");
        k += 1;
    }
    id
}

/// A file-system-safe, lower-case version of a name (`Dense vs Local` -> `dense-vs-local`).
pub fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches('-').to_string();
    if out.is_empty() { "run".into() } else { out }
}

/// Writes one run's record as the run trains.
pub struct RecordWriter {
    dir: PathBuf,
    metrics: BufWriter<File>,
    snapshots: Option<BufWriter<File>>,
}

impl RecordWriter {
    /// Creates `<root>/<record_id>/` with `config.toml`, the CSV header and a `running`
    /// summary (so a record whose process died still lists).
    pub fn create(
        root: &Path,
        record_id: &str,
        config_toml: &str,
        summary: &RunSummary,
    ) -> Result<Self, RecordError> {
        let dir = root.join(record_id);
        fs::create_dir_all(&dir).map_err(io_at(&dir))?;
        let config = dir.join("config.toml");
        fs::write(&config, config_toml).map_err(io_at(&config))?;
        let path = dir.join("metrics.csv");
        let mut metrics = BufWriter::new(File::create(&path).map_err(io_at(&path))?);
        writeln!(metrics, "step,split,loss,accuracy,elapsed_secs").map_err(io_at(&path))?;
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

    /// Writes `summary.json` (atomically: a reader never sees half a file).
    pub fn write_summary(&self, summary: &RunSummary) -> Result<(), RecordError> {
        let path = self.dir.join("summary.json");
        let tmp = self.dir.join("summary.json.tmp");
        let json =
            serde_json::to_string_pretty(summary).map_err(|source| RecordError::Summary {
                path: path.clone(),
                source,
            })?;
        fs::write(&tmp, json + "\n").map_err(io_at(&tmp))?;
        fs::rename(&tmp, &path).map_err(io_at(&path))
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
    /// Reads `summary.json` of a record folder (cheap: enough to list it).
    pub fn open(dir: &Path) -> Result<Self, RecordError> {
        let path = dir.join("summary.json");
        let text = fs::read_to_string(&path).map_err(io_at(&path))?;
        let summary =
            serde_json::from_str(&text).map_err(|source| RecordError::Summary { path, source })?;
        Ok(Self {
            dir: dir.to_path_buf(),
            summary,
        })
    }

    /// The run's configuration (`config.toml`).
    pub fn experiment(&self) -> Result<Experiment, RecordError> {
        Ok(Experiment::load(&self.dir.join("config.toml"))?)
    }

    /// Every row of `metrics.csv`, in file order. Malformed lines (wrong field
    /// count, unparsable numbers, bytes that are not UTF-8) are skipped.
    pub fn metrics(&self) -> Result<Vec<MetricRow>, RecordError> {
        let path = self.dir.join("metrics.csv");
        let file = File::open(&path).map_err(io_at(&path))?;
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

    /// The attention snapshots, if the run recorded any.
    pub fn snapshots(
        &self,
    ) -> Result<Option<(SnapshotHeader, Vec<AttentionSnapshot>)>, RecordError> {
        let path = self.dir.join("attention.bin");
        match File::open(&path) {
            Ok(file) => snapshots::read_snapshots(BufReader::new(file))
                .map(Some)
                .map_err(io_at(&path)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_at(&path)(e)),
        }
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
