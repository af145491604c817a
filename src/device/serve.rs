//! `attnlab serve`: burn's remote server on this machine's best device, so that other
//! machines (the window, `attnlab run --backend remote:ADDR`) train on it. Records,
//! curves and attention maps stay with the client: the server only runs tensor
//! operations. Logs clients as they connect, are refused and leave.
//!
//! Safe by default: both transports listen on the loopback interface unless `--host`
//! names another address, and every server requires a token, checked by burn's
//! `TokenAuthorizer`, loopback included (any local program, and any web page the user
//! visits, can reach a loopback port): when none is given, one is generated from the
//! system's random number generator and shown once. `--no-token` opts out, only for a
//! server nothing beyond this machine can reach (not a non-loopback address, nor Iroh
//! through relays, which reach any bound address). The WebSocket server sits behind
//! [`super::gate`], which refuses upgrades from web pages (an `Origin` header).
//!
//! Limits burn 0.22.1 does not let a server set (docs/remote-and-security.md says so): the
//! largest message (1 GiB: `MAX_MESSAGE_SIZE` in burn-communication's
//! `websocket/base.rs`, `MAX_FRAME_SIZE` in burn-remote's `transport/iroh/node.rs`),
//! the number of sessions (none), and which servers a session may fetch tensors from.

use std::net::{Ipv6Addr, SocketAddr, TcpListener, ToSocketAddrs};

use burn::server::telemetry::{TelemetryEvent, TelemetryProbe};
use burn::server::{
    AuthorizationRequest, BURN_REMOTE_ALPN, ClientId, IrohIdentity, PeerAuthorizer, RemoteServer,
    ServerLogging, TokenAuthorizer, WebSocketTransport,
};

use super::backend::select_backend;
use super::credentials::{TOKEN_ENV, Token};
use super::gate::{self, Forwarded};
use crate::config::BackendChoice;

/// How clients reach the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ServeTransport {
    /// Plain WebSocket: for a trusted network (or an SSH tunnel); a token travels
    /// unencrypted.
    Websocket,
    /// Iroh: any network, encrypted, the server authenticated by its key; clients dial
    /// the printed id.
    Iroh,
}

/// What `attnlab serve` was asked.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub transport: ServeTransport,
    /// The address to listen on (both transports), e.g. `127.0.0.1` (loopback, the
    /// default) or `0.0.0.0` (every interface, which requires a token).
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
    /// The token clients must present. `None`: a generated one, unless `no_token`.
    pub token: Option<Token>,
    /// `--no-token`: no token at all, allowed only for a server nothing beyond this
    /// machine can reach.
    pub no_token: bool,
}

/// What the server tells its operator once it listens.
#[derive(Clone, Debug)]
pub struct Listening {
    /// The address clients use: `ws://host:port`, `iroh:<id>` or `iroh:<id>@host:port`.
    pub address: String,
    /// Who may open a session, in words.
    pub access: String,
    /// The token generated for this server, to be shown once (`None` when the
    /// operator gave one, or none is required).
    pub generated_token: Option<Token>,
}

/// Who may open a session.
#[derive(Clone, Debug)]
enum Access {
    /// Any program on this machine (`--no-token`): only for a server bound to
    /// loopback.
    Open,
    /// Clients presenting this token.
    Token {
        /// The token.
        token: Token,
        /// Whether it was generated (and must be shown once).
        generated: bool,
    },
}

impl Access {
    /// A token given is required; without one, a generated one is, unless
    /// `no_token` asks for none, which only a server this machine alone can reach
    /// (`loopback_only`) may do.
    fn choose(token: Option<Token>, no_token: bool, loopback_only: bool) -> anyhow::Result<Self> {
        Ok(match token {
            Some(token) => Self::Token {
                token,
                generated: false,
            },
            None if no_token => {
                anyhow::ensure!(
                    loopback_only,
                    "--no-token is refused: other machines can reach this server (it listens beyond the loopback interface, or through Iroh's relays), so it requires a token; drop --no-token (a token is generated and shown once), or serve on --host 127.0.0.1 (with Iroh, --no-relays too)"
                );
                Self::Open
            }
            None => Self::Token {
                token: Token::generate()?,
                generated: true,
            },
        })
    }

    /// The words for [`Listening::access`].
    fn describe(&self, transport: ServeTransport) -> String {
        let clients = format!(
            "clients give it with remote:TOKEN@ADDRESS, --token or --token-file with --backend remote:ADDRESS, their credentials file, or {TOKEN_ENV} on this machine"
        );
        let plain = if transport == ServeTransport::Websocket {
            "; WebSocket sends it unencrypted: across an untrusted network use an SSH tunnel or --transport iroh"
        } else {
            ""
        };
        match self {
            Self::Open => "loopback only, no token (--no-token): any program on this machine may use it; web pages are refused".into(),
            Self::Token { generated: false, .. } => {
                format!("token required ({clients}{plain})")
            }
            Self::Token { generated: true, .. } => format!(
                "token required, generated now and shown once on stderr ({clients}; choose one with --token or {TOKEN_ENV}{plain})"
            ),
        }
    }

