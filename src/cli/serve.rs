//! `attnlab serve`: this machine's best device served to other machines (burn's
//! remote backend) until the process is stopped. Loopback only unless `--host` says
//! otherwise; clients need a token, loopback included (`--token`, `--token-file`,
//! `ATTNLAB_TOKEN`, or one generated and shown once), unless `--no-token` on loopback.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use super::secret_arg::SecretArg;
use crate::config::BackendChoice;
use crate::device::{Listening, ServeOptions, ServeTransport, TOKEN_ENV, Token};

/// `attnlab serve` options.
#[derive(Clone, Debug, clap::Args)]
pub struct ServeArgs {
    /// websocket (trusted networks) or iroh (any network, authenticated, encrypted).
    #[arg(long, value_enum, default_value_t = ServeTransport::Websocket)]
    pub transport: ServeTransport,
    /// Port to listen on (0: any free port; the address is printed).
    #[arg(long, default_value_t = 3000)]
    pub port: u16,
    /// Address to listen on (both transports). The default, 127.0.0.1, serves only
    /// this machine; 0.0.0.0 serves every interface. A token is required either way
    /// (--no-token only on 127.0.0.1).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// The device served: auto (a hardware GPU, else the CPU), cpu or wgpu.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    pub device: BackendChoice,
    /// Iroh: keep the server's key in this file, so its id stays the same.
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// Iroh without n0's relays: direct connections only (clients dial
    /// iroh:<id>@host:port); for a network without the internet.
    #[arg(long)]
    pub no_relays: bool,
    /// The token clients must present (else ATTNLAB_TOKEN; without either, one is
    /// generated and shown once). Visible to other users in the process list: prefer
    /// --token-file or the environment.
    #[arg(long, value_name = "TOKEN", conflicts_with_all = ["token_file", "no_token"], value_parser = SecretArg(parse_token))]
    pub token: Option<Token>,
    /// Read the token from this file (its first line).
    #[arg(long, value_name = "FILE", conflicts_with = "no_token")]
    pub token_file: Option<PathBuf>,
    /// Require no token (ATTNLAB_TOKEN is ignored): any program on this machine may
    /// use the server. Only on loopback (--host 127.0.0.1; Iroh also --no-relays).
    #[arg(long)]
    pub no_token: bool,
}

impl ServeArgs {
    /// The options to serve with: the token from --token, --token-file or
    /// `ATTNLAB_TOKEN`, in that order (none with --no-token).
    fn options(self) -> anyhow::Result<ServeOptions> {
        // Destructured whole, so a new flag cannot be forgotten here.
        let ServeArgs {
            transport,
            port,
            host,
            device,
            identity,
            no_relays,
            token,
            token_file,
            no_token,
        } = self;
        let token = match (token, token_file) {
            (Some(token), _) => Some(token),
            (None, Some(path)) => Some(Token::from_file(&path)?),
            (None, None) if no_token => None,
            (None, None) => Token::from_env()?,
        };
        Ok(ServeOptions {
            transport,
            host,
            port,
            device,
            identity,
            no_relays,
            token,
            no_token,
        })
    }

    /// Serves until stopped: the address clients use and who may connect on stdout,
    /// a generated token once on stderr, every client connecting, refused and
    /// leaving on stderr, time-stamped.
    pub(super) fn execute(self) -> anyhow::Result<ExitCode> {
        let options = self.options()?;
        crate::device::serve(&options, announce, |line| {
            let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
            eprintln!("[{stamp}] {line}");
        })?;
        Ok(ExitCode::SUCCESS)
    }
}

/// `--token`'s value (`attnlab run` uses it too).
pub(super) fn parse_token(text: &str) -> Result<Token, String> {
    Token::new(text, "--token").map_err(|e| e.to_string())
}

/// Prints what clients need; the first line is `attnlab serve: listening on ADDRESS`
/// (tests and scripts read it).
fn announce(listening: &Listening) {
    let address = &listening.address;
    if let Some(token) = &listening.generated_token {
        // Only here, and only on stderr: it is never written anywhere else.
        eprintln!(
            "attnlab serve: clients must present this token (generated now, shown only once):\n  {}\n  e.g. attnlab run FILE --backend remote:{address} --token-file <a file holding it>\n  (or remote:<the token>@{address}; {TOKEN_ENV} is sent only to loopback addresses)",
            token.reveal()
        );
    }
    // Ignored: a closed stdout means nobody reads the address; the server goes on
    // (println! would panic).
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "attnlab serve: listening on {address}\n  access: {}\n  clients: attnlab run FILE --backend remote:{address}",
        listening.access
    );
    let _ = out.flush();
}
