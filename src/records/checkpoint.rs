//! Checkpoints inside a run record: `checkpoint/` holds the model's and the
//! optimiser's state (burnpack files the trainer writes with burn) and `state.json`,
//! written last and atomically, which names them and the step they are of. A reader
//! trusts only what `state.json` names, so a crash while saving leaves the previous
//! checkpoint usable. `state.json` also holds the settings the run trained with, so a
//! resume can tell an edited `config.toml` from the run it continues (see `resume`).
//!
//! With `train.keep_checkpoints` (`"all"` or a count N), each checkpoint's model is
//! also kept, after its `state.json` is committed, as `checkpoint/kept/<step>.<ext>`
//! (the step zero-padded to six digits, the extension the checkpoint's model file
//! has: `kept/000400.bpk`), then the oldest are deleted down to N. The optimiser state
//! is kept for the latest checkpoint only. A kept file is a copy written like the
//! rest of the record (a temporary file created exclusively in `kept/`, then renamed
//! into place; never through a link; a `kept/` that is a link is refused).
//! [`kept_checkpoints`] lists the kept models and [`model_at`] finds the model of one
//! step, kept or the latest checkpoint's.
//!
//! A resumed run continues from the latest checkpoint, and a model is kept only once
//! its checkpoint is committed, so `kept/` never holds steps after the one a run
//! resumes from; kept files it does hold from before are left as they are (with a
//! count N they take part in the pruning). Setting `train.keep_checkpoints` back to
//! `"latest"` keeps no new models and deletes none already kept.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::files::{RecordError, io_at, not_plain, open_regular, read_small, write_atomically};
use crate::config::KeepCheckpoints;

/// The folder of kept models inside `checkpoint/`.
const KEPT: &str = "kept";

/// Most entries `kept/` is read with: as many as a run may keep
/// ([`crate::config::MAX_KEPT_CHECKPOINTS`], which validation holds
/// `train.keep_checkpoints` to), few enough to list in a moment; a folder with more
/// is refused, not read.
pub const MAX_KEPT_ENTRIES: usize = crate::config::MAX_KEPT_CHECKPOINTS;

/// What `checkpoint/state.json` holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    /// Optimiser steps done when it was saved.
    pub step: usize,
    /// Seconds of training up to then (the metrics' clock continues from here).
    pub busy_secs: f64,
    /// The model's file, in `checkpoint/`.
    pub model: String,
    /// The optimiser's file, in `checkpoint/`; empty in a run forked from a kept
    /// model (`run --fork` at a step before the parent's latest checkpoint), which
    /// continues with a fresh optimiser.
    pub optimizer: String,
    /// The settings the run trained with up to this checkpoint, as canonical TOML
    /// without `train.steps` and `train.seeds`
    /// ([`settings_fingerprint`](super::settings_fingerprint)): a resume must plan the
    /// same, but for what it changes on purpose. `None` in checkpoints written before
    /// attnlab stored them (those records are compared with their `config.toml`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<String>,
}

/// The checkpoint folder of a record.
pub fn checkpoint_dir(record_dir: &Path) -> PathBuf {
    record_dir.join("checkpoint")
}

/// The record's last complete checkpoint, if it has one.
pub fn read_checkpoint(record_dir: &Path) -> Result<Option<CheckpointState>, RecordError> {
    let path = checkpoint_dir(record_dir).join("state.json");
    if !path.exists() {
        return Ok(None);
    }
    if !real_folder(&checkpoint_dir(record_dir))? {
        return Ok(None);
    }
    let text = read_small(&path)?;
    let state: CheckpointState =
        serde_json::from_str(&text).map_err(|source| RecordError::Summary {
            path: path.clone(),
            source,
        })?;
    // An empty optimiser: a fork from a kept model, which starts a fresh optimiser.
    let optimizer = (!state.optimizer.is_empty()).then_some(&state.optimizer);
    for file in std::iter::once(&state.model).chain(optimizer) {
        let named = checkpoint_dir(record_dir).join(file);
        if file.contains(['/', '\\']) || file.contains("..") || !named.is_file() {
            return Err(RecordError::Damaged {
                path,
                problem: format!("names {file}, which is not in the checkpoint"),
            });
        }
        // Loaded by eval, resume and fork: never through a link.
        if let Some(why) = not_plain(&named) {
            return Err(damaged(&named, why));
        }
    }
    Ok(Some(state))
}

