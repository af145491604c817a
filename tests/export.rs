//! `attnlab export`: what it writes opens in standard tools: the PNG decodes, the SVG
//! parses as XML, the CSVs have their headers, the `.npy` header is numpy's.

use std::path::Path;

mod common;
use common::bin::attnlab;
use common::experiments::{RECORD_CONFIG, Tiny};

/// Parses a `.npy` v1 header: returns the shape, checks dtype and data length.
fn npy_shape(bytes: &[u8]) -> Vec<usize> {
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00", "magic and version");
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    assert_eq!((10 + len) % 64, 0, "header padded to 64 bytes");
    let header = std::str::from_utf8(&bytes[10..10 + len]).expect("ASCII header");
    assert!(header.contains("'descr': '<f4'"), "{header}");
    assert!(header.contains("'fortran_order': False"), "{header}");
    assert!(header.ends_with('\n'));
    let shape = header
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .expect("shape");
    let shape: Vec<usize> = shape
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().expect("dimension"))
        .collect();
    let count: usize = shape.iter().product();
    assert_eq!(bytes.len() - 10 - len, count * 4, "data length");
    shape
}

#[test]
fn exported_files_open_in_standard_tools() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tiny = Tiny {
        name: "tiny",
        steps: 4,
        eval_every: 2,
        snapshot_every: 2,
        runs: &[],
    };
    std::fs::write(dir.path().join("tiny.toml"), tiny.toml()).expect("write");
    let out = attnlab(&["run", "tiny.toml", "--out", "records", "-q"], dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = attnlab(&["export", "records", "--to", "figures"], dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let figures = dir.path().join("figures");
    let summary = std::fs::read_to_string(figures.join("summary.csv")).expect("summary.csv");
    assert!(
        summary.starts_with("record,experiment,run,status,steps,"),
        "{summary}"
    );
    assert_eq!(summary.lines().count(), 2);
    let record = std::fs::read_dir(&figures)
        .expect("figures")
        .map(|e| e.expect("entry").path())
        .find(|p| p.is_dir())
        .expect("one folder per record");
    let metrics = std::fs::read_to_string(record.join("metrics.csv")).expect("metrics.csv");
    assert!(metrics.starts_with("step,split,loss,accuracy,elapsed_secs\n"));
    assert_eq!(metrics.lines().filter(|l| l.contains(",train,")).count(), 4);

    let svg = std::fs::read_to_string(record.join("curves.svg")).expect("curves.svg");
    let doc = roxmltree::Document::parse(&svg).expect("the SVG parses as XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    assert!(
        doc.descendants()
            .filter(|n| n.has_tag_name("polyline"))
            .count()
            >= 4
    );

    let png = std::fs::read(record.join("attention-step4.png")).expect("png");
    let image = image::load_from_memory(&png).expect("the PNG decodes");
    // 2 heads across, 2 layers down, 16 x 4 pixels each, 4-pixel gaps.
    assert_eq!((image.width(), image.height()), (2 * 64 + 12, 2 * 64 + 12));

    let npy = std::fs::read(record.join("attention-step4.npy")).expect("npy");
    assert_eq!(npy_shape(&npy), [2, 2, 16, 16]);

    // Every snapshot's head statistics: a row per step (0, 2, 4), layer and head.
    let stats = std::fs::read_to_string(record.join("head_stats.csv")).expect("head_stats.csv");
    let mut lines = stats.lines();
    assert_eq!(
        lines.next(),
        Some(
            "step,layer,head,dependency_mass,mean_distance,entropy,previous_token,induction,global_mass,mask_usage"
        )
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 3 * 2 * 2);
    for row in &rows {
        assert_eq!(row.len(), 10);
        let entropy: f64 = row[5].parse().expect("entropy");
        assert!((0.0..=(16f64).ln() + 1e-6).contains(&entropy), "{row:?}");
        assert!(row[8].is_empty(), "no global tokens in dense attention");
    }
    // Accuracy by distance at each evaluation: recall at distance 4.
    let distance = std::fs::read_to_string(record.join("distance.csv")).expect("distance.csv");
    let mut lines = distance.lines();
    assert_eq!(lines.next(), Some("step,distance,correct,total,accuracy"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 2, "evaluations at steps 2 and 4: {rows:?}");
    assert!(rows.iter().all(|r| r.split(',').nth(1) == Some("4")));
}

/// What "Save pane as PNG" encodes: a screen region's RGBA pixels.
#[test]
fn a_screen_region_encodes_as_a_png_that_decodes() {
    let pixels = (0..6).map(|i| [i * 40, 255 - i * 40, 7, 255]);
    let png = attnlab::export::color_image_png([3, 2], pixels).expect("encodes");
    let image = image::load_from_memory(&png).expect("decodes").to_rgba8();
    assert_eq!(image.dimensions(), (3, 2));
    assert_eq!(image.get_pixel(2, 1).0, [200, 55, 7, 255]);
    assert!(attnlab::export::color_image_png([4, 4], std::iter::empty()).is_err());
}

/// A finished record with two metric rows under `root`, read back.
fn small_record(root: &Path) -> attnlab::records::RunRecord {
    use attnlab::records::{Metrics, RecordWriter, RunRecord, RunStatus, RunSummary};
    let mut summary = RunSummary::unstarted("r", "r", 2, RunStatus::Running);
    let mut writer =
        RecordWriter::create(root, "r", "r", RECORD_CONFIG, &mut summary).expect("record");
    for step in 1..=2 {
        let m = Metrics {
            step,
            loss: 1.0 / step as f64,
            accuracy: 0.5,
            elapsed_secs: step as f64,
        };
        writer.metric("train", &m).expect("metric");
    }
    summary.status = RunStatus::Finished;
    summary.steps = 2;
    let dir = writer.dir().to_path_buf();
    writer.finish(&summary).expect("finished");
    RunRecord::open(&dir).expect("opens")
}

/// `export --to runs` (the records' own folder) or `--to` a folder inside a record
/// would write into the records it reads: refused, the record unchanged.
#[test]
fn export_refuses_a_destination_inside_a_record() {
    use attnlab::export::{ExportError, export_records};
    let root = tempfile::tempdir().expect("tempdir");
    let runs = root.path().join("runs");
    let record = small_record(&runs);
    let metrics = std::fs::read(record.dir.join("metrics.csv")).expect("metrics");
    for to in [
        runs.clone(),
        record.dir.clone(),
        record.dir.join("figures"),
        runs.join(".")
            .join("x")
            .join("..")
            .join(record.dir.file_name().expect("id")),
    ] {
        let err = export_records(std::slice::from_ref(&record), &to)
            .expect_err(&format!("--to {} writes into the record", to.display()));
        assert!(matches!(err, ExportError::IntoRecord { .. }), "{err}");
        assert!(err.to_string().contains("inside the record"), "{err}");
    }
    assert_eq!(
        std::fs::read(record.dir.join("metrics.csv")).expect("metrics"),
        metrics
    );
    assert!(!record.dir.join("figures").exists());
    let written =
        export_records(std::slice::from_ref(&record), &root.path().join("figures")).expect("ok");
    assert!(!written.is_empty());
}

/// An export into a folder others can write: a link at the old predictable temporary
/// name leaves its target untouched, and a record's folder that is a link is refused
/// (nothing written where it points).
#[cfg(unix)]
#[test]
fn export_never_writes_through_links() {
    use attnlab::export::{ExportError, export_records};
    let root = tempfile::tempdir().expect("tempdir");
    let record = small_record(&root.path().join("runs"));
    let id = record.dir.file_name().expect("id").to_owned();
    let to = root.path().join("figures");
    std::fs::create_dir(&to).expect("figures");
    let victim = root.path().join("victim");
    std::fs::write(&victim, "secret").expect("victim");
    std::os::unix::fs::symlink(&victim, to.join("summary.csv.tmp")).expect("link");
    std::os::unix::fs::symlink(&victim, to.join("summary.csv")).expect("link");
    export_records(std::slice::from_ref(&record), &to).expect("exported");
    assert_eq!(std::fs::read_to_string(&victim).expect("victim"), "secret");
    let summary = std::fs::symlink_metadata(to.join("summary.csv")).expect("summary.csv");
    assert!(summary.is_file(), "the link was replaced by the file");

    let elsewhere = root.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).expect("elsewhere");
    std::fs::remove_dir_all(to.join(&id)).expect("rm");
    std::os::unix::fs::symlink(&elsewhere, to.join(&id)).expect("link");
    let err = export_records(std::slice::from_ref(&record), &to).expect_err("refused");
    assert!(matches!(err, ExportError::Destination { .. }), "{err}");
    assert_eq!(
        std::fs::read_dir(&elsewhere).expect("elsewhere").count(),
        0,
        "nothing written where the link points"
    );
}

/// PNG width and height from the IHDR chunk.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(&png[12..16], b"IHDR");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&png[16..20]), be(&png[20..24]))
}

