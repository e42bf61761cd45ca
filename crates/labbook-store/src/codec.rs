//! The chunk codec: one chunk holds a run of points of one series as three
//! columns, each encoded on its own.
//!
//! Layout (little-endian): `MAGIC n:u32` then three column sections
//! `kind:u8 len:u32 bytes`. Column kinds: arithmetic (start, delta: the
//! usual step column costs 16 bytes whatever its length), raw 8-byte values
//! (tiny chunks, where a codec's header costs more than it saves), and pco
//! (delta and float-aware entropy coding; lossless for every f64 bit
//! pattern, NaN payloads included).
//!
//! The decoder trusts nothing: a truncated or corrupt chunk, a header whose
//! point count disagrees with a column, trailing bytes, or a count over
//! `MAX_CHUNK_POINTS` is an error, never a panic or an unbounded
//! allocation. `reached!` marks each way a decode ends; the tests count
//! them to show that their generated chunks reach every one.

use thiserror::Error;

use labbook_core::SeriesColumns;

const MAGIC: u8 = 0xB1;
const KIND_ARITHMETIC: u8 = 0;
const KIND_RAW: u8 = 1;
const KIND_PCO: u8 = 2;

/// Below this many points a column is stored raw.
const PCO_MIN_POINTS: usize = 64;
/// pco level 4: within 1–2% of level 8's size at ~1.6× its speed on noisy
/// floats (measured on 65,536-point chunks: 6.54 vs 6.50 B/pt).
const PCO_LEVEL: usize = 4;

/// The most points one chunk holds: 16 times the store's sealed chunk
/// (`series::SEAL_POINTS`). A header that claims more is corrupt, and
/// trusting it would allocate without bound (a chunk's columns are decoded
/// into slices sized from its header), so decoding one allocates at most
/// 24 MiB.
pub const MAX_CHUNK_POINTS: usize = 1 << 20;

/// Marks one way a decode ends; the tests count them (`tests::Path`).
macro_rules! reached {
    ($path:ident) => {{
        #[cfg(test)]
        tests::reached(tests::Path::$path);
    }};
}

#[derive(Debug, Error)]
pub enum CodecError {
    #[error("chunk is corrupt: {0}")]
    Corrupt(String),
    #[error("chunk could not be encoded: {0}")]
    Encode(String),
}

/// A column type the codec stores: i64 (steps, timestamps) or f64 (values).
trait Column: Copy + pco::data_types::Number {
    const IS_FLOAT: bool;
    fn to_bits(self) -> u64;
    fn from_bits(bits: u64) -> Self;
    /// `Some((start, delta))` when the column is an arithmetic progression.
    fn arithmetic(values: &[Self]) -> Option<(u64, u64)>;
}

impl Column for i64 {
    const IS_FLOAT: bool = false;
    fn to_bits(self) -> u64 {
        self as u64
    }
    fn from_bits(bits: u64) -> Self {
        bits as i64
    }
    fn arithmetic(values: &[i64]) -> Option<(u64, u64)> {
        let start = *values.first()?;
        let delta = values.get(1).map_or(0, |second| second.wrapping_sub(start));
        let mut expected = start;
        for &v in values {
            if v != expected {
                return None;
            }
            expected = expected.wrapping_add(delta);
        }
        Some((start as u64, delta as u64))
    }
}

impl Column for f64 {
    const IS_FLOAT: bool = true;
    fn to_bits(self) -> u64 {
        f64::to_bits(self)
    }
    fn from_bits(bits: u64) -> Self {
        f64::from_bits(bits)
    }
    fn arithmetic(values: &[f64]) -> Option<(u64, u64)> {
        // A constant float column (a flat learning-rate schedule) is common;
        // equality by bits so that NaN and -0.0 survive.
        let first = values.first()?.to_bits();
        values
            .iter()
            .all(|v| v.to_bits() == first)
            .then_some((first, 0))
    }
}

/// How hard pco works on a column: a chunk's columns are searched for
/// their best encoding; a sketch's few thousand picks are written fast,
/// with settings known to suit them (one delta for the ascending ints,
/// none for the floats), at about a sixth of the search's cost.
#[derive(Clone, Copy)]
enum Effort {
    Best,
    Fast,
}

impl Effort {
    fn config<T: Column>(self) -> pco::ChunkConfig {
        match self {
            Effort::Best => pco::ChunkConfig::default().with_compression_level(PCO_LEVEL),
            // No mode search even for float32-valued picks, where it would
            // save a third of their bytes: it cost bulk ingest a third of
            // its speed (15.5M against 21–24M points/s in `make bench`).
            Effort::Fast => pco::ChunkConfig::default()
                .with_compression_level(0)
                .with_mode_spec(pco::ModeSpec::Classic)
                .with_delta_spec(if T::IS_FLOAT {
                    pco::DeltaSpec::NoOp
                } else {
                    pco::DeltaSpec::TryConsecutive(1)
                }),
        }
    }
}

