//! The AE-vs-VAE comparison: measuring two finished runs on the same test set, and writing
//! the side-by-side figures, `comparison.json` and `report.md`. What the report says is
//! `prose`: every sentence generated from measured numbers.

mod prose;

use std::path::{Path, PathBuf};

use serde::Serialize;

pub use prose::{
    kl_paragraph, latent_usage_sentence, observations, report_markdown, setup_sentence,
    usage_by_epoch,
};

use super::summary::Summary;
use super::{FigureOptions, ReportError, metrics};
use crate::config::TrainSettings;
use crate::data::Dataset;
use crate::plot::grid::{self, GridAxes, GridFigure, GridRange, decode_points};
use crate::plot::plane::LatentPlane;
use crate::plot::scatter::{self, ScatterData};
use crate::plot::{PlotError, save_figure};
use crate::run::{self, LoadedRun, MetricsRow, RunError};
use crate::train::session::{Codes, DeviceSplit, encode_images};

/// One side of the comparison, with everything measured on it.
pub struct Side {
    pub run_dir: PathBuf,
    /// The run's own settings, so the report says what the two runs share and what not.
    pub settings: TrainSettings,
    pub summary: Summary,
    pub codes: Codes,
    pub grid: GridFigure,
    /// Mean and largest absolute pixel step between neighbouring grid cells.
    pub roughness: (f64, f64),
    /// The course's "sum -log sigma + sigma^2 + mu^2" on the test codes, nats per image (VAE).
    pub course_kl: Option<f64>,
    /// The box the grid spans (`--grid-range`), which the report's wording follows.
    pub range: GridRange,
    /// metrics.csv: what each epoch measured.
    pub rows: Vec<MetricsRow>,
}

#[derive(Serialize)]
struct ComparisonJson<'a> {
    ae_run: &'a Path,
    vae_run: &'a Path,
    ae: &'a Summary,
    vae: &'a Summary,
    ae_grid_roughness: (f64, f64),
    vae_grid_roughness: (f64, f64),
    vae_course_kl: Option<f64>,
}

/// Measures one finished run on the test set of `data`.
pub fn measure(run: &LoadedRun, data: &Dataset, opts: &FigureOptions) -> Result<Side, ReportError> {
    let summary_path = run.dir.join("summary.json");
    let text = std::fs::read_to_string(&summary_path).map_err(|_| {
        ReportError::Unfinished(format!(
            "{}: the run has no summary.json (unfinished?); finish it with latentlab train --resume {}",
            run.dir.display(),
            run.dir.display()
        ))
    })?;
    let summary: Summary = serde_json::from_str(&text).map_err(|e| RunError::Corrupt {
        path: summary_path,
        reason: e.to_string(),
    })?;
    let test = DeviceSplit::upload(&data.test, data.pixels(), &run.device);
    let codes = encode_images(&run.model, &test, run.config.settings.model.latent)?;
    let axes = GridAxes::over_codes(&codes.mu, opts.grid_range, opts.grid_size);
    let plane = LatentPlane::most_active(&codes.mu, 2);
    let images =
        decode_points(&run.model, &plane.lift(&axes.points()), &run.device).map_err(|reason| {
            PlotError {
                path: run.dir.clone(),
                reason,
            }
        })?;
    let roughness = metrics::grid_roughness(&images, opts.grid_size);
    let course_kl = codes.sigma.as_ref().map(|s| course_kl(&codes.mu, s));
    let kind = run.config.settings.model.kind.as_str().to_uppercase();
    Ok(Side {
        run_dir: run.dir.clone(),
        settings: run.config.settings.clone(),
        grid: GridFigure {
            axes,
            images,
            image_size: (data.rows, data.cols),
            title: grid_title(&kind, opts.grid_range),
            axis_names: ("z1".into(), "z2".into()),
            tick_labels: None,
        },
        summary,
        codes,
        roughness,
        course_kl,
        range: opts.grid_range,
        rows: run.metrics()?,
    })
}

