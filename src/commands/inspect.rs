//! The commands that read a finished run: plot, encode, decode, sample, interpolate.

use std::path::Path;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::cli::{
    DecodeArgs, EncodeArgs, ExportArgs, InterpolateArgs, PlotArgs, SampleArgs, SplitName,
};
use crate::data::Dataset;
use crate::error::AppError;
use crate::plot::grid::decode_points;
use crate::plot::images::save_montage;
use crate::run::{self, Latents, LoadedRun, RunError};
use crate::stats::mean_std;
use crate::train::load_data;
use crate::train::session::{Codes, DeviceSplit, encode_images};

use super::output::{self, VisualRun};

/// Pixels per image pixel in the PNGs of decode, sample and interpolate.
const SCALE: usize = 4;

fn refuse_existing(out: &Path) -> Result<(), AppError> {
    if out.exists() {
        return Err(RunError::OutputExists {
            path: out.to_path_buf(),
        }
        .into());
    }
    Ok(())
}

fn codes_of(
    run: &LoadedRun,
    data: &Dataset,
    split: SplitName,
) -> Result<(Codes, Vec<u8>), AppError> {
    let split = match split {
        SplitName::Train => &data.train,
        SplitName::Test => &data.test,
    };
    let images = DeviceSplit::upload(split, data.pixels(), &run.device);
    let codes = encode_images(&run.model, &images, run.config.settings.model.latent)?;
    Ok((codes, images.labels))
}

/// Decodes full latent points, refusing one whose length is not the model's latent size.
fn decode(run: &LoadedRun, points: &[Vec<f64>]) -> Result<Vec<Vec<f32>>, AppError> {
    let latent = run.config.settings.model.latent;
    if let Some(p) = points.iter().find(|p| p.len() != latent) {
        return Err(AppError::Usage(format!(
            "--z {}: {} number{}, but this model has {latent} latent dimension{}; give {latent}",
            p.iter().map(f64::to_string).collect::<Vec<_>>().join(","),
            p.len(),
            if p.len() == 1 { "" } else { "s" },
            if latent == 1 { "" } else { "s" },
        )));
    }
    decode_points(&run.model, points, &run.device).map_err(|reason| {
        AppError::Report(
            crate::plot::PlotError {
                path: run.dir.clone(),
                reason,
            }
            .into(),
        )
    })
}

fn image_size(run: &LoadedRun) -> (usize, usize) {
    // Square images (all MNIST-family sets); the input size is rows * cols.
    let side = (run.config.settings.model.input as f64).sqrt().round() as usize;
    (side, side)
}

pub fn plot(args: PlotArgs) -> Result<(), AppError> {
    let run = LoadedRun::open(&args.run)?;
    if run.config.settings.model.latent < 2 {
        return Err(AppError::Usage(format!(
            "{}: this model has 1 latent dimension; plot draws a latent plane and needs 2 or more",
            run.dir.display()
        )));
    }
    let data = load_data(&run.config.settings)?;
    let (codes, labels) = codes_of(&run, &data, SplitName::Test)?;
    let rows = run.metrics()?;
    let written = output::draw_run(
        &VisualRun {
            model: &run.model,
            device: &run.device,
            kind: run.config.settings.model.kind,
            run_dir: &run.dir,
            epoch: run.epoch,
            steps_per_epoch: run.config.settings.steps_per_epoch(data.train.len()),
            codes: &codes.mu,
            latent: codes.latent,
            rows: &rows,
        },
        &data,
        &labels,
        &args.figures.options(),
        &mut crate::train::Timings::default(),
    )?;
    for path in written {
        say!("{}", path.display())?;
    }
    Ok(())
}

pub fn encode(args: EncodeArgs) -> Result<(), AppError> {
    refuse_existing(&args.out)?;
    let run = LoadedRun::open(&args.run)?;
    let data = load_data(&run.config.settings)?;
    let (codes, labels) = codes_of(&run, &data, args.split)?;
    run::write_latents(
        &args.out,
        &Latents {
            labels: &labels,
            codes: &codes.mu,
            sigmas: codes.sigma.as_deref(),
            latent: codes.latent,
        },
    )?;
    say!("{}", args.out.display())?;
    Ok(())
}

pub fn decode_command(args: DecodeArgs) -> Result<(), AppError> {
    refuse_existing(&args.out)?;
    let run = LoadedRun::open(&args.run)?;
    let points: Vec<Vec<f64>> = args.z.iter().map(|p| p.0.clone()).collect();
    let images = decode(&run, &points)?;
    if args
        .out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
    {
        run::write_new_file(&args.out, pixels_csv(&points, &images).as_bytes())?;
    } else {
        save_montage(&args.out, &images, image_size(&run), points.len(), 8)?;
    }
    say!("{}", args.out.display())?;
    Ok(())
}

