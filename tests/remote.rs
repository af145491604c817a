//! Training on remote servers (`attnlab serve`, burn's remote backend), reached on the
//! loopback interface only: runs spread over two servers and match local training; a
//! server killed mid-run fails that run and the others finish, and so does one frozen
//! with SIGSTOP (the client's timeout); an unreachable address
//! is a clear error; both transports listen on loopback by default; every server
//! requires a token unless `--no-token` on loopback, refuses clients without it, and
//! the token stays out of records; a token goes only to the host it was given for;
//! WebSocket upgrades from web pages (an `Origin` header) are refused.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use attnlab::records::{RunRecord, RunStatus, RunSummary, list_records};

mod common;
// Clients never take a token from the tests' environment unless given one.
use common::bin::{Server, attnlab_with_token, attnlab_without_token as attnlab, text};
use common::experiments::{DENSE, DENSE_SEED_2, LOCAL_W1, LSTM, Tiny};

static FOUR: LazyLock<String> = LazyLock::new(|| {
    Tiny {
        name: "four",
        steps: 6,
        eval_every: 3,
        snapshot_every: 3,
        runs: &[DENSE, LOCAL_W1, DENSE_SEED_2, LSTM],
    }
    .toml()
});

fn summaries(dir: &Path) -> Vec<RunSummary> {
    let mut all: Vec<RunSummary> = list_records(dir).into_iter().map(|r| r.summary).collect();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    all
}

