//! `summary.json`: the final numbers of a run, under the field names the spec fixes.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub model: String,
    pub dataset: String,
    pub device: String,
    pub backend: String,
    pub adapter: String,
    pub epochs: usize,
    /// Test reconstruction BCE, nats per image.
    pub test_recon: f64,
    /// Test KL to the prior, nats per image (0 for the AE).
    pub test_kl: f64,
    /// recon + beta * KL: the negative ELBO for the VAE.
    pub test_loss: f64,
    /// 5-NN digit accuracy of the test codes against the training codes.
    pub knn5_accuracy: f64,
    pub latent_mean: Vec<f64>,
    pub latent_std: Vec<f64>,
    /// Share of empty cells of a 20x20 grid over the 1st-99th percentile box of the test codes.
    pub empty_cell_share: f64,
    /// Training images per second over all epochs of this run (evaluation excluded).
    pub images_per_sec: f64,
    /// Seconds spent in the training loops of all epochs.
    pub train_seconds: f64,
    /// VAE: mean posterior sigma per latent dimension over the test set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub posterior_sigma_mean: Option<Vec<f64>>,
    /// VAE: importance-weighted estimate of the test log-likelihood, nats per image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iwae_log_likelihood: Option<f64>,
    /// VAE: the number of importance samples K behind `iwae_log_likelihood`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iwae_samples: Option<usize>,
    /// VAE: test KL to the prior per latent dimension, nats per image (they sum to `test_kl`
    /// up to the float order and beta).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kl_per_dim: Option<Vec<f64>>,
    /// VAE: variance over the test images of each dimension's posterior mean.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mu_variance_per_dim: Option<Vec<f64>>,
    /// VAE: dimensions whose posterior-mean variance exceeds 0.01 (the usual criterion of an
    /// active unit; the others have collapsed to the prior).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_units: Option<usize>,
}
