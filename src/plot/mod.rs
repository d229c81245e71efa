//! The figures a person looks at: latent scatter, decoded grids, loss curves.
//!
//! Text is drawn with a DejaVu Sans font compiled into the binary (plotters' `ab_glyph`), so
//! figures look the same on every machine and need no system fonts. Every figure is written
//! as PNG and SVG from one drawing function generic over the backend, then renamed into place.

pub mod curves;
pub mod evolution;
pub mod grid;
pub mod images;
pub mod palette;
pub mod plane;
pub mod scatter;

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;
use thiserror::Error;

static FONT: &[u8] = include_bytes!("fonts/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

/// The family every figure asks for.
pub const FONT_FAMILY: &str = "sans-serif";

#[derive(Debug, Error)]
#[error("{path}: cannot draw the figure: {reason}")]
pub struct PlotError {
    pub path: PathBuf,
    pub reason: String,
}

pub(crate) fn register_font() {
    REGISTER.call_once(|| {
        // The bytes are a valid font compiled in; a failure would only lose the text.
        let _ = plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, FONT);
    });
}

/// Draws a figure of `size` pixels into `<stem>.png` and `<stem>.svg`, each atomically.
pub fn save_figure(
    stem: &Path,
    size: (u32, u32),
    draw_png: impl Fn(DrawingArea<BitMapBackend, plotters::coord::Shift>) -> Result<(), String>,
    draw_svg: impl Fn(DrawingArea<SVGBackend, plotters::coord::Shift>) -> Result<(), String>,
) -> Result<Vec<PathBuf>, PlotError> {
    register_font();
    let png = stem.with_extension("png");
    let svg = stem.with_extension("svg");
    let fail = |path: &Path, reason: String| PlotError {
        path: path.to_path_buf(),
        reason,
    };

    let mut pixels = vec![255u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(&png, e.to_string()))?;
        draw_png(root.clone()).map_err(|e| fail(&png, e))?;
        root.present().map_err(|e| fail(&png, e.to_string()))?;
    }
    let mut encoded = Vec::new();
    image_png(&pixels, size, &mut encoded).map_err(|e| fail(&png, e))?;
    crate::atomic::write_atomic(&png, &encoded).map_err(|e| fail(&png, e.to_string()))?;

    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(&svg, e.to_string()))?;
        draw_svg(root.clone()).map_err(|e| fail(&svg, e))?;
        root.present().map_err(|e| fail(&svg, e.to_string()))?;
    }
    crate::atomic::write_atomic(&svg, text.as_bytes()).map_err(|e| fail(&svg, e.to_string()))?;
    Ok(vec![png, svg])
}

/// Encodes an RGB buffer as PNG in memory, so the file itself can be written atomically.
fn image_png(rgb: &[u8], (w, h): (u32, u32), out: &mut Vec<u8>) -> Result<(), String> {
    use image::ImageEncoder;
    image::codecs::png::PngEncoder::new(out)
        .write_image(rgb, w, h, image::ExtendedColorType::Rgb8)
        .map_err(|e| e.to_string())
}

/// Any plotters error as one line.
pub(crate) fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}
