//! `attention.bin`: the probe's attention at every recorded step.
//!
//! Layout, little-endian: the magic `ATTNSNP1`, a `u32` header length, the header as
//! JSON ([`SnapshotHeader`]), then one record per snapshot: `u64` step followed by
//! `layers * heads * n * n` `f32` weights. Appending a record never rewrites the file,
//! so a run that crashes keeps every snapshot written before.

use std::io::{self, Read, Seek, SeekFrom, Write};

use serde::{Deserialize, Serialize};

use crate::config::fields::{self, Access, Field};

const MAGIC: &[u8; 8] = b"ATTNSNP1";

/// Largest header accepted when reading (a damaged length must not allocate gigabytes).
const MAX_HEADER_BYTES: u64 = 16 << 20;

/// The probe example whose attention is snapshotted.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    /// Input tokens.
    pub tokens: Vec<i64>,
    /// `(query, key)`: where each answer must come from.
    pub dependencies: Vec<(usize, usize)>,
}

/// The attention of every layer and head on the probe example at one step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttentionSnapshot {
    /// Optimiser steps done when it was taken.
    pub step: usize,
    /// Layers.
    pub layers: usize,
    /// Heads per layer.
    pub heads: usize,
    /// Side of each stored map: the sequence length, or less when downsampled.
    pub n: usize,
    /// The probe's sequence length (`n` < `seq_len` means each cell averages a tile).
    pub seq_len: usize,
    /// `[layers][heads][n][n]`, row = query, column = key; each row sums to 1.
    pub weights: Vec<f32>,
}

impl AttentionSnapshot {
    /// The `n x n` map of one layer and head (empty when out of range).
    pub fn map(&self, layer: usize, head: usize) -> &[f32] {
        let size = self.n * self.n;
        let start = (layer * self.heads + head) * size;
        self.weights.get(start..start + size).unwrap_or(&[])
    }
}

/// What every snapshot of a run shares.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SnapshotHeader {
    /// Layers.
    pub layers: usize,
    /// Heads per layer.
    pub heads: usize,
    /// Side of each stored map.
    pub n: usize,
    /// The probe's sequence length.
    pub seq_len: usize,
    /// The probe example.
    pub probe: Probe,
}

/// Writes the magic and the header.
pub(crate) fn write_header(out: &mut impl Write, header: &SnapshotHeader) -> io::Result<()> {
    let json = serde_json::to_vec(header)?;
    out.write_all(MAGIC)?;
    out.write_all(&(json.len() as u32).to_le_bytes())?;
    out.write_all(&json)
}

/// Appends one snapshot record.
pub(crate) fn write_record(out: &mut impl Write, snapshot: &AttentionSnapshot) -> io::Result<()> {
    out.write_all(&(snapshot.step as u64).to_le_bytes())?;
    let mut bytes = Vec::with_capacity(snapshot.weights.len() * 4);
    for w in &snapshot.weights {
        bytes.extend_from_slice(&w.to_le_bytes());
    }
    out.write_all(&bytes)
}

/// The most bytes [`read_snapshots`] reads from a stream.
const MAX_STREAM_BYTES: u64 = 1 << 30;

/// Largest side of a stored map, and of every map a snapshot sends: longer probes are
/// averaged down to this (`inspect::attention_snapshot`). Defined here, the lowest
/// layer that needs it.
pub const MAX_SNAPSHOT_SIDE: usize = 256;

/// Most `f32` weights in one snapshot record (1 GiB); longer records are refused.
const MAX_FLOATS: usize = 1 << 28;

/// The largest value the field registry allows for an integer field.
fn registry_max(field: &Field) -> usize {
    match field.access {
        Access::Int { max, .. } => usize::try_from(max).unwrap_or(usize::MAX),
        _ => usize::MAX,
    }
}

/// Why a snapshot header is not one a run could have written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// A size field is zero or beyond what a run writes.
    #[error("header field {name} = {value} is outside what a run writes (1 to {max})")]
    OutOfRange {
        /// The field.
        name: &'static str,
        /// Its value.
        value: usize,
        /// The most a run writes.
        max: usize,
    },
    /// The probe is longer than the sequence.
    #[error("the probe has {tokens} tokens, more than seq_len = {seq_len}")]
    LongProbe {
        /// Probe tokens.
        tokens: usize,
        /// The header's sequence length.
        seq_len: usize,
    },
    /// A dependency of the probe lies outside the sequence.
    #[error("the probe's dependencies do not fit seq_len = {seq_len}")]
    Dependencies {
        /// The header's sequence length.
        seq_len: usize,
    },
    /// More weights per snapshot than are ever read.
    #[error("{layers} x {heads} x {n} x {n} weights per snapshot, more than the {MAX_FLOATS} read")]
    TooManyWeights {
        /// Layers.
        layers: usize,
        /// Heads per layer.
        heads: usize,
        /// Map side.
        n: usize,
    },
}

