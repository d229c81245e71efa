//! Bad input given to the real binary: exit status 2, one sentence naming what is wrong,
//! and nothing written.

use std::path::Path;

use crate::common::{copy_mnist, latentlab};
use predicates::prelude::*;

fn refused(args: &[&str], needle: &str) {
    let out = latentlab().args(args).assert().code(2).get_output().clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(needle),
        "`{}`: {stderr:?} should mention {needle:?}",
        args.join(" ")
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn flags_out_of_range_are_refused() {
    refused(
        &["train", "--model", "ae", "--batch-size", "0"],
        "--batch-size",
    );
    refused(&["train", "--model", "ae", "--epochs", "0"], "--epochs");
    refused(&["train", "--model", "ae", "--lr", "-1"], "--lr");
    refused(&["train", "--model", "ae", "--lr", "NaN"], "--lr");
    refused(&["train", "--model", "vae", "--beta", "-0.5"], "--beta");
    refused(
        &["train", "--model", "vae", "--grid-size", "0"],
        "--grid-size",
    );
    refused(&["train", "--model", "cnn"], "--model");
    refused(&["train"], "--model");
    refused(
        &["train", "--model", "ae", "--dataset", "custom"],
        "--data-dir",
    );
}

#[test]
fn missing_data_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere");
    refused(
        &[
            "train",
            "--model",
            "ae",
            "--data-dir",
            missing.to_str().unwrap(),
            "--runs-dir",
            dir.path().to_str().unwrap(),
        ],
        "nowhere: data folder not found",
    );
    std::fs::create_dir(&missing).unwrap();
    refused(
        &[
            "train",
            "--model",
            "ae",
            "--data-dir",
            missing.to_str().unwrap(),
            "--runs-dir",
            dir.path().to_str().unwrap(),
        ],
        "no train-images-idx3-ubyte",
    );
    // Nothing was written: no run directory was made.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn a_damaged_mnist_file_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    copy_mnist(dir.path());
    let labels = dir.path().join("t10k-labels-idx1-ubyte.gz");
    let bytes = std::fs::read(&labels).unwrap();
    std::fs::write(&labels, &bytes[..bytes.len() / 2]).unwrap();
    let runs = dir.path().join("runs");
    refused(
        &[
            "train",
            "--model",
            "ae",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--runs-dir",
            runs.to_str().unwrap(),
        ],
        "t10k-labels-idx1-ubyte.gz: the gzip data is truncated",
    );
    assert!(
        !runs.exists(),
        "a refused run must not create its run directory"
    );
}

#[test]
fn an_existing_out_folder_is_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keep.txt"), "mine").unwrap();
    refused(
        &[
            "train",
            "--model",
            "ae",
            "--train-limit",
            "256",
            "--epochs",
            "1",
            "--out",
            dir.path().to_str().unwrap(),
        ],
        "already exists",
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("keep.txt")).unwrap(),
        "mine"
    );
}

#[test]
fn resume_of_a_folder_that_is_not_a_run_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    refused(
        &["train", "--resume", dir.path().to_str().unwrap()],
        "not a latentlab run directory",
    );
}

#[test]
fn help_names_the_commands() {
    latentlab()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("train").and(predicate::str::contains("devices")));
}

/// No usable graphics adapter: wgpu is asked (through cubecl's own override) for a discrete
/// GPU that this machine does not have, so the real driver stack answers "none". `train` and
/// `devices` say so in one sentence that suggests --device cpu (exit 2, nothing written), and
/// the CPU backend still trains under the very same environment.
#[test]
fn no_graphics_adapter_is_one_sentence_and_the_cpu_still_works() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let no_gpu = |args: &[&str]| {
        let mut cmd = latentlab();
        cmd.env("CUBECL_WGPU_DEFAULT_DEVICE", "DiscreteGpu(7)")
            .args(args)
            .arg("--out")
            .arg(&out);
        cmd
    };
    let small = [
        "train",
        "--model",
        "ae",
        "--epochs",
        "1",
        "--train-limit",
        "256",
    ];
    let gpu = no_gpu(&[&small[..], &["--device", "gpu"]].concat())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&gpu.stderr);
    eprintln!("no adapter: {}", stderr.trim());
    assert_eq!(gpu.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no graphics adapter") && stderr.contains("--device cpu"));
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!out.exists(), "nothing is written");

    let devices = latentlab()
        .env("CUBECL_WGPU_DEFAULT_DEVICE", "DiscreteGpu(7)")
        .arg("devices")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&devices.stderr);
    assert_eq!(devices.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--device cpu"), "{stderr}");

    no_gpu(&[&small[..], &["--device", "cpu"]].concat())
        .assert()
        .success();
    assert!(out.join("checkpoint/latest.json").is_file());
}

