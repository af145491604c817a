//! Tokens for `attnlab serve`: the shared secret a server checks (burn's
//! `TokenAuthorizer`) and its clients present (`RemoteHost::with_credential`).
//!
//! A token never enters a run's settings, so it is never written into a record
//! (`config.toml`, `summary.json`), an export or the window's remembered state.
//!
//! A token is presented only to the host it was given for, since a server address may
//! come from a file someone else wrote (an experiment file, a record's `config.toml`
//! read by `--resume`, `--fork` and the window's Resume): a token given on the command
//! line (`remote:TOKEN@ADDRESS` in `--backend`, or `--token`/`--token-file` for the
//! addresses of `--backend`) goes into a process-wide store by address; the
//! credentials file ([`credentials_path`]) maps addresses to tokens; and
//! `ATTNLAB_TOKEN` goes only to loopback addresses (`ws://127.x`, `ws://[::1]`,
//! `ws://localhost`). [`credential_for`] looks an address up in that order, and says
//! when a token was withheld because it was given for another host.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::Read;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use super::credentials_file::read_entries;
pub use super::credentials_file::{FileRefused, credentials_path};

/// The environment variable holding the token a client presents to loopback servers
/// (`ws://127.0.0.1:PORT`, `ws://[::1]:PORT`, `ws://localhost:PORT`) it has no
/// other token for, and the token `attnlab serve` requires when `--token` is not
/// given.
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
    /// The credentials file cannot be used (a link, readable by others, malformed).
    #[error(transparent)]
    CredentialsFile(#[from] FileRefused),
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

/// The tokens the command line gave this process, by normalised server address, and
/// the addresses already warned about (a token sent in clear).
#[derive(Default)]
struct Store {
    by_address: HashMap<String, Token>,
    warned_in_clear: HashSet<String>,
}

static STORE: Mutex<Option<Store>> = Mutex::new(None);

fn with_store<R>(f: impl FnOnce(&mut Store) -> R) -> R {
    let mut store = STORE.lock().unwrap_or_else(PoisonError::into_inner);
    f(store.get_or_insert_with(Store::default))
}

/// Presents `token` to the server at `address` (`ws://host:port` or `iroh:...`) and
/// to no other.
pub fn set_server_token(address: &str, token: Token) {
    with_store(|s| s.by_address.insert(normalise_address(address), token));
}

/// What a client presents to one server address.
#[derive(Clone, Debug)]
pub enum Presented {
    /// The token given for this address.
    Token(Token),
    /// No token: none was given for this address. `Some` when the process holds
    /// tokens for other hosts, which are not sent here.
    Nothing(Option<Withheld>),
}

/// Why no token went to an address although the process holds one: a token goes only
/// to the host it was given for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Withheld {
    /// Tokens were given (on the command line, in the credentials file) for other
    /// addresses.
    pub other_hosts: bool,
    /// [`TOKEN_ENV`] is set, but the address is not a loopback one.
    pub env_not_loopback: bool,
}

impl fmt::Display for Withheld {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "the credential was not sent to this address because it was given for another host",
        )?;
        match (self.other_hosts, self.env_not_loopback) {
            (true, true) => write!(
                f,
                " (the tokens held name other addresses, and {TOKEN_ENV} goes only to loopback addresses)"
            ),
            (true, false) => f.write_str(" (the tokens held name other addresses)"),
            (false, _) => write!(f, " ({TOKEN_ENV} goes only to loopback addresses)"),
        }
    }
}

/// What to present to the server at `address`: the token the command line gave for
/// it, else the credentials file's, else [`TOKEN_ENV`]'s when the address is a
/// loopback one, else nothing (saying so when tokens are held for other hosts).
/// Fails when the credentials file or [`TOKEN_ENV`] cannot be used.
pub fn credential_for(address: &str) -> Result<Presented, TokenError> {
    let key = normalise_address(address);
    let given = with_store(|s| s.by_address.clone());
    if let Some(token) = given.get(&key) {
        return Ok(Presented::Token(token.clone()));
    }
    let file = match credentials_path() {
        Some(path) => file_tokens(&path)?,
        None => HashMap::new(),
    };
    Ok(choose(&key, &given, &file, Token::from_env()?))
}

/// The tokens of the credentials file at `path`, by normalised address (none when it
/// does not exist).
fn file_tokens(path: &Path) -> Result<HashMap<String, Token>, TokenError> {
    let Some(entries) = read_entries(path)? else {
        return Ok(HashMap::new());
    };
    entries
        .into_iter()
        .map(|(address, text)| {
            let origin = format!(
                "the credentials file {}, the entry for {address}",
                path.display()
            );
            Ok((normalise_address(&address), Token::new(&text, &origin)?))
        })
        .collect()
}

/// [`credential_for`] on the tokens given (`given`), the credentials file's (`file`)
/// and [`TOKEN_ENV`]'s (`env`); `key` is a normalised address.
fn choose(
    key: &str,
    given: &HashMap<String, Token>,
    file: &HashMap<String, Token>,
    env: Option<Token>,
) -> Presented {
    if let Some(token) = given.get(key).or_else(|| file.get(key)) {
        return Presented::Token(token.clone());
    }
    match env {
        Some(token) if is_loopback(key) => Presented::Token(token),
        env => {
            let withheld = Withheld {
                other_hosts: !given.is_empty() || !file.is_empty(),
                env_not_loopback: env.is_some(),
            };
            Presented::Nothing(
                (withheld.other_hosts || withheld.env_not_loopback).then_some(withheld),
            )
        }
    }
}