/// One row per point: its coordinates (z1,z2,..), then every pixel's intensity, exact to f32.
fn pixels_csv(points: &[Vec<f64>], images: &[Vec<f32>]) -> String {
    let pixels = images.first().map_or(0, Vec::len);
    let latent = points.first().map_or(0, Vec::len);
    let mut header: Vec<String> = (1..=latent).map(|d| format!("z{d}")).collect();
    header.extend((0..pixels).map(|k| format!("p{k}")));
    let mut out = header.join(",");
    out.push('\n');
    for (p, img) in points.iter().zip(images) {
        let cells: Vec<String> = p
            .iter()
            .map(f64::to_string)
            .chain(img.iter().map(f32::to_string))
            .collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

pub fn sample(args: SampleArgs) -> Result<(), AppError> {
    refuse_existing(&args.out)?;
    let run = LoadedRun::open(&args.run)?;
    let latent = run.config.settings.model.latent;
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let mut draw = || -> f64 { StandardNormal.sample(&mut rng) };
    let n = args.n as usize;
    let (mean, std) = if run.config.settings.model.kind.is_variational() {
        (vec![0.0; latent], vec![1.0; latent])
    } else {
        // An AE has no prior: draw from a Gaussian fitted to its test codes instead.
        let data = load_data(&run.config.settings)?;
        let (codes, _) = codes_of(&run, &data, SplitName::Test)?;
        let (mean, std) = mean_std(&codes.mu, latent);
        let list = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        eprintln!(
            "note: an AE has no prior; sampling N(mean, std^2) of its test codes, mean ({}), std ({})",
            list(&mean),
            list(&std)
        );
        (mean, std)
    };
    let points: Vec<Vec<f64>> = (0..n)
        .map(|_| (0..latent).map(|d| mean[d] + std[d] * draw()).collect())
        .collect();
    let images = decode(&run, &points)?;
    let per_row = (n as f64).sqrt().ceil() as usize;
    save_montage(&args.out, &images, image_size(&run), per_row, SCALE)?;
    say!("{}", args.out.display())?;
    Ok(())
}

pub fn interpolate(args: InterpolateArgs) -> Result<(), AppError> {
    refuse_existing(&args.out)?;
    let run = LoadedRun::open(&args.run)?;
    let data = load_data(&run.config.settings)?;
    let n_test = data.test.len();
    for (flag, i) in [
        ("--from-index", args.from_index),
        ("--to-index", args.to_index),
    ] {
        if i >= n_test {
            return Err(AppError::Usage(format!(
                "{flag} {i}: the test set has {n_test} images (indices 0-{})",
                n_test - 1
            )));
        }
    }
    let (codes, _) = codes_of(&run, &data, SplitName::Test)?;
    let d = codes.latent;
    let at = |i: usize| -> Vec<f64> {
        codes.mu[d * i..d * (i + 1)]
            .iter()
            .map(|&v| v as f64)
            .collect()
    };
    let (a, b) = (at(args.from_index), at(args.to_index));
    let steps = args.steps as usize;
    let points: Vec<Vec<f64>> = (0..steps)
        .map(|k| {
            let t = k as f64 / (steps - 1) as f64;
            a.iter().zip(&b).map(|(x, y)| x + t * (y - x)).collect()
        })
        .collect();
    let images = decode(&run, &points)?;
    save_montage(&args.out, &images, image_size(&run), steps, SCALE)?;
    say!("{}", args.out.display())?;
    Ok(())
}

/// `export`: the run's weights, PyTorch-named, with what a reader needs to rebuild the model in
/// the file's metadata.
pub fn export(args: ExportArgs) -> Result<(), AppError> {
    refuse_existing(&args.out)?;
    let run = LoadedRun::open(&args.run)?;
    let tensors = run
        .model
        .pytorch_state_dict()
        .map_err(|reason| crate::export::ExportError {
            path: args.out.clone(),
            reason,
        })?;
    let m = &run.config.settings.model;
    let metadata = [
        ("format", "pt".to_string()),
        ("model", m.kind.as_str().to_string()),
        ("input", m.input.to_string()),
        ("hidden", format!("{},{}", m.hidden[0], m.hidden[1])),
        ("latent", m.latent.to_string()),
        ("arch", m.arch.as_str().to_string()),
        ("epoch", run.epoch.to_string()),
        ("latentlab_version", env!("CARGO_PKG_VERSION").to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let bytes = crate::export::write_safetensors(&args.out, &tensors, metadata)?;
    eprintln!(
        "{} tensors, {:.1} MB, PyTorch names and layouts (latentlab export --help shows how to load them)",
        tensors.len(),
        bytes as f64 / 1e6
    );
    say!("{}", args.out.display())?;
    Ok(())
}