#[test]
fn runs_spread_over_two_servers_and_match_local_training() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("four.toml"), FOUR.as_str()).expect("write");
    let (a, b) = (
        Server::start(dir.path(), "a"),
        Server::start(dir.path(), "b"),
    );
    assert!(a.address.starts_with("ws://127.0.0.1:"), "{}", a.address);
    let backend = format!("remote:{},{}", a.address, b.address);
    let out = attnlab(
        &[
            "run",
            "four.toml",
            "--out",
            "remote",
            "--backend",
            &backend,
            "--quiet",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let remote = summaries(&dir.path().join("remote"));
    assert_eq!(remote.len(), 4);
    let mut used: Vec<&str> = remote.iter().map(|s| s.adapter.as_str()).collect();
    used.sort_unstable();
    used.dedup();
    assert_eq!(used.len(), 2, "both servers trained runs: {used:?}");
    for s in &remote {
        assert_eq!(s.status, RunStatus::Finished, "{}: {:?}", s.name, s.message);
        assert_eq!(s.backend, "remote");
    }
    assert!(a.log().contains("connected"), "{}", a.log());
    assert!(b.log().contains("connected"), "{}", b.log());
    // Records are complete, on this machine.
    for r in list_records(&dir.path().join("remote")) {
        let rows = RunRecord::open(&r.dir)
            .and_then(|r| r.metrics())
            .expect("metrics");
        assert_eq!(
            rows.iter().filter(|m| !m.eval).count(),
            6,
            "{}",
            r.summary.name
        );
    }

    let out = attnlab(
        &[
            "run",
            "four.toml",
            "--out",
            "local",
            "--backend",
            "cpu",
            "--quiet",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let local = summaries(&dir.path().join("local"));
    for (r, l) in remote.iter().zip(&local) {
        assert_eq!(r.name, l.name);
        let (rl, ll) = (r.final_loss.expect("loss"), l.final_loss.expect("loss"));
        assert!(
            (rl - ll).abs() < 1e-4,
            "{}: remote loss {rl} vs local {ll}",
            r.name
        );
        assert_eq!(r.final_accuracy, l.final_accuracy, "{}", r.name);
    }
}

/// Two servers on loopback and `attnlab run` of [`FOUR`] across them (with `env`),
/// its first run a million steps long, once the client has connected to the first
/// server (and when the client started): the stage of the tests where one server goes
/// away mid-run.
fn long_first_run_on_two_servers(
    env: &[(&str, &str)],
) -> (
    tempfile::TempDir,
    Server,
    Server,
    std::process::Child,
    Instant,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = FOUR.replace(
        "[[runs]]\nname = \"dense\"\n",
        "[[runs]]\nname = \"dense\"\ntrain.steps = 1000000\n",
    );
    std::fs::write(dir.path().join("four.toml"), file).expect("write");
    let a = Server::start(dir.path(), "a");
    let b = Server::start(dir.path(), "b");
    let backend = format!("remote:{},{}", a.address, b.address);
    let client = common::bin::command(&[
        "run",
        "four.toml",
        "--out",
        "r",
        "--backend",
        &backend,
        "--quiet",
    ])
    .envs(env.iter().copied())
    .current_dir(dir.path())
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("client starts");
    let started = Instant::now();
    while !a.log().contains("connected") {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "never connected"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (dir, a, b, client, started)
}

#[test]
fn a_server_killed_mid_run_fails_that_run_and_the_others_finish() {
    // The first run trains long on the first server; the others are short and end up
    // on the second.
    let (dir, mut a, b, mut client, started) = long_first_run_on_two_servers(&[]);
    std::thread::sleep(Duration::from_secs(2));
    a.child.kill().expect("kill the first server");
    let status = loop {
        if let Some(status) = client.try_wait().expect("wait") {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the client hung after its server died"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(1), "a failed run: exit 1");
    let all = summaries(&dir.path().join("r"));
    assert_eq!(all.len(), 4, "{all:?}");
    for s in &all {
        if s.name == "dense" {
            assert_eq!(s.status, RunStatus::Failed, "{s:?}");
            let message = s.message.as_deref().unwrap_or_default();
            assert!(
                message.contains(&format!(
                    "the remote server {} stopped answering",
                    a.address
                )),
                "{message}"
            );
        } else {
            assert_eq!(s.status, RunStatus::Finished, "{}: {:?}", s.name, s.message);
            assert_eq!(s.adapter, b.address, "{}", s.name);
        }
    }
}

#[test]
fn a_frozen_server_fails_its_run_and_the_other_server_trains_the_rest() {
    // The first run trains long on the first server, which is then frozen (SIGSTOP:
    // its socket stays open, nothing answers); the others end up on the second.
    // The shortest timeout allowed: longer than any step here, even under load.
    let (dir, a, b, mut client, started) =
        long_first_run_on_two_servers(&[("ATTNLAB_REMOTE_TIMEOUT", "30")]);
    std::thread::sleep(Duration::from_secs(2));
    let pid = a.child.id().to_string();
    let signal = |name: &str| {
        let status = Command::new("kill")
            .args([name, &pid])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {name} {pid}");
    };
    signal("-STOP");
    let status = loop {
        if let Some(status) = client.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(300) {
            signal("-CONT");
            let _ = client.kill();
            panic!("the client hung on a frozen server");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    signal("-CONT");
    assert_eq!(status.code(), Some(1), "a failed run: exit 1");
    let all = summaries(&dir.path().join("r"));
    assert_eq!(all.len(), 4, "{all:?}");
    for s in &all {
        if s.name == "dense" {
            assert_eq!(s.status, RunStatus::Failed, "{s:?}");
            let message = s.message.as_deref().unwrap_or_default();
            assert!(
                message.contains(&format!("the remote server {} did not answer", a.address)),
                "{message}"
            );
            assert!(s.steps > 0, "it trained before the freeze: {s:?}");
        } else {
            assert_eq!(s.status, RunStatus::Finished, "{}: {:?}", s.name, s.message);
            assert_eq!(s.adapter, b.address, "{}", s.name);
        }
    }
}

#[test]
fn an_unreachable_server_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let one = FOUR.split("[[runs]]").next().expect("base").to_string();
    std::fs::write(dir.path().join("one.toml"), one).expect("write");
    // Nothing listens on port 9 of the loopback interface.
    let out = attnlab(
        &[
            "run",
            "one.toml",
            "--out",
            "r",
            "--backend",
            "remote:ws://127.0.0.1:9",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("cannot reach the remote server ws://127.0.0.1:9"),
        "{}",
        text(&out)
    );
    // A malformed address never gets that far.
    let out = attnlab(
        &[
            "run",
            "one.toml",
            "--out",
            "r",
            "--backend",
            "remote:127.0.0.1",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2), "a usage error: {}", text(&out));
    assert!(text(&out).contains("ws://host:port"), "{}", text(&out));
}

/// Iroh without relays (no internet here): the server prints `iroh:<id>@host:port`
/// and a client dials it directly; the runs train and are recorded as with WebSocket.
#[test]
fn iroh_without_relays_trains_on_loopback() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("four.toml"), FOUR.as_str()).expect("write");
    // A free UDP port: bound and released.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port()
        .to_string();
    let server = Server::start_with(
        dir.path(),
        "iroh",
        &[
            "serve",
            "--transport",
            "iroh",
            "--no-relays",
            "--host",
            "127.0.0.1",
            "--port",
            &port,
            "--device",
            "cpu",
            "--no-token",
        ],
    );
    assert!(
        server.address.starts_with("iroh:")
            && server.address.ends_with(&format!("@127.0.0.1:{port}")),
        "{}",
        server.address
    );
    let backend = format!("remote:{}", server.address);
    let out = attnlab(
        &[
            "run",
            "four.toml",
            "--run",
            "dense",
            "--out",
            "r",
            "--backend",
            &backend,
            "--quiet",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let all = summaries(&dir.path().join("r"));
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].status, RunStatus::Finished, "{:?}", all[0].message);
    assert_eq!(all[0].adapter, server.address);
    assert!(server.log().contains("Iroh client"), "{}", server.log());
}

/// Both transports listen on the loopback interface unless `--host` says otherwise,
/// and there a server started with `--no-token` is open (and says so).
#[test]
fn both_transports_listen_on_loopback_by_default() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = Server::start_with(
        dir.path(),
        "ws",
        &["serve", "--port", "0", "--device", "cpu", "--no-token"],
    );
    assert!(ws.address.starts_with("ws://127.0.0.1:"), "{}", ws.address);
    assert!(
        ws.notes.contains("access: loopback only, no token"),
        "{}",
        ws.notes
    );
    let iroh = Server::start_with(
        dir.path(),
        "iroh",
        &[
            "serve",
            "--transport",
            "iroh",
            "--no-relays",
            "--port",
            "0",
            "--device",
            "cpu",
            "--no-token",
        ],
    );
    let (_, at) = iroh
        .address
        .rsplit_once('@')
        .unwrap_or_else(|| panic!("{}", iroh.address));
    let at: std::net::SocketAddr = at.parse().expect("a socket address");
    assert!(at.ip().is_loopback() && at.port() != 0, "{}", iroh.address);
    let log = iroh.log();
    let bound = log
        .lines()
        .find_map(|l| l.split_once("Iroh sockets bound: ").map(|(_, b)| b))
        .unwrap_or_else(|| panic!("no bound sockets logged: {log}"));
    assert!(
        bound.contains("127.0.0.1:") && !bound.contains("0.0.0.0") && !bound.contains("[::]"),
        "{bound}"
    );
    assert!(
        iroh.notes.contains("access: loopback only, no token"),
        "{}",
        iroh.notes
    );
}

/// A server on every interface without --token generates one and shows it once;
/// clients without it, or with a wrong one, are refused with a message naming the
/// credential; the right one trains (given in the address, or in ATTNLAB_TOKEN for
/// this loopback address), and no file of the record holds it.
#[test]
fn a_server_beyond_loopback_requires_its_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let one = FOUR.split("[[runs]]").next().expect("base").to_string();
    std::fs::write(dir.path().join("one.toml"), one).expect("write");
    let server = Server::start_with(
        dir.path(),
        "open",
        &[
            "serve", "--host", "0.0.0.0", "--port", "0", "--device", "cpu",
        ],
    );
    assert!(server.notes.contains("token required"), "{}", server.notes);
    let port = server
        .address
        .rsplit_once(':')
        .map(|(_, p)| p.to_string())
        .expect("a port");
    let address = format!("ws://127.0.0.1:{port}");
    let log = server.log();
    let token = log
        .split("shown only once):")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no generated token in the log: {log}"))
        .to_string();
    assert!(
        token.len() >= 32 && token.bytes().all(|b| b.is_ascii_hexdigit()),
        "{token}"
    );
    let plain = format!("remote:{address}");

    // A run refused by the server fails before it has a record: its message is in
    // the output (stderr, even with --quiet, and the final table).
    let refused = |extra: &[&str], expected: &str| {
        let mut args = vec!["run", "one.toml", "--out", "refused", "--backend", &plain];
        args.extend_from_slice(extra);
        let out = attnlab_with_token(&args, dir.path(), None);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let message = text(&out);
        assert!(
            message.contains(&format!(
                "the remote server {address} refused this client's credential"
            )) && message.contains(expected),
            "{message}"
        );
    };
    refused(&[], "none was sent");
    refused(
        &["--token", "not-the-token"],
        "the token sent is not the server's",
    );
    let log = server.log();
    assert!(log.contains("presented no token"), "{log}");
    assert!(log.contains("presented a wrong token"), "{log}");

    // The token in the address, then in the environment.
    let with_token = format!("remote:{token}@{address}");
    let out = attnlab_with_token(
        &[
            "run",
            "one.toml",
            "--out",
            "given",
            "--backend",
            &with_token,
            "--quiet",
        ],
        dir.path(),
        None,
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = attnlab_with_token(
        &[
            "run",
            "one.toml",
            "--out",
            "env",
            "--backend",
            &plain,
            "--quiet",
        ],
        dir.path(),
        Some(&token),
    );
    assert!(out.status.success(), "{}", text(&out));
    for out_dir in ["given", "env"] {
        let all = summaries(&dir.path().join(out_dir));
        assert_eq!(all.len(), 1, "{all:?}");
        assert_eq!(all[0].status, RunStatus::Finished, "{:?}", all[0].message);
        assert_eq!(all[0].adapter, address);
        let records = list_records(&dir.path().join(out_dir));
        let config = std::fs::read_to_string(records[0].dir.join("config.toml")).expect("config");
        assert!(config.contains(&address), "{config}");
        assert_no_file_holds(&dir.path().join(out_dir), &token);
    }
}

/// Fails if any file under `dir` contains `secret`.
fn assert_no_file_holds(dir: &Path, secret: &str) {
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            assert_no_file_holds(&path, secret);
        } else {
            let bytes = std::fs::read(&path).expect("read");
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{} holds the token",
                path.display()
            );
        }
    }
}

/// The status line a server answers to a WebSocket upgrade of `/session` sent over raw
/// TCP to `address` (`ws://host:port`) with the header lines `extra`.
fn upgrade_status(address: &str, extra: &str) -> String {
    use std::io::{BufRead, Write};
    let host_port = address.strip_prefix("ws://").expect("a ws:// address");
    let mut stream = std::net::TcpStream::connect(host_port).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    write!(
        stream,
        "GET /session HTTP/1.1\r\nHost: {host_port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
    .expect("sends the request");
    let mut line = String::new();
    std::io::BufReader::new(stream)
        .read_line(&mut line)
        .expect("an answer");
    line
}

/// A web page's WebSocket (a browser sends `Origin`) gets 403 and the server logs why;
/// the same upgrade without `Origin` gets through the gate to burn (101).
#[test]
fn web_pages_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), "gate");
    let refused = upgrade_status(&server.address, "Origin: https://evil.example\r\n");
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
    let accepted = upgrade_status(&server.address, "");
    assert!(accepted.starts_with("HTTP/1.1 101"), "{accepted}");
    let log = server.log();
    assert!(
        log.contains("a web page (Origin: https://evil.example) tried to connect"),
        "{log}"
    );
}

