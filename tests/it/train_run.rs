//! A short real run of the binary on a slice of MNIST: every file of the run directory is
//! written, and every figure is a real picture.

use std::path::Path;

use crate::common::{latentlab, mnist_subset, read_png};

fn train(model: &str, out: &Path, extra: &[&str]) {
    latentlab()
        .args([
            "train",
            "--model",
            model,
            "--train-limit",
            "3000",
            "--epochs",
            "2",
            "--iwae-samples",
            "10",
        ])
        .args(["--out", out.to_str().unwrap()])
        .args(extra)
        .assert()
        .success();
}

fn assert_figure(path: &Path, size: (u32, u32)) {
    let (w, h, px) = read_png(path);
    assert_eq!((w, h), size, "{}", path.display());
    let white = px.iter().filter(|p| **p == [255, 255, 255]).count();
    assert!(
        white < px.len() * 97 / 100,
        "{} is almost blank",
        path.display()
    );
    let colours: std::collections::HashSet<_> = px.iter().collect();
    assert!(
        colours.len() > 20,
        "{} uses only {} colours",
        path.display(),
        colours.len()
    );
    let svg = std::fs::read_to_string(path.with_extension("svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.len() > 1000,
        "{}.svg",
        path.display()
    );
}

#[test]
fn a_vae_run_writes_every_promised_file() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("vae");
    train("vae", &run, &[]);

    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["settings"]["model"]["kind"], "vae");
    assert_eq!(config["backend"], "flex");

    let metrics = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let lines: Vec<&str> = metrics.lines().collect();
    assert_eq!(
        lines[0],
        "epoch,seconds,images_per_sec,train_loss,test_recon,test_kl,test_loss,beta,\
         active_units,kl_z1,kl_z2,mu_var_z1,mu_var_z2,sigma_z1,sigma_z2"
    );
    assert_eq!(lines.len(), 3);
    let cell = |line: &str, k: usize| line.split(',').nth(k).unwrap().parse::<f64>().unwrap();
    assert!(
        cell(lines[2], 6) < cell(lines[1], 6),
        "test loss goes down: {metrics}"
    );
    // Every epoch's diagnostics: the KL per dimension adds up to the epoch's test KL, the
    // active units count the variances over 0.01, sigmas are in (0, 1.5), beta is --beta.
    for line in &lines[1..] {
        let (kl, beta, active) = (cell(line, 5), cell(line, 7), cell(line, 8));
        assert_eq!(beta, 1.0, "{line}");
        assert!(
            (cell(line, 9) + cell(line, 10) - kl).abs() < 1e-3 * kl,
            "{line}"
        );
        let over = [11, 12].iter().filter(|&&k| cell(line, k) > 0.01).count();
        assert_eq!(active, over as f64, "{line}");
        assert!(
            [13, 14]
                .iter()
                .all(|&k| (0.0..1.5).contains(&cell(line, k))),
            "{line}"
        );
    }

    // The latent diagnostics: the KL per dimension adds up to the test KL the evaluation
    // computed on its own (float order apart); active units count the variances over 0.01.
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    let per_dim: Vec<f64> = summary["kl_per_dim"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let test_kl = summary["test_kl"].as_f64().unwrap();
    assert_eq!(per_dim.len(), 2);
    assert!(
        (per_dim.iter().sum::<f64>() - test_kl).abs() < 1e-3 * test_kl,
        "{per_dim:?} vs test KL {test_kl}"
    );
    let variances = summary["mu_variance_per_dim"].as_array().unwrap();
    assert_eq!(variances.len(), 2);
    let active = variances
        .iter()
        .filter(|v| v.as_f64().unwrap() > 0.01)
        .count();
    assert_eq!(summary["active_units"], active, "{summary}");

    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    for field in [
        "test_recon",
        "test_kl",
        "test_loss",
        "knn5_accuracy",
        "empty_cell_share",
        "images_per_sec",
        "train_seconds",
    ] {
        assert!(
            summary[field].as_f64().is_some_and(f64::is_finite),
            "summary.{field}: {summary}"
        );
    }
    assert_eq!(summary["latent_std"].as_array().unwrap().len(), 2);
    assert_eq!(summary["posterior_sigma_mean"].as_array().unwrap().len(), 2);
    assert!(
        summary["knn5_accuracy"].as_f64().unwrap() > 0.2,
        "codes carry digit information (chance is 0.1): {summary}"
    );
    assert!(
        summary["iwae_log_likelihood"].as_f64().unwrap()
            > -summary["test_loss"].as_f64().unwrap() - 1.0
    );
    assert_eq!(summary["iwae_samples"], 10);

    let latents = std::fs::read_to_string(run.join("latents.csv")).unwrap();
    assert!(latents.starts_with("index,label,z1,z2,sigma1,sigma2\n"));
    assert_eq!(latents.lines().count(), 10_001);

    assert!(run.join("checkpoint/latest.json").is_file());
    assert!(run.join("checkpoint/model-epoch-2.bpk").is_file());

    assert_figure(&run.join("latent_scatter.png"), (1000, 820));
    assert_figure(&run.join("decoded_grid.png"), (960, 975));
    assert_figure(&run.join("prior_grid.png"), (960, 975));
    assert_figure(&run.join("loss_curves.png"), (1400, 560));

    // 3000 images in batches of 128: 24 steps per epoch; by default the codes are kept
    // before training and after each epoch, and animated one frame each (+2 holding the end).
    assert_eq!(snapshot_steps(&run), [0, 24, 48]);
    assert_eq!(gif_frames(&run.join("latent_evolution.gif")), 3 + 2);
    let explorer = std::fs::read_to_string(run.join("explorer.html")).unwrap();
    assert!(explorer.contains("latentlab explorer: VAE on mnist"));
    assert!(
        explorer.len() < 8_000_000,
        "explorer.html is {} bytes",
        explorer.len()
    );
}

