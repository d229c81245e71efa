//! Issue 5's list of bad inputs, each given to the real binary: exit status 2, one sentence
//! naming the file or flag, no panic, and nothing written. The data cases use a small
//! made-up `--dataset custom` folder, so each one is a single quick call.

use std::path::{Path, PathBuf};

use crate::common::latentlab;

const ROWS: u32 = 12;

fn idx(magic_ndim: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 8, magic_ndim];
    for d in dims {
        v.extend(d.to_be_bytes());
    }
    v.extend(data);
    v
}

fn images(n: u32) -> Vec<u8> {
    let data: Vec<u8> = (0..n * ROWS * ROWS).map(|i| (i * 37 % 256) as u8).collect();
    idx(3, &[n, ROWS, ROWS], &data)
}

fn labels(n: u32) -> Vec<u8> {
    let data: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    idx(1, &[n], &data)
}

/// A valid custom set of 12x12 images: 200 for training, 50 for testing.
fn custom_set(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for (name, bytes) in [
        ("train-images-idx3-ubyte", images(200)),
        ("train-labels-idx1-ubyte", labels(200)),
        ("t10k-images-idx3-ubyte", images(50)),
        ("t10k-labels-idx1-ubyte", labels(50)),
    ] {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

fn train_custom(data: &Path, runs: &Path) -> std::process::Output {
    latentlab()
        .args([
            "train",
            "--model",
            "vae",
            "--dataset",
            "custom",
            "--epochs",
            "1",
        ])
        .args(["--batch-size", "32", "--iwae-samples", "2"])
        .arg("--data-dir")
        .arg(data)
        .arg("--runs-dir")
        .arg(runs)
        .output()
        .unwrap()
}

/// Exit 2, one line that contains every `needle`, and no run directory.
fn assert_refused(case: &str, out: &std::process::Output, needles: &[&str], runs: &Path) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{case}: {stderr}");
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "{case}: one sentence:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{case}: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "{case}: {stderr:?} lacks {n:?}");
    }
    let written = std::fs::read_dir(runs).map(|d| d.count()).unwrap_or(0);
    assert_eq!(
        written,
        0,
        "{case}: something was written in {}",
        runs.display()
    );
    eprintln!("{case}: {}", stderr.trim());
}

#[test]
fn each_bad_data_file_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let gz = |bytes: &[u8]| {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    };
    let full_gz = gz(&images(50));
    type Damage = Box<dyn Fn(&Path)>;
    let test_images = "t10k-images-idx3-ubyte";
    let test_labels = "t10k-labels-idx1-ubyte";
    let write = |name: &'static str, bytes: Vec<u8>| -> Damage {
        Box::new(move |dir: &Path| std::fs::write(dir.join(name), &bytes).unwrap())
    };
    let cases: Vec<(&str, Damage, Vec<&str>)> = vec![
        (
            "missing file",
            Box::new(move |dir: &Path| std::fs::remove_file(dir.join(test_labels)).unwrap()),
            vec![test_labels, "standard names"],
        ),
        (
            "empty file",
            write(test_images, Vec::new()),
            vec![test_images, "empty"],
        ),
        (
            "truncated gzip",
            Box::new(move |dir: &Path| {
                std::fs::remove_file(dir.join(test_images)).unwrap();
                std::fs::write(
                    dir.join(format!("{test_images}.gz")),
                    &full_gz[..full_gz.len() / 2],
                )
                .unwrap();
            }),
            vec![test_images, "gzip"],
        ),
        (
            "truncated header",
            write(test_images, images(50)[..10].to_vec()),
            vec![test_images, "inside the header"],
        ),
        (
            "truncated data",
            write(test_images, images(50)[..500].to_vec()),
            vec![test_images, "truncated"],
        ),
        (
            "wrong magic",
            write(test_images, {
                let mut b = images(50);
                b[2] = 9;
                b
            }),
            vec![test_images, "magic"],
        ),
        (
            "labels as images",
            write(test_images, labels(50)),
            vec![test_images, "label"],
        ),
        (
            "images as labels",
            write(test_labels, images(50)),
            vec![test_labels, "image"],
        ),
        (
            "counts disagree",
            write(test_labels, labels(49)),
            vec![test_images, test_labels, "49 labels"],
        ),
        (
            "label above 9",
            write(test_labels, {
                let mut b = labels(50);
                b[8 + 3] = 12;
                b
            }),
            vec![test_labels, "label 12", "not a digit"],
        ),
        (
            "image sizes differ",
            write(test_images, idx(3, &[50, 10, 10], &vec![0; 5000])),
            vec![test_images, "10x10", "12x12"],
        ),
    ];
    for (case, damage, needles) in cases {
        let data = tmp.path().join(case.replace(' ', "-"));
        custom_set(&data);
        damage(&data);
        let runs = tmp.path().join(format!("runs-{}", case.replace(' ', "-")));
        assert_refused(case, &train_custom(&data, &runs), &needles, &runs);
    }
}

