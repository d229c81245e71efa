//! `decoded_grid` and `prior_grid`: images decoded from an even grid of latent points, laid
//! out by position (z1 across, z2 up), each row and column ticked with its latent value.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use statrs::distribution::{ContinuousCDF, Normal};

use super::{FONT_FAMILY, PlotError, err, save_figure};
use crate::model::AutoEncoder;
use crate::stats::percentile_box;

/// Which box of the latent plane a decoded grid spans (`--grid-range`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GridRange {
    /// The 1st-99th percentile box of the test codes (the default: an AE's crowded centre
    /// would otherwise fall into a few cells).
    Percentile,
    /// From the smallest to the largest test code.
    MinMax,
    /// `[z1_lo, z1_hi, z2_lo, z2_hi]`.
    Explicit([f64; 4]),
}

impl std::str::FromStr for GridRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "p1-p99" | "percentile" => Ok(GridRange::Percentile),
            "min-max" => Ok(GridRange::MinMax),
            _ => {
                let v: Vec<f64> = s
                    .split(',')
                    .map(|p| p.trim().parse::<f64>())
                    .collect::<Result<_, _>>()
                    .map_err(|_| GRID_RANGE_HELP.to_string())?;
                match v.as_slice() {
                    [a, b, c, d] if v.iter().all(|x| x.is_finite()) && a < b && c < d => {
                        Ok(GridRange::Explicit([*a, *b, *c, *d]))
                    }
                    _ => Err(GRID_RANGE_HELP.to_string()),
                }
            }
        }
    }
}

impl GridRange {
    /// The box a grid of this range spans, as a figure title or the report names it:
    /// "decoded grid over {this}".
    pub fn describe(self) -> String {
        match self {
            GridRange::Percentile => "the 1st-99th percentile box of the test codes".into(),
            GridRange::MinMax => "the full range of the test codes".into(),
            GridRange::Explicit([a, b, c, d]) => format!("the chosen box z1 {a}..{b}, z2 {c}..{d}"),
        }
    }

    /// Whether two models' grids of this range cover the same part of the plane (an
    /// explicit box) or each its own codes' extent.
    pub fn is_shared(self) -> bool {
        matches!(self, GridRange::Explicit(_))
    }
}

const GRID_RANGE_HELP: &str =
    "give p1-p99, min-max, or four numbers z1_lo,z1_hi,z2_lo,z2_hi with lo < hi, as in -3,3,-2,2";

/// The latent values of a grid's columns (z1, ascending) and rows (z2, ascending).
#[derive(Debug, Clone, PartialEq)]
pub struct GridAxes {
    pub z1: Vec<f64>,
    pub z2: Vec<f64>,
}

impl GridAxes {
    /// `n` evenly spaced values from lo to hi on each axis.
    pub fn even(lo: [f64; 2], hi: [f64; 2], n: usize) -> GridAxes {
        let lin = |a: f64, b: f64| -> Vec<f64> {
            if n == 1 {
                return vec![(a + b) / 2.0];
            }
            (0..n)
                .map(|i| a + (b - a) * i as f64 / (n - 1) as f64)
                .collect()
        };
        GridAxes {
            z1: lin(lo[0], hi[0]),
            z2: lin(lo[1], hi[1]),
        }
    }

    /// The grid over the box `range` picks from the test codes.
    pub fn over_codes(codes: &[f32], range: GridRange, n: usize) -> GridAxes {
        let (lo, hi) = match range {
            GridRange::Percentile => percentile_box(codes, 1.0, 99.0),
            GridRange::MinMax => percentile_box(codes, 0.0, 100.0),
            GridRange::Explicit([a, b, c, d]) => ([a, c], [b, d]),
        };
        GridAxes::even(lo, hi, n)
    }

    /// Standard-normal quantiles at evenly spaced probabilities 0.05..0.95 on both axes:
    /// the classic Kingma-Welling picture of what the prior decodes to.
    pub fn prior(n: usize) -> GridAxes {
        let normal = Normal::standard();
        let q: Vec<f64> = if n == 1 {
            vec![0.0]
        } else {
            (0..n)
                .map(|i| normal.inverse_cdf(0.05 + 0.9 * i as f64 / (n - 1) as f64))
                .collect()
        };
        GridAxes {
            z1: q.clone(),
            z2: q,
        }
    }

    /// The latent point of each cell in display order: row 0 is the top (largest z2),
    /// column 0 the left (smallest z1).
    pub fn points(&self) -> Vec<[f64; 2]> {
        self.z2
            .iter()
            .rev()
            .flat_map(|&y| self.z1.iter().map(move |&x| [x, y]))
            .collect()
    }
}

/// The tick label of a latent value.
pub fn tick_label(v: f64) -> String {
    format!("{v:.2}")
}

impl GridAxes {
    /// The labels drawn under the columns (left to right) and beside the rows (top to
    /// bottom): exactly the coordinates of the points `points` decodes there.
    pub fn tick_labels(&self) -> (Vec<String>, Vec<String>) {
        let cols = self.z1.iter().map(|&v| tick_label(v)).collect();
        let rows = self.z2.iter().rev().map(|&v| tick_label(v)).collect();
        (cols, rows)
    }
}