fn snapshot_steps(run: &Path) -> Vec<usize> {
    let mut steps: Vec<usize> = std::fs::read_dir(run.join("snapshots"))
        .unwrap()
        .map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name["step-".len()..name.len() - ".csv".len()]
                .parse()
                .unwrap()
        })
        .collect();
    steps.sort_unstable();
    steps
}

/// Frames of a GIF, each checked to be the animation's full size and not blank.
fn gif_frames(path: &Path) -> usize {
    let mut options = gif::DecodeOptions::new();
    options.set_color_output(gif::ColorOutput::RGBA);
    let mut decoder = options
        .read_info(std::fs::File::open(path).unwrap())
        .unwrap();
    let mut n = 0;
    while let Some(frame) = decoder.read_next_frame().unwrap() {
        let colours: std::collections::HashSet<&[u8]> = frame.buffer.chunks(4).collect();
        assert!(
            colours.len() > 10,
            "frame {n} of {} is blank",
            path.display()
        );
        n += 1;
    }
    n
}

#[test]
fn an_ae_run_has_no_prior_grid_and_no_sigma() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("ae");
    train("ae", &run, &["--snapshot-every", "10"]);
    assert!(!run.join("prior_grid.png").exists());
    let latents = std::fs::read_to_string(run.join("latents.csv")).unwrap();
    assert!(latents.starts_with("index,label,z1,z2\n"));
    assert_figure(&run.join("loss_curves.png"), (900, 560));
    assert_figure(&run.join("decoded_grid.png"), (960, 975));
    // --snapshot-every 10: every 10th step of the 48, and the last one.
    assert_eq!(snapshot_steps(&run), [0, 10, 20, 30, 40, 48]);
    assert_eq!(gif_frames(&run.join("latent_evolution.gif")), 6 + 2);
}

