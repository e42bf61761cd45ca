//! Reading a series back from its chunks: whole, or downsampled for a
//! chart, the same way whichever database holds the chunks
//! ([`ChunkSource`]).

use std::thread;

use labbook_core::SeriesColumns;

use crate::codec;
use crate::error::Result;
use crate::series::Downsampler;
use crate::types::StepRange;

/// One series' chunks in a database.
pub(crate) trait ChunkSource: Sync {
    /// The smallest and largest step and the point count of the chunks
    /// overlapping `range` (`None`s when none does).
    fn extent(&self, range: StepRange) -> Result<(Option<i64>, Option<i64>, Option<i64>)>;
    /// The chunks' encoded points overlapping `range`, in step order.
    fn blobs(&self, range: StepRange) -> Result<Vec<Vec<u8>>>;
    /// The chunks overlapping `range`, in step order: each one's sketch
    /// where `use_sketch` says so, its points otherwise.
    fn chunks(
        &self,
        range: StepRange,
        use_sketch: &dyn Fn(&ChunkInfo) -> bool,
    ) -> Result<Vec<ChunkRead>>;
    /// One chunk's encoded points.
    fn chunk_data(&self, id: i64) -> Result<Vec<u8>>;
}

/// The points of `range`, sorted by step.
pub(crate) fn read_series(source: &dyn ChunkSource, range: StepRange) -> Result<SeriesColumns> {
    let blobs = source.blobs(range)?;
    let mut out = decode_all(&blobs)?;
    if range != StepRange::ALL {
        let keep: Vec<usize> = (0..out.len())
            .filter(|&i| range.contains(out.steps[i]))
            .collect();
        if keep.len() != out.len() {
            let mut filtered = SeriesColumns::with_capacity(keep.len());
            for i in keep {
                filtered.push(out.point(i));
            }
            out = filtered;
        }
    }
    out.sort_by_step();
    Ok(out)
}

/// At most about `buckets` points that draw `range` as the whole would,
/// and how many points the range holds.
pub(crate) fn downsample(
    source: &dyn ChunkSource,
    range: StepRange,
    buckets: usize,
    timestamps: bool,
) -> Result<(SeriesColumns, usize)> {
    let (lo, hi, stored) = source.extent(range)?;
    let (Some(lo), Some(hi)) = (range.lo.max(lo), range.hi.or(hi).min(hi)) else {
        return Ok((SeriesColumns::default(), 0));
    };
    if hi < lo {
        return Ok((SeriesColumns::default(), 0));
    }
    let range = StepRange {
        lo: Some(lo),
        hi: Some(hi),
    };
    // Few points: send them all (the chunks overlapping the range bound
    // the count from above, so this never reads a large series whole).
    if stored.unwrap_or(0) as usize <= buckets.saturating_mul(4) {
        let points = read_series(source, range)?;
        let total = points.len();
        if total <= buckets {
            return Ok((points, total));
        }
        let mut sampler = Downsampler::new(lo, hi, buckets);
        sampler.add(&points);
        return Ok((sampler.finish(), total));
    }
    let sizing = Downsampler::new(lo, hi, buckets);
    let chunks = source.chunks(range, &|c| {
        c.has_sketch
            && c.step_min >= lo
            && c.step_max <= hi
            && sizing.sketch_fits(c.n, c.step_min, c.step_max)
    })?;
    let read = |part: &[ChunkRead]| -> Result<(Downsampler, Vec<i64>)> {
        let mut sampler = Downsampler::new(lo, hi, buckets);
        let mut unsketched = Vec::new();
        let mut scratch = SeriesColumns::default();
        for chunk in part {
            let blob = match chunk {
                ChunkRead::Sketch { id, n, bytes } => {
                    // A sketch is derived: one that cannot be read sends
                    // the reader to the chunk itself.
                    match crate::sketch::decode(bytes, timestamps) {
                        Ok(sketch) => sampler.add_sketch(&sketch, *n),
                        Err(_) => unsketched.push(*id),
                    }
                    continue;
                }
                ChunkRead::Data(blob) => blob,
            };
            scratch.steps.clear();
            scratch.ts_ms.clear();
            scratch.values.clear();
            codec::decode_into_with(blob, &mut scratch, timestamps)?;
            sampler.add_within(&scratch, lo, hi);
        }
        Ok((sampler, unsketched))
    };
    // Sketches are a few thousand points: threads would cost more than
    // they save (the server already reads many curves at once).
    let parts = if chunks.iter().any(|c| matches!(c, ChunkRead::Data(_))) {
        parallel_map(&chunks, read)
    } else {
        vec![read(&chunks)]
    };
    let mut merged = Downsampler::new(lo, hi, buckets);
    for part in parts {
        let (sampler, unsketched) = part?;
        merged.merge(sampler);
        for id in unsketched {
            let blob = source.chunk_data(id)?;
            let mut points = SeriesColumns::default();
            codec::decode_into_with(&blob, &mut points, timestamps)?;
            merged.add_within(&points, lo, hi);
        }
    }
    let total = merged.seen();
    Ok((merged.finish(), total))
}