impl SnapshotHeader {
    /// Checks every field against what a valid run can write (the field registry's
    /// bounds for `layers`, `heads` and `seq_len`; a side of at most 256 and at most
    /// `seq_len`; a probe of at most `seq_len` tokens whose dependencies lie inside
    /// it) and returns the number of weights per snapshot. Nothing is allocated from
    /// a header before this passes.
    pub fn check(&self) -> Result<usize, HeaderError> {
        let limits = [
            ("layers", self.layers, registry_max(&fields::LAYERS)),
            ("heads", self.heads, registry_max(&fields::HEADS)),
            ("seq_len", self.seq_len, registry_max(&fields::SEQ_LEN)),
            ("n", self.n, MAX_SNAPSHOT_SIDE.min(self.seq_len)),
        ];
        for (name, value, max) in limits {
            if value == 0 || value > max {
                return Err(HeaderError::OutOfRange { name, value, max });
            }
        }
        if self.probe.tokens.len() > self.seq_len {
            return Err(HeaderError::LongProbe {
                tokens: self.probe.tokens.len(),
                seq_len: self.seq_len,
            });
        }
        if self.probe.dependencies.len() > self.seq_len
            || self
                .probe
                .dependencies
                .iter()
                .any(|&(q, k)| q >= self.seq_len || k >= self.seq_len)
        {
            return Err(HeaderError::Dependencies {
                seq_len: self.seq_len,
            });
        }
        let floats = [self.heads, self.n, self.n]
            .iter()
            .try_fold(self.layers, |acc, &x| acc.checked_mul(x))
            .unwrap_or(usize::MAX);
        if floats > MAX_FLOATS {
            return Err(HeaderError::TooManyWeights {
                layers: self.layers,
                heads: self.heads,
                n: self.n,
            });
        }
        Ok(floats)
    }
}

/// Reads the magic and the header of an `attention.bin` of `file_len` bytes, checking
/// every field; returns the header, the weights per snapshot and the header's end.
fn read_header(input: &mut impl Read, file_len: u64) -> io::Result<(SnapshotHeader, usize, u64)> {
    let mut head = [0u8; 12];
    input.read_exact(&mut head)?;
    if &head[..8] != MAGIC {
        return Err(invalid("not an attnlab snapshot file".into()));
    }
    let len = u64::from(u32::from_le_bytes([head[8], head[9], head[10], head[11]]));
    if len > MAX_HEADER_BYTES || 12 + len > file_len {
        return Err(invalid(format!(
            "header length {len} bytes does not fit the file ({file_len} bytes)"
        )));
    }
    // Grown only as bytes arrive: a file shorter than it said allocates no more.
    let mut json = Vec::new();
    input.take(len).read_to_end(&mut json)?;
    if json.len() as u64 != len {
        return Err(invalid("the header is cut short".into()));
    }
    let header: SnapshotHeader = serde_json::from_slice(&json)?;
    let floats = header
        .check()
        .map_err(|e| invalid(format!("implausible snapshot header: {e}")))?;
    Ok((header, floats, 12 + len))
}