/// `latentlab devices | head -1`: the reader leaves before latentlab has written; latentlab
/// ends quietly with success, as a unix tool does, instead of panicking on the closed pipe.
#[test]
fn a_reader_that_leaves_early_is_no_failure() {
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("latentlab"))
        .arg("devices")
        .current_dir(crate::common::repo())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Close the read end at once: listing the adapters takes far longer than this.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("error"),
        "{stderr}"
    );
}

/// Other latent sizes work everywhere a plane is not the point: a 3-D run gets its figures
/// in its two most varied dimensions and a traversal of all three (no GIF, no explorer,
/// which show the plane itself), and plot, decode (three numbers a point), sample and
/// interpolate work on it; a point of the wrong length is refused with one sentence, and
/// `compare` refuses --latent 3 before training anything.
#[test]
fn a_latent_of_three_trains_draws_and_decodes_and_compare_refuses_it() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run3");
    latentlab()
        .args(["train", "--model", "vae", "--latent", "3", "--epochs", "1"])
        .args([
            "--train-limit",
            "256",
            "--iwae-samples",
            "2",
            "--kl-warmup",
            "2",
            "--out",
        ])
        .arg(&run)
        .assert()
        .success();
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["latent_std"].as_array().unwrap().len(), 3);
    for f in [
        "latent_scatter.png",
        "decoded_grid.png",
        "prior_grid.png",
        "latent_traversal.png",
    ] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    assert!(!run.join("explorer.html").exists() && !run.join("latent_evolution.gif").exists());
    // The traversal: 3 rows (one per dimension) of 7 steps, so taller than a 2-row one and
    // narrower than it is tall.
    let (w, h, _) = crate::common::read_png(&run.join("latent_traversal.png"));
    assert!(h > 3 * 28 && w >= 600, "{w}x{h}");
    let metrics = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert!(
        metrics
            .lines()
            .next()
            .unwrap()
            .ends_with("sigma_z1,sigma_z2,sigma_z3"),
        "{metrics}"
    );
    // --kl-warmup 2: the KL weight has reached half of --beta after the first epoch.
    assert_eq!(
        metrics.lines().nth(1).unwrap().split(',').nth(7),
        Some("0.5"),
        "{metrics}"
    );

    let r = run.to_str().unwrap();
    let out = |name: &str| tmp.path().join(name).to_str().unwrap().to_string();
    std::fs::remove_file(run.join("decoded_grid.png")).unwrap();
    latentlab().args(["plot", r]).assert().success();
    assert!(
        run.join("decoded_grid.png").is_file(),
        "plot redraws the grid"
    );
    let csv = out("p.csv");
    latentlab()
        .args(["decode", r, "--z", "0,0.5,-1", "--out", &csv])
        .assert()
        .success();
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(text.starts_with("z1,z2,z3,p0,"), "{}", &text[..40]);
    assert_eq!(text.lines().count(), 2);
    latentlab()
        .args(["sample", r, "--n", "4", "--out", &out("s.png")])
        .assert()
        .success();
    latentlab()
        .args(["interpolate", r, "--from-index", "1", "--to-index", "2"])
        .args(["--steps", "3", "--out", &out("i.png")])
        .assert()
        .success();
    let wrong = out("x.png");
    refused(
        &["decode", r, "--z", "0,0", "--out", &wrong],
        "--z 0,0: 2 numbers, but this model has 3 latent dimensions; give 3",
    );
    assert!(!Path::new(&wrong).exists());

    let runs = tmp.path().join("runs");
    refused(
        &[
            "compare",
            "--latent",
            "3",
            "--runs-dir",
            runs.to_str().unwrap(),
        ],
        "--latent 2",
    );
    assert!(!runs.exists(), "compare trained before refusing");
}
