//! Fetching a data set from a mirror, against an HTTP server this test runs on 127.0.0.1: a
//! good mirror fills the folder with verified files; a truncated, corrupted, wrong or missing
//! file is refused with one sentence that says where to put the files by hand, and leaves
//! nothing in the folder. (MNIST stands in for Fashion-MNIST and KMNIST: it is the set whose
//! real files the repository has; `--mirror` makes latentlab fetch it like the others.)

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;

use crate::common::{latentlab, mnist_dir};

const NAMES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// Serves `/<mode>/<file>.gz` from the bundled MNIST, damaged as `mode` says, until the
/// test process ends; returns the base URL.
fn start_mirror() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve(stream));
        }
    });
    base
}

fn serve(mut stream: TcpStream) {
    let mut request = Vec::new();
    let mut byte = [0u8; 1];
    while !request.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
        request.push(byte[0]);
    }
    let request = String::from_utf8_lossy(&request);
    let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let (mode, file) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let Ok(good) = std::fs::read(mnist_dir().join(file)) else {
        let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        return;
    };
    let (announced, body) = match mode {
        "good" => (good.len(), good),
        // The server promises the whole file and hangs up half way.
        "truncated" => (good.len(), good[..good.len() / 2].to_vec()),
        // Same length, a run of bytes in the middle overwritten.
        "corrupt" => {
            let mut bad = good.clone();
            let mid = bad.len() / 2;
            for b in &mut bad[mid..mid + 64] {
                *b ^= 0x5a;
            }
            (bad.len(), bad)
        }
        // A whole, valid gzipped IDX file, but not the one MNIST publishes.
        "other" => {
            let mut raw = Vec::new();
            flate2::read::GzDecoder::new(&good[..])
                .read_to_end(&mut raw)
                .unwrap();
            let last = raw.len() - 1;
            raw[last] = if raw[last] == 1 { 2 } else { 1 };
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&raw).unwrap();
            let gz = gz.finish().unwrap();
            (gz.len(), gz)
        }
        _ => {
            let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
            return;
        }
    };
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/gzip\r\nContent-Length: {announced}\r\nConnection: close\r\n\r\n"
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&body);
}

/// Trains one tiny epoch with the data fetched from `mirror` into `data`; returns
/// (exit code, stderr).
fn train_with(mirror: &str, data: &Path, out: &Path) -> (i32, String) {
    let output = latentlab()
        .args([
            "train",
            "--model",
            "ae",
            "--dataset",
            "mnist",
            "--epochs",
            "1",
        ])
        .args([
            "--train-limit",
            "300",
            "--iwae-samples",
            "2",
            "--mirror",
            mirror,
        ])
        .arg("--data-dir")
        .arg(data)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn a_good_mirror_fills_the_folder_with_the_verified_files() {
    let base = start_mirror();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data/mnist");
    let (code, stderr) = train_with(&format!("{base}/good/"), &data, &tmp.path().join("run"));
    assert_eq!(code, 0, "{stderr}");
    for name in NAMES {
        let file = format!("{name}.gz");
        assert_eq!(
            std::fs::read(data.join(&file)).unwrap(),
            std::fs::read(mnist_dir().join(&file)).unwrap(),
            "{file}"
        );
    }
    assert_eq!(
        files_in(&data).len(),
        5,
        "only the four files and README.md: {:?}",
        files_in(&data)
    );
    let readme = std::fs::read_to_string(data.join("README.md")).unwrap();
    assert!(
        readme.contains("CC BY-SA 3.0") && readme.contains("/good/"),
        "{readme}"
    );
    assert!(stderr.contains("fetched "), "{stderr}");
}

#[test]
fn bad_downloads_are_refused_and_leave_nothing_behind() {
    let base = start_mirror();
    let tmp = tempfile::tempdir().unwrap();
    for (mode, says) in [
        ("truncated", "download failed"),
        ("corrupt", "is damaged (not a complete gzip file"),
        ("other", "mnist publishes"),
        ("missing", "404"),
    ] {
        let data = tmp.path().join(mode);
        let (code, stderr) = train_with(
            &format!("{base}/{mode}/"),
            &data,
            &tmp.path().join(format!("run-{mode}")),
        );
        assert_eq!(code, 1, "{mode}: {stderr}");
        let line = stderr.trim();
        assert_eq!(
            line.lines().count(),
            1,
            "{mode}: one sentence, got:\n{stderr}"
        );
        assert!(line.contains(says), "{mode}: {line}");
        assert!(line.contains("by hand into"), "{mode}: {line}");
        assert!(!line.contains("panicked"), "{mode}: {line}");
        assert_eq!(files_in(&data), Vec::<String>::new(), "{mode} left files");
        assert!(
            !tmp.path().join(format!("run-{mode}")).exists(),
            "{mode} made a run"
        );
    }
}

#[test]
fn a_fetch_cut_short_resumes_with_the_missing_files_only() {
    let base = start_mirror();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("mnist");
    // Two files are already there: only the other two are fetched.
    std::fs::create_dir_all(&data).unwrap();
    for name in &NAMES[..2] {
        let file = format!("{name}.gz");
        std::fs::copy(mnist_dir().join(&file), data.join(&file)).unwrap();
    }
    let (code, stderr) = train_with(&format!("{base}/good"), &data, &tmp.path().join("run"));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stderr.matches("fetched ").count(), 2, "{stderr}");
    assert_eq!(files_in(&data).len(), 5, "{:?}", files_in(&data));
}