/// What a downsample reads of one chunk: its sketch or its points.
pub(crate) enum ChunkRead {
    Sketch { id: i64, n: usize, bytes: Vec<u8> },
    Data(Vec<u8>),
}

/// A chunk as a downsample first sees it: enough to choose what to read.
pub(crate) struct ChunkInfo {
    pub n: usize,
    pub step_min: i64,
    pub step_max: i64,
    pub has_sketch: bool,
}

/// Decodes chunks, in order, into one set of columns: sized once from the
/// chunk headers and filled in parallel, each chunk straight into its slice.
fn decode_all(blobs: &[Vec<u8>]) -> Result<SeriesColumns> {
    let counts = blobs
        .iter()
        .map(|b| codec::point_count(b))
        .collect::<Result<Vec<_>, _>>()?;
    let total: usize = counts.iter().sum();
    let mut out = SeriesColumns {
        steps: vec![0; total],
        ts_ms: vec![0; total],
        values: vec![0.0; total],
    };
    if total >= 100_000 {
        prefault(&mut out.steps);
        prefault(&mut out.ts_ms);
        prefault(&mut out.values);
    }
    let mut jobs = Vec::with_capacity(blobs.len());
    let (mut steps, mut ts, mut values) =
        (&mut out.steps[..], &mut out.ts_ms[..], &mut out.values[..]);
    for (blob, &n) in blobs.iter().zip(&counts) {
        let (s, rest_s) = steps.split_at_mut(n);
        let (t, rest_t) = ts.split_at_mut(n);
        let (v, rest_v) = values.split_at_mut(n);
        jobs.push((blob.as_slice(), s, t, v));
        (steps, ts, values) = (rest_s, rest_t, rest_v);
    }
    let threads = thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(jobs.len())
        .max(1);
    if threads == 1 || total < 100_000 {
        for (blob, s, t, v) in jobs {
            codec::decode_to(blob, s, t, v)?;
        }
        return Ok(out);
    }
    // Deal chunks round-robin so both threads get early and late chunks.
    let mut per_thread: Vec<Vec<_>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, job) in jobs.into_iter().enumerate() {
        per_thread[i % threads].push(job);
    }
    let results: Vec<Result<(), codec::CodecError>> = thread::scope(|scope| {
        let handles: Vec<_> = per_thread
            .into_iter()
            .map(|jobs| {
                scope.spawn(move || {
                    jobs.into_iter()
                        .try_for_each(|(b, s, t, v)| codec::decode_to(b, s, t, v))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(codec::CodecError::Corrupt("decoder thread panicked".into()))
                })
            })
            .collect()
    });
    for r in results {
        r?;
    }
    Ok(out)
}

/// Maps in the pages of a large, freshly allocated (so still unmapped)
/// buffer with one system call, instead of one page fault per 4 KiB as the
/// decoder first writes each: a 1M-point read faults 6,000 pages in.
/// Best effort: an older kernel refuses the advice and the faults happen.
fn prefault<T>(buffer: &mut [T]) {
    const PAGE: usize = 4096;
    let start = buffer.as_mut_ptr() as usize;
    let end = start + std::mem::size_of_val(buffer);
    let first = start.next_multiple_of(PAGE);
    let last = end / PAGE * PAGE;
    if last > first {
        // SAFETY: [first, last) lies inside `buffer`, which this function
        // borrows mutably, so no one else reads or writes it meanwhile; the
        // advice maps its pages in as if written with the values they hold
        // (it never changes memory contents), and touches nothing outside.
        unsafe {
            libc::madvise(
                first as *mut libc::c_void,
                last - first,
                libc::MADV_POPULATE_WRITE,
            );
        }
    }
}

/// Runs `f` over `items` on up to the machine's cores, keeping order.
fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&[T]) -> R + Sync) -> Vec<R> {
    let threads = thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len())
        .max(1);
    if threads == 1 {
        return vec![f(items)];
    }
    let per = items.len().div_ceil(threads);
    thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(per)
            .map(|part| scope.spawn(|| f(part)))
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    })
}