/// Decodes latent points (full latent vectors, all of one length) to images in [0, 1],
/// `rows * cols` values each.
pub fn decode_points(
    model: &AutoEncoder,
    points: &[Vec<f64>],
    device: &Device,
) -> Result<Vec<Vec<f32>>, String> {
    let n = points.len();
    let latent = points.first().map_or(0, Vec::len);
    let flat: Vec<f32> = points.iter().flatten().map(|&v| v as f32).collect();
    if flat.len() != n * latent {
        return Err("latent points of different lengths".into());
    }
    let z = Tensor::<2>::from_data(TensorData::new(flat, [n, latent]), &device.clone().inner());
    let logits = model.valid().decoder.forward(z);
    let pixels = burn::tensor::activation::sigmoid(logits)
        .try_into_data()
        .map_err(err)?
        .try_into_vec::<f32>()
        .map_err(err)?;
    let per = pixels.len() / n.max(1);
    Ok(pixels
        .chunks_exact(per.max(1))
        .map(|c| c.to_vec())
        .collect())
}

/// A decoded grid ready to draw: `axes.z1.len()` columns by `axes.z2.len()` rows.
pub struct GridFigure {
    pub axes: GridAxes,
    /// One image per cell, in the order of `GridAxes::points`.
    pub images: Vec<Vec<f32>>,
    pub image_size: (usize, usize),
    pub title: String,
    /// The names under the columns and beside the rows: the latent dimensions ("z1", "z2"),
    /// short enough to sit beside the row labels.
    pub axis_names: (String, String),
    /// Tick labels for the columns and the rows (top to bottom) other than their latent
    /// values (a traversal names each row's dimension).
    pub tick_labels: Option<(Vec<String>, Vec<String>)>,
}

impl GridFigure {
    fn cols(&self) -> usize {
        self.axes.z1.len()
    }

    fn rows(&self) -> usize {
        self.axes.z2.len()
    }

    /// Pixels per cell: about 840 pixels for the longer side, never below the image's size.
    fn cell(&self) -> u32 {
        let per = 840 / self.cols().max(self.rows()).max(1) as u32;
        per.max(self.image_size.1 as u32)
    }

    pub fn size(&self) -> (u32, u32) {
        let (w, h) = (
            self.cell() * self.cols() as u32,
            self.cell() * self.rows() as u32,
        );
        (w.max(MIN_WIDTH) + LEFT + RIGHT, h + TOP + BOTTOM)
    }
}

/// A narrow montage (a traversal of a few steps) still leaves room for its title.
const MIN_WIDTH: u32 = 600;

const LEFT: u32 = 95;
const RIGHT: u32 = 25;
const TOP: u32 = 60;
const BOTTOM: u32 = 75;

pub fn save(stem: &Path, fig: &GridFigure) -> Result<Vec<PathBuf>, PlotError> {
    save_figure(
        stem,
        fig.size(),
        |root| draw(root, fig),
        |root| draw(root, fig),
    )
}

pub fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    fig: &GridFigure,
) -> Result<(), String> {
    let (cols, rows) = (fig.cols(), fig.rows());
    let cell = fig.cell();
    let (width, height) = (cell * cols as u32, cell * rows as u32);
    let (w, _) = root.dim_in_pixel();
    let centre = Pos::new(HPos::Center, VPos::Center);
    root.draw(&Text::new(
        fig.title.clone(),
        (w as i32 / 2, 26),
        TextStyle::from((FONT_FAMILY, 22).into_font()).pos(centre),
    ))
    .map_err(err)?;

    let montage = montage(fig, cell);
    let element =
        BitMapElement::with_owned_buffer((LEFT as i32, TOP as i32), (width, height), montage)
            .ok_or("the montage buffer has the wrong size")?;
    root.draw(&element).map_err(err)?;
    root.draw(&Rectangle::new(
        [
            (LEFT as i32, TOP as i32),
            ((LEFT + width) as i32, (TOP + height) as i32),
        ],
        BLACK.stroke_width(1),
    ))
    .map_err(err)?;

    draw_ticks(&root, fig, cell, height)?;
    let y_bottom = (TOP + height) as i32;
    let axis_font = TextStyle::from((FONT_FAMILY, 20).into_font());
    root.draw(&Text::new(
        fig.axis_names.0.clone(),
        ((LEFT + width / 2) as i32, y_bottom + 48),
        axis_font.clone().pos(centre),
    ))
    .map_err(err)?;
    root.draw(&Text::new(
        fig.axis_names.1.clone(),
        (20, (TOP + height / 2) as i32),
        axis_font.pos(centre),
    ))
    .map_err(err)?;
    Ok(())
}

