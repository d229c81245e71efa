//! `latent_scatter`: the test set's codes, one colour per digit.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::{FONT_FAMILY, PlotError, err, palette, save_figure};

pub const SIZE: (u32, u32) = (1000, 820);

/// What a scatter shows; codes are `n * 2` values.
pub struct ScatterData<'a> {
    pub codes: &'a [f32],
    pub labels: &'a [u8],
    pub title: String,
    /// Axis names: "z1" for the AE, "z1 (mu)" for the VAE.
    pub axes: (String, String),
}

/// A box around all codes with 4% of air on each side.
pub fn padded_range(codes: &[f32]) -> ([f64; 2], [f64; 2]) {
    let mut lo = [f64::INFINITY; 2];
    let mut hi = [f64::NEG_INFINITY; 2];
    for p in codes.chunks_exact(2) {
        for d in 0..2 {
            lo[d] = lo[d].min(p[d] as f64);
            hi[d] = hi[d].max(p[d] as f64);
        }
    }
    for d in 0..2 {
        if !lo[d].is_finite() || !hi[d].is_finite() {
            (lo[d], hi[d]) = (-1.0, 1.0);
        }
        let pad = ((hi[d] - lo[d]) * 0.04).max(1e-3);
        lo[d] -= pad;
        hi[d] += pad;
    }
    (lo, hi)
}

pub fn save(stem: &Path, data: &ScatterData) -> Result<Vec<PathBuf>, PlotError> {
    let range = padded_range(data.codes);
    save_figure(
        stem,
        SIZE,
        |root| draw(root, data, range),
        |root| draw(root, data, range),
    )
}

/// Draws on fixed axes `range` (the evolution animation keeps them fixed across frames).
pub fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    data: &ScatterData,
    (lo, hi): ([f64; 2], [f64; 2]),
) -> Result<(), String> {
    let (w, _) = root.dim_in_pixel();
    let (plot_area, legend_area) = root.split_horizontally(w - 110);
    let mut chart = ChartBuilder::on(&plot_area)
        .caption(&data.title, (FONT_FAMILY, 24))
        .margin(12)
        .x_label_area_size(50)
        .y_label_area_size(65)
        .build_cartesian_2d(lo[0]..hi[0], lo[1]..hi[1])
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(&data.axes.0)
        .y_desc(&data.axes.1)
        .axis_desc_style((FONT_FAMILY, 20))
        .label_style((FONT_FAMILY, 16))
        .light_line_style(RGBColor(235, 235, 235))
        .bold_line_style(RGBColor(215, 215, 215))
        .draw()
        .map_err(err)?;

    // A random drawing order, so no digit is buried under the ones drawn after it.
    let mut order: Vec<usize> = (0..data.labels.len()).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(0));
    // Fixed axes may leave a few codes outside (an animation's early frames); those are not
    // drawn, rather than drawn over the axes.
    let inside = |p: &(f64, f64)| (lo[0]..=hi[0]).contains(&p.0) && (lo[1]..=hi[1]).contains(&p.1);
    chart
        .draw_series(
            order
                .iter()
                .map(|&i| (i, (data.codes[2 * i] as f64, data.codes[2 * i + 1] as f64)))
                .filter(|(_, p)| inside(p))
                .map(|(i, p)| Circle::new(p, 2, palette::digit(data.labels[i]).mix(0.65).filled())),
        )
        .map_err(err)?;

    draw_legend(&legend_area)
}

fn draw_legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>) -> Result<(), String> {
    let (_, h) = area.dim_in_pixel();
    let top = h as i32 / 2 - 150;
    area.draw(&Text::new("digit", (18, top), (FONT_FAMILY, 20)))
        .map_err(err)?;
    for d in 0..10u8 {
        let y = top + 40 + 28 * d as i32;
        area.draw(&Circle::new((28, y), 7, palette::digit(d).filled()))
            .map_err(err)?;
        area.draw(&Text::new(d.to_string(), (44, y - 9), (FONT_FAMILY, 18)))
            .map_err(err)?;
    }
    Ok(())
}
