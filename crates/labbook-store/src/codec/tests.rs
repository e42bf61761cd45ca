//! The codec's tests: round trips, hand-made corruptions, and the stable
//! stand-in for the fuzzer that `make fuzz` runs on nightly. That one is
//! structure-aware: it encodes chunks of every column encoding, edits them
//! the ways a damaged or hostile chunk differs from a real one (the header's
//! count, a column's kind, declared length or body, columns swapped or taken
//! from another chunk, trailing bytes, cuts at every field boundary), and
//! compares the decoder with a plain reference model of the layout. Counting
//! the decoder's `reached!` marks shows that the edits reach every way a
//! decode ends (`generated_chunks_reach_every_decoder_path`).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path as FsPath;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

use super::*;

/// The fuzz target's own check (`fuzz/checks/series_codec.rs`).
mod target {
    use crate as labbook_store;
    include!("../../../../fuzz/checks/series_codec.rs");
}

mod budget {
    include!("../../../../fuzz/checks/budget.rs");
}

// ------------------------------------------------------------ coverage marks

/// The ways a decode ends, each marked `reached!` in the decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Path {
    /// No byte at all.
    Empty,
    BadMagic,
    /// The header ends inside the point count.
    TruncatedCount,
    /// A count over `MAX_CHUNK_POINTS`.
    ImplausibleCount,
    /// `decode_to` given slices of another length than the header's count.
    SlotMismatch,
    /// A column section ends inside its kind, its length, or its body.
    TruncatedKind,
    TruncatedLength,
    TruncatedBody,
    /// A progression column whose body is not (start, delta).
    ArithmeticLength,
    Arithmetic,
    /// A raw column whose body is not 8 bytes a point.
    RawLength,
    Raw,
    /// pco refuses the body (corrupt, truncated, another number type).
    PcoError,
    /// pco decodes a number of points other than the header's.
    PcoCount,
    Pco,
    UnknownKind,
    /// The timestamp column stepped over (`decode_into_with(.., false)`).
    SkippedColumn,
    TrailingBytes,
    /// A whole chunk decoded.
    Decoded,
}

const PATHS: [Path; 19] = [
    Path::Empty,
    Path::BadMagic,
    Path::TruncatedCount,
    Path::ImplausibleCount,
    Path::SlotMismatch,
    Path::TruncatedKind,
    Path::TruncatedLength,
    Path::TruncatedBody,
    Path::ArithmeticLength,
    Path::Arithmetic,
    Path::RawLength,
    Path::Raw,
    Path::PcoError,
    Path::PcoCount,
    Path::Pco,
    Path::UnknownKind,
    Path::SkippedColumn,
    Path::TrailingBytes,
    Path::Decoded,
];

thread_local! {
    /// Per thread: each test counts only the decodes it ran itself.
    static REACHED: RefCell<BTreeSet<Path>> = const { RefCell::new(BTreeSet::new()) };
    static COUNTING: Cell<bool> = const { Cell::new(true) };
}

pub(super) fn reached(path: Path) {
    if COUNTING.get() {
        REACHED.with(|r| r.borrow_mut().insert(path));
    }
}

/// The paths reached since the last call.
fn take_reached() -> BTreeSet<Path> {
    REACHED.with(|r| std::mem::take(&mut *r.borrow_mut()))
}

/// Runs `f` without counting: the fuzz target's own round trip decodes
/// chunks the encoder made, which would flatter the figures.
fn uncounted<R>(f: impl FnOnce() -> R) -> R {
    COUNTING.set(false);
    let result = f();
    COUNTING.set(true);
    result
}

// ------------------------------------------------------------ examples

fn columns(steps: Vec<i64>, ts_ms: Vec<i64>, values: Vec<f64>) -> SeriesColumns {
    SeriesColumns {
        steps,
        ts_ms,
        values,
    }
}

