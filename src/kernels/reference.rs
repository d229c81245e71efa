//! The losses and the VAE's latent step as plain tensor operations, in nats per image: BCE on
//! logits summed over pixels, the exact Gaussian KL, z = mu + sigma * eps. The fused kernels
//! compute the same; these are what they are tested against.

use burn::tensor::Tensor;
use burn::tensor::activation::log_sigmoid;

use super::{LatentSample, sum_all};

/// Binary cross-entropy of `images` under Bernoulli `logits`, summed over pixels and averaged
/// over the batch.
///
/// Written with `log_sigmoid` as `(1 - x) * l - log_sigmoid(l)`, which never takes the log of
/// a rounded probability, so large logits do not produce infinities.
///
/// # Shapes
/// - logits, images: `[batch, pixels]`
/// - output: `[1]`
///
/// Training uses the fused [`super::bce_with_logits`]; this is what it is tested against.
pub fn bce_with_logits_reference(logits: Tensor<2>, images: Tensor<2>) -> Tensor<1> {
    let batch = logits.dims()[0] as f64;
    let ones_minus_x = images.neg().add_scalar(1.0);
    sum_all(logits.clone() * ones_minus_x - log_sigmoid(logits)).div_scalar(batch)
}

/// log p(x | z) per row of `logits` (`[n * k, pixels]`, rows `k * i .. k * i + k` decoding image
/// `i` of `images`, `[n, pixels]`): minus the BCE summed over pixels, `[n * k]`. Each image is
/// repeated K times so that the formula is the BCE's above.
pub fn bernoulli_log_likelihood_rows_reference(
    logits: Tensor<2>,
    images: Tensor<2>,
    k: usize,
) -> Tensor<1> {
    let [rows, pixels] = logits.dims();
    let n = images.dims()[0];
    let x = images
        .unsqueeze_dim::<3>(1)
        .repeat_dim(1, k)
        .reshape([n * k, pixels]);
    (logits.clone() * x.neg().add_scalar(1.0) - log_sigmoid(logits))
        .sum_dim(1)
        .neg()
        .reshape([rows])
}

/// KL(N(mu, sigma^2) || N(0, 1)) in closed form, `0.5 * sum(mu^2 + sigma^2 - 1 - log sigma^2)`,
/// summed over latent dimensions and averaged over the batch.
///
/// # Shapes
/// - mu, log_var: `[batch, latent]`
/// - output: `[1]`
pub fn kl_to_standard_normal(mu: Tensor<2>, log_var: Tensor<2>) -> Tensor<1> {
    let batch = mu.dims()[0] as f64;
    sum_all((mu.square() + log_var.clone().exp() - log_var).sub_scalar(1.0)).mul_scalar(0.5 / batch)
}

/// The latent step as plain tensor operations: what [`super::reparameterise`] must equal.
pub fn reparameterise_reference(mu: Tensor<2>, log_var: Tensor<2>, eps: Tensor<2>) -> LatentSample {
    let z = mu.clone() + log_var.clone().mul_scalar(0.5).exp() * eps;
    let kl = kl_to_standard_normal(mu, log_var);
    LatentSample { z, kl }
}

