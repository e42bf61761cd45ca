//! A sealed chunk's sketch: for every cell of `CELL_POINTS` consecutive
//! points, its minimum and maximum (and its first NaN, a gap), with the
//! chunk's first and last points (a curve's ends), kept beside
//! the chunk so that a chart of a long run reads a few thousand points
//! instead of decoding every one.
//!
//! A downsample uses a chunk's sketch only when each of its buckets spans
//! at least `MIN_CELLS_PER_BUCKET` cells of that chunk. A cell inside one
//! bucket folds into it as its points would, except that its first and
//! last points are its earliest and latest picks; a cell across a bucket
//! edge gives each pick to the bucket its step falls in. So every peak of
//! the series is drawn, a bucket's extremes are exact away from its edges,
//! and near an edge they may lie up to one cell over.
//!
//! Only chunks with strictly ascending steps get a sketch (nearly all: a
//! run logs forward); the others, and tails, are decoded as before.
//!
//! Layout (little-endian): `MAGIC cell_points:u32 cells:u32`, one byte per
//! cell giving its pick count (0–4), then the picks as a codec chunk. Like
//! the codec's, the decoder trusts nothing: a sketch is derived data, and
//! a reader that cannot use one decodes the chunk itself.

use labbook_core::SeriesColumns;

use crate::codec::{self, CodecError, MAX_CHUNK_POINTS};

const MAGIC: u8 = 0xB5;
/// 64 points a cell: a sketch is about 9% of its chunk (65,536 noisy
/// points: 19.6 KB beside 212 KB) and costs 7–15% of its encoding time
/// (bulk ingest of 1M noisy NumPy points through the SDK: 11.8M points/s
/// with sketches, 14M without), and a chart of 100k-point runs at 375
/// buckets (100 runs on one panel) uses it.
pub const CELL_POINTS: usize = 64;
/// With fewer cells a bucket, cell edges would cut buckets so often that
/// some buckets keep two points where their neighbours keep four, which
/// shows on a noisy curve as bands: the chunk is decoded instead.
pub const MIN_CELLS_PER_BUCKET: f64 = 4.0;
/// The most picks a cell keeps: its minimum, its maximum, its first NaN
/// and the chunk's first or last point.
const MAX_PICKS: u8 = 4;

/// A decoded sketch: `counts[c]` picks of cell `c`, in step order, one
/// cell after another.
#[derive(Debug, Default, PartialEq)]
pub struct Sketch {
    pub counts: Vec<u8>,
    pub picks: SeriesColumns,
}

/// The sketch of a chunk's columns, or `None` when its steps are not
/// strictly ascending or it is too small to be worth one.
pub fn build(steps: &[i64], ts_ms: &[i64], values: &[f64]) -> Result<Option<Vec<u8>>, CodecError> {
    if steps.len() < 4 * CELL_POINTS || !steps.windows(2).all(|w| w[0] < w[1]) {
        return Ok(None);
    }
    let cells = steps.len().div_ceil(CELL_POINTS);
    let mut counts = Vec::with_capacity(cells);
    let mut picks = SeriesColumns::with_capacity(2 * cells);
    let mut chosen = [0usize; MAX_PICKS as usize + 1];
    for start in (0..steps.len()).step_by(CELL_POINTS) {
        let cell = &values[start..(start + CELL_POINTS).min(values.len())];
        let (min, max, nan) = cell_picks(cell);
        let mut n = 0;
        for k in [min, max, nan].into_iter().flatten() {
            chosen[n] = k;
            n += 1;
        }
        if start == 0 {
            chosen[n] = 0;
            n += 1;
        }
        if start + cell.len() == values.len() {
            chosen[n] = cell.len() - 1;
            n += 1;
        }
        chosen[..n].sort_unstable();
        let mut kept = 0;
        for k in 0..n {
            if kept == 0 || chosen[k] != chosen[kept - 1] {
                chosen[kept] = chosen[k];
                kept += 1;
            }
        }
        let n = kept;
        for &k in &chosen[..n] {
            let i = start + k;
            picks.steps.push(steps[i]);
            picks.ts_ms.push(ts_ms[i]);
            picks.values.push(values[i]);
        }
        counts.push(n as u8);
    }
    let mut out = Vec::with_capacity(9 + cells + 16 * picks.len());
    out.push(MAGIC);
    out.extend_from_slice(&(CELL_POINTS as u32).to_le_bytes());
    out.extend_from_slice(&(cells as u32).to_le_bytes());
    out.extend_from_slice(&counts);
    out.extend_from_slice(&codec::encode_fast(&picks)?);
    Ok(Some(out))
}

/// Where a cell's first minimum, first maximum and first NaN are (NaN is
/// neither extreme). One pass of selects, which the compiler turns into
/// vector min/max, finds the extremes' values; short scans find where
/// they first occur. Branching on each new extreme instead cost bulk
/// ingest a quarter of its speed on noisy values.
fn cell_picks(cell: &[f64]) -> (Option<usize>, Option<usize>, Option<usize>) {
    let (mut lo, mut hi, mut any_nan) = (f64::INFINITY, f64::NEG_INFINITY, false);
    for &v in cell {
        lo = if v < lo { v } else { lo };
        hi = if v > hi { v } else { hi };
        any_nan |= v.is_nan();
    }
    // Only NaN never equals itself: an all-NaN cell finds neither extreme.
    let min = cell.iter().position(|&v| v == lo);
    let max = cell.iter().position(|&v| v == hi);
    let nan = if any_nan {
        cell.iter().position(|v| v.is_nan())
    } else {
        None
    };
    (min, max.filter(|&m| Some(m) != min), nan)
}

