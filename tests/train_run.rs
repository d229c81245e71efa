//! A short real run of the binary on a slice of MNIST: every file of the run directory is
//! written, and every figure is a real picture.

mod common;

use std::path::Path;

use common::{latentlab, read_png};

fn train(model: &str, out: &Path) {
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
    train("vae", &run);

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
}

#[test]
fn an_ae_run_has_no_prior_grid_and_no_sigma() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("ae");
    train("ae", &run);
    assert!(!run.join("prior_grid.png").exists());
    let latents = std::fs::read_to_string(run.join("latents.csv")).unwrap();
    assert!(latents.starts_with("index,label,z1,z2\n"));
    assert_figure(&run.join("loss_curves.png"), (900, 560));
    assert_figure(&run.join("decoded_grid.png"), (960, 975));
}
