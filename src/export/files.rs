//! The export formats, each a plain function of what a record holds.

use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

use super::png::{PngError, attention_png};
use crate::records::{MetricRow, RunRecord, write_atomically};

mod curves;

pub use curves::curves_svg;

/// Why an export could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A record could not be read.
    #[error(transparent)]
    Record(#[from] crate::records::RecordError),
    /// A file could not be written.
    #[error("{path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The PNG could not be encoded.
    #[error("{path}: {source}")]
    Png {
        /// The file.
        path: PathBuf,
        /// Why.
        source: PngError,
    },
    /// The destination lies inside a record being exported (or would write into one):
    /// an export never writes into the records it reads.
    #[error(
        "{to}: the export would write inside the record {record}, which it reads; choose a folder outside every record"
    )]
    IntoRecord {
        /// The destination given.
        to: PathBuf,
        /// The record it would write into.
        record: PathBuf,
    },
    /// A folder of the destination is a symbolic link or not a folder: the export
    /// writes only into the folder it was given, never where a link points.
    #[error("{path}: {problem}; the export writes only into real folders")]
    Destination {
        /// The folder.
        path: PathBuf,
        /// What it is instead.
        problem: String,
    },
    /// Exporting the record panicked; the panic was caught and the other records
    /// exported.
    #[error("{record}: the export failed unexpectedly: {message}")]
    Failed {
        /// The record.
        record: PathBuf,
        /// What the panic said.
        message: String,
    },
}

/// What [`export_each`] did: the files written, and each record that could not be
/// exported (its folder and why); the others were.
#[derive(Debug, Default)]
pub struct Exported {
    /// Every file written.
    pub written: Vec<PathBuf>,
    /// The records not (or not completely) exported, each with why.
    pub failed: Vec<(PathBuf, ExportError)>,
}

/// `metrics.csv` as written by the trainer: `step,split,loss,accuracy,elapsed_secs`.
pub fn metrics_csv(rows: &[MetricRow]) -> String {
    let mut out = String::from("step,split,loss,accuracy,elapsed_secs\n");
    for r in rows {
        let m = &r.metrics;
        let split = if r.eval { "eval" } else { "train" };
        let _ = writeln!(
            out,
            "{},{split},{},{},{:.3}",
            m.step, m.loss, m.accuracy, m.elapsed_secs
        );
    }
    out
}

/// One row per record: what ended how, with its final metrics.
pub fn summary_csv(records: &[RunRecord]) -> String {
    let mut out = String::from(
        "record,experiment,run,status,steps,planned_steps,final_loss,final_accuracy,steps_per_sec,peak_memory_mib,backend\n",
    );
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    for r in records {
        let s = &r.summary;
        let id = r
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{}",
            quote(&id),
            quote(&s.experiment),
            quote(&s.name),
            s.status.name(),
            s.steps,
            s.planned_steps,
            opt(s.final_loss),
            opt(s.final_accuracy),
            s.steps_per_sec,
            s.peak_memory_bytes.map_or(String::new(), |b| format!(
                "{:.1}",
                b as f64 / (1 << 20) as f64
            )),
            s.backend
        );
    }
    out
}

/// A float32 array in numpy's `.npy` format (version 1.0, little-endian, C order).
pub fn npy_f32(shape: &[usize], data: &[f32]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let shape = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    // Magic (6) + version (2) + length (2) + header + newline, padded to 64 bytes.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len() * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// `path` made absolute with every link in the part that exists resolved; the part
/// that does not exist yet is appended as written (`.` and `..` applied to it).
fn resolved(path: &Path) -> std::io::Result<PathBuf> {
    let absolute = std::env::current_dir()?.join(path);
    let parts: Vec<Component> = absolute.components().collect();
    for known in (1..=parts.len()).rev() {
        let Ok(mut out) = parts[..known].iter().collect::<PathBuf>().canonicalize() else {
            continue;
        };
        for part in &parts[known..] {
            match part {
                Component::ParentDir => {
                    out.pop();
                }
                Component::Normal(name) => out.push(name),
                _ => {}
            }
        }
        return Ok(out);
    }
    Ok(absolute)
}

/// The folder name a record's export gets: its record id.
fn record_id(record: &RunRecord) -> String {
    record
        .dir
        .file_name()
        .map_or("record".into(), |n| n.to_string_lossy().to_string())
}

/// Refuses a destination that is, or whose per-record folders would be, inside a
/// record being exported (`--to` a record, or `--to` the folder of the records).
fn check_destination(records: &[RunRecord], to: &Path) -> Result<(), ExportError> {
    let to_resolved = resolved(to).map_err(|source| ExportError::Write {
        path: to.to_path_buf(),
        source,
    })?;
    let dirs: Vec<PathBuf> = records
        .iter()
        .map(|r| resolved(&r.dir).unwrap_or_else(|_| r.dir.clone()))
        .collect();
    let outs = std::iter::once(to_resolved.clone())
        .chain(records.iter().map(|r| to_resolved.join(record_id(r))));
    for out in outs {
        if let Some(record) = dirs.iter().find(|dir| out.starts_with(dir)) {
            return Err(ExportError::IntoRecord {
                to: to.to_path_buf(),
                record: record.clone(),
            });
        }
    }
    Ok(())
}

/// Creates the folder `dir` (one level) unless it exists, and refuses it when it is a
/// symbolic link or not a folder: files are written only where the user said.
fn real_folder(dir: &Path) -> Result<(), ExportError> {
    let fail = |source| ExportError::Write {
        path: dir.to_path_buf(),
        source,
    };
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(fail(e)),
    }
    let meta = std::fs::symlink_metadata(dir).map_err(fail)?;
    let problem = if meta.file_type().is_symlink() {
        "is a symbolic link"
    } else if !meta.is_dir() {
        "is not a folder"
    } else {
        return Ok(());
    };
    Err(ExportError::Destination {
        path: dir.to_path_buf(),
        problem: problem.into(),
    })
}

