//! Fuzzing the IDX reader with proptest: arbitrary bytes, valid headers over bodies of the
//! wrong length, headers claiming any dimensions, and every cut and flipped byte of valid
//! files, raw and gzipped. Every answer is checked against an independent oracle (a few lines
//! that decide from the format alone whether bytes are a valid file and what they hold), so an
//! accepted bad file or a refused good one fails, not only a panic. A header claiming huge
//! dimensions must not make the reader allocate them: a counting allocator watches the largest
//! allocation of the parsing thread. The case count is fixed (`CASES` per property, or
//! PROPTEST_CASES), so the run is bounded: a few seconds in CI.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;

use latentlab::data::idx::{IdxArray, IdxError, IdxKind, MAX_DATA_BYTES, parse_idx, read_idx};
use proptest::prelude::*;

const CASES: u32 = 10_000;

/// The system allocator, noting the largest single request made by each thread (the other
/// tests of this binary run on other threads and do not disturb the count).
struct Counting;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is passed to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn note(size: usize) {
    // try_with: a thread being torn down has no slot any more.
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The largest allocation `f` made on this thread.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|l| l.set(0));
    let out = f();
    (out, LARGEST.with(Cell::get))
}

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

fn header(images: bool, dims: &[u32]) -> Vec<u8> {
    let mut v = vec![0, 0, 8, if images { 3 } else { 1 }];
    for d in dims {
        v.extend(d.to_be_bytes());
    }
    v
}

/// A valid IDX file of `n` items: 2x3 images, or labels.
fn valid(images: bool, n: u32) -> Vec<u8> {
    let mut v = if images {
        header(true, &[n, 2, 3])
    } else {
        header(false, &[n])
    };
    let per = if images { 6 } else { 1 };
    v.extend((0..n * per).map(|i| (i % 10) as u8));
    v
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// What a valid file of `kind` made of `bytes` holds (dimensions, data), or None when the
/// bytes are not one: the format's rules written out independently of the reader.
fn oracle(bytes: &[u8], kind: IdxKind) -> Option<(Vec<usize>, Vec<u8>)> {
    let ndim = if kind == IdxKind::Images { 3 } else { 1 };
    let head = 4 + 4 * ndim;
    if bytes.len() < head || bytes[..4] != [0, 0, 8, ndim as u8] {
        return None;
    }
    let dims: Vec<usize> = bytes[4..head]
        .chunks(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let total = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d))?;
    (bytes.len() - head == total).then(|| (dims, bytes[head..].to_vec()))
}

