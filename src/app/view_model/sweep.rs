//! What the Sweep pane tabulates (no egui): final held-out accuracy (or loss) of
//! finished runs over two axes of the experiment's grid (`run` and each `[sweep]`
//! field), the mean over seeds and the other axes in each cell with how many runs
//! solved the task, as CSV too (`sweep_best` makes the same table with each cell the
//! best over a third axis); and each replicate group's cost against its accuracy with
//! the Pareto front.

use super::run_views::RunView;
use crate::records::RunStatus;

/// Which metric the cells show.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SweepMetric {
    /// Final held-out accuracy.
    #[default]
    Accuracy,
    /// Final held-out loss.
    Loss,
}

/// One cell: the mean over the runs in it, their count and how many solved the task.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cell {
    /// Mean of the metric.
    pub mean: f64,
    /// Finished runs in the cell.
    pub runs: usize,
    /// Runs whose final accuracy reached their `train.solved_at`.
    pub solved: usize,
}

/// In a table of bests over an axis (`sweep_best::best_over`): which of the axis's
/// values won a cell, and every value's own cell.
#[derive(Clone, Debug, PartialEq)]
pub struct BestOf {
    /// The winning value (its cell is the table's cell).
    pub value: String,
    /// Each value of the axis with finished runs in the cell, and its cell (the mean
    /// over seeds and the other axes), in first-seen order.
    pub candidates: Vec<(String, Cell)>,
}

/// The grid of cells: `cells[y][x]`.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepTable {
    /// Values across, in first-seen order.
    pub xs: Vec<String>,
    /// Values down, in first-seen order.
    pub ys: Vec<String>,
    /// The cells.
    pub cells: Vec<Vec<Option<Cell>>>,
    /// The axis each cell is the best over, or `None` where cells are plain means.
    pub over: Option<String>,
    /// With `over`: which value won each cell (`best_of[y][x]`); empty otherwise.
    pub best_of: Vec<Vec<Option<BestOf>>>,
}

impl SweepTable {
    /// Which value of `over` won the cell at row `y`, column `x` (`None` for a table
    /// of plain means or an empty cell).
    pub fn best_at(&self, y: usize, x: usize) -> Option<&BestOf> {
        self.best_of.get(y)?.get(x)?.as_ref()
    }
}

/// The run's value on `axis`, if it has one.
pub(super) fn coordinate<'a>(run: &'a RunView, axis: &str) -> Option<&'a str> {
    run.coordinates
        .iter()
        .find(|(k, _)| k == axis)
        .map(|(_, v)| v.as_str())
}

/// The axes the runs share, in order (`run` first).
pub fn axes(runs: &[&RunView]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for run in runs {
        for (k, _) in &run.coordinates {
            if !out.contains(k) {
                out.push(k.clone());
            }
        }
    }
    out
}

/// Aggregates finished runs over `x` and `y`.
pub fn sweep_table(runs: &[&RunView], x: &str, y: &str, metric: SweepMetric) -> SweepTable {
    let mut xs: Vec<String> = Vec::new();
    let mut ys: Vec<String> = Vec::new();
    let mut sums: Vec<(usize, usize, f64, usize, usize)> = Vec::new();
    for run in runs {
        let (Some(xv), Some(yv)) = (coordinate(run, x), coordinate(run, y)) else {
            continue;
        };
        if run.status != RunStatus::Finished {
            continue;
        }
        let summary = run.summary.as_ref();
        let value = match metric {
            SweepMetric::Accuracy => summary.and_then(|s| s.final_accuracy),
            SweepMetric::Loss => summary.and_then(|s| s.final_loss),
        };
        let Some(value) = value else { continue };
        let solved = summary
            .and_then(|s| s.final_accuracy)
            .is_some_and(|a| a >= run.settings.train.solved_at);
        let xi = index_of(&mut xs, xv);
        let yi = index_of(&mut ys, yv);
        match sums.iter_mut().find(|c| c.0 == xi && c.1 == yi) {
            Some(c) => {
                c.2 += value;
                c.3 += 1;
                c.4 += usize::from(solved);
            }
            None => sums.push((xi, yi, value, 1, usize::from(solved))),
        }
    }
    let mut cells = vec![vec![None; xs.len()]; ys.len()];
    for (xi, yi, sum, n, solved) in sums {
        cells[yi][xi] = Some(Cell {
            mean: sum / n as f64,
            runs: n,
            solved,
        });
    }
    SweepTable {
        xs,
        ys,
        cells,
        over: None,
        best_of: Vec::new(),
    }
}

fn index_of(values: &mut Vec<String>, v: &str) -> usize {
    match values.iter().position(|x| x == v) {
        Some(i) => i,
        None => {
            values.push(v.to_string());
            values.len() - 1
        }
    }
}