#[test]
fn the_input_size_follows_the_data() {
    // 12x12 images: the model takes 144 inputs and the run goes through, figures included.
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("custom");
    custom_set(&data);
    let runs = tmp.path().join("runs");
    let out = train_custom(&data, &runs);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run: PathBuf = std::fs::read_dir(&runs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let config = std::fs::read_to_string(run.join("config.json")).unwrap();
    assert!(config.contains("\"input\": 144"), "{config}");
    assert!(run.join("decoded_grid.png").is_file() && run.join("explorer.html").is_file());
}

#[test]
fn resume_of_a_damaged_run_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("custom");
    custom_set(&data);
    let runs = tmp.path().join("runs");
    assert!(train_custom(&data, &runs).status.success());
    let run: PathBuf = std::fs::read_dir(&runs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let ckpt = run.join("checkpoint");
    let model = ckpt.join("model-epoch-1.bpk");

    // A corrupt checkpoint: the model file overwritten with garbage.
    let good = std::fs::read(&model).unwrap();
    std::fs::write(&model, b"not a checkpoint").unwrap();
    let resume = || {
        latentlab()
            .args(["train", "--resume"])
            .arg(&run)
            .output()
            .unwrap()
    };
    let empty = tmp.path().join("nothing-here");
    assert_refused(
        "corrupt checkpoint",
        &resume(),
        &["model-epoch-1.bpk", "unreadable"],
        &empty,
    );
    // A missing one.
    std::fs::remove_file(&model).unwrap();
    assert_refused(
        "missing checkpoint file",
        &resume(),
        &["model-epoch-1.bpk", "missing"],
        &empty,
    );
    std::fs::write(&model, good).unwrap();
    // No checkpoint at all.
    std::fs::remove_file(ckpt.join("latest.json")).unwrap();
    assert_refused("no checkpoint", &resume(), &["no finished epoch"], &empty);
}

#[test]
fn an_output_that_cannot_be_written_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let out = latentlab()
        .args([
            "train",
            "--model",
            "ae",
            "--train-limit",
            "256",
            "--epochs",
            "1",
            "--out",
        ])
        .arg(file.join("run"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("a-file/run: cannot create this folder (a file is in the way"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    eprintln!(
        "unwritable --out: exit {:?}: {}",
        out.status.code(),
        stderr.trim()
    );
}

#[test]
fn a_diverging_run_stops_with_the_epoch_the_step_and_a_hint() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let out = latentlab()
        .args([
            "train",
            "--model",
            "ae",
            "--lr",
            "1e30",
            "--train-limit",
            "2000",
        ])
        .args(["--epochs", "2", "--out"])
        .arg(&run)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let last = stderr.trim().lines().last().unwrap();
    assert!(last.contains("in epoch 1 at step"), "{last}");
    assert!(
        last.contains("training diverged; no epoch had finished"),
        "{last}"
    );
    assert!(last.contains("try a smaller --lr"), "{last}");
    assert!(!run.join("summary.json").exists() && !run.join("checkpoint").exists());
}
