//! What a training run needs, free of the command line: the CLI builds it, the trainer reads
//! it, and `config.json` stores it so that `--resume` continues with the very same settings.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::data::{Binarize, DatasetName};
use crate::device::DeviceChoice;
use crate::model::{ModelConfig, ModelKind};

/// Every default of a training run, in one place: the flags of `train`, `compare` and `bench`
/// show these, `TrainSettings::new` builds from them, and the tests start from them.
pub mod defaults {
    pub use crate::model::autoencoder::{HIDDEN, INPUT, LATENT};
    pub const EPOCHS: usize = 10;
    pub const BATCH_SIZE: usize = 128;
    pub const LR: f64 = 1e-3;
    pub const BETA: f64 = 1.0;
    /// No warm-up: the KL weight is `beta` from the first step.
    pub const KL_WARMUP: usize = 0;
    pub const SEED: u64 = 0;
    pub const IWAE_SAMPLES: usize = 100;
}

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
    /// Epochs over which the KL weight rises linearly, step by step, from 0 to `beta` (the
    /// usual cure for posterior collapse); 0: none. Runs made before it existed had none.
    #[serde(default)]
    pub kl_warmup: usize,
    /// Seeds the weights, the shuffles and the VAE's noise; same seed, same device, same result.
    pub seed: u64,
    /// Use only the first N training images.
    pub train_limit: Option<usize>,
    /// Black-and-white images (the VAE literature's protocol); the test set is then binarised
    /// once. Runs made before it existed had none.
    #[serde(default)]
    pub binarize: Binarize,
    /// Samples per test image for the importance-weighted log-likelihood (VAE).
    pub iwae_samples: usize,
    /// Keep the test codes every N steps; `None`: after every epoch (and before the first).
    #[serde(default)]
    pub snapshot_every: Option<usize>,
    /// On a GPU, replay one captured training step for the epoch's full batches instead of
    /// issuing every step anew (`train::graph`). A choice of this process, not of the run: not
    /// saved, so a resumed run uses it.
    #[serde(skip_serializing, default = "replay_by_default")]
    pub step_graph: bool,
}

fn replay_by_default() -> bool {
    true
}

impl TrainSettings {
    /// The defaults of `defaults` for `kind` on the bundled MNIST, on the CPU.
    pub fn new(kind: ModelKind) -> TrainSettings {
        use defaults::*;
        TrainSettings {
            model: ModelConfig::new(kind),
            device: DeviceChoice::Cpu,
            dataset: DatasetName::Mnist,
            data_dir: PathBuf::from("data").join(DatasetName::Mnist.as_str()),
            mirror: None,
            epochs: EPOCHS,
            batch_size: BATCH_SIZE,
            lr: LR,
            beta: BETA,
            kl_warmup: KL_WARMUP,
            seed: SEED,
            train_limit: None,
            binarize: Binarize::None,
            iwae_samples: IWAE_SAMPLES,
            snapshot_every: None,
            step_graph: true,
        }
    }

    /// The KL weight of training step `step` (counted from 1 over the whole run): `beta`, or
    /// during a warm-up `beta * step / (warm-up steps)`, so that the first step already has a
    /// little KL and the last warm-up step reaches `beta`.
    pub fn beta_at(&self, step: usize, steps_per_epoch: usize) -> f64 {
        let ramp = self.kl_warmup * steps_per_epoch;
        if ramp == 0 || step >= ramp {
            self.beta
        } else {
            self.beta * step as f64 / ramp as f64
        }
    }

    /// Whether the KL weight still rises during `epoch` (a VAE inside its warm-up).
    pub fn warming_up(&self, epoch: usize) -> bool {
        self.model.kind.is_variational() && self.kl_warmup >= epoch
    }

    /// Whether the test codes are kept after training step `step` (counted from 1 over the
    /// whole run) for latent_evolution.gif: every `snapshot_every` steps and after the last
    /// one, or at the end of every epoch.
    pub fn snapshot_due(&self, step: usize, steps_per_epoch: usize) -> bool {
        match self.snapshot_every {
            Some(n) => step.is_multiple_of(n) || step == self.epochs * steps_per_epoch,
            None => step.is_multiple_of(steps_per_epoch),
        }
    }

    /// Optimisation steps in one epoch over `train_len` images (the last batch may be partial).
    pub fn steps_per_epoch(&self, train_len: usize) -> usize {
        train_len.div_ceil(self.batch_size.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kl_weight_rises_linearly_over_the_warm_up_then_stays() {
        let mut s = TrainSettings::new(ModelKind::Vae);
        s.beta = 2.0;
        assert_eq!(
            s.beta_at(1, 100),
            2.0,
            "no warm-up: beta from the first step"
        );
        s.kl_warmup = 2;
        assert_eq!(s.beta_at(1, 100), 0.01);
        assert_eq!(s.beta_at(100, 100), 1.0, "half-way after one of two epochs");
        assert_eq!(s.beta_at(200, 100), 2.0);
        assert_eq!(s.beta_at(1000, 100), 2.0);
    }

    /// A config.json written before the warm-up existed still loads, with no warm-up.
    #[test]
    fn settings_saved_without_a_warm_up_load_with_none() {
        let mut json = serde_json::to_value(TrainSettings::new(ModelKind::Vae)).unwrap();
        json.as_object_mut().unwrap().remove("kl_warmup");
        let back: TrainSettings = serde_json::from_value(json).unwrap();
        assert_eq!(back.kl_warmup, 0);
    }
}
