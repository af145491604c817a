//! The cost view's measurements on disk, per machine and backend
//! (`~/.cache/attnlab/cost-cache.json`), so a second look is instant.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::bench::LayerCost;
use crate::records::write_atomically;

/// Cached measurements: key `machine/backend/pattern/n`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CostCache {
    /// The points.
    pub points: BTreeMap<String, LayerCost>,
}

impl CostCache {
    /// The user's cache file: `$XDG_CACHE_HOME` or `~/.cache`, then
    /// `attnlab/cost-cache.json`.
    pub fn default_path() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
        Some(base.join("attnlab").join("cost-cache.json"))
    }

    /// The cache at `path`: empty when there is none yet; an unreadable or damaged
    /// file is an error (the view shows it and starts empty; measuring again
    /// overwrites it).
    pub fn load(path: Option<&PathBuf>) -> Result<Self, String> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => {
                return Err(format!(
                    "cannot read the cost cache {}: {e}",
                    path.display()
                ));
            }
        };
        serde_json::from_str(&text).map_err(|e| {
            format!(
                "the cost cache {} is damaged ({e}); it will be rewritten",
                path.display()
            )
        })
    }

    /// Writes the cache (atomically); an error says why it could not.
    pub fn store(&self, path: Option<&PathBuf>) -> Result<(), String> {
        let Some(path) = path else {
            return Ok(());
        };
        let fail = |e: &dyn std::fmt::Display| {
            format!("cannot save the cost cache {}: {e}", path.display())
        };
        let text = serde_json::to_string_pretty(self).map_err(|e| fail(&e))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
        }
        write_atomically(path, text.as_bytes()).map_err(|e| fail(&e))
    }
}

/// Identifies this machine in the cache (CPU model and thread count).
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{cpu} x{threads}")
}

/// The cache key of one measurement.
pub fn key(machine: &str, pattern: &str, n: usize) -> String {
    format!("{machine}/cpu/{pattern}/{n}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_and_loads_and_a_damaged_file_is_an_error_not_silence() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub").join("cost-cache.json");
        assert!(
            CostCache::load(Some(&path))
                .expect("missing is empty")
                .points
                .is_empty()
        );
        let mut cache = CostCache::default();
        cache.points.insert(
            key("m", "dense", 256),
            LayerCost {
                pattern: "dense".into(),
                seq: 256,
                step_ms: 1.5,
                peak_mb: None,
                attended_pairs: 65536,
                computed_pairs: 65536,
            },
        );
        cache.store(Some(&path)).expect("stores");
        let back = CostCache::load(Some(&path)).expect("loads");
        assert_eq!(back.points, cache.points);
        std::fs::write(&path, "{ not json").expect("write");
        let err = CostCache::load(Some(&path)).expect_err("damaged");
        assert!(err.contains("damaged"), "{err}");
    }
}