/// Figure sizes are capped: a grid too wide at the asked scale is drawn smaller, one
/// too large even at one pixel per cell is refused with the size, and a screen region
/// larger than the cap is refused before its pixels are read.
#[test]
fn figure_sizes_are_capped_with_a_clear_refusal() {
    use attnlab::export::{MAX_PNG_SIDE, PngError, attention_png, color_image_png};
    use attnlab::records::AttentionSnapshot;
    let snapshot = |layers: usize, heads: usize, n: usize| AttentionSnapshot {
        step: 0,
        layers,
        heads,
        n,
        seq_len: n,
        weights: Vec::new(),
    };
    // 5000 heads of 2 x 2 at 4 pixels a cell is 60004 pixels across: drawn at 1.
    let png = attention_png(&snapshot(1, 5000, 2), 4).expect("scaled down");
    let (width, height) = png_size(&png);
    assert!(u64::from(width) <= MAX_PNG_SIDE);
    assert_eq!((width, height), (5000 * 2 + 5001 * 4, 2 + 2 * 4));
    // The largest model a run may have: refused, not allocated.
    let started = std::time::Instant::now();
    let err = attention_png(&snapshot(48, 4096, 256), 4).expect_err("too large");
    assert!(matches!(err, PngError::TooLarge { .. }), "{err}");
    assert!(err.to_string().contains("pixel"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    // Sizes that overflow 32 bits.
    assert!(attention_png(&snapshot(1 << 20, 1 << 20, 1 << 12), u32::MAX).is_err());
    let endless = std::iter::repeat([0u8; 4]);
    let err = color_image_png([100_000, 100_000], endless).expect_err("too large");
    assert!(matches!(err, PngError::TooLarge { .. }), "{err}");
}