/// Decodes a sketch; without `timestamps` the picks' wall times are 0.
pub fn decode(data: &[u8], timestamps: bool) -> Result<Sketch, CodecError> {
    let corrupt = |why: &str| CodecError::Corrupt(format!("sketch: {why}"));
    let header = data.get(..9).ok_or_else(|| corrupt("truncated header"))?;
    if header[0] != MAGIC {
        return Err(corrupt("bad magic byte"));
    }
    let word = |at: usize| {
        u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]]) as usize
    };
    let (cell_points, cells) = (word(1), word(5));
    if cell_points == 0 || cells > MAX_CHUNK_POINTS {
        return Err(corrupt("implausible cell count"));
    }
    let counts = data
        .get(9..9 + cells)
        .ok_or_else(|| corrupt("counts past the end"))?;
    if counts.iter().any(|&c| c > MAX_PICKS) {
        return Err(corrupt("a cell claims more picks than it keeps"));
    }
    let expected: usize = counts.iter().map(|&c| c as usize).sum();
    let mut picks = SeriesColumns::default();
    codec::decode_into_with(&data[9 + cells..], &mut picks, timestamps)?;
    if picks.len() != expected {
        return Err(corrupt("pick count disagrees with the cells"));
    }
    if !picks.steps.windows(2).all(|w| w[0] < w[1]) {
        return Err(corrupt("picks out of step order"));
    }
    Ok(Sketch {
        counts: counts.to_vec(),
        picks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(n: usize, value: impl Fn(usize) -> f64) -> SeriesColumns {
        SeriesColumns {
            steps: (0..n as i64).map(|s| s * 2).collect(),
            ts_ms: (0..n as i64).map(|s| 1_000 + s).collect(),
            values: (0..n).map(value).collect(),
        }
    }

    fn sketch_of(c: &SeriesColumns) -> Sketch {
        let bytes = build(&c.steps, &c.ts_ms, &c.values).unwrap().unwrap();
        decode(&bytes, true).unwrap()
    }

    #[test]
    fn each_cell_keeps_its_extremes_and_first_nan_in_step_order() {
        let mut c = columns(5 * CELL_POINTS + 10, |i| ((i * 37) % 101) as f64);
        c.values[5] = f64::NAN;
        c.values[7] = f64::NAN;
        c.values[CELL_POINTS + 3] = 1e9;
        let s = sketch_of(&c);
        assert_eq!(s.counts.len(), 6);
        let mut at = 0;
        for (cell, &n) in s.counts.iter().enumerate() {
            let lo = cell * CELL_POINTS;
            let hi = (lo + CELL_POINTS).min(c.len());
            let real: Vec<f64> = c.values[lo..hi]
                .iter()
                .copied()
                .filter(|v| !v.is_nan())
                .collect();
            let picked = &s.picks.values[at..at + n as usize];
            let min = real.iter().copied().fold(f64::INFINITY, f64::min);
            let max = real.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            assert!(
                picked.contains(&min) && picked.contains(&max),
                "cell {cell}"
            );
            assert_eq!(picked.iter().any(|v| v.is_nan()), cell == 0);
            at += n as usize;
        }
        assert_eq!(at, s.picks.len());
        assert!(s.picks.steps.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(
            (s.picks.steps[0], s.picks.steps.last()),
            (c.steps[0], c.steps.last())
        );
        // The picks are real points: their steps and times come with them.
        for i in 0..s.picks.len() {
            let k = (s.picks.steps[i] / 2) as usize;
            assert_eq!(s.picks.ts_ms[i], c.ts_ms[k]);
            assert_eq!(s.picks.values[i].to_bits(), c.values[k].to_bits());
        }
    }

    #[test]
    fn a_flat_or_all_nan_cell_keeps_one_pick_besides_the_ends() {
        let c = columns(4 * CELL_POINTS, |i| {
            if i < CELL_POINTS { f64::NAN } else { 3.0 }
        });
        let s = sketch_of(&c);
        assert_eq!(s.counts, vec![1, 1, 1, 2]);
        assert!(s.picks.values[0].is_nan());
        assert_eq!(s.picks.steps[0], c.steps[0]);
        assert_eq!(s.picks.steps.last(), c.steps.last());
    }

    #[test]
    fn small_or_unordered_chunks_get_none() {
        let small = columns(4 * CELL_POINTS - 1, |i| i as f64);
        assert_eq!(
            build(&small.steps, &small.ts_ms, &small.values).unwrap(),
            None
        );
        let mut unordered = columns(4 * CELL_POINTS, |i| i as f64);
        unordered.steps.swap(10, 11);
        assert_eq!(
            build(&unordered.steps, &unordered.ts_ms, &unordered.values).unwrap(),
            None
        );
    }

    #[test]
    fn a_damaged_sketch_is_an_error_never_a_panic() {
        let c = columns(5 * CELL_POINTS, |i| (i % 17) as f64);
        let good = build(&c.steps, &c.ts_ms, &c.values).unwrap().unwrap();
        for cut in 0..good.len() {
            assert!(decode(&good[..cut], true).is_err(), "truncated at {cut}");
        }
        for at in 0..good.len().min(40) {
            let mut bad = good.clone();
            bad[at] ^= 0xFF;
            let _ = decode(&bad, true);
        }
        let mut lying = good.clone();
        lying[9] = 9;
        assert!(decode(&lying, true).is_err());
    }
}
