//! `latentlab export` writes a run's weights as safetensors with PyTorch names and layouts.
//! The file is read here by hand (8-byte header length, JSON header, raw little-endian
//! floats: the published format, independent of the crate that wrote it), and the weights in
//! it, multiplied out as PyTorch's nn.Linear does, give the codes `latentlab encode` and the
//! pixels `latentlab decode` give.

use std::collections::BTreeMap;
use std::path::Path;

use latentlab::config::TrainSettings;
use latentlab::model::ModelKind;
use latentlab::train::load_data;

use crate::common::{latentlab, mnist_dir, only_run, small_compare};

struct Tensor {
    shape: Vec<usize>,
    values: Vec<f32>,
}

/// Reads a safetensors file without the safetensors crate: (tensors, metadata).
fn read_safetensors(path: &Path) -> (BTreeMap<String, Tensor>, serde_json::Value) {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data = &bytes[8 + n..];
    let mut tensors = BTreeMap::new();
    let mut covered = 0;
    for (name, info) in header.as_object().unwrap() {
        if name == "__metadata__" {
            continue;
        }
        assert_eq!(info["dtype"], "F32", "{name}");
        let shape: Vec<usize> = info["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        let [a, b] = [0, 1].map(|i| info["data_offsets"][i].as_u64().unwrap() as usize);
        assert_eq!(b - a, 4 * shape.iter().product::<usize>(), "{name}: size");
        covered += b - a;
        let values = data[a..b]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        tensors.insert(name.clone(), Tensor { shape, values });
    }
    assert_eq!(
        covered,
        data.len(),
        "every byte after the header belongs to a tensor"
    );
    (tensors, header["__metadata__"].clone())
}

/// `x W^T + b` for each named layer, relu between them, as nn.Sequential of nn.Linear runs.
fn forward(t: &BTreeMap<String, Tensor>, layers: &[&str], mut x: Vec<f32>) -> Vec<f32> {
    for (i, layer) in layers.iter().enumerate() {
        let w = &t[&format!("{layer}.weight")];
        let b = &t[&format!("{layer}.bias")];
        let (outs, ins) = (w.shape[0], w.shape[1]);
        assert_eq!(ins, x.len(), "{layer} takes {ins} inputs");
        x = (0..outs)
            .map(|o| {
                let y: f32 = (0..ins).map(|k| w.values[o * ins + k] * x[k]).sum();
                let y = y + b.values[o];
                if i + 1 < layers.len() { y.max(0.0) } else { y }
            })
            .collect();
    }
    x
}

fn csv_floats(line: &str) -> Vec<f32> {
    line.split(',').map(|v| v.parse().unwrap()).collect()
}

#[test]
fn an_exported_vae_encodes_and_decodes_as_latentlab_does() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("vae");
    latentlab()
        .args([
            "train",
            "--model",
            "vae",
            "--epochs",
            "1",
            "--train-limit",
            "1000",
        ])
        .args(["--iwae-samples", "1", "--out", run.to_str().unwrap()])
        .assert()
        .success();
    let file = dir.path().join("model.safetensors");
    let out = latentlab()
        .args([
            "export",
            run.to_str().unwrap(),
            "--out",
            file.to_str().unwrap(),
        ])
        .assert()
        .success();
    assert_eq!(
        String::from_utf8_lossy(&out.get_output().stdout).trim(),
        file.to_str().unwrap()
    );

    let (t, meta) = read_safetensors(&file);
    let shapes: Vec<(&str, Vec<usize>)> = t
        .iter()
        .map(|(k, v)| (k.as_str(), v.shape.clone()))
        .collect();
    assert_eq!(
        shapes,
        [
            ("dec.0.bias", vec![256]),
            ("dec.0.weight", vec![256, 2]),
            ("dec.2.bias", vec![512]),
            ("dec.2.weight", vec![512, 256]),
            ("dec.4.bias", vec![784]),
            ("dec.4.weight", vec![784, 512]),
            ("enc.0.bias", vec![512]),
            ("enc.0.weight", vec![512, 784]),
            ("enc.2.bias", vec![256]),
            ("enc.2.weight", vec![256, 512]),
            ("head_logvar.bias", vec![2]),
            ("head_logvar.weight", vec![2, 256]),
            ("head_mu.bias", vec![2]),
            ("head_mu.weight", vec![2, 256]),
        ]
    );
    assert_eq!(meta["model"], "vae");
    assert_eq!(meta["hidden"], "512,256");
    assert_eq!(meta["latent"], "2");
    assert_eq!(meta["epoch"], "1");

    // The encoder: test image 0 through enc.* and the two heads, against `latentlab encode`.
    let codes = dir.path().join("codes.csv");
    latentlab()
        .args([
            "encode",
            run.to_str().unwrap(),
            "--out",
            codes.to_str().unwrap(),
        ])
        .assert()
        .success();
    let text = std::fs::read_to_string(&codes).unwrap();
    let row = csv_floats(text.lines().nth(1).unwrap()); // index,label,z1,z2,sigma1,sigma2
    let settings = TrainSettings {
        data_dir: mnist_dir(),
        ..TrainSettings::new(ModelKind::Vae)
    };
    let data = load_data(&settings).unwrap();
    let image: Vec<f32> = data.test.images[..784]
        .iter()
        .map(|&p| p as f32 / 255.0)
        .collect();
    let hidden = forward(&t, &["enc.0", "enc.2"], image);
    let hidden: Vec<f32> = hidden.into_iter().map(|h| h.max(0.0)).collect();
    let mu = forward(&t, &["head_mu"], hidden.clone());
    let log_var = forward(&t, &["head_logvar"], hidden);
    let sigma: Vec<f32> = log_var.iter().map(|l| (0.5 * l).exp()).collect();
    for (mine, theirs) in mu.iter().chain(&sigma).zip(&row[2..6]) {
        assert!(
            (mine - theirs).abs() < 1e-4,
            "encode: {mu:?} {sigma:?} vs {row:?}"
        );
    }

    // The decoder: one latent point through dec.*, against `latentlab decode`'s pixels.
    let pixels = dir.path().join("pixels.csv");
    latentlab()
        .args(["decode", run.to_str().unwrap(), "--z", "0.5,-1.25"])
        .args(["--out", pixels.to_str().unwrap()])
        .assert()
        .success();
    let text = std::fs::read_to_string(&pixels).unwrap();
    let decoded = csv_floats(text.lines().last().unwrap());
    let logits = forward(&t, &["dec.0", "dec.2", "dec.4"], vec![0.5, -1.25]);
    assert_eq!(decoded.len(), 2 + logits.len());
    for (i, (l, p)) in logits.iter().zip(&decoded[2..]).enumerate() {
        let mine = 1.0 / (1.0 + (-l).exp());
        assert!((mine - p).abs() < 1e-5, "pixel {i}: {mine} vs {p}");
    }

    // A second export to the same file is refused and leaves it as it was.
    let before = std::fs::read(&file).unwrap();
    latentlab()
        .args([
            "export",
            run.to_str().unwrap(),
            "--out",
            file.to_str().unwrap(),
        ])
        .assert()
        .code(2);
    assert_eq!(std::fs::read(&file).unwrap(), before);
    latentlab()
        .args(["export", dir.path().to_str().unwrap()])
        .args(["--out", dir.path().join("x.safetensors").to_str().unwrap()])
        .assert()
        .code(2);
}

