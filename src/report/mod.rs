//! What a finished run leaves for a person: codes, summary numbers and figures.

pub mod compare;
pub mod figures;
pub mod iwae;
pub mod metrics;
pub mod summary;

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::data::Dataset;
use crate::device::OpenedDevice;
use crate::explorer;
use crate::model::{AutoEncoder, ModelKind};
use crate::run::{self, Latents, MetricsRow, RunError};
use crate::train::TrainError;
use crate::train::session::{Session, encode_images};
use burn::module::Module;
use burn::tensor::Device;
pub use figures::FigureOptions;
pub use summary::Summary;

#[derive(Debug, Error)]
pub enum ReportError {
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Plot(#[from] crate::plot::PlotError),
    #[error(transparent)]
    Explorer(#[from] crate::explorer::ExplorerError),
}

/// One model as the explorer shows it: its weights, its kind, its epoch and its test codes.
pub struct ExplorerInput<'a> {
    pub model: &'a AutoEncoder,
    pub kind: ModelKind,
    pub epoch: usize,
    pub codes: &'a [f32],
}

/// A run whose snapshots are animated.
pub struct EvolutionInput<'a> {
    pub run_dir: &'a Path,
    pub kind: ModelKind,
    pub dataset: &'a str,
    pub steps_per_epoch: usize,
    /// Snapshots after this step (a later, unfinished epoch's) are left out.
    pub last_step: usize,
}

/// Draws `path` (latent_evolution.gif) from the runs' snapshots; `None` when a run kept none
/// (runs made before snapshots existed, or a latent size other than 2).
pub fn write_evolution(
    path: &Path,
    runs: &[EvolutionInput],
    labels: &[u8],
) -> Result<Option<PathBuf>, ReportError> {
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
pub fn write_explorer(
    dir: &Path,
    data: &Dataset,
    models: &[ExplorerInput],
) -> Result<PathBuf, ReportError> {
    let path = dir.join("explorer.html");
    let models = models
        .iter()
        .map(|m| {
            let decoder =
                m.model
                    .decoder
                    .dense_layers()
                    .map_err(|reason| explorer::ExplorerError {
                        path: path.clone(),
                        reason,
                    })?;
            Ok(explorer::ExplorerModel {
                kind: m.kind,
                epoch: m.epoch,
                decoder,
                codes: m.codes,
            })
        })
        .collect::<Result<Vec<_>, ReportError>>()?;
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

/// Writes latents.csv, summary.json and the figures of a run whose epochs are all done.
pub fn finish_run(
    session: &Session,
    opened: &OpenedDevice,
    run_dir: &Path,
    data: &Dataset,
    rows: &[MetricsRow],
    figures: &FigureOptions,
) -> Result<(), TrainError> {
    let settings = &session.settings;
    let latent = settings.model.latent;
    // The analysis runs on the CPU whatever the training device: it is a few seconds there,
    // it is the same code for every run, and it spares a software GPU (lavapipe) the kernel
    // compilation and autotuning of a dozen new tensor shapes.
    let cpu = Device::flex();
    let model = session.model().valid().to_device(&cpu);
    let test_images = session.test.to_device(&cpu);
    let train_images = session.train.to_device(&cpu);
    let test = encode_images(&model, &test_images, latent)?;
    let train = encode_images(&model, &train_images, latent)?;
    run::write_latents(
        &run_dir.join("latents.csv"),
        &Latents {
            labels: &session.test.labels,
            codes: &test.mu,
            sigmas: test.sigma.as_deref(),
            latent,
        },
    )?;
    let last = rows.last();
    let iwae = iwae::iwae_log_likelihood(
        &model,
        &test_images.rows(0..test_images.len()),
        settings.iwae_samples,
        settings.seed,
    )?;
    let (latent_mean, latent_std) = metrics::mean_std(&test.mu, latent);
    let train_seconds: f64 = rows.iter().map(|r| r.seconds).sum();
    let summary = Summary {
        model: settings.model.kind.as_str().to_string(),
        dataset: data.name.clone(),
        device: settings.device.as_str().to_string(),
        backend: opened.backend.to_string(),
        adapter: opened.adapter.clone(),
        epochs: rows.len(),
        test_recon: last.map_or(f64::NAN, |r| r.test_recon),
        test_kl: last.map_or(f64::NAN, |r| r.test_kl),
        test_loss: last.map_or(f64::NAN, |r| r.test_loss),
        knn5_accuracy: metrics::knn_accuracy(
            &train.mu,
            &session.train.labels,
            &test.mu,
            &session.test.labels,
            latent,
            5,
        ),
        latent_mean,
        latent_std,
        empty_cell_share: if latent == 2 {
            metrics::empty_cell_share(&test.mu, 20)
        } else {
            f64::NAN
        },
        images_per_sec: rows.len() as f64 * session.train.len() as f64 / train_seconds.max(1e-9),
        train_seconds,
        posterior_sigma_mean: test.sigma.as_ref().map(|s| metrics::mean_std(s, latent).0),
        iwae_log_likelihood: iwae,
        iwae_samples: iwae.map(|_| settings.iwae_samples),
    };
    run::write_json(&run_dir.join("summary.json"), &summary)?;
    if latent == 2 {
        let run = figures::RunFigures {
            model: &model,
            device: &cpu,
            kind: settings.model.kind,
            dataset: &data.name,
            epoch: rows.last().map_or(0, |r| r.epoch),
            image_size: (data.rows, data.cols),
            codes: &test.mu,
            labels: &session.test.labels,
            rows,
        };
        figures::draw_all(&run, run_dir, figures)?;
        let steps_per_epoch = session.steps_per_epoch();
        write_evolution(
            &run_dir.join("latent_evolution.gif"),
            &[EvolutionInput {
                run_dir,
                kind: settings.model.kind,
                dataset: &data.name,
                steps_per_epoch,
                last_step: rows.len() * steps_per_epoch,
            }],
            &session.test.labels,
        )?;
        write_explorer(
            run_dir,
            data,
            &[ExplorerInput {
                model: &model,
                kind: settings.model.kind,
                epoch: run.epoch,
                codes: &test.mu,
            }],
        )?;
    }
    Ok(())
}
