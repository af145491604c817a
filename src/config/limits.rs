//! How much memory this process can still get: the smallest of what the machine has
//! free (`MemAvailable`), what its cgroup v2 (and every cgroup above it) allows
//! beyond what it uses, and its `RLIMIT_AS` / `RLIMIT_DATA` soft limits less what it
//! has already mapped. Each source is read from `/proc` or `/sys` with a bounded
//! read; a source that cannot be read or parsed is unknown and left out, and when
//! none is known neither is the answer.
//!
//! The parsers take the files' text, so they are tested with strings.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The most read of any one file: these are all a few KB.
const MAX_READ: u64 = 64 * 1024;

/// Where the cgroup v2 hierarchy is mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Which limit bounds the memory available to this process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemorySource {
    /// The machine's `MemAvailable` (`/proc/meminfo`).
    MemAvailable,
    /// A cgroup v2 `memory.max`, less the group's `memory.current` (reclaimable
    /// page cache not counted as used).
    Cgroup,
    /// The soft `RLIMIT_AS`, less the address space already mapped (`VmSize`).
    AddressSpace,
    /// The soft `RLIMIT_DATA`, less the data already mapped (`VmData`).
    DataSize,
}

impl MemorySource {
    /// The name a user would look up: `MemAvailable`, `cgroup memory.max`,
    /// `RLIMIT_AS`, `RLIMIT_DATA`.
    pub fn label(self) -> &'static str {
        match self {
            Self::MemAvailable => "MemAvailable",
            Self::Cgroup => "cgroup memory.max",
            Self::AddressSpace => "RLIMIT_AS",
            Self::DataSize => "RLIMIT_DATA",
        }
    }
}

impl fmt::Display for MemorySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The memory this process can get now and the limit that sets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryLimit {
    /// Bytes.
    pub bytes: u64,
    /// The smallest of the known limits.
    pub source: MemorySource,
}

/// The memory this process can get now, and from which limit, if any is known.
pub fn memory_limit() -> Option<MemoryLimit> {
    let limits = read_bounded(Path::new("/proc/self/limits"));
    let status = read_bounded(Path::new("/proc/self/status"));
    let rlimit = |name: &str, used: &str, source| {
        let limit = soft_rlimit(limits.as_deref()?, name)?;
        let used = status
            .as_deref()
            .and_then(|s| kb_field(s, used))
            .unwrap_or(0);
        Some(MemoryLimit {
            bytes: limit.saturating_sub(used),
            source,
        })
    };
    let candidates = [
        read_bounded(Path::new("/proc/meminfo"))
            .and_then(|t| kb_field(&t, "MemAvailable"))
            .map(|bytes| MemoryLimit {
                bytes,
                source: MemorySource::MemAvailable,
            }),
        cgroup_available().map(|bytes| MemoryLimit {
            bytes,
            source: MemorySource::Cgroup,
        }),
        rlimit("Max address space", "VmSize", MemorySource::AddressSpace),
        rlimit("Max data size", "VmData", MemorySource::DataSize),
    ];
    candidates.into_iter().flatten().min_by_key(|l| l.bytes)
}

/// Memory this process can get now (the bytes of [`memory_limit`]), if known.
pub fn available_memory() -> Option<u64> {
    memory_limit().map(|l| l.bytes)
}

/// The file's text, at most [`MAX_READ`] bytes of it; `None` if it cannot be read.
fn read_bounded(path: &Path) -> Option<String> {
    let file = std::fs::File::open(path).ok()?;
    let mut bytes = Vec::new();
    file.take(MAX_READ).read_to_end(&mut bytes).ok()?;
    String::from_utf8(bytes).ok()
}

/// The headroom of this process's cgroup v2 and every cgroup above it (each
/// `memory.max` less its usage), the smallest; `None` where no level has a limit.
fn cgroup_available() -> Option<u64> {
    let own = read_bounded(Path::new("/proc/self/cgroup"))?;
    let relative = cgroup_v2_path(&own)?;
    let root = Path::new(CGROUP_ROOT);
    let mut dir = root.join(relative);
    let mut smallest: Option<u64> = None;
    loop {
        let read = |name: &str| read_bounded(&dir.join(name));
        if let (Some(max), Some(current)) = (read("memory.max"), read("memory.current"))
            && let Some(room) = cgroup_headroom(&max, &current, read("memory.stat").as_deref())
        {
            smallest = Some(smallest.map_or(room, |s| s.min(room)));
        }
        if dir == root || !dir.pop() || !dir.starts_with(root) {
            return smallest;
        }
    }
}

/// The process's cgroup v2 path relative to the hierarchy's root, from the text of
/// `/proc/self/cgroup` (its `0::/path` line); `None` without one. A path that climbs
/// (`..`, seen from outside the process's cgroup namespace) is not followed.
fn cgroup_v2_path(proc_self_cgroup: &str) -> Option<PathBuf> {
    let path = proc_self_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))?
        .trim();
    let relative = PathBuf::from(path.trim_start_matches('/'));
    let climbs = relative
        .components()
        .any(|c| !matches!(c, std::path::Component::Normal(_)));
    Some(if climbs { PathBuf::new() } else { relative })
}

/// A cgroup's `memory.max` in bytes; `None` for `max` (no limit) or unparsable text.
fn cgroup_limit(memory_max: &str) -> Option<u64> {
    memory_max.trim().parse().ok()
}

