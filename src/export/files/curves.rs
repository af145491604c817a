//! The training curves as an SVG line chart ([`curves_svg`]): one panel for the loss
//! (log scale), one for the accuracy, each with a training and a held-out line.

use std::fmt::Write as _;

use crate::records::MetricRow;

/// The chart's width, in pixels.
const W: f64 = 900.0;
/// The chart's height, in pixels.
const H: f64 = 360.0;
/// The margin around and between the panels, in pixels.
const PAD: f64 = 50.0;

/// Loss (log scale) and accuracy against step, training and held-out, as an SVG line
/// chart with the run's name, axes and a legend.
pub fn curves_svg(title: &str, rows: &[MetricRow]) -> String {
    let max_step = rows
        .iter()
        .map(|r| r.metrics.step)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(
        out,
        r#"<rect width="{W}" height="{H}" fill="white"/><text x="{PAD}" y="20" font-size="14">{}</text>"#,
        escape(title)
    );
    let (lo, hi) = log_loss_range(rows);
    for (index, (label, value)) in [
        (
            "loss (log10)",
            &(|r: &MetricRow| r.metrics.loss.max(1e-12).log10()) as &dyn Fn(&MetricRow) -> f64,
        ),
        ("accuracy", &|r: &MetricRow| r.metrics.accuracy),
    ]
    .into_iter()
    .enumerate()
    {
        let (vmin, vmax) = if index == 0 { (lo, hi) } else { (0.0, 1.0) };
        let panel = Panel {
            x0: PAD + index as f64 * (W / 2.0),
            width: W / 2.0 - 1.5 * PAD,
            vmin,
            vmax,
            max_step,
        };
        panel.frame(&mut out, label);
        panel.lines(&mut out, rows, value);
    }
    out.push_str("</svg>\n");
    out
}

/// The range of the loss panel: the lowest and highest log10 of the finite positive
/// losses, or -1 to 1 when they do not make a range.
fn log_loss_range(rows: &[MetricRow]) -> (f64, f64) {
    let losses: Vec<f64> = rows
        .iter()
        .map(|r| r.metrics.loss)
        .filter(|l| l.is_finite() && *l > 0.0)
        .collect();
    let (lo, hi) = losses
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &l| {
            (a.min(l.log10()), b.max(l.log10()))
        });
    if lo.is_finite() && hi > lo {
        (lo, hi)
    } else {
        (-1.0, 1.0)
    }
}

/// One panel of the chart: from `x0`, `width` wide, between the chart's margins top
/// and bottom; values from `vmin` (bottom) to `vmax` (top), steps from 0 (left) to
/// `max_step` (right).
struct Panel {
    x0: f64,
    width: f64,
    vmin: f64,
    vmax: f64,
    max_step: f64,
}

impl Panel {
    /// The panel's top edge.
    const Y0: f64 = PAD;
    /// The panel's height.
    const HEIGHT: f64 = H - 2.0 * PAD;

    /// The panel's box, its `label`, and its axes' end values (steps below, values
    /// to the left).
    fn frame(&self, out: &mut String, label: &str) {
        let (x0, width, vmin, vmax, max_step) =
            (self.x0, self.width, self.vmin, self.vmax, self.max_step);
        let (y0, height) = (Self::Y0, Self::HEIGHT);
        let _ = write!(
            out,
            r#"<rect x="{x0}" y="{y0}" width="{width}" height="{height}" fill="none" stroke="gray"/><text x="{x0}" y="{}">{label}</text><text x="{}" y="{}" text-anchor="end">step {max_step}</text><text x="{x0}" y="{}">0</text>"#,
            y0 - 6.0,
            x0 + width,
            y0 + height + 16.0,
            y0 + height + 16.0
        );
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" text-anchor="end">{vmax:.2}</text><text x="{}" y="{}" text-anchor="end">{vmin:.2}</text>"#,
            x0 - 4.0,
            y0 + 10.0,
            x0 - 4.0,
            y0 + height
        );
    }

    /// The training and the held-out line of `value` against step, each with its
    /// name in the legend (a split without rows draws nothing).
    fn lines(&self, out: &mut String, rows: &[MetricRow], value: &dyn Fn(&MetricRow) -> f64) {
        let (x0, width, vmin, vmax) = (self.x0, self.width, self.vmin, self.vmax);
        let (y0, height) = (Self::Y0, Self::HEIGHT);
        for (eval, colour, name) in [(false, "#1f77b4", "train"), (true, "#d62728", "eval")] {
            let points: Vec<String> = rows
                .iter()
                .filter(|r| r.eval == eval)
                .map(|r| {
                    let x = x0 + width * r.metrics.step as f64 / self.max_step;
                    let v = ((value(r) - vmin) / (vmax - vmin)).clamp(0.0, 1.0);
                    format!("{x:.1},{:.1}", y0 + height * (1.0 - v))
                })
                .collect();
            if points.is_empty() {
                continue;
            }
            let _ = write!(
                out,
                r#"<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{}"/>"#,
                points.join(" ")
            );
            let ly = y0 + 14.0 + if eval { 14.0 } else { 0.0 };
            let _ = write!(
                out,
                r#"<text x="{}" y="{ly}" fill="{colour}" text-anchor="end">{name}</text>"#,
                x0 + width - 6.0
            );
        }
    }
}

/// `s` with the characters XML gives a meaning escaped.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
