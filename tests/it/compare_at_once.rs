//! `compare` trains its two models at the same time on the CPU: each run is exactly what
//! `train` makes alone, and one Ctrl-C stops both, each resumable.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{interrupt, latentlab, losses, only_run, read, repo, small_compare};

#[test]
fn compare_trains_each_model_as_train_does_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (run, runs, _) = small_compare(dir.path(), 3000, 5, &["--seed", "3"]);
    run.success();
    for model in ["ae", "vae"] {
        let alone = dir.path().join(format!("alone-{model}"));
        latentlab()
            .args([
                "train",
                "--model",
                model,
                "--train-limit",
                "3000",
                "--epochs",
                "1",
            ])
            .args(["--seed", "3", "--iwae-samples", "5", "--out"])
            .arg(&alone)
            .assert()
            .success();
        let together = only_run(&runs, &format!("{model}-mnist-"));
        assert_eq!(losses(&together), losses(&alone), "{model}: metrics.csv");
        // The same weights: the same codes of all 10,000 test images, to the last digit.
        assert_eq!(
            read(&together, "latents.csv"),
            read(&alone, "latents.csv"),
            "{model}: latents.csv"
        );
    }
}

#[test]
fn one_ctrl_c_stops_both_trainings_and_each_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let child = Command::new(assert_cmd::cargo::cargo_bin("latentlab"))
        .current_dir(repo())
        .args(["compare", "--train-limit", "8000", "--epochs", "3"])
        .args(["--iwae-samples", "5", "--runs-dir"])
        .arg(&runs)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Both runs exist and have finished epoch 1: interrupt during epoch 2.
    let start = Instant::now();
    let checkpointed = |prefix: &str| -> Option<std::path::PathBuf> {
        let entries = std::fs::read_dir(&runs).ok()?;
        entries.flatten().map(|e| e.path()).find(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            name.starts_with(prefix) && p.join("checkpoint/latest.json").exists()
        })
    };
    let (ae, vae) = loop {
        if let (Some(ae), Some(vae)) = (checkpointed("ae-mnist-"), checkpointed("vae-mnist-")) {
            break (ae, vae);
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "no checkpoints after 5 minutes"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let stderr = interrupt(child);
    for run in [&ae, &vae] {
        let resume = format!("latentlab train --resume {}", run.display());
        assert!(stderr.contains(&resume), "no {resume:?} in:\n{stderr}");
        assert!(!run.join("summary.json").exists());
    }
    // No comparison was written.
    let compared = std::fs::read_dir(&runs)
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("compare-"));
    assert!(!compared, "a comparison folder was made");
    for run in [&ae, &vae] {
        latentlab()
            .args(["train", "--resume"])
            .arg(run)
            .assert()
            .success();
        assert_eq!(
            losses(run).len(),
            4,
            "{}: header and 3 epochs",
            run.display()
        );
        assert!(run.join("summary.json").is_file());
    }
}
