//! The numbers behind the analysis panes, computed from what a run view holds (no
//! egui): the receptive field of a query through the layers (structural and learned,
//! cached per pick) and the structural reach a run's masks give. Each snapshot's head
//! statistics are `export::snapshot_stats` (an export writes them as CSV too).

use crate::attention::{Mask, compose, mean_over_heads, rollout_row};
use crate::config::Settings;
use crate::records::AttentionSnapshot;
use crate::trainer::RunId;

/// A query's receptive field after each layer, in map cells: `structural[l][k]`
/// whether key cell `k` can reach the query after layers `0..=l` (the masks
/// composed), `learned[l][k]` how much of it does (attention rollout of the
/// snapshot, heads averaged, with the residual path).
#[derive(Clone, Debug, PartialEq)]
pub struct ReceptiveField {
    pub query: usize,
    pub n: usize,
    pub structural: Vec<Vec<bool>>,
    pub learned: Vec<Vec<f32>>,
}

impl ReceptiveField {
    /// For `query` (a cell of `snapshot`) with the layers' `masks` at the snapshot's
    /// side (none: structural rows are all reachable, as for dense attention).
    pub fn of(snapshot: &AttentionSnapshot, masks: &[Mask], query: usize) -> Option<Self> {
        let n = snapshot.n;
        if query >= n || snapshot.layers == 0 {
            return None;
        }
        let layers: Vec<Vec<f32>> = (0..snapshot.layers)
            .map(|l| {
                let maps: Vec<&[f32]> = (0..snapshot.heads).map(|h| snapshot.map(l, h)).collect();
                mean_over_heads(&maps, n)
            })
            .collect();
        let learned = rollout_row(&layers, n, query);
        let structural = (0..snapshot.layers)
            .map(|l| match masks.get(..=l) {
                Some(prefix) if prefix.iter().all(|m| m.n() == n) => {
                    let reach = compose(prefix);
                    (0..n).map(|k| reach.links(query, k)).collect()
                }
                _ => vec![true; n],
            })
            .collect();
        Some(Self {
            query,
            n,
            structural,
            learned,
        })
    }
}

/// The field last computed, by run, step and query: the rollout and the composed
/// masks are worked out once per pick, not every frame.
#[derive(Clone, Debug, Default)]
pub struct FieldCache {
    key: Option<(RunId, usize, usize)>,
    field: Option<ReceptiveField>,
}

impl FieldCache {
    /// The field of `query` in `snapshot` of run `run` (whose layers' masks are
    /// `masks`), computed again only when the run, step or query changed.
    pub fn get(
        &mut self,
        run: RunId,
        masks: &[Mask],
        snapshot: &AttentionSnapshot,
        query: usize,
    ) -> Option<&ReceptiveField> {
        let key = (run, snapshot.step, query);
        if self.key != Some(key) {
            self.key = Some(key);
            self.field = ReceptiveField::of(snapshot, masks, query);
        }
        self.field.as_ref()
    }
}

/// Longest sequence whose masks are composed for the reach (the composition costs
/// O(L n^3 / 64)).
const MAX_REACH_LEN: usize = 1024;

/// The largest distance every pair within which the run's layers link (the composed
/// masks' full radius), in positions; `None` for the LSTM, when every distance is
/// linked (dense attention, global tokens), or beyond [`MAX_REACH_LEN`].
pub fn structural_reach(settings: &Settings) -> Option<usize> {
    let n = settings.task.seq_len;
    if n > MAX_REACH_LEN || settings.model.kind == crate::config::ModelKind::Lstm {
        return None;
    }
    let masks = settings.model.layer_masks(n, settings.train.seed);
    if masks.is_empty() {
        return None;
    }
    let radius = compose(&masks).full_radius(settings.model.causal);
    (radius + 1 < n).then_some(radius)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::AttentionPattern;

    #[test]
    fn a_local_run_reaches_layers_times_window_and_dense_everything() {
        let mut s = Settings::default();
        s.task.seq_len = 64;
        s.task.distance = 8;
        s.model.layers = 2;
        s.model.attention = AttentionPattern::Local { window: 6 };
        assert_eq!(structural_reach(&s), Some(12));
        s.model.attention = AttentionPattern::Dense;
        assert_eq!(structural_reach(&s), None);
    }
}