/// Outside a clone (an installed binary run in an empty folder) there is no data/mnist: the
/// MNIST copy inside the binary is used, and the run goes into runs/ of that folder. The
/// bundled copy gives exactly the numbers the folder gives.
#[test]
fn an_installed_binary_trains_in_an_empty_folder_from_its_own_mnist() {
    let empty = tempfile::tempdir().unwrap();
    let args = [
        "train",
        "--model",
        "ae",
        "--train-limit",
        "512",
        "--epochs",
        "1",
    ];
    let output = latentlab()
        .current_dir(empty.path())
        .args(args)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let run_dir = std::path::PathBuf::from(String::from_utf8(output).unwrap().trim());
    let run_dir = empty.path().join(run_dir);
    assert!(
        run_dir.starts_with(empty.path().join("runs")),
        "{}",
        run_dir.display()
    );
    let bundled = std::fs::read_to_string(run_dir.join("metrics.csv")).unwrap();
    let here = tempfile::tempdir().unwrap();
    let from_folder = here.path().join("run");
    latentlab()
        .args(args)
        .args(["--out", from_folder.to_str().unwrap()])
        .assert()
        .success();
    let folder = std::fs::read_to_string(from_folder.join("metrics.csv")).unwrap();
    // Same losses (the seconds differ): compare every column but seconds and images/s.
    let losses = |csv: &str| -> Vec<String> {
        csv.lines()
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                format!("{},{}", f[0], f[3..].join(","))
            })
            .collect()
    };
    assert_eq!(losses(&bundled), losses(&folder));
}

/// Flushing denormal floats to zero (latentlab's default on x86) changes no loss a user sees:
/// the same short run with `LATENTLAB_KEEP_DENORMALS=1` ends with the same test losses to 5
/// significant digits; and `bench --json` names the mode and the instruction set that ran.
#[test]
fn flushing_denormals_keeps_the_losses_and_bench_names_the_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |keep: bool, out: &Path| {
        let mut cmd = latentlab();
        if keep {
            cmd.env("LATENTLAB_KEEP_DENORMALS", "1");
        }
        cmd.args([
            "train",
            "--model",
            "vae",
            "--train-limit",
            "2000",
            "--epochs",
            "2",
        ])
        .args(["--iwae-samples", "2", "--out", out.to_str().unwrap()])
        .assert()
        .success();
        let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
        let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
        let col = header.iter().position(|h| *h == "test_loss").unwrap();
        csv.lines()
            .skip(1)
            .map(|l| l.split(',').nth(col).unwrap().parse::<f64>().unwrap())
            .collect::<Vec<f64>>()
    };
    let flushed = run(false, &tmp.path().join("flushed"));
    let kept = run(true, &tmp.path().join("kept"));
    assert_eq!(flushed.len(), 2);
    for (f, k) in flushed.iter().zip(&kept) {
        assert!(
            (f - k).abs() <= 1e-5 * k.abs(),
            "flushed {flushed:?} vs kept {kept:?}"
        );
    }

    let bench = |keep: bool| -> serde_json::Value {
        let mut cmd = latentlab();
        if keep {
            cmd.env("LATENTLAB_KEEP_DENORMALS", "1");
        }
        let out = cmd
            .args([
                "bench", "--model", "ae", "--steps", "3", "--warmup", "1", "--json",
            ])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        serde_json::from_slice(&out).unwrap()
    };
    let (default, keeping) = (bench(false), bench(true));
    #[cfg(target_arch = "x86_64")]
    assert_eq!(default["denormals"], "flush-to-zero");
    assert_eq!(keeping["denormals"], "kept");
    // Steps replay only on a GPU.
    assert!(default["replayed"].is_null(), "{default}");
    let isa = default["instruction_set"].as_str().unwrap();
    assert!(
        ["avx512f", "avx2+fma", "sse2", std::env::consts::ARCH].contains(&isa),
        "{isa}"
    );
}

