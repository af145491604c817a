//! The export formats, each a plain function of what a record holds.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::colormap::{colormap_rgb, sqrt_scaled};
use crate::records::{AttentionSnapshot, MetricRow, RunRecord, write_atomically};

/// Why an export could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A record could not be read.
    #[error(transparent)]
    Record(#[from] crate::records::RecordError),
    /// A file could not be written.
    #[error("{path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The PNG could not be encoded.
    #[error("{path}: {source}")]
    Png {
        /// The file.
        path: PathBuf,
        /// Why.
        source: PngError,
    },
}

/// Why an image could not be encoded as PNG.
#[derive(Debug, thiserror::Error)]
pub enum PngError {
    /// The pixels given are not `width x height` of them.
    #[error("{width} x {height} pixels do not match the data")]
    Size {
        /// Pixels across.
        width: usize,
        /// Pixels down.
        height: usize,
    },
    /// The encoder failed.
    #[error(transparent)]
    Encode(#[from] image::ImageError),
}

/// `metrics.csv` as written by the trainer: `step,split,loss,accuracy,elapsed_secs`.
pub fn metrics_csv(rows: &[MetricRow]) -> String {
    let mut out = String::from("step,split,loss,accuracy,elapsed_secs\n");
    for r in rows {
        let m = &r.metrics;
        let split = if r.eval { "eval" } else { "train" };
        let _ = writeln!(
            out,
            "{},{split},{},{},{:.3}",
            m.step, m.loss, m.accuracy, m.elapsed_secs
        );
    }
    out
}

/// One row per record: what ended how, with its final metrics.
pub fn summary_csv(records: &[RunRecord]) -> String {
    let mut out = String::from(
        "record,experiment,run,status,steps,planned_steps,final_loss,final_accuracy,steps_per_sec,peak_memory_mib,backend\n",
    );
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    for r in records {
        let s = &r.summary;
        let id = r
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{}",
            quote(&id),
            quote(&s.experiment),
            quote(&s.name),
            s.status.name(),
            s.steps,
            s.planned_steps,
            opt(s.final_loss),
            opt(s.final_accuracy),
            s.steps_per_sec,
            s.peak_memory_bytes.map_or(String::new(), |b| format!(
                "{:.1}",
                b as f64 / (1 << 20) as f64
            )),
            s.backend
        );
    }
    out
}

