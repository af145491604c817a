//! The Cost pane's state (no egui): the points measured so far, cached per machine
//! and backend on disk (`cost_cache`) so a second look is instant, and a sweep that
//! measures one attention layer per pattern and length on a background thread.

use std::path::PathBuf;

use crossbeam_channel::{Receiver, bounded};

use super::cost_cache::{CostCache, key, machine};
use crate::bench::{CostLayer, LayerCost, measure_layer};
use crate::config::BackendChoice;

/// Lengths measured.
pub const COST_LENGTHS: [usize; 5] = [256, 512, 1024, 2048, 4096];

/// What the measuring thread reports.
enum CostMessage {
    Started(String),
    Point(LayerCost),
    Failed(String),
    Done,
}

/// The view's state: cached points, a running sweep.
pub struct CostView {
    cache: CostCache,
    cache_path: Option<PathBuf>,
    machine: String,
    running: Option<Receiver<CostMessage>>,
    done: usize,
    total: usize,
    current: String,
    error: Option<String>,
    /// Longest length to measure.
    pub max_len: usize,
}

impl CostView {
    /// The view with the points cached at `cache_path` (`None`: the user's cache).
    pub fn new(cache_path: Option<PathBuf>, max_len: usize) -> Self {
        let cache_path = cache_path.or_else(CostCache::default_path);
        let (cache, error) = match CostCache::load(cache_path.as_ref()) {
            Ok(cache) => (cache, None),
            Err(e) => (CostCache::default(), Some(e)),
        };
        Self {
            cache,
            cache_path,
            machine: machine(),
            running: None,
            done: 0,
            total: 0,
            current: String::new(),
            error,
            max_len,
        }
    }

    /// Whether a sweep is measuring.
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Measures every (pattern, length) not cached yet, on a background thread.
    pub fn start(&mut self, patterns: &[CostLayer], wake: impl Fn() + Send + 'static) {
        if self.running.is_some() {
            return;
        }
        let lengths: Vec<usize> = COST_LENGTHS
            .iter()
            .copied()
            .filter(|&n| n <= self.max_len)
            .collect();
        let todo: Vec<(CostLayer, usize)> = patterns
            .iter()
            .flat_map(|p| lengths.iter().map(move |&n| (p.clone(), n)))
            .filter(|(p, n)| {
                p.fits(*n)
                    && !self
                        .cache
                        .points
                        .contains_key(&key(&self.machine, &p.label(), *n))
            })
            .collect();
        self.done = 0;
        self.total = todo.len();
        self.error = None;
        if todo.is_empty() {
            return;
        }
        let (tx, rx) = bounded(64);
        let spawned = std::thread::Builder::new()
            .name("attnlab-cost".into())
            .spawn(move || {
                for (pattern, n) in todo {
                    let started = CostMessage::Started(format!("{} at n = {n}", pattern.label()));
                    if tx.send(started).is_err() {
                        return; // the view is gone
                    }
                    wake();
                    // Short sequences are quick and noisy: more steps there.
                    let steps = if n <= 1024 { 8 } else { 3 };
                    let message = match measure_layer(&pattern, n, BackendChoice::Cpu, 1, steps) {
                        Ok(point) => CostMessage::Point(point),
                        Err(e) => CostMessage::Failed(e.to_string()),
                    };
                    if tx.send(message).is_err() {
                        return;
                    }
                    wake();
                }
                // Ignored: if the view is gone nobody waits for the end.
                let _ = tx.send(CostMessage::Done);
                wake();
            });
        match spawned {
            Ok(_) => self.running = Some(rx),
            Err(e) => self.error = Some(format!("cannot start the measuring thread: {e}")),
        }
    }

    /// Applies what the thread reported.
    pub fn poll(&mut self) {
        let Some(rx) = &self.running else { return };
        let mut finished = false;
        let mut changed = false;
        while let Ok(message) = rx.try_recv() {
            match message {
                CostMessage::Started(what) => self.current = what,
                CostMessage::Point(point) => {
                    self.done += 1;
                    self.cache
                        .points
                        .insert(key(&self.machine, &point.pattern, point.seq), point);
                    changed = true;
                }
                CostMessage::Failed(e) => {
                    self.done += 1;
                    self.error = Some(e);
                }
                CostMessage::Done => finished = true,
            }
        }
        if changed && let Err(e) = self.cache.store(self.cache_path.as_ref()) {
            self.error = Some(e);
        }
        if finished
            || (self.running.as_ref().is_some_and(|r| r.is_empty()) && self.done >= self.total)
        {
            self.running = None;
        }
    }

    /// Forgets this machine's cached points.
    pub fn clear(&mut self) {
        let prefix = format!("{}/", self.machine);
        self.cache.points.retain(|k, _| !k.starts_with(&prefix));
        if let Err(e) = self.cache.store(self.cache_path.as_ref()) {
            self.error = Some(e);
        }
    }

    /// The sweep's progress: points measured, points to measure, and what is being
    /// measured now.
    pub fn progress(&self) -> (usize, usize, &str) {
        (self.done, self.total, &self.current)
    }

    /// The last problem (a failed measurement, an unreadable or unwritable cache).
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// This machine's cached points of `pattern` (a pattern label), shortest first.
    pub fn points(&self, pattern: &str) -> Vec<&LayerCost> {
        let mut points: Vec<&LayerCost> = COST_LENGTHS
            .iter()
            .filter_map(|&n| self.cache.points.get(&key(&self.machine, pattern, n)))
            .collect();
        points.sort_by_key(|p| p.seq);
        points
    }
}
