//! Plain image files of decoded digits (decode, sample, interpolate): a grey PNG montage,
//! upscaled so a 28x28 digit is visible, written atomically and never over an existing file.

use std::path::Path;

use image::{GrayImage, Luma};

use crate::run::{RunError, write_new_file};

/// Writes `images` (each `rows * cols` values in [0, 1]) side by side, `per_row` to a row,
/// each pixel drawn as a `scale` x `scale` block, white digits on black as in MNIST.
pub fn save_montage(
    path: &Path,
    images: &[Vec<f32>],
    (rows, cols): (usize, usize),
    per_row: usize,
    scale: usize,
) -> Result<(), RunError> {
    let per_row = per_row.clamp(1, images.len().max(1));
    let grid_rows = images.len().div_ceil(per_row);
    let gap = scale; // one source pixel of black between images
    let (w, h) = (
        per_row * (cols * scale + gap) - gap,
        grid_rows * (rows * scale + gap) - gap,
    );
    let mut out = GrayImage::new(w as u32, h as u32);
    for (k, img) in images.iter().enumerate() {
        let (x0, y0) = (
            (k % per_row) * (cols * scale + gap),
            (k / per_row) * (rows * scale + gap),
        );
        for y in 0..rows * scale {
            for x in 0..cols * scale {
                let v = img[(y / scale) * cols + x / scale].clamp(0.0, 1.0);
                out.put_pixel(
                    (x0 + x) as u32,
                    (y0 + y) as u32,
                    Luma([(v * 255.0).round() as u8]),
                );
            }
        }
    }
    let mut bytes = Vec::new();
    out.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .map_err(|e| RunError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    write_new_file(path, &bytes)
}