fn as_bits(s: &SeriesColumns) -> [Vec<u64>; 3] {
    [
        s.steps.iter().map(|v| *v as u64).collect(),
        s.ts_ms.iter().map(|v| *v as u64).collect(),
        s.values.iter().map(|v| v.to_bits()).collect(),
    ]
}

fn assert_bit_exact(a: &SeriesColumns, b: &SeriesColumns) {
    assert_eq!(as_bits(a), as_bits(b));
}

#[test]
fn special_floats_survive_every_column_kind() {
    let specials = [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        -0.0,
        f64::MIN_POSITIVE,
        f64::from_bits(0x7ff8_dead_beef_0001),
    ];
    for n in [1usize, 7, 64, 1000] {
        let values: Vec<f64> = (0..n)
            .map(|i| {
                if i % 3 == 0 {
                    specials[i % specials.len()]
                } else {
                    i as f64 * 0.1
                }
            })
            .collect();
        let s = columns(
            (0..n as i64).collect(),
            (0..n as i64)
                .map(|i| 1_700_000_000_000 + i * 13 % 7)
                .collect(),
            values,
        );
        assert_bit_exact(&decode(&encode(&s).unwrap()).unwrap(), &s);
    }
}

#[test]
fn arithmetic_columns_cost_a_constant() {
    let n = 100_000;
    let s = columns((0..n).collect(), vec![5; n as usize], vec![0.5; n as usize]);
    let encoded = encode(&s).unwrap();
    assert_eq!(
        encoded.len(),
        5 + 3 * (1 + 4 + 16),
        "header plus three (start, delta) columns"
    );
    assert_bit_exact(&decode(&encoded).unwrap(), &s);
}

#[test]
fn corrupt_chunks_are_errors_not_panics() {
    let s = columns(
        (0..500).collect(),
        (0..500).map(|i| i * i).collect(),
        (0..500).map(|i| (i as f64).sin()).collect(),
    );
    let encoded = encode(&s).unwrap();
    for cut in [0, 1, 5, 20, encoded.len() - 1] {
        assert!(decode(&encoded[..cut]).is_err(), "cut at {cut}");
    }
    let mut flipped = encoded.clone();
    flipped[0] ^= 0xff;
    assert!(decode(&flipped).is_err());
    let mut longer = encoded.clone();
    longer.push(0);
    let err = decode(&longer).unwrap_err().to_string();
    assert!(err.contains("1 bytes after the last column"), "{err}");
}

