//! `attnlab serve`: this machine's best device served to other machines (burn's
//! remote backend) until the process is stopped.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::BackendChoice;
use crate::trainer::{ServeOptions, ServeTransport};

/// `attnlab serve` options.
#[derive(Clone, Debug, clap::Args)]
pub struct ServeArgs {
    /// websocket (trusted networks) or iroh (any network, authenticated, encrypted).
    #[arg(long, value_enum, default_value_t = ServeTransport::Websocket)]
    pub transport: ServeTransport,
    /// Port to listen on (0: any free port; the address is printed).
    #[arg(long, default_value_t = 3000)]
    pub port: u16,
    /// Address to listen on (WebSocket): 0.0.0.0 for every interface.
    #[arg(long, default_value = "0.0.0.0")]
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
}

impl From<ServeArgs> for ServeOptions {
    fn from(args: ServeArgs) -> Self {
        // Destructured whole, so a new flag cannot be forgotten here.
        let ServeArgs {
            transport,
            port,
            host,
            device,
            identity,
            no_relays,
        } = args;
        ServeOptions {
            transport,
            host,
            port,
            device,
            identity,
            no_relays,
        }
    }
}

impl ServeArgs {
    /// Serves until stopped: the address clients use on stdout, every client
    /// connecting and leaving on stderr, time-stamped.
    pub(super) fn execute(self) -> anyhow::Result<ExitCode> {
        let options: ServeOptions = self.into();
        crate::trainer::serve(
            &options,
            |address| {
                // Ignored: a closed stdout means nobody reads the address; the
                // server goes on (println! would panic).
                let mut out = std::io::stdout().lock();
                let _ = writeln!(
                    out,
                    "attnlab serve: listening on {address}\n  clients: attnlab run FILE --backend remote:{address}"
                );
                let _ = out.flush();
            },
            |line| {
                let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
                eprintln!("[{stamp}] {line}");
            },
        )?;
        Ok(ExitCode::SUCCESS)
    }
}
