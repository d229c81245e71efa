//! The figures of one run, drawn from its model, its test codes and its metrics.

use std::path::{Path, PathBuf};

use burn::tensor::Device;

use super::ReportError;
use crate::model::{AutoEncoder, ModelKind};
use crate::plot::grid::{GridAxes, GridFigure, GridRange, decode_points};
use crate::plot::scatter::ScatterData;
use crate::plot::{PlotError, curves, grid, scatter};
use crate::run::MetricsRow;

/// `--grid-range` and `--grid-size`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FigureOptions {
    pub grid_range: GridRange,
    pub grid_size: usize,
}

/// What the figures of a run are drawn from.
pub struct RunFigures<'a> {
    pub model: &'a AutoEncoder,
    pub device: &'a Device,
    pub kind: ModelKind,
    pub dataset: &'a str,
    pub epoch: usize,
    pub image_size: (usize, usize),
    /// Test codes, `n * 2` (mu for the VAE).
    pub codes: &'a [f32],
    pub labels: &'a [u8],
    pub rows: &'a [MetricsRow],
}

impl RunFigures<'_> {
    fn name(&self) -> String {
        format!(
            "{} on {}, epoch {}",
            self.kind.as_str().to_uppercase(),
            self.dataset,
            self.epoch
        )
    }
}

/// Draws latent_scatter, decoded_grid, prior_grid (VAE) and loss_curves into `dir`.
pub fn draw_all(
    run: &RunFigures,
    dir: &Path,
    opts: &FigureOptions,
) -> Result<Vec<PathBuf>, ReportError> {
    let mut written = Vec::new();
    written.extend(scatter::save(
        &dir.join("latent_scatter"),
        &ScatterData {
            codes: run.codes,
            labels: run.labels,
            title: format!("{}: test-set latent codes", run.name()),
            axes: run.kind.axis_names(),
        },
    )?);

    let range_note = format!("over {}", opts.grid_range.describe());
    let axes = GridAxes::over_codes(run.codes, opts.grid_range, opts.grid_size);
    written.extend(decoded_grid(run, dir, "decoded_grid", axes, &range_note)?);
    if run.kind.is_variational() {
        let axes = GridAxes::prior(opts.grid_size);
        written.extend(decoded_grid(
            run,
            dir,
            "prior_grid",
            axes,
            "at N(0,1) quantiles 5%-95%",
        )?);
    }
    written.extend(curves::save(
        &dir.join("loss_curves"),
        run.rows,
        &format!("{}: loss per epoch", run.name()),
        run.kind.is_variational(),
    )?);
    Ok(written)
}

fn decoded_grid(
    run: &RunFigures,
    dir: &Path,
    stem: &str,
    axes: GridAxes,
    note: &str,
) -> Result<Vec<PathBuf>, ReportError> {
    let path = dir.join(stem);
    let n = axes.z1.len();
    let images =
        decode_points(run.model, &axes.points(), run.device).map_err(|reason| PlotError {
            path: path.with_extension("png"),
            reason,
        })?;
    let fig = GridFigure {
        axes,
        images,
        image_size: run.image_size,
        title: format!("{}: {n}x{n} decoded {note}", run.name()),
    };
    Ok(grid::save(&path, &fig)?)
}
