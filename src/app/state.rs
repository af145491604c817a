//! What the window remembers between launches (eframe persistence). Runtime handles
//! (trainer, textures, live runs) are never persisted.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Persisted UI state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PersistedState {
    /// The experiment being edited, as TOML (kept even when unsaved).
    pub experiment_toml: String,
    /// The file it was opened from or saved to.
    pub experiment_path: Option<PathBuf>,
    /// Whether it differs from that file.
    pub dirty: bool,
    /// Folder for run records.
    pub runs_root: PathBuf,
    /// Smoothing of the curves, 0 (raw) ..< 1.
    pub smoothing: f32,
    /// Log-scale loss axis.
    pub log_scale: bool,
    /// Seed replicates drawn as one curve: their mean with a min-max band.
    pub group_seeds: bool,
    /// Runs trained at once (0: from the cores and the memory estimate).
    pub parallel_runs: usize,
    /// Overlay the pattern's mask on attention maps.
    pub show_mask: bool,
    /// Mark the task's dependencies on attention maps.
    pub show_dependencies: bool,
    /// The folder file dialogs start in.
    pub last_dir: Option<PathBuf>,
    /// Remote servers the user added (`ws://host:port`), in the Devices pane.
    pub servers: Vec<String>,
    /// Whether queued runs train on those servers instead of this machine.
    pub use_servers: bool,
    /// Pixels per point of a pane saved as PNG (1 = as on screen).
    pub png_scale: f32,
    /// The longest sequence the cost view measures.
    pub cost_max_len: usize,
    /// Where the cost view caches its measurements; `None`: the user's cache folder
    /// (`$XDG_CACHE_HOME` or `~/.cache`, then `attnlab/cost-cache.json`). Not persisted.
    #[serde(skip)]
    pub cost_cache: Option<PathBuf>,
}

impl Default for PersistedState {
    fn default() -> Self {
        Self {
            experiment_toml: super::examples::DEFAULT.text.to_string(),
            experiment_path: None,
            dirty: false,
            runs_root: PathBuf::from(crate::records::DEFAULT_ROOT),
            smoothing: 0.6,
            log_scale: true,
            group_seeds: true,
            parallel_runs: 0,
            show_mask: false,
            show_dependencies: true,
            last_dir: None,
            servers: Vec::new(),
            use_servers: false,
            png_scale: 2.0,
            cost_max_len: 4096,
            cost_cache: None,
        }
    }
}
