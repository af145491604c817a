//! The gate in front of `attnlab serve`'s WebSocket server, which refuses web pages.
//!
//! Any page a browser shows may open a WebSocket to `ws://127.0.0.1:PORT`, and the
//! browser then sends an `Origin` header naming the page's site; no program that
//! trains with attnlab sends one. burn's WebSocket server (axum inside
//! burn-communication) has no hook for the request's headers, so the gate accepts the
//! public listener itself: it reads each connection's HTTP request head (at most
//! [`MAX_HEAD`] bytes, within [`HEAD_TIMEOUT`]), answers `403 Forbidden` to one with an
//! `Origin` header, and otherwise connects to an internal listener burn serves on
//! 127.0.0.1, writes the head and copies bytes both ways (a thread per direction).
//!
//! A local program could dial that internal port directly and skip the gate, so the
//! gate records the address of each connection it forwards (what burn sees as the
//! client) against the real client's ([`Forwarded`]); `serve`'s authorizer refuses
//! any WebSocket client not in it, and logs the real address. Iroh needs no gate: no
//! browser reaches it.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The longest HTTP request head read, in bytes.
const MAX_HEAD: usize = 16 * 1024;

/// The longest wait for a whole request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest part of an `Origin` value written to the log.
const MAX_LOGGED_ORIGIN: usize = 120;

/// The answer to a request from a web page: 403, with the reason in one line.
fn forbidden() -> String {
    let body =
        "attnlab serve refuses connections made by web pages (a request with an Origin header)\n";
    format!(
        "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// The connections the gate forwards to burn's internal listener: the gate's own end
/// of each (the client burn sees) mapped to the real client's address, for as long as
/// the connection lasts.
#[derive(Clone, Debug, Default)]
pub struct Forwarded(Arc<Mutex<HashMap<SocketAddr, SocketAddr>>>);

impl Forwarded {
    /// The real client behind the connection burn sees coming from `gate_side`;
    /// `None` when the gate did not forward it (a program dialled burn directly).
    pub fn client_of(&self, gate_side: SocketAddr) -> Option<SocketAddr> {
        self.lock().get(&gate_side).copied()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, SocketAddr>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Starts the gate on `public`, on a thread of its own for as long as the process
/// lives. Returns the internal listener for burn to serve (127.0.0.1, a free port)
/// and the connections the gate forwards; `log` receives every refusal.
pub fn start(
    public: TcpListener,
    log: impl Fn(String) + Send + Sync + Clone + 'static,
) -> std::io::Result<(TcpListener, Forwarded)> {
    let internal = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let target = internal.local_addr()?;
    let forwarded = Forwarded::default();
    let map = forwarded.clone();
    std::thread::Builder::new()
        .name("attnlab-serve-gate".into())
        .spawn(move || {
            for stream in public.incoming() {
                let stream = match stream {
                    Ok(stream) => stream,
                    Err(e) => {
                        log(format!("cannot accept a connection: {e}"));
                        // E.g. out of file descriptors: do not spin.
                        std::thread::sleep(Duration::from_millis(100));
                        continue;
                    }
                };
                let (map, on_line) = (map.clone(), log.clone());
                let spawned = std::thread::Builder::new()
                    .name("attnlab-serve-conn".into())
                    .spawn(move || admit(stream, target, &map, &on_line));
                if let Err(e) = spawned {
                    log(format!("cannot start a thread for a connection: {e}"));
                }
            }
        })?;
    Ok((internal, forwarded))
}

/// Reads `client`'s request head and refuses it, or forwards the connection to
/// `target` until either side closes it.
fn admit(client: TcpStream, target: SocketAddr, forwarded: &Forwarded, log: &impl Fn(String)) {
    let Ok(peer) = client.peer_addr() else {
        return;
    };
    let head = match read_head(&client) {
        Ok(Some(head)) => head,
        // Closed before sending anything: a check that the server answers.
        Ok(None) => return,
        Err(why) => {
            log(format!("refused {peer}: {why}"));
            return;
        }
    };
    if let Some(origin) = origin_of(&head) {
        log(format!(
            "refused {peer}: a web page (Origin: {origin}) tried to connect"
        ));
        // Ignored: the connection is closed either way.
        let _ = (&client).write_all(forbidden().as_bytes());
        return;
    }
    if let Err(e) = forward(client, peer, &head, target, forwarded) {
        log(format!("cannot forward {peer} to the server: {e}"));
    }
}

/// The request head `client` sends, and any bytes after it read with it; `None` when
/// it closes before sending a byte. Refuses a head longer than [`MAX_HEAD`] or slower
/// than [`HEAD_TIMEOUT`].
fn read_head(mut client: &TcpStream) -> Result<Option<Vec<u8>>, String> {
    let deadline = Instant::now() + HEAD_TIMEOUT;
    let mut head = Vec::new();
    let mut chunk = [0u8; 2048];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "no complete request head within {} s",
                HEAD_TIMEOUT.as_secs()
            ));
        }
        client
            .set_read_timeout(Some(left))
            .map_err(|e| e.to_string())?;
        let room = (MAX_HEAD - head.len()).min(chunk.len());
        match client.read(&mut chunk[..room]) {
            Ok(0) if head.is_empty() => return Ok(None),
            Ok(0) => return Err("it closed the connection mid-request".into()),
            Ok(n) => head.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) => return Err(e.to_string()),
        }
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            return Ok(Some(head));
        }
        if head.len() >= MAX_HEAD {
            return Err(format!("a request head longer than {MAX_HEAD} bytes"));
        }
    }
}

