//! Reader for the IDX format of MNIST-family files, raw or gzipped.
//!
//! The reader trusts nothing in a file: the header's dimensions are checked against the
//! bytes really present, and the amount read is bounded before anything is allocated, so a
//! header that claims huge dimensions (or a gzip bomb) cannot make it allocate without bound.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use thiserror::Error;

/// The largest payload accepted: far above any MNIST-family file (47 MB), far below a
/// size that would hurt the machine.
pub const MAX_DATA_BYTES: u64 = 1 << 30;

/// What a file is expected to hold, which fixes its magic number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdxKind {
    /// `N x rows x cols` unsigned bytes, magic 0x00000803.
    Images,
    /// `N` unsigned bytes, magic 0x00000801.
    Labels,
}

impl IdxKind {
    fn ndim(self) -> u8 {
        match self {
            IdxKind::Images => 3,
            IdxKind::Labels => 1,
        }
    }

    fn noun(self) -> &'static str {
        match self {
            IdxKind::Images => "images",
            IdxKind::Labels => "labels",
        }
    }
}

/// A decoded IDX file: its dimensions and the raw bytes in row-major order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
    /// MD5 of the whole decompressed file (header included), the canonical MNIST checksum.
    pub md5: String,
}

/// Everything that can be wrong with one IDX file; every variant names the file.
#[derive(Debug, Error)]
pub enum IdxError {
    #[error("{path}: cannot read the file: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: the file is empty")]
    Empty { path: PathBuf },
    #[error("{path}: the gzip data is truncated or corrupt ({source}); fetch the file again")]
    Gzip {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: truncated inside the header ({got} bytes, the header needs {need})")]
    TruncatedHeader {
        path: PathBuf,
        got: usize,
        need: usize,
    },
    #[error(
        "{path}: wrong magic number 0x{found:08x} (expected 0x{expected:08x}): not an IDX file of {noun}"
    )]
    BadMagic {
        path: PathBuf,
        found: u32,
        expected: u32,
        noun: &'static str,
    },
    #[error(
        "{path}: this is an IDX file of {found} where {expected} were expected; are the images and labels files swapped?"
    )]
    WrongKind {
        path: PathBuf,
        found: &'static str,
        expected: &'static str,
    },
    #[error(
        "{path}: truncated inside the data ({got} bytes after the header, its dimensions {dims:?} need {need})"
    )]
    TruncatedData {
        path: PathBuf,
        got: u64,
        need: u64,
        dims: Vec<usize>,
    },
    #[error("{path}: {extra} unexpected bytes after the data its header describes ({dims:?})")]
    TrailingData {
        path: PathBuf,
        extra: u64,
        dims: Vec<usize>,
    },
    #[error("{path}: the header claims dimensions {dims:?}, more than the {max} bytes accepted")]
    TooLarge {
        path: PathBuf,
        dims: Vec<u32>,
        max: u64,
    },
}

/// Reads an IDX file of the given kind; a `.gz` file (by its magic bytes) is decompressed.
pub fn read_idx(path: &Path, kind: IdxKind) -> Result<IdxArray, IdxError> {
    let io = |source| IdxError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = BufReader::new(File::open(path).map_err(io)?);
    let mut first = [0u8; 2];
    let got = read_up_to(&mut file, &mut first).map_err(io)?;
    if got == 0 {
        return Err(IdxError::Empty {
            path: path.to_path_buf(),
        });
    }
    let head = std::io::Cursor::new(first[..got].to_vec()).chain(file);
    if first == [0x1f, 0x8b] {
        parse(path, kind, MultiGzDecoder::new(head), true)
    } else {
        parse(path, kind, head, false)
    }
}