/// Makes `state` the record's checkpoint (its files must be written already) and
/// removes the files of older checkpoints (not the kept models in `kept/`).
pub fn commit_checkpoint(record_dir: &Path, state: &CheckpointState) -> Result<(), RecordError> {
    let dir = checkpoint_dir(record_dir);
    let path = dir.join("state.json");
    let json = serde_json::to_string_pretty(state).map_err(|source| RecordError::Summary {
        path: path.clone(),
        source,
    })?;
    write_atomically(&path, json.as_bytes()).map_err(|source| RecordError::Io {
        path: path.clone(),
        source,
    })?;
    if let Ok(entries) = fs::read_dir(&dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let is_file = entry.file_type().is_ok_and(|t| !t.is_dir());
            if is_file
                && name != KEPT
                && name != "state.json"
                && name != state.model
                && name != state.optimizer
            {
                // Ignored: an old checkpoint file left behind only costs disk space.
                let _ = fs::remove_file(entry.path());
            }
        }
    }
    Ok(())
}

/// The folder of a record's kept models, `checkpoint/kept/`.
pub fn kept_dir(record_dir: &Path) -> PathBuf {
    checkpoint_dir(record_dir).join(KEPT)
}

/// One kept model: the model weights of the checkpoint at a step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeptCheckpoint {
    /// The checkpoint's step.
    pub step: usize,
    /// The model file (a burnpack file, as the checkpoint's model).
    pub path: PathBuf,
}

/// The file name of the kept model of `step`: `000400.bpk`.
fn kept_name(step: usize, extension: &str) -> String {
    format!("{step:06}.{extension}")
}

/// The step of a kept model's file name (`<digits>.<ext>`, the extension letters and
/// digits); `None` for any other name (temporary files start with a dot).
fn step_of(name: &str) -> Option<usize> {
    let (digits, extension) = name.split_once('.')?;
    let plain = |text: &str, ok: fn(&u8) -> bool| !text.is_empty() && text.bytes().all(|b| ok(&b));
    if !plain(digits, u8::is_ascii_digit) || !plain(extension, u8::is_ascii_alphanumeric) {
        return None;
    }
    digits.parse().ok()
}

fn damaged(path: &Path, problem: impl Into<String>) -> RecordError {
    RecordError::Damaged {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

/// Whether the folder `path` is there: `Ok(false)` when nothing has its name; a
/// symbolic link (dangling or not) or anything but a folder is refused.
fn real_folder(path: &Path) -> Result<bool, RecordError> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_at(path)(e)),
        Ok(meta) if meta.file_type().is_symlink() => Err(damaged(
            path,
            "is a symbolic link; a record's folders are read and written only in place",
        )),
        Ok(meta) if !meta.is_dir() => Err(damaged(path, "not a folder")),
        Ok(_) => Ok(true),
    }
}

/// The record's kept models, by step (one per step): the regular files of
/// `checkpoint/kept/` named `<digits>.<ext>`; other names, symbolic links and
/// folders are passed over. Empty when the record keeps none. Refused: a
/// `checkpoint/` or `kept/` that is a symbolic link, and a `kept/` of more than
/// [`MAX_KEPT_ENTRIES`] entries.
pub fn kept_checkpoints(record_dir: &Path) -> Result<Vec<KeptCheckpoint>, RecordError> {
    let dir = kept_dir(record_dir);
    if !real_folder(&checkpoint_dir(record_dir))? || !real_folder(&dir)? {
        return Ok(Vec::new());
    }
    let mut kept = Vec::new();
    for (i, entry) in fs::read_dir(&dir).map_err(io_at(&dir))?.enumerate() {
        if i >= MAX_KEPT_ENTRIES {
            return Err(damaged(
                &dir,
                format!("holds more than {MAX_KEPT_ENTRIES} entries"),
            ));
        }
        let entry = entry.map_err(io_at(&dir))?;
        // The entry's own type: a link is not followed, nor a hard link read.
        if !entry.file_type().is_ok_and(|t| t.is_file()) || not_plain(&entry.path()).is_some() {
            continue;
        }
        let name = entry.file_name();
        if let Some(step) = name.to_str().and_then(step_of) {
            kept.push(KeptCheckpoint {
                step,
                path: entry.path(),
            });
        }
    }
    kept.sort_by(|a, b| (a.step, &a.path).cmp(&(b.step, &b.path)));
    kept.dedup_by_key(|k| k.step);
    Ok(kept)
}

/// Why [`model_at`] found no model.
#[derive(Debug, thiserror::Error)]
pub enum ModelAtError {
    /// The record's checkpoint or kept models cannot be read.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// No model of that step was saved.
    #[error("no model was saved at step {step}: {}", saved_text(.saved))]
    NotSaved {
        /// The step asked for.
        step: usize,
        /// The steps whose models the record holds (kept, and the latest checkpoint's).
        saved: Vec<usize>,
    },
}

