//! Each snapshot's head statistics (`attention::stats`), for the Heads pane and as
//! `head_stats.csv` in an export.

use std::fmt::Write as _;

use crate::attention::{AttentionPattern, HeadStats, Mask, Stat, StatsContext, head_stats};
use crate::config::Settings;
use crate::records::{AttentionSnapshot, Probe};

/// Statistics of every head of `snapshot`, layer-major (`layer * heads + head`).
/// `masks` are the layers' masks at the snapshot's side (empty: none known).
pub fn snapshot_stats(
    settings: &Settings,
    probe: Option<&Probe>,
    masks: &[Mask],
    snapshot: &AttentionSnapshot,
) -> Vec<HeadStats> {
    let patterns = settings.model.layer_patterns();
    let (tokens, dependencies) = probe.map_or((&[][..], &[][..]), |p| {
        (p.tokens.as_slice(), p.dependencies.as_slice())
    });
    // Without the probe the positions are still known: a placeholder of the right
    // length, no repeats, no dependencies.
    let placeholder: Vec<i64>;
    let tokens = if tokens.len() == snapshot.seq_len {
        tokens
    } else {
        placeholder = (0..snapshot.seq_len as i64).collect();
        &placeholder
    };
    let mut out = Vec::with_capacity(snapshot.layers * snapshot.heads);
    for layer in 0..snapshot.layers {
        let pattern = patterns.get(layer);
        let sparse = pattern.is_some_and(|p| !matches!(p, AttentionPattern::Dense));
        let mask = masks
            .get(layer)
            .filter(|m| sparse && m.n() == snapshot.n)
            .cloned();
        let ctx = StatsContext::new(tokens, dependencies, snapshot.n, pattern, mask);
        for head in 0..snapshot.heads {
            out.push(head_stats(snapshot.map(layer, head), snapshot.n, &ctx));
        }
    }
    out
}

/// Every snapshot's head statistics as CSV: one row per step, layer and head, a
/// column per statistic (empty where the task or pattern does not define it).
pub fn head_stats_csv(rows: &[(usize, usize, Vec<HeadStats>)]) -> String {
    let mut out = String::from("step,layer,head");
    for stat in Stat::ALL {
        out.push(',');
        out.push_str(&stat.name().replace(' ', "_"));
    }
    out.push('\n');
    for (step, heads, stats) in rows {
        for (i, s) in stats.iter().enumerate() {
            let _ = write!(
                out,
                "{step},{},{}",
                i / heads.max(&1) + 1,
                i % heads.max(&1) + 1
            );
            for stat in Stat::ALL {
                out.push(',');
                if let Some(v) = stat.of(s) {
                    let _ = write!(out, "{v}");
                }
            }
            out.push('\n');
        }
    }
    out
}