#[test]
fn a_count_past_the_cap_is_refused_before_allocating() {
    // Three progression columns decode any count; the header alone says how
    // many slots a reader allocates (sqlite.rs sizes its output from it).
    let s = columns(vec![1, 2], vec![3, 3], vec![0.5, 0.5]);
    let mut chunk = encode(&s).unwrap();
    chunk[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
    let err = point_count(&chunk).unwrap_err().to_string();
    assert!(err.contains("more than a chunk holds"), "{err}");
    chunk[1..5].copy_from_slice(&(MAX_CHUNK_POINTS as u32).to_le_bytes());
    assert_eq!(decode(&chunk).unwrap().len(), MAX_CHUNK_POINTS);
    let too_many = MAX_CHUNK_POINTS + 1;
    let big = columns(vec![0; too_many], vec![0; too_many], vec![0.0; too_many]);
    assert!(encode(&big).is_err(), "the encoder keeps to the same cap");
}

// ------------------------------------------------------------ generators

/// How many points: none, one, a raw column's few, or enough for pco.
fn point_counts() -> impl Strategy<Value = usize> {
    prop_oneof![
        1 => Just(0usize),
        1 => Just(1usize),
        3 => 2usize..PCO_MIN_POINTS,
        3 => PCO_MIN_POINTS..400,
    ]
}

/// A step or timestamp column: a progression, increasing with jitter (pco
/// or raw), or anything.
fn int_column(n: usize) -> BoxedStrategy<Vec<i64>> {
    prop_oneof![
        (any::<i64>(), any::<i64>()).prop_map(move |(start, delta)| {
            (0..n as i64)
                .map(|i| start.wrapping_add(delta.wrapping_mul(i)))
                .collect()
        }),
        (any::<i64>(), proptest::collection::vec(0i64..2_000, n)).prop_map(|(start, gaps)| {
            gaps.iter()
                .scan(start, |t, g| {
                    *t = t.wrapping_add(*g);
                    Some(*t)
                })
                .collect()
        }),
        proptest::collection::vec(any::<i64>(), n),
    ]
    .boxed()
}

/// A value column: a constant (any bits), a noisy decaying curve, any
/// bits, or only special floats (NaN payloads, infinities, -0.0).
fn float_column(n: usize) -> BoxedStrategy<Vec<f64>> {
    let special = prop::sample::select(vec![
        f64::NAN,
        -f64::NAN,
        f64::from_bits(0x7ff8_dead_beef_0001),
        f64::INFINITY,
        f64::NEG_INFINITY,
        -0.0,
        0.0,
        f64::MIN_POSITIVE,
        f64::from_bits(1),
    ]);
    prop_oneof![
        any::<u64>().prop_map(move |b| vec![f64::from_bits(b); n]),
        (
            -1e3f64..1e3,
            1f64..1e4,
            proptest::collection::vec(-1e-2f64..1e-2, n)
        )
            .prop_map(|(a, scale, noise)| {
                noise
                    .iter()
                    .enumerate()
                    .map(|(i, e)| a * (-(i as f64) / scale).exp() + e)
                    .collect()
            }),
        proptest::collection::vec(any::<u64>().prop_map(f64::from_bits), n),
        proptest::collection::vec(special, n),
    ]
    .boxed()
}

fn chunk() -> impl Strategy<Value = SeriesColumns> {
    point_counts()
        .prop_flat_map(|n| (int_column(n), int_column(n), float_column(n)))
        .prop_map(|(steps, ts_ms, values)| columns(steps, ts_ms, values))
}

/// A new value for a `u32` field (the point count, a declared length).
#[derive(Debug, Clone, Copy)]
enum Value32 {
    Minus1,
    Plus1,
    Zero,
    Double,
    /// `MAX_CHUNK_POINTS`, the most a header may claim, and one past it.
    Cap,
    PastCap,
    Max,
    Any(u32),
}

impl Value32 {
    fn apply(self, v: u32) -> u32 {
        let cap = MAX_CHUNK_POINTS as u32;
        match self {
            Value32::Minus1 => v.wrapping_sub(1),
            Value32::Plus1 => v.wrapping_add(1),
            Value32::Zero => 0,
            Value32::Double => v.saturating_mul(2),
            Value32::Cap => cap,
            Value32::PastCap => cap + 1,
            Value32::Max => u32::MAX,
            Value32::Any(x) => x,
        }
    }
}

fn value32() -> impl Strategy<Value = Value32> {
    prop_oneof![
        4 => Just(Value32::Minus1),
        4 => Just(Value32::Plus1),
        2 => Just(Value32::Zero),
        2 => Just(Value32::Double),
        1 => Just(Value32::Cap),
        1 => Just(Value32::PastCap),
        1 => Just(Value32::Max),
        2 => any::<u32>().prop_map(Value32::Any),
    ]
}

/// One structural edit of a valid chunk.
#[derive(Debug, Clone)]
enum Edit {
    Count(Value32),
    Magic(u8),
    /// Another kind for a column: one the codec knows or any byte.
    Kind {
        column: usize,
        kind: u8,
    },
    /// The declared length only; the body stays.
    Length {
        column: usize,
        len: Value32,
    },
    // The body edits keep the declared length true, so that they get past
    // the section and reach the column's own decoder (pco's included).
    Truncate {
        column: usize,
        at: Index,
    },
    Flip {
        column: usize,
        at: Index,
        mask: u8,
    },
    Garbage {
        column: usize,
        bytes: Vec<u8>,
    },
    Extend {
        column: usize,
        bytes: Vec<u8>,
    },
    Swap(usize, usize),
    /// A column of the donor chunk (another count, maybe another kind).
    Splice {
        column: usize,
        donor_column: usize,
    },
    Trailing(Vec<u8>),
}

fn edit() -> impl Strategy<Value = Edit> {
    let column = 0usize..3;
    let kind = prop_oneof![
        3 => 0u8..=2,
        1 => any::<u8>(),
    ];
    prop_oneof![
        2 => value32().prop_map(Edit::Count),
        1 => any::<u8>().prop_map(Edit::Magic),
        2 => (column.clone(), kind).prop_map(|(column, kind)| Edit::Kind { column, kind }),
        2 => (column.clone(), value32()).prop_map(|(column, len)| Edit::Length { column, len }),
        2 => (column.clone(), any::<Index>()).prop_map(|(column, at)| Edit::Truncate { column, at }),
        3 => (column.clone(), any::<Index>(), 1u8..=255)
            .prop_map(|(column, at, mask)| Edit::Flip { column, at, mask }),
        1 => (column.clone(), proptest::collection::vec(any::<u8>(), 0..40))
            .prop_map(|(column, bytes)| Edit::Garbage { column, bytes }),
        1 => (column.clone(), proptest::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(column, bytes)| Edit::Extend { column, bytes }),
        2 => (column.clone(), column.clone()).prop_map(|(a, b)| Edit::Swap(a, b)),
        2 => (column.clone(), column)
            .prop_map(|(column, donor_column)| Edit::Splice { column, donor_column }),
        1 => proptest::collection::vec(any::<u8>(), 1..8).prop_map(Edit::Trailing),
    ]
}

/// A cut or an overwrite of the edited bytes.
#[derive(Debug, Clone)]
enum ByteEdit {
    /// At the start of a field (or one byte either side): the header's
    /// count, a column's kind, length or body, the end of a body.
    CutAtBoundary(Index, i8),
    Cut(Index),
    Overwrite(Index, u8),
}

fn byte_edit() -> impl Strategy<Value = ByteEdit> {
    prop_oneof![
        2 => (any::<Index>(), -1i8..=1).prop_map(|(at, off)| ByteEdit::CutAtBoundary(at, off)),
        1 => any::<Index>().prop_map(ByteEdit::Cut),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(at, b)| ByteEdit::Overwrite(at, b)),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    chunk: SeriesColumns,
    donor: SeriesColumns,
    edits: Vec<Edit>,
    byte_edits: Vec<ByteEdit>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        chunk(),
        chunk(),
        proptest::collection::vec(edit(), 0..=3),
        proptest::collection::vec(byte_edit(), 0..=1),
    )
        .prop_map(|(chunk, donor, edits, byte_edits)| Case {
            chunk,
            donor,
            edits,
            byte_edits,
        })
}