/// The steps a record has models of, in words (at most a dozen named).
fn saved_text(saved: &[usize]) -> String {
    if saved.is_empty() {
        return "the record has no saved model (it stopped before its first checkpoint)".into();
    }
    let named = |steps: &[usize]| {
        steps
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let list = if saved.len() <= 12 {
        named(saved)
    } else {
        format!(
            "{}, ... ({} in all), {}",
            named(&saved[..6]),
            saved.len(),
            named(&saved[saved.len() - 6..])
        )
    };
    let hint = if saved.len() == 1 {
        " (train.keep_checkpoints keeps the models of earlier checkpoints)"
    } else {
        ""
    };
    format!("models are saved at steps {list}{hint}")
}

/// The model file of the record's checkpoint at `step`: its kept model, else the
/// latest checkpoint's model when that is of `step`. Refused with the steps it has
/// models of when neither is, and for a model file that is a symbolic link.
pub fn model_at(record_dir: &Path, step: usize) -> Result<PathBuf, ModelAtError> {
    let kept = kept_checkpoints(record_dir)?;
    if let Some(k) = kept.iter().find(|k| k.step == step) {
        return Ok(k.path.clone());
    }
    let latest = read_checkpoint(record_dir)?;
    if let Some(state) = &latest
        && state.step == step
    {
        let path = checkpoint_dir(record_dir).join(&state.model);
        let meta = fs::symlink_metadata(&path).map_err(io_at(&path))?;
        if !meta.is_file() {
            return Err(damaged(&path, "not a regular file (records hold no links)").into());
        }
        return Ok(path);
    }
    let mut saved: Vec<usize> = kept.iter().map(|k| k.step).collect();
    saved.extend(latest.map(|s| s.step));
    saved.sort_unstable();
    saved.dedup();
    Err(ModelAtError::NotSaved { step, saved })
}

/// Keeps the model of the record's committed checkpoint `state` as
/// `checkpoint/kept/<step>.<ext>` when `keep` says to, then deletes the oldest kept
/// models beyond its count. `"latest"` keeps nothing and deletes nothing.
pub fn keep_checkpoint_model(
    record_dir: &Path,
    state: &CheckpointState,
    keep: KeepCheckpoints,
) -> Result<(), RecordError> {
    let limit = match keep {
        KeepCheckpoints::Latest => return Ok(()),
        other => other.limit(),
    };
    let folder = checkpoint_dir(record_dir);
    if !real_folder(&folder)? {
        return Err(damaged(&folder, "is missing: the checkpoint was not saved"));
    }
    let dir = kept_dir(record_dir);
    match fs::create_dir(&dir) {
        Ok(()) => {}
        // Checked next: a folder is used, a link or a file refused.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_at(&dir)(e)),
    }
    if !real_folder(&dir)? {
        return Err(damaged(&dir, "vanished while it was created"));
    }
    let model = folder.join(&state.model);
    let extension = Path::new(&state.model)
        .extension()
        .and_then(|e| e.to_str())
        .filter(|e| !e.is_empty() && e.bytes().all(|b| b.is_ascii_alphanumeric()))
        .unwrap_or("bpk");
    let target = dir.join(kept_name(state.step, extension));
    copy_atomically(&model, &target)?;
    if let Some(limit) = limit {
        let kept = kept_checkpoints(record_dir)?;
        let excess = kept.len().saturating_sub(limit);
        for old in &kept[..excess] {
            // Ignored: a kept model left behind only costs disk space.
            let _ = fs::remove_file(&old.path);
        }
    }
    Ok(())
}

/// Copies the regular file `from` (not a link) to `to` the way
/// [`write_atomically`] writes: streamed into a temporary file created exclusively
/// beside `to`, flushed to disk, then renamed over `to` (never written through a link).
fn copy_atomically(from: &Path, to: &Path) -> Result<(), RecordError> {
    let (mut source, _) = open_regular(from, u64::MAX)?;
    let name = to
        .file_name()
        .ok_or_else(|| damaged(to, "does not end in a file name"))?;
    let dir = to.parent().unwrap_or(Path::new("."));
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(name);
    prefix.push(".");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(fs::Permissions::from_mode(0o666));
    }
    // Dropped on any error below: the temporary file is removed.
    let mut tmp = builder.tempfile_in(dir).map_err(io_at(to))?;
    io::copy(&mut source, tmp.as_file_mut()).map_err(io_at(from))?;
    tmp.as_file_mut().flush().map_err(io_at(to))?;
    tmp.as_file().sync_all().map_err(io_at(to))?;
    tmp.persist(to).map_err(|e| io_at(to)(e.error))?;
    Ok(())
}