/// Reads an IDX file held in memory, raw or gzipped (the MNIST copy inside the binary);
/// `path` names it in errors.
pub fn read_idx_bytes(path: &Path, bytes: &[u8], kind: IdxKind) -> Result<IdxArray, IdxError> {
    if bytes.is_empty() {
        return Err(IdxError::Empty {
            path: path.to_path_buf(),
        });
    }
    if bytes.starts_with(&[0x1f, 0x8b]) {
        parse(path, kind, MultiGzDecoder::new(bytes), true)
    } else {
        parse(path, kind, bytes, false)
    }
}

/// Parses IDX bytes from any reader (the unit tests and the fuzz test feed it memory).
pub fn parse_idx(bytes: &[u8], kind: IdxKind) -> Result<IdxArray, IdxError> {
    let path = Path::new("<memory>");
    if bytes.is_empty() {
        return Err(IdxError::Empty {
            path: path.to_path_buf(),
        });
    }
    parse(path, kind, bytes, false)
}

/// The whole format in one pass: header, dimensions, body, trailing bytes, each refused with
/// its own error as it is met. Kept whole (about 90 lines): it reads top to bottom as the file
/// does, and every check shares the running checksum and the byte count.
fn parse(
    path: &Path,
    kind: IdxKind,
    mut reader: impl Read,
    gz: bool,
) -> Result<IdxArray, IdxError> {
    let p = || path.to_path_buf();
    let read_err = |source: std::io::Error| {
        if gz {
            IdxError::Gzip { path: p(), source }
        } else {
            IdxError::Io { path: p(), source }
        }
    };
    let mut md5 = md5::Md5::default();

    let mut magic = [0u8; 4];
    let got = read_up_to(&mut reader, &mut magic).map_err(read_err)?;
    if got == 0 && gz {
        return Err(IdxError::Empty { path: p() });
    }
    let need = 4 + 4 * kind.ndim() as usize;
    if got < 4 {
        return Err(IdxError::TruncatedHeader {
            path: p(),
            got,
            need,
        });
    }
    let found = u32::from_be_bytes(magic);
    let expected = 0x0800 | kind.ndim() as u32;
    if found != expected {
        return Err(wrong_magic(p(), found, expected, kind));
    }
    let mut dims_raw = vec![0u8; 4 * kind.ndim() as usize];
    let got_dims = read_up_to(&mut reader, &mut dims_raw).map_err(read_err)?;
    if got_dims < dims_raw.len() {
        return Err(IdxError::TruncatedHeader {
            path: p(),
            got: 4 + got_dims,
            need,
        });
    }
    md5::Digest::update(&mut md5, magic);
    md5::Digest::update(&mut md5, &dims_raw);
    let dims32: Vec<u32> = dims_raw
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let total = dims32
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
        .filter(|&t| t <= MAX_DATA_BYTES)
        .ok_or_else(|| IdxError::TooLarge {
            path: p(),
            dims: dims32.clone(),
            max: MAX_DATA_BYTES,
        })?;
    let dims: Vec<usize> = dims32.iter().map(|&d| d as usize).collect();

    // One byte more than needed tells trailing garbage from an exact fit.
    let mut data = Vec::new();
    (&mut reader)
        .take(total + 1)
        .read_to_end(&mut data)
        .map_err(read_err)?;
    let got = data.len() as u64;
    if got < total {
        return Err(IdxError::TruncatedData {
            path: p(),
            got,
            need: total,
            dims,
        });
    }
    if got > total {
        // Count the rest without keeping it (bounded, in case of a gzip bomb behind the data).
        let rest = std::io::copy(&mut reader.take(MAX_DATA_BYTES), &mut std::io::sink())
            .map_err(read_err)?;
        return Err(IdxError::TrailingData {
            path: p(),
            extra: got - total + rest,
            dims,
        });
    }
    md5::Digest::update(&mut md5, &data);
    let md5 = format!("{:x}", md5::Digest::finalize(md5));
    Ok(IdxArray { dims, data, md5 })
}

