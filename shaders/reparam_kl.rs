//! The VAE's latent step as CubeCL kernels: compiled by cubecl for whatever runtime the
//! device uses (WGSL or SPIR-V through wgpu, CUDA, ...). Included by `src/kernels/cube.rs`.
//!
//! Every tensor is contiguous and `[batch, latent]`; `n = batch * latent`. The two outputs of
//! the forward step share one `[2, batch, latent]` buffer because an autodiff operation has a
//! single output node: the first `n` values are z, the next `n` the KL terms.

use cubecl::{cube, prelude::*};

/// z = mu + exp(log_var / 2) * eps and kl = (mu^2 + exp(log_var) - 1 - log_var) / 2,
/// one thread per latent coordinate.
#[cube(launch)]
pub fn reparam_kl_forward<F: Float>(
    mu: &Tensor<F>,
    log_var: &Tensor<F>,
    eps: &Tensor<F>,
    output: &mut Tensor<F>,
    #[define(F)] _dtype: ElemType,
) {
    let i = ABSOLUTE_POS;
    let n = mu.len();
    if i >= n {
        terminate!();
    }
    let m = mu[i];
    let lv = log_var[i];
    let sigma = F::exp(lv * F::new(0.5_f32));
    output[i] = m + sigma * eps[i];
    output[n + i] = F::new(0.5_f32) * (m * m + F::exp(lv) - F::new(1.0_f32) - lv);
}

/// The gradients of the forward step, given `grad = [dL/dz, dL/dkl]` (`[2, batch, latent]`):
/// d mu = dz + dkl * mu,
/// d log_var = dz * eps * sigma / 2 + dkl * (exp(log_var) - 1) / 2,
/// d eps = dz * sigma.
#[cube(launch)]
pub fn reparam_kl_backward<F: Float>(
    mu: &Tensor<F>,
    log_var: &Tensor<F>,
    eps: &Tensor<F>,
    grad: &Tensor<F>,
    grad_mu: &mut Tensor<F>,
    grad_log_var: &mut Tensor<F>,
    grad_eps: &mut Tensor<F>,
    #[define(F)] _dtype: ElemType,
) {
    let i = ABSOLUTE_POS;
    let n = mu.len();
    if i >= n {
        terminate!();
    }
    let lv = log_var[i];
    let sigma = F::exp(lv * F::new(0.5_f32));
    let dz = grad[i];
    let dkl = grad[n + i];
    grad_mu[i] = dz + dkl * mu[i];
    grad_log_var[i] =
        F::new(0.5_f32) * (dz * eps[i] * sigma + dkl * (F::exp(lv) - F::new(1.0_f32)));
    grad_eps[i] = dz * sigma;
}
