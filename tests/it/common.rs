//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;

/// The real binary, run from the repository root (where data/mnist is), with the Vulkan
/// loader's runtime folder set so it stays quiet.
pub fn latentlab() -> Command {
    let mut cmd = Command::cargo_bin("latentlab").expect("the latentlab binary is built");
    cmd.current_dir(repo());
    cmd.env("XDG_RUNTIME_DIR", xdg_runtime_dir());
    cmd
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn mnist_dir() -> PathBuf {
    repo().join("data/mnist")
}

fn xdg_runtime_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("latentlab-xdg-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
    }
    dir
}

/// Copies the bundled MNIST files into `dir`, so a test can damage one of them.
pub fn copy_mnist(dir: &Path) {
    for entry in std::fs::read_dir(mnist_dir()).unwrap() {
        let entry = entry.unwrap();
        if entry.path().extension().is_some_and(|e| e == "gz") {
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
    }
}

/// The first `train` and `test` images of the bundled MNIST (and their labels) as an
/// uncompressed custom set in `dir`: small real data.
pub fn mnist_subset(dir: &Path, train: u32, test: u32) {
    use std::io::Read;
    std::fs::create_dir_all(dir).unwrap();
    for (name, n) in [
        ("train-images-idx3-ubyte", train),
        ("train-labels-idx1-ubyte", train),
        ("t10k-images-idx3-ubyte", test),
        ("t10k-labels-idx1-ubyte", test),
    ] {
        let gz = std::fs::File::open(mnist_dir().join(format!("{name}.gz"))).unwrap();
        let mut bytes = Vec::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_end(&mut bytes)
            .unwrap();
        // Header: magic (its last byte the number of dimensions), then each dimension.
        let dims = bytes[3] as usize;
        let item: usize = (1..dims)
            .map(|d| u32::from_be_bytes(bytes[4 + 4 * d..8 + 4 * d].try_into().unwrap()) as usize)
            .product();
        bytes[4..8].copy_from_slice(&n.to_be_bytes());
        bytes.truncate(4 + 4 * dims + n as usize * item);
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

/// Reads a PNG: (width, height, RGB pixels).
pub fn read_png(path: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let img = image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8();
    let (w, h) = img.dimensions();
    (w, h, img.pixels().map(|p| p.0).collect())
}

/// The one run directory in `dir` whose name starts with `prefix` ("ae-", "vae-").
pub fn only_run(dir: &Path, prefix: &str) -> PathBuf {
    let runs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    assert_eq!(
        runs.len(),
        1,
        "{prefix} runs in {}: {runs:?}",
        dir.display()
    );
    runs[0].clone()
}

/// `latentlab compare` of one epoch on the first `images` training images, with the IWAE at
/// `iwae` samples and any `extra` flags, writing its runs to `dir/runs` and the comparison to
/// `dir/cmp`; the command's result, and those two folders.
pub fn small_compare(
    dir: &Path,
    images: usize,
    iwae: usize,
    extra: &[&str],
) -> (assert_cmd::assert::Assert, PathBuf, PathBuf) {
    let (runs, cmp) = (dir.join("runs"), dir.join("cmp"));
    let (images, iwae) = (images.to_string(), iwae.to_string());
    let run = latentlab()
        .arg("compare")
        .args(extra)
        .args(["--train-limit", &images, "--epochs", "1"])
        .args([
            "--iwae-samples",
            &iwae,
            "--runs-dir",
            runs.to_str().unwrap(),
        ])
        .args(["--out", cmp.to_str().unwrap()])
        .assert();
    (run, runs, cmp)
}

/// A file of a run directory as text.
pub fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap()
}

/// A run's metrics.csv without its timing columns (seconds, images/s): epoch and the losses,
/// which must not depend on how fast the machine was.
pub fn losses(dir: &Path) -> Vec<String> {
    read(dir, "metrics.csv")
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            [f[0], f[3], f[4], f[5], f[6]].join(",")
        })
        .collect()
}

/// Sends Ctrl-C (SIGINT) to a running latentlab, waits for it, checks that it ended as
/// interrupted (exit 130), and returns what it wrote to stderr.
pub fn interrupt(child: std::process::Child) -> String {
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    stderr
}
