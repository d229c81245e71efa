//! `compare` on a small slice of MNIST writes every file it promises, and the commands that
//! read a run (plot, encode, decode, sample, interpolate) work on its runs.
use crate::common::{latentlab, only_run, read_png};

#[test]
fn compare_then_the_run_tools() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let out = dir.path().join("cmp");
    let run = latentlab()
        .args([
            "compare",
            "--train-limit",
            "2000",
            "--epochs",
            "1",
            "--iwae-samples",
            "5",
        ])
        .args([
            "--runs-dir",
            runs.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&run.get_output().stdout).to_string();
    assert_eq!(stdout.trim(), out.to_str().unwrap());

    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    for needle in [
        "Both models: the same data set, 1 epoch, training images 2000, seed 0, sizes 784-512-256-2, batch size 128 and learning rate 0.001. AE run",
        "Each grid spans its own model's 1st-99th percentile box",
        "## What the numbers show",
        "**Spread and centring.**",
        "**Gaps.**",
        "**Latent usage.**",
        "| active units (variance of mu > 0.01) | - | ",
        "sigma = 1/sqrt(2)",
    ] {
        assert!(
            report.contains(needle),
            "report.md lacks {needle:?}:\n{report}"
        );
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("comparison.json")).unwrap())
            .unwrap();
    assert_eq!(json["ae"]["model"], "ae");
    assert_eq!(json["vae"]["model"], "vae");
    assert_eq!(read_png(&out.join("scatter_ae_vs_vae.png")).0, 2000);
    assert_eq!(read_png(&out.join("grids_ae_vs_vae.png")).0, 1920);
    assert!(
        out.join("scatter_ae_vs_vae.svg").is_file() && out.join("grids_ae_vs_vae.svg").is_file()
    );

    let (ae, vae) = (only_run(&runs, "ae-mnist-"), only_run(&runs, "vae-mnist-"));

    // compare of two finished runs, and a refusal of swapped ones.
    let again = dir.path().join("cmp2");
    latentlab()
        .args([
            "compare",
            "--ae",
            ae.to_str().unwrap(),
            "--vae",
            vae.to_str().unwrap(),
        ])
        .args(["--out", again.to_str().unwrap()])
        .assert()
        .success();
    assert_eq!(
        std::fs::read_to_string(again.join("comparison.json")).unwrap(),
        std::fs::read_to_string(out.join("comparison.json")).unwrap(),
        "the same two runs give the same numbers"
    );
    latentlab()
        .args([
            "compare",
            "--ae",
            vae.to_str().unwrap(),
            "--vae",
            ae.to_str().unwrap(),
        ])
        .args(["--out", dir.path().join("cmp3").to_str().unwrap()])
        .assert()
        .code(2);

    // Training flags beside finished runs would be ignored: refused instead, nothing written.
    let flagged = dir.path().join("cmp4");
    let refused = latentlab()
        .args([
            "compare",
            "--ae",
            ae.to_str().unwrap(),
            "--vae",
            vae.to_str().unwrap(),
        ])
        .args(["--epochs", "3", "--out", flagged.to_str().unwrap()])
        .assert()
        .code(2)
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("--epochs"), "{stderr}");
    assert!(!flagged.exists());

    // One chosen box for both grids: the report says so instead of "percentile box".
    let boxed = dir.path().join("cmp5");
    latentlab()
        .args([
            "compare",
            "--ae",
            ae.to_str().unwrap(),
            "--vae",
            vae.to_str().unwrap(),
        ])
        .args([
            "--grid-range",
            "-2,2,-1,1",
            "--out",
            boxed.to_str().unwrap(),
        ])
        .assert()
        .success();
    let report = std::fs::read_to_string(boxed.join("report.md")).unwrap();
    assert!(
        report.contains("Both grids span the chosen box z1 -2..2, z2 -1..1"),
        "{report}"
    );
    assert!(
        !report.contains("own model's 1st-99th percentile box"),
        "{report}"
    );

    // plot redraws the same figures from the checkpoint.
    let before = std::fs::read(vae.join("decoded_grid.png")).unwrap();
    std::fs::remove_file(vae.join("decoded_grid.png")).unwrap();
    latentlab()
        .args(["plot", vae.to_str().unwrap()])
        .assert()
        .success();
    assert_eq!(std::fs::read(vae.join("decoded_grid.png")).unwrap(), before);

    // encode writes the columns of latents.csv, and the same codes.
    let codes = dir.path().join("codes.csv");
    latentlab()
        .args([
            "encode",
            vae.to_str().unwrap(),
            "--out",
            codes.to_str().unwrap(),
        ])
        .assert()
        .success();
    assert_eq!(
        std::fs::read_to_string(&codes).unwrap(),
        std::fs::read_to_string(vae.join("latents.csv")).unwrap()
    );
    latentlab()
        .args([
            "encode",
            vae.to_str().unwrap(),
            "--out",
            codes.to_str().unwrap(),
        ])
        .assert()
        .code(2);

    let digit = dir.path().join("digit.png");
    latentlab()
        .args([
            "decode",
            ae.to_str().unwrap(),
            "--z",
            "0.5,-1.2",
            "--out",
            digit.to_str().unwrap(),
        ])
        .assert()
        .success();
    assert_eq!(read_png(&digit).0, 28 * 8);

    let samples = dir.path().join("samples.png");
    latentlab()
        .args([
            "sample",
            vae.to_str().unwrap(),
            "--n",
            "16",
            "--out",
            samples.to_str().unwrap(),
        ])
        .assert()
        .success();
    let (w, h, px) = read_png(&samples);
    assert_eq!((w, h), (4 * 28 * 4 + 3 * 4, 4 * 28 * 4 + 3 * 4));
    assert!(px.iter().any(|p| p[0] > 128), "samples are not all black");

    let strip = dir.path().join("strip.png");
    latentlab()
        .args([
            "interpolate",
            vae.to_str().unwrap(),
            "--from-index",
            "3",
            "--to-index",
            "7",
        ])
        .args(["--steps", "6", "--out", strip.to_str().unwrap()])
        .assert()
        .success();
    assert_eq!(read_png(&strip).0, 6 * 28 * 4 + 5 * 4);
    latentlab()
        .args([
            "interpolate",
            vae.to_str().unwrap(),
            "--from-index",
            "3",
            "--to-index",
            "10000",
        ])
        .args(["--out", dir.path().join("x.png").to_str().unwrap()])
        .assert()
        .code(2);
}
