//! The Devices pane: where runs train. This machine's CPU and GPU, and the remote
//! servers the user added (`attnlab serve` on other machines; remembered between
//! launches), each with its state (reachable, busy with which run, unreachable).
//! With "Train on these servers" on, queued runs go to whichever server is free, one
//! run per server at a time; the runs panel says where each ran. A server that
//! requires a token gets the one the credentials file names for its address, or, on
//! loopback only, `ATTNLAB_TOKEN` (the pane never stores tokens: an address written
//! `TOKEN@ws://...` is refused as not an address).

use std::time::{Duration, Instant};

use egui::{Color32, RichText, Ui};

use crate::app::server_probes::ServerState;
use crate::app::view_model::run_views::RunView;
use crate::app::widgets::ERROR_COLOR;
use crate::app::workbench::App;
use crate::config::BackendSetting;
use crate::records::RunStatus;

/// How often the pane re-checks the servers while it is shown.
const RECHECK: Duration = Duration::from_secs(10);

impl App {
    /// The servers queued runs go to (empty: this machine).
    pub(in crate::app) fn active_servers(&self) -> Vec<String> {
        if self.state.use_servers {
            self.state.servers.clone()
        } else {
            Vec::new()
        }
    }

    /// A server's last known state, as the pane words it (for tests):
    /// `checking`, `reachable` or `unreachable`.
    pub fn server_state(&self, address: &str) -> Option<String> {
        self.devices.state(address).map(|s| match s {
            ServerState::Checking => "checking".to_string(),
            ServerState::Reachable => "reachable".to_string(),
            ServerState::Unreachable => "unreachable".to_string(),
        })
    }

    fn check_servers(&mut self) {
        self.devices.last = Some(Instant::now());
        for address in self.state.servers.clone() {
            let ctx = self.ctx.clone();
            self.devices.check(&address, move || ctx.request_repaint());
        }
    }
}

/// What a device is running: the names of the live runs training there.
fn running_on(runs: &[RunView], on: impl Fn(&str, &str) -> bool) -> Vec<&str> {
    runs.iter()
        .filter(|r| r.status == RunStatus::Running)
        .filter_map(|r| {
            r.backend
                .as_ref()
                .filter(|b| on(&b.backend, &b.adapter))
                .map(|_| r.name.as_str())
        })
        .collect()
}

/// The pane.
pub fn devices_ui(ui: &mut Ui, app: &mut App) {
    app.devices.poll();
    if app.devices.last.is_none_or(|t| t.elapsed() > RECHECK) {
        app.check_servers();
        let ctx = app.ctx.clone();
        ctx.request_repaint_after(RECHECK);
    }
    this_machine_ui(ui, app);
    ui.separator();
    ui.label(RichText::new("Remote servers").strong());
    ui.label(
        RichText::new(
            "Machines running `attnlab serve` (docs/remote-and-security.md). Records, curves and attention maps stay on this machine. A server that requires a token gets the one your credentials file (~/.config/attnlab/credentials.toml, readable only by you) gives for its address; ATTNLAB_TOKEN is sent only to servers on this machine (ws://127.0.0.1). Tokens are never remembered.",
        )
        .small()
        .weak(),
    );
    use_servers_ui(ui, app);
    servers_ui(ui, app);
    ui.horizontal(|ui| add_server_ui(ui, app));
}

/// "Train queued runs on these servers" (off, and disabled, without servers).
fn use_servers_ui(ui: &mut Ui, app: &mut App) {
    let mut use_servers = app.state.use_servers;
    ui.add_enabled_ui(!app.state.servers.is_empty(), |ui| {
        ui.checkbox(
            &mut use_servers,
            "Train queued runs on these servers (one run per server at a time)",
        )
        .on_hover_text("Off: runs train on this machine. Takes effect when no run is active.");
    });
    app.state.use_servers = use_servers && !app.state.servers.is_empty();
}

/// This machine's CPU and GPU, and the runs training on each.
fn this_machine_ui(ui: &mut Ui, app: &mut App) {
    let ctx = app.ctx.clone();
    let gpu = app
        .devices
        .gpu(move || ctx.request_repaint())
        .unwrap_or_else(|| "looking for GPU adapters...".into());
    ui.label(RichText::new("This machine").strong());
    egui::Grid::new("local-devices")
        .spacing([16.0, 4.0])
        .show(ui, |ui| {
            let busy = |b: &str| running_on(&app.runs.views, |backend, _| backend == b);
            ui.label("CPU");
            ui.label(crate::device::CpuBackend::describe());
            ui.label(activity(&busy("cpu")));
            ui.end_row();
            ui.label("GPU");
            ui.label(gpu);
            ui.label(activity(&busy("wgpu")));
            ui.end_row();
        });
}

/// The remote servers, each with its state, Check and Remove.
fn servers_ui(ui: &mut Ui, app: &mut App) {
    let mut remove = None;
    let mut recheck = false;
    egui::Grid::new("servers")
        .striped(true)
        .spacing([16.0, 4.0])
        .show(ui, |ui| {
            for (i, address) in app.state.servers.iter().enumerate() {
                ui.label(RichText::new(address).monospace());
                let (text, color) = server_state_text(app, address);
                ui.label(RichText::new(text).color(color));
                if ui.small_button("Check").clicked() {
                    recheck = true;
                }
                if ui.small_button("Remove").clicked() {
                    remove = Some(i);
                }
                ui.end_row();
            }
        });
    if let Some(i) = remove {
        app.state.servers.remove(i);
    }
    if recheck {
        app.check_servers();
    }
}

/// A server's state as the pane words and colours it: busy with which runs, else
/// reachable, unreachable or still being checked.
fn server_state_text(app: &App, address: &str) -> (String, Color32) {
    let running = running_on(&app.runs.views, |backend, adapter| {
        backend == "remote" && adapter == address
    });
    match (app.devices.state(address), running.is_empty()) {
        (_, false) => (format!("busy: {}", running.join(", ")), Color32::LIGHT_BLUE),
        (Some(ServerState::Reachable), true) => ("reachable, idle".into(), Color32::LIGHT_GREEN),
        (Some(ServerState::Unreachable), true) => ("unreachable".into(), ERROR_COLOR),
        (Some(ServerState::Checking) | None, true) => ("checking...".into(), Color32::GRAY),
    }
}

/// The address field and Add (or Enter), which adds a valid new server and checks
/// it; why an address is not valid.
fn add_server_ui(ui: &mut Ui, app: &mut App) {
    let l = ui.label("add");
    let field = ui
        .add(egui::TextEdit::singleline(&mut app.servers_input).hint_text("ws://gpu-box:3000"))
        .labelled_by(l.id);
    let entered = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
    let address = app.servers_input.trim().to_string();
    let check = BackendSetting::remote(vec![address.clone()]).check();
    let valid = check.is_ok() && !app.state.servers.contains(&address);
    let clicked = ui.add_enabled(valid, egui::Button::new("Add")).clicked();
    if valid && (clicked || entered) {
        app.state.servers.push(address.clone());
        app.servers_input.clear();
        let ctx = app.ctx.clone();
        app.devices.check(&address, move || ctx.request_repaint());
    }
    if let (Err(why), false) = (check, address.is_empty()) {
        ui.label(RichText::new(why.to_string()).color(ERROR_COLOR).small());
    }
}

fn activity(running: &[&str]) -> RichText {
    if running.is_empty() {
        RichText::new("idle").color(Color32::GRAY)
    } else {
        RichText::new(format!("busy: {}", running.join(", "))).color(Color32::LIGHT_BLUE)
    }
}
