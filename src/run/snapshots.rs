//! `snapshots/`: the test codes at moments of training, from which latent_evolution.gif is
//! drawn. One small CSV per moment, named by the training step, so a resumed run simply
//! writes the same files again and the animation can be redrawn at any time.

use std::path::{Path, PathBuf};

use super::{RunError, write_atomic};

pub const DIR: &str = "snapshots";

/// The test codes after `step` training steps (step 0: the initial weights).
pub struct Snapshot {
    pub step: usize,
    /// `n * 2` values in test-set order.
    pub codes: Vec<f32>,
}

fn path_of(run_dir: &Path, step: usize) -> PathBuf {
    run_dir.join(DIR).join(format!("step-{step:07}.csv"))
}

/// Writes the 2-D codes after `step` steps; higher latent sizes keep no snapshots.
pub fn write_snapshot(run_dir: &Path, step: usize, codes: &[f32]) -> Result<(), RunError> {
    let dir = run_dir.join(DIR);
    std::fs::create_dir_all(&dir).map_err(RunError::io(&dir))?;
    let mut text = String::with_capacity(codes.len() * 12 + 8);
    text.push_str("z1,z2\n");
    for p in codes.chunks_exact(2) {
        text.push_str(&format!("{},{}\n", p[0], p[1]));
    }
    let path = path_of(run_dir, step);
    write_atomic(&path, text.as_bytes()).map_err(RunError::io(&path))
}

/// Every snapshot of the run up to `last_step`, in step order (none if there are none).
pub fn read_snapshots(run_dir: &Path, last_step: usize) -> Result<Vec<Snapshot>, RunError> {
    let dir = run_dir.join(DIR);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let mut steps: Vec<usize> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix("step-")?
                .strip_suffix(".csv")?
                .parse()
                .ok()
        })
        .filter(|&s| s <= last_step)
        .collect();
    steps.sort_unstable();
    steps
        .into_iter()
        .map(|step| {
            let path = path_of(run_dir, step);
            let text = std::fs::read_to_string(&path).map_err(RunError::io(&path))?;
            let corrupt = |reason: String| RunError::Corrupt {
                path: path.clone(),
                reason,
            };
            let mut codes = Vec::new();
            for (i, line) in text.lines().enumerate().skip(1) {
                let mut parts = line.split(',');
                for _ in 0..2 {
                    let v = parts
                        .next()
                        .and_then(|v| v.parse::<f32>().ok())
                        .ok_or_else(|| corrupt(format!("line {} is not z1,z2", i + 1)))?;
                    codes.push(v);
                }
            }
            Ok(Snapshot { step, codes })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_round_trip_in_step_order_and_stop_at_the_last_step() {
        let dir = tempfile::tempdir().unwrap();
        write_snapshot(dir.path(), 940, &[1.5, -2.0]).unwrap();
        write_snapshot(dir.path(), 0, &[0.25, 0.125, 3.0, 4.0]).unwrap();
        write_snapshot(dir.path(), 470, &[1e-8, f32::MAX]).unwrap();
        let all = read_snapshots(dir.path(), 940).unwrap();
        assert_eq!(
            all.iter().map(|s| s.step).collect::<Vec<_>>(),
            [0, 470, 940]
        );
        assert_eq!(all[0].codes, [0.25, 0.125, 3.0, 4.0]);
        assert_eq!(all[1].codes, [1e-8, f32::MAX]);
        assert_eq!(read_snapshots(dir.path(), 500).unwrap().len(), 2);
    }

    #[test]
    fn a_run_without_snapshots_has_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_snapshots(dir.path(), 10).unwrap().is_empty());
    }
}