/// What a cgroup can still give: `memory.max` less `memory.current`, counting the
/// group's inactive page cache (`inactive_file` of `memory.stat`, which the kernel
/// reclaims before failing an allocation) as free. `None` when there is no limit or
/// a file does not parse.
fn cgroup_headroom(
    memory_max: &str,
    memory_current: &str,
    memory_stat: Option<&str>,
) -> Option<u64> {
    let max = cgroup_limit(memory_max)?;
    let current: u64 = memory_current.trim().parse().ok()?;
    let reclaimable = memory_stat
        .and_then(|s| stat_field(s, "inactive_file"))
        .unwrap_or(0);
    Some(max.saturating_sub(current.saturating_sub(reclaimable)))
}

/// A `key value` line's value (`memory.stat`), in the file's unit (bytes).
fn stat_field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let mut words = l.split_whitespace();
        if words.next() != Some(key) {
            return None;
        }
        words.next()?.parse().ok()
    })
}

/// A `Key:   123 kB` line's value in bytes (`/proc/meminfo`, `/proc/self/status`).
fn kb_field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?.strip_prefix(':')?;
        let kb: u64 = rest.split_whitespace().next()?.parse().ok()?;
        kb.checked_mul(1024)
    })
}

/// The soft limit, in bytes, of the `/proc/self/limits` line named `name` (`Max
/// address space`); `None` for `unlimited`, a missing line or unparsable text.
fn soft_rlimit(limits: &str, name: &str) -> Option<u64> {
    limits.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?;
        // `Max data size` must not match a longer name that starts with it.
        if !rest.starts_with(char::is_whitespace) {
            return None;
        }
        rest.split_whitespace().next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: &str = "\
Limit                     Soft Limit           Hard Limit           Units     
Max cpu time              unlimited            unlimited            seconds   
Max data size             unlimited            unlimited            bytes     
Max stack size            8388608              unlimited            bytes     
Max address space         2147483648           4294967296           bytes     
Max locked memory         8388608              8388608              bytes     
";

    #[test]
    fn meminfo_and_status_fields_are_read_in_kb() {
        let meminfo = "MemTotal:       16318480 kB\nMemFree:          812344 kB\n\
                       MemAvailable:    7654321 kB\nBuffers:  1 kB\n";
        assert_eq!(kb_field(meminfo, "MemAvailable"), Some(7_654_321 * 1024));
        assert_eq!(kb_field(meminfo, "MemFree"), Some(812_344 * 1024));
        assert_eq!(kb_field(meminfo, "Mem"), None, "a prefix is not a key");
        assert_eq!(kb_field("MemAvailable: lots\n", "MemAvailable"), None);
        assert_eq!(kb_field("", "MemAvailable"), None);
        let status =
            "Name:\tattnlab\nVmPeak:\t  400000 kB\nVmSize:\t  391000 kB\nVmData:\t 12000 kB\n";
        assert_eq!(kb_field(status, "VmSize"), Some(391_000 * 1024));
        assert_eq!(kb_field(status, "VmData"), Some(12_000 * 1024));
    }

    #[test]
    fn cgroup_max_is_no_limit_and_a_number_is_one() {
        assert_eq!(cgroup_limit("max\n"), None);
        assert_eq!(cgroup_limit("1073741824\n"), Some(1 << 30));
        assert_eq!(cgroup_limit("garbage"), None);
        assert_eq!(cgroup_headroom("max\n", "123\n", None), None);
        assert_eq!(
            cgroup_headroom("1073741824\n", "268435456\n", None),
            Some(768 << 20)
        );
        let stat = "anon 100\nfile 300\ninactive_file 200\nactive_file 100\n";
        assert_eq!(cgroup_headroom("1000\n", "900\n", Some(stat)), Some(300));
        assert_eq!(
            cgroup_headroom("1000\n", "1500\n", None),
            Some(0),
            "over: none"
        );
        assert_eq!(cgroup_headroom("1000\n", "", None), None);
    }

    #[test]
    fn the_cgroup_v2_line_gives_the_path() {
        let hybrid = "4:memory:/docker/abc\n1:cpu:/\n0::/user.slice/app.scope\n";
        assert_eq!(
            cgroup_v2_path(hybrid),
            Some(PathBuf::from("user.slice/app.scope"))
        );
        assert_eq!(cgroup_v2_path("0::/\n"), Some(PathBuf::new()));
        assert_eq!(cgroup_v2_path("0::/../../x\n"), Some(PathBuf::new()));
        assert_eq!(cgroup_v2_path("4:memory:/docker/abc\n"), None, "v1 only");
    }

    #[test]
    fn limits_give_the_soft_limit_and_unlimited_is_none() {
        assert_eq!(soft_rlimit(LIMITS, "Max address space"), Some(1 << 31));
        assert_eq!(soft_rlimit(LIMITS, "Max data size"), None);
        assert_eq!(soft_rlimit(LIMITS, "Max stack size"), Some(8 << 20));
        assert_eq!(
            soft_rlimit(LIMITS, "Max data"),
            None,
            "a prefix is not a name"
        );
        assert_eq!(soft_rlimit("", "Max address space"), None);
    }

    #[test]
    fn this_process_has_some_limit_on_linux() {
        if cfg!(target_os = "linux") {
            let limit = memory_limit().expect("MemAvailable at least");
            assert!(limit.bytes > 0, "{limit:?}");
        }
    }
}
