//! Checks of remote servers for the Devices pane, each on a helper thread (a TCP
//! connect with a 2 s timeout), so the window never waits on the network.

use std::collections::HashMap;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, unbounded};

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
    /// This machine's GPU, described once.
    pub(super) gpu: Option<String>,
}

impl Default for ServerProbes {
    fn default() -> Self {
        let (tx, rx) = unbounded();
        Self {
            states: HashMap::new(),
            tx,
            rx,
            last: None,
            gpu: None,
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
                let answers = crate::trainer::server_answers(&address);
                // Ignored: the window may be gone.
                let _ = tx.send((address, answers));
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

    /// The last known state of `address`.
    pub fn state(&self, address: &str) -> Option<ServerState> {
        self.states.get(address).copied()
    }
}