fn encode_column<T: Column>(
    out: &mut Vec<u8>,
    values: &[T],
    effort: Effort,
) -> Result<(), CodecError> {
    let body: Vec<u8> = if let Some((start, delta)) = T::arithmetic(values) {
        out.push(KIND_ARITHMETIC);
        [start.to_le_bytes(), delta.to_le_bytes()].concat()
    } else if values.len() < PCO_MIN_POINTS {
        out.push(KIND_RAW);
        values
            .iter()
            .flat_map(|v| v.to_bits().to_le_bytes())
            .collect()
    } else {
        out.push(KIND_PCO);
        pco::standalone::simple_compress(values, &effort.config::<T>())
            .map_err(|e| CodecError::Encode(e.to_string()))?
    };
    let len = u32::try_from(body.len())
        .map_err(|_| CodecError::Encode("column larger than 4 GiB".into()))?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&body);
    Ok(())
}

/// Encodes a chunk. The columns must have one length (checked by the caller).
pub fn encode(series: &SeriesColumns) -> Result<Vec<u8>, CodecError> {
    encode_slices(&series.steps, &series.ts_ms, &series.values)
}

pub fn encode_slices(steps: &[i64], ts_ms: &[i64], values: &[f64]) -> Result<Vec<u8>, CodecError> {
    encode_with(steps, ts_ms, values, Effort::Best)
}

/// `encode`, written fast rather than smallest (a sketch's picks); read
/// back by `decode` like any chunk.
pub fn encode_fast(series: &SeriesColumns) -> Result<Vec<u8>, CodecError> {
    encode_with(&series.steps, &series.ts_ms, &series.values, Effort::Fast)
}

