//! The credentials file: `$XDG_CONFIG_HOME/attnlab/credentials.toml` (else
//! `~/.config/attnlab/credentials.toml`), mapping each server address to the token
//! this user presents to it and to no other:
//!
//! ```toml
//! [tokens]
//! "ws://10.0.0.5:3000" = "..."
//! "iroh:<id>" = "..."
//! ```
//!
//! Read as ssh reads a private key: refused, with the reason, when it is a symbolic
//! link, not a regular file, or readable or writable by anyone but its owner. Errors
//! name the file, never a value in it (a TOML error would quote the line, so only its
//! message and line number are kept).

use std::io::Read;
use std::path::{Path, PathBuf};

/// The largest credentials file read, in bytes.
const MAX_FILE_LEN: u64 = 64 * 1024;

/// A credentials file that cannot be used; the reason never quotes its contents.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the credentials file {path} is refused: {reason}")]
pub struct FileRefused {
    /// The file.
    pub path: String,
    /// Why, in words.
    pub reason: String,
}

/// Where the credentials file is: under `$XDG_CONFIG_HOME`, else `$HOME/.config`;
/// `None` when neither variable is set.
pub fn credentials_path() -> Option<PathBuf> {
    let set = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    let config = set("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| set("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(config.join("attnlab").join("credentials.toml"))
}

/// The `(address, token)` entries of the credentials file at `path`, as written;
/// `None` when there is no such file.
pub fn read_entries(path: &Path) -> Result<Option<Vec<(String, String)>>, FileRefused> {
    let refuse = |reason: String| FileRefused {
        path: path.display().to_string(),
        reason,
    };
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(refuse(e.to_string())),
    };
    if meta.file_type().is_symlink() {
        return Err(refuse(
            "it is a symbolic link (tokens are read only from a regular file)".into(),
        ));
    }
    let file = std::fs::File::open(path).map_err(|e| refuse(e.to_string()))?;
    // Checked again on the file opened, in case it was replaced in between.
    let meta = file.metadata().map_err(|e| refuse(e.to_string()))?;
    check_private(&meta).map_err(refuse)?;
    let mut text = String::new();
    file.take(MAX_FILE_LEN + 1)
        .read_to_string(&mut text)
        .map_err(|e| refuse(format!("cannot read it as UTF-8 text ({})", e.kind())))?;
    if text.len() as u64 > MAX_FILE_LEN {
        return Err(refuse(format!("it is larger than {MAX_FILE_LEN} bytes")));
    }
    parse_entries(&text).map(Some).map_err(refuse)
}

/// A regular file that only its owner may read or write (on Unix).
fn check_private(meta: &std::fs::Metadata) -> Result<(), String> {
    if !meta.is_file() {
        return Err("it is not a regular file".into());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "it is readable or writable by other users (mode {mode:03o}); make it private with chmod 600"
            ));
        }
    }
    Ok(())
}

/// The entries of a credentials file's text: the `[tokens]` table, each value a
/// string. The reason for a refusal names keys and lines, never values.
fn parse_entries(text: &str) -> Result<Vec<(String, String)>, String> {
    let table: toml::Table = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
        match line {
            Some(line) => format!("line {line}: {}", e.message()),
            None => e.message().to_string(),
        }
    })?;
    let mut entries = Vec::new();
    for (key, value) in table {
        let toml::Value::Table(tokens) = value else {
            return Err(format!(
                "`{key}` is not a table (the file holds a [tokens] table)"
            ));
        };
        if key != "tokens" {
            return Err(format!(
                "unknown table [{key}] (the file holds a [tokens] table)"
            ));
        }
        for (address, token) in tokens {
            let toml::Value::String(token) = token else {
                return Err(format!("the token for {address} is not a string"));
            };
            entries.push((address, token));
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_line_but_never_quote_it() {
        let e = parse_entries("[tokens]\n\"ws://h:1\" = s3cret-unquoted\n").unwrap_err();
        assert!(e.contains("line 2"), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
        let e = parse_entries("[tokens]\n\"ws://h:1\" = 5\n").unwrap_err();
        assert!(e.contains("not a string"), "{e}");
        assert!(parse_entries("[other]\n").is_err());
        let entries = parse_entries("[tokens]\n\"ws://h:1\" = \"t\"\n").unwrap();
        assert_eq!(entries, [("ws://h:1".to_string(), "t".to_string())]);
    }
}
