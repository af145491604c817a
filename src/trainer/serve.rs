//! `attnlab serve`: burn's remote server on this machine's best device, so that other
//! machines (the window, `attnlab run --backend remote:ADDR`) train on it. Records,
//! curves and attention maps stay with the client: the server only runs tensor
//! operations. Logs clients as they connect and leave.

use std::net::TcpListener;

use burn::server::telemetry::{TelemetryEvent, TelemetryProbe};
use burn::server::{
    AuthorizationRequest, IrohIdentity, IrohTransport, RemoteServer, WebSocketTransport,
};

use super::backend::select_backend;
use crate::config::BackendChoice;

/// How clients reach the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ServeTransport {
    /// Plain WebSocket: for a trusted network (or an SSH tunnel).
    Websocket,
    /// Iroh: any network, authenticated and encrypted; clients dial the printed id.
    Iroh,
}

/// What `attnlab serve` was asked.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub transport: ServeTransport,
    /// The address to listen on (WebSocket), e.g. `0.0.0.0` or `127.0.0.1`.
    pub host: String,
    /// The port (0: any free port, printed).
    pub port: u16,
    /// The device served: `auto` picks a hardware GPU, else the CPU.
    pub device: BackendChoice,
    /// Iroh: where the server's key is kept, so its id survives restarts.
    pub identity: Option<std::path::PathBuf>,
    /// Iroh: no relays, direct connections only (clients dial `iroh:<id>@host:port`);
    /// for networks without the internet.
    pub no_relays: bool,
}

/// Serves until the process is stopped (Ctrl+C or SIGTERM). `announce` receives the
/// address clients use (printed by the CLI) once the server listens; `log` every
/// client connecting and leaving.
pub fn serve(
    options: &ServeOptions,
    announce: impl FnOnce(&str),
    log: impl Fn(String) + Send + Sync + Clone + 'static,
) -> anyhow::Result<()> {
    let (device, info) = select_backend(options.device)?;
    log(format!(
        "serving {} ({}; {})",
        info.backend, info.adapter, info.reason
    ));
    let (probe, mut events) = TelemetryProbe::channel(4096);
    let on_event = log.clone();
    std::thread::Builder::new()
        .name("attnlab-serve-log".into())
        .spawn(move || {
            while let Some(event) = pollster::block_on(events.recv()) {
                match &*event {
                    TelemetryEvent::SessionOpened { session, device } => {
                        on_event(format!("session {session} opened on device {device}"));
                    }
                    TelemetryEvent::SessionClosed { session } => {
                        on_event(format!("session {session} closed (the client left)"));
                    }
                    _ => {}
                }
            }
        })?;
    let on_connect = log.clone();
    let server = RemoteServer::new([device])
        .with_telemetry(probe)
        .with_authorizer(move |request: AuthorizationRequest<'_>| {
            on_connect(format!("client {} connected", request.client));
            Ok(())
        });
    match options.transport {
        ServeTransport::Websocket => {
            let listener =
                TcpListener::bind((options.host.as_str(), options.port)).map_err(|e| {
                    anyhow::anyhow!("cannot listen on {}:{}: {e}", options.host, options.port)
                })?;
            let local = listener.local_addr()?;
            let shown = if local.ip().is_unspecified() {
                format!("ws://<this machine's address>:{}", local.port())
            } else {
                format!("ws://{local}")
            };
            announce(&shown);
            server.serve(WebSocketTransport::from_listener(listener))?;
        }
        ServeTransport::Iroh => {
            let identity = match &options.identity {
                Some(path) => IrohIdentity::load_or_create(path)?,
                None => IrohIdentity::random(),
            };
            let mut transport = IrohTransport::new(identity);
            if options.port != 0 {
                transport = transport.with_port(options.port);
            }
            if options.no_relays {
                anyhow::ensure!(
                    options.port != 0,
                    "--no-relays needs a --port: clients dial iroh:<id>@host:PORT"
                );
                transport = transport.with_relays(burn::server::IrohRelays::Disabled);
                let host = if options.host == "0.0.0.0" {
                    "<this machine's address>"
                } else {
                    options.host.as_str()
                };
                announce(&format!("iroh:{}@{host}:{}", transport.id(), options.port));
            } else {
                announce(&format!("iroh:{}", transport.id()));
            }
            server.serve(transport)?;
        }
    }
    Ok(())
}
