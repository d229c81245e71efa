//! `loss_curves`: train and test loss per epoch; for the VAE a second panel with the KL,
//! whose few nats would be a flat line on the scale of the reconstruction.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{FONT_FAMILY, PlotError, err, palette, save_figure};
use crate::run::MetricsRow;

pub const SIZE_ONE: (u32, u32) = (900, 560);
pub const SIZE_TWO: (u32, u32) = (1400, 560);

pub fn save(
    stem: &Path,
    rows: &[MetricsRow],
    title: &str,
    variational: bool,
) -> Result<Vec<PathBuf>, PlotError> {
    let size = if variational { SIZE_TWO } else { SIZE_ONE };
    save_figure(
        stem,
        size,
        |root| draw(root, rows, title, variational),
        |root| draw(root, rows, title, variational),
    )
}

struct Series<'a> {
    name: &'a str,
    values: Vec<(f64, f64)>,
    color: RGBColor,
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    rows: &[MetricsRow],
    title: &str,
    variational: bool,
) -> Result<(), String> {
    let root = root.titled(title, (FONT_FAMILY, 24)).map_err(err)?;
    let pick = |f: fn(&MetricsRow) -> f64| {
        rows.iter()
            .map(|r| (r.epoch as f64, f(r)))
            .collect::<Vec<_>>()
    };
    let mut losses = vec![
        Series {
            name: "train loss",
            values: pick(|r| r.train_loss),
            color: palette::DIGITS[0],
        },
        Series {
            name: if variational {
                "test loss (negative ELBO)"
            } else {
                "test loss (BCE)"
            },
            values: pick(|r| r.test_loss),
            color: palette::DIGITS[1],
        },
    ];
    if !variational {
        return panel(&root, &losses, "nats per image");
    }
    losses.push(Series {
        name: "test reconstruction (BCE)",
        values: pick(|r| r.test_recon),
        color: palette::DIGITS[2],
    });
    let kl = [Series {
        name: "test KL to the prior",
        values: pick(|r| r.test_kl),
        color: palette::DIGITS[3],
    }];
    let (left, right) = root.split_horizontally(SIZE_TWO.0 * 57 / 100);
    panel(&left, &losses, "nats per image")?;
    panel(&right, &kl, "KL, nats per image")
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    series: &[Series],
    y_desc: &str,
) -> Result<(), String> {
    let all = series.iter().flat_map(|s| s.values.iter());
    let (mut x_hi, mut y_lo, mut y_hi) = (1.0f64, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in all.filter(|(_, y)| y.is_finite()) {
        x_hi = x_hi.max(x);
        y_lo = y_lo.min(y);
        y_hi = y_hi.max(y);
    }
    if !y_lo.is_finite() {
        (y_lo, y_hi) = (0.0, 1.0);
    }
    let pad = ((y_hi - y_lo) * 0.08).max(0.5);
    let mut chart = ChartBuilder::on(area)
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0.5..x_hi + 0.5, (y_lo - pad)..(y_hi + pad))
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(y_desc)
        .axis_desc_style((FONT_FAMILY, 19))
        .label_style((FONT_FAMILY, 15))
        .x_labels((x_hi as usize).min(20))
        .x_label_formatter(&|x| format!("{}", x.round() as i64))
        .light_line_style(RGBColor(238, 238, 238))
        .bold_line_style(RGBColor(215, 215, 215))
        .draw()
        .map_err(err)?;
    for s in series {
        let color = s.color;
        chart
            .draw_series(LineSeries::new(
                s.values.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(err)?
            .label(s.name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 22, y)], color.stroke_width(3)));
        chart
            .draw_series(s.values.iter().map(|&p| Circle::new(p, 4, color.filled())))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FONT_FAMILY, 16))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(190, 190, 190))
        .draw()
        .map_err(err)
}
