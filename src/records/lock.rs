//! One writer per record: `writer.lock` in the record's folder, locked exclusively
//! (`File::try_lock`: `flock` on Unix) by whoever writes the record, a fresh run or a
//! resumed one, for as long as it writes, and holding that writer's process id so a
//! second writer is refused with it. The lock belongs to the open file, so a writer
//! that ends, however it ends, leaves the file behind but never the lock: a stale
//! `writer.lock` blocks nobody.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

use super::files::{RecordError, io_at};

/// The lock file's name in a record folder.
pub const LOCK_FILE: &str = "writer.lock";

/// The most bytes of a lock file read back (a process id and a newline).
const MAX_LOCK_BYTES: u64 = 64;

/// The exclusive right to write one record, held until dropped.
#[derive(Debug)]
pub struct RecordLock {
    /// The record's folder.
    dir: PathBuf,
    /// The lock file, locked.
    file: File,
}

impl RecordLock {
    /// Locks the record in `dir` for writing, creating its lock file when it has none
    /// (never through a link). Refused, naming the holder's process id, while another
    /// writer, in this process or another, holds it. Writes nothing: see
    /// [`Self::claim`].
    pub fn acquire(dir: &Path) -> Result<Self, RecordError> {
        let path = dir.join(LOCK_FILE);
        let mut file = open_lock_file(&path)?;
        match file.try_lock() {
            Ok(()) => Ok(Self {
                dir: dir.to_path_buf(),
                file,
            }),
            Err(TryLockError::WouldBlock) => Err(RecordError::Io {
                source: io::Error::new(io::ErrorKind::WouldBlock, held_by(&mut file)),
                path,
            }),
            Err(TryLockError::Error(e)) => Err(io_at(&path)(e)),
        }
    }

    /// The record's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes this process's id into the lock file, for a writer refused meanwhile to
    /// name (done once the record is known to be writable, so a refused resume leaves
    /// even the lock file as it was).
    pub fn claim(&mut self) -> Result<(), RecordError> {
        write_pid(&mut self.file).map_err(io_at(&self.dir.join(LOCK_FILE)))
    }
}

impl Drop for RecordLock {
    fn drop(&mut self) {
        // Ignored: closing the file, just after, releases the lock anyway.
        let _ = self.file.unlock();
    }
}

/// Opens (or creates) the lock file for reading and writing: created exclusively when
/// absent (a link there, even a dangling one, is never followed), and otherwise opened
/// only if it is a regular file.
fn open_lock_file(path: &Path) -> Result<File, RecordError> {
    let options = || OpenOptions::new().read(true).write(true).to_owned();
    match options().create_new(true).open(path) {
        Ok(file) => return Ok(file),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_at(path)(e)),
    }
    let meta = fs::symlink_metadata(path).map_err(io_at(path))?;
    if !meta.file_type().is_file() {
        return Err(RecordError::Damaged {
            path: path.to_path_buf(),
            problem: "not a regular file (a link or a folder where the record's lock file goes)"
                .into(),
        });
    }
    let file = options().open(path).map_err(io_at(path))?;
    #[cfg(unix)]
    {
        // Swapped for a link between the check and the open: refused.
        use std::os::unix::fs::MetadataExt;
        let opened = file.metadata().map_err(io_at(path))?;
        if (opened.dev(), opened.ino()) != (meta.dev(), meta.ino()) {
            return Err(RecordError::Damaged {
                path: path.to_path_buf(),
                problem: "changed while it was opened".into(),
            });
        }
        // A hard link: the lock's pid would be written into a file someone else
        // named (issue 35, case 8). The lock this process makes has one name only.
        if opened.nlink() > 1 {
            return Err(RecordError::Damaged {
                path: path.to_path_buf(),
                problem: format!(
                    "a hard link ({} names for one file): the lock is refused, so nothing is written through it",
                    opened.nlink()
                ),
            });
        }
    }
    Ok(file)
}

/// Replaces the lock file's text with this process's id.
fn write_pid(file: &mut File) -> io::Result<()> {
    file.set_len(0)?;
    file.seek(io::SeekFrom::Start(0))?;
    file.write_all(format!("{}\n", std::process::id()).as_bytes())?;
    file.sync_data()
}

/// The process id the lock's holder wrote, if it is readable.
fn holder_pid(file: &mut File) -> Option<u32> {
    file.seek(io::SeekFrom::Start(0)).ok()?;
    let mut text = String::new();
    Read::take(&mut *file, MAX_LOCK_BYTES)
        .read_to_string(&mut text)
        .ok()?;
    text.trim().parse().ok()
}

/// Who holds the lock, in words, from the process id its holder wrote.
fn held_by(file: &mut File) -> String {
    // A holder writes its id only once it has checked the record: give it a moment.
    let mut pid = holder_pid(file);
    for _ in 0..25 {
        if pid.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        pid = holder_pid(file);
    }
    match pid {
        Some(pid) if pid == std::process::id() => {
            format!("another run of this process (pid {pid}) is writing this record")
        }
        Some(pid) => format!("another process (pid {pid}) is writing this record"),
        None => "another process is writing this record".into(),
    }
}
