//! The Sweep pane's "best over" a third axis (no egui): each cell of the two-axis
//! table groups its runs by their value on that axis, takes the mean over seeds and
//! the other axes per value (as `sweep::sweep_table` does per cell), and shows the
//! best of those means (highest accuracy, lowest loss) with the value that won: the
//! way papers report the best learning rate per model.

use super::run_views::RunView;
use super::sweep::{BestOf, Cell, SweepMetric, SweepTable, coordinate, sweep_table};

/// Whether `candidate` beats `best` on `metric`: a higher accuracy or a lower loss;
/// a number always beats NaN (a diverged run) and a tie keeps `best`.
fn beats(metric: SweepMetric, candidate: f64, best: f64) -> bool {
    if best.is_nan() {
        return !candidate.is_nan();
    }
    match metric {
        SweepMetric::Accuracy => candidate > best,
        SweepMetric::Loss => candidate < best,
    }
}

/// The cell of `table` at the values `xv` across and `yv` down.
fn cell_at(table: &SweepTable, xv: &str, yv: &str) -> Option<Cell> {
    let xi = table.xs.iter().position(|v| v == xv)?;
    let yi = table.ys.iter().position(|v| v == yv)?;
    table.cells[yi][xi]
}

/// Finished runs over `x` and `y`, each cell the best over the values of `over`: the
/// winning value's cell (its mean, runs and solved counts), with every value's cell
/// in `best_of` (ties go to the value seen first). Runs with no value on `over` are
/// left out.
pub fn best_over(
    runs: &[&RunView],
    x: &str,
    y: &str,
    over: &str,
    metric: SweepMetric,
) -> SweepTable {
    let runs: Vec<&RunView> = runs
        .iter()
        .copied()
        .filter(|r| coordinate(r, over).is_some())
        .collect();
    let mut values: Vec<&str> = Vec::new();
    for v in runs.iter().filter_map(|r| coordinate(r, over)) {
        if !values.contains(&v) {
            values.push(v);
        }
    }
    let per_value: Vec<(&str, SweepTable)> = values
        .iter()
        .map(|&v| {
            let subset: Vec<&RunView> = runs
                .iter()
                .copied()
                .filter(|r| coordinate(r, over) == Some(v))
                .collect();
            (v, sweep_table(&subset, x, y, metric))
        })
        .collect();
    let mut table = sweep_table(&runs, x, y, metric);
    let mut best_of = vec![vec![None; table.xs.len()]; table.ys.len()];
    for (yi, yv) in table.ys.iter().enumerate() {
        for (xi, xv) in table.xs.iter().enumerate() {
            let candidates: Vec<(String, Cell)> = per_value
                .iter()
                .filter_map(|(v, t)| cell_at(t, xv, yv).map(|c| (v.to_string(), c)))
                .collect();
            let mut winner: Option<&(String, Cell)> = None;
            for candidate in &candidates {
                if winner.is_none_or(|w| beats(metric, candidate.1.mean, w.1.mean)) {
                    winner = Some(candidate);
                }
            }
            let Some((value, cell)) = winner.cloned() else {
                continue;
            };
            table.cells[yi][xi] = Some(cell);
            best_of[yi][xi] = Some(BestOf { value, candidates });
        }
    }
    table.over = Some(over.to_string());
    table.best_of = best_of;
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::view_model::sweep::table_csv;
    use crate::config::Experiment;
    use crate::records::{RunStatus, RunSummary};

    /// A finished run at `coordinates` with final accuracy `accuracy` (loss `1 - accuracy`).
    fn run(coordinates: &[(&str, &str)], accuracy: f64) -> RunView {
        let plan = Experiment::from_toml("name = \"t\"\n[train]\nsteps = 1\n")
            .and_then(|e| e.plan())
            .map(|mut p| p.remove(0))
            .expect("valid");
        let mut view = RunView::live(0, &plan);
        view.coordinates = coordinates
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        view.status = RunStatus::Finished;
        let mut summary = RunSummary::unstarted("t", "r", 1, RunStatus::Finished);
        summary.final_accuracy = Some(accuracy);
        summary.final_loss = Some(1.0 - accuracy);
        view.summary = Some(summary);
        view
    }

    /// Two models, two learning rates, two seeds each: dense does best at 1e-3,
    /// local at 1e-2.
    fn grid() -> Vec<RunView> {
        let mut out = Vec::new();
        for (model, lr, accs) in [
            ("dense", "1e-3", [0.9, 0.8]),
            ("dense", "1e-2", [0.6, 0.5]),
            ("local", "1e-3", [0.4, 0.2]),
            ("local", "1e-2", [0.7, 0.7]),
        ] {
            for acc in accs {
                out.push(run(
                    &[("run", model), ("task.distance", "4"), ("train.lr", lr)],
                    acc,
                ));
            }
        }
        out
    }

    fn best(table: &SweepTable, y: usize) -> (String, f64, usize) {
        let b = table.best_at(y, 0).expect("winner");
        let c = table.cells[y][0].expect("cell");
        (b.value.clone(), c.mean, c.runs)
    }

    #[test]
    fn the_best_learning_rate_differs_per_model() {
        let runs = grid();
        let views: Vec<&RunView> = runs.iter().collect();
        let table = best_over(
            &views,
            "task.distance",
            "run",
            "train.lr",
            SweepMetric::Accuracy,
        );
        assert_eq!(table.ys, ["dense", "local"]);
        let (value, mean, n) = best(&table, 0);
        assert_eq!((value.as_str(), n), ("1e-3", 2));
        assert!((mean - 0.85).abs() < 1e-12);
        let (value, mean, _) = best(&table, 1);
        assert_eq!(value, "1e-2");
        assert!((mean - 0.7).abs() < 1e-12);
        let candidates = &table.best_at(1, 0).expect("winner").candidates;
        assert_eq!(candidates.len(), 2);
        assert!((candidates[0].1.mean - 0.3).abs() < 1e-12);
        let csv = table_csv(&table, "task.distance", "run");
        assert!(
            csv.starts_with("run,task.distance,mean,runs,solved,train.lr\n"),
            "{csv}"
        );
        assert!(
            csv.lines().nth(2).is_some_and(|l| l.ends_with(",\"1e-2\"")),
            "{csv}"
        );
    }

    #[test]
    fn loss_picks_the_minimum() {
        let runs = grid();
        let views: Vec<&RunView> = runs.iter().collect();
        let table = best_over(
            &views,
            "task.distance",
            "run",
            "train.lr",
            SweepMetric::Loss,
        );
        let (value, mean, _) = best(&table, 0);
        assert_eq!(value, "1e-3");
        assert!((mean - 0.15).abs() < 1e-12);
        assert_eq!(best(&table, 1).0, "1e-2");
    }

    #[test]
    fn a_cell_with_one_value_shows_it() {
        let runs = [
            run(&[("run", "dense"), ("train.lr", "1e-3")], 0.9),
            run(&[("run", "local"), ("train.lr", "1e-3")], 0.4),
            run(&[("run", "local"), ("train.lr", "1e-2")], 0.6),
        ];
        let views: Vec<&RunView> = runs.iter().collect();
        let table = best_over(&views, "run", "run", "train.lr", SweepMetric::Accuracy);
        let b = table.best_at(0, 0).expect("dense");
        assert_eq!((b.value.as_str(), b.candidates.len()), ("1e-3", 1));
        assert_eq!(table.cells[0][0].map(|c| c.mean), Some(0.9));
        assert_eq!(table.best_at(1, 1).map(|b| b.value.as_str()), Some("1e-2"));
        assert!(table.best_at(0, 1).is_none() && table.cells[0][1].is_none());
    }

    #[test]
    fn ties_pick_the_first_seen_value() {
        let runs = [
            run(&[("run", "dense"), ("train.lr", "3e-4")], 1.0),
            run(&[("run", "dense"), ("train.lr", "1e-3")], 1.0),
        ];
        let views: Vec<&RunView> = runs.iter().collect();
        for metric in [SweepMetric::Accuracy, SweepMetric::Loss] {
            let table = best_over(&views, "run", "run", "train.lr", metric);
            assert_eq!(table.best_at(0, 0).map(|b| b.value.as_str()), Some("3e-4"));
        }
    }

    #[test]
    fn a_number_beats_nan_and_plain_tables_have_no_winners() {
        assert!(beats(SweepMetric::Loss, 2.0, f64::NAN));
        assert!(!beats(SweepMetric::Loss, f64::NAN, 2.0));
        let runs = grid();
        let views: Vec<&RunView> = runs.iter().collect();
        let table = sweep_table(&views, "task.distance", "run", SweepMetric::Accuracy);
        assert!(table.over.is_none() && table.best_at(0, 0).is_none());
        let csv = table_csv(&table, "task.distance", "run");
        assert!(
            csv.starts_with("run,task.distance,mean,runs,solved\n"),
            "{csv}"
        );
    }

    /// The state-size axis: an SSM carries a fixed state, attention its KV cache; a
    /// less accurate SSM with less state and an accurate attention run are both on the
    /// front, each at `config::state_floats` of its settings.
    #[test]
    fn the_state_axis_places_each_run_at_the_state_it_carries() {
        use super::super::sweep::{CostAxis, pareto};
        let view = |model: &str, group: &str, accuracy: f64| {
            let text = format!("name = \"t\"\n[model]\n{model}[train]\nsteps = 1\n");
            let plan = Experiment::from_toml(&text)
                .and_then(|e| e.plan())
                .map(|mut p| p.remove(0))
                .expect("valid");
            let mut view = RunView::live(0, &plan);
            view.group = group.into();
            view.status = RunStatus::Finished;
            let mut summary = RunSummary::unstarted("t", group, 1, RunStatus::Finished);
            summary.final_accuracy = Some(accuracy);
            summary.steps_per_sec = 1.0;
            view.summary = Some(summary);
            view
        };
        let attention = view("", "attention", 1.0);
        let ssm = view("mixer = { kind = \"ssm\", state = 4 }\n", "ssm", 0.5);
        let points = pareto(&[&attention, &ssm], CostAxis::State);
        let at = |group: &str| {
            points
                .iter()
                .find(|(p, _)| p.group == group)
                .expect("a point")
        };
        let (a, s) = (at("attention"), at("ssm"));
        assert_eq!(
            a.0.state_floats,
            crate::config::state_floats(&attention.settings) as f64
        );
        assert_eq!(
            s.0.state_floats,
            crate::config::state_floats(&ssm.settings) as f64
        );
        assert!(s.0.state_floats < a.0.state_floats);
        assert!(a.1 && s.1, "neither dominates the other");
    }
}
