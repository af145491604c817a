//! One computation at a time on a helper thread, its results kept by what they were
//! computed for: the machinery of the sections that run a record's saved model when
//! asked (`ablated_attention`, `length_probe`). Starting one cancels the one running;
//! the thread reports what it does now and its end over the view's channel, and wakes
//! the window. A cancelled computation's thread ends after the pass it is on; its
//! failure is not shown (nobody waits for it) but a result it still delivers is kept.
//! A panic ends it with a message instead of leaving it running for ever.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_channel::{Receiver, Sender, bounded};

use super::intervention_jobs::Wake;

/// What the helper thread reports.
enum Message<K, R> {
    /// What the job does now.
    Phase { job: u64, what: String },
    /// The job ended: its result, or why it failed.
    Done {
        job: u64,
        key: K,
        result: Result<R, String>,
    },
}

/// The computation running.
struct Running<K> {
    id: u64,
    cancel: Arc<AtomicBool>,
    key: K,
    /// What it does now.
    what: String,
}

/// Computations keyed by `K` giving `R`, one at a time on a helper thread.
pub struct KeyedJobs<K, R> {
    /// The helper threads' name.
    thread: &'static str,
    /// What a panicking computation reports.
    failed: &'static str,
    /// Results kept; beyond it the oldest go.
    keep: usize,
    results: Vec<(K, Arc<R>)>,
    running: Option<Running<K>>,
    /// The last failure, with what it was for.
    error: Option<(K, String)>,
    next_id: u64,
    tx: Sender<Message<K, R>>,
    rx: Receiver<Message<K, R>>,
}

impl<K: Clone + PartialEq + Send + 'static, R: Send + 'static> KeyedJobs<K, R> {
    /// Helper threads named `thread`, `failed` their message on a panic, the last
    /// `keep` results kept.
    pub fn new(thread: &'static str, failed: &'static str, keep: usize) -> Self {
        let (tx, rx) = bounded(64);
        Self {
            thread,
            failed,
            keep: keep.max(1),
            results: Vec::new(),
            running: None,
            error: None,
            next_id: 0,
            tx,
            rx,
        }
    }

    /// Computes `work` for `key` on a helper thread, cancelling the one running. `work`
    /// gets the key, a flag set when it is cancelled (to check between passes) and a
    /// function that reports what it does now.
    pub fn start<F>(&mut self, key: K, wake: &Wake, work: F)
    where
        F: FnOnce(&K, &AtomicBool, &dyn Fn(String)) -> Result<R, String> + Send + 'static,
    {
        self.cancel();
        self.error = None;
        self.next_id += 1;
        let job = self.next_id;
        let cancel = Arc::new(AtomicBool::new(false));
        let (tx, wake2, stop, failed) =
            (self.tx.clone(), wake.clone(), cancel.clone(), self.failed);
        let for_thread = key.clone();
        let spawned = std::thread::Builder::new()
            .name(self.thread.into())
            .spawn(move || {
                let key = for_thread;
                let phase = |what: String| {
                    if tx.try_send(Message::Phase { job, what }).is_ok() {
                        wake2();
                    }
                };
                let done = std::panic::catch_unwind(AssertUnwindSafe(|| work(&key, &stop, &phase)));
                let result = done.unwrap_or_else(|_| Err(failed.to_string()));
                // Ignored: if the window is gone nobody waits for the result.
                let _ = tx.send(Message::Done { job, key, result });
                wake2();
            });
        match spawned {
            Ok(_) => {
                self.running = Some(Running {
                    id: job,
                    cancel,
                    key,
                    what: "starting".into(),
                });
            }
            Err(e) => self.error = Some((key, format!("cannot start a helper thread: {e}"))),
        }
    }

    /// Stops waiting for the computation running (its thread ends after the pass it
    /// is on).
    pub fn cancel(&mut self) {
        if let Some(running) = self.running.take() {
            running.cancel.store(true, Ordering::Relaxed);
        }
    }

