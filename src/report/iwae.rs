//! The importance-weighted estimate of a VAE's test log-likelihood (Burda et al., IWAE bound):
//!
//! log p(x) >= E[ log (1/K) sum_k p(x|z_k) p(z_k) / q(z_k|x) ],  z_k ~ q(z|x),
//!
//! which tightens as K grows and equals the ELBO at K = 1. Reported in nats per image
//! (a log-likelihood: higher is better, about -ELBO or above).

use burn::module::Module;
use burn::tensor::{Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::kernels::{bernoulli_log_likelihood_rows, side_by_side};
use crate::model::AutoEncoder;
use crate::train::TrainError;
use crate::train::session::read_vec;

/// Rows decoded at once: images per chunk times K. The logits of a chunk (25 MB at 784
/// pixels) stay under glibc's largest threshold for giving memory back to the system (32 MB),
/// so each chunk reuses the last one's pages instead of faulting in fresh ones.
const ROWS_PER_CHUNK: usize = 8_192;

/// Mean over `images` (`[n, pixels]` in [0, 1]) of the K-sample IWAE bound; `None` for an AE.
pub fn iwae_log_likelihood(
    model: &AutoEncoder,
    images: &Tensor<2>,
    k: usize,
    seed: u64,
) -> Result<Option<f64>, TrainError> {
    if !model.is_variational() {
        return Ok(None);
    }
    let model = model.valid();
    let images = images.clone().inner();
    let device = images.device();
    let split = crate::device::is_cpu(&device);
    let n = images.dims()[0];
    let per_chunk = (ROWS_PER_CHUNK / k).max(1);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x1_3a3e);
    let mut total = 0.0;
    for a in (0..n).step_by(per_chunk) {
        let b = (a + per_chunk).min(n);
        let m = b - a;
        let x = images.clone().slice(a..b);
        let enc = model.encoder.forward(x.clone());
        let (mu, Some(log_var)) = (enc.mu, enc.log_var) else {
            return Ok(None);
        };
        let latent = mu.dims()[1];
        let eps_host: Vec<f32> = (0..m * k * latent)
            .map(|_| StandardNormal.sample(&mut rng))
            .collect();
        let eps = Tensor::<2>::from_data(TensorData::new(eps_host, [m * k, latent]), &device);
        let part = |s: usize, e: usize| Draws {
            images: x.clone().slice(s..e),
            mu: mu.clone().slice(s..e),
            log_var: log_var.clone().slice(s..e),
            eps: eps.clone().slice(s * k..e * k),
        };
        // On the CPU, each core takes half of the chunk's images with its matrix products
        // unsplit, as a training step does: one product of 8,192 rows split over two cores
        // by gemm itself made about 100 GFLOP/s here, well under what two halves reach.
        let bounds = if split && m >= 2 {
            let h = m / 2;
            let (first, second) = side_by_side(
                || log_mean_weights(&model, part(0, h), k),
                || log_mean_weights(&model, part(h, m), k),
            );
            let mut both = read_vec(first)?;
            both.extend(read_vec(second)?);
            both
        } else {
            read_vec(log_mean_weights(&model, part(0, m), k))?
        };
        total += bounds.iter().map(|&v| v as f64).sum::<f64>() - m as f64 * (k as f64).ln();
    }
    Ok(Some(total / n as f64))
}

/// Some images and their K noise draws each (rows i*K .. i*K+K of `eps` belong to image i).
struct Draws {
    images: Tensor<2>,
    mu: Tensor<2>,
    log_var: Tensor<2>,
    eps: Tensor<2>,
}

/// log sum_k p(x|z_k) p(z_k) / q(z_k|x) of every image, one value each (the bound is this
/// minus log K).
fn log_mean_weights(model: &AutoEncoder, draws: Draws, k: usize) -> Tensor<1> {
    let Draws {
        images,
        mu,
        log_var,
        eps,
    } = draws;
    let [m, latent] = mu.dims();
    let ln_2pi = (2.0 * std::f64::consts::PI).ln();
    // Each image repeated K times.
    let rep = |t: Tensor<2>| {
        t.unsqueeze_dim::<3>(1)
            .repeat_dim(1, k)
            .reshape([m * k, latent])
    };
    let (mu, log_var) = (rep(mu), rep(log_var));
    let z = mu + log_var.clone().mul_scalar(0.5).exp() * eps.clone();
    let logits = model.decoder.forward(z.clone());
    let log_px = bernoulli_log_likelihood_rows(logits, images, k).reshape([m * k, 1]);
    let log_pz = (z.square().add_scalar(ln_2pi)).sum_dim(1).mul_scalar(-0.5);
    let log_qz = (eps.square() + log_var)
        .add_scalar(ln_2pi)
        .sum_dim(1)
        .mul_scalar(-0.5);
    let log_w = (log_px + log_pz - log_qz).reshape([m, k]);
    let max = log_w.clone().max_dim(1);
    ((log_w - max.clone()).exp().sum_dim(1).log() + max).reshape([m])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ModelConfig, ModelKind};
    use burn::tensor::Device;

    #[test]
    fn one_sample_bound_is_the_elbo_and_more_samples_tighten_it() {
        let device = Device::flex();
        let cfg = ModelConfig {
            kind: ModelKind::Vae,
            input: 16,
            hidden: [12, 8],
            latent: 2,
            arch: crate::model::Arch::Mlp,
        };
        let model = cfg.init(4, &device);
        let n = 40;
        let pixels: Vec<f32> = (0..n * 16).map(|i| ((i * 7) % 11) as f32 / 10.0).collect();
        let x = Tensor::<2>::from_data(TensorData::new(pixels, [n, 16]), &device);

        // The ELBO averaged over many noise draws.
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let draws = 400;
        let mut neg_elbo = 0.0;
        for _ in 0..draws {
            let e: Vec<f32> = (0..n * 2)
                .map(|_| StandardNormal.sample(&mut rng))
                .collect();
            let eps = Tensor::<2>::from_data(TensorData::new(e, [n, 2]), &device);
            let loss = model.losses(x.clone(), Some(eps), 1.0).total;
            neg_elbo += read_vec(loss).unwrap()[0] as f64 / draws as f64;
        }
        let l1: f64 = (0..50)
            .map(|s| iwae_log_likelihood(&model, &x, 1, s).unwrap().unwrap())
            .sum::<f64>()
            / 50.0;
        assert!(
            (l1 + neg_elbo).abs() < 0.01 * neg_elbo.abs(),
            "IWAE(1) {l1} vs ELBO {}",
            -neg_elbo
        );
        let l200 = iwae_log_likelihood(&model, &x, 200, 0).unwrap().unwrap();
        assert!(l200 > l1, "IWAE(200) {l200} should exceed IWAE(1) {l1}");
    }
}
