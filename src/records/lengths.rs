//! Held-out scores at evaluation lengths other than the training one
//! (`train.eval_lengths`): at each evaluation, loss, accuracy and accuracy by
//! distance on examples generated at each of those lengths. Recorded as
//! `lengths.csv`, rows of two kinds: `step,seq_len,metrics,loss,accuracy,elapsed_secs`
//! (one per evaluation and length) and `step,seq_len,distance,distance,correct,total`
//! (one per evaluation, length and distance).

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::distance::DistanceAccuracy;
use super::files::{RecordError, append_or_create, io_at, keep_rows_through, table_lines};
use super::summary::Metrics;

/// The file in a record folder.
pub const FILE: &str = "lengths.csv";
const HEADER: &str = "step,seq_len,kind,a,b,c\n";

/// One evaluation at one length other than the run's `task.seq_len`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LengthScores {
    /// The sequence length the examples were generated at.
    pub seq_len: usize,
    /// Step, held-out loss and accuracy, seconds since training started.
    pub metrics: Metrics,
    /// Accuracy by dependency distance at that length (stamped with the same step).
    pub by_distance: DistanceAccuracy,
}

fn rows(scores: &[LengthScores]) -> String {
    let mut text = String::new();
    for s in scores {
        let m = &s.metrics;
        text.push_str(&format!(
            "{},{},metrics,{},{},{:.3}\n",
            m.step, s.seq_len, m.loss, m.accuracy, m.elapsed_secs
        ));
        for c in &s.by_distance.counts {
            text.push_str(&format!(
                "{},{},distance,{},{},{}\n",
                m.step, s.seq_len, c.distance, c.correct, c.total
            ));
        }
    }
    text
}

/// Appends one evaluation's scores to the record in `dir`, creating the file
/// exclusively the first time; a symbolic link at its name (dangling or not) is
/// refused, its target neither created nor written.
pub fn append(dir: &Path, scores: &[LengthScores]) -> Result<(), RecordError> {
    if scores.is_empty() {
        return Ok(());
    }
    let path = dir.join(FILE);
    let (mut file, fresh) = append_or_create(&path)?;
    let mut text = String::new();
    if fresh {
        text.push_str(HEADER);
    }
    text.push_str(&rows(scores));
    file.write_all(text.as_bytes()).map_err(io_at(&path))
}

/// Drops rows after `step` (a run resumed from a checkpoint at `step`). The file is
/// replaced atomically (a link at its name is replaced, never written through).
pub fn truncate_after(dir: &Path, step: usize) -> Result<(), RecordError> {
    keep_rows_through(&dir.join(FILE), step)
}

/// Every evaluation at other lengths, steps ascending and lengths ascending within a
/// step; empty when the record has none. Rows of lengths beyond the first
/// `MAX_EVAL_LENGTHS + 1` the file names are skipped. Malformed lines (and lines over
/// [`super::files::MAX_LINE`] bytes) are skipped, and distance rows of a (step,
/// length) without its metrics row; a file of more than
/// [`super::files::MAX_TABLE_FILE`] bytes actually read is refused.
pub fn read(dir: &Path) -> Result<Vec<LengthScores>, RecordError> {
    let path = dir.join(FILE);
    match fs::metadata(&path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_at(&path)(e)),
        Ok(_) => {}
    }
    type Key = (usize, usize);
    // A run evaluates at most MAX_EVAL_LENGTHS lengths besides its own: rows of
    // further lengths are skipped, so a hostile file cannot make every reader (the
    // Curves pane, each frame) walk any number of lines of lengths.
    let mut lengths = std::collections::BTreeSet::new();
    let mut metrics: BTreeMap<Key, Metrics> = BTreeMap::new();
    let mut counts: BTreeMap<Key, BTreeMap<usize, (usize, usize)>> = BTreeMap::new();
    for line in table_lines(&path)?.skip(1) {
        let line = line?;
        let Ok(line) = std::str::from_utf8(&line) else {
            continue;
        };
        let f: Vec<&str> = line.trim_end().split(',').collect();
        let [step, seq_len, kind, a, b, c] = f[..] else {
            continue;
        };
        let (Ok(step), Ok(seq_len)) = (step.parse::<usize>(), seq_len.parse::<usize>()) else {
            continue;
        };
        if !lengths.contains(&seq_len) {
            if lengths.len() > crate::config::MAX_EVAL_LENGTHS {
                continue;
            }
            lengths.insert(seq_len);
        }
        match kind {
            "metrics" => {
                let (Ok(loss), Ok(accuracy), Ok(elapsed_secs)) = (a.parse(), b.parse(), c.parse())
                else {
                    continue;
                };
                metrics.insert(
                    (step, seq_len),
                    Metrics {
                        step,
                        loss,
                        accuracy,
                        elapsed_secs,
                    },
                );
            }
            "distance" => {
                let (Ok(distance), Ok(correct), Ok(total)) =
                    (a.parse::<usize>(), b.parse::<usize>(), c.parse::<usize>())
                else {
                    continue;
                };
                if correct > total {
                    continue;
                }
                let e = counts
                    .entry((step, seq_len))
                    .or_default()
                    .entry(distance)
                    .or_default();
                e.0 += correct;
                e.1 += total;
            }
            _ => {}
        }
    }
    Ok(metrics
        .into_iter()
        .map(|((step, seq_len), metrics)| {
            let by = counts.remove(&(step, seq_len)).unwrap_or_default();
            LengthScores {
                seq_len,
                metrics,
                by_distance: DistanceAccuracy::from_map(step, by),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::distance::DistanceCount;

    fn scores(step: usize, seq_len: usize) -> LengthScores {
        LengthScores {
            seq_len,
            metrics: Metrics {
                step,
                loss: 0.5,
                accuracy: 0.75,
                elapsed_secs: 1.0,
            },
            by_distance: DistanceAccuracy {
                step,
                counts: vec![DistanceCount {
                    distance: 4,
                    correct: 3,
                    total: 4,
                }],
            },
        }
    }

    #[test]
    fn appended_scores_read_back_and_truncate() {
        let dir = tempfile::tempdir().expect("tempdir");
        append(dir.path(), &[scores(10, 128), scores(10, 256)]).expect("append");
        append(dir.path(), &[scores(20, 128), scores(20, 256)]).expect("append");
        fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(FILE))
            .and_then(|mut f| f.write_all(b"garbage,,\n30,128,distance,1,5,2\n"))
            .expect("damage");
        assert_eq!(read(dir.path()).expect("read").len(), 4);
        truncate_after(dir.path(), 10).expect("truncate");
        let back = read(dir.path()).expect("read");
        assert_eq!(back, vec![scores(10, 128), scores(10, 256)]);
    }

    #[test]
    fn a_record_without_the_file_has_no_scores() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(read(dir.path()).expect("read").is_empty());
    }
}