/// Without a token, a loopback server generates one and shows it once; `--no-token`
/// beyond loopback is refused with the reason.
#[test]
fn serve_requires_a_token_on_loopback_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with(
        dir.path(),
        "loopback",
        &["serve", "--port", "0", "--device", "cpu"],
    );
    assert!(
        server.address.starts_with("ws://127.0.0.1:"),
        "{}",
        server.address
    );
    assert!(server.notes.contains("token required"), "{}", server.notes);
    let log = server.log();
    assert!(log.contains("shown only once"), "{log}");
    let out = attnlab(
        &[
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--device",
            "cpu",
            "--no-token",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("--no-token is refused: other machines can reach this server"),
        "{}",
        text(&out)
    );
}

/// A token goes only to the host it was given for: `--token` with the server named
/// only by the experiment file is refused before anything connects; with
/// `--backend remote:ADDRESS --token-file` it trains; a credentials file is used for
/// its own address only, and refused while others may read it. The token appears in
/// no output, no log line and no record file.
#[test]
fn a_token_goes_only_to_the_host_it_was_given_for() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = "e2e-token-5f3a9c0d1b2e4f60";
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{token}\n")).expect("write");
    let token_path = token_file.to_str().expect("a UTF-8 path");
    let server = Server::start_with(
        dir.path(),
        "bound",
        &[
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--device",
            "cpu",
            "--token-file",
            token_path,
        ],
    );
    let port = server
        .address
        .rsplit_once(':')
        .expect("a port")
        .1
        .to_string();
    let address = format!("ws://127.0.0.1:{port}");
    let one = FOUR.split("[[runs]]").next().expect("base");
    let from_file = one.replace(
        "backend = \"cpu\"",
        &format!("backend = {{ remote = \"{address}\" }}"),
    );
    assert_ne!(from_file, one);
    std::fs::write(dir.path().join("one.toml"), from_file).expect("write");
    let config = dir.path().join("config");
    let config_env = config.to_str().expect("a UTF-8 path");
    let mut outputs = Vec::new();
    let mut client = |args: &[&str]| {
        let out = common::bin::attnlab_env(
            args,
            dir.path(),
            &[
                ("ATTNLAB_TOKEN", None),
                ("XDG_CONFIG_HOME", Some(config_env)),
            ],
        );
        outputs.push(text(&out));
        out
    };

    let out = client(&["run", "one.toml", "--out", "r1", "--token", token]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let message = text(&out);
    assert!(
        message.contains("remote:TOKEN@ADDRESS") && message.contains("credentials file"),
        "{message}"
    );
    assert!(!server.log().contains("connected"), "{}", server.log());
    assert!(!dir.path().join("r1").exists(), "nothing trained");

    let backend = format!("remote:{address}");
    let out = client(&[
        "run",
        "one.toml",
        "--out",
        "r2",
        "--backend",
        &backend,
        "--token-file",
        token_path,
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", text(&out));

    // The credentials file: only for its own address, and only while private.
    let credentials = config.join("attnlab").join("credentials.toml");
    std::fs::create_dir_all(config.join("attnlab")).expect("mkdir");
    let private = |mode: u32| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&credentials, std::fs::Permissions::from_mode(mode))
            .expect("chmod");
    };
    std::fs::write(
        &credentials,
        format!("[tokens]\n\"ws://10.9.8.7:3000\" = \"{token}\"\n"),
    )
    .expect("write");
    private(0o600);
    let out = client(&["run", "one.toml", "--out", "r3"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("given for another host"),
        "{}",
        text(&out)
    );
    std::fs::write(
        &credentials,
        format!("[tokens]\n\"{address}/\" = \"{token}\"\n"),
    )
    .expect("write");
    private(0o644);
    let out = client(&["run", "one.toml", "--out", "r4"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("readable or writable by other users"),
        "{}",
        text(&out)
    );
    private(0o600);
    let out = client(&["run", "one.toml", "--out", "r5", "--quiet"]);
    assert!(out.status.success(), "{}", text(&out));

    for out_dir in ["r2", "r5"] {
        let all = summaries(&dir.path().join(out_dir));
        assert_eq!(all.len(), 1, "{all:?}");
        assert_eq!(all[0].status, RunStatus::Finished, "{:?}", all[0].message);
    }
    for out_dir in ["r2", "r3", "r4", "r5"] {
        let path = dir.path().join(out_dir);
        if path.exists() {
            assert_no_file_holds(&path, token);
        }
    }
    outputs.push(server.log());
    for output in &outputs {
        assert!(!output.contains(token), "the token was printed: {output}");
    }
}