/// A magic number of the other kind means swapped files, which deserves its own sentence.
fn wrong_magic(path: PathBuf, found: u32, expected: u32, kind: IdxKind) -> IdxError {
    let other = match kind {
        IdxKind::Images => IdxKind::Labels,
        IdxKind::Labels => IdxKind::Images,
    };
    if found == 0x0800 | other.ndim() as u32 {
        IdxError::WrongKind {
            path,
            found: other.noun(),
            expected: kind.noun(),
        }
    } else {
        IdxError::BadMagic {
            path,
            found,
            expected,
            noun: kind.noun(),
        }
    }
}

/// Like `read_exact`, but reports how many bytes were there instead of failing on a short read.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn images(n: u32, rows: u32, cols: u32) -> Vec<u8> {
        let mut v = vec![0, 0, 8, 3];
        for d in [n, rows, cols] {
            v.extend(d.to_be_bytes());
        }
        v.extend((0..n * rows * cols).map(|i| (i % 251) as u8));
        v
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    fn write_tmp(bytes: &[u8], name: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        (dir, path)
    }

    #[test]
    fn reads_raw_and_gzipped_files_alike() {
        let raw = images(3, 2, 4);
        let (_d1, p1) = write_tmp(&raw, "a-idx3-ubyte");
        let (_d2, p2) = write_tmp(&gzip(&raw), "a-idx3-ubyte.gz");
        let a = read_idx(&p1, IdxKind::Images).unwrap();
        let b = read_idx(&p2, IdxKind::Images).unwrap();
        assert_eq!(a.dims, vec![3, 2, 4]);
        assert_eq!(a.data.len(), 24);
        assert_eq!(a.data[5], 5);
        assert_eq!(a, b);
    }

    #[test]
    fn md5_covers_the_whole_decompressed_file() {
        let raw = images(2, 2, 2);
        let a = parse_idx(&raw, IdxKind::Images).unwrap();
        let expected = format!("{:x}", <md5::Md5 as md5::Digest>::digest(&raw));
        assert_eq!(a.md5, expected);
    }

    #[test]
    fn refuses_each_kind_of_bad_file() {
        let raw = images(3, 2, 4);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (raw[..6].to_vec(), "truncated inside the header"),
            (raw[..20].to_vec(), "truncated inside the data"),
            (
                [raw.clone(), vec![1, 2]].concat(),
                "unexpected bytes after the data",
            ),
            (
                [vec![1, 2, 3, 4], raw[4..].to_vec()].concat(),
                "wrong magic number",
            ),
            (
                [vec![0, 0, 8, 1], raw[4..].to_vec()].concat(),
                "images and labels files swapped",
            ),
            (
                [vec![0, 0, 8, 3], vec![0xff; 12]].concat(),
                "more than the 1073741824 bytes",
            ),
        ];
        for (bytes, needle) in cases {
            let err = parse_idx(&bytes, IdxKind::Images).unwrap_err().to_string();
            assert!(err.contains(needle), "{err:?} should say {needle:?}");
        }
        assert!(matches!(
            parse_idx(&[], IdxKind::Labels),
            Err(IdxError::Empty { .. })
        ));
    }

    #[test]
    fn refuses_truncated_gzip_and_names_the_file() {
        let gz = gzip(&images(50, 28, 28));
        let (_d, path) = write_tmp(&gz[..gz.len() / 2], "cut-idx3-ubyte.gz");
        let err = read_idx(&path, IdxKind::Images).unwrap_err();
        assert!(matches!(err, IdxError::Gzip { .. }), "{err}");
        assert!(err.to_string().contains("cut-idx3-ubyte.gz"));
    }

    #[test]
    fn empty_and_missing_files_are_named() {
        let (_d, path) = write_tmp(&[], "empty-idx1-ubyte");
        let err = read_idx(&path, IdxKind::Labels).unwrap_err();
        assert!(
            err.to_string()
                .contains("empty-idx1-ubyte: the file is empty")
        );
        let err = read_idx(Path::new("/nonexistent/x"), IdxKind::Labels).unwrap_err();
        assert!(err.to_string().starts_with("/nonexistent/x: cannot read"));
    }
}
