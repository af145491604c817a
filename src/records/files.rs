//! Reading and writing the files of a record safely, since a record may come from
//! someone else (hostile input): errors that name the file; writes that a crash never
//! leaves half done and that never follow a symbolic link (a uniquely named temporary
//! file created exclusively beside the target, then renamed over it; appends refuse a
//! link); reads that never block on a FIFO and stop at a bound on the bytes actually
//! read, not on what the metadata says (`/proc/self/pagemap` says 0 bytes and reads out
//! hundreds of gigabytes).

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::config::ConfigErrors;

/// Largest `summary.json`, `config.toml` or `checkpoint/state.json` read back (they
/// are a few KiB).
pub(crate) const MAX_SMALL_FILE: u64 = 1 << 20;
/// Largest `metrics.csv` or `distance.csv` read back (about two million training
/// steps of rows; reading that much of a `/proc` file takes a fraction of a second).
pub(crate) const MAX_TABLE_FILE: u64 = 128 << 20;
/// Longest line of `metrics.csv` or `distance.csv` kept (a row is under 200 bytes);
/// longer lines are skipped as malformed without being held in memory.
pub(crate) const MAX_LINE: usize = 4096;

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
    /// A file is not what a record holds (not a regular file, a symbolic link where a
    /// file is written, implausibly large, not text, a damaged header).
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