/// One replicate group's point on the Pareto chart: its cost (mean ms per step, peak
/// memory) against its mean final accuracy over its finished runs.
#[derive(Clone, Debug, PartialEq)]
pub struct ParetoPoint {
    /// The group (run and sweep point).
    pub group: String,
    /// Mean milliseconds per training step.
    pub ms_per_step: f64,
    /// Peak memory of a run, MiB: the runs' measured peak (mean) where every run of
    /// the group has one, else the estimate (`config::estimate`).
    pub memory_mib: f64,
    /// Whether `memory_mib` was measured.
    pub memory_measured: bool,
    /// Mean final held-out accuracy.
    pub accuracy: f64,
    /// Floats of state a model of the group carries per sequence at inference
    /// (`config::state_floats`: attention's KV cache, a recurrent mixer's state).
    pub state_floats: f64,
}

/// A group's name, estimated memory (MiB), state floats and its runs' (ms per step,
/// accuracy, measured peak memory in MiB).
type GroupCosts = (String, f64, f64, Vec<(f64, f64, Option<f64>)>);

/// What a Pareto chart counts as cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CostAxis {
    /// Measured time per training step.
    #[default]
    Time,
    /// Peak memory (measured where the runs have it).
    Memory,
    /// The state carried per sequence at inference (recall against state size, as
    /// Based's Figure 1 draws it).
    State,
}

impl ParetoPoint {
    /// The cost on `axis`.
    pub fn cost(&self, axis: CostAxis) -> f64 {
        match axis {
            CostAxis::Time => self.ms_per_step,
            CostAxis::Memory => self.memory_mib,
            CostAxis::State => self.state_floats,
        }
    }
}

/// The groups' cost and accuracy, and which lie on the Pareto front for `axis` (no
/// other group is at least as cheap and as accurate, and strictly better in one).
pub fn pareto(runs: &[&RunView], axis: CostAxis) -> Vec<(ParetoPoint, bool)> {
    let mut groups: Vec<GroupCosts> = Vec::new();
    for run in runs.iter().filter(|r| r.status == RunStatus::Finished) {
        let Some(s) = run.summary.as_ref() else {
            continue;
        };
        let (Some(acc), true) = (s.final_accuracy, s.steps_per_sec > 0.0) else {
            continue;
        };
        let measured = s.peak_memory_bytes.map(|b| b as f64 / (1 << 20) as f64);
        let point = (1000.0 / s.steps_per_sec, acc, measured);
        match groups.iter_mut().find(|(g, ..)| *g == run.group) {
            Some((.., points)) => points.push(point),
            None => {
                let memory = run.estimated_bytes as f64 / (1 << 20) as f64;
                let state = crate::config::state_floats(&run.settings) as f64;
                groups.push((run.group.clone(), memory, state, vec![point]));
            }
        }
    }
    let points: Vec<ParetoPoint> = groups
        .into_iter()
        .map(|(group, estimate_mib, state_floats, ps)| {
            let n = ps.len() as f64;
            let measured: Option<Vec<f64>> = ps.iter().map(|p| p.2).collect();
            ParetoPoint {
                group,
                ms_per_step: ps.iter().map(|p| p.0).sum::<f64>() / n,
                memory_mib: measured
                    .as_ref()
                    .map_or(estimate_mib, |m| m.iter().sum::<f64>() / n),
                memory_measured: measured.is_some(),
                accuracy: ps.iter().map(|p| p.1).sum::<f64>() / n,
                state_floats,
            }
        })
        .collect();
    points
        .iter()
        .map(|p| {
            let dominated = points.iter().any(|q| {
                q.cost(axis) <= p.cost(axis)
                    && q.accuracy >= p.accuracy
                    && (q.cost(axis) < p.cost(axis) || q.accuracy > p.accuracy)
            });
            (p.clone(), !dominated)
        })
        .collect()
}

/// The table as CSV: `y,x,mean,runs,solved`, and for a table of bests a last column
/// named by the axis they are the best over, holding each cell's winning value.
pub fn table_csv(table: &SweepTable, x: &str, y: &str) -> String {
    let mut out = format!("{y},{x},mean,runs,solved");
    if let Some(over) = &table.over {
        out.push_str(&format!(",{over}"));
    }
    out.push('\n');
    for (yi, yv) in table.ys.iter().enumerate() {
        for (xi, xv) in table.xs.iter().enumerate() {
            if let Some(c) = table.cells[yi][xi] {
                out.push_str(&format!(
                    "\"{yv}\",\"{xv}\",{},{},{}",
                    c.mean, c.runs, c.solved
                ));
                if table.over.is_some() {
                    let value = table.best_at(yi, xi).map_or("", |b| b.value.as_str());
                    out.push_str(&format!(",\"{value}\""));
                }
                out.push('\n');
            }
        }
    }
    out
}
