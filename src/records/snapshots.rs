//! `attention.bin`: the probe's attention at every recorded step.
//!
//! Layout, little-endian: the magic `ATTNSNP1`, a `u32` header length, the header as
//! JSON ([`SnapshotHeader`]), then one record per snapshot: `u64` step followed by
//! `layers * heads * n * n` `f32` weights. Appending a record never rewrites the file,
//! so a run that crashes keeps every snapshot written before.

use std::io::{self, Read, Seek, SeekFrom, Write};

use serde::{Deserialize, Serialize};

const MAGIC: &[u8; 8] = b"ATTNSNP1";

/// Largest header accepted when reading (a damaged length must not allocate gigabytes).
const MAX_HEADER_BYTES: usize = 16 << 20;

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

/// Reads a whole `attention.bin` held in memory (or any stream). A truncated last
/// record (a crash mid-write) is ignored.
pub fn read_snapshots(
    mut input: impl Read,
) -> io::Result<(SnapshotHeader, Vec<AttentionSnapshot>)> {
    let mut bytes = Vec::new();
    input.read_to_end(&mut bytes)?;
    let len = bytes.len() as u64;
    read_snapshots_bounded(io::Cursor::new(bytes), len, u64::MAX)
}

/// Reads an `attention.bin` of `file_len` bytes, allocating at most about `max_bytes`
/// for snapshots: beyond that the records are thinned evenly in time (the first and
/// the last kept). Every header field is checked against the file's size before
/// anything is allocated. A truncated last record is ignored.
pub fn read_snapshots_bounded(
    mut input: impl Read + Seek,
    file_len: u64,
    max_bytes: u64,
) -> io::Result<(SnapshotHeader, Vec<AttentionSnapshot>)> {
    let mut magic = [0u8; 8];
    input.read_exact(&mut magic)?;
    if &magic != MAGIC {
        return Err(invalid("not an attnlab snapshot file".into()));
    }
    let mut len = [0u8; 4];
    input.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_HEADER_BYTES || 12 + len as u64 > file_len {
        return Err(invalid(format!(
            "header length {len} bytes does not fit the file ({file_len} bytes)"
        )));
    }
    let mut json = vec![0u8; len];
    input.read_exact(&mut json)?;
    let header: SnapshotHeader = serde_json::from_slice(&json)?;
    let floats = [header.heads, header.n, header.n]
        .iter()
        .try_fold(header.layers, |acc, &x| acc.checked_mul(x))
        .filter(|&f| f > 0 && f <= (1 << 28) && header.n <= header.seq_len.max(1))
        .ok_or_else(|| invalid(format!("implausible snapshot shape {header:?}")))?;
    let record = 8 + floats as u64 * 4;
    let body = file_len - 12 - len as u64;
    let count = body / record;
    // Keep every `stride`-th record so that at most `max_bytes` are held.
    let stride = (count * record).div_ceil(max_bytes.max(record)).max(1);
    let mut snapshots = Vec::new();
    let mut chunk = vec![0u8; record as usize];
    for i in 0..count {
        let keep = i % stride == 0 || i + 1 == count;
        if !keep {
            input.seek(SeekFrom::Current(record as i64))?;
            continue;
        }
        if input.read_exact(&mut chunk).is_err() {
            break; // the file shrank while reading: keep what was read
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
/// (records are in step order).
pub(crate) fn length_up_to(path: &std::path::Path, step: usize) -> io::Result<u64> {
    let file_len = std::fs::metadata(path)?.len();
    let mut input = io::BufReader::new(std::fs::File::open(path)?);
    let mut head = [0u8; 12];
    input.read_exact(&mut head)?;
    if &head[..8] != MAGIC {
        return Err(invalid("not an attnlab snapshot file".into()));
    }
    let len = u32::from_le_bytes([head[8], head[9], head[10], head[11]]) as u64;
    if len > MAX_HEADER_BYTES as u64 || 12 + len > file_len {
        return Err(invalid("damaged header".into()));
    }
    let mut json = vec![0u8; len as usize];
    input.read_exact(&mut json)?;
    let header: SnapshotHeader = serde_json::from_slice(&json)?;
    let floats = [header.heads, header.n, header.n]
        .iter()
        .try_fold(header.layers, |acc, &x| acc.checked_mul(x))
        .filter(|&f| f > 0 && f <= (1 << 28))
        .ok_or_else(|| invalid(format!("implausible snapshot shape {header:?}")))?;
    let record = 8 + 4 * floats as u64;
    let mut at = 12 + len;
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
}