/// "AE: decoded grid over its 1st-99th percentile box": each model's own box, unless the
/// user chose one box for both.
fn grid_title(kind: &str, range: GridRange) -> String {
    match range {
        GridRange::Percentile => format!("{kind}: decoded grid over its 1st-99th percentile box"),
        GridRange::MinMax => format!("{kind}: decoded grid over its codes' full range"),
        GridRange::Explicit(_) => format!("{kind}: decoded grid over {}", range.describe()),
    }
}

/// Mean over images of sum_i (-log sigma_i + sigma_i^2 + mu_i^2).
fn course_kl(mu: &[f32], sigma: &[f32]) -> f64 {
    let n = mu.len() / 2;
    mu.iter()
        .zip(sigma)
        .map(|(&m, &s)| -(s as f64).ln() + (s as f64).powi(2) + (m as f64).powi(2))
        .sum::<f64>()
        / n.max(1) as f64
}

/// Writes the side-by-side figures, `comparison.json` and `report.md` into `out`.
pub fn write(
    ae: &Side,
    vae: &Side,
    labels: &[u8],
    out: &Path,
) -> Result<Vec<PathBuf>, ReportError> {
    let mut written = scatter_pair(ae, vae, labels, out)?;
    let (gw, gh) = ae.grid.size();
    written.extend(save_figure(
        &out.join("grids_ae_vs_vae"),
        (2 * gw, gh),
        |root| {
            let (l, r) = root.split_horizontally(gw);
            grid::draw(l, &ae.grid)?;
            grid::draw(r, &vae.grid)
        },
        |root| {
            let (l, r) = root.split_horizontally(gw);
            grid::draw(l, &ae.grid)?;
            grid::draw(r, &vae.grid)
        },
    )?);
    let json = ComparisonJson {
        ae_run: &ae.run_dir,
        vae_run: &vae.run_dir,
        ae: &ae.summary,
        vae: &vae.summary,
        ae_grid_roughness: ae.roughness,
        vae_grid_roughness: vae.roughness,
        vae_course_kl: vae.course_kl,
    };
    run::write_json(&out.join("comparison.json"), &json)?;
    let report = report_markdown(ae, vae);
    let path = out.join("report.md");
    run::write_atomic(&path, report.as_bytes()).map_err(RunError::io(&path))?;
    written.push(path);
    Ok(written)
}

/// `scatter_ae_vs_vae`: the two models' test codes side by side, each on its own axes.
fn scatter_pair(
    ae: &Side,
    vae: &Side,
    labels: &[u8],
    out: &Path,
) -> Result<Vec<PathBuf>, ReportError> {
    fn scatter_of<'a>(side: &'a Side, labels: &'a [u8], name: &str) -> ScatterData<'a> {
        ScatterData {
            codes: &side.codes.mu,
            labels,
            title: format!("{name}: test-set codes"),
            axes: if side.codes.sigma.is_some() {
                ("z1 (mu)".into(), "z2 (mu)".into())
            } else {
                ("z1".into(), "z2".into())
            },
        }
    }
    let (a, v) = (scatter_of(ae, labels, "AE"), scatter_of(vae, labels, "VAE"));
    let (ra, rv) = (
        scatter::padded_range(&ae.codes.mu),
        scatter::padded_range(&vae.codes.mu),
    );
    let (w, h) = scatter::SIZE;
    Ok(save_figure(
        &out.join("scatter_ae_vs_vae"),
        (2 * w, h),
        |root| {
            let (l, r) = root.split_horizontally(w);
            scatter::draw(l, &a, ra)?;
            scatter::draw(r, &v, rv)
        },
        |root| {
            let (l, r) = root.split_horizontally(w);
            scatter::draw(l, &a, ra)?;
            scatter::draw(r, &v, rv)
        },
    )?)
}
