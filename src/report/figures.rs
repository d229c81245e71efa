//! The figures of one run, drawn from its model, its test codes and its metrics.

use std::path::{Path, PathBuf};

use burn::tensor::Device;

use super::ReportError;
use crate::model::{AutoEncoder, ModelKind};
use crate::plot::grid::{GridAxes, GridFigure, GridRange, decode_points};
use crate::plot::plane::LatentPlane;
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
    /// Test codes, `n * latent` (mu for the VAE).
    pub codes: &'a [f32],
    pub latent: usize,
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

/// Draws latent_scatter, decoded_grid, prior_grid (VAE) and loss_curves into `dir`, and, for
/// a latent space of more than two dimensions, latent_traversal. Beyond two dimensions the
/// scatter and the grids show the plane of the two most varied dimensions (`LatentPlane`).
pub fn draw_all(
    run: &RunFigures,
    dir: &Path,
    opts: &FigureOptions,
) -> Result<Vec<PathBuf>, ReportError> {
    let mut written = Vec::new();
    let plane = LatentPlane::most_active(run.codes, run.latent);
    let shown = plane.note().map_or(String::new(), |n| format!(" ({n})"));
    let flat = plane.project(run.codes);
    written.extend(scatter::save(
        &dir.join("latent_scatter"),
        &ScatterData {
            codes: &flat,
            labels: run.labels,
            title: format!("{}: test-set latent codes{shown}", run.name()),
            axes: plane.axis_names(run.kind),
        },
    )?);

    let range_note = format!("over {}", opts.grid_range.describe());
    let axes = GridAxes::over_codes(&flat, opts.grid_range, opts.grid_size);
    written.extend(decoded_grid(
        run,
        dir,
        "decoded_grid",
        (&plane, "at their mean"),
        axes,
        &range_note,
    )?);
    if run.kind.is_variational() {
        let axes = GridAxes::prior(opts.grid_size);
        written.extend(decoded_grid(
            run,
            dir,
            "prior_grid",
            (&plane.at_zero(), "at 0"),
            axes,
            "at N(0,1) quantiles 5%-95%",
        )?);
    }
    if run.latent > 2 {
        written.extend(traversal(run, dir, &plane)?);
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
    (plane, held): (&LatentPlane, &str),
    axes: GridAxes,
    note: &str,
) -> Result<Vec<PathBuf>, ReportError> {
    let path = dir.join(stem);
    let n = axes.z1.len();
    let images =
        decode_points(run.model, &plane.lift(&axes.points()), run.device).map_err(|reason| {
            PlotError {
                path: path.with_extension("png"),
                reason,
            }
        })?;
    let [a, b] = plane.dims;
    let fig = GridFigure {
        axes,
        images,
        image_size: run.image_size,
        title: format!("{}: {n}x{n} decoded {note}", run.name()),
        // Beyond two dimensions the column axis says where the rest of the code was held (the
        // title has no room left for it).
        axis_names: (
            match plane.latent() {
                2 => format!("z{}", a + 1),
                l => format!("z{}   (the other {} dimensions {held})", a + 1, l - 2),
            },
            format!("z{}", b + 1),
        ),
        tick_labels: None,
    };
    Ok(grid::save(&path, &fig)?)
}

/// Steps of a traversal, from -3 to +3 sigma, one per sigma.
const TRAVERSAL_STEPS: usize = 7;

/// `latent_traversal`: one row per latent dimension, swept from -3 to +3 sigma while the
/// others stay put. A VAE is swept over its prior, N(0, 1), the others at 0; an AE has no
/// prior, so each dimension is swept over its test codes' mean +- 3 standard deviations, the
/// others at their means. A row that does not change is a dimension the decoder ignores.
///
/// Kept whole: the sweep, its decoding and its figure; the sweep's rule reads best beside its
/// labels.
fn traversal(
    run: &RunFigures,
    dir: &Path,
    plane: &LatentPlane,
) -> Result<Vec<PathBuf>, ReportError> {
    let path = dir.join("latent_traversal");
    let latent = run.latent;
    let (mean, std) = crate::stats::mean_std(run.codes, latent);
    let prior = run.kind.is_variational();
    let offsets: Vec<f64> = (0..TRAVERSAL_STEPS)
        .map(|k| -3.0 + 6.0 * k as f64 / (TRAVERSAL_STEPS - 1) as f64)
        .collect();
    let base = if prior {
        vec![0.0; latent]
    } else {
        mean.clone()
    };
    let mut points = Vec::with_capacity(latent * offsets.len());
    for d in 0..latent {
        for &o in &offsets {
            let mut z = base.clone();
            z[d] = if prior { o } else { mean[d] + o * std[d] };
            points.push(z);
        }
    }
    let images = decode_points(run.model, &points, run.device).map_err(|reason| PlotError {
        path: path.with_extension("png"),
        reason,
    })?;
    let [a, b] = plane.dims;
    let rows: Vec<String> = (0..latent)
        .map(|d| {
            let mark = if d == a || d == b { "*" } else { "" };
            format!("{mark}z{}", d + 1)
        })
        .collect();
    let cols: Vec<String> = offsets.iter().map(|o| format!("{o:+.0}")).collect();
    let (sweep, unit) = if prior {
        ("traversal over N(0,1), others at 0", "prior sigma")
    } else {
        (
            "traversal over mean +- 3 std of the codes",
            "std of the codes",
        )
    };
    let fig = GridFigure {
        // Placeholder values: the cells are laid out by these counts, labelled by `tick_labels`.
        axes: GridAxes {
            z1: offsets.clone(),
            z2: (0..latent).map(|d| d as f64).collect(),
        },
        images,
        image_size: run.image_size,
        title: format!("{}: {sweep}", run.name()),
        axis_names: (
            format!("{unit} (* marks the dimensions of the scatter)"),
            "dim".into(),
        ),
        tick_labels: Some((cols, rows)),
    };
    Ok(grid::save(&path, &fig)?)
}
