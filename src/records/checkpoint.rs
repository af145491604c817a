//! Checkpoints inside a run record: `checkpoint/` holds the model's and the
//! optimiser's state (burnpack files the trainer writes with burn) and `state.json`,
//! written last and atomically, which names them and the step they are of. A reader
//! trusts only what `state.json` names, so a crash while saving leaves the previous
//! checkpoint usable. `state.json` also holds the settings the run trained with, so a
//! resume can tell an edited `config.toml` from the run it continues (see `resume`).

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::files::{RecordError, read_small, write_atomically};

/// What `checkpoint/state.json` holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    /// Optimiser steps done when it was saved.
    pub step: usize,
    /// Seconds of training up to then (the metrics' clock continues from here).
    pub busy_secs: f64,
    /// The model's file, in `checkpoint/`.
    pub model: String,
    /// The optimiser's file, in `checkpoint/`.
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
    let text = read_small(&path)?;
    let state: CheckpointState =
        serde_json::from_str(&text).map_err(|source| RecordError::Summary {
            path: path.clone(),
            source,
        })?;
    for file in [&state.model, &state.optimizer] {
        let named = checkpoint_dir(record_dir).join(file);
        if file.contains('/') || file.contains("..") || !named.is_file() {
            return Err(RecordError::Damaged {
                path,
                problem: format!("names {file}, which is not in the checkpoint"),
            });
        }
    }
    Ok(Some(state))
}

/// Makes `state` the record's checkpoint (its files must be written already) and
/// removes the files of older checkpoints.
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
            if name != "state.json" && name != state.model && name != state.optimizer {
                // Ignored: an old checkpoint file left behind only costs disk space.
                let _ = fs::remove_file(entry.path());
            }
        }
    }
    Ok(())
}
