//! `attnlab export`: what it writes opens in standard tools: the PNG decodes, the SVG
//! parses as XML, the CSVs have their headers, the `.npy` header is numpy's.

use std::path::Path;
use std::process::{Command, Output};

fn attnlab(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_attnlab"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the binary runs")
}

const TINY: &str = "name = \"tiny\"\n[task]\nseq_len = 16\nvocab = 8\ndistance = 4\n[model]\nlayers = 2\nheads = 2\nd_model = 16\nd_ff = 32\n[train]\nsteps = 4\nbatch = 4\neval_every = 2\neval_batches = 1\nsnapshot_every = 2\nbackend = \"cpu\"\n";

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
    std::fs::write(dir.path().join("tiny.toml"), TINY).expect("write");
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
