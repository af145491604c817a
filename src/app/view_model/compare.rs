//! What the Compare pane tabulates (no egui): the settings that differ between the
//! runs compared, and each run's seed group summarised.

use std::collections::{BTreeMap, BTreeSet};

use toml::Value;

use super::run_list::group_members;
use super::run_views::RunView;
use crate::config::Settings;

/// Settings flattened to `section.field = value`, for the differences table.
pub fn flatten(settings: &Settings) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Ok(Value::Table(sections)) = Value::try_from(settings) {
        for (section, fields) in sections {
            if let Value::Table(fields) = fields {
                for (k, v) in fields {
                    out.insert(format!("{section}.{k}"), v.to_string());
                }
            }
        }
    }
    out
}

/// The fields whose value is not the same in every run, with each run's value.
pub fn differing_fields(settings: &[&Settings]) -> Vec<(String, Vec<String>)> {
    let flat: Vec<_> = settings.iter().map(|s| flatten(s)).collect();
    let keys: BTreeSet<&String> = flat.iter().flat_map(|f| f.keys()).collect();
    keys.into_iter()
        .filter_map(|k| {
            let values: Vec<String> = flat
                .iter()
                .map(|f| f.get(k).cloned().unwrap_or_else(|| "-".into()))
                .collect();
            (values.iter().any(|v| *v != values[0])).then(|| (k.clone(), values))
        })
        .collect()
}

/// `0.998 ± 0.002 (3 seeds, 3 solved)` for the group of `run` among `runs`; empty for
/// a run without replicates.
pub fn group_text(runs: &[(usize, &RunView)], run: &RunView) -> String {
    let members = group_members(runs, &run.group);
    if members.len() < 2 {
        return String::new();
    }
    let accuracies: Vec<f64> = members.iter().filter_map(|r| r.final_accuracy()).collect();
    let solved = members
        .iter()
        .filter(|r| {
            r.final_accuracy()
                .is_some_and(|a| a >= r.settings.train.solved_at)
        })
        .count();
    match crate::records::mean_sd(&accuracies) {
        Some((mean, sd)) => format!(
            "{mean:.3} ± {sd:.3} ({} seeds, {solved} solved)",
            members.len()
        ),
        None => format!("{} seeds", members.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AttentionPattern;

    #[test]
    fn only_differing_fields_are_listed() {
        let a = Settings::default();
        let mut b = a.clone();
        b.model.attention = AttentionPattern::Local { window: 8 };
        b.train.seed = 2;
        let diffs = differing_fields(&[&a, &b]);
        let keys: Vec<&str> = diffs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["model.attention", "train.seed"]);
        assert_eq!(diffs[1].1, ["1", "2"]);
        assert!(differing_fields(&[&a, &a]).is_empty());
    }
}