/// A float32 array in numpy's `.npy` format (version 1.0, little-endian, C order).
pub fn npy_f32(shape: &[usize], data: &[f32]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let shape = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    // Magic (6) + version (2) + length (2) + header + newline, padded to 64 bytes.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len() * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Loss (log scale) and accuracy against step, training and held-out, as an SVG line
/// chart with the run's name, axes and a legend.
pub fn curves_svg(title: &str, rows: &[MetricRow]) -> String {
    const W: f64 = 900.0;
    const H: f64 = 360.0;
    const PAD: f64 = 50.0;
    let max_step = rows
        .iter()
        .map(|r| r.metrics.step)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let panel = |index: usize| (PAD + index as f64 * (W / 2.0), W / 2.0 - 1.5 * PAD);
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(
        out,
        r#"<rect width="{W}" height="{H}" fill="white"/><text x="{PAD}" y="20" font-size="14">{}</text>"#,
        escape(title)
    );
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
    let (lo, hi) = if lo.is_finite() && hi > lo {
        (lo, hi)
    } else {
        (-1.0, 1.0)
    };
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
        let (x0, width) = panel(index);
        let (y0, height) = (PAD, H - 2.0 * PAD);
        let (vmin, vmax) = if index == 0 { (lo, hi) } else { (0.0, 1.0) };
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
        for (eval, colour, name) in [(false, "#1f77b4", "train"), (true, "#d62728", "eval")] {
            let points: Vec<String> = rows
                .iter()
                .filter(|r| r.eval == eval)
                .map(|r| {
                    let x = x0 + width * r.metrics.step as f64 / max_step;
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
    out.push_str("</svg>\n");
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An RGBA image of `[width, height]` pixels, row-major, as PNG bytes.
pub fn color_image_png(
    [width, height]: [usize; 2],
    pixels: impl Iterator<Item = [u8; 4]>,
) -> Result<Vec<u8>, PngError> {
    let raw: Vec<u8> = pixels.flatten().collect();
    let image = image::RgbaImage::from_raw(width as u32, height as u32, raw)
        .ok_or(PngError::Size { width, height })?;
    encode_png(image::DynamicImage::ImageRgba8(image))
}

/// PNG bytes of an image.
fn encode_png(image: image::DynamicImage) -> Result<Vec<u8>, PngError> {
    let mut bytes = Vec::new();
    image.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )?;
    Ok(bytes)
}

/// Every layer's and head's map of a snapshot as one PNG grid (layers down, heads
/// across), each cell `scale` pixels, 4 pixels between maps.
pub fn attention_png(snapshot: &AttentionSnapshot, scale: u32) -> Result<Vec<u8>, PngError> {
    let (n, layers, heads) = (
        snapshot.n as u32,
        snapshot.layers as u32,
        snapshot.heads as u32,
    );
    let scale = scale.max(1);
    let gap = 4;
    let side = n * scale;
    let width = heads * side + (heads + 1) * gap;
    let height = layers * side + (layers + 1) * gap;
    let mut image = image::RgbImage::from_pixel(width, height, image::Rgb([255, 255, 255]));
    for layer in 0..layers {
        for head in 0..heads {
            let map = snapshot.map(layer as usize, head as usize);
            let (ox, oy) = (gap + head * (side + gap), gap + layer * (side + gap));
            for (i, t) in sqrt_scaled(map).enumerate() {
                let (q, k) = (i as u32 / n, i as u32 % n);
                let rgb = image::Rgb(colormap_rgb(t));
                for dy in 0..scale {
                    for dx in 0..scale {
                        image.put_pixel(ox + k * scale + dx, oy + q * scale + dy, rgb);
                    }
                }
            }
        }
    }
    encode_png(image::DynamicImage::ImageRgb8(image))
}

/// Writes, for each record, `<record-id>/metrics.csv`, `curves.svg` and, when it has
/// snapshots, `attention-step<k>.png` and `.npy` of its last snapshot; and
/// `summary.csv` over all of them. Returns the files written.
pub fn export_records(records: &[RunRecord], to: &Path) -> Result<Vec<PathBuf>, ExportError> {
    let mut written = Vec::new();
    let mut write = |path: PathBuf, bytes: &[u8]| -> Result<(), ExportError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| ExportError::Write {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        write_atomically(&path, bytes).map_err(|source| ExportError::Write {
            path: path.clone(),
            source,
        })?;
        written.push(path);
        Ok(())
    };
    for record in records {
        let id = record
            .dir
            .file_name()
            .map_or("record".into(), |n| n.to_string_lossy().to_string());
        let dir = to.join(&id);
        let rows = record.metrics()?;
        write(dir.join("metrics.csv"), metrics_csv(&rows).as_bytes())?;
        let title = format!(
            "{} / {} ({})",
            record.summary.experiment,
            record.summary.name,
            record.summary.status.name()
        );
        write(dir.join("curves.svg"), curves_svg(&title, &rows).as_bytes())?;
        let distances = record.distances()?;
        if !distances.is_empty() {
            let mut csv = String::from("step,distance,correct,total,accuracy\n");
            for d in &distances {
                for c in &d.counts {
                    let _ = writeln!(
                        csv,
                        "{},{},{},{},{}",
                        d.step,
                        c.distance,
                        c.correct,
                        c.total,
                        c.accuracy()
                    );
                }
            }
            write(dir.join("distance.csv"), csv.as_bytes())?;
        }
        let snapshots = record.snapshots()?;
        if let Some((header, snapshots)) = &snapshots {
            // The statistics need the run's settings (patterns, masks); a record whose
            // configuration no longer reads still gets its maps exported.
            if let Some(settings) = record
                .experiment()
                .ok()
                .and_then(|e| e.run_settings(0).ok())
            {
                let masks = settings.model.fitted_layer_masks(
                    settings.task.seq_len,
                    settings.train.seed,
                    crate::trainer::MAX_SNAPSHOT_SIDE,
                );
                let rows: Vec<(usize, usize, Vec<crate::attention::HeadStats>)> = snapshots
                    .iter()
                    .map(|snap| {
                        let stats =
                            super::snapshot_stats(&settings, Some(&header.probe), &masks, snap);
                        (snap.step, snap.heads, stats)
                    })
                    .collect();
                write(
                    dir.join("head_stats.csv"),
                    super::head_stats_csv(&rows).as_bytes(),
                )?;
            }
        }
        if let Some((_, snapshots)) = snapshots
            && let Some(last) = snapshots.last()
        {
            let stem = format!("attention-step{}", last.step);
            let png = dir.join(format!("{stem}.png"));
            let bytes = attention_png(last, 4).map_err(|source| ExportError::Png {
                path: png.clone(),
                source,
            })?;
            write(png, &bytes)?;
            let shape = [last.layers, last.heads, last.n, last.n];
            write(
                dir.join(format!("{stem}.npy")),
                &npy_f32(&shape, &last.weights),
            )?;
        }
    }
    write(to.join("summary.csv"), summary_csv(records).as_bytes())?;
    Ok(written)
}