/// A valid chunk taken apart along its layout.
#[derive(Debug, Clone)]
struct Parts {
    magic: u8,
    n: u32,
    columns: Vec<Section>,
    trailing: Vec<u8>,
}

#[derive(Debug, Clone)]
struct Section {
    kind: u8,
    /// What the section says its body's length is.
    len: u32,
    body: Vec<u8>,
}

impl Parts {
    fn of(chunk: &[u8]) -> Parts {
        let u32_at = |at: usize| u32::from_le_bytes(chunk[at..at + 4].try_into().unwrap());
        let mut at = 5;
        let columns = (0..3)
            .map(|_| {
                let len = u32_at(at + 1);
                let body = chunk[at + 5..at + 5 + len as usize].to_vec();
                let section = Section {
                    kind: chunk[at],
                    len,
                    body,
                };
                at += 5 + len as usize;
                section
            })
            .collect();
        assert_eq!(at, chunk.len(), "a valid chunk ends with its last column");
        Parts {
            magic: chunk[0],
            n: u32_at(1),
            columns,
            trailing: Vec::new(),
        }
    }

    /// The bytes, and where each field starts.
    fn bytes(&self) -> (Vec<u8>, Vec<usize>) {
        let mut out = vec![self.magic];
        out.extend_from_slice(&self.n.to_le_bytes());
        let mut fields = vec![0, 1];
        for c in &self.columns {
            fields.push(out.len());
            out.push(c.kind);
            fields.push(out.len());
            out.extend_from_slice(&c.len.to_le_bytes());
            fields.push(out.len());
            out.extend_from_slice(&c.body);
            fields.push(out.len());
        }
        out.extend_from_slice(&self.trailing);
        (out, fields)
    }

