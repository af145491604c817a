//! The `attnlab` binary cargo built for these tests: run to completion with its output
//! captured, or as a server on the loopback interface.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};

/// The binary's path.
pub const BIN: &str = env!("CARGO_BIN_EXE_attnlab");

/// The binary with `args`, not yet started.
pub fn command(args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command.args(args);
    // The user's attnlab folder (the key that signs records' allowances): the tests'
    // own, shared by every test, never the tester's.
    command.env("XDG_CONFIG_HOME", config_home());
    command
}

/// The configuration folder the binary sees in the tests.
pub fn config_home() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("config-home")
}

/// Runs the binary with `args` in `cwd` and returns what it printed and its status.
pub fn attnlab(args: &[&str], cwd: &Path) -> Output {
    attnlab_env(args, cwd, &[])
}

/// [`attnlab`] with environment variables set (`Some`) or removed (`None`).
pub fn attnlab_env(args: &[&str], cwd: &Path, env: &[(&str, Option<&str>)]) -> Output {
    let mut command = command(args);
    command.current_dir(cwd);
    for (key, value) in env {
        match value {
            Some(value) => command.env(key, value),
            None => command.env_remove(key),
        };
    }
    command.output().expect("the binary runs")
}

/// [`attnlab`] with `NO_COLOR=1`.
pub fn attnlab_no_color(args: &[&str], cwd: &Path) -> Output {
    attnlab_env(args, cwd, &[("NO_COLOR", Some("1"))])
}

/// [`attnlab`] with `ATTNLAB_TOKEN` set to `token`, or unset.
pub fn attnlab_with_token(args: &[&str], cwd: &Path, token: Option<&str>) -> Output {
    attnlab_env(args, cwd, &[("ATTNLAB_TOKEN", token)])
}

/// [`attnlab`] with `ATTNLAB_TOKEN` unset, whatever the tests' environment holds.
pub fn attnlab_without_token(args: &[&str], cwd: &Path) -> Output {
    attnlab_with_token(args, cwd, None)
}

/// Everything the binary printed: stdout, then stderr.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Each line of stdout, parsed as JSON.
pub fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// An `attnlab serve` process, `ATTNLAB_TOKEN` unset, killed when dropped.
pub struct Server {
    pub child: Child,
    pub address: String,
    /// What it printed after the address: who may connect, how clients connect.
    pub notes: String,
    log: PathBuf,
    /// Its stdout, kept open for as long as it runs.
    _stdout: BufReader<ChildStdout>,
}

impl Server {
    /// A server on 127.0.0.1, on a free port, training on the CPU, without a token
    /// (`--no-token`, for tests about something else); its stderr goes to
    /// `<dir>/<name>.log`.
    pub fn start(dir: &Path, name: &str) -> Self {
        Self::start_with(
            dir,
            name,
            &[
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--device",
                "cpu",
                "--no-token",
            ],
        )
    }

    /// A server started with `args` (`serve ...`); its stderr goes to
    /// `<dir>/<name>.log`. Returns once it has printed its address and notes.
    pub fn start_with(dir: &Path, name: &str, args: &[&str]) -> Self {
        let log = dir.join(format!("{name}.log"));
        let mut child = command(args)
            .env_remove("ATTNLAB_TOKEN")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("attnlab serve starts");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .expect("the server prints its address");
        let address = line
            .trim()
            .strip_prefix("attnlab serve: listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        // `  access: ...` and `  clients: ...`, printed with the address.
        let mut notes = String::new();
        for _ in 0..2 {
            stdout.read_line(&mut notes).expect("the server's notes");
        }
        Self {
            child,
            address,
            notes,
            log,
            _stdout: stdout,
        }
    }

    /// What it has written to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Ignored: it may have been killed already.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
