//! A disk that fills up during training: the run stops with one sentence that says the disk is
//! full (exit 1), the last finished epoch's checkpoint is whole and no temporary file is left,
//! and once there is room again `--resume` ends with the very weights of a run that never
//! failed.
//!
//! The small disk is a tmpfs mounted in a private mount namespace (`unshare -rm`, no root
//! needed), sized from a reference run so that the first epoch's checkpoint fits and the
//! second does not.

use std::path::Path;
use std::process::Command;

use crate::common::{latentlab, mnist_dir};

const ARGS: [&str; 10] = [
    "--model",
    "ae",
    "--train-limit",
    "512",
    "--batch-size",
    "128",
    "--hidden",
    "64,32",
    "--snapshot-every",
    "4",
];

fn train(out: &Path, epochs: &str) {
    let status = latentlab()
        .arg("train")
        .args(ARGS)
        .args(["--epochs", epochs])
        .arg("--data-dir")
        .arg(mnist_dir())
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");
}

fn checkpoint_bytes(run: &Path, epoch: usize) -> u64 {
    ["model", "optimizer"]
        .iter()
        .map(|f| {
            let path = run.join(format!("checkpoint/{f}-epoch-{epoch}.bpk"));
            std::fs::metadata(path).unwrap().len()
        })
        .sum()
}

fn can_mount_privately() -> bool {
    Command::new("unshare")
        .args(["-rm", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn a_full_disk_keeps_the_last_checkpoint_and_resume_finishes_the_run() {
    if !can_mount_privately() {
        // Without user namespaces there is no way to make a small disk without root.
        eprintln!("SKIPPED: `unshare -rm` cannot mount a tmpfs on this machine");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (one, three) = (
        tmp.path().join("one-epoch"),
        tmp.path().join("three-epochs"),
    );
    train(&one, "1");
    train(&three, "3");
    let pair = checkpoint_bytes(&one, 1);
    // Room for one checkpoint pair, the snapshots and half of a second pair.
    let size_kib = (pair * 3 / 2 + (1 << 20)) / 1024;

    let disk = tmp.path().join("disk");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&disk).unwrap();
    std::fs::create_dir_all(outside.join("kept")).unwrap();
    let bin = assert_cmd::cargo::cargo_bin("latentlab");
    let script = format!(
        r#"
        mount -t tmpfs -o size={size_kib}k tmpfs "$DISK" || exit 90
        "$BIN" train {args} --epochs 3 --data-dir "$DATA" --out "$DISK/run" 2> "$OUT/first.err"
        echo $? > "$OUT/first.code"
        ls -A "$DISK/run/checkpoint" > "$OUT/checkpoint.ls"
        cp "$DISK/run/checkpoint/"* "$OUT/kept/"
        mount -o remount,size=256m "$DISK" || exit 91
        "$BIN" train --resume "$DISK/run" 2> "$OUT/resume.err"
        echo $? > "$OUT/resume.code"
        cp -r "$DISK/run" "$OUT/resumed"
        "#,
        args = ARGS.join(" "),
    );
    let run = Command::new("unshare")
        .args(["-rm", "sh", "-c", &script])
        .env("DISK", &disk)
        .env("OUT", &outside)
        .env("BIN", &bin)
        .env("DATA", mnist_dir())
        .output()
        .unwrap();
    assert!(run.status.success(), "{run:?}");
    let read = |name: &str| std::fs::read_to_string(outside.join(name)).unwrap();

    // The failure: exit 1, one sentence naming the file and the disk, no panic.
    // (stderr also holds the progress lines of the epoch that finished.)
    let stderr = read("first.err");
    assert_eq!(read("first.code").trim(), "1", "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "one sentence:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let err = errors[0];
    eprintln!("full disk: {err}");
    assert!(
        err.contains("the disk is full") && err.contains("--resume"),
        "{err}"
    );
    assert!(
        err.contains(&disk.join("run").display().to_string()),
        "{err}"
    );

    // What is left: the pointer names epoch 1, both of its files are there, and no temporary
    // file remains. (Whole, too: the resume below starts from them and ends bit for bit where
    // the run that never failed ends.)
    let listing = read("checkpoint.ls");
    assert!(
        !listing.lines().any(|l| l.starts_with('.')),
        "temporary files left: {listing}"
    );
    let kept = outside.join("kept");
    let pointer: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(kept.join("latest.json")).unwrap()).unwrap();
    assert_eq!(pointer["epoch"], 1, "{pointer}");
    for f in ["model-epoch-1.bpk", "optimizer-epoch-1.bpk"] {
        assert!(std::fs::metadata(kept.join(f)).unwrap().len() > 0, "{f}");
    }

    // With room again, --resume ends where an uninterrupted run ends: the same codes for all
    // test images to the last digit printed, and the same snapshots. (Checkpoint bytes are
    // not compared: Burn gives every parameter a random id.)
    assert_eq!(read("resume.code").trim(), "0", "{}", read("resume.err"));
    let resumed = outside.join("resumed");
    let same = |f: &str| {
        assert!(
            std::fs::read(resumed.join(f)).unwrap() == std::fs::read(three.join(f)).unwrap(),
            "{f} differs from the run that never failed"
        )
    };
    same("latents.csv");
    for step in [0, 4, 8, 12] {
        same(&format!("snapshots/step-{step:07}.csv"));
    }
}
