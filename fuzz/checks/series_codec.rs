// The series codec's fuzz target: any bytes either decode or give an error,
// what decodes re-encodes to the same bits, and any columns round-trip bit
// for bit.
//
// Shared, by `include!`, by fuzz_targets/series_codec.rs (libFuzzer, `make
// fuzz`) and by crates/labbook-store/src/codec/tests.rs (stable, `make
// test`), which runs it on every seed and corpus input and on its generated
// chunks; so it has no `//!` docs and names crates by their full paths.

use labbook_core::SeriesColumns;
use labbook_store::codec::{decode, encode, encode_slices, point_count};

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

pub fn check(data: &[u8]) {
    // The bytes given to the decoder as a stored chunk might be.
    if let Ok(chunk) = decode(data) {
        assert_eq!(point_count(data).ok(), Some(chunk.len()));
        let again = decode(&encode(&chunk).expect("decoded columns encode"))
            .expect("an encoded chunk decodes");
        assert_eq!(again.steps, chunk.steps);
        assert_eq!(again.ts_ms, chunk.ts_ms);
        assert_eq!(bits(&again.values), bits(&chunk.values));
    }

    // The same bytes read as (step, timestamp, value bits) triples.
    let mut steps = Vec::new();
    let mut ts_ms = Vec::new();
    let mut values = Vec::new();
    for point in data.chunks_exact(24) {
        let word =
            |i: usize| u64::from_le_bytes(point[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        steps.push(word(0) as i64);
        ts_ms.push(word(1) as i64);
        values.push(f64::from_bits(word(2)));
    }
    let encoded = encode_slices(&steps, &ts_ms, &values).expect("any columns encode");
    let back: SeriesColumns = decode(&encoded).expect("an encoded chunk decodes");
    assert_eq!(back.steps, steps);
    assert_eq!(back.ts_ms, ts_ms);
    assert_eq!(bits(&back.values), bits(&values));
}
