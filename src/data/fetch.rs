//! Fetching a known data set (Fashion-MNIST, KMNIST, or MNIST into an empty folder) from its
//! public mirror on first use.
//!
//! Each file is downloaded into memory, checked (complete, a valid gzipped IDX file, the
//! publisher's checksum) and only then written, atomically, under its final name: a failed,
//! truncated or corrupted download leaves nothing behind, and a retry fetches only what is
//! still missing.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use md5::Digest;
use thiserror::Error;

use super::dataset::{KnownSet, TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS};
use super::idx::{IdxKind, parse_idx};

/// No MNIST-family file comes near this; a server that sends more is not sending one.
const MAX_BYTES: u64 = 100 << 20;

#[derive(Debug, Error)]
pub enum FetchError {
    #[error(
        "{url}: download failed ({reason}); nothing was written. Try again, or download the four .gz files from {mirror} by hand into {dir}"
    )]
    Download {
        url: String,
        reason: String,
        mirror: String,
        dir: PathBuf,
    },
    #[error(
        "{url}: the downloaded file is damaged ({reason}); it was not kept. Try again, or download the four .gz files from {mirror} by hand into {dir}"
    )]
    Damaged {
        url: String,
        reason: String,
        mirror: String,
        dir: PathBuf,
    },
    #[error("{path}: cannot write the downloaded file ({source})")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// True when `dir` lacks one of the four files (raw or gzipped).
pub fn is_incomplete(dir: &Path) -> bool {
    [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS]
        .iter()
        .any(|name| !present(dir, name))
}

fn present(dir: &Path, name: &str) -> bool {
    dir.join(name).is_file() || dir.join(format!("{name}.gz")).is_file()
}

/// Fetches the files of `set` that `dir` lacks from `mirror` (default: the set's own);
/// returns the files written.
pub fn fetch_missing(
    set: &KnownSet,
    dir: &Path,
    mirror: Option<&str>,
) -> Result<Vec<PathBuf>, FetchError> {
    let mirror = mirror.unwrap_or(set.mirror);
    let base = if mirror.ends_with('/') {
        mirror.to_string()
    } else {
        format!("{mirror}/")
    };
    let mut written = Vec::new();
    for (name, gz_md5) in set.gz_md5 {
        if present(dir, name) {
            continue;
        }
        let url = format!("{base}{name}.gz");
        let bytes = download(&url, dir, &base)?;
        verify(set, name, gz_md5, &bytes).map_err(|reason| FetchError::Damaged {
            url: url.clone(),
            reason,
            mirror: base.clone(),
            dir: dir.to_path_buf(),
        })?;
        let path = dir.join(format!("{name}.gz"));
        std::fs::create_dir_all(dir)
            .and_then(|()| crate::atomic::write_new_atomic(&path, &bytes))
            .map_err(|source| FetchError::Write {
                path: path.clone(),
                source,
            })?;
        eprintln!(
            "fetched {url} ({} bytes, checksum verified) into {}",
            bytes.len(),
            path.display()
        );
        written.push(path);
    }
    if !written.is_empty() {
        write_readme(set, dir, &base)?;
    }
    Ok(written)
}

/// A README.md beside fetched files, as data/mnist has: where they came from and under
/// which licence. An existing one (the user's) is left alone.
fn write_readme(set: &KnownSet, dir: &Path, mirror: &str) -> Result<(), FetchError> {
    let path = dir.join("README.md");
    if path.exists() {
        return Ok(());
    }
    let text = format!(
        "# {}\n\nFetched by latentlab from {mirror}, every file's checksum verified.\n\n\
         Source and licence: {}.\n",
        set.name, set.source
    );
    crate::atomic::write_new_atomic(&path, text.as_bytes())
        .map_err(|source| FetchError::Write { path, source })
}

fn download(url: &str, dir: &Path, mirror: &str) -> Result<Vec<u8>, FetchError> {
    let fail = |reason: String| FetchError::Download {
        url: url.to_string(),
        reason,
        mirror: mirror.to_string(),
        dir: dir.to_path_buf(),
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(20)))
        .timeout_global(Some(Duration::from_secs(600)))
        .build()
        .into();
    let response = agent.get(url).call().map_err(|e| fail(e.to_string()))?;
    let body = response.into_body();
    let expected = body.content_length();
    if expected.is_some_and(|n| n > MAX_BYTES) {
        return Err(fail(format!(
            "the server announces {} bytes, more than any MNIST-family file",
            expected.unwrap_or_default()
        )));
    }
    let bar = progress_bar(url, expected);
    let mut reader = body.into_with_config().limit(MAX_BYTES).reader();
    let mut bytes = Vec::with_capacity(expected.unwrap_or(1 << 20) as usize);
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut chunk).map_err(|e| {
            bar.abandon();
            fail(format!("after {} bytes: {e}", bytes.len()))
        })?;
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&chunk[..n]);
        bar.set_position(bytes.len() as u64);
    }
    bar.finish_and_clear();
    if let Some(n) = expected.filter(|&n| n != bytes.len() as u64) {
        return Err(fail(format!(
            "the connection ended after {} of {n} bytes",
            bytes.len()
        )));
    }
    Ok(bytes)
}

fn progress_bar(url: &str, len: Option<u64>) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len.unwrap_or(0));
    let template = if len.is_some() {
        "{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec}"
    } else {
        "{msg} {bytes} {bytes_per_sec}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.set_message(format!("fetching {url}"));
    bar
}

/// A fetched file is kept only if it is a whole gzipped IDX file of the right kind and
/// matches the publisher's checksum (of the .gz, or of its contents where that is known).
fn verify(set: &KnownSet, name: &str, gz_md5: &str, bytes: &[u8]) -> Result<(), String> {
    let kind = if name.contains("labels") {
        IdxKind::Labels
    } else {
        IdxKind::Images
    };
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .take(4 * MAX_BYTES)
        .read_to_end(&mut raw)
        .map_err(|e| format!("not a complete gzip file: {e}"))?;
    let idx = parse_idx(&raw, kind).map_err(|e| e.to_string())?;
    let found = format!("{:x}", md5::Md5::digest(bytes));
    let raw_ok = set.md5.iter().any(|(n, md5)| *n == name && *md5 == idx.md5);
    if found == gz_md5 || raw_ok {
        Ok(())
    } else {
        Err(format!("MD5 {found}, {} publishes {gz_md5}", set.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{FASHION_MNIST, MNIST};

    fn bundled(name: &str) -> Vec<u8> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("data/mnist")
            .join(format!("{name}.gz"));
        std::fs::read(path).unwrap()
    }

    #[test]
    fn the_bundled_mnist_passes_by_its_contents_checksum() {
        let bytes = bundled(TEST_LABELS);
        assert_eq!(
            verify(&MNIST, TEST_LABELS, MNIST.gz_md5[3].1, &bytes),
            Ok(())
        );
    }

    #[test]
    fn damaged_downloads_are_refused() {
        let bytes = bundled(TEST_LABELS);
        let truncated = &bytes[..bytes.len() / 2];
        assert!(
            verify(&MNIST, TEST_LABELS, "x", truncated)
                .unwrap_err()
                .contains("not a complete gzip file")
        );
        // Right format, wrong data set: Fashion-MNIST knows no contents checksum and the
        // .gz does not match its own.
        let err = verify(
            &FASHION_MNIST,
            TEST_LABELS,
            FASHION_MNIST.gz_md5[3].1,
            &bytes,
        )
        .unwrap_err();
        assert!(err.contains("fashion-mnist publishes"), "{err}");
    }
}
