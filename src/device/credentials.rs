//! Tokens for `attnlab serve`: the shared secret a server started with a token checks
//! (burn's `TokenAuthorizer`) and its clients present (`RemoteHost::with_credential`).
//!
//! A token never enters a run's settings, so it is never written into a record
//! (`config.toml`, `summary.json`), an export or the window's remembered state: the
//! client keeps the tokens it was given in a process-wide store, by server address,
//! and [`super::connect`] looks the address up there. A token reaches the store from
//! the command line (`attnlab run --token`, `--token-file`, or `remote:TOKEN@ADDRESS`
//! in `--backend`, split off before the address is parsed) or from the
//! `ATTNLAB_TOKEN` environment variable, which the window uses too.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

/// The environment variable holding the token a client presents to every server it
/// has no other token for, and the token `attnlab serve` requires when `--token` is
/// not given.
pub const TOKEN_ENV: &str = "ATTNLAB_TOKEN";

/// The longest token accepted, in bytes.
pub const MAX_TOKEN_LEN: usize = 1024;

/// Random bytes in a generated token (printed as twice as many hex digits).
const GENERATED_BYTES: usize = 24;

/// A token that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// An empty token, which is what a client that sends none presents.
    #[error("{origin}: a token cannot be empty")]
    Empty {
        /// Where the token came from (`--token`, `ATTNLAB_TOKEN`, a file).
        origin: String,
    },
    /// A token longer than [`MAX_TOKEN_LEN`].
    #[error("{origin}: a token is at most {MAX_TOKEN_LEN} bytes")]
    TooLong {
        /// Where the token came from.
        origin: String,
    },
    /// A token with a space or control character (the token itself is not shown).
    #[error("{origin}: a token is printable ASCII without spaces")]
    Unprintable {
        /// Where the token came from.
        origin: String,
    },
    /// A token file that cannot be read.
    #[error("cannot read the token file {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What failed.
        reason: String,
    },
    /// The operating system's random number generator failed.
    #[error("cannot generate a token: the system's random number generator failed ({0})")]
    Random(String),
}

/// A shared secret between `attnlab serve` and its clients. Its `Debug` output never
/// shows it, and it has no `Display`: [`Token::reveal`] is the one way to read it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    /// A token as given; `origin` names where it came from, for errors. Printable
    /// ASCII without spaces, 1 to [`MAX_TOKEN_LEN`] bytes.
    pub fn new(text: &str, origin: &str) -> Result<Self, TokenError> {
        let origin = origin.to_string();
        if text.is_empty() {
            return Err(TokenError::Empty { origin });
        }
        if text.len() > MAX_TOKEN_LEN {
            return Err(TokenError::TooLong { origin });
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(TokenError::Unprintable { origin });
        }
        Ok(Self(text.to_string()))
    }

    /// A new random token from the operating system's generator: 48 hex digits
    /// (192 bits).
    pub fn generate() -> Result<Self, TokenError> {
        use rand::TryRng;
        let mut bytes = [0u8; GENERATED_BYTES];
        rand::rngs::SysRng
            .try_fill_bytes(&mut bytes)
            .map_err(|e| TokenError::Random(e.to_string()))?;
        Ok(Self(bytes.iter().map(|b| format!("{b:02x}")).collect()))
    }

    /// The token in `path`: its first line, without surrounding whitespace (at most
    /// [`MAX_TOKEN_LEN`] bytes are read).
    pub fn from_file(path: &Path) -> Result<Self, TokenError> {
        let file_error = |reason: String| TokenError::File {
            path: path.display().to_string(),
            reason,
        };
        let mut text = String::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_TOKEN_LEN as u64 + 2).read_to_string(&mut text))
            .map_err(|e| file_error(e.to_string()))?;
        let line = text.lines().next().unwrap_or_default().trim();
        Self::new(line, &format!("the token file {}", path.display()))
    }

    /// The token in [`TOKEN_ENV`]; `None` when it is unset or empty.
    pub fn from_env() -> Result<Option<Self>, TokenError> {
        match std::env::var(TOKEN_ENV) {
            Ok(text) if !text.is_empty() => Self::new(&text, TOKEN_ENV).map(Some),
            Ok(_) | Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(TokenError::Unprintable {
                origin: TOKEN_ENV.into(),
            }),
        }
    }

    /// The secret itself, to hand to burn or to show the operator once.
    pub fn reveal(&self) -> &str {
        &self.0
    }
}

/// The tokens this process presents: by server address, and one for every server.
#[derive(Default)]
struct Store {
    every: Option<Token>,
    by_address: HashMap<String, Token>,
}

