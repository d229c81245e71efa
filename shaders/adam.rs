//! Adam's update as CubeCL kernels: of one parameter tensor, or of two in one launch. Included by `src/kernels/cube.rs`.
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
    adam_element::<F>(
        param,
        grad,
        moment_1,
        moment_2,
        param_out,
        moment_1_out,
        moment_2_out,
        i,
        beta_1.get::<F>(),
        one_minus_beta_1.get::<F>(),
        beta_2.get::<F>(),
        one_minus_beta_2.get::<F>(),
        step_size.get::<F>(),
        epsilon.get::<F>(),
        lr.get::<F>(),
    );
}

/// Two parameter tensors' updates in one launch, with the same coefficients: one thread per
/// element of both, `a`'s first. A launch costs the same for 512 elements as for 400,000, and
/// the model's tensors come in pairs (a layer's weight and bias), so this halves the launches
/// of a GPU step's Adam. Each tensor's four inputs and three outputs contiguous and of one
/// length; 14 storage bindings.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub fn adam_update_pair<F: Float>(
    param_a: &Tensor<F>,
    grad_a: &Tensor<F>,
    moment_1_a: &Tensor<F>,
    moment_2_a: &Tensor<F>,
    param_b: &Tensor<F>,
    grad_b: &Tensor<F>,
    moment_1_b: &Tensor<F>,
    moment_2_b: &Tensor<F>,
    param_a_out: &mut Tensor<F>,
    moment_1_a_out: &mut Tensor<F>,
    moment_2_a_out: &mut Tensor<F>,
    param_b_out: &mut Tensor<F>,
    moment_1_b_out: &mut Tensor<F>,
    moment_2_b_out: &mut Tensor<F>,
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
    let n_a = param_a.len();
    let b1 = beta_1.get::<F>();
    let c1 = one_minus_beta_1.get::<F>();
    let b2 = beta_2.get::<F>();
    let c2 = one_minus_beta_2.get::<F>();
    let step = step_size.get::<F>();
    let eps = epsilon.get::<F>();
    let rate = lr.get::<F>();
    if i < n_a {
        adam_element::<F>(
            param_a,
            grad_a,
            moment_1_a,
            moment_2_a,
            param_a_out,
            moment_1_a_out,
            moment_2_a_out,
            i,
            b1,
            c1,
            b2,
            c2,
            step,
            eps,
            rate,
        );
    } else if i - n_a < param_b.len() {
        adam_element::<F>(
            param_b,
            grad_b,
            moment_1_b,
            moment_2_b,
            param_b_out,
            moment_1_b_out,
            moment_2_b_out,
            i - n_a,
            b1,
            c1,
            b2,
            c2,
            step,
            eps,
            rate,
        );
    }
}

/// The update of element `i`: the arithmetic of both kernels, written once.
#[cube]
#[allow(clippy::too_many_arguments)]
fn adam_element<F: Float>(
    param: &Tensor<F>,
    grad: &Tensor<F>,
    moment_1: &Tensor<F>,
    moment_2: &Tensor<F>,
    param_out: &mut Tensor<F>,
    moment_1_out: &mut Tensor<F>,
    moment_2_out: &mut Tensor<F>,
    i: usize,
    beta_1: F,
    one_minus_beta_1: F,
    beta_2: F,
    one_minus_beta_2: F,
    step_size: F,
    epsilon: F,
    lr: F,
) {
    let g = grad[i];
    let m = moment_1[i] * beta_1 + g * one_minus_beta_1;
    let v = moment_2[i] * beta_2 + g * g * one_minus_beta_2;
    let update = m * step_size / (F::sqrt(v) + epsilon);
    param_out[i] = param[i] - update * lr;
    moment_1_out[i] = m;
    moment_2_out[i] = v;
}
