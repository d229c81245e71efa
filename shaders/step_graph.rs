//! The kernels that let one captured training step be replayed for a whole epoch on a GPU
//! (`src/train/graph.rs`). Included by `src/kernels/cube.rs`.
//!
//! A replayed graph re-issues the same launches against the same buffers with the same
//! scalars, so whatever changes from step to step has to live in a buffer the graph itself
//! reads and advances: `counter` holds the index of the epoch's next batch. From it
//! `rows_at` copies that batch (and the VAE's noise) out of the epoch's permuted block, and
//! `adam_in_place` reads that step's bias corrections from a table the host filled once per
//! epoch; `finish_step` adds the batch's loss to the epoch's running sum and advances the
//! counter. Adam writes the weights and both moments into the buffers it read, so that the
//! next replay starts from them.
//!
//! The counter is an f32 (exact for any step count below 2^24); indices are computed from it
//! in integers.

use cubecl::{cube, prelude::*};

use crate::kernels::cube::adam_shader::{Coefficients, adam_values};

/// `out` (`[rows, columns]`, contiguous) = the `rows` rows of `source` (contiguous, same
/// columns) that start at row `(counter[0] - first) * rows`: the batch numbered `counter[0]`
/// of an epoch whose block `source` starts with batch `first`.
#[cube(launch)]
pub fn rows_at<F: Float>(
    source: &Tensor<F>,
    counter: &Tensor<F>,
    out: &mut Tensor<F>,
    first: InputScalar,
    #[define(F)] _dtype: ElemType,
) {
    let i = ABSOLUTE_POS;
    if i >= out.len() {
        terminate!();
    }
    let batch = usize::cast_from(counter[0]) - usize::cast_from(first.get::<F>());
    out[i] = source[batch * out.len() + i];
}

/// One thread: `running += loss * weight`, then `counter += 1`. The sum is the one the
/// ordinary loop makes (`running + loss * weight`), operation for operation.
#[cube(launch)]
pub fn finish_step<F: Float>(
    running: &mut Tensor<F>,
    counter: &mut Tensor<F>,
    loss: &Tensor<F>,
    weight: InputScalar,
    #[define(F)] _dtype: ElemType,
) {
    if ABSOLUTE_POS == 0 {
        running[0] += loss[0] * weight.get::<F>();
        counter[0] += F::new(1.0);
    }
}

/// Adam's update of two parameter tensors in place (see `adam.rs` for the arithmetic, the
/// same here), one thread per element of both, `a`'s first; the bias corrections of step
/// `counter[0]` are `table[2 * counter[0]]` (the step size) and `table[2 * counter[0] + 1]`
/// (epsilon). `b` may be empty (a parameter without a partner).
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub fn adam_in_place<F: Float>(
    param_a: &mut Tensor<F>,
    grad_a: &Tensor<F>,
    moment_1_a: &mut Tensor<F>,
    moment_2_a: &mut Tensor<F>,
    param_b: &mut Tensor<F>,
    grad_b: &Tensor<F>,
    moment_1_b: &mut Tensor<F>,
    moment_2_b: &mut Tensor<F>,
    table: &Tensor<F>,
    counter: &Tensor<F>,
    beta_1: InputScalar,
    one_minus_beta_1: InputScalar,
    beta_2: InputScalar,
    one_minus_beta_2: InputScalar,
    lr: InputScalar,
    #[define(F)] _dtype: ElemType,
) {
    let i = ABSOLUTE_POS;
    let n_a = param_a.len();
    let step = usize::cast_from(counter[0]);
    let c = Coefficients::<F> {
        beta_1: beta_1.get::<F>(),
        one_minus_beta_1: one_minus_beta_1.get::<F>(),
        beta_2: beta_2.get::<F>(),
        one_minus_beta_2: one_minus_beta_2.get::<F>(),
        step_size: table[2 * step],
        epsilon: table[2 * step + 1],
        lr: lr.get::<F>(),
    };
    if i < n_a {
        adam_element_in_place::<F>(param_a, grad_a, moment_1_a, moment_2_a, i, c.clone());
    } else if i - n_a < param_b.len() {
        adam_element_in_place::<F>(param_b, grad_b, moment_1_b, moment_2_b, i - n_a, c);
    }
}

/// The update of element `i`, written into the tensors it read.
#[cube]
fn adam_element_in_place<F: Float>(
    param: &mut Tensor<F>,
    grad: &Tensor<F>,
    moment_1: &mut Tensor<F>,
    moment_2: &mut Tensor<F>,
    i: usize,
    c: Coefficients<F>,
) {
    let new = adam_values::<F>(param[i], grad[i], moment_1[i], moment_2[i], c);
    param[i] = new.param;
    moment_1[i] = new.moment_1;
    moment_2[i] = new.moment_2;
}