/// `--arch conv` end to end on a small slice: compare trains both models with convolutions
/// (every figure, the report, the GIF, the explorer: tests/it/explorer_browser.rs checks its
/// pixels), a run decodes, and export writes the convolutions under enc_conv / dec_conv in PyTorch's
/// layouts, the model's tensors exactly.
#[test]
fn a_conv_comparison_trains_draws_and_exports() {
    let dir = tempfile::tempdir().unwrap();
    let (run, runs, out) = small_compare(dir.path(), 600, 2, &["--arch", "conv"]);
    let run = run.success();
    assert!(run.get_output().status.success());
    for f in [
        "report.md",
        "scatter_ae_vs_vae.png",
        "grids_ae_vs_vae.png",
        "latent_evolution_ae_vs_vae.gif",
        "explorer.html",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let vae = only_run(&runs, "vae-");
    let config = std::fs::read_to_string(vae.join("config.json")).unwrap();
    assert!(config.contains("\"arch\": \"conv\""), "{config}");

    let file = dir.path().join("conv.safetensors");
    latentlab()
        .args([
            "export",
            vae.to_str().unwrap(),
            "--out",
            file.to_str().unwrap(),
        ])
        .assert()
        .success();
    let (t, meta) = read_safetensors(&file);
    assert_eq!(meta["arch"], "conv");
    let shape = |n: &str| t[n].shape.clone();
    assert_eq!(shape("enc_conv.0.weight"), [32, 1, 3, 3]);
    assert_eq!(shape("enc_conv.2.weight"), [64, 32, 3, 3]);
    assert_eq!(shape("enc.0.weight"), [512, 64 * 7 * 7]);
    assert_eq!(shape("dec.4.weight"), [64 * 7 * 7, 512]);
    assert_eq!(shape("dec_conv.0.weight"), [64, 32, 3, 3]);
    assert_eq!(shape("dec_conv.2.weight"), [32, 1, 3, 3]);
    assert_eq!(shape("dec_conv.2.bias"), [1]);
    // The file holds the model's own values (the layouts are checked against PyTorch's
    // definitions in src/model/state_dict.rs).
    let loaded = latentlab::run::LoadedRun::open(&vae).unwrap();
    for tensor in loaded.model.pytorch_state_dict().unwrap() {
        assert_eq!(t[&tensor.name].values, tensor.values, "{}", tensor.name);
    }
    let pixels = dir.path().join("p.csv");
    latentlab()
        .args(["decode", vae.to_str().unwrap(), "--z", "0,0", "--out"])
        .arg(&pixels)
        .assert()
        .success();
}