/// Writes, for each record, `<record-id>/metrics.csv`, `curves.svg` and, when it has
/// snapshots, `attention-step<k>.png` and `.npy` of its last snapshot; and
/// `summary.csv` over all of them. Returns the files written, or (once every other
/// record is exported) the first record's error.
///
/// Refused before anything is written when `to` (or a record's folder in it) lies
/// inside a record exported. Each file is written through a uniquely named temporary
/// file created exclusively beside it and renamed over it, so a symbolic link at a
/// file's name is replaced, never written through; a record's folder in `to` that is
/// a symbolic link is refused. (A folder swapped for a link after that check, by
/// someone who may rename entries of `to`, is not detected: export into a folder only
/// you can write.)
pub fn export_records(records: &[RunRecord], to: &Path) -> Result<Vec<PathBuf>, ExportError> {
    let exported = export_each(records, to)?;
    match exported.failed.into_iter().next() {
        Some((_, e)) => Err(e),
        None => Ok(exported.written),
    }
}

/// [`export_records`], each record on its own: a damaged or hostile record (even one
/// whose export panics) is listed in [`Exported::failed`] and the others exported;
/// `summary.csv` covers those exported. An error is about the destination alone.
pub fn export_each(records: &[RunRecord], to: &Path) -> Result<Exported, ExportError> {
    check_destination(records, to)?;
    std::fs::create_dir_all(to).map_err(|source| ExportError::Write {
        path: to.to_path_buf(),
        source,
    })?;
    let mut exported = Exported::default();
    let mut done = Vec::new();
    for record in records {
        let written = &mut exported.written;
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            export_one(record, &to.join(record_id(record)), written)
        }))
        .unwrap_or_else(|panic| {
            Err(ExportError::Failed {
                record: record.dir.clone(),
                message: panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".into()),
            })
        });
        match outcome {
            Ok(()) => done.push(record.clone()),
            Err(e) => exported.failed.push((record.dir.clone(), e)),
        }
    }
    if !done.is_empty() {
        write_file(
            &to.join("summary.csv"),
            summary_csv(&done).as_bytes(),
            &mut exported.written,
        )?;
    }
    Ok(exported)
}

/// Writes `bytes` to `path` atomically and lists it in `written`.
fn write_file(path: &Path, bytes: &[u8], written: &mut Vec<PathBuf>) -> Result<(), ExportError> {
    write_atomically(path, bytes).map_err(|source| ExportError::Write {
        path: path.to_path_buf(),
        source,
    })?;
    written.push(path.to_path_buf());
    Ok(())
}

/// One record's files, in its folder `dir` of the destination.
fn export_one(
    record: &RunRecord,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<(), ExportError> {
    real_folder(dir)?;
    let mut write = |path: PathBuf, bytes: &[u8]| write_file(&path, bytes, written);
    let rows = record.metrics()?;
    write(dir.join("metrics.csv"), metrics_csv(&rows).as_bytes())?;
    let title = format!(
        "{} / {} ({})",
        record.summary.experiment,
        record.summary.name,
        record.summary.status.name()
    );
    write(dir.join("curves.svg"), curves_svg(&title, &rows).as_bytes())?;
    let distances = record.distances()?;
    if !distances.is_empty() {
        let mut csv = String::from("step,distance,correct,total,accuracy\n");
        for d in &distances {
            for c in &d.counts {
                let _ = writeln!(
                    csv,
                    "{},{},{},{},{}",
                    d.step,
                    c.distance,
                    c.correct,
                    c.total,
                    c.accuracy()
                );
            }
        }
        write(dir.join("distance.csv"), csv.as_bytes())?;
    }
    let snapshots = record.snapshots()?;
    if let Some((header, snapshots)) = &snapshots {
        // The statistics need the run's settings (patterns, masks), held to every
        // bound (a record's `layers = 2^50` must not size a mask); a record whose
        // configuration no longer reads still gets its maps exported.
        if let Ok(settings) = record.checked_settings() {
            let masks = settings.model.fitted_layer_masks(
                settings.task.seq_len,
                settings.train.seed,
                crate::inspect::MAX_SNAPSHOT_SIDE,
            );
            let rows: Vec<(usize, usize, Vec<crate::attention::HeadStats>)> = snapshots
                .iter()
                .map(|snap| {
                    let stats = super::snapshot_stats(&settings, Some(&header.probe), &masks, snap);
                    (snap.step, snap.heads, stats)
                })
                .collect();
            write(
                dir.join("head_stats.csv"),
                super::head_stats_csv(&rows).as_bytes(),
            )?;
        }
    }
    if let Some((_, snapshots)) = snapshots
        && let Some(last) = snapshots.last()
    {
        let stem = format!("attention-step{}", last.step);
        let png = dir.join(format!("{stem}.png"));
        let bytes = attention_png(last, 4).map_err(|source| ExportError::Png {
            path: png.clone(),
            source,
        })?;
        write(png, &bytes)?;
        let shape = [last.layers, last.heads, last.n, last.n];
        write(
            dir.join(format!("{stem}.npy")),
            &npy_f32(&shape, &last.weights),
        )?;
    }
    Ok(())
}