    /// The token to show once, if generated.
    fn generated(&self) -> Option<Token> {
        match self {
            Self::Token {
                token,
                generated: true,
            } => Some(token.clone()),
            _ => None,
        }
    }

    /// The authorizer: a WebSocket client only through the `gate` (when given), then
    /// the token checked by burn's `TokenAuthorizer`; every decision logged with the
    /// real client's address (never the token).
    fn authorizer<L: Fn(String) + Send + Sync + 'static>(
        &self,
        log: L,
        gate: Option<Forwarded>,
    ) -> anyhow::Result<impl PeerAuthorizer + use<L>> {
        let check = match self {
            Self::Open => None,
            Self::Token { token, .. } => Some(
                TokenAuthorizer::new(token.reveal())
                    .map_err(|e| anyhow::anyhow!("cannot check the token: {e}"))?,
            ),
        };
        Ok(move |request: AuthorizationRequest<'_>| {
            let client = through_gate(gate.as_ref(), request.client, &log)?;
            let presented = !request.credential.is_empty();
            match check.as_ref().map_or(Ok(()), |c| c.authorize(request)) {
                Ok(()) => {
                    log(format!("client {client} connected"));
                    Ok(())
                }
                Err(reason) => {
                    let why = if presented {
                        "a wrong token"
                    } else {
                        "no token"
                    };
                    log(format!("refused {client}: it presented {why}"));
                    Err(reason)
                }
            }
        })
    }
}

/// The client as the log names it: for a WebSocket client behind the `gate`, the real
/// address the gate forwarded from; refused (and logged) when the gate did not forward
/// it, i.e. a program dialled burn's internal port directly.
fn through_gate(
    gate: Option<&Forwarded>,
    client: ClientId,
    log: &impl Fn(String),
) -> Result<String, String> {
    match (gate, client) {
        (Some(gate), ClientId::WebSocket(seen)) => match gate.client_of(seen) {
            Some(real) => Ok(format!("WebSocket client {real}")),
            None => {
                log(format!(
                    "refused {seen}: it dialled the server's internal port, not its address"
                ));
                Err("not through the gate".into())
            }
        },
        (_, client) => Ok(client.to_string()),
    }
}

/// Serves until the process is stopped (Ctrl+C or SIGTERM). `announce` receives what
/// clients need (printed by the CLI) once the server listens; `log` every client
/// connecting, refused and leaving.
pub fn serve(
    options: &ServeOptions,
    announce: impl FnOnce(&Listening),
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
    let server = RemoteServer::new([device]).with_telemetry(probe);
    match options.transport {
        ServeTransport::Websocket => serve_websocket(options, server, announce, log),
        ServeTransport::Iroh => serve_iroh(options, server, announce, log),
    }
}

fn serve_websocket(
    options: &ServeOptions,
    server: RemoteServer,
    announce: impl FnOnce(&Listening),
    log: impl Fn(String) + Send + Sync + Clone + 'static,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind((options.host.as_str(), options.port))
        .map_err(|e| anyhow::anyhow!("cannot listen on {}:{}: {e}", options.host, options.port))?;
    let local = listener.local_addr()?;
    let access = Access::choose(
        options.token.clone(),
        options.no_token,
        local.ip().is_loopback(),
    )?;
    let (internal, forwarded) = gate::start(listener, log.clone())?;
    let server = server.with_authorizer(access.authorizer(log, Some(forwarded))?);
    let address = if local.ip().is_unspecified() {
        format!("ws://<this machine's address>:{}", local.port())
    } else {
        format!("ws://{local}")
    };
    announce(&Listening {
        address,
        access: access.describe(ServeTransport::Websocket),
        generated_token: access.generated(),
    });
    server.serve(WebSocketTransport::from_listener(internal))?;
    Ok(())
}

/// Iroh on an endpoint of attnlab's own, bound where `--host` says (burn's
/// `IrohTransport` binds every interface), without port mapping on the router
/// (UPnP/NAT-PMP would open the server beyond what the operator asked).
fn serve_iroh(
    options: &ServeOptions,
    server: RemoteServer,
    announce: impl FnOnce(&Listening),
    log: impl Fn(String) + Send + Sync + Clone + 'static,
) -> anyhow::Result<()> {
    use iroh::protocol::Router;

    let identity = match &options.identity {
        Some(path) => IrohIdentity::load_or_create(path)?,
        None => IrohIdentity::random(),
    };
    let bind = (options.host.as_str(), options.port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| anyhow::anyhow!("cannot resolve --host {}", options.host))?;
    let relays = !options.no_relays;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("attnlab-serve-iroh")
        .build()?;
    ServerLogging::install();
    runtime.block_on(async move {
        let endpoint = iroh_endpoint(&identity, bind, relays).await?;
        let sockets = endpoint.bound_sockets();
        log(format!("Iroh sockets bound: {sockets:?}"));
        // Through a relay, any bound address is reachable from anywhere.
        let loopback_only = !relays && sockets.iter().all(|s| s.ip().is_loopback());
        let access = Access::choose(options.token.clone(), options.no_token, loopback_only)?;
        let protocol = server
            .with_authorizer(access.authorizer(log.clone(), None)?)
            .into_protocol(&endpoint)?;
        let port = sockets.first().map_or(bind.port(), SocketAddr::port);
        let address = iroh_address(&identity.id().to_string(), bind, port, relays);
        let router = Router::builder(endpoint)
            .accept(BURN_REMOTE_ALPN, protocol)
            .spawn();
        announce(&Listening {
            address,
            access: access.describe(ServeTransport::Iroh),
            generated_token: access.generated(),
        });
        let stopped = shutdown_signal().await;
        if let Err(e) = router.shutdown().await {
            log(format!("the Iroh router did not shut down cleanly: {e}"));
        }
        stopped
    })
}

