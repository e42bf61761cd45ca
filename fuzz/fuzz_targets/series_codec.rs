//! The series codec: any columns round-trip bit for bit, and any bytes either
//! decode or give an error.
#![no_main]

use labbook_core::SeriesColumns;
use labbook_store::codec::{decode, encode_slices};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Bytes given to the decoder as a stored chunk might be.
    let _ = decode(data);

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
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&back.values), bits(&values));
});