pub(super) fn damaged(path: &Path, problem: impl Into<String>) -> RecordError {
    RecordError::Damaged {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

/// Writes `bytes` to `path` so that a reader (or a crash) never sees half a file and
/// nothing but `path` itself is ever written: a temporary file with a unique random
/// name (`.<name>.XXXXXX.tmp`) is created exclusively in the same folder (`O_EXCL`:
/// never through an existing name or link), flushed to disk, then renamed over `path`
/// (a rename replaces a link at `path`, it never writes through it). The file gets the
/// permissions `File::create` would give (`0666` less the umask).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the path does not end in a file name",
        )
    })?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut prefix = OsString::from(".");
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
    let mut tmp = builder.tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Refuses anything at `path` but a plain regular file: a symbolic link (a write
/// would land in the file it names), a FIFO or device, or a file with other hard
/// links (a write would change them too).
fn check_plain(path: &Path, meta: &fs::Metadata) -> Result<(), RecordError> {
    if meta.file_type().is_symlink() {
        return Err(damaged(
            path,
            "is a symbolic link; a record's files are written only in place, never through a link",
        ));
    }
    if !meta.is_file() {
        return Err(damaged(path, "not a regular file"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if meta.nlink() > 1 {
            return Err(damaged(
                path,
                format!(
                    "has {} hard links; a record's files are written only when they have one",
                    meta.nlink()
                ),
            ));
        }
    }
    Ok(())
}

/// Opens the existing regular file `path` with `options` (never creating it), refusing
/// a symbolic link, anything but a regular file and a file with other hard links. The
/// file opened is checked to be the one inspected (same device and inode), so a link
/// swapped in between is refused too. (Without `O_NOFOLLOW` the open itself follows a
/// link swapped in at that instant, but nothing is written through it; a FIFO swapped
/// in at that instant can make the open wait for a reader.)
fn open_plain(path: &Path, options: &mut OpenOptions) -> Result<File, RecordError> {
    let before = fs::symlink_metadata(path).map_err(io_at(path))?;
    check_plain(path, &before)?;
    let file = options
        .create(false)
        .create_new(false)
        .open(path)
        .map_err(io_at(path))?;
    let opened = file.metadata().map_err(io_at(path))?;
    if !opened.is_file() {
        return Err(damaged(path, "not a regular file"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if (before.dev(), before.ino()) != (opened.dev(), opened.ino()) {
            return Err(damaged(path, "was replaced while it was opened"));
        }
    }
    Ok(file)
}

/// Opens a record's existing file to append to (`metrics.csv`, `attention.bin`,
/// `distance.csv`): refused when it is a symbolic link (dangling or not), not a
/// regular file, or has other hard links, so appending never writes elsewhere.
pub(crate) fn open_append(path: &Path) -> Result<File, RecordError> {
    open_plain(path, OpenOptions::new().append(true))
}

/// Opens a record's existing file to rewrite in place (truncate to a length, then
/// write at its end, as resuming does with `attention.bin`), with the refusals of
/// [`open_append`].
pub(crate) fn open_rewrite(path: &Path) -> Result<File, RecordError> {
    open_plain(path, OpenOptions::new().read(true).write(true))
}

/// Creates a record's new file exclusively (`O_CREAT | O_EXCL`): fails when anything
/// already has the name, a symbolic link (even a dangling one) included, so it never
/// writes through one.
pub(crate) fn create_new(path: &Path) -> Result<File, RecordError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io_at(path))
}

/// Opens a record's file to append to, creating it exclusively when nothing has its
/// name; `true` when it was created. A symbolic link at the name, dangling or not, is
/// refused and its target neither created nor written.
pub(crate) fn append_or_create(path: &Path) -> Result<(File, bool), RecordError> {
    match OpenOptions::new().append(true).create_new(true).open(path) {
        Ok(file) => Ok((file, true)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok((open_append(path)?, false)),
        Err(e) => Err(io_at(path)(e)),
    }
}

/// Writes the header of the record's table at `from` and its rows of steps up to
/// `step` (a row's first field) to `to`, replacing it atomically (a link at `to` is
/// replaced, never written through): a fork's copy of its parent's rows, or, with
/// `to` = `from`, a table cut back to a checkpoint. Rows that name no step are left
/// out; at most [`MAX_TABLE_FILE`] bytes are written.
pub(crate) fn rows_through(from: &Path, to: &Path, step: usize) -> Result<(), RecordError> {
    let mut text = Vec::new();
    for (i, line) in table_lines(from)?.enumerate() {
        let line = line?;
        let row_step = std::str::from_utf8(&line)
            .ok()
            .and_then(|l| l.split(',').next())
            .and_then(|s| s.parse::<usize>().ok());
        if i == 0 || row_step.is_some_and(|s| s <= step) {
            text.extend_from_slice(&line);
            text.push(b'\n');
        }
        if text.len() as u64 > MAX_TABLE_FILE {
            break;
        }
    }
    write_atomically(to, &text).map_err(io_at(to))
}

/// The table at `path` cut back to the rows of steps up to `step` (a run resumed
/// from its checkpoint at `step`), by [`rows_through`]; nothing at `path`, nothing to
/// do.
pub(crate) fn keep_rows_through(path: &Path, step: usize) -> Result<(), RecordError> {
    if fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    rows_through(path, path, step)
}

/// A file read with a bound on the bytes actually read: reading past `limit` is an
/// error (`InvalidData`, naming the bound), whatever the file's metadata says.
#[derive(Debug)]
pub struct BoundedFile {
    file: File,
    pos: u64,
    limit: u64,
}

impl BoundedFile {
    fn too_long(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("more than the {} bytes read at most", self.limit),
        )
    }
}

impl Read for BoundedFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let room = self.limit.saturating_sub(self.pos);
        if room == 0 {
            // At the bound: the file must end here. (8 bytes: some kernel files
            // refuse reads of other sizes.)
            let mut probe = [0u8; 8];
            return match self.file.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(self.too_long()),
            };
        }
        let want = usize::try_from(room).map_or(buf.len(), |room| room.min(buf.len()));
        let n = self.file.read(&mut buf[..want])?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for BoundedFile {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let pos = self.file.seek(to)?;
        self.pos = pos;
        Ok(pos)
    }
}

/// Opens `path` for reading only if it is a regular file (not a symbolic link) that its
/// metadata says is at most `max_bytes`: never blocks on a FIFO, never reads a device.
/// Returns the file, whose reads fail past `max_bytes` bytes actually read (a `/proc`
/// file says 0 bytes and reads out more), and the length its metadata gives.
pub(super) fn open_regular(path: &Path, max_bytes: u64) -> Result<(BoundedFile, u64), RecordError> {
    // attnlab never writes a link into a record: one there points somewhere the
    // record's author chose (a kernel file that reads out without end, a secret).
    let link = fs::symlink_metadata(path).map_err(io_at(path))?;
    if link.file_type().is_symlink() {
        return Err(damaged(path, "is a symbolic link (records hold no links)"));
    }
    let meta = fs::metadata(path).map_err(io_at(path))?;
    if !meta.is_file() {
        return Err(damaged(path, "not a regular file"));
    }
    if meta.len() > max_bytes {
        return Err(damaged(
            path,
            format!("{} bytes, more than the {max_bytes} expected", meta.len()),
        ));
    }
    let file = File::open(path).map_err(io_at(path))?;
    // What was opened may have been swapped in after the check.
    let opened = file.metadata().map_err(io_at(path))?;
    if !opened.is_file() || opened.len() > max_bytes {
        return Err(damaged(path, "was replaced while it was opened"));
    }
    let file = BoundedFile {
        file,
        pos: 0,
        limit: max_bytes,
    };
    Ok((file, opened.len()))
}

/// The bytes this user may still write on the file system holding `path` (or its
/// nearest existing folder); `None` where that cannot be told.
pub fn disk_available(path: &Path) -> Option<u64> {
    let existing = path.ancestors().find(|p| p.exists())?;
    #[cfg(unix)]
    {
        let stats = rustix::fs::statvfs(existing).ok()?;
        Some(stats.f_bavail.saturating_mul(stats.f_frsize))
    }
    #[cfg(not(unix))]
    {
        let _ = existing;
        None
    }
}

/// Why `path` is not a file a record may hold: a symbolic link, not a regular file,
/// or (on Unix) a hard link, one file under several names, which attnlab never
/// makes (kept models are copies) and through which a record could read or be made to
/// write a file elsewhere. `None` when it is a plain file.
pub(super) fn not_plain(path: &Path) -> Option<String> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) => return Some(e.to_string()),
    };
    if meta.file_type().is_symlink() {
        return Some("is a symbolic link (records hold no links)".into());
    }
    if !meta.is_file() {
        return Some("not a regular file".into());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if meta.nlink() > 1 {
            return Some(format!(
                "a hard link ({} names for one file; records hold no links)",
                meta.nlink()
            ));
        }
    }
    None
}