/// The `Origin` (or old `Sec-WebSocket-Origin`) header's value in `head`, shortened
/// and without control characters, for the log; `None` without one.
fn origin_of(head: &[u8]) -> Option<String> {
    let end = head
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(head.len());
    let text = String::from_utf8_lossy(&head[..end]);
    text.split("\r\n").skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        let name = name.trim();
        (name.eq_ignore_ascii_case("origin") || name.eq_ignore_ascii_case("sec-websocket-origin"))
            .then(|| {
                value
                    .trim()
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(MAX_LOGGED_ORIGIN)
                    .collect()
            })
    })
}

/// Connects to burn's listener at `target` for `peer`, writes `head`, and copies bytes
/// both ways until either side closes; the connection is in `forwarded` meanwhile.
fn forward(
    client: TcpStream,
    peer: SocketAddr,
    head: &[u8],
    target: SocketAddr,
    forwarded: &Forwarded,
) -> std::io::Result<()> {
    client.set_read_timeout(None)?;
    let server = TcpStream::connect(target)?;
    // The gate adds a hop: without this, small messages wait for delayed ACKs.
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let gate_side = server.local_addr()?;
    forwarded.lock().insert(gate_side, peer);
    let copied = pump(client, server, head);
    forwarded.lock().remove(&gate_side);
    copied
}

/// Writes `head` to `server`, then copies client to server on a thread of its own and
/// server to client here; each end's writing half is shut when its source ends, and
/// the client's whole connection when the server's does.
fn pump(mut client: TcpStream, mut server: TcpStream, head: &[u8]) -> std::io::Result<()> {
    server.write_all(head)?;
    let (mut from_client, mut to_server) = (client.try_clone()?, server.try_clone()?);
    let upstream = std::thread::Builder::new()
        .name("attnlab-serve-up".into())
        .spawn(move || {
            // Ignored: a reset ends the copy as an orderly close does.
            let _ = std::io::copy(&mut from_client, &mut to_server);
            let _ = to_server.shutdown(Shutdown::Write);
        })?;
    // Ignored, as above; the server gone, the client's side is closed whole, which
    // also ends the copy the other way.
    let _ = std::io::copy(&mut server, &mut client);
    let _ = client.shutdown(Shutdown::Both);
    // Ignored: the thread only copies; a panic there has nothing to report.
    let _ = upstream.join();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_origin_header_is_found_in_any_case_and_cleaned() {
        let head =
            b"GET /session HTTP/1.1\r\nHost: x\r\nORIGIN:  https://evil.example\x07 \r\n\r\n";
        assert_eq!(origin_of(head).as_deref(), Some("https://evil.example"));
        let head = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nOrigin: after the head\r\n";
        assert_eq!(origin_of(head), None);
        assert!(forbidden().starts_with("HTTP/1.1 403 Forbidden\r\n"));
    }
}