static STORE: Mutex<Option<Store>> = Mutex::new(None);

fn with_store<R>(f: impl FnOnce(&mut Store) -> R) -> R {
    let mut store = STORE.lock().unwrap_or_else(PoisonError::into_inner);
    f(store.get_or_insert_with(Store::default))
}

/// Presents `token` to the server at `address` (`ws://host:port` or `iroh:...`).
pub fn set_server_token(address: &str, token: Token) {
    with_store(|s| s.by_address.insert(address.to_string(), token));
}

/// Presents `token` to every server that has no token of its own (`--token`).
pub fn set_default_token(token: Token) {
    with_store(|s| s.every = Some(token));
}

/// The token to present to `address`: its own, else the one for every server, else
/// [`TOKEN_ENV`]'s; `None`: the client sends no credential.
pub fn token_for(address: &str) -> Result<Option<Token>, TokenError> {
    let stored = with_store(|s| s.by_address.get(address).or(s.every.as_ref()).cloned());
    match stored {
        Some(token) => Ok(Some(token)),
        None => Token::from_env(),
    }
}

/// Splits the tokens off a `--backend` value: `remote:TOKEN@ws://host:port,...`
/// comes back as `remote:ws://host:port,...` with each address's token beside it.
/// An address without a token (and every non-remote value) passes unchanged;
/// `iroh:<id>@host:port` is an address, not a token.
pub fn split_backend_tokens(value: &str) -> Result<(String, Vec<(String, Token)>), TokenError> {
    let Some(rest) = value.strip_prefix("remote:") else {
        return Ok((value.to_string(), Vec::new()));
    };
    let mut addresses = Vec::new();
    let mut tokens = Vec::new();
    for part in rest.split(',') {
        let part = part.trim();
        match token_prefix(part) {
            Some(at) => {
                let address = part[at + 1..].to_string();
                let token = Token::new(&part[..at], &format!("the token of {address}"))?;
                tokens.push((address.clone(), token));
                addresses.push(address);
            }
            None => addresses.push(part.to_string()),
        }
    }
    Ok((format!("remote:{}", addresses.join(",")), tokens))
}

/// Where the `@` ending `TOKEN@` is in `part`, when an address follows it.
fn token_prefix(part: &str) -> Option<usize> {
    ["@ws://", "@iroh:"]
        .iter()
        .filter_map(|marker| part.find(marker))
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_token_is_long_hex_and_fresh() {
        let (a, b) = (Token::generate().unwrap(), Token::generate().unwrap());
        assert_eq!(a.reveal().len(), 2 * GENERATED_BYTES);
        assert!(a.reveal().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn debug_output_hides_the_token() {
        let token = Token::new("s3cret", "test").unwrap();
        assert_eq!(format!("{token:?}"), "Token(..)");
    }

    #[test]
    fn bad_tokens_are_refused_without_showing_them() {
        assert!(matches!(
            Token::new("", "--token"),
            Err(TokenError::Empty { .. })
        ));
        let e = Token::new("two words", "--token").unwrap_err();
        assert!(!e.to_string().contains("words"), "{e}");
        assert!(Token::new(&"x".repeat(MAX_TOKEN_LEN + 1), "--token").is_err());
    }

    #[test]
    fn tokens_are_split_off_backend_addresses() {
        let (clean, tokens) = split_backend_tokens(
            "remote:abc@ws://h:1, ws://g:2,t@k@iroh:ID@127.0.0.1:5,iroh:ID2@10.0.0.1:6",
        )
        .unwrap();
        assert_eq!(
            clean,
            "remote:ws://h:1,ws://g:2,iroh:ID@127.0.0.1:5,iroh:ID2@10.0.0.1:6"
        );
        let pairs: Vec<(&str, &str)> = tokens
            .iter()
            .map(|(a, t)| (a.as_str(), t.reveal()))
            .collect();
        assert_eq!(pairs, [("ws://h:1", "abc"), ("iroh:ID@127.0.0.1:5", "t@k")]);
        assert_eq!(split_backend_tokens("cpu").unwrap().0, "cpu");
        assert!(split_backend_tokens("remote:@ws://h:1").is_err());
    }

    #[test]
    fn a_token_file_gives_its_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "  tok-1  \nignored\n").unwrap();
        assert_eq!(Token::from_file(&path).unwrap().reveal(), "tok-1");
        std::fs::write(&path, "\n").unwrap();
        assert!(Token::from_file(&path).is_err());
    }
}
