//! Choosing where to train: wgpu on a real GPU, burn's `flex` CPU backend otherwise,
//! or a remote server running `attnlab serve` (burn's remote backend).
//!
//! `auto` never picks a software adapter (llvmpipe, SwiftShader): measured here, wgpu
//! on llvmpipe ran a small model at 0.3 steps/s after a 139 s first step, against
//! 6.6 steps/s on `flex`.

use std::sync::OnceLock;
use std::time::Duration;

use burn::tensor::wgpu::wgpu;
use burn::tensor::{Device, DeviceKind};

use super::credentials::{
    Presented, TOKEN_ENV, TokenError, Withheld, credential_for, credentials_path,
    first_send_in_clear,
};
use crate::config::{BackendChoice, BackendSetting};
use crate::records::BackendInfo;

/// No device can be had for the backend asked for.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// `backend = "wgpu"` on a machine without any wgpu adapter.
    #[error(
        "backend = \"wgpu\" but no wgpu adapter was found (is a Vulkan driver installed? \
         Debian: mesa-vulkan-drivers); use \"auto\" or \"cpu\""
    )]
    NoWgpuAdapter,
    /// A remote server could not be reached in time.
    #[error("cannot reach the remote server {address}: {reason}")]
    Unreachable {
        /// `ws://host:port` or `iroh:<id>`.
        address: String,
        /// What happened.
        reason: String,
    },
    /// A remote server's authorizer refused the credential this client presented.
    #[error(
        "the remote server {address} refused this client's credential: {}",
        refusal(*sent_token, withheld.as_ref())
    )]
    Refused {
        /// `ws://host:port` or `iroh:<id>`.
        address: String,
        /// Whether a token was sent (a wrong one) or none.
        sent_token: bool,
        /// Why none was sent although the process holds tokens for other hosts.
        withheld: Option<Withheld>,
    },
    /// The token to present is unusable (e.g. `ATTNLAB_TOKEN` holds a space).
    #[error(transparent)]
    Token(#[from] TokenError),
    /// A fault injected by a test (`trainer::Fault::NoBackend`).
    #[error("no backend available (injected for a test)")]
    Injected,
}

/// How to give a server its token, for [`BackendError::Refused`].
fn how_to_allow() -> String {
    let file = credentials_path().map_or_else(
        || "attnlab/credentials.toml under $XDG_CONFIG_HOME or ~/.config".to_string(),
        |p| p.display().to_string(),
    );
    format!(
        "to send one to this address, give --backend remote:TOKEN@ADDRESS (or --backend \
         remote:ADDRESS with --token or --token-file), or put the address in the credentials \
         file {file} (\"ADDRESS\" = \"TOKEN\" under [tokens], readable only by you); {TOKEN_ENV} \
         goes only to loopback addresses"
    )
}

/// The reason of [`BackendError::Refused`].
fn refusal(sent_token: bool, withheld: Option<&Withheld>) -> String {
    match (sent_token, withheld) {
        (true, _) => {
            "the token sent is not the server's (check the token given for this address)".into()
        }
        (false, Some(withheld)) => {
            format!(
                "it requires a token and none was sent: {withheld}; {}",
                how_to_allow()
            )
        }
        (false, None) => format!("it requires a token and none was sent; {}", how_to_allow()),
    }
}

/// The CPU backend attnlab trains on.
pub enum CpuBackend {}

impl CpuBackend {
    /// burn's pure-Rust CPU backend.
    pub fn device() -> Device {
        Device::flex()
    }

    /// A description for reports, e.g. `flex (CPU, 2 threads)`.
    pub fn describe() -> String {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        format!("flex (CPU, {threads} threads)")
    }
}

/// A wgpu adapter as seen before any burn device exists.
#[derive(Clone, Debug)]
struct Adapter {
    name: String,
    device_type: wgpu::DeviceType,
    backend: wgpu::Backend,
}

