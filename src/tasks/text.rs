//! The task on real text: character-level next-character prediction on a UTF-8 file.
//! The file's distinct characters, sorted, are the alphabet (token `i` is its `i`-th
//! character); the first 90% of the characters are for training, the rest for
//! evaluation. Loss per character in nats; divided by ln 2 it is bits per character.
//!
//! Files are read once per process and shared. `experiments/text/fsf-licenses.txt`
//! is also built into the binary, so the shipped text experiment runs from the
//! window's Examples menu and from a copy of the file elsewhere.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rand::RngExt;
use rand::rngs::StdRng;

/// The shipped corpus's name as experiment files write it (relative to their folder).
pub const SHIPPED_NAME: &str = "text/fsf-licenses.txt";
const SHIPPED: &str = include_str!("../../experiments/text/fsf-licenses.txt");

/// Largest file read, bytes.
pub const MAX_FILE: u64 = 64 << 20;
/// Most distinct characters (the vocabulary must hold them all).
pub const MAX_ALPHABET: usize = 4096;

/// A text, as character ids, with its train/eval split.
#[derive(Debug, PartialEq, Eq)]
pub struct Corpus {
    /// The distinct characters, sorted: token `i` is `alphabet[i]`.
    pub alphabet: Vec<char>,
    ids: Vec<u16>,
    /// Characters before this index are for training, from it for evaluation.
    split: usize,
}

/// Why a text cannot be a corpus; each message is a reason about the file
/// (`it is empty`), shown after the field and its value.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    /// More distinct characters than the vocabulary can hold.
    #[error("it has {count} distinct characters; at most {MAX_ALPHABET} are supported")]
    TooManyCharacters {
        /// The text's distinct characters.
        count: usize,
    },
    /// The text has no characters.
    #[error("it is empty")]
    Empty,
    /// The file is larger than [`MAX_FILE`] (by its metadata, or by the bytes
    /// actually read: a `/proc` file says 0 bytes and reads out more).
    #[error("it is at least {size} bytes; at most {MAX_FILE} are read")]
    TooLarge {
        /// What is known of the file's size: at least this many bytes.
        size: u64,
    },
    /// The file could not be read.
    #[error(transparent)]
    Read(#[from] std::io::Error),
    /// The file is not UTF-8 text.
    #[error("it is not UTF-8 ({0})")]
    NotUtf8(#[from] std::string::FromUtf8Error),
    /// `task.file` is empty.
    #[error("no file is named (set task.file, relative to the experiment file)")]
    NoFileNamed,
    /// No file at the path, and not the shipped corpus's name.
    #[error("no such file (a path is relative to the experiment file)")]
    NotFound,
}

/// Which part of the text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    Eval,
}

impl Corpus {
    /// The corpus of `text` (errors: empty, or too many distinct characters).
    pub fn new(text: &str) -> Result<Self, CorpusError> {
        let mut alphabet: Vec<char> = text.chars().collect();
        alphabet.sort_unstable();
        alphabet.dedup();
        if alphabet.len() > MAX_ALPHABET {
            return Err(CorpusError::TooManyCharacters {
                count: alphabet.len(),
            });
        }
        let index: HashMap<char, u16> = alphabet
            .iter()
            .enumerate()
            .map(|(i, c)| (*c, i as u16))
            .collect();
        let ids: Vec<u16> = text.chars().map(|c| index[&c]).collect();
        if ids.is_empty() {
            return Err(CorpusError::Empty);
        }
        let split = ids.len() * 9 / 10;
        Ok(Self {
            alphabet,
            ids,
            split,
        })
    }

    /// Characters in the text.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the text has no characters (never: [`Corpus::new`] refuses that).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Characters in the smaller part (train or eval): the longest window is one less.
    pub fn shortest_part(&self) -> usize {
        self.split.min(self.ids.len() - self.split)
    }

    /// A random window of `n + 1` characters from `split`: the first `n` are the
    /// input, the last `n` the targets.
    pub fn window(&self, n: usize, split: Split, rng: &mut StdRng) -> (Vec<i64>, Vec<i64>) {
        let (lo, hi) = match split {
            Split::Train => (0, self.split),
            Split::Eval => (self.split, self.ids.len()),
        };
        let last_start = hi.saturating_sub(n + 1).max(lo);
        let start = rng.random_range(lo..=last_start);
        let window = |from: usize| -> Vec<i64> {
            (from..from + n)
                .map(|i| self.ids.get(i).map_or(0, |&t| i64::from(t)))
                .collect()
        };
        (window(start), window(start + 1))
    }

