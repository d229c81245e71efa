//! Fuzzing the IDX reader with proptest: arbitrary bytes, headers claiming any dimensions,
//! and every cut and flipped byte of valid files, raw and gzipped. The reader must answer
//! each with a value or an error, never a panic, and a header claiming huge dimensions must
//! not make it allocate them. The case count is fixed (`CASES` per property, or
//! PROPTEST_CASES), so the run is bounded: a few seconds in CI.

use std::io::Write;

use latentlab::data::idx::{IdxKind, parse_idx, read_idx};
use proptest::prelude::*;

const CASES: u32 = 10_000;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(CASES);
    ProptestConfig {
        cases,
        // Failures are reported in the test output; no regression files in the repository.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn kind_of(images: bool) -> IdxKind {
    if images {
        IdxKind::Images
    } else {
        IdxKind::Labels
    }
}

/// A valid IDX file of `n` items: 2x3 images, or labels.
fn valid(images: bool, n: u32) -> Vec<u8> {
    let mut v = vec![0, 0, 8, if images { 3 } else { 1 }];
    v.extend(n.to_be_bytes());
    let per = if images {
        v.extend(2u32.to_be_bytes());
        v.extend(3u32.to_be_bytes());
        6
    } else {
        1
    };
    v.extend((0..n * per).map(|i| (i % 10) as u8));
    v
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// The reader's answer must be consistent with what it was given.
fn check(bytes: &[u8], kind: IdxKind) {
    if let Ok(arr) = parse_idx(bytes, kind) {
        let total: usize = arr.dims.iter().product();
        assert_eq!(arr.data.len(), total);
        assert_eq!(bytes.len(), 4 + 4 * arr.dims.len() + total);
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600), images: bool) {
        check(&bytes, kind_of(images));
    }

    #[test]
    fn any_claimed_dimensions_are_checked_not_allocated(
        dims in proptest::collection::vec(any::<u32>(), 3),
        data in proptest::collection::vec(any::<u8>(), 0..300),
        images: bool,
    ) {
        let kind = kind_of(images);
        let mut bytes = vec![0, 0, 8, if images { 3 } else { 1 }];
        for d in &dims[..if images { 3 } else { 1 }] {
            bytes.extend(d.to_be_bytes());
        }
        bytes.extend(&data);
        // A header claiming up to 2^96 bytes over a few hundred real ones: a quick error,
        // unless the claim happens to fit the data exactly.
        check(&bytes, kind);
    }

    #[test]
    fn every_cut_and_flipped_byte_of_a_valid_file_is_answered(
        images: bool,
        n in 0u32..20,
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        mask in 1u8..,
    ) {
        let kind = kind_of(images);
        let good = valid(images, n);
        prop_assert!(parse_idx(&good, kind).is_ok());
        check(&good[..cut.index(good.len() + 1)], kind);
        let mut bad = good.clone();
        let i = flip.index(bad.len());
        bad[i] ^= mask;
        check(&bad, kind);
    }

    #[test]
    fn damaged_gzip_files_are_answered(
        images: bool,
        n in 0u32..20,
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        mask in 1u8..,
    ) {
        let kind = kind_of(images);
        let gz = gzip(&valid(images, n));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t10k-images-idx3-ubyte.gz");
        std::fs::write(&path, &gz[..cut.index(gz.len() + 1)]).unwrap();
        let _ = read_idx(&path, kind);
        let mut bad = gz.clone();
        let i = flip.index(bad.len());
        bad[i] ^= mask;
        std::fs::write(&path, &bad).unwrap();
        let _ = read_idx(&path, kind);
    }
}