/// The ticks under the columns and beside the rows, with a label on every k-th so that labels
/// never overlap on fine grids.
fn draw_ticks<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    fig: &GridFigure,
    cell: u32,
    height: u32,
) -> Result<(), String> {
    let (cols, rows) = (fig.cols(), fig.rows());
    let every = (62 / cell as usize).max(1);
    let (col_labels, row_labels) = fig
        .tick_labels
        .clone()
        .unwrap_or_else(|| fig.axes.tick_labels());
    let tick_font = TextStyle::from((FONT_FAMILY, 15).into_font());
    let centre_of = |i: usize| (cell as usize * i + cell as usize / 2) as i32;
    let y_bottom = (TOP + height) as i32;
    for (i, label) in col_labels.iter().enumerate().take(cols) {
        let x = LEFT as i32 + centre_of(i);
        root.draw(&PathElement::new([(x, y_bottom), (x, y_bottom + 6)], BLACK))
            .map_err(err)?;
        if i % every == 0 {
            let top_pos = Pos::new(HPos::Center, VPos::Top);
            root.draw(&Text::new(
                label.clone(),
                (x, y_bottom + 9),
                tick_font.clone().pos(top_pos),
            ))
            .map_err(err)?;
        }
    }
    let x_left = LEFT as i32;
    for (i, label) in row_labels.iter().enumerate().take(rows) {
        let y = TOP as i32 + centre_of(i);
        root.draw(&PathElement::new([(x_left - 6, y), (x_left, y)], BLACK))
            .map_err(err)?;
        if i % every == 0 {
            let right_pos = Pos::new(HPos::Right, VPos::Center);
            root.draw(&Text::new(
                label.clone(),
                (x_left - 9, y),
                tick_font.clone().pos(right_pos),
            ))
            .map_err(err)?;
        }
    }
    Ok(())
}

/// The cells as one RGB image, each decoded image scaled to `cell` pixels (nearest neighbour)
/// and shown dark on light, as ink on paper.
fn montage(fig: &GridFigure, cell: u32) -> Vec<u8> {
    let n = fig.cols();
    let (rows, cols) = fig.image_size;
    let side = cell as usize * n;
    let mut buf = vec![0u8; side * cell as usize * fig.rows() * 3];
    for (k, img) in fig.images.iter().enumerate() {
        let (r0, c0) = ((k / n) * cell as usize, (k % n) * cell as usize);
        for py in 0..cell as usize {
            let sy = py * rows / cell as usize;
            for px in 0..cell as usize {
                let sx = px * cols / cell as usize;
                let v = img
                    .get(sy * cols + sx)
                    .copied()
                    .unwrap_or(0.0)
                    .clamp(0.0, 1.0);
                let g = 255 - (v * 255.0).round() as u8;
                let at = ((r0 + py) * side + c0 + px) * 3;
                buf[at..at + 3].copy_from_slice(&[g, g, g]);
            }
        }
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_axes_and_display_order() {
        let axes = GridAxes::even([-1.0, 0.0], [1.0, 4.0], 3);
        assert_eq!(axes.z1, vec![-1.0, 0.0, 1.0]);
        assert_eq!(axes.z2, vec![0.0, 2.0, 4.0]);
        let p = axes.points();
        // Top-left is (smallest z1, largest z2); bottom-right is (largest z1, smallest z2).
        assert_eq!(p[0], [-1.0, 4.0]);
        assert_eq!(p[2], [1.0, 4.0]);
        assert_eq!(p[8], [1.0, 0.0]);
    }

    #[test]
    fn tick_labels_are_the_coordinates_of_the_decoded_points() {
        let axes = GridAxes::even([-2.5, -1.0], [3.0, 7.25], 4);
        let (cols, rows) = axes.tick_labels();
        for (k, p) in axes.points().iter().enumerate() {
            let (r, c) = (k / 4, k % 4);
            assert_eq!(cols[c], tick_label(p[0]), "column {c}");
            assert_eq!(rows[r], tick_label(p[1]), "row {r}");
        }
        assert_eq!(cols[0], "-2.50");
        assert_eq!(rows[0], "7.25", "the top row holds the largest z2");
    }

    #[test]
    fn prior_axes_are_normal_quantiles() {
        let q = GridAxes::prior(10).z1;
        assert!((q[0] + 1.6448536).abs() < 1e-6 && (q[9] - 1.6448536).abs() < 1e-6);
        assert!(q.windows(2).all(|w| w[0] < w[1]));
        assert!((q[4] + q[5]).abs() < 1e-12, "symmetric around 0");
    }

    #[test]
    fn grid_range_parses_the_three_forms() {
        assert_eq!("p1-p99".parse::<GridRange>(), Ok(GridRange::Percentile));
        assert_eq!("min-max".parse::<GridRange>(), Ok(GridRange::MinMax));
        assert_eq!(
            "-3,3,-2,2.5".parse::<GridRange>(),
            Ok(GridRange::Explicit([-3.0, 3.0, -2.0, 2.5]))
        );
        assert!("3,-3,0,1".parse::<GridRange>().is_err());
        assert!("wide".parse::<GridRange>().is_err());
    }
}