    /// What the computation running is for and does now.
    pub fn running(&self) -> Option<(&K, &str)> {
        self.running.as_ref().map(|r| (&r.key, r.what.as_str()))
    }

    /// The last failure and what it was for.
    pub fn error(&self) -> Option<(&K, &str)> {
        self.error.as_ref().map(|(k, e)| (k, e.as_str()))
    }

    /// The result for `key`, if computed.
    pub fn result(&self, key: &K) -> Option<Arc<R>> {
        self.results
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, r)| r.clone())
    }

    /// Applies what the helper threads reported (every frame the section is drawn).
    pub fn poll(&mut self) {
        while let Ok(message) = self.rx.try_recv() {
            match message {
                Message::Phase { job, what } => {
                    if let Some(r) = self.running.as_mut().filter(|r| r.id == job) {
                        r.what = what;
                    }
                }
                Message::Done { job, key, result } => {
                    let current = self.running.take_if(|r| r.id == job).is_some();
                    match result {
                        Ok(r) => {
                            self.results.retain(|(k, _)| *k != key);
                            self.results.push((key, Arc::new(r)));
                            if self.results.len() > self.keep {
                                self.results.remove(0);
                            }
                        }
                        Err(e) if current => self.error = Some((key, e)),
                        Err(_) => {}
                    }
                }
            }
        }
    }
}

impl<K, R> Drop for KeyedJobs<K, R> {
    /// The window is closing: the computation stops after the pass it is on.
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            running.cancel.store(true, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait<K: Clone + PartialEq + Send + 'static, R: Send + 'static>(jobs: &mut KeyedJobs<K, R>) {
        let started = std::time::Instant::now();
        while jobs.running().is_some() {
            assert!(started.elapsed().as_secs() < 60, "timed out");
            std::thread::sleep(std::time::Duration::from_millis(5));
            jobs.poll();
        }
    }

    #[test]
    fn results_are_kept_by_key_and_failures_name_theirs() {
        let wake: Wake = Arc::new(|| {});
        let mut jobs: KeyedJobs<u32, u32> = KeyedJobs::new("test-job", "it panicked", 2);
        for key in [1, 2, 3] {
            jobs.start(key, &wake, |&k, _, phase| {
                phase(format!("squaring {k}"));
                Ok(k * k)
            });
            wait(&mut jobs);
        }
        assert_eq!(jobs.result(&1), None, "only the last two are kept");
        assert_eq!(jobs.result(&3).as_deref(), Some(&9));
        jobs.start(4, &wake, |_, _, _| Err("no weights".into()));
        wait(&mut jobs);
        assert_eq!(jobs.error(), Some((&4, "no weights")));
        jobs.start(5, &wake, |_, _, _| panic!("a bug"));
        wait(&mut jobs);
        assert_eq!(jobs.error(), Some((&5, "it panicked")));
        assert_eq!(
            jobs.result(&2).as_deref(),
            Some(&4),
            "failures keep results"
        );
    }

    #[test]
    fn a_cancelled_job_reports_no_failure() {
        let wake: Wake = Arc::new(|| {});
        let mut jobs: KeyedJobs<u32, u32> = KeyedJobs::new("test-job", "it panicked", 2);
        let (go, wait_go) = bounded::<()>(1);
        jobs.start(1, &wake, move |_, stop, _| {
            let _ = wait_go.recv();
            if stop.load(Ordering::Relaxed) {
                return Err("cancelled".into());
            }
            Ok(1)
        });
        assert_eq!(jobs.running().map(|(k, _)| *k), Some(1));
        jobs.cancel();
        assert!(jobs.running().is_none());
        go.send(()).expect("the job waits");
        std::thread::sleep(std::time::Duration::from_millis(200));
        jobs.poll();
        assert!(jobs.error().is_none(), "nobody waits for it");
        assert!(jobs.result(&1).is_none());
    }
}
