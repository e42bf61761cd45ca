//! A run's background writer: callers hand points to it without waiting on
//! the disk; a thread flushes them every `flush_interval` in one
//! transaction, beats the heartbeat, and on `finish` seals every tail.
//!
//! The caller's side is a mutex-guarded append to a vector (tens of
//! nanoseconds); the thread swaps the vector out, so the lock is never held
//! while encoding or writing.

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use labbook_core::metric::validate_metric_key;
use labbook_core::{SeriesColumns, ValidationError};

use crate::Store;
use crate::error::{Result, StoreError};
use crate::series::SeriesWriter;
use crate::types::{NewRun, OutputChunk, OutputStream, RunPatch, WriteSet};

#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// How often pending points are written. A process killed without
    /// warning loses at most this much (plus one write) of logging.
    pub flush_interval: Duration,
    /// How often an idle run still proves it is alive.
    pub heartbeat_interval: Duration,
    /// Pending points that trigger an early flush, bounding memory.
    pub max_pending_points: usize,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            flush_interval: Duration::from_millis(500),
            heartbeat_interval: Duration::from_secs(10),
            max_pending_points: 2_000_000,
        }
    }
}

/// One logged value, its key given by index into the writer's key table.
#[derive(Debug, Clone, Copy)]
pub struct PendingPoint {
    pub key: u32,
    pub step: i64,
    pub ts_ms: i64,
    pub value: f64,
}

#[derive(Default)]
struct Pending {
    points: Vec<PendingPoint>,
    series: Vec<(u32, SeriesColumns)>,
    output: Vec<OutputChunk>,
    patch: Option<RunPatch>,
    /// Bumped by each flush request; the thread reports the last one done.
    requested: u64,
    stop: bool,
}

struct Shared {
    run_id: String,
    options: WriterOptions,
    pending: Mutex<Pending>,
    wake: Condvar,
    keys: Mutex<KeyTable>,
    done: Mutex<FlushState>,
    done_changed: Condvar,
}

#[derive(Default)]
struct KeyTable {
    names: Vec<String>,
    index: HashMap<String, u32>,
}

#[derive(Default)]
struct FlushState {
    completed: u64,
    last_error: Option<String>,
    points_written: u64,
    /// Waits for a store lock another process held, and writes retried
    /// because a lock wait timed out: contention met and absorbed.
    lock_retries: u64,
    finished: bool,
    /// A batch the sink refused for good (see [`is_permanent`]).
    fatal: Option<String>,
}

/// The handle a run's producers log through. Cheap to share behind an `Arc`.
pub struct RunWriter {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl RunWriter {
    /// A writer into the embedded store.
    pub fn start(store: Arc<dyn Store>, run_id: &str, options: WriterOptions) -> Result<RunWriter> {
        RunWriter::start_with(Box::new(StoreSink::new(store, run_id)), run_id, options)
    }

