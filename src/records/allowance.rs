//! Which text files outside its folder a record may read: what this machine allowed
//! the run when it trained, kept in `allowance.json` and signed with a key only this
//! user can read, so a record someone sends (or a `config.toml` edited since) cannot
//! name `~/.ssh/id_rsa` and have `eval`, a resume or the window read it.
//!
//! The key: 32 random bytes in `$XDG_CONFIG_HOME/attnlab/record-key` (else
//! `~/.config/attnlab/record-key`), created on first use, readable by its owner only.
//! Each allowed file is listed with `blake3::keyed_hash(key, "attnlab allowance v1" ||
//! its canonical path)`. An entry that does not verify (another machine's, forged, or
//! a key that is gone) allows nothing: the file is then refused unless the user names
//! it (`--allow-file`).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::RecordError;
use super::files::{damaged, io_at, read_small, write_atomically};
use crate::config::Settings;
use crate::tasks::TaskKind;

/// The record's allowance file.
pub const ALLOWANCE_FILE: &str = "allowance.json";

/// The key's file in the user's attnlab configuration folder.
const KEY_FILE: &str = "record-key";

/// What each signature covers, before the path.
const CONTEXT: &[u8] = b"attnlab allowance v1\0";

/// `allowance.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct AllowanceFile {
    /// The files allowed, each with its signature.
    files: Vec<AllowedFile>,
}

/// One allowed file.
#[derive(Debug, Serialize, Deserialize)]
struct AllowedFile {
    /// Its canonical path.
    path: String,
    /// `blake3::keyed_hash` of [`CONTEXT`] and the path, in hex.
    mac: String,
}

/// The user's attnlab configuration folder: `$XDG_CONFIG_HOME/attnlab`, else
/// `~/.config/attnlab`; `None` without either variable.
pub fn config_home() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("attnlab"))
}

/// The signature of `path` under `key`.
fn sign(key: &[u8; 32], path: &Path) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new_keyed(key);
    hasher.update(CONTEXT);
    hasher.update(path.as_os_str().as_encoded_bytes());
    hasher.finalize()
}

/// The user's key, created (with a fresh random one) when `create` and there is none.
/// Refused when it is a link, not a regular file, or readable by others.
fn user_key(create: bool) -> Result<Option<[u8; 32]>, RecordError> {
    let Some(folder) = config_home() else {
        return Ok(None);
    };
    let path = folder.join(KEY_FILE);
    if fs::symlink_metadata(&path).is_err() {
        if !create {
            return Ok(None);
        }
        make_key(&folder, &path)?;
    }
    check_private(&path)?;
    let text = read_small(&path)?;
    blake3::Hash::from_hex(text.trim())
        .map(|hash| Some(*hash.as_bytes()))
        .map_err(|_| damaged(&path, "not a key (64 hex digits)"))
}

/// Writes a new random key at `path`, readable by its owner only; a key another
/// process wrote first stands.
fn make_key(folder: &Path, path: &Path) -> Result<(), RecordError> {
    use rand::TryRng;
    let mut bytes = [0u8; 32];
    rand::rngs::SysRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| damaged(path, format!("no random bytes for a key: {e}")))?;
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(folder).map_err(io_at(folder))?;
    let mut file = tempfile::Builder::new()
        .prefix(".record-key")
        .tempfile_in(folder)
        .map_err(io_at(folder))?;
    // tempfile creates its files 0600 on Unix.
    let hex = blake3::Hash::from_bytes(bytes).to_hex();
    file.write_all(hex.as_bytes()).map_err(io_at(path))?;
    match file.persist_noclobber(path) {
        Ok(_) => Ok(()),
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io_at(path)(e.error)),
    }
}

/// Refuses a key file that is a link, not a regular file, or that others may read.
fn check_private(path: &Path) -> Result<(), RecordError> {
    let meta = fs::symlink_metadata(path).map_err(io_at(path))?;
    if !meta.file_type().is_file() {
        return Err(damaged(
            path,
            "is not a regular file (a link?): refused as a key",
        ));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(damaged(
                path,
                "others may read or write it (chmod 600 it): refused as a key",
            ));
        }
    }
    Ok(())
}

/// The text file the run reads, canonical, when it reads one that exists (the
/// shipped corpus's bare name is built in and needs no allowance).
fn task_file(settings: &Settings) -> Option<PathBuf> {
    if settings.task.kind != TaskKind::Text || settings.task.file.is_empty() {
        return None;
    }
    Path::new(&settings.task.file).canonicalize().ok()
}

/// Records in `dir` (a new record's folder) that this machine allowed its run to
/// read its text file: an `allowance.json` signed with the user's key (created on
/// first use). Nothing is written for a run that reads no file.
pub fn write_allowance(dir: &Path, settings: &Settings) -> Result<(), RecordError> {
    let Some(file) = task_file(settings) else {
        return Ok(());
    };
    let Some(key) = user_key(true)? else {
        // No HOME and no XDG_CONFIG_HOME: nowhere to keep a key; the record then needs
        // --allow-file to be read again, which its loader says.
        return Ok(());
    };
    let allowance = AllowanceFile {
        files: vec![AllowedFile {
            mac: sign(&key, &file).to_hex().to_string(),
            path: file.display().to_string(),
        }],
    };
    let path = dir.join(ALLOWANCE_FILE);
    let json = serde_json::to_vec_pretty(&allowance)
        .map_err(|e| damaged(&path, format!("cannot be written: {e}")))?;
    write_atomically(&path, &json).map_err(io_at(&path))
}

/// The files the record in `dir` was allowed to read by this machine: the entries of
/// its `allowance.json` whose signature verifies under the user's key. A missing,
/// damaged or foreign allowance allows nothing (never an error: the file is then
/// refused, and the refusal says how to allow it).
pub fn verified_allowance(dir: &Path) -> Vec<PathBuf> {
    let path = dir.join(ALLOWANCE_FILE);
    if fs::symlink_metadata(&path).is_err() {
        return Vec::new();
    }
    let Ok(Some(key)) = user_key(false) else {
        return Vec::new();
    };
    let Ok(text) = read_small(&path) else {
        return Vec::new();
    };
    let Ok(allowance) = serde_json::from_str::<AllowanceFile>(&text) else {
        return Vec::new();
    };
    allowance
        .files
        .into_iter()
        .filter(|f| {
            // blake3::Hash compares in constant time.
            blake3::Hash::from_hex(&f.mac).is_ok_and(|mac| mac == sign(&key, Path::new(&f.path)))
        })
        .map(|f| PathBuf::from(f.path))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_binds_the_key_and_the_path() {
        let (a, b) = ([1u8; 32], [2u8; 32]);
        let path = Path::new("/data/corpus.txt");
        assert_eq!(sign(&a, path), sign(&a, path));
        assert_ne!(sign(&a, path), sign(&b, path));
        assert_ne!(sign(&a, path), sign(&a, Path::new("/home/u/.ssh/id_rsa")));
    }
}