    fn set_body(&mut self, column: usize, body: Vec<u8>) {
        let c = &mut self.columns[column];
        c.len = body.len() as u32;
        c.body = body;
    }
}

/// The case's bytes, and whether they are the chunk as encoded.
fn edited(case: &Case) -> (Vec<u8>, bool) {
    let mut parts = Parts::of(&encode(&case.chunk).expect("a generated chunk encodes"));
    let donor = Parts::of(&encode(&case.donor).expect("a generated chunk encodes"));
    for edit in &case.edits {
        match edit {
            Edit::Count(v) => parts.n = v.apply(parts.n),
            Edit::Magic(m) => parts.magic = *m,
            Edit::Kind { column, kind } => parts.columns[*column].kind = *kind,
            Edit::Length { column, len } => {
                let c = &mut parts.columns[*column];
                c.len = len.apply(c.len);
            }
            Edit::Truncate { column, at } => {
                let body = &parts.columns[*column].body;
                let cut = at.index(body.len() + 1);
                parts.set_body(*column, body[..cut].to_vec());
            }
            Edit::Flip { column, at, mask } => {
                let mut body = parts.columns[*column].body.clone();
                if !body.is_empty() {
                    let i = at.index(body.len());
                    body[i] ^= mask;
                }
                parts.set_body(*column, body);
            }
            Edit::Garbage { column, bytes } => parts.set_body(*column, bytes.clone()),
            Edit::Extend { column, bytes } => {
                let mut body = parts.columns[*column].body.clone();
                body.extend_from_slice(bytes);
                parts.set_body(*column, body);
            }
            Edit::Swap(a, b) => parts.columns.swap(*a, *b),
            Edit::Splice {
                column,
                donor_column,
            } => parts.columns[*column] = donor.columns[*donor_column].clone(),
            Edit::Trailing(bytes) => parts.trailing.extend_from_slice(bytes),
        }
    }
    let (mut bytes, fields) = parts.bytes();
    for edit in &case.byte_edits {
        match edit {
            ByteEdit::CutAtBoundary(at, off) => {
                let cut = fields[at.index(fields.len())] as isize + *off as isize;
                bytes.truncate(cut.clamp(0, bytes.len() as isize) as usize);
            }
            ByteEdit::Cut(at) => bytes.truncate(at.index(bytes.len() + 1)),
            ByteEdit::Overwrite(at, b) if !bytes.is_empty() => {
                let i = at.index(bytes.len());
                bytes[i] = *b;
            }
            ByteEdit::Overwrite(..) => {}
        }
    }
    let untouched = case.edits.is_empty() && case.byte_edits.is_empty();
    (bytes, untouched)
}

// ------------------------------------------------------------ the oracle

