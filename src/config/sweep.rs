//! `[sweep]`: a grid over any fields, each run of the experiment trained at every
//! point of it (and, with `train.seeds`, once per seed).
//!
//! ```toml
//! [sweep]
//! task.distance = [8, 16, 32, 64]
//! model.attention = ["dense", { kind = "local", window = 8 }]
//! ```

use toml::{Table, Value};

use super::ConfigError;

/// One axis of the grid: a dotted field and the values it takes.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepAxis {
    /// `section.field`, e.g. `task.distance`.
    pub field: String,
    /// The values, in file order.
    pub values: Vec<Value>,
}

/// The grid (empty: no sweep).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sweep {
    /// The axes, in file order of sections then fields.
    pub axes: Vec<SweepAxis>,
}

impl Sweep {
    /// The grid a `[sweep]` table describes; every entry must be `section.field =
    /// [values...]` with at least one value, the field one the registry
    /// ([`super::fields`]) lets a sweep vary.
    pub fn from_table(table: &Table) -> Result<Self, ConfigError> {
        let mut axes = Vec::new();
        for (section, fields) in table {
            let Value::Table(fields) = fields else {
                return Err(ConfigError::new(
                    format!("sweep.{section}"),
                    "must name a field: `section.field = [values...]`, e.g. task.distance = [8, 16]",
                ));
            };
            for (field, values) in fields {
                let path = format!("{section}.{field}");
                let known = super::fields::lookup(&path)
                    .map_err(|why| ConfigError::new(format!("sweep.{path}"), why.to_string()))?;
                if !known.sweep {
                    return Err(ConfigError::new(
                        format!("sweep.{path}"),
                        format!("{path} cannot be swept: {}", known.help),
                    ));
                }
                match values {
                    Value::Array(values) if !values.is_empty() => axes.push(SweepAxis {
                        field: path,
                        values: values.clone(),
                    }),
                    _ => {
                        return Err(ConfigError::new(
                            format!("sweep.{path}"),
                            "must be a non-empty list of values, e.g. [8, 16, 32]",
                        ));
                    }
                }
            }
        }
        Ok(Self { axes })
    }

    /// The `[sweep]` table as written.
    pub fn to_table(&self) -> Table {
        let mut table = Table::new();
        for axis in &self.axes {
            let (section, field) = axis.field.split_once('.').unwrap_or((&axis.field, ""));
            let entry = table
                .entry(section.to_string())
                .or_insert_with(|| Value::Table(Table::new()));
            if let Value::Table(t) = entry {
                t.insert(field.to_string(), Value::Array(axis.values.clone()));
            }
        }
        table
    }

    /// Whether there is a grid.
    pub fn is_empty(&self) -> bool {
        self.axes.is_empty()
    }

    /// The number of points (1 without a sweep), counted without building them and
    /// saturating at `usize::MAX` (a grid too large to count is refused as too large).
    pub fn len(&self) -> usize {
        self.axes
            .iter()
            .map(|a| a.values.len())
            .fold(1, usize::saturating_mul)
    }

    /// Every point, the first axis varying slowest: `(field, value)` per axis.
    pub fn points(&self) -> Vec<Vec<(String, Value)>> {
        let mut points = vec![Vec::new()];
        for axis in &self.axes {
            points = points
                .into_iter()
                .flat_map(|point| {
                    axis.values.iter().map(move |v| {
                        let mut p = point.clone();
                        p.push((axis.field.clone(), v.clone()));
                        p
                    })
                })
                .collect();
        }
        points
    }
}

/// A short label of a point, e.g. `distance=16 attention=local w=8`.
pub fn point_label(point: &[(String, Value)]) -> String {
    point
        .iter()
        .map(|(field, value)| {
            let short = field.rsplit('.').next().unwrap_or(field);
            format!("{short}={}", value_label(value))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The replicate group of a run name: the name without a trailing ` seed=<n>`.
pub fn group_of(name: &str) -> &str {
    match name.rsplit_once(" seed=") {
        Some((group, seed)) if !seed.is_empty() && seed.bytes().all(|b| b.is_ascii_digit()) => {
            group
        }
        _ => name,
    }
}

/// A value as a short label (attention patterns by their own label).
pub fn value_label(value: &Value) -> String {
    if let Ok(pattern) = value
        .clone()
        .try_into::<crate::attention::AttentionPattern>()
    {
        return pattern.label();
    }
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_drop_only_a_trailing_seed() {
        assert_eq!(group_of("dense distance=4 seed=12"), "dense distance=4");
        assert_eq!(group_of("dense"), "dense");
        assert_eq!(group_of("my seed=x"), "my seed=x");
    }

    #[test]
    fn points_vary_the_first_axis_slowest() {
        let table: Table =
            toml::from_str("[task]\ndistance = [1, 2]\n[model]\nlayers = [3, 4]\n").expect("toml");
        let sweep = Sweep::from_table(&table).expect("sweep");
        assert_eq!(sweep.len(), 4);
        let labels: Vec<String> = sweep.points().iter().map(|p| point_label(p)).collect();
        assert_eq!(
            labels,
            [
                "layers=3 distance=1",
                "layers=3 distance=2",
                "layers=4 distance=1",
                "layers=4 distance=2"
            ]
        );
        assert!(
            Sweep::from_table(&toml::from_str("[task]\ndistance = []\n").expect("toml")).is_err()
        );
    }
}
