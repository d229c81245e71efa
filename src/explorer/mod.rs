//! `explorer.html`: one self-contained page where a student points at the latent plane and
//! sees the digit that lives there.
//!
//! The page carries everything it needs, so it opens from a file with no server and no
//! network: the test codes and labels, the test images as one PNG atlas (the hover view), and
//! each model's decoder weights, which a few lines of JavaScript multiply out on every mouse
//! move. Weights travel as float32 exactly as Burn holds them, so the page decodes what
//! `latentlab decode` decodes (the browser test holds the two to 1e-4).

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Serialize;
use thiserror::Error;

use crate::model::{ConvLayer, DenseLayer, ModelKind};
use crate::plot::scatter::padded_range;

const TEMPLATE: &str = include_str!("page.html");
const SCRIPT: &str = include_str!("explorer.js");
const STYLE: &str = include_str!("explorer.css");
/// Test images per row of the hover atlas.
const ATLAS_COLUMNS: usize = 100;

#[derive(Debug, Error)]
#[error("{path}: cannot write the explorer: {reason}")]
pub struct ExplorerError {
    pub path: PathBuf,
    pub reason: String,
}

/// One model as the page shows it.
pub struct ExplorerModel<'a> {
    pub kind: ModelKind,
    /// The epoch its weights come from.
    pub epoch: usize,
    pub decoder: Vec<DenseLayer>,
    /// `--arch conv`: the transposed convolutions after `decoder`; empty for an MLP.
    pub deconvs: Vec<ConvLayer>,
    /// Test codes, `n * 2` (mu for the VAE), in the order of `ExplorerPage::labels`.
    pub codes: &'a [f32],
}

/// Everything the page shows: one model, or two side by side (a comparison).
pub struct ExplorerPage<'a> {
    pub dataset: &'a str,
    /// (rows, cols) of an image.
    pub image_size: (usize, usize),
    pub labels: &'a [u8],
    /// The test images, `n * rows * cols` bytes, ink high (as in the IDX files).
    pub test_images: &'a [u8],
    pub models: Vec<ExplorerModel<'a>>,
}

#[derive(Serialize)]
struct PageData {
    title: String,
    dataset: String,
    rows: usize,
    cols: usize,
    count: usize,
    labels: String,
    atlas: String,
    atlas_columns: usize,
    models: Vec<ModelData>,
}

#[derive(Serialize)]
struct ModelData {
    name: String,
    kind: &'static str,
    epoch: usize,
    axes: [String; 2],
    codes: String,
    lo: [f64; 2],
    hi: [f64; 2],
    layers: Vec<LayerData>,
    /// `--arch conv`: the transposed convolutions after the dense layers; empty for an MLP.
    deconvs: Vec<LayerData>,
}

#[derive(Serialize)]
struct LayerData {
    inputs: usize,
    outputs: usize,
    weight: String,
    bias: String,
}

/// Writes the page to `path` (atomically) and returns its size in bytes.
pub fn write(path: &Path, page: &ExplorerPage) -> Result<u64, ExplorerError> {
    let fail = |reason: String| ExplorerError {
        path: path.to_path_buf(),
        reason,
    };
    let html = render(page).map_err(fail)?;
    crate::atomic::write_atomic(path, html.as_bytes()).map_err(|e| fail(e.to_string()))?;
    Ok(html.len() as u64)
}