    /// A token as a short printable label: the quoted character, `\n` for a newline.
    pub fn label(&self, token: i64) -> String {
        match usize::try_from(token)
            .ok()
            .and_then(|t| self.alphabet.get(t))
        {
            Some('\n') => "\\n".into(),
            Some('\t') => "\\t".into(),
            Some(c) => format!("'{c}'"),
            None => format!("#{token}"),
        }
    }
}

static LOADED: Mutex<Option<HashMap<String, Arc<Corpus>>>> = Mutex::new(None);

/// The corpus of `file` if [`load`] has read it already; never touches the disk (what
/// per-frame callers such as the editor's chance accuracy use).
pub fn loaded(file: &str) -> Option<Arc<Corpus>> {
    let loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    loaded.as_ref()?.get(file).cloned()
}

/// The corpus of `file`: a path (absolute, or relative to the working folder), or the
/// shipped corpus's name. Read once per process.
pub fn load(file: &str) -> Result<Arc<Corpus>, CorpusError> {
    let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    let cache = loaded.get_or_insert_with(HashMap::new);
    if let Some(c) = cache.get(file) {
        return Ok(c.clone());
    }
    let path = Path::new(file);
    let corpus = if path.is_file() {
        Corpus::new(&read_text(path)?)?
    } else if file.replace('\\', "/").ends_with(SHIPPED_NAME) {
        Corpus::new(SHIPPED)?
    } else if file.is_empty() {
        return Err(CorpusError::NoFileNamed);
    } else {
        return Err(CorpusError::NotFound);
    };
    let corpus = Arc::new(corpus);
    if cache.len() > 16 {
        cache.clear();
    }
    cache.insert(file.to_string(), corpus.clone());
    Ok(corpus)
}

/// The text of a regular file, at most [`MAX_FILE`] bytes of it actually read (its
/// metadata is not trusted: `/proc/self/pagemap` says 0 bytes and reads out hundreds
/// of gigabytes).
fn read_text(path: &Path) -> Result<String, CorpusError> {
    let size = std::fs::metadata(path)?.len();
    if size > MAX_FILE {
        return Err(CorpusError::TooLarge { size });
    }
    let mut file = std::fs::File::open(path)?;
    if !file.metadata()?.is_file() {
        // Replaced (by a FIFO or device) after `is_file` looked.
        return Err(CorpusError::Read(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    let mut bytes = Vec::new();
    (&mut file).take(MAX_FILE).read_to_end(&mut bytes)?;
    // At the bound the file must end there (8 bytes: some kernel files refuse reads of
    // other sizes).
    if bytes.len() as u64 == MAX_FILE {
        let more = file.read(&mut [0u8; 8])?;
        if more > 0 {
            return Err(CorpusError::TooLarge {
                size: MAX_FILE + more as u64,
            });
        }
    }
    Ok(String::from_utf8(bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn windows_come_from_their_split_and_shift_by_one() {
        let text: String = (0..1000)
            .map(|i| if i % 7 == 0 { 'b' } else { 'a' })
            .collect();
        let c = Corpus::new(&text).expect("corpus");
        assert_eq!(c.alphabet, ['a', 'b']);
        let mut rng = StdRng::seed_from_u64(1);
        for split in [Split::Train, Split::Eval] {
            for _ in 0..50 {
                let (x, y) = c.window(16, split, &mut rng);
                assert_eq!(x.len(), 16);
                assert_eq!(x[1..], y[..15], "targets are the next characters");
            }
        }
        assert_eq!(c.shortest_part(), 100);
        assert_eq!(c.label(0), "'a'");
        assert_eq!(Corpus::new("").unwrap_err().to_string(), "it is empty");
        let wide: String = (0..=MAX_ALPHABET as u32)
            .filter_map(char::from_u32)
            .collect();
        assert_eq!(
            Corpus::new(&wide).unwrap_err().to_string(),
            "it has 4097 distinct characters; at most 4096 are supported"
        );
    }

    #[test]
    fn the_shipped_corpus_loads_by_name_from_anywhere() {
        let c = load(SHIPPED_NAME).expect("built in");
        assert!(c.len() > 80_000);
        assert!(c.alphabet.contains(&'\n'));
        let again = load("/elsewhere/experiments/text/fsf-licenses.txt").expect("by name");
        assert_eq!(again.alphabet, c.alphabet);
        assert!(matches!(
            load("no/such/file.txt"),
            Err(CorpusError::NotFound)
        ));
        assert_eq!(
            load("").unwrap_err().to_string(),
            "no file is named (set task.file, relative to the experiment file)"
        );
    }
}