impl Adapter {
    fn is_hardware(&self) -> bool {
        matches!(
            self.device_type,
            wgpu::DeviceType::DiscreteGpu
                | wgpu::DeviceType::IntegratedGpu
                | wgpu::DeviceType::VirtualGpu
        )
    }

    fn kind(&self) -> DeviceKind {
        match self.device_type {
            wgpu::DeviceType::DiscreteGpu => DeviceKind::DiscreteGpu(0),
            wgpu::DeviceType::IntegratedGpu => DeviceKind::IntegratedGpu(0),
            wgpu::DeviceType::VirtualGpu => DeviceKind::VirtualGpu(0),
            wgpu::DeviceType::Cpu => DeviceKind::Cpu,
            wgpu::DeviceType::Other => DeviceKind::DefaultDevice,
        }
    }

    fn describe(&self) -> String {
        format!("{} ({:?}, {:?})", self.name, self.device_type, self.backend)
    }
}

/// Every wgpu adapter, best first (discrete, integrated, virtual, then the rest);
/// enumerated once per process.
fn adapters() -> &'static [Adapter] {
    static ADAPTERS: OnceLock<Vec<Adapter>> = OnceLock::new();
    ADAPTERS.get_or_init(|| {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let mut found: Vec<Adapter> =
            pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
                .iter()
                .map(|a| {
                    let info = a.get_info();
                    Adapter {
                        name: info.name,
                        device_type: info.device_type,
                        backend: info.backend,
                    }
                })
                .collect();
        let rank = |t: wgpu::DeviceType| match t {
            wgpu::DeviceType::DiscreteGpu => 0,
            wgpu::DeviceType::IntegratedGpu => 1,
            wgpu::DeviceType::VirtualGpu => 2,
            wgpu::DeviceType::Other => 3,
            wgpu::DeviceType::Cpu => 4,
        };
        found.sort_by_key(|a| rank(a.device_type));
        found
    })
}