/// The layout as the module's docs describe it, decoded the plain way: a
/// progression is `start + i·delta`, a raw column its 8-byte words, a pco
/// column what pco's own `simple_decompress` gives for the column's type;
/// anything else, a count over the cap, or a byte left over is no chunk.
fn model(bytes: &[u8]) -> Option<[Vec<u64>; 3]> {
    let word32 = |b: &[u8]| Some(u32::from_le_bytes(b.get(..4)?.try_into().ok()?) as usize);
    let word64 = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
    let (&magic, rest) = bytes.split_first()?;
    let n = word32(rest)?;
    if magic != 0xB1 || n > 1 << 20 {
        return None;
    }
    let mut rest = &rest[4..];
    let mut out: [Vec<u64>; 3] = Default::default();
    for (i, column) in out.iter_mut().enumerate() {
        let (&kind, after) = rest.split_first()?;
        let len = word32(after)?;
        let body = after.get(4..4 + len)?;
        rest = &after[4 + len..];
        *column = match kind {
            0 if len == 16 => {
                let (start, delta) = (word64(&body[..8]), word64(&body[8..]));
                (0..n as u64)
                    .map(|k| start.wrapping_add(delta.wrapping_mul(k)))
                    .collect()
            }
            1 if len == 8 * n => body.chunks(8).map(word64).collect(),
            2 if i < 2 => pco::standalone::simple_decompress::<i64>(body)
                .ok()?
                .into_iter()
                .map(|v| v as u64)
                .collect(),
            2 => pco::standalone::simple_decompress::<f64>(body)
                .ok()?
                .into_iter()
                .map(f64::to_bits)
                .collect(),
            _ => return None,
        };
        if column.len() != n {
            return None;
        }
    }
    rest.is_empty().then_some(out)
}

fn hex(bytes: &[u8]) -> String {
    let shown: String = bytes.iter().take(96).map(|b| format!("{b:02x}")).collect();
    if bytes.len() > 96 {
        format!("{shown}… ({} bytes)", bytes.len())
    } else {
        shown
    }
}

/// Every entry point agrees with the model on `bytes`; `original` is the
/// chunk they must give back when the bytes are unedited.
fn decodes_as_modelled(
    bytes: &[u8],
    original: Option<&SeriesColumns>,
) -> Result<(), TestCaseError> {
    let want = model(bytes);
    let got = decode(bytes);
    match (&want, &got) {
        (Some(want), Ok(got)) => prop_assert!(
            as_bits(got) == *want,
            "decoded other points than the model: {}",
            hex(bytes)
        ),
        (None, Err(_)) => {}
        (want, got) => prop_assert!(
            false,
            "decoder {} where the model {}: {}",
            if got.is_ok() { "decoded" } else { "refused" },
            if want.is_some() { "decodes" } else { "refuses" },
            hex(bytes)
        ),
    }
    if let Some(original) = original {
        prop_assert!(
            got.as_ref()
                .is_ok_and(|got| as_bits(got) == as_bits(original)),
            "an unedited chunk round-trips"
        );
    }
    match &got {
        Ok(chunk) => {
            // Decoding without timestamps gives the same steps and values.
            let n = chunk.len();
            let (mut steps, mut values) = (vec![0; n], vec![0.0; n]);
            decode_parts(bytes, &mut steps, None, &mut values)
                .map_err(|e| TestCaseError::fail(format!("without timestamps: {e}")))?;
            prop_assert_eq!(&steps, &chunk.steps);
            prop_assert!(
                values
                    .iter()
                    .map(|v| v.to_bits())
                    .eq(as_bits(chunk)[2].iter().copied())
            );
            // Slots of another count are refused.
            let (mut s, mut t, mut v) = (vec![0; n + 1], vec![0; n + 1], vec![0.0; n + 1]);
            prop_assert!(decode_to(bytes, &mut s, &mut t, &mut v).is_err());
        }
        Err(_) => {
            // A failed decode leaves the columns it appends to as they were.
            let before = columns(vec![7], vec![8], vec![9.5]);
            for timestamps in [true, false] {
                let mut into = before.clone();
                let result = decode_into_with(bytes, &mut into, timestamps);
                prop_assert!(result.is_ok() || as_bits(&into) == as_bits(&before));
                prop_assert!(!timestamps || result.is_err());
            }
        }
    }
    uncounted(|| target::check(bytes));
    Ok(())
}

fn check_case(case: Case) -> Result<(), TestCaseError> {
    let (bytes, untouched) = edited(&case);
    decodes_as_modelled(&bytes, untouched.then_some(&case.chunk))
}

// ------------------------------------------------------------ properties

