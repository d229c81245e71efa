//! `latent_evolution.gif`: the test-set scatter after each snapshot of training, on axes that
//! stay fixed for the whole animation, so one sees the codes spread out and settle.

use std::path::{Path, PathBuf};

use plotters::prelude::*;
use rayon::prelude::*;

use super::scatter::{self, ScatterData};
use super::{PlotError, err, register_font};
use crate::run::snapshots::Snapshot;
use crate::stats::percentile_box;

/// One panel's frames (a run; a comparison animates two side by side).
pub struct Series<'a> {
    /// "AE on mnist".
    pub name: String,
    pub axes: (String, String),
    pub frames: &'a [Snapshot],
    pub steps_per_epoch: usize,
}

const PANEL: (u32, u32) = (760, 640);
/// Time per frame; the last frame is held three times as long.
const FRAME_MS: u32 = 600;

/// The axes of a series: the union of every frame's 1st-99th percentile box, with air, so
/// early frames and the last one are all readable on the same scale.
fn fixed_range(series: &Series) -> ([f64; 2], [f64; 2]) {
    let mut lo = [f64::INFINITY; 2];
    let mut hi = [f64::NEG_INFINITY; 2];
    for f in series.frames {
        let (l, h) = percentile_box(&f.codes, 1.0, 99.0);
        for d in 0..2 {
            if l[d].is_finite() && h[d].is_finite() {
                lo[d] = lo[d].min(l[d]);
                hi[d] = hi[d].max(h[d]);
            }
        }
    }
    for d in 0..2 {
        // Also when a bound is NaN (no finite code at all).
        if lo[d].partial_cmp(&hi[d]) != Some(std::cmp::Ordering::Less) {
            (lo[d], hi[d]) = (lo[d].min(0.0) - 1.0, hi[d].max(0.0) + 1.0);
        }
        let pad = (hi[d] - lo[d]) * 0.08;
        lo[d] -= pad;
        hi[d] += pad;
    }
    (lo, hi)
}

fn frame_title(series: &Series, snap: &Snapshot) -> String {
    let epoch = snap.step as f64 / series.steps_per_epoch.max(1) as f64;
    let epoch = if snap.step.is_multiple_of(series.steps_per_epoch.max(1)) {
        format!("{epoch:.0}")
    } else {
        format!("{epoch:.2}")
    };
    format!("{}: epoch {epoch} (step {})", series.name, snap.step)
}

/// Writes the animation to `path` (via a temporary file); frame k shows frame k of every
/// series, or its last frame once a series has no more.
pub fn save_gif(path: &Path, series: &[Series], labels: &[u8]) -> Result<PathBuf, PlotError> {
    register_font();
    let fail = |reason: String| PlotError {
        path: path.to_path_buf(),
        reason,
    };
    let count = series.iter().map(|s| s.frames.len()).max().unwrap_or(0);
    if count == 0 {
        return Err(fail("the run kept no snapshots of its codes".into()));
    }
    let ranges: Vec<_> = series.iter().map(fixed_range).collect();
    let size = (PANEL.0 * series.len() as u32, PANEL.1);
    // Each frame drawn and colour-quantised on its own (the quantising is most of the time),
    // spread over the cores; then written in order. The same frames as plotters' GIF backend
    // writes one by one: its encoder settings, frame by frame.
    let draw = |k: usize| -> Result<gif::Frame<'static>, String> {
        let mut rgb = vec![0u8; size.0 as usize * size.1 as usize * 3];
        {
            let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
            root.fill(&WHITE).map_err(err)?;
            let panels = root.split_evenly((1, series.len()));
            for ((s, area), range) in series.iter().zip(&panels).zip(&ranges) {
                let snap = &s.frames[k.min(s.frames.len() - 1)];
                let data = ScatterData {
                    codes: &snap.codes,
                    labels,
                    title: frame_title(s, snap),
                    axes: s.axes.clone(),
                };
                scatter::draw(area.clone(), &data, *range)?;
            }
            root.present().map_err(err)?;
        }
        let mut frame = gif::Frame::from_rgb_speed(size.0 as u16, size.1 as u16, &rgb, 10);
        frame.delay = ((FRAME_MS + 5) / 10) as u16;
        Ok(frame)
    };
    let frames = (0..count)
        .into_par_iter()
        .map(draw)
        .collect::<Result<Vec<_>, _>>()
        .map_err(fail)?;
    let mut bytes = Vec::new();
    {
        let size = (size.0 as u16, size.1 as u16);
        let mut encoder =
            gif::Encoder::new(&mut bytes, size.0, size.1, &[]).map_err(|e| fail(err(e)))?;
        encoder
            .set_repeat(gif::Repeat::Infinite)
            .map_err(|e| fail(err(e)))?;
        // The last frame is repeated so the settled state stays on screen a while.
        for frame in frames.iter().chain([&frames[count - 1]; 2]) {
            encoder.write_frame(frame).map_err(|e| fail(err(e)))?;
        }
    }
    crate::atomic::write_atomic(path, &bytes).map_err(|e| fail(e.to_string()))?;
    Ok(path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_axes_hold_every_frame() {
        let small = Snapshot {
            step: 0,
            codes: vec![0.0, 0.0, 0.1, 0.1],
        };
        let wide = Snapshot {
            step: 10,
            codes: vec![-5.0, -1.0, 5.0, 3.0],
        };
        let frames = [small, wide];
        let s = Series {
            name: "AE".into(),
            axes: ("z1".into(), "z2".into()),
            frames: &frames,
            steps_per_epoch: 10,
        };
        let (lo, hi) = fixed_range(&s);
        assert!(lo[0] < -4.8 && hi[0] > 4.8 && lo[1] < -0.9 && hi[1] > 2.9);
        assert_eq!(frame_title(&s, &frames[1]), "AE: epoch 1 (step 10)");
    }

    #[test]
    fn a_gif_has_one_frame_per_snapshot_and_holds_the_last() {
        let frames: Vec<Snapshot> = (0..3)
            .map(|k| Snapshot {
                step: 5 * k,
                codes: vec![k as f32, 1.0, -(k as f32), -1.0],
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latent_evolution.gif");
        let series = [Series {
            name: "VAE on test".into(),
            axes: ("z1 (mu)".into(), "z2 (mu)".into()),
            frames: &frames,
            steps_per_epoch: 5,
        }];
        save_gif(&path, &series, &[1, 7]).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let mut options = gif::DecodeOptions::new();
        options.set_color_output(gif::ColorOutput::RGBA);
        let mut decoder = options.read_info(file).unwrap();
        assert_eq!((decoder.width(), decoder.height()), (760, 640));
        let mut n = 0;
        while decoder.read_next_frame().unwrap().is_some() {
            n += 1;
        }
        assert_eq!(n, 3 + 2);
        // Nothing but the GIF is left in the folder.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
