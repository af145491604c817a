//! Commands for the trainer that its command channel has not taken yet. The window
//! never waits on the trainer (a long step can hold the channel full, and a blocking
//! send would freeze the window until it ends): a command that does not fit waits
//! here, in order, and is sent again every frame. Repeats collapse, so holding a key
//! queues one command, not one per key repeat. Plain data, no egui.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::trainer::{Command, TrainerGone, TrySendCommandError};

/// How long commands wait before the window says so.
pub const NOTICE_AFTER: Duration = Duration::from_secs(1);

/// A command not yet taken, and since when it (or a command it replaced) waits.
#[derive(Debug)]
struct Waiting {
    command: Command,
    since: Instant,
}

/// The commands not yet delivered, oldest first.
#[derive(Debug, Default)]
pub struct Outbox {
    waiting: VecDeque<Waiting>,
}

impl Outbox {
    /// Queues `command` behind the others, unless it changes nothing:
    ///
    /// * a command equal to the last one queued is dropped (a held key);
    /// * `StopAll` drops the queued `Pause`, `Continue`, `Stop` and `StopAll` before
    ///   it (every run they name stops anyway); it waits since the oldest of them;
    /// * a `Stop` behind a queued `StopAll` is dropped (the runs the trainer knows
    ///   stop; a run it does not know yet is still in the window's own queue).
    pub fn push(&mut self, command: Command, now: Instant) {
        if self
            .waiting
            .back()
            .is_some_and(|w| same(&w.command, &command))
        {
            return;
        }
        let stop_all_queued = self
            .waiting
            .iter()
            .any(|w| matches!(w.command, Command::StopAll));
        if matches!(command, Command::Stop(_)) && stop_all_queued {
            return;
        }
        let mut since = now;
        if matches!(command, Command::StopAll) {
            self.waiting.retain(|w| {
                let redundant = matches!(
                    w.command,
                    Command::Pause | Command::Continue | Command::Stop(_) | Command::StopAll
                );
                if redundant {
                    since = since.min(w.since);
                }
                !redundant
            });
        }
        self.waiting.push_back(Waiting { command, since });
    }

    /// Hands the commands, oldest first, to `send` until one does not fit (it stays
    /// first, to be sent again). The trainer having ended empties the outbox.
    pub fn flush(
        &mut self,
        mut send: impl FnMut(Command) -> Result<(), TrySendCommandError>,
    ) -> Result<(), TrainerGone> {
        while let Some(Waiting { command, since }) = self.waiting.pop_front() {
            match send(command) {
                Ok(()) => {}
                Err(TrySendCommandError::Full(command)) => {
                    self.waiting.push_front(Waiting { command, since });
                    return Ok(());
                }
                Err(TrySendCommandError::Gone) => {
                    self.waiting.clear();
                    return Err(TrainerGone);
                }
            }
        }
        Ok(())
    }

    /// Forgets every waiting command (the trainer they were for is gone).
    pub fn clear(&mut self) {
        self.waiting.clear();
    }

    /// How many commands wait.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// How long the oldest command has waited at `now`.
    pub fn oldest_wait(&self, now: Instant) -> Option<Duration> {
        self.waiting
            .iter()
            .map(|w| now.saturating_duration_since(w.since))
            .max()
    }

    /// What the window says once commands have waited [`NOTICE_AFTER`] or more.
    pub fn notice(&self, now: Instant) -> Option<String> {
        let waited = self.oldest_wait(now)?;
        if waited < NOTICE_AFTER {
            return None;
        }
        let n = self.len();
        let commands = if n == 1 { "command" } else { "commands" };
        Some(format!(
            "Waiting for the trainer: {n} {commands} not yet delivered (a step is still running)"
        ))
    }
}