proptest! {
    #[test]
    fn round_trip_is_bit_exact(points in proptest::collection::vec((any::<i64>(), any::<i64>(), any::<u64>()), 0..300)) {
        let s = columns(
            points.iter().map(|p| p.0).collect(),
            points.iter().map(|p| p.1).collect(),
            points.iter().map(|p| f64::from_bits(p.2)).collect(),
        );
        assert_bit_exact(&decode(&encode(&s).unwrap()).unwrap(), &s);
    }

    /// Random bytes: the magic byte turns nearly all away at once (see the
    /// coverage test), so the edited chunks below do the real work.
    #[test]
    fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        decodes_as_modelled(&bytes, None)?;
    }

    #[test]
    fn edited_chunks_decode_as_the_model_says(case in case()) {
        check_case(case)?;
    }
}

/// The coverage the generators reach, on a fixed seed: how many inputs
/// reach each way a decode ends. Every one is reached by the edited chunks;
/// random bytes (the old stand-in for the fuzzer) reach 4 of 19 and rarely
/// get past the magic byte. Run with `--nocapture` to see the table.
#[test]
fn generated_chunks_reach_every_decoder_path() {
    const CASES: u32 = 2_000;
    fn cases_reaching<S: Strategy>(
        strategy: S,
        test: impl Fn(S::Value) -> Result<(), TestCaseError>,
    ) -> BTreeMap<Path, u32> {
        let mut runner = TestRunner::new_with_rng(
            Config {
                cases: CASES,
                failure_persistence: None,
                ..Config::default()
            },
            TestRng::deterministic_rng(RngAlgorithm::ChaCha),
        );
        let counts = RefCell::new(BTreeMap::new());
        take_reached();
        runner
            .run(&strategy, |value| {
                let result = test(value);
                for path in take_reached() {
                    *counts.borrow_mut().entry(path).or_insert(0) += 1;
                }
                result
            })
            .unwrap();
        counts.into_inner()
    }
    let random = cases_reaching(proptest::collection::vec(any::<u8>(), 0..200), |bytes| {
        decodes_as_modelled(&bytes, None)
    });
    let edited = cases_reaching(case(), check_case);

    eprintln!("decoder path        random bytes  edited chunks  (inputs of {CASES})");
    let count = |m: &BTreeMap<Path, u32>, path| m.get(&path).copied().unwrap_or(0);
    for path in PATHS {
        eprintln!(
            "{:<18}  {:>12}  {:>13}",
            format!("{path:?}"),
            count(&random, path),
            count(&edited, path)
        );
    }
    eprintln!(
        "paths reached       {:>9}/{}  {:>10}/{}",
        random.len(),
        PATHS.len(),
        edited.len(),
        PATHS.len()
    );
    let missed: Vec<Path> = PATHS
        .into_iter()
        .filter(|p| !edited.contains_key(p))
        .collect();
    assert!(
        missed.is_empty(),
        "the edited chunks never reach {missed:?}"
    );
}

/// The libFuzzer target's seeds (valid chunks of each column kind, kept
/// readable: a chunk format change that broke them would break stores) and
/// any corpus `make fuzz` left here, through the same checks.
#[test]
fn fuzz_seeds_and_corpus_replay() {
    let fuzz = FsPath::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut seeds = 0;
    for dir in ["seeds", "corpus"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join("series_codec")) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            decodes_as_modelled(&bytes, None).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if dir == "seeds" {
                seeds += 1;
                assert_eq!(decode(&bytes).is_ok(), name.starts_with("valid-"), "{name}");
            }
        }
    }
    assert!(seeds >= 5, "the seeds are in fuzz/seeds/series_codec");
}

/// `make test-fuzz`: the edited chunks with fresh seeds for a time budget.
#[test]
#[ignore = "make test-fuzz runs it for LABBOOK_FUZZ_SECONDS"]
fn fuzz_budget_series_codec() {
    budget::fuzz_for("series_codec", case(), |c| edited(c).0, check_case);
}
