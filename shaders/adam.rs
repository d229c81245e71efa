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
    let c = coefficients::<F>(
        beta_1,
        one_minus_beta_1,
        beta_2,
        one_minus_beta_2,
        step_size,
        epsilon,
        lr,
    );
    adam_element::<F>(
        param,
        grad,
        moment_1,
        moment_2,
        param_out,
        moment_1_out,
        moment_2_out,
        i,
        c,
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
    let c = coefficients::<F>(
        beta_1,
        one_minus_beta_1,
        beta_2,
        one_minus_beta_2,
        step_size,
        epsilon,
        lr,
    );
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
            c.clone(),
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
            c,
        );
    }
}

/// Adam's coefficients of one step, in the kernel's float type (the host folds both bias
/// corrections into `step_size` and `epsilon`).
#[derive(CubeType, Clone)]
#[expand(derive(Clone))]
pub struct Coefficients<F: Float> {
    pub beta_1: F,
    pub one_minus_beta_1: F,
    pub beta_2: F,
    pub one_minus_beta_2: F,
    pub step_size: F,
    pub epsilon: F,
    pub lr: F,
}

/// The kernels' scalar arguments as [`Coefficients`].
#[cube]
fn coefficients<F: Float>(
    beta_1: InputScalar,
    one_minus_beta_1: InputScalar,
    beta_2: InputScalar,
    one_minus_beta_2: InputScalar,
    step_size: InputScalar,
    epsilon: InputScalar,
    lr: InputScalar,
) -> Coefficients<F> {
    Coefficients::<F> {
        beta_1: beta_1.get::<F>(),
        one_minus_beta_1: one_minus_beta_1.get::<F>(),
        beta_2: beta_2.get::<F>(),
        one_minus_beta_2: one_minus_beta_2.get::<F>(),
        step_size: step_size.get::<F>(),
        epsilon: epsilon.get::<F>(),
        lr: lr.get::<F>(),
    }
}

/// One element's parameter and moments after the step.
#[derive(CubeType)]
pub struct Updated<F: Float> {
    pub param: F,
    pub moment_1: F,
    pub moment_2: F,
}

/// Adam's arithmetic for one element: every Adam kernel of `shaders/` calls it (these two,
/// and the in-place one of `step_graph.rs`), so it is written once.
#[cube]
pub fn adam_values<F: Float>(
    param: F,
    g: F,
    moment_1: F,
    moment_2: F,
    c: Coefficients<F>,
) -> Updated<F> {
    let m = moment_1 * c.beta_1 + g * c.one_minus_beta_1;
    let v = moment_2 * c.beta_2 + g * g * c.one_minus_beta_2;
    let update = m * c.step_size / (F::sqrt(v) + c.epsilon);
    Updated::<F> {
        param: param - update * c.lr,
        moment_1: m,
        moment_2: v,
    }
}

/// The update of element `i` into the output tensors.
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
    c: Coefficients<F>,
) {
    let new = adam_values::<F>(param[i], grad[i], moment_1[i], moment_2[i], c);
    param_out[i] = new.param;
    moment_1_out[i] = new.moment_1;
    moment_2_out[i] = new.moment_2;
}
