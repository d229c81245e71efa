//! What a training run needs, free of the command line: the CLI builds it, the trainer reads
//! it, and `config.json` stores it so that `--resume` continues with the very same settings.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::data::DatasetName;
use crate::device::DeviceChoice;
use crate::model::ModelConfig;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSettings {
    pub model: ModelConfig,
    pub device: DeviceChoice,
    pub dataset: DatasetName,
    /// The folder holding the four IDX files.
    pub data_dir: PathBuf,
    /// Where a known set's missing files are fetched from (default: the set's own mirror).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<String>,
    pub epochs: usize,
    pub batch_size: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// Weight of the KL term (VAE); 1 gives the ELBO.
    pub beta: f64,
    /// Seeds the weights, the shuffles and the VAE's noise; same seed, same device, same result.
    pub seed: u64,
    /// Use only the first N training images.
    pub train_limit: Option<usize>,
    /// Samples per test image for the importance-weighted log-likelihood (VAE).
    pub iwae_samples: usize,
    /// Keep the test codes every N steps; `None`: after every epoch (and before the first).
    #[serde(default)]
    pub snapshot_every: Option<usize>,
}

impl TrainSettings {
    /// Optimisation steps in one epoch over `train_len` images (the last batch may be partial).
    pub fn steps_per_epoch(&self, train_len: usize) -> usize {
        train_len.div_ceil(self.batch_size.max(1))
    }
}