/// Reads a whole `attention.bin` held in memory (or any stream, at most 1 GiB of
/// it). A truncated last record (a crash mid-write) is ignored.
pub fn read_snapshots(input: impl Read) -> io::Result<(SnapshotHeader, Vec<AttentionSnapshot>)> {
    let mut bytes = Vec::new();
    input.take(MAX_STREAM_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_STREAM_BYTES {
        return Err(invalid(format!(
            "more than {MAX_STREAM_BYTES} bytes of snapshots"
        )));
    }
    let len = bytes.len() as u64;
    read_snapshots_bounded(io::Cursor::new(bytes), len, u64::MAX)
}

/// Reads an `attention.bin` of `file_len` bytes, allocating at most about `max_bytes`
/// for snapshots: beyond that the records are thinned evenly in time (the first and
/// the last kept). Every header field is checked against what a valid run writes
/// ([`SnapshotHeader::check`]) and against the file's size before anything is
/// allocated from it, no more than `file_len` bytes are read, and buffers grow only
/// with the bytes actually read. A truncated last record is ignored.
pub fn read_snapshots_bounded(
    mut input: impl Read + Seek,
    file_len: u64,
    max_bytes: u64,
) -> io::Result<(SnapshotHeader, Vec<AttentionSnapshot>)> {
    let (header, floats, body_start) = read_header(&mut input, file_len)?;
    let record = 8 + floats as u64 * 4;
    let count = (file_len - body_start) / record;
    // Keep every `stride`-th record so that at most `max_bytes` are held.
    let stride = (count * record).div_ceil(max_bytes.max(record)).max(1);
    let mut snapshots = Vec::new();
    for i in 0..count {
        let keep = i % stride == 0 || i + 1 == count;
        if !keep {
            input.seek(SeekFrom::Current(record as i64))?;
            continue;
        }
        let mut chunk = Vec::new();
        match (&mut input).take(record).read_to_end(&mut chunk) {
            Ok(_) if chunk.len() as u64 == record => {}
            // The file shrank while reading (or could not be read on): keep what was read.
            _ => break,
        }
        let (step, weights) = chunk.split_at(8);
        let mut step_bytes = [0u8; 8];
        step_bytes.copy_from_slice(step);
        snapshots.push(AttentionSnapshot {
            step: u64::from_le_bytes(step_bytes) as usize,
            layers: header.layers,
            heads: header.heads,
            n: header.n,
            seq_len: header.seq_len,
            weights: weights
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        });
    }
    Ok((header, snapshots))
}

/// The length of `attention.bin` keeping only the records of steps up to `step`
/// (records are in step order). Called before the file is cut to that length, so a
/// symbolic link, anything but a regular file and a damaged header are refused.
pub(crate) fn length_up_to(path: &std::path::Path, step: usize) -> io::Result<u64> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() || !meta.is_file() {
        return Err(invalid(
            "not a regular file (a symbolic link or a device); a record's files are written only in place".into(),
        ));
    }
    let file = std::fs::File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut input = io::BufReader::new(file);
    let (_, floats, body_start) = read_header(&mut input, file_len)?;
    let record = 8 + 4 * floats as u64;
    let mut at = body_start;
    while at + record <= file_len {
        let mut step_bytes = [0u8; 8];
        input.read_exact(&mut step_bytes)?;
        if u64::from_le_bytes(step_bytes) as usize > step {
            break;
        }
        input.seek_relative(record as i64 - 8)?;
        at += record;
    }
    Ok(at)
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let header = SnapshotHeader {
            layers: 2,
            heads: 3,
            n: 4,
            seq_len: 4,
            probe: Probe {
                tokens: vec![1, 2, 3, 4],
                dependencies: vec![(3, 1)],
            },
        };
        let snap = |step: usize| AttentionSnapshot {
            step,
            layers: 2,
            heads: 3,
            n: 4,
            seq_len: 4,
            weights: (0..96).map(|i| (i + step) as f32 / 7.0).collect(),
        };
        let mut bytes = Vec::new();
        write_header(&mut bytes, &header).unwrap();
        write_record(&mut bytes, &snap(0)).unwrap();
        write_record(&mut bytes, &snap(50)).unwrap();
        let (h, s) = read_snapshots(&bytes[..]).unwrap();
        assert_eq!(h, header);
        assert_eq!(s, vec![snap(0), snap(50)]);
        bytes.truncate(bytes.len() - 10);
        let (_, s) = read_snapshots(&bytes[..]).unwrap();
        assert_eq!(s, vec![snap(0)]);
        assert!(read_snapshots(&b"garbage!garbage"[..]).is_err());
        // Thinned to a byte budget: the first and the last kept.
        let mut many = Vec::new();
        write_header(&mut many, &header).unwrap();
        for step in 0..10 {
            write_record(&mut many, &snap(step)).unwrap();
        }
        let len = many.len() as u64;
        let record = 8 + 96 * 4;
        let (_, thin) =
            read_snapshots_bounded(io::Cursor::new(many), len, 3 * record as u64).unwrap();
        let steps: Vec<usize> = thin.iter().map(|s| s.step).collect();
        assert_eq!(steps, [0, 4, 8, 9]);
        // A damaged header length is refused without allocating it.
        let mut damaged = MAGIC.to_vec();
        damaged.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(read_snapshots(&damaged[..]).is_err());
    }

    #[test]
    fn headers_beyond_what_a_run_writes_are_refused() {
        let ok = SnapshotHeader {
            layers: 2,
            heads: 4,
            n: 256,
            seq_len: 8192,
            probe: Probe {
                tokens: vec![0; 8192],
                dependencies: vec![(8191, 0)],
            },
        };
        assert_eq!(ok.check(), Ok(2 * 4 * 256 * 256));
        let bad = [
            SnapshotHeader {
                seq_len: 1 << 40,
                n: 1,
                ..ok.clone()
            },
            SnapshotHeader {
                n: 1 << 20,
                seq_len: 1 << 20,
                ..ok.clone()
            },
            SnapshotHeader {
                n: 257,
                ..ok.clone()
            },
            SnapshotHeader {
                layers: 49,
                ..ok.clone()
            },
            SnapshotHeader {
                heads: 0,
                ..ok.clone()
            },
            SnapshotHeader {
                seq_len: 16,
                n: 16,
                ..ok.clone()
            },
            SnapshotHeader {
                probe: Probe {
                    tokens: vec![],
                    dependencies: vec![(9000, 0)],
                },
                ..ok.clone()
            },
        ];
        for header in bad {
            assert!(header.check().is_err(), "{header:?}");
            let json = serde_json::to_vec(&header).unwrap();
            let mut bytes = MAGIC.to_vec();
            bytes.extend_from_slice(&(json.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&json);
            bytes.extend_from_slice(&[0u8; 64]);
            assert!(read_snapshots(&bytes[..]).is_err());
        }
    }
}
