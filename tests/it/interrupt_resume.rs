//! Ctrl-C in the middle of a run keeps the finished epochs, and `--resume` ends with exactly
//! the result of a run that was never interrupted.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{interrupt, latentlab, losses, read, repo};

const ARGS: [&str; 8] = [
    "train",
    "--model",
    "vae",
    "--train-limit",
    "8000",
    "--epochs",
    "3",
    "--seed",
];

fn uninterrupted(out: &Path, extra: &[&str]) {
    latentlab()
        .args(ARGS)
        .args(["7", "--out", out.to_str().unwrap()])
        .args(extra)
        .assert()
        .success();
}

#[test]
fn sigint_then_resume_gives_the_uninterrupted_result_bit_for_bit() {
    sigint_then_resume(&[]);
}

/// The same on the GPU path (lavapipe here), whose epochs replay a captured step: the resumed
/// run's replays take Adam's step count from the checkpoint, as the ordinary steps do.
#[test]
fn sigint_then_resume_on_the_gpu_gives_the_uninterrupted_result_bit_for_bit() {
    sigint_then_resume(&["--device", "gpu", "--hidden", "32,16"]);
}

fn sigint_then_resume(extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let (whole, cut) = (dir.path().join("whole"), dir.path().join("cut"));
    uninterrupted(&whole, extra);

    let child = Command::new(assert_cmd::cargo::cargo_bin("latentlab"))
        .current_dir(repo())
        .args(ARGS)
        .args(["7", "--out", cut.to_str().unwrap()])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for epoch 1's checkpoint, then interrupt during epoch 2.
    let pointer = cut.join("checkpoint/latest.json");
    let start = Instant::now();
    while !pointer.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "no checkpoint after 5 minutes"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let stderr = interrupt(child);
    assert!(
        stderr.contains("interrupted; epochs 1-1 are saved"),
        "{stderr}"
    );
    assert!(stderr.contains("latentlab train --resume"), "{stderr}");
    assert!(!cut.join("summary.json").exists());

    latentlab()
        .args(["train", "--resume", cut.to_str().unwrap()])
        .assert()
        .success();

    // Same weights: identical codes for all 10,000 test images, to the last bit printed.
    assert_eq!(read(&whole, "latents.csv"), read(&cut, "latents.csv"));
    assert_eq!(losses(&whole), losses(&cut));
    // The animation's snapshots are the same too: before training and after each epoch.
    for step in [0, 63, 126, 189] {
        let f = format!("snapshots/step-{step:07}.csv");
        assert_eq!(read(&whole, &f), read(&cut, &f), "{f}");
    }
    assert!(cut.join("latent_evolution.gif").is_file());
}

#[test]
fn resume_refuses_a_run_of_the_other_model() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("ae");
    latentlab()
        .args([
            "train",
            "--model",
            "ae",
            "--train-limit",
            "500",
            "--epochs",
            "1",
        ])
        .args(["--out", run.to_str().unwrap()])
        .assert()
        .success();
    let out = latentlab()
        .args(["train", "--model", "vae", "--resume", run.to_str().unwrap()])
        .assert()
        .code(2)
        .get_output()
        .clone();
    assert!(String::from_utf8_lossy(&out.stderr).contains("that run trains the AE, not the VAE"));
}