/// Reads a small text file (summary, config, checkpoint state) defensively: at most
/// [`MAX_SMALL_FILE`] bytes actually read.
pub(super) fn read_small(path: &Path) -> Result<String, RecordError> {
    let (mut file, _) = open_regular(path, MAX_SMALL_FILE)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io_at(path))?;
    String::from_utf8(bytes).map_err(|_| damaged(path, "not UTF-8 text"))
}

/// The lines of a record's table (`metrics.csv`, `distance.csv`), as bytes without
/// their `\n`: at most [`MAX_TABLE_FILE`] bytes are read (a longer file ends the
/// iteration with an error), and lines longer than [`MAX_LINE`] are skipped without
/// being held in memory.
pub(crate) fn table_lines(path: &Path) -> Result<TableLines, RecordError> {
    let (file, _) = open_regular(path, MAX_TABLE_FILE)?;
    Ok(TableLines {
        input: BufReader::new(file),
        path: path.to_path_buf(),
        done: false,
    })
}

/// The iterator of [`table_lines`].
#[derive(Debug)]
pub(crate) struct TableLines {
    input: BufReader<BoundedFile>,
    path: PathBuf,
    done: bool,
}

impl TableLines {
    /// The next line, `None` for one too long (skipped); `Ok(None)` at the end is
    /// told apart by `self.done`.
    fn next_line(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut line = Vec::new();
        let mut too_long = false;
        loop {
            let buf = match self.input.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if buf.is_empty() {
                self.done = true;
                return Ok((!too_long && !line.is_empty()).then_some(line));
            }
            let (chunk, ends) = match buf.iter().position(|&b| b == b'\n') {
                Some(at) => (&buf[..at], true),
                None => (buf, false),
            };
            if !too_long {
                if line.len() + chunk.len() > MAX_LINE {
                    too_long = true;
                    line = Vec::new();
                } else {
                    line.extend_from_slice(chunk);
                }
            }
            let used = chunk.len() + usize::from(ends);
            self.input.consume(used);
            if ends {
                return Ok((!too_long).then_some(line));
            }
        }
    }
}