/// Whether two commands ask for the same thing (`Start`s never do: each is a run).
fn same(a: &Command, b: &Command) -> bool {
    match (a, b) {
        (Command::Stop(x), Command::Stop(y)) => x == y,
        (Command::StopAll, Command::StopAll)
        | (Command::Pause, Command::Pause)
        | (Command::Continue, Command::Continue)
        | (Command::Shutdown, Command::Shutdown) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A short name for a command, to compare queues.
    fn name(command: &Command) -> String {
        match command {
            Command::Start(run) => format!("start {}", run.id),
            Command::Stop(id) => format!("stop {id}"),
            Command::StopAll => "stop all".into(),
            Command::Pause => "pause".into(),
            Command::Continue => "continue".into(),
            Command::Shutdown => "shutdown".into(),
        }
    }

    fn names(outbox: &Outbox) -> Vec<String> {
        outbox.waiting.iter().map(|w| name(&w.command)).collect()
    }

    /// Sends into a channel with room for `room` commands; records what it took.
    fn channel(
        room: usize,
        taken: &mut Vec<String>,
    ) -> impl FnMut(Command) -> Result<(), TrySendCommandError> + '_ {
        move |command| {
            if taken.len() >= room {
                return Err(TrySendCommandError::Full(command));
            }
            taken.push(name(&command));
            Ok(())
        }
    }

    #[test]
    fn a_repeated_command_is_queued_once() {
        let now = Instant::now();
        let mut outbox = Outbox::default();
        for _ in 0..30 {
            outbox.push(Command::Pause, now);
        }
        outbox.push(Command::Stop(3), now);
        outbox.push(Command::Stop(3), now);
        outbox.push(Command::Stop(4), now);
        assert_eq!(names(&outbox), ["pause", "stop 3", "stop 4"]);
        // Equal only to the last: a command may come back after another.
        outbox.push(Command::Stop(3), now);
        outbox.push(Command::Pause, now);
        assert_eq!(
            names(&outbox),
            ["pause", "stop 3", "stop 4", "stop 3", "pause"]
        );
    }

    #[test]
    fn commands_are_delivered_in_order_as_room_comes() {
        let now = Instant::now();
        let mut outbox = Outbox::default();
        for command in [
            Command::Pause,
            Command::Stop(1),
            Command::Continue,
            Command::Stop(2),
        ] {
            outbox.push(command, now);
        }
        let mut taken = Vec::new();
        assert!(outbox.flush(channel(2, &mut taken)).is_ok());
        assert_eq!(taken, ["pause", "stop 1"]);
        assert_eq!(
            names(&outbox),
            ["continue", "stop 2"],
            "the rest wait, in order"
        );
        let mut taken = Vec::new();
        assert!(outbox.flush(channel(10, &mut taken)).is_ok());
        assert_eq!(taken, ["continue", "stop 2"]);
        assert!(outbox.is_empty());
    }

    #[test]
    fn stop_all_drops_the_commands_it_makes_redundant() {
        let now = Instant::now();
        let later = now + Duration::from_secs(5);
        let mut outbox = Outbox::default();
        outbox.push(Command::Pause, now);
        outbox.push(Command::Stop(1), now);
        outbox.push(Command::Shutdown, now);
        outbox.push(Command::Continue, now);
        outbox.push(Command::StopAll, later);
        assert_eq!(names(&outbox), ["shutdown", "stop all"]);
        // A Stop behind it changes nothing; another StopAll neither.
        outbox.push(Command::Stop(2), later);
        outbox.push(Command::StopAll, later);
        assert_eq!(names(&outbox), ["shutdown", "stop all"]);
        // A Pause behind it is kept (it is for what comes after).
        outbox.push(Command::Pause, later);
        assert_eq!(names(&outbox), ["shutdown", "stop all", "pause"]);
        // The StopAll waits since the oldest command it replaced.
        outbox.waiting.pop_front();
        assert_eq!(
            outbox.oldest_wait(later),
            Some(Duration::from_secs(5)),
            "the replaced commands' wait carries over"
        );
    }

    #[test]
    fn the_notice_comes_once_commands_wait_long_enough() {
        let now = Instant::now();
        let mut outbox = Outbox::default();
        assert_eq!(outbox.oldest_wait(now), None);
        assert_eq!(outbox.notice(now + NOTICE_AFTER * 5), None, "nothing waits");
        outbox.push(Command::Stop(1), now);
        outbox.push(Command::Stop(2), now + Duration::from_millis(500));
        outbox.push(Command::Pause, now + Duration::from_millis(900));
        assert_eq!(
            outbox.oldest_wait(now + Duration::from_millis(950)),
            Some(Duration::from_millis(950))
        );
        assert_eq!(outbox.notice(now + Duration::from_millis(950)), None);
        let notice = outbox
            .notice(now + NOTICE_AFTER)
            .expect("shown after a second");
        assert_eq!(
            notice,
            "Waiting for the trainer: 3 commands not yet delivered (a step is still running)"
        );
        // Delivered: the notice goes.
        let mut taken = Vec::new();
        assert!(outbox.flush(channel(10, &mut taken)).is_ok());
        assert_eq!(outbox.notice(now + NOTICE_AFTER * 5), None);
    }

    #[test]
    fn a_trainer_that_ended_empties_the_outbox() {
        let now = Instant::now();
        let mut outbox = Outbox::default();
        outbox.push(Command::Pause, now);
        outbox.push(Command::Continue, now);
        assert!(outbox.flush(|_| Err(TrySendCommandError::Gone)).is_err());
        assert!(outbox.is_empty());
    }
}