/// The reader's answer must be the oracle's: the same array, or an error for the same bytes.
fn agrees(bytes: &[u8], kind: IdxKind) -> Result<(), TestCaseError> {
    match (parse_idx(bytes, kind), oracle(bytes, kind)) {
        (Ok(arr), Some((dims, data))) => {
            prop_assert_eq!(arr.dims, dims);
            prop_assert_eq!(arr.data, data);
        }
        (Err(_), None) => {}
        (Ok(arr), None) => prop_assert!(false, "accepted bad bytes as {:?}", arr.dims),
        (Err(e), Some((dims, _))) => prop_assert!(false, "refused a valid {dims:?} file: {e}"),
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_are_refused_unless_valid(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        images: bool,
    ) {
        agrees(&bytes, kind_of(images))?;
    }

    /// Valid headers over bodies from 3 bytes short to 3 bytes long: only the exact length
    /// is accepted, and the error says which way the body is wrong, by how much.
    #[test]
    fn valid_headers_over_bodies_of_the_wrong_length(
        images: bool,
        dims in proptest::collection::vec(0u32..7, 3),
        delta in -3i64..=3,
        fill: u8,
    ) {
        let kind = kind_of(images);
        let dims = &dims[..if images { 3 } else { 1 }];
        let total: i64 = dims.iter().map(|&d| d as i64).product();
        let body = (total + delta).max(0);
        let mut bytes = header(images, dims);
        bytes.extend(std::iter::repeat_n(fill, body as usize));
        agrees(&bytes, kind)?;
        match parse_idx(&bytes, kind) {
            Ok(_) => prop_assert_eq!(body, total),
            Err(IdxError::TruncatedData { got, need, .. }) => {
                prop_assert!(body < total);
                prop_assert_eq!((got as i64, need as i64), (body, total));
            }
            Err(IdxError::TrailingData { extra, .. }) => {
                prop_assert!(body > total);
                prop_assert_eq!(extra as i64, body - total);
            }
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
    }

    /// Any claimed dimensions over a few hundred real bytes: the reader allocates about what is
    /// there, never what the header claims (up to 2^96 bytes), and refuses every claim that
    /// does not fit the bytes exactly.
    #[test]
    fn any_claimed_dimensions_are_checked_not_allocated(
        dims in proptest::collection::vec(any::<u32>(), 3),
        data in proptest::collection::vec(any::<u8>(), 0..300),
        images: bool,
    ) {
        let kind = kind_of(images);
        let mut bytes = header(images, &dims[..if images { 3 } else { 1 }]);
        bytes.extend(&data);
        let (_, largest) = largest_allocation(|| parse_idx(&bytes, kind));
        prop_assert!(largest <= 64 * 1024, "{largest} bytes allocated for a {}-byte file", bytes.len());
        agrees(&bytes, kind)?;
    }

    /// Every cut of a valid file is refused (but the whole file), and a flipped byte gives
    /// what the oracle says: a flip in the body is still a valid file, with that byte changed.
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
        let cut = cut.index(good.len() + 1);
        prop_assert_eq!(parse_idx(&good[..cut], kind).is_ok(), cut == good.len());
        agrees(&good[..cut], kind)?;
        let mut bad = good.clone();
        let i = flip.index(bad.len());
        bad[i] ^= mask;
        agrees(&bad, kind)?;
    }

    /// A damaged gzip file is refused or, where the damage missed everything that matters
    /// (the header's time stamp), read as the original: never as different data.
    #[test]
    fn damaged_gzip_files_are_refused_or_read_exactly(
        images: bool,
        n in 0u32..20,
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        mask in 1u8..,
    ) {
        let kind = kind_of(images);
        let raw = valid(images, n);
        let original: IdxArray = parse_idx(&raw, kind).unwrap();
        let gz = gzip(&raw);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t10k-images-idx3-ubyte.gz");
        let cut = cut.index(gz.len() + 1);
        std::fs::write(&path, &gz[..cut]).unwrap();
        match read_idx(&path, kind) {
            Ok(arr) => {
                prop_assert_eq!(cut, gz.len(), "a cut gzip file was accepted");
                prop_assert_eq!(arr, original.clone());
            }
            Err(_) => prop_assert!(cut < gz.len(), "the whole gzip file was refused"),
        }
        let mut bad = gz.clone();
        let i = flip.index(bad.len());
        bad[i] ^= mask;
        std::fs::write(&path, &bad).unwrap();
        if let Ok(arr) = read_idx(&path, kind) {
            prop_assert_eq!(arr, original, "byte {} flipped: different data accepted", i);
        }
    }
}

/// A gzip bomb's little cousin: a small gzip file whose header claims the largest accepted
/// size and whose body is short. The reader stops at the end of the data without having
/// allocated the claim.
#[test]
fn a_gzipped_claim_of_a_gigabyte_allocates_what_is_there() {
    let side = 1u32 << 10;
    let n = (MAX_DATA_BYTES / (side as u64 * side as u64)) as u32;
    let mut raw = header(true, &[n, side, side]);
    raw.extend(vec![7u8; 100_000]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("claim.gz");
    std::fs::write(&path, gzip(&raw)).unwrap();
    let (result, largest) = largest_allocation(|| read_idx(&path, IdxKind::Images));
    assert!(
        matches!(result, Err(IdxError::TruncatedData { got: 100_000, .. })),
        "{result:?}"
    );
    assert!(
        largest < 1 << 20,
        "{largest} bytes allocated for 100 kB of data"
    );
}
