//! Binary cross-entropy on logits as one CubeCL kernel. Included by `src/kernels/cube.rs`.
//!
//! Per element, with e = exp(-|l|) computed once:
//! - the loss term softplus(l) - x * l = max(l, 0) - x * l + log1p(e), which never takes the
//!   log of a rounded probability;
//! - the gradient of that term with respect to l, sigmoid(l) - x, kept for the backward pass
//!   so that it needs no second exp.

use cubecl::{cube, prelude::*};

#[cube(launch)]
pub fn bce_logits_forward<F: Float>(
    logits: &Tensor<F>,
    images: &Tensor<F>,
    terms: &mut Tensor<F>,
    unit_grad: &mut Tensor<F>,
    #[define(F)] _dtype: ElemType,
) {
    let i = ABSOLUTE_POS;
    if i >= logits.len() {
        terminate!();
    }
    let l = logits[i];
    let x = images[i];
    let zero = F::new(0.0_f32);
    let one = F::new(1.0_f32);
    let e = F::exp(-F::abs(l));
    terms[i] = F::max(l, zero) - x * l + F::log1p(e);
    let sigmoid = select(l >= zero, one / (one + e), e / (one + e));
    unit_grad[i] = sigmoid - x;
}
