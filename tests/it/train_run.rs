//! A short real run of the binary on a slice of MNIST: every file of the run directory is
//! written, and every figure is a real picture.


use std::path::Path;

use crate::common::{latentlab, read_png};

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
        "epoch,seconds,images_per_sec,train_loss,test_recon,test_kl,test_loss"
    );
    assert_eq!(lines.len(), 3);
    let loss = |line: &str| line.split(',').nth(6).unwrap().parse::<f64>().unwrap();
    assert!(
        loss(lines[2]) < loss(lines[1]),
        "test loss goes down: {metrics}"
    );

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