/// Picks the device for a run and says why. Fails only when `wgpu` is forced and no
/// adapter exists.
pub fn select_backend(choice: BackendChoice) -> Result<(Device, BackendInfo), BackendError> {
    let cpu = |reason: String| {
        (
            CpuBackend::device(),
            BackendInfo {
                backend: "cpu".into(),
                adapter: CpuBackend::describe(),
                reason,
            },
        )
    };
    let gpu = |adapter: &Adapter, reason: String| {
        (
            Device::wgpu(adapter.kind()),
            BackendInfo {
                backend: "wgpu".into(),
                adapter: adapter.describe(),
                reason,
            },
        )
    };
    Ok(match choice {
        BackendChoice::Cpu => cpu("backend = \"cpu\"".into()),
        BackendChoice::Wgpu => match adapters().first() {
            Some(adapter) => gpu(adapter, "backend = \"wgpu\"".into()),
            None => return Err(BackendError::NoWgpuAdapter),
        },
        BackendChoice::Auto => {
            let all = adapters();
            match all.iter().find(|a| a.is_hardware()) {
                Some(adapter) => gpu(adapter, "auto: a hardware GPU adapter was found".into()),
                None if all.is_empty() => cpu("auto: no GPU adapter".into()),
                None => cpu(format!(
                    "auto: only software adapters ({}), which train far slower than the CPU backend",
                    all.iter()
                        .map(|a| a.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            }
        }
    })
}

/// This machine's GPU as the Devices list shows it: the hardware adapter wgpu would
/// train on, or why there is none.
pub fn local_gpu() -> String {
    let all = adapters();
    match all.iter().find(|a| a.is_hardware()) {
        Some(a) => a.describe(),
        None if all.is_empty() => "none (no wgpu adapter)".into(),
        None => format!(
            "none: only software adapters ({}), not used",
            all.iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Longest wait to connect to a remote server (burn retries a refused connection for
/// about 16 s; an address that never answers would otherwise wait for the system's
/// TCP timeout).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(25);

/// The device for a run: the remote server `assigned` to the worker training it (a
/// pool of servers trains every run it is given there), else `setting`'s local
/// device, or its first remote address.
pub fn select_device(
    setting: &BackendSetting,
    assigned: Option<&str>,
) -> Result<(Device, BackendInfo), BackendError> {
    match (setting, assigned) {
        (BackendSetting::Local(choice), None) => select_backend(*choice),
        _ => {
            let addresses = setting.addresses();
            let address = assigned
                .map(str::to_string)
                .or_else(|| addresses.first().cloned())
                .unwrap_or_default();
            let device = connect(&address)?;
            Ok((
                device,
                BackendInfo {
                    backend: "remote".into(),
                    adapter: address.clone(),
                    reason: format!("train.backend: the remote server {address}"),
                },
            ))
        }
    }
}

/// Connects to a server started with `attnlab serve`, on a helper thread so a server
/// that never answers costs at most [`CONNECT_TIMEOUT`]. Presents the token the
/// process holds for `address` ([`super::credentials::credential_for`]), if any,
/// warning once on stderr before one crosses the network in clear.
pub fn connect(address: &str) -> Result<Device, BackendError> {
    use burn::tensor::remote::{ConnectError, RemoteHost};
    let unreachable = |reason: String| BackendError::Unreachable {
        address: address.to_string(),
        reason,
    };
    let host = if let Some(rest) = address.strip_prefix("iroh:") {
        // `iroh:<id>` is found through n0's relays; `iroh:<id>@host:port` is dialled
        // directly, relays off (a server started with --no-relays).
        let (id, direct) = match rest.split_once('@') {
            Some((id, at)) => (id, Some(at)),
            None => (rest, None),
        };
        let id: burn::tensor::remote::EndpointId = id
            .parse()
            .map_err(|e| unreachable(format!("not an Iroh endpoint id ({e})")))?;
        match direct {
            None => RemoteHost::iroh(id),
            Some(at) => {
                use std::net::ToSocketAddrs;
                let socket = at
                    .to_socket_addrs()
                    .ok()
                    .and_then(|mut a| a.next())
                    .ok_or_else(|| unreachable(format!("cannot resolve {at}")))?;
                RemoteHost::iroh(
                    burn::tensor::remote::IrohHost::new(id)
                        .with_relays(burn::tensor::remote::IrohRelays::Disabled)
                        .with_address(socket),
                )
            }
        }
    } else {
        RemoteHost::websocket(address)
    };
    let (host, sent_token, withheld) = match credential_for(address)? {
        Presented::Token(token) => {
            if first_send_in_clear(address) {
                eprintln!(
                    "warning: sending the token for {address} over plain WebSocket: it travels in clear; \
                     across a network you do not trust, use an SSH tunnel (ssh -L) or --transport iroh"
                );
            }
            (host.with_credential(token.reveal()), true, None)
        }
        Presented::Nothing(withheld) => (host, false, withheld),
    };
    let (tx, rx) = crossbeam_channel::bounded(1);
    std::thread::Builder::new()
        .name("attnlab-connect".into())
        .spawn(move || {
            // Ignored: nobody waits any more after the timeout.
            let _ = tx.send(Device::remote_options(&host).init());
        })
        .map_err(|e| unreachable(format!("cannot start a thread to connect: {e}")))?;
    match rx.recv_timeout(CONNECT_TIMEOUT) {
        Ok(Ok(device)) => Ok(device),
        Ok(Err(ConnectError::Unauthorized)) => Err(BackendError::Refused {
            address: address.to_string(),
            sent_token,
            withheld,
        }),
        Ok(Err(e)) => Err(unreachable(e.to_string())),
        Err(_) => Err(unreachable(format!(
            "no answer within {} s",
            CONNECT_TIMEOUT.as_secs()
        ))),
    }
}

/// Whether a WebSocket server still accepts connections (within 2 s). Iroh addresses
/// are assumed to answer.
pub fn server_answers(address: &str) -> bool {
    use std::net::ToSocketAddrs;
    let Some(host_port) = address.strip_prefix("ws://") else {
        return true;
    };
    let host_port = host_port.split('/').next().unwrap_or(host_port);
    host_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok())
}