/// `bench --device gpu` also times the step as `train` takes it on a GPU (lavapipe here):
/// replays of a captured step that writes the weights in place. Each replay's loss must be the
/// loss of an ordinary forward pass from the weights as the steps before it left them, on the
/// batch it should take (a replay that read another batch, or a copy of the weights, fails
/// it); when a block's batches run out the next graph is captured (1,000 images at batch 100:
/// 10 batches, a capture's warm-up takes 3 or 4, so 9 replays need two). `--no-graph`, and the
/// CPU, time the issued step only.
#[test]
fn bench_times_the_replayed_training_step_as_train_takes_it() {
    let tmp = tempfile::tempdir().unwrap();
    mnist_subset(tmp.path(), 1000, 100);
    let bench = |extra: &[&str]| -> serde_json::Value {
        let out = latentlab()
            .args(["bench", "--model", "vae", "--batch-size", "100"])
            .args(["--steps", "8", "--warmup", "1", "--json", "--data-dir"])
            .arg(tmp.path())
            .args(extra)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        serde_json::from_slice(&out).unwrap()
    };
    let gpu = bench(&["--device", "gpu"]);
    let replayed = &gpu["replayed"];
    assert_eq!(replayed["same_loss"], true, "{replayed}");
    assert!(
        replayed["worst_loss_error"].as_f64().unwrap() <= 1.0,
        "{replayed}"
    );
    assert_eq!(replayed["captures"], 2, "{replayed}");
    for timed in ["median_step_ms", "median_capture_ms"] {
        assert!(replayed[timed].as_f64().unwrap() > 0.0, "{replayed}");
    }
    assert!(gpu["median_step_ms"].as_f64().unwrap() > 0.0, "{gpu}");
    for (what, json) in [
        ("--no-graph", bench(&["--device", "gpu", "--no-graph"])),
        ("cpu", bench(&["--device", "cpu"])),
    ] {
        assert!(json["replayed"].is_null(), "{what}: {json}");
        assert!(json["not_replayed"].is_null(), "{what}: {json}");
    }
}

/// The numbers of a run's CSV file (a snapshot's test codes, metrics.csv's losses).
fn numbers(text: &str) -> Vec<f64> {
    text.lines()
        .skip(1)
        .flat_map(|l| l.split(',').filter_map(|f| f.parse::<f64>().ok()))
        .collect()
}

fn assert_numbers_close(what: &str, got: &[f64], want: &[f64]) {
    assert_numbers_within(what, got, want, 1e-4);
}

/// Each number within `relative` of the one it is checked against (of 1 below 1).
fn assert_numbers_within(what: &str, got: &[f64], want: &[f64], relative: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= relative * w.abs().max(1.0),
            "{what}[{i}]: {g}, against {w}"
        );
    }
}

/// The closing `time:` line of a run's standard error (after the progress bar's carriage
/// returns).
fn time_line(said: &str) -> Option<&str> {
    said.split(['\r', '\n']).find(|l| l.starts_with("time: "))
}