    /// A writer whose flushes go to `sink`.
    pub fn start_with(
        sink: Box<dyn Sink>,
        run_id: &str,
        options: WriterOptions,
    ) -> Result<RunWriter> {
        let shared = Arc::new(Shared {
            run_id: run_id.to_string(),
            options,
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            keys: Mutex::new(KeyTable::default()),
            done: Mutex::new(FlushState::default()),
            done_changed: Condvar::new(),
        });
        let for_thread = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("labbook-writer-{run_id}"))
            .spawn(move || flush_loop(&for_thread, sink))
            .map_err(|e| StoreError::Internal(format!("cannot start the writer thread: {e}")))?;
        Ok(RunWriter {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    pub fn run_id(&self) -> &str {
        &self.shared.run_id
    }

    /// The index of a metric key, validating it the first time it is seen.
    pub fn key_index(&self, key: &str) -> Result<u32, ValidationError> {
        let mut keys = self.shared.keys.lock();
        if let Some(&i) = keys.index.get(key) {
            return Ok(i);
        }
        validate_metric_key(key)?;
        let i = keys.names.len() as u32;
        keys.names.push(key.to_string());
        keys.index.insert(key.to_string(), i);
        Ok(i)
    }

    /// Queues points; never waits for the disk.
    pub fn push(&self, points: &[PendingPoint]) {
        let mut pending = self.shared.pending.lock();
        pending.points.extend_from_slice(points);
        if pending.points.len() >= self.shared.options.max_pending_points {
            self.shared.wake.notify_one();
        }
    }

    /// Queues a whole series for one key (bulk logging).
    pub fn push_series(&self, key: u32, series: SeriesColumns) {
        let mut pending = self.shared.pending.lock();
        pending.series.push((key, series));
        self.shared.wake.notify_one();
    }

    pub fn push_output(&self, stream: OutputStream, data: Vec<u8>) {
        if data.is_empty() {
            return;
        }
        self.shared.pending.lock().output.push(OutputChunk {
            stream,
            ts_ms: now_ms(),
            data,
        });
    }

    /// Queues a change to the run, applied with the next flush.
    pub fn patch(&self, patch: RunPatch) {
        let mut pending = self.shared.pending.lock();
        match &mut pending.patch {
            Some(existing) => existing.absorb(patch),
            None => pending.patch = Some(patch),
        }
    }

    /// Writes everything queued so far and waits for it (up to `timeout`).
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        let ticket = {
            let mut pending = self.shared.pending.lock();
            pending.requested += 1;
            self.shared.wake.notify_one();
            pending.requested
        };
        self.wait_for(ticket, timeout)
    }

    fn wait_for(&self, ticket: u64, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut done = self.shared.done.lock();
        while done.completed < ticket && !done.finished {
            if self
                .shared
                .done_changed
                .wait_until(&mut done, deadline)
                .timed_out()
            {
                return Err(StoreError::Busy(match &done.last_error {
                    Some(e) => format!("flush did not finish in {timeout:?}; last error: {e}"),
                    None => format!("flush did not finish in {timeout:?}"),
                }));
            }
        }
        if let Some(fatal) = &done.fatal {
            return Err(StoreError::Internal(fatal.clone()));
        }
        match &done.last_error {
            Some(e) if done.completed < ticket || done.finished => {
                Err(StoreError::Internal(e.clone()))
            }
            _ => Ok(()),
        }
    }

    /// Points committed so far.
    pub fn points_written(&self) -> u64 {
        self.shared.done.lock().points_written
    }

    /// How many times this run's writes found the store locked by another
    /// writer (SQLITE_BUSY) and waited or tried again. Each wait is part of
    /// normal sharing of one store by many processes; none is an error. A
    /// run logged into a server counts none (the server waits for it).
    pub fn lock_retries(&self) -> u64 {
        self.shared.done.lock().lock_retries
    }

    /// The last write error, if the last flush failed (it will be retried).
    pub fn last_error(&self) -> Option<String> {
        self.shared.done.lock().last_error.clone()
    }

    /// Starts the final flush without waiting for it, so the caller can
    /// finish other work meanwhile; [`RunWriter::finish`] then waits. Points
    /// pushed after this are not written.
    pub fn begin_finish(&self, final_patch: RunPatch) {
        let mut pending = self.shared.pending.lock();
        match &mut pending.patch {
            Some(existing) => existing.absorb(final_patch),
            None => pending.patch = Some(final_patch),
        }
        pending.stop = true;
        self.shared.wake.notify_one();
    }

    /// Flushes, seals every tail, applies `final_patch` and stops the
    /// thread. Waits at most `timeout`; what is still queued then stays
    /// queued in memory and is reported in the error.
    pub fn finish(&self, final_patch: RunPatch, timeout: Duration) -> Result<()> {
        self.begin_finish(final_patch);
        let Some(thread) = self.thread.lock().take() else {
            return Ok(());
        };
        let deadline = Instant::now() + timeout;
        {
            let mut done = self.shared.done.lock();
            while !done.finished {
                if self
                    .shared
                    .done_changed
                    .wait_until(&mut done, deadline)
                    .timed_out()
                {
                    let error = done
                        .last_error
                        .clone()
                        .unwrap_or_else(|| "still writing".into());
                    // The thread keeps retrying in the background; dropping
                    // its handle detaches it rather than blocking the caller.
                    drop(thread);
                    return Err(StoreError::Busy(format!(
                        "finish did not complete in {timeout:?}: {error}"
                    )));
                }
            }
        }
        let _ = thread.join();
        let done = self.shared.done.lock();
        match done.fatal.clone().or_else(|| done.last_error.clone()) {
            Some(e) => Err(StoreError::Internal(e)),
            None => Ok(()),
        }
    }
}

fn group_points(
    points: &[PendingPoint],
    series: Vec<(u32, SeriesColumns)>,
    names: &[String],
) -> Vec<(String, SeriesColumns)> {
    let mut by_key: HashMap<u32, SeriesColumns> = HashMap::new();
    for p in points {
        let s = by_key.entry(p.key).or_default();
        s.steps.push(p.step);
        s.ts_ms.push(p.ts_ms);
        s.values.push(p.value);
    }
    for (key, columns) in series {
        let s = by_key.entry(key).or_default();
        if s.is_empty() {
            *s = columns;
        } else {
            s.extend_from(&columns);
        }
    }
    let mut out: Vec<(String, SeriesColumns)> = by_key
        .into_iter()
        .filter_map(|(k, s)| names.get(k as usize).map(|name| (name.clone(), s)))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// What one flush writes besides the heartbeat.
#[derive(Debug, Default, Clone)]
pub struct FlushBatch {
    /// Points by key, keys sorted, each key's points in logging order.
    pub series: Vec<(String, SeriesColumns)>,
    pub output: Vec<OutputChunk>,
    pub patch: Option<RunPatch>,
}

impl FlushBatch {
    pub fn is_empty(&self) -> bool {
        self.series.is_empty() && self.output.is_empty() && self.patch.is_none()
    }

    pub fn points(&self) -> u64 {
        self.series.iter().map(|(_, s)| s.len() as u64).sum()
    }
}

/// Whether the run a [`StoreSink::creating`] sink inserts is in the store
/// yet. `init()` returns before the insert commits; whatever else writes
/// under the run's id (a note, the captured environment, an artifact)
/// waits here first, so nothing reaches the store before its run.
#[derive(Default)]
pub struct Creation {
    state: Mutex<Option<std::result::Result<(), String>>>,
    changed: Condvar,
}

impl Creation {
    /// A run that already exists: waiting returns at once.
    pub fn done() -> Arc<Creation> {
        Arc::new(Creation {
            state: Mutex::new(Some(Ok(()))),
            changed: Condvar::new(),
        })
    }

    fn set(&self, result: std::result::Result<(), String>) {
        *self.state.lock() = Some(result);
        self.changed.notify_all();
    }

    /// Waits until the run is in the store, or its insert failed for good.
    pub fn wait(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut state = self.state.lock();
        while state.is_none() {
            if self.changed.wait_until(&mut state, deadline).timed_out() && state.is_none() {
                return Err(StoreError::Busy(
                    "the run is not in the store yet: its insert is still waiting for the write lock"
                        .into(),
                ));
            }
        }
        match &*state {
            Some(Err(e)) => Err(StoreError::Internal(format!(
                "the run was not created: {e}"
            ))),
            _ => Ok(()),
        }
    }
}

/// Where a run's flushes go: the embedded store, or a server.
pub trait Sink: Send + 'static {
    /// Called once on the writer's thread before any write, and again
    /// after a failure until it succeeds: a sink that creates its run
    /// does it here.
    fn open(&mut self) -> Result<()> {
        Ok(())
    }
    /// Writes one flush, with a heartbeat, all or nothing. A batch that
    /// failed is offered again unchanged under the same `batch_id`, so a
    /// sink that cannot know whether a failed write landed (a request cut
    /// off mid-answer) lets the other side drop the repeat by its id.
    /// With `seal` the run's writer is done: its tails are sealed.
    fn write(&mut self, batch: &FlushBatch, batch_id: &str, seal: bool) -> Result<()>;
}

/// The embedded store as a [`Sink`]. Its transaction either commits or
/// not, so batch ids are not stored.
pub struct StoreSink {
    store: Arc<dyn Store>,
    run_id: String,
    series: SeriesWriter,
    /// The run to insert before the first write, and who waits for it.
    create: Option<(NewRun, Arc<Creation>)>,
}

impl StoreSink {
    pub fn new(store: Arc<dyn Store>, run_id: &str) -> StoreSink {
        StoreSink {
            store,
            run_id: run_id.to_string(),
            series: SeriesWriter::new(),
            create: None,
        }
    }

