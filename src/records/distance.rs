//! Held-out accuracy by dependency distance: at each evaluation, how many answers
//! whose source lies `d` positions back were predicted right. Recorded as
//! `distance.csv` (`step,distance,correct,total`), one row per step and distance.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::files::{RecordError, append_or_create, io_at, keep_rows_through, table_lines};

/// The file in a record folder.
pub const FILE: &str = "distance.csv";
const HEADER: &str = "step,distance,correct,total\n";

/// Answers at one distance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DistanceCount {
    /// Query position minus the key position the answer must be read from.
    pub distance: usize,
    /// Answers predicted exactly.
    pub correct: usize,
    /// Answers counted.
    pub total: usize,
}

impl DistanceCount {
    /// Fraction right (0 when none were counted).
    pub fn accuracy(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.correct as f64 / self.total as f64
        }
    }
}

/// Accuracy by distance at one evaluation, distances ascending.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DistanceAccuracy {
    /// The step evaluated.
    pub step: usize,
    /// One entry per distance that occurred.
    pub counts: Vec<DistanceCount>,
}

impl DistanceAccuracy {
    /// Tallies predictions: `distances[i]` is position `i`'s dependency distance
    /// (ignored where `targets[i]` is negative, i.e. no answer is asked there).
    pub fn tally(step: usize, predicted: &[i64], targets: &[i64], distances: &[u32]) -> Self {
        let mut by: BTreeMap<usize, (usize, usize)> = BTreeMap::new();
        for ((p, t), d) in predicted.iter().zip(targets).zip(distances) {
            if *t < 0 {
                continue;
            }
            let entry = by.entry(*d as usize).or_default();
            entry.0 += usize::from(p == t);
            entry.1 += 1;
        }
        Self::from_map(step, by)
    }

    /// The tally of `step` from `(correct, total)` per distance.
    pub(super) fn from_map(step: usize, by: BTreeMap<usize, (usize, usize)>) -> Self {
        Self {
            step,
            counts: by
                .into_iter()
                .map(|(distance, (correct, total))| DistanceCount {
                    distance,
                    correct,
                    total,
                })
                .collect(),
        }
    }

    /// Adds another tally of the same step (e.g. the next evaluation batch).
    pub fn merge(&mut self, other: &DistanceAccuracy) {
        let mut by: BTreeMap<usize, (usize, usize)> = self
            .counts
            .iter()
            .map(|c| (c.distance, (c.correct, c.total)))
            .collect();
        for c in &other.counts {
            let entry = by.entry(c.distance).or_default();
            entry.0 += c.correct;
            entry.1 += c.total;
        }
        *self = Self::from_map(self.step, by);
    }

    /// Counts merged into buckets of `width` distances (`width` 1: unchanged); each
    /// bucket is named by its largest distance.
    pub fn bucketed(&self, width: usize) -> Vec<DistanceCount> {
        let width = width.max(1);
        let mut by: BTreeMap<usize, (usize, usize)> = BTreeMap::new();
        for c in &self.counts {
            let top = (c.distance.saturating_sub(1) / width + 1) * width;
            let entry = by
                .entry(if width == 1 { c.distance } else { top })
                .or_default();
            entry.0 += c.correct;
            entry.1 += c.total;
        }
        Self::from_map(self.step, by).counts
    }

    /// Overall accuracy.
    pub fn accuracy(&self) -> f64 {
        let (c, t) = self
            .counts
            .iter()
            .fold((0, 0), |(c, t), d| (c + d.correct, t + d.total));
        DistanceCount {
            distance: 0,
            correct: c,
            total: t,
        }
        .accuracy()
    }
}

/// Appends one evaluation's rows to the record in `dir`, creating the file
/// exclusively the first time; a symbolic link at its name (dangling or not) is
/// refused, its target neither created nor written.
pub fn append(dir: &Path, tally: &DistanceAccuracy) -> Result<(), RecordError> {
    let path = dir.join(FILE);
    let (mut file, fresh) = append_or_create(&path)?;
    let mut text = String::new();
    if fresh {
        text.push_str(HEADER);
    }
    for c in &tally.counts {
        text.push_str(&format!(
            "{},{},{},{}\n",
            tally.step, c.distance, c.correct, c.total
        ));
    }
    file.write_all(text.as_bytes()).map_err(io_at(&path))
}

/// Drops rows after `step` (a run resumed from a checkpoint at `step`). The file is
/// replaced atomically (a link at its name is replaced, never written through).
pub fn truncate_after(dir: &Path, step: usize) -> Result<(), RecordError> {
    keep_rows_through(&dir.join(FILE), step)
}

/// Every evaluation's accuracy by distance, steps ascending; empty when the record has
/// none (older records, the LSTM). Malformed lines (and lines over
/// [`super::files::MAX_LINE`] bytes) are skipped; a file of more than
/// [`super::files::MAX_TABLE_FILE`] bytes actually read is refused.
pub fn read(dir: &Path) -> Result<Vec<DistanceAccuracy>, RecordError> {
    let path = dir.join(FILE);
    match fs::metadata(&path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_at(&path)(e)),
        Ok(_) => {}
    }
    let mut steps: BTreeMap<usize, BTreeMap<usize, (usize, usize)>> = BTreeMap::new();
    for line in table_lines(&path)?.skip(1) {
        let line = line?;
        let Ok(line) = std::str::from_utf8(&line) else {
            continue;
        };
        let f: Vec<usize> = line
            .trim_end()
            .split(',')
            .filter_map(|v| v.parse().ok())
            .collect();
        let [step, distance, correct, total] = f[..] else {
            continue;
        };
        if correct > total {
            continue;
        }
        let entry = steps.entry(step).or_default().entry(distance).or_default();
        entry.0 += correct;
        entry.1 += total;
    }
    Ok(steps
        .into_iter()
        .map(|(step, by)| DistanceAccuracy::from_map(step, by))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_bucket_write_and_read_back() {
        let predicted = [1, 2, 3, 4, 5, 6];
        let targets = [1, -1, 0, 4, 5, 0];
        let distances = [2, 0, 2, 8, 9, 9];
        let t = DistanceAccuracy::tally(10, &predicted, &targets, &distances);
        let at = |d: usize| t.counts.iter().find(|c| c.distance == d).copied();
        assert_eq!(at(2).map(|c| (c.correct, c.total)), Some((1, 2)));
        assert_eq!(at(8).map(|c| (c.correct, c.total)), Some((1, 1)));
        assert_eq!(at(9).map(|c| (c.correct, c.total)), Some((1, 2)));
        assert_eq!(at(0), None, "positions without an answer are not counted");
        assert!((t.accuracy() - 0.6).abs() < 1e-12);
        // Buckets of 4: distances 1-4 -> 4, 5-8 -> 8, 9-12 -> 12.
        let b: Vec<(usize, usize, usize)> = t
            .bucketed(4)
            .iter()
            .map(|c| (c.distance, c.correct, c.total))
            .collect();
        assert_eq!(b, [(4, 1, 2), (8, 1, 1), (12, 1, 2)]);

        let dir = tempfile::tempdir().expect("tempdir");
        append(dir.path(), &t).expect("append");
        let mut later = t.clone();
        later.step = 20;
        append(dir.path(), &later).expect("append");
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(FILE))
            .and_then(|mut f| f.write_all(b"garbage,,\n30,1,5,2\n"))
            .expect("damage");
        let back = read(dir.path()).expect("read");
        assert_eq!(back, vec![t.clone(), later]);
        truncate_after(dir.path(), 15).expect("truncate");
        assert_eq!(read(dir.path()).expect("read"), vec![t]);
    }
}
