//! A thread that samples system metrics on an interval and hands them to a
//! sink (the run's writer). Stopping is prompt: the thread waits on a
//! condition variable, not in a sleep.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::SystemSampler;

/// Stops and joins the sampling thread when stopped or dropped.
pub struct Monitor {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
    exited: std::sync::mpsc::Receiver<()>,
}

/// How long stopping waits for a sample in progress. A sample that takes
/// longer (a GPU driver that hangs, a slow /proc) is left to finish on its
/// own: a run's end must never wait on its system metrics.
const STOP_WAIT: Duration = Duration::from_secs(2);

impl Monitor {
    /// Samples process `pid` every `interval`, calling `sink` with each
    /// non-empty sample and its index (0, 1, …).
    pub fn spawn(
        pid: u32,
        interval: Duration,
        mut sink: impl FnMut(u64, Vec<(String, f64)>) + Send + 'static,
    ) -> Option<Monitor> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let stop_for_thread = Arc::clone(&stop);
        let (exit_tx, exited) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("labbook-monitor".into())
            .spawn(move || {
                // Dropped on every way out of the thread: tells `stop` it ended.
                let _exit = exit_tx;
                let mut sampler = SystemSampler::new(pid);
                let mut index = 0;
                let (lock, wake) = &*stop_for_thread;
                // Prime the CPU counters: percentages need two readings.
                sampler.sample();
                loop {
                    let Ok(guard) = lock.lock() else { return };
                    let Ok((stopped, _)) =
                        wake.wait_timeout_while(guard, interval, |stopped| !*stopped)
                    else {
                        return;
                    };
                    if *stopped {
                        return;
                    }
                    drop(stopped);
                    let sample = sampler.sample();
                    // A stop that came during a slow sample: the run is over.
                    if lock.lock().map_or(true, |stopped| *stopped) {
                        return;
                    }
                    if !sample.is_empty() {
                        sink(index, sample);
                        index += 1;
                    }
                }
            })
            .ok()?;
        Some(Monitor {
            stop,
            thread: Some(thread),
            exited,
        })
    }

    /// Stops sampling and waits for the thread to end.
    pub fn stop(&mut self) {
        let (lock, wake) = &*self.stop;
        if let Ok(mut stopped) = lock.lock() {
            *stopped = true;
        }
        wake.notify_all();
        if let Some(thread) = self.thread.take() {
            // The sender is dropped when the thread exits, which ends the wait.
            let _ = self.exited.recv_timeout(STOP_WAIT);
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// Waits for `done`, failing the test after `limit`.
    fn wait_until(limit: Duration, done: impl Fn() -> bool) {
        let deadline = Instant::now() + limit;
        while !done() {
            assert!(Instant::now() < deadline, "timed out after {limit:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn samples_on_the_interval() {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&samples);
        let mut monitor = Monitor::spawn(
            std::process::id(),
            Duration::from_millis(50),
            move |i, s| {
                sink.lock().unwrap().push((i, s));
            },
        )
        .unwrap();
        wait_until(Duration::from_secs(30), || {
            samples.lock().unwrap().len() >= 2
        });
        monitor.stop();
        let samples = samples.lock().unwrap();
        assert_eq!(samples[0].0, 0);
        assert_eq!(samples[1].0, 1);
        assert!(
            samples[1]
                .1
                .iter()
                .any(|(k, v)| k == "sys/rss_mb" && *v > 0.0)
        );
    }

    #[test]
    fn stop_ends_the_thread_without_waiting_for_the_interval() {
        let mut monitor =
            Monitor::spawn(std::process::id(), Duration::from_secs(3600), |_, _| {}).unwrap();
        let started = Instant::now();
        monitor.stop();
        // Had the thread slept through its interval, stop would have given up
        // on it after STOP_WAIT; returning sooner means it ended on the stop.
        assert!(
            started.elapsed() < STOP_WAIT,
            "stop waited {:?}",
            started.elapsed()
        );
    }
}
