//! Checks of remote servers for the Devices pane, each on a helper thread (a TCP
//! connect with a 2 s timeout), so the window never waits on the network.

use std::collections::HashMap;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, bounded};

/// What a check of a server found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerState {
    Checking,
    Reachable,
    Unreachable,
}

/// Server checks, each on a helper thread (a TCP connect with a 2 s timeout), so the
/// window never waits on the network.
pub struct ServerProbes {
    pub(super) states: HashMap<String, ServerState>,
    tx: Sender<(String, bool)>,
    rx: Receiver<(String, bool)>,
    pub(super) last: Option<Instant>,
    /// This machine's GPU, described once on a helper thread (listing wgpu adapters
    /// can take a second).
    gpu: std::sync::Arc<std::sync::OnceLock<String>>,
    gpu_asked: bool,
}

impl Default for ServerProbes {
    fn default() -> Self {
        // Answers are drained every frame the pane is drawn; a check beyond this many
        // waiting answers is dropped (the next check asks again).
        let (tx, rx) = bounded(256);
        Self {
            states: HashMap::new(),
            tx,
            rx,
            last: None,
            gpu: Default::default(),
            gpu_asked: false,
        }
    }
}

impl ServerProbes {
    /// Starts checking `address`.
    pub fn check(&mut self, address: &str, wake: impl Fn() + Send + 'static) {
        self.states
            .insert(address.to_string(), ServerState::Checking);
        let tx = self.tx.clone();
        let address = address.to_string();
        // A thread that cannot start leaves the state at "checking" until the next try.
        let _ = std::thread::Builder::new()
            .name("attnlab-probe".into())
            .spawn(move || {
                let answers = crate::device::server_answers(&address);
                // Ignored: the window may be gone, or too many answers wait.
                let _ = tx.try_send((address, answers));
                wake();
            });
    }

    /// Applies the answers that arrived.
    pub fn poll(&mut self) {
        for (address, answers) in self.rx.try_iter() {
            self.states.insert(
                address,
                if answers {
                    ServerState::Reachable
                } else {
                    ServerState::Unreachable
                },
            );
        }
    }

    /// This machine's GPU, once described (asked for on first call).
    pub fn gpu(&mut self, wake: impl Fn() + Send + 'static) -> Option<String> {
        if !self.gpu_asked {
            self.gpu_asked = true;
            let gpu = self.gpu.clone();
            // A thread that cannot start leaves the GPU undescribed ("looking...").
            let _ = std::thread::Builder::new()
                .name("attnlab-adapters".into())
                .spawn(move || {
                    gpu.get_or_init(crate::device::local_gpu);
                    wake();
                });
        }
        self.gpu.get().cloned()
    }

    /// The last known state of `address`.
    pub fn state(&self, address: &str) -> Option<ServerState> {
        self.states.get(address).copied()
    }
}