/// On a GPU (lavapipe here) an epoch's full batches are replays of one captured step
/// (`train::graph`), and they make the run that issuing every step makes (`--no-graph`):
/// the same losses every epoch and the same test codes at every snapshot. Epoch 1 is a KL
/// warm-up (the weight rises every step, so each replay reads its own from the device), epoch
/// 2 has the one weight (a replay that kept its capture's weight for the warm-up fails: the
/// test and epoch 2's losses move by ten times the tolerance and more). A snapshot every 5
/// steps puts one (step 20) among the warm-up steps a capture at the start of epoch 2 would
/// run, whose hooks see only the weights after the warm-up: the capture waits until step 21.
/// So of each epoch's 16 steps (15 full batches and a partial one), 12 are replays in epoch 1
/// (3 warm-up steps, the partial batch issued anew) and 8 in epoch 2, as the epoch lines say.
#[test]
fn gpu_training_replays_its_steps_and_makes_the_run_of_issuing_them() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, extra: &[&str]| {
        let out = dir.path().join(name);
        let done = latentlab()
            .args([
                "train",
                "--model",
                "vae",
                "--device",
                "gpu",
                "--train-limit",
                "2000",
                "--epochs",
                "2",
                "--hidden",
                "32,16",
                "--iwae-samples",
                "10",
                "--snapshot-every",
                "5",
                "--kl-warmup",
                "1",
            ])
            .args(["--out", out.to_str().unwrap()])
            .args(extra)
            .assert()
            .success();
        let said = String::from_utf8_lossy(&done.get_output().stderr).into_owned();
        (out, said)
    };
    let (replayed, said) = run("replayed", &[]);
    let (issued, said_issued) = run("issued", &["--no-graph"]);
    assert!(
        said.contains("epoch 1/2") && said.contains("replayed 12/16 steps"),
        "{said}"
    );
    assert!(said.contains("replayed 8/16 steps"), "{said}");
    assert!(!said_issued.contains("replayed"), "{said_issued}");
    // The closing line accounts for the run from its start, snapshots apart from training.
    let time = time_line(&said);
    assert!(
        time.is_some_and(|l| l.starts_with("time: start-up ")
            && l.contains(", training ")
            && l.contains(", snapshots ")),
        "{time:?}"
    );
    let losses = |dir: &Path| numbers(&crate::common::losses(dir).join("\n"));
    assert_numbers_close("losses", &losses(&replayed), &losses(&issued));
    let steps = snapshot_steps(&replayed);
    assert_eq!(steps, snapshot_steps(&issued));
    assert_eq!(steps, [0, 5, 10, 15, 20, 25, 30, 32]);
    for step in steps {
        let file = format!("snapshots/step-{step:07}.csv");
        let [a, b] = [&replayed, &issued].map(|d| numbers(&crate::common::read(d, &file)));
        assert!(a.len() >= 2 * 10_000, "{file}: {} numbers", a.len());
        assert_numbers_close(&file, &a, &b);
    }
}

/// `--binarize dynamic` on a GPU (lavapipe here): the epoch's batches are drawn black and white
/// on the device all at once, so its full batches are still replays of a captured step (12 of
/// each epoch's 16 steps), and they are the pixels a CPU run draws batch by batch: the two runs'
/// losses agree to the arithmetic's rounding (3e-7 of the loss, measured). A loss is linear in
/// its targets, so grey batches, whose loss is what the draws average to, come close: they
/// moved the losses by 4e-5 of their size, four times this tolerance.
#[test]
fn gpu_dynamic_binarisation_replays_like_the_cpu_and_its_epochs_count_their_waits() {
    let dir = tempfile::tempdir().unwrap();
    let run = |device: &str| {
        let out = dir.path().join(device);
        let done = latentlab()
            .args(["train", "--model", "ae", "--device", device])
            .args(["--train-limit", "2000", "--epochs", "2"])
            .args(["--hidden", "32,16"])
            .args(["--binarize", "dynamic", "--out", out.to_str().unwrap()])
            .assert()
            .success();
        let said = String::from_utf8_lossy(&done.get_output().stderr).into_owned();
        (out, said)
    };
    let (gpu, said) = run("gpu");
    let (cpu, _) = run("cpu");
    assert_eq!(said.matches("replayed 12/16 steps").count(), 2, "{said}");
    // The snapshot at an epoch's end reads the device after the steps still queued there have
    // run; their time is training's. Counted as the snapshot's, it was 10.6 s beside 11.5 s of
    // training here, and the epochs looked twice as fast as they ran.
    let seconds = |phase: &str| -> f64 {
        let part = time_line(&said).and_then(|l| l.split(", ").find(|p| p.contains(phase)));
        let value = part.and_then(|p| p.split_whitespace().rev().nth(1));
        value.and_then(|v| v.parse().ok()).expect(&said)
    };
    let (training, snapshots) = (seconds("training "), seconds("snapshots "));
    assert!(
        snapshots < training / 10.0,
        "{snapshots} s of snapshots, {training} s of training"
    );
    let losses = |dir: &Path| numbers(&crate::common::losses(dir).join("\n"));
    assert_numbers_within(
        "losses, gpu against cpu",
        &losses(&gpu),
        &losses(&cpu),
        1e-5,
    );
}