/// `address` as tokens are looked up: without surrounding spaces or trailing `/`, a
/// `ws://` address in lower case.
pub fn normalise_address(address: &str) -> String {
    let trimmed = address.trim().trim_end_matches('/');
    match trimmed.get(..5) {
        Some(scheme) if scheme.eq_ignore_ascii_case("ws://") => {
            format!("ws://{}", trimmed[5..].to_ascii_lowercase())
        }
        _ => trimmed.to_string(),
    }
}

/// Whether `address` is a WebSocket address on this machine's loopback interface
/// (`ws://127.x.x.x:PORT`, `ws://[::1]:PORT`, `ws://localhost:PORT`). Iroh addresses
/// never are (relays reach any server).
pub fn is_loopback(address: &str) -> bool {
    let key = normalise_address(address);
    let Some(host_port) = key.strip_prefix("ws://") else {
        return false;
    };
    let host = match host_port.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host_port
            .rsplit_once(':')
            .map_or(host_port, |(host, _)| host),
    };
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether a token sent to `address` would cross the network in clear (`ws://` to a
/// host other than loopback), answered `true` once per address so that the warning
/// is given once.
pub fn first_send_in_clear(address: &str) -> bool {
    let key = normalise_address(address);
    key.starts_with("ws://") && !is_loopback(&key) && with_store(|s| s.warned_in_clear.insert(key))
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

    fn tokens(pairs: &[(&str, &str)]) -> HashMap<String, Token> {
        pairs
            .iter()
            .map(|(a, t)| (normalise_address(a), Token::new(t, "test").unwrap()))
            .collect()
    }

    fn presented(p: &Presented) -> Option<&str> {
        match p {
            Presented::Token(t) => Some(t.reveal()),
            Presented::Nothing(_) => None,
        }
    }

    #[test]
    fn a_token_goes_only_to_the_address_it_was_given_for() {
        let given = tokens(&[("ws://10.0.0.5:3000", "cli-token")]);
        let file = tokens(&[("iroh:abc", "file-token")]);
        let none = HashMap::new();
        let at = |a: &str| choose(&normalise_address(a), &given, &file, None);
        assert_eq!(presented(&at("ws://10.0.0.5:3000")), Some("cli-token"));
        assert_eq!(presented(&at("WS://10.0.0.5:3000/")), Some("cli-token"));
        assert_eq!(presented(&at("iroh:abc")), Some("file-token"));
        // A record or experiment file naming another host gets nothing, and says why.
        for record in ["ws://10.0.0.5:3001", "ws://evil.example:3000", "iroh:abd"] {
            let Presented::Nothing(Some(why)) = at(record) else {
                panic!("{record} was given a token");
            };
            assert!(why.other_hosts && !why.env_not_loopback);
            assert!(why.to_string().contains("given for another host"), "{why}");
        }
        assert!(matches!(
            choose("ws://h:1", &none, &none, None),
            Presented::Nothing(None)
        ));
    }

    #[test]
    fn the_environment_token_goes_only_to_loopback_addresses() {
        let none = HashMap::new();
        let env = || Some(Token::new("env-token", "test").unwrap());
        for address in [
            "ws://127.0.0.1:3000",
            "ws://127.1.2.3:1/",
            "ws://[::1]:3000",
            "ws://localhost:3000",
        ] {
            let p = choose(&normalise_address(address), &none, &none, env());
            assert_eq!(presented(&p), Some("env-token"), "{address}");
            assert!(is_loopback(address), "{address}");
        }
        for address in [
            "ws://10.0.0.5:3000",
            "ws://127.0.0.1.evil.example:3000",
            "ws://127.0.0.1:1@evil.example:3000",
            "ws://localhost.evil.example:3000",
            "iroh:abc@127.0.0.1:4",
        ] {
            let Presented::Nothing(Some(why)) =
                choose(&normalise_address(address), &none, &none, env())
            else {
                panic!("{address} was given the environment's token");
            };
            assert!(why.env_not_loopback && !why.other_hosts, "{address}");
            assert!(why.to_string().contains(TOKEN_ENV), "{why}");
        }
    }

    #[test]
    fn a_token_in_clear_is_warned_about_once_per_address() {
        assert!(first_send_in_clear("ws://192.0.2.7:3000"));
        assert!(!first_send_in_clear("ws://192.0.2.7:3000/"));
        assert!(!first_send_in_clear("ws://127.0.0.1:3000"));
        assert!(!first_send_in_clear("iroh:abc"));
    }

    #[cfg(unix)]
    #[test]
    fn the_credentials_file_must_be_private_and_not_a_link() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials.toml");
        assert!(file_tokens(&path).unwrap().is_empty(), "no file, no tokens");
        std::fs::write(
            &path,
            "[tokens]\n\"ws://10.0.0.5:3000/\" = \"f1le-token\"\n",
        )
        .unwrap();
        let mode = |m: u32| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(m));
        for open in [0o644, 0o640, 0o602] {
            mode(open).unwrap();
            let e = file_tokens(&path).unwrap_err().to_string();
            assert!(e.contains(&path.display().to_string()), "{e}");
            assert!(
                e.contains("other users") && !e.contains("f1le-token"),
                "{e}"
            );
        }
        mode(0o600).unwrap();
        let found = file_tokens(&path).unwrap();
        assert_eq!(found["ws://10.0.0.5:3000"].reveal(), "f1le-token");
        let link = dir.path().join("link.toml");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let e = file_tokens(&link).unwrap_err().to_string();
        assert!(
            e.contains("symbolic link") && !e.contains("f1le-token"),
            "{e}"
        );
        std::fs::write(&path, "[tokens]\n\"ws://h:1\" = \"two words\"\n").unwrap();
        let e = file_tokens(&path).unwrap_err().to_string();
        assert!(e.contains("ws://h:1") && !e.contains("words"), "{e}");
    }
}
