//! The one output pipeline: a finished run (or two, compared) turned into the files a person
//! reads: latents.csv, summary.json, the figures, latent_evolution.gif and explorer.html.
//! `train`, `train --resume`, `compare` and `plot` all go through here.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::Device;

use crate::data::Dataset;
use crate::error::AppError;
use crate::explorer;
use crate::model::{AutoEncoder, ModelKind};
use crate::report::figures::{self, FigureOptions, RunFigures};
use crate::report::{Summary, iwae, metrics};
use crate::run::{self, Latents, MetricsRow};
use crate::train::session::{Codes, encode_images};
use crate::train::{Timings, Trained};

/// One model as the explorer shows it: its weights, its kind, its epoch and its test codes.
struct ExplorerInput<'a> {
    pub model: &'a AutoEncoder,
    pub kind: ModelKind,
    pub epoch: usize,
    pub codes: &'a [f32],
}

/// A run whose snapshots are animated.
struct EvolutionInput<'a> {
    pub run_dir: &'a Path,
    pub kind: ModelKind,
    pub dataset: &'a str,
    pub steps_per_epoch: usize,
    /// Snapshots after this step (a later, unfinished epoch's) are left out.
    pub last_step: usize,
}

/// Draws `path` (latent_evolution.gif) from the runs' snapshots; `None` when a run kept none
/// (runs made before snapshots existed, or a latent size other than 2).
fn write_evolution(
    path: &Path,
    runs: &[EvolutionInput],
    labels: &[u8],
) -> Result<Option<PathBuf>, AppError> {
    let mut frames = Vec::new();
    for r in runs {
        let snaps = run::snapshots::read_snapshots(r.run_dir, r.last_step)?;
        if snaps.is_empty() {
            return Ok(None);
        }
        frames.push(snaps);
    }
    let series: Vec<crate::plot::evolution::Series> = runs
        .iter()
        .zip(&frames)
        .map(|(r, f)| crate::plot::evolution::Series {
            name: format!("{} on {}", r.kind.as_str().to_uppercase(), r.dataset),
            axes: r.kind.axis_names(),
            frames: f,
            steps_per_epoch: r.steps_per_epoch,
        })
        .collect();
    Ok(Some(crate::plot::evolution::save_gif(
        path, &series, labels,
    )?))
}

/// Writes `explorer.html` into `dir` for one model or a side-by-side pair; returns its path.
fn write_explorer(
    dir: &Path,
    data: &Dataset,
    models: &[ExplorerInput],
) -> Result<PathBuf, AppError> {
    let path = dir.join("explorer.html");
    let models = models
        .iter()
        .map(|m| {
            let fail = |reason| explorer::ExplorerError {
                path: path.clone(),
                reason,
            };
            Ok(explorer::ExplorerModel {
                kind: m.kind,
                epoch: m.epoch,
                decoder: m.model.decoder.dense_layers().map_err(fail)?,
                deconvs: m.model.decoder.transposed_convs().map_err(fail)?,
                codes: m.codes,
            })
        })
        .collect::<Result<Vec<_>, explorer::ExplorerError>>()?;
    explorer::write(
        &path,
        &explorer::ExplorerPage {
            dataset: &data.name,
            image_size: (data.rows, data.cols),
            labels: &data.test.labels,
            test_images: &data.test.images,
            models,
        },
    )?;
    Ok(path)
}

