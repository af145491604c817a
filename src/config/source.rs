//! The text of an experiment file: read defensively, and errors placed on the line
//! that wrote the field they name.

use super::suggest::did_you_mean;
use super::{ConfigError, ConfigErrors};

/// The text of an experiment file, read defensively (see [`super::Experiment::load`]):
/// a regular file only (never a FIFO or device), at most 1 MiB of it actually read
/// (its metadata is not trusted: `/proc` files say 0 bytes and read out more).
pub(super) fn read_experiment_text(path: &std::path::Path) -> Result<String, ConfigErrors> {
    use std::io::Read;
    const MAX_BYTES: u64 = 1 << 20;
    let shown = path.display().to_string();
    let fail = |message: String| ConfigErrors::from(ConfigError::new("", message)).in_file(&shown);
    let cannot_read = |e: std::io::Error| fail(format!("cannot read the file: {e}"));
    let too_large = |size: String| {
        fail(format!(
            "is {size} bytes; experiment files are text of at most {MAX_BYTES} bytes"
        ))
    };
    let meta = std::fs::metadata(path).map_err(cannot_read)?;
    if meta.is_dir() {
        return Err(fail("is a folder, not an experiment file".into()));
    }
    if !meta.is_file() {
        return Err(fail(
            "is not a regular file (a device, FIFO or socket)".into(),
        ));
    }
    if meta.len() > MAX_BYTES {
        return Err(too_large(meta.len().to_string()));
    }
    let mut file = std::fs::File::open(path).map_err(cannot_read)?;
    if !file.metadata().map_err(cannot_read)?.is_file() {
        return Err(fail(
            "is no longer a regular file (replaced while it was opened)".into(),
        ));
    }
    let mut bytes = Vec::new();
    (&mut file)
        .take(MAX_BYTES)
        .read_to_end(&mut bytes)
        .map_err(cannot_read)?;
    // At the bound: the file must end there. (8 bytes: some kernel files refuse reads
    // of other sizes.)
    if bytes.len() as u64 == MAX_BYTES && file.read(&mut [0u8; 8]).map_err(cannot_read)? > 0 {
        return Err(too_large(format!("more than {MAX_BYTES}")));
    }
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        let mut error = ConfigError::new("", "is not UTF-8 text");
        error.line = Some(line);
        ConfigErrors::from(error).in_file(&shown)
    })
}

/// The 1-based line where `field` (a dotted error path such as `model.heads` or
/// `runs[1].model.attention.window`) is written in `text`, if it is: the line of the
/// longest written prefix of the path within its table or run.
pub fn locate_field(text: &str, field: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let header = |l: &str| l.trim_start().starts_with('[');
    let key_of = |l: &str| -> Option<String> {
        let (key, _) = l.split_once('=')?;
        Some(key.trim().replace(['"', ' '], ""))
    };
    let path: Vec<String> = field
        .split('.')
        .map(|seg| seg.split('[').next().unwrap_or(seg).to_string())
        .collect();
    // The block of lines to search, and the path inside it.
    let (range, inner): (std::ops::Range<usize>, &[String]) = if let Some(index) = field
        .strip_prefix("runs[")
        .and_then(|r| r.split(']').next())
    {
        let index: usize = index.parse().ok()?;
        let start = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.trim_start().starts_with("[[runs]]"))
            .nth(index)
            .map(|(i, _)| i)?;
        let end = lines[start + 1..]
            .iter()
            .position(|l| l.trim_start().starts_with("[[runs]]"))
            .map_or(lines.len(), |p| start + 1 + p);
        (start..end, &path[1..])
    } else if path.len() > 1 {
        let name = format!("[{}]", path[0]);
        let start = lines.iter().position(|l| l.trim() == name)?;
        let end = lines[start + 1..]
            .iter()
            .position(|l| header(l))
            .map_or(lines.len(), |p| start + 1 + p);
        (start..end, &path[1..])
    } else {
        let end = lines.iter().position(|l| header(l)).unwrap_or(lines.len());
        (0..end, &path[..])
    };
    for len in (1..=inner.len()).rev() {
        let want = inner[..len].join(".");
        if let Some(i) = range
            .clone()
            .find(|&i| !header(lines[i]) && key_of(lines[i]).as_deref() == Some(want.as_str()))
        {
            return Some(i + 1);
        }
    }
    (range.start < lines.len() && header(lines[range.start])).then_some(range.start + 1)
}

pub(super) fn toml_error(text: &str, field: &str, e: &toml::de::Error) -> ConfigError {
    ConfigError {
        file: None,
        line: e.span().map(|span| line_of(text, span.start)),
        field: field.to_string(),
        message: did_you_mean(e.message().trim()),
    }
}

pub(super) fn path_string(path: &serde_path_to_error::Path) -> String {
    let s = path.to_string();
    if s == "." { String::new() } else { s }
}

fn line_of(text: &str, byte: usize) -> usize {
    text[..byte.min(text.len())].matches('\n').count() + 1
}

/// The 1-based line of every `[[runs]]` header, in order.
pub(super) fn runs_header_lines(text: &str) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with("[[runs]]"))
        .map(|(i, _)| i + 1)
        .collect()
}

#[cfg(test)]
mod locate_tests {
    use super::locate_field;

    #[test]
    fn fields_are_found_in_their_table_or_run() {
        let text = "name = \"x\"\n[task]\nseq_len = 64\n[model]\nheads = 3\nattention = { kind = \"local\", window = 0 }\n[[runs]]\nname = \"a\"\n[[runs]]\nname = \"b\"\nmodel.heads = 5\n";
        assert_eq!(locate_field(text, "name"), Some(1));
        assert_eq!(locate_field(text, "task.seq_len"), Some(3));
        assert_eq!(locate_field(text, "model.heads"), Some(5));
        assert_eq!(locate_field(text, "model.attention.window"), Some(6));
        assert_eq!(locate_field(text, "runs[1].model.heads"), Some(11));
        assert_eq!(locate_field(text, "runs[1].name"), Some(10));
        assert_eq!(locate_field(text, "train.lr"), None);
    }
}