fn encode_with(
    steps: &[i64],
    ts_ms: &[i64],
    values: &[f64],
    effort: Effort,
) -> Result<Vec<u8>, CodecError> {
    if ts_ms.len() != steps.len() || values.len() != steps.len() {
        return Err(CodecError::Encode("columns differ in length".into()));
    }
    if steps.len() > MAX_CHUNK_POINTS {
        return Err(CodecError::Encode(format!(
            "{} points in one chunk; it holds at most {MAX_CHUNK_POINTS}",
            steps.len()
        )));
    }
    let n = steps.len() as u32;
    let mut out = Vec::with_capacity(64 + steps.len() * 8);
    out.push(MAGIC);
    out.extend_from_slice(&n.to_le_bytes());
    encode_column(&mut out, steps, effort)?;
    encode_column(&mut out, ts_ms, effort)?;
    encode_column(&mut out, values, effort)?;
    Ok(out)
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], CodecError> {
        let end = self.pos.checked_add(len).filter(|&e| e <= self.data.len());
        let end =
            end.ok_or_else(|| CodecError::Corrupt(format!("truncated at byte {}", self.pos)))?;
        let slice = &self.data[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn u32(&mut self) -> Result<u32, CodecError> {
        let bytes = self.take(4)?;
        Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    fn u64(&mut self) -> Result<u64, CodecError> {
        let mut buf = [0u8; 8];
        buf.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(buf))
    }

    /// One column's section: its kind and its body.
    fn section(&mut self) -> Result<(u8, &'a [u8]), CodecError> {
        let kind = self.take(1).inspect_err(|_| reached!(TruncatedKind))?[0];
        let len = self.u32().inspect_err(|_| reached!(TruncatedLength))? as usize;
        let body = self.take(len).inspect_err(|_| reached!(TruncatedBody))?;
        Ok((kind, body))
    }

    /// Decodes one column into `dst`, which holds exactly the chunk's points.
    fn column_to<T: Column>(&mut self, dst: &mut [T]) -> Result<(), CodecError> {
        let n = dst.len();
        let (kind, body) = self.section()?;
        match kind {
            KIND_ARITHMETIC => {
                if body.len() != 16 {
                    reached!(ArithmeticLength);
                    return Err(CodecError::Corrupt(format!(
                        "progression column of {} bytes, not 16",
                        body.len()
                    )));
                }
                let mut body = Reader { data: body, pos: 0 };
                let (start, delta) = (body.u64()?, body.u64()?);
                let mut v = start;
                for slot in dst.iter_mut() {
                    *slot = T::from_bits(v);
                    v = v.wrapping_add(delta);
                }
                reached!(Arithmetic);
            }
            KIND_RAW => {
                if body.len() != n * 8 {
                    reached!(RawLength);
                    return Err(CodecError::Corrupt(format!(
                        "raw column of {} bytes for {n} points",
                        body.len()
                    )));
                }
                for (slot, c) in dst.iter_mut().zip(body.chunks_exact(8)) {
                    let mut buf = [0u8; 8];
                    buf.copy_from_slice(c);
                    *slot = T::from_bits(u64::from_le_bytes(buf));
                }
                reached!(Raw);
            }
            KIND_PCO => {
                let progress = pco::standalone::simple_decompress_into(body, dst).map_err(|e| {
                    reached!(PcoError);
                    CodecError::Corrupt(e.to_string())
                })?;
                if progress.n_processed != n || !progress.finished {
                    reached!(PcoCount);
                    return Err(CodecError::Corrupt(format!(
                        "column has {}{} points, header says {n}",
                        if progress.finished { "" } else { "more than " },
                        progress.n_processed
                    )));
                }
                reached!(Pco);
            }
            other => {
                reached!(UnknownKind);
                return Err(CodecError::Corrupt(format!("unknown column kind {other}")));
            }
        }
        Ok(())
    }
}

/// The number of points in an encoded chunk, from its header.
pub fn point_count(data: &[u8]) -> Result<usize, CodecError> {
    let mut r = Reader { data, pos: 0 };
    if r.take(1).inspect_err(|_| reached!(Empty))?[0] != MAGIC {
        reached!(BadMagic);
        return Err(CodecError::Corrupt("bad magic byte".into()));
    }
    let n = r.u32().inspect_err(|_| reached!(TruncatedCount))? as usize;
    if n > MAX_CHUNK_POINTS {
        reached!(ImplausibleCount);
        return Err(CodecError::Corrupt(format!(
            "header claims {n} points, more than a chunk holds"
        )));
    }
    Ok(n)
}

/// Decodes a chunk into three slices of exactly its point count, so that
/// readers can decode many chunks in parallel straight into one output.
pub fn decode_to(
    data: &[u8],
    steps: &mut [i64],
    ts_ms: &mut [i64],
    values: &mut [f64],
) -> Result<(), CodecError> {
    decode_parts(data, steps, Some(ts_ms), values)
}

/// `decode_to`, skipping the timestamp column when `ts_ms` is `None`: a
/// chart over steps never pays for decoding wall times.
pub fn decode_parts(
    data: &[u8],
    steps: &mut [i64],
    ts_ms: Option<&mut [i64]>,
    values: &mut [f64],
) -> Result<(), CodecError> {
    let n = point_count(data)?;
    if steps.len() != n || values.len() != n || ts_ms.as_ref().is_some_and(|t| t.len() != n) {
        reached!(SlotMismatch);
        return Err(CodecError::Corrupt(format!(
            "chunk holds {n} points, {} slots given",
            steps.len()
        )));
    }
    let mut r = Reader { data, pos: 5 };
    r.column_to(steps)?;
    match ts_ms {
        Some(ts) => r.column_to(ts)?,
        None => {
            r.section()?;
            reached!(SkippedColumn);
        }
    }
    r.column_to(values)?;
    if r.pos != data.len() {
        reached!(TrailingBytes);
        return Err(CodecError::Corrupt(format!(
            "{} bytes after the last column",
            data.len() - r.pos
        )));
    }
    reached!(Decoded);
    Ok(())
}

/// Decodes a chunk, appending its points to `into`.
pub fn decode_into(data: &[u8], into: &mut SeriesColumns) -> Result<(), CodecError> {
    decode_into_with(data, into, true)
}

/// `decode_into`; without `timestamps` the appended wall times are 0.
pub fn decode_into_with(
    data: &[u8],
    into: &mut SeriesColumns,
    timestamps: bool,
) -> Result<(), CodecError> {
    // At most MAX_CHUNK_POINTS (`point_count`): the allocation is bounded.
    let n = point_count(data)?;
    let start = into.len();
    into.steps.resize(start + n, 0);
    into.ts_ms.resize(start + n, 0);
    into.values.resize(start + n, 0.0);
    let ts = if timestamps {
        Some(&mut into.ts_ms[start..])
    } else {
        None
    };
    let result = decode_parts(
        data,
        &mut into.steps[start..],
        ts,
        &mut into.values[start..],
    );
    if result.is_err() {
        into.steps.truncate(start);
        into.ts_ms.truncate(start);
        into.values.truncate(start);
    }
    result
}

pub fn decode(data: &[u8]) -> Result<SeriesColumns, CodecError> {
    let mut out = SeriesColumns::default();
    decode_into(data, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests;