/// Writes latents.csv, summary.json, the figures, the GIF and the explorer of a run whose
/// epochs are all done; returns where the run's time went, training included.
///
/// Kept whole: the pipeline's steps in their order (encode, latents.csv, summary, figures), each a
/// call.
pub fn finish_run(
    trained: &Trained,
    data: &Dataset,
    figures: &FigureOptions,
) -> Result<Timings, AppError> {
    let Trained {
        session,
        opened: _,
        run_dir,
        rows,
        timings,
    } = trained;
    let mut timings = timings.clone();
    let settings = &session.settings;
    let iwae_note = if settings.model.kind.is_variational() {
        format!(" (IWAE with K={})", settings.iwae_samples)
    } else {
        String::new()
    };
    eprintln!("encoding the data, computing the summary{iwae_note} and drawing the figures...");
    let latent = settings.model.latent;
    // The analysis runs on the CPU whatever the training device: it is a few seconds there,
    // it is the same code for every run, and it spares a software GPU (lavapipe) the kernel
    // compilation and autotuning of a dozen new tensor shapes.
    let cpu = Device::flex();
    let encoding = std::time::Instant::now();
    let model = session.model().valid().to_device(&cpu);
    let test_images = session.test.to_device(&cpu);
    let train_images = session.train.to_device(&cpu);
    let test = encode_images(&model, &test_images, latent)?;
    let train = encode_images(&model, &train_images, latent)?;
    timings.add("encoding", encoding.elapsed().as_secs_f64());
    run::write_latents(
        &run_dir.join("latents.csv"),
        &Latents {
            labels: &session.test.labels,
            codes: &test.mu,
            sigmas: test.sigma.as_deref(),
            latent,
        },
    )?;
    let summary = summarise(
        trained,
        &model,
        &test_images,
        (&test, &train),
        &data.name,
        &mut timings,
    )?;
    run::write_json(&run_dir.join("summary.json"), &summary)?;
    if latent >= 2 {
        let steps_per_epoch = session.steps_per_epoch();
        draw_run(
            &VisualRun {
                model: &model,
                device: &cpu,
                kind: settings.model.kind,
                run_dir,
                epoch: rows.last().map_or(0, |r| r.epoch),
                steps_per_epoch,
                codes: &test.mu,
                latent,
                rows,
            },
            data,
            &session.test.labels,
            figures,
            &mut timings,
        )?;
    }
    Ok(timings)
}

/// summary.json of a finished run: its final losses, and what its test codes (and the
/// training codes, for the kNN vote) say about the latent space.
///
/// Kept whole: it is mostly the `Summary` literal, a field a line, each computed where it is named.
fn summarise(
    trained: &Trained,
    model: &AutoEncoder,
    test_images: &crate::train::session::DeviceSplit,
    (test, train): (&Codes, &Codes),
    dataset: &str,
    timings: &mut Timings,
) -> Result<Summary, AppError> {
    let Trained {
        session,
        opened,
        rows,
        ..
    } = trained;
    let settings = &session.settings;
    let latent = settings.model.latent;
    let last = rows.last();
    let iwae = timings.time("IWAE", || {
        iwae::iwae_log_likelihood(
            model,
            &test_images.rows(0..test_images.len()),
            settings.iwae_samples,
            settings.seed,
        )
    })?;
    let (latent_mean, latent_std) = crate::stats::mean_std(&test.mu, latent);
    let train_seconds: f64 = rows.iter().map(|r| r.seconds).sum();
    let usage = test
        .sigma
        .as_ref()
        .map(|sigma| crate::model::latent_usage(&test.mu, sigma, latent));
    let summary = Summary {
        model: settings.model.kind.as_str().to_string(),
        dataset: dataset.to_string(),
        device: settings.device.as_str().to_string(),
        backend: opened.backend.clone(),
        adapter: opened.adapter.clone(),
        epochs: rows.len(),
        test_recon: last.map_or(f64::NAN, |r| r.test_recon),
        test_kl: last.map_or(f64::NAN, |r| r.test_kl),
        test_loss: last.map_or(f64::NAN, |r| r.test_loss),
        knn5_accuracy: timings.time("kNN", || {
            metrics::knn_accuracy(
                &train.mu,
                &session.train.labels,
                &test.mu,
                &session.test.labels,
                latent,
                5,
            )
        }),
        latent_mean,
        latent_std,
        empty_cell_share: if latent == 2 {
            metrics::empty_cell_share(&test.mu, 20)
        } else {
            f64::NAN
        },
        images_per_sec: rows.len() as f64 * session.train.len() as f64 / train_seconds.max(1e-9),
        train_seconds,
        posterior_sigma_mean: test
            .sigma
            .as_ref()
            .map(|s| crate::stats::mean_std(s, latent).0),
        iwae_log_likelihood: iwae,
        iwae_samples: iwae.map(|_| settings.iwae_samples),
        kl_per_dim: usage.as_ref().map(|u| u.kl_per_dim.clone()),
        mu_variance_per_dim: usage.as_ref().map(|u| u.mu_variance_per_dim.clone()),
        active_units: usage.as_ref().map(|u| u.active_units),
    };
    Ok(summary)
}