/// The page as one string of HTML.
///
/// Kept whole: the page's data, built field by field in the order the page reads it.
pub fn render(page: &ExplorerPage) -> Result<String, String> {
    let (rows, cols) = page.image_size;
    let count = page.labels.len();
    if page.test_images.len() != count * rows * cols {
        return Err(format!(
            "{} test images of {rows}x{cols} pixels do not match {count} labels",
            page.test_images.len() / (rows * cols).max(1)
        ));
    }
    let names: Vec<String> = page
        .models
        .iter()
        .map(|m| m.kind.as_str().to_uppercase())
        .collect();
    let models = page
        .models
        .iter()
        .map(|m| {
            if m.codes.len() != 2 * count {
                return Err(format!(
                    "{} codes for {count} test images: the explorer needs a 2-D latent",
                    m.codes.len()
                ));
            }
            let (lo, hi) = padded_range(m.codes);
            let (z1, z2) = m.kind.axis_names();
            Ok(ModelData {
                name: m.kind.as_str().to_uppercase(),
                kind: m.kind.as_str(),
                epoch: m.epoch,
                axes: [z1, z2],
                codes: floats(m.codes),
                lo,
                hi,
                layers: m
                    .decoder
                    .iter()
                    .map(|l| layer_data(l.inputs, l.outputs, &l.weight, &l.bias))
                    .collect(),
                deconvs: m
                    .deconvs
                    .iter()
                    .map(|c| layer_data(c.inputs, c.outputs, &c.weight, &c.bias))
                    .collect(),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let data = PageData {
        title: format!(
            "latentlab explorer: {} on {}",
            names.join(" vs "),
            page.dataset
        ),
        dataset: page.dataset.to_string(),
        rows,
        cols,
        count,
        labels: BASE64.encode(page.labels),
        atlas: BASE64.encode(atlas_png(page.test_images, count, rows, cols)?),
        atlas_columns: ATLAS_COLUMNS,
        models,
    };
    let json = serde_json::to_string(&data).map_err(|e| e.to_string())?;
    // Inside a <script> element only "</" can end it early; "<\/" is the same JSON string.
    let json = json.replace("</", "<\\/");
    Ok(TEMPLATE
        .replace("{{TITLE}}", &html_escape(&data.title))
        .replace("{{STYLE}}", STYLE)
        .replace("{{SCRIPT}}", SCRIPT)
        .replace("{{DATA}}", &json))
}

/// A dense layer or a transposed convolution as the page reads it: sizes, then its floats.
fn layer_data(inputs: usize, outputs: usize, weight: &[f32], bias: &[f32]) -> LayerData {
    LayerData {
        inputs,
        outputs,
        weight: floats(weight),
        bias: floats(bias),
    }
}

/// float32 little-endian, base64: exact, and a third of the size of decimal text.
fn floats(values: &[f32]) -> String {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    BASE64.encode(bytes)
}

/// All test images in one greyscale PNG, dark ink on white like the figures, `ATLAS_COLUMNS`
/// per row: the browser draws a 28x28 cut of it, and PNG packs MNIST tighter than raw bytes.
/// zlib's default level: its best took 1.3 s for the 10,000 test images (three times in a
/// `compare`) to save 3 KB of the page's 5.6 MB.
fn atlas_png(images: &[u8], count: usize, rows: usize, cols: usize) -> Result<Vec<u8>, String> {
    use image::ImageEncoder;
    let per_row = ATLAS_COLUMNS.min(count.max(1));
    let width = per_row * cols;
    let height = count.div_ceil(per_row).max(1) * rows;
    let mut pixels = vec![255u8; width * height];
    for (i, img) in images.chunks_exact(rows * cols).enumerate() {
        let (x0, y0) = ((i % per_row) * cols, (i / per_row) * rows);
        for r in 0..rows {
            for c in 0..cols {
                pixels[(y0 + r) * width + x0 + c] = 255 - img[r * cols + c];
            }
        }
    }
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new_with_quality(
        &mut out,
        image::codecs::png::CompressionType::Default,
        image::codecs::png::FilterType::Adaptive,
    )
    .write_image(
        &pixels,
        width as u32,
        height as u32,
        image::ExtendedColorType::L8,
    )
    .map_err(|e| e.to_string())?;
    Ok(out)
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_page(codes: &[f32]) -> (Vec<u8>, Vec<u8>, Vec<DenseLayer>) {
        let labels = vec![3u8; codes.len() / 2];
        let images = vec![0u8; labels.len() * 4];
        let layer = DenseLayer {
            inputs: 2,
            outputs: 4,
            weight: vec![0.5; 8],
            bias: vec![0.0; 4],
        };
        (labels, images, vec![layer])
    }

    #[test]
    fn the_page_is_self_contained_and_carries_the_data() {
        let codes = [0.0f32, 1.0, -1.0, 2.0];
        let (labels, images, decoder) = tiny_page(&codes);
        let page = ExplorerPage {
            dataset: "mnist </script>",
            image_size: (2, 2),
            labels: &labels,
            test_images: &images,
            models: vec![ExplorerModel {
                kind: ModelKind::Ae,
                epoch: 3,
                decoder,
                deconvs: Vec::new(),
                codes: &codes,
            }],
        };
        let html = render(&page).unwrap();
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(!html.contains("{{"), "a placeholder was left");
        // No fetches: nothing is loaded from anywhere but the page itself.
        for needle in ["http://", "https://", "src=\"", "fetch("] {
            assert!(
                !html.contains(needle),
                "the page refers outside itself: {needle}"
            );
        }
        // The dataset name cannot close the data script early.
        assert_eq!(html.matches("</script>").count(), 2);
        assert!(html.contains(&floats(&codes)));
    }

    #[test]
    fn codes_of_a_wider_latent_are_refused() {
        let codes = [0.0f32; 6];
        let (labels, images, decoder) = tiny_page(&codes[..4]);
        let page = ExplorerPage {
            dataset: "mnist",
            image_size: (2, 2),
            labels: &labels,
            test_images: &images,
            models: vec![ExplorerModel {
                kind: ModelKind::Vae,
                epoch: 1,
                decoder,
                deconvs: Vec::new(),
                codes: &codes,
            }],
        };
        assert!(render(&page).unwrap_err().contains("2-D latent"));
    }

    #[test]
    fn floats_are_little_endian_base64() {
        assert_eq!(floats(&[1.0]), BASE64.encode([0, 0, 128, 63]));
    }
}
