//! A finished (or interrupted) run opened again: its settings and its model on the CPU, for
//! the commands that read runs (plot, encode, decode, sample, interpolate, compare).

use std::path::{Path, PathBuf};

use burn::tensor::Device;

use super::{MetricsRow, RunConfig, RunError, checkpoint, read_metrics};
use crate::model::AutoEncoder;

pub struct LoadedRun {
    pub dir: PathBuf,
    pub config: RunConfig,
    pub model: AutoEncoder,
    /// The epoch the checkpoint holds.
    pub epoch: usize,
    /// The CPU device the model was loaded onto: reading a run never needs a GPU.
    pub device: Device,
}

impl LoadedRun {
    pub fn open(dir: &Path) -> Result<LoadedRun, RunError> {
        let config = RunConfig::load(dir)?;
        let device = Device::flex();
        let epoch = checkpoint::last_epoch(dir)?;
        let model = checkpoint::load_model(dir, &config.settings.model, &device)?;
        Ok(LoadedRun {
            dir: dir.to_path_buf(),
            config,
            model,
            epoch,
            device,
        })
    }

    /// The metrics rows up to the checkpoint's epoch (none if the file is missing).
    pub fn metrics(&self) -> Result<Vec<MetricsRow>, RunError> {
        let path = self.dir.join("metrics.csv");
        if !path.is_file() {
            return Ok(Vec::new());
        }
        let mut rows = read_metrics(&path)?;
        rows.retain(|r| r.epoch <= self.epoch);
        Ok(rows)
    }
}