/// One trained model, as its figures, animation and explorer show it.
pub struct VisualRun<'a> {
    pub model: &'a AutoEncoder,
    /// Where the model's tensors live (the figures decode grids with it).
    pub device: &'a Device,
    pub kind: ModelKind,
    pub run_dir: &'a Path,
    pub epoch: usize,
    pub steps_per_epoch: usize,
    /// The test codes, `n * latent`.
    pub codes: &'a [f32],
    pub latent: usize,
    pub rows: &'a [MetricsRow],
}

/// A run's figures, latent_evolution.gif and explorer.html, into its own folder; returns the
/// files written.
pub fn draw_run(
    run: &VisualRun,
    data: &Dataset,
    labels: &[u8],
    options: &FigureOptions,
    timings: &mut Timings,
) -> Result<Vec<PathBuf>, AppError> {
    let figs = RunFigures {
        model: run.model,
        device: run.device,
        kind: run.kind,
        dataset: &data.name,
        epoch: run.epoch,
        image_size: (data.rows, data.cols),
        codes: run.codes,
        latent: run.latent,
        labels,
        rows: run.rows,
    };
    let mut written = timings.time("figures", || figures::draw_all(&figs, run.run_dir, options))?;
    if run.latent != 2 {
        // The animation and the page show the latent plane itself; a wider space gets the
        // figures of its two most varied dimensions and its traversal instead.
        eprintln!(
            "note: latent_evolution.gif and explorer.html need --latent 2; this run has {} \
             dimensions: latent_scatter and the grids show the two most varied, \
             latent_traversal every one",
            run.latent
        );
        return Ok(written);
    }
    written.extend(write_animation_and_explorer(
        run.run_dir,
        "latent_evolution.gif",
        data,
        std::slice::from_ref(run),
        timings,
    )?);
    Ok(written)
}

/// The GIF (`gif_name`) of the runs' snapshots, side by side, and the explorer of their models,
/// into `dir`: what a single run and a comparison both end with.
pub fn write_animation_and_explorer(
    dir: &Path,
    gif_name: &str,
    data: &Dataset,
    runs: &[VisualRun],
    timings: &mut Timings,
) -> Result<Vec<PathBuf>, AppError> {
    let evolution: Vec<EvolutionInput> = runs
        .iter()
        .map(|r| EvolutionInput {
            run_dir: r.run_dir,
            kind: r.kind,
            dataset: &data.name,
            steps_per_epoch: r.steps_per_epoch,
            last_step: r.epoch * r.steps_per_epoch,
        })
        .collect();
    let mut written: Vec<PathBuf> = timings
        .time("animation", || {
            write_evolution(&dir.join(gif_name), &evolution, &data.test.labels)
        })?
        .into_iter()
        .collect();
    let explorer: Vec<ExplorerInput> = runs
        .iter()
        .map(|r| ExplorerInput {
            model: r.model,
            kind: r.kind,
            epoch: r.epoch,
            codes: r.codes,
        })
        .collect();
    written.push(timings.time("explorer", || write_explorer(dir, data, &explorer))?);
    Ok(written)
}