    /// A sink whose writer thread first inserts `new` (its id set), then
    /// tells `creation`.
    pub fn creating(store: Arc<dyn Store>, new: NewRun, creation: Arc<Creation>) -> StoreSink {
        let run_id = new.id.clone().unwrap_or_default();
        StoreSink {
            create: Some((new, creation)),
            ..StoreSink::new(store, &run_id)
        }
    }
}

impl Sink for StoreSink {
    fn open(&mut self) -> Result<()> {
        let Some((new, creation)) = &self.create else {
            return Ok(());
        };
        match self.store.create_run(new) {
            Ok(_) => {
                creation.set(Ok(()));
                self.create = None;
                Ok(())
            }
            Err(e) => {
                if is_permanent(&e) || matches!(e, StoreError::Conflict(_)) {
                    creation.set(Err(e.to_string()));
                }
                Err(e)
            }
        }
    }

    fn write(&mut self, batch: &FlushBatch, _batch_id: &str, seal: bool) -> Result<()> {
        match self.try_write(batch, seal) {
            // The tails it held are sealed in the store now; what this
            // batch adds goes into new ones.
            Err(StoreError::StaleTails(_)) => {
                self.series = SeriesWriter::new();
                self.try_write(batch, seal)
            }
            other => other,
        }
    }
}

impl StoreSink {
    fn try_write(&mut self, batch: &FlushBatch, seal: bool) -> Result<()> {
        let plan = self.series.plan(batch.series.clone(), seal)?;
        let write = WriteSet {
            run_id: self.run_id.clone(),
            batch_id: None,
            series: plan,
            output: batch.output.clone(),
            patch: batch.patch.clone(),
            heartbeat_ms: Some(now_ms()),
        };
        let ids = self.store.commit(&write)?.unwrap_or_default();
        self.series.apply(write.series, &ids);
        Ok(())
    }
}

/// A flush being written, kept whole until it lands.
struct InFlight {
    batch: FlushBatch,
    id: String,
    requested: u64,
    stop: bool,
}

/// Errors that no retry can fix: the batch is dropped and every later
/// flush reports it, rather than blocking the run's writes forever.
fn is_permanent(e: &StoreError) -> bool {
    matches!(e, StoreError::Invalid(_) | StoreError::NotFound { .. })
}

const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(2);

fn flush_loop(shared: &Shared, mut sink: Box<dyn Sink>) {
    let mut last_beat = Instant::now();
    let batch_prefix = format!("{:016x}", crate::random_bits());
    let mut sequence = 0u64;
    let mut retry: Option<InFlight> = None;
    let mut backoff = RETRY_FIRST;
    let mut opened = false;
    loop {
        if !opened {
            match sink.open() {
                Ok(()) => {
                    opened = true;
                    backoff = RETRY_FIRST;
                    shared.done.lock().last_error = None;
                }
                Err(e) if is_permanent(&e) || matches!(e, StoreError::Conflict(_)) => {
                    // Every write would be refused: let them be, reported.
                    opened = true;
                    shared.done.lock().fatal = Some(format!("the run was not created: {e}"));
                }
                Err(e) => {
                    shared.done.lock().last_error = Some(e.to_string());
                    shared.done_changed.notify_all();
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(RETRY_MAX);
                    continue;
                }
            }
        }
        let job = match retry.take() {
            Some(job) => job,
            None => {
                let (points, series, output, patch, requested, stop) = {
                    let mut pending = shared.pending.lock();
                    let idle = pending.points.is_empty()
                        && pending.series.is_empty()
                        && pending.requested == shared.done.lock().completed
                        && !pending.stop;
                    if idle {
                        shared
                            .wake
                            .wait_for(&mut pending, shared.options.flush_interval);
                    }
                    (
                        std::mem::take(&mut pending.points),
                        std::mem::take(&mut pending.series),
                        std::mem::take(&mut pending.output),
                        pending.patch.take(),
                        pending.requested,
                        pending.stop,
                    )
                };
                let names = shared.keys.lock().names.clone();
                let batch = FlushBatch {
                    series: group_points(&points, series, &names),
                    output,
                    patch,
                };
                let beat_due = last_beat.elapsed() >= shared.options.heartbeat_interval;
                if batch.is_empty() && !beat_due && !stop {
                    let mut done = shared.done.lock();
                    done.completed = done.completed.max(requested);
                    shared.done_changed.notify_all();
                    continue;
                }
                sequence += 1;
                InFlight {
                    batch,
                    id: format!("{batch_prefix}-{sequence}"),
                    requested,
                    stop,
                }
            }
        };
        // The store's busy handler runs on this thread, inside the write.
        let waits_before = crate::lock_retries_on_this_thread();
        let result = sink.write(&job.batch, &job.id, job.stop);
        let waits = crate::lock_retries_on_this_thread().saturating_sub(waits_before);
        let mut done = shared.done.lock();
        done.lock_retries = done.lock_retries.saturating_add(waits);
        match result {
            Ok(()) => {
                last_beat = Instant::now();
                backoff = RETRY_FIRST;
                done.points_written += job.batch.points();
                done.last_error = None;
                done.completed = job.requested;
            }
            Err(e) if is_permanent(&e) => {
                done.fatal = Some(format!(
                    "{} points were refused and dropped: {e}",
                    job.batch.points()
                ));
                done.completed = job.requested;
            }
            Err(e) => {
                if matches!(e, StoreError::Busy(_)) {
                    done.lock_retries = done.lock_retries.saturating_add(1);
                }
                done.last_error = Some(e.to_string());
                shared.done_changed.notify_all();
                drop(done);
                retry = Some(job);
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(RETRY_MAX);
                continue;
            }
        }
        if job.stop {
            done.finished = true;
        }
        shared.done_changed.notify_all();
        if job.stop {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One write a sink saw: the batch id, the steps, and whether it sealed.
    type Seen = (String, Vec<i64>, bool);

    /// Records every write; fails while `failures` has entries left.
    struct FlakySink {
        seen: Arc<Mutex<Vec<Seen>>>,
        failures: Vec<StoreError>,
    }

    impl Sink for FlakySink {
        fn write(&mut self, batch: &FlushBatch, batch_id: &str, seal: bool) -> Result<()> {
            let steps = batch
                .series
                .iter()
                .flat_map(|(_, s)| s.steps.clone())
                .collect();
            self.seen.lock().push((batch_id.to_string(), steps, seal));
            match self.failures.pop() {
                Some(e) => Err(e),
                None => Ok(()),
            }
        }
    }

    fn options() -> WriterOptions {
        WriterOptions {
            flush_interval: Duration::from_millis(20),
            ..Default::default()
        }
    }

    /// Waits for `done`, failing the test after 10 s.
    fn wait_until(done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn point(key: u32, step: i64) -> PendingPoint {
        PendingPoint {
            key,
            step,
            ts_ms: 1,
            value: step as f64,
        }
    }

    #[test]
    fn a_failed_batch_is_offered_again_unchanged_under_its_id() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = FlakySink {
            seen: Arc::clone(&seen),
            failures: vec![
                StoreError::Remote("connection reset".into()),
                StoreError::Remote("connection refused".into()),
            ],
        };
        let writer = RunWriter::start_with(Box::new(sink), "r", options()).unwrap();
        let key = writer.key_index("loss").unwrap();
        writer.push(&[point(key, 0), point(key, 1)]);
        // Points logged once the first batch is out (and failing) wait
        // behind it rather than join it.
        wait_until(|| !seen.lock().is_empty());
        writer.push(&[point(key, 2)]);
        writer.flush(Duration::from_secs(10)).unwrap();
        writer
            .finish(RunPatch::default(), Duration::from_secs(10))
            .unwrap();
        let seen = seen.lock();
        let first = &seen[0];
        assert_eq!(first.1, vec![0, 1]);
        assert_eq!(
            seen[1], *first,
            "the retry is the same batch under the same id"
        );
        assert_eq!(seen[2], *first);
        let rest: Vec<i64> = seen[3..].iter().flat_map(|w| w.1.clone()).collect();
        assert_eq!(rest, vec![2]);
        assert!(
            seen[3..].iter().all(|w| w.0 != first.0),
            "new batches get new ids"
        );
        assert!(seen.last().is_some_and(|w| w.2), "the last write seals");
        assert_eq!(writer.points_written(), 3);
    }

    /// A sink over a store that another process keeps locked: the store's
    /// busy handler waits twice inside each write, and the first write
    /// times out on the lock once.
    struct ContendedSink {
        timeouts: u32,
    }

    impl Sink for ContendedSink {
        fn write(&mut self, _batch: &FlushBatch, _batch_id: &str, _seal: bool) -> Result<()> {
            crate::count_lock_retry();
            crate::count_lock_retry();
            if self.timeouts > 0 {
                self.timeouts -= 1;
                return Err(StoreError::Busy("database is locked".into()));
            }
            Ok(())
        }
    }

    #[test]
    fn lock_waits_and_lock_timeouts_are_counted() {
        let writer =
            RunWriter::start_with(Box::new(ContendedSink { timeouts: 1 }), "r", options()).unwrap();
        let key = writer.key_index("loss").unwrap();
        writer.push(&[point(key, 0)]);
        writer.flush(Duration::from_secs(10)).unwrap();
        // Two writes (the timed-out one and its retry), two waits each, and
        // the retry itself.
        assert_eq!(writer.lock_retries(), 5);
        assert_eq!(writer.last_error(), None);
        writer
            .finish(RunPatch::default(), Duration::from_secs(10))
            .unwrap();
        assert_eq!(writer.lock_retries(), 7, "the final write waited twice");
    }

    #[test]
    fn a_refused_batch_is_dropped_and_reported() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = FlakySink {
            seen: Arc::clone(&seen),
            failures: vec![StoreError::Invalid(ValidationError::new(
                "id",
                "no such run",
            ))],
        };
        let writer = RunWriter::start_with(Box::new(sink), "r", options()).unwrap();
        let key = writer.key_index("loss").unwrap();
        writer.push(&[point(key, 0)]);
        let error = writer
            .flush(Duration::from_secs(10))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("refused and dropped") && error.contains("no such run"),
            "{error}"
        );
        writer.push(&[point(key, 1)]);
        assert!(
            writer
                .finish(RunPatch::default(), Duration::from_secs(10))
                .is_err()
        );
        assert_eq!(seen.lock().len(), 2, "the refused batch was not sent again");
    }
}
