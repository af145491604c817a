//! Reading and writing the files of a record safely: errors that name the file,
//! writes that a crash never leaves half done, reads that never block on a FIFO nor
//! allocate beyond a bound.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::config::ConfigErrors;

/// Largest `summary.json` or `config.toml` read back (they are a few KiB).
const MAX_SMALL_FILE: u64 = 1 << 20;

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

pub(super) fn io_at(path: &Path) -> impl FnOnce(io::Error) -> RecordError + '_ {
    move |source| RecordError::Io {
        path: path.to_path_buf(),
        source,
    }
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
pub(super) fn open_regular(path: &Path, max_bytes: u64) -> Result<(File, u64), RecordError> {
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
pub(super) fn read_small(path: &Path) -> Result<String, RecordError> {
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
