//! One Adam update as a CubeCL kernel. Included by `src/kernels/cube.rs`.
//!
//! Burn's Adam is about a dozen element-wise tensor operations per parameter tensor (scale and
//! add both moments, square, sqrt, add, divide, scale, subtract), each a pass over the 1.07 M
//! parameters and a temporary; this is one pass that reads the parameter, its gradient and
//! both moments once and writes the three results once.
//!
//! The arithmetic is Burn's, operation for operation and in the same order, so the update is
//! the one `burn::optim::Adam` makes (bit for bit on the CPU, see `src/train/adam.rs`):
//!
//! - m' = m * beta_1 + g * (1 - beta_1)
//! - v' = v * beta_2 + g^2 * (1 - beta_2)
//! - p' = p - (m' * step_size) / (sqrt(v') + epsilon) * lr
//!
//! where the host folds both bias corrections into `step_size` and `epsilon`.

use cubecl::{cube, prelude::*};

/// One thread per parameter; every tensor contiguous and of the same length.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub fn adam_update<F: Float>(
    param: &Tensor<F>,
    grad: &Tensor<F>,
    moment_1: &Tensor<F>,
    moment_2: &Tensor<F>,
    param_out: &mut Tensor<F>,
    moment_1_out: &mut Tensor<F>,
    moment_2_out: &mut Tensor<F>,
    beta_1: InputScalar,
    one_minus_beta_1: InputScalar,
    beta_2: InputScalar,
    one_minus_beta_2: InputScalar,
    step_size: InputScalar,
    epsilon: InputScalar,
    lr: InputScalar,
    #[define(F)] _dtype: ElemType,
) {
    let i = ABSOLUTE_POS;
    if i >= param.len() {
        terminate!();
    }
    let g = grad[i];
    let m = moment_1[i] * beta_1.get::<F>() + g * one_minus_beta_1.get::<F>();
    let v = moment_2[i] * beta_2.get::<F>() + g * g * one_minus_beta_2.get::<F>();
    let update = m * step_size.get::<F>() / (F::sqrt(v) + epsilon.get::<F>());
    param_out[i] = param[i] - update * lr.get::<F>();
    moment_1_out[i] = m;
    moment_2_out[i] = v;
}
