//! How a VAE uses each latent dimension, from its posteriors over a data set: the
//! diagnostics of posterior collapse. Host arithmetic on the codes, so that training (every
//! epoch's row of metrics.csv) and the report (summary.json) compute them alike.

/// A latent dimension is *active* when the variance over the data of its posterior mean
/// exceeds this (Burda, Grosse and Salakhutdinov 2016, "Importance Weighted Autoencoders",
/// section 5.2): below it, the encoder says the same thing for every image, and the
/// dimension has collapsed to the prior.
pub const ACTIVE_VARIANCE: f64 = 0.01;

/// How a VAE uses each latent dimension, from its test posteriors N(mu, sigma^2).
#[derive(Debug, Clone, PartialEq)]
pub struct LatentUsage {
    /// Mean over images of KL(N(mu_i, sigma_i^2) || N(0, 1)), nats, per dimension.
    pub kl_per_dim: Vec<f64>,
    /// Variance over images of mu_i, per dimension.
    pub mu_variance_per_dim: Vec<f64>,
    /// Mean over images of the posterior sigma_i, per dimension: near 1 where a dimension
    /// collapsed to the prior, well below 1 where it carries information.
    pub sigma_mean_per_dim: Vec<f64>,
    /// Dimensions whose `mu_variance_per_dim` exceeds [`ACTIVE_VARIANCE`].
    pub active_units: usize,
}

/// KL and activity per latent dimension of `n * dim` posterior means and sigmas.
pub fn latent_usage(mu: &[f32], sigma: &[f32], dim: usize) -> LatentUsage {
    let n = (mu.len() / dim.max(1)).max(1) as f64;
    let mut kl = vec![0.0f64; dim];
    for (m, s) in mu.chunks_exact(dim).zip(sigma.chunks_exact(dim)) {
        for d in 0..dim {
            let (m, s) = (m[d] as f64, s[d] as f64);
            kl[d] += 0.5 * (m * m + s * s - 1.0) - s.ln();
        }
    }
    let kl_per_dim: Vec<f64> = kl.into_iter().map(|k| k / n).collect();
    let (_, std) = crate::stats::mean_std(mu, dim);
    let mu_variance_per_dim: Vec<f64> = std.iter().map(|s| s * s).collect();
    let (sigma_mean_per_dim, _) = crate::stats::mean_std(sigma, dim);
    let active_units = mu_variance_per_dim
        .iter()
        .filter(|&&v| v > ACTIVE_VARIANCE)
        .count();
    LatentUsage {
        kl_per_dim,
        mu_variance_per_dim,
        sigma_mean_per_dim,
        active_units,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dimension that carries the data (mu spread over images, small sigma) is active and
    /// costs KL; one that collapsed to the prior (mu = 0, sigma = 1 for every image) is not and
    /// costs nothing. The KL is the exact formula's, checked at one hand-computed point.
    #[test]
    fn latent_usage_tells_a_used_dimension_from_a_collapsed_one() {
        let n = 1000;
        let mut mu = Vec::new();
        let mut sigma = Vec::new();
        for i in 0..n {
            mu.extend([(i as f32 / n as f32 - 0.5) * 4.0, 0.0]);
            sigma.extend([0.1f32, 1.0]);
        }
        let u = latent_usage(&mu, &sigma, 2);
        assert_eq!(u.active_units, 1);
        assert!(
            u.mu_variance_per_dim[0] > 1.0 && u.mu_variance_per_dim[1] == 0.0,
            "{u:?}"
        );
        assert!(u.kl_per_dim[1].abs() < 1e-12, "{u:?}");
        assert!(
            (u.sigma_mean_per_dim[0] - 0.1).abs() < 1e-6 && u.sigma_mean_per_dim[1] == 1.0,
            "{u:?}"
        );
        // KL(N(2, 0.5^2) || N(0, 1)) = 0.5 (4 + 0.25 - 1) - ln 0.5 = 1.625 + 0.693147...
        let one = latent_usage(&[2.0], &[0.5], 1);
        assert!(
            (one.kl_per_dim[0] - (1.625 + std::f64::consts::LN_2)).abs() < 1e-6,
            "{one:?}"
        );
        assert_eq!(one.active_units, 0, "one image has no variance");
    }
}