/// A dense layer and its relu as Burn's `Linear` and `relu`: what [`super::dense`] computes
/// on the CPU, and what it runs elsewhere.
pub fn dense_reference(x: Tensor<2>, layer: &burn::nn::Linear, relu: bool) -> Tensor<2> {
    let y = layer.forward(x);
    if relu {
        burn::tensor::activation::relu(y)
    } else {
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn t2(v: Vec<f32>, shape: [usize; 2]) -> Tensor<2> {
        Tensor::from_data(TensorData::new(v, shape), &Device::flex())
    }

    fn scalar(t: Tensor<1>) -> f64 {
        t.into_data().try_to_vec::<f32>().unwrap()[0] as f64
    }

    /// KL of a 1-D Gaussian to N(0,1) by numerical integration of q(z) log(q(z)/p(z)).
    fn kl_by_quadrature(mu: f64, sigma: f64) -> f64 {
        let (lo, hi, n) = (mu - 12.0 * sigma, mu + 12.0 * sigma, 200_000);
        let h = (hi - lo) / n as f64;
        let log_q = |z: f64| {
            -0.5 * ((z - mu) / sigma).powi(2) - sigma.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln()
        };
        let log_p = |z: f64| -0.5 * z * z - 0.5 * (2.0 * std::f64::consts::PI).ln();
        (0..=n)
            .map(|i| {
                let z = lo + i as f64 * h;
                let w = if i == 0 || i == n { 0.5 } else { 1.0 };
                w * log_q(z).exp() * (log_q(z) - log_p(z))
            })
            .sum::<f64>()
            * h
    }

    #[test]
    fn kl_closed_form_matches_numerical_integration() {
        let cases: [(f64, f64); 4] = [(0.0, 1.0), (1.5, 0.3), (-2.0, 2.5), (0.3, 0.05)];
        let mu: Vec<f32> = cases.iter().map(|c| c.0 as f32).collect();
        let lv: Vec<f32> = cases.iter().map(|c| (2.0 * c.1.ln()) as f32).collect();
        // One image with 4 latent dimensions: the KL is the sum over dimensions.
        let kl = scalar(kl_to_standard_normal(t2(mu, [1, 4]), t2(lv, [1, 4])));
        let direct: f64 = cases.iter().map(|&(m, s)| kl_by_quadrature(m, s)).sum();
        assert!(
            (kl - direct).abs() < 1e-4 * direct.max(1.0),
            "closed form {kl}, integral {direct}"
        );
        // Averaged over the batch: two identical rows give the same per-image value.
        let kl2 = scalar(kl_to_standard_normal(
            t2(vec![1.5, 1.5], [2, 1]),
            t2(vec![0.0, 0.0], [2, 1]),
        ));
        assert!((kl2 - 0.5 * 1.5f64.powi(2)).abs() < 1e-6);
    }

    #[test]
    fn bce_matches_the_textbook_formula_and_stays_finite() {
        let logits = vec![0.0f32, 2.0, -3.0, 40.0, -40.0, 0.5];
        let x = vec![0.5f32, 1.0, 0.0, 1.0, 1.0, 0.2];
        let expected: f64 = logits
            .iter()
            .zip(&x)
            .map(|(&l, &x)| {
                let p = 1.0 / (1.0 + (-(l as f64)).exp());
                let q = 1.0 - p;
                // log(1 - p) computed stably for the extreme logit.
                let log_q = if q > 0.0 { q.ln() } else { -(l as f64) };
                -(x as f64 * p.ln() + (1.0 - x as f64) * log_q)
            })
            .sum::<f64>()
            / 2.0;
        let bce = scalar(bce_with_logits_reference(t2(logits, [2, 3]), t2(x, [2, 3])));
        assert!(bce.is_finite());
        assert!((bce - expected).abs() < 1e-4, "{bce} vs {expected}");
    }

    #[test]
    fn bce_gradient_is_sigmoid_minus_target_over_batch() {
        let device = Device::flex().autodiff();
        let logits: Vec<f32> = vec![-30.0, -8.0, -2.5, -0.3, 0.0, 0.7, 3.0, 9.0, 25.0, 1.5];
        let x: Vec<f32> = vec![0.0, 0.2, 1.0, 0.5, 0.9, 0.0, 1.0, 0.3, 1.0, 0.6];
        let l =
            Tensor::<2>::from_data(TensorData::new(logits.clone(), [2, 5]), &device).require_grad();
        let t = Tensor::<2>::from_data(TensorData::new(x.clone(), [2, 5]), &device);
        let grads = bce_with_logits_reference(l.clone(), t).backward();
        let g = l
            .grad(&grads)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        for i in 0..10 {
            let expected = (1.0 / (1.0 + (-(logits[i] as f64)).exp()) - x[i] as f64) / 2.0;
            assert!(
                (g[i] as f64 - expected).abs() < 1e-6,
                "logit {}: grad {} expected {expected}",
                logits[i],
                g[i]
            );
        }
    }
}