/// An Iroh endpoint with `identity`'s key bound on `bind` only (and IPv6's any
/// address beside IPv4's, as burn binds), through public relays only when `relays`.
async fn iroh_endpoint(
    identity: &IrohIdentity,
    bind: SocketAddr,
    relays: bool,
) -> anyhow::Result<iroh::Endpoint> {
    use iroh::endpoint::{BindOpts, PortmapperConfig, QuicTransportConfig, presets};
    use iroh::{Endpoint, RelayMode, SecretKey};

    let iroh_error = |what: &str, e: &dyn std::fmt::Display| {
        anyhow::anyhow!("cannot serve over Iroh on {bind}: {what}: {e}")
    };
    let builder = if relays {
        Endpoint::builder(presets::N0)
    } else {
        Endpoint::builder(presets::Minimal).relay_mode(RelayMode::Disabled)
    };
    let mut builder = builder
        // Off, as burn's own endpoints have it (iroh#4555: a refused
        // segmentation-offloaded batch stalls every connection).
        .transport_config(
            QuicTransportConfig::builder()
                .enable_segmentation_offload(false)
                .build(),
        )
        .portmapper_config(PortmapperConfig::Disabled)
        .secret_key(SecretKey::from_bytes(&identity.to_bytes()))
        .alpns(vec![BURN_REMOTE_ALPN.to_vec()])
        .clear_ip_transports()
        .bind_addr(bind)
        .map_err(|e| iroh_error("bad address", &e))?;
    if bind.ip().is_unspecified() && bind.is_ipv4() {
        // Every interface: IPv6 too where the host has it, as burn binds.
        let any6 = SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), bind.port());
        builder = builder
            .bind_addr_with_opts(any6, BindOpts::default().set_is_required(false))
            .map_err(|e| iroh_error("bad address", &e))?;
    }
    builder
        .bind()
        .await
        .map_err(|e| iroh_error("cannot bind", &e))
}

/// The address clients give (`remote:ADDRESS`): the node id alone through relays,
/// else with the socket it listens on.
fn iroh_address(id: &str, bind: SocketAddr, port: u16, relays: bool) -> String {
    if relays {
        format!("iroh:{id}")
    } else if bind.ip().is_unspecified() {
        format!("iroh:{id}@<this machine's address>:{port}")
    } else {
        format!("iroh:{id}@{}", SocketAddr::new(bind.ip(), port))
    }
}

/// Resolves when the process is asked to stop (Ctrl+C, or SIGTERM on Unix).
async fn shutdown_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    let terminate = {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        async move {
            terminate.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        result = tokio::signal::ctrl_c() => Ok(result?),
        () = terminate => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_always_required_unless_no_token_on_loopback() {
        for loopback_only in [true, false] {
            let generated = Access::choose(None, false, loopback_only).unwrap();
            let token = generated.generated().expect("a generated token");
            assert!(token.reveal().len() >= 32);
        }
        let open = Access::choose(None, true, true).unwrap();
        assert!(matches!(open, Access::Open));
        assert!(
            open.describe(ServeTransport::Websocket)
                .starts_with("loopback only, no token")
        );
        let e = Access::choose(None, true, false).unwrap_err().to_string();
        assert!(e.contains("--no-token is refused"), "{e}");
        let given = Token::new("given", "test").unwrap();
        let access = Access::choose(Some(given), false, true).unwrap();
        assert!(matches!(
            access,
            Access::Token {
                generated: false,
                ..
            }
        ));
        assert!(access.generated().is_none());
        assert!(
            access
                .describe(ServeTransport::Websocket)
                .contains("unencrypted")
        );
    }

    #[test]
    fn a_websocket_client_not_forwarded_by_the_gate_is_refused() {
        let gate = Forwarded::default();
        let seen: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let logged = std::sync::Mutex::new(Vec::new());
        let log = |line: String| logged.lock().unwrap().push(line);
        assert!(through_gate(Some(&gate), ClientId::WebSocket(seen), &log).is_err());
        assert!(logged.lock().unwrap()[0].contains("internal port"));
        let label = through_gate(None, ClientId::WebSocket(seen), &log).unwrap();
        assert_eq!(label, "WebSocket client 127.0.0.1:5000");
    }
}