impl Iterator for TableLines {
    type Item = Result<Vec<u8>, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            match self.next_line() {
                Ok(Some(line)) => return Some(Ok(line)),
                Ok(None) => {}
                Err(e) => {
                    self.done = true;
                    return Some(Err(io_at(&self.path)(e)));
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_like_split_and_skip_long_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.csv");
        let long = "x".repeat(MAX_LINE + 1);
        std::fs::write(&path, format!("a\n\nb,c\n{long}\nd")).expect("write");
        let lines: Vec<Vec<u8>> = table_lines(&path)
            .expect("opens")
            .collect::<Result<_, _>>()
            .expect("reads");
        assert_eq!(lines, [&b"a"[..], b"", b"b,c", b"d"]);
        std::fs::write(&path, "a\nb\n").expect("write");
        let lines: Vec<Vec<u8>> = table_lines(&path)
            .expect("opens")
            .collect::<Result<_, _>>()
            .expect("reads");
        assert_eq!(lines, [&b"a"[..], b"b"]);
    }

    #[test]
    fn bounded_reads_stop_at_the_bound() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, [7u8; 100]).expect("write");
        let (mut file, len) = open_regular(&path, 100).expect("opens");
        assert_eq!(len, 100);
        let mut all = Vec::new();
        file.read_to_end(&mut all).expect("exactly the bound reads");
        assert_eq!(all.len(), 100);
        let file = File::open(&path).expect("open");
        let mut short = BoundedFile {
            file,
            pos: 0,
            limit: 99,
        };
        assert!(short.read_to_end(&mut Vec::new()).is_err());
    }

    #[test]
    fn atomic_writes_replace_links_and_leave_no_temporary_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.json");
        write_atomically(&path, b"one").expect("write");
        write_atomically(&path, b"two").expect("rewrite");
        assert_eq!(std::fs::read(&path).expect("read"), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["a.json"]);
        #[cfg(unix)]
        {
            let victim = dir.path().join("victim");
            std::fs::write(&victim, "secret").expect("victim");
            let link = dir.path().join("link.json");
            std::os::unix::fs::symlink(&victim, &link).expect("link");
            write_atomically(&link, b"{}").expect("replaces the link");
            assert_eq!(std::fs::read(&victim).expect("victim"), b"secret");
            assert!(!std::fs::symlink_metadata(&link).expect("meta").is_symlink());
            // Appends refuse links, dangling or not, and create nothing.
            let dangling = dir.path().join("d.csv");
            let target = dir.path().join("created");
            std::os::unix::fs::symlink(&target, &dangling).expect("link");
            assert!(append_or_create(&dangling).is_err());
            assert!(!target.exists());
            std::os::unix::fs::symlink(&victim, dir.path().join("e.csv")).expect("link");
            assert!(open_append(&dir.path().join("e.csv")).is_err());
            assert!(open_rewrite(&dir.path().join("e.csv")).is_err());
            assert!(create_new(&dir.path().join("e.csv")).is_err());
            assert_eq!(std::fs::read(&victim).expect("victim"), b"secret");
        }
    }
}
