//! The project's own fused operations, registered with Burn as a backend extension.
//!
//! - The VAE's latent step (reparameterisation and its KL term) is six element-wise tensor
//!   operations and as many passes and temporaries on the CPU; here it is one loop forward
//!   and one backward (`flex.rs`). On a GPU Burn's fusion does better with its own
//!   operations (fewer launches), so there the step stays Burn's.
//! - The reconstruction loss (BCE on logits) is seven passes over every pixel of the batch
//!   forward and as many backward, two of them through exp and log1p; here it is one pass
//!   forward that also keeps the gradient, and one multiply backward (`shaders/bce_logits.rs`).
//!   On the CPU this is where the time outside the matrix products went (see BENCHMARKS.md).
//! - Adam's update is a dozen element-wise operations over every parameter; here it is one
//!   pass that reads each parameter, its gradient and both moments once (`shaders/adam.rs`),
//!   in place on the CPU, where it also adds the two half batches' gradients as it reads them,
//!   and on a GPU two parameter tensors per launch. `train::adam` makes it the optimiser.
//!
//! - A dense layer, x W + b and its relu, is three operations and three autodiff nodes in Burn;
//!   on the CPU each allocates a zeroed buffer and makes its own pass. Here it is one matrix
//!   product into a buffer that starts as the bias, relu in place, and one node whose backward
//!   makes the two products and the bias's column sums (`flex.rs`). On a GPU, Burn's fusion
//!   already folds the bias and relu into its kernels, so there the layer stays Burn's.
//!
//! Burn's runtime `Dispatch` routes each call to:
//! - `cube.rs`: the CubeCL kernels, on every cubecl runtime (wgpu here), queued lazily through
//!   Fusion like any other operation;
//! - `flex.rs`: the same arithmetic as one loop on the CPU backend;
//! - `autodiff.rs`: the backward step that makes training use the fused kernels too.
//!
//! `reference` holds the unfused tensor code the kernels are tested against.

mod autodiff;
mod cube;
mod flex;
pub mod reference;
pub mod step_graph;

use burn::backend::fusion::custom::TensorSpec;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, TensorMetadata, backend_extension};
use burn::tensor::{Shape, Tensor};

/// The fused operations and their gradients, on every backend latentlab runs on.
#[backend_extension(Cube, Fusion, Flex, Autodiff)]
pub trait FusedOps: Backend {
    /// The binary cross-entropy of `images` under Bernoulli `logits`, summed over every
    /// element (`[1]`), and its gradient with respect to the logits, sigmoid(logits) - images
    /// (`[batch, pixels]`, the backward pass's input).
    ///
    /// Kept whole: one fused kernel's dispatch per backend, side by side so that they stay alike.
    #[fusion(meta = |logits, _images| (sum_spec(logits), logits.clone()))]
    fn bce_logits_sum(
        logits: FloatTensor<Self>,
        images: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// `[2, batch, latent]`: z = mu + exp(log_var / 2) * eps, then the per-coordinate KL terms
    /// (mu^2 + exp(log_var) - 1 - log_var) / 2.
    ///
    /// The CPU's: on a GPU [`reparameterise`] takes Burn's operations, which its fusion turns
    /// into fewer launches than this op's one output sliced in two needs (BENCHMARKS.md). So
    /// by default, and on a GPU if anything called it, the same arithmetic as Burn's operations.
    #[fusion(default)]
    fn reparam_kl(
        mu: FloatTensor<Self>,
        log_var: FloatTensor<Self>,
        eps: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let shape = mu.shape();
        let sigma = Self::float_exp(Self::float_mul_scalar(log_var.clone(), 0.5.into()));
        let z = Self::float_add(mu.clone(), Self::float_mul(sigma, eps));
        let terms = Self::float_sub(
            Self::float_add(
                Self::float_mul(mu.clone(), mu),
                Self::float_exp(log_var.clone()),
            ),
            Self::float_add_scalar(log_var, 1.0.into()),
        );
        let kl = Self::float_mul_scalar(terms, 0.5.into());
        let stacked = stacked_shape(&shape);
        let mut one = stacked.clone();
        one[0] = 1;
        Self::float_cat(
            vec![
                Self::float_reshape(z, one.clone()),
                Self::float_reshape(kl, one),
            ],
            0,
        )
    }

    /// The gradients with respect to (mu, log_var, eps), given the gradient of
    /// [`FusedOps::reparam_kl`]'s `[2, batch, latent]` output. By default Burn's operations.
    #[fusion(default)]
    fn reparam_kl_backward(
        mu: FloatTensor<Self>,
        log_var: FloatTensor<Self>,
        eps: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        use burn::backend::Slice;
        let shape = mu.shape();
        let half = |k: usize| {
            let part = Self::float_slice(grad.clone(), &[Slice::from(k..k + 1)]);
            Self::float_reshape(part, shape.clone())
        };
        let (dz, dkl) = (half(0), half(1));
        let sigma = Self::float_exp(Self::float_mul_scalar(log_var.clone(), 0.5.into()));
        let d_mu = Self::float_add(dz.clone(), Self::float_mul(dkl.clone(), mu));
        let d_log_var = Self::float_mul_scalar(
            Self::float_add(
                Self::float_mul(Self::float_mul(dz.clone(), eps), sigma.clone()),
                Self::float_mul(
                    dkl,
                    Self::float_add_scalar(Self::float_exp(log_var), (-1.0).into()),
                ),
            ),
            0.5.into(),
        );
        let d_eps = Self::float_mul(dz, sigma);
        (d_mu, d_log_var, d_eps)
    }

    /// One Adam update of a parameter tensor: (param, moment_1, moment_2) after the step, all
    /// shaped like `param`. Not differentiable (an optimiser works outside the graph).
    #[fusion(meta = |param, _grad, _m1, _m2, _c| (param.clone(), param.clone(), param.clone()))]
    fn adam_update(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        moment_1: FloatTensor<Self>,
        moment_2: FloatTensor<Self>,
        coefficients: AdamCoefficients,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// [`FusedOps::adam_update`] of two parameter tensors with the same coefficients (a layer's
    /// weight and bias): `(param, moment_1, moment_2)` of `a`, then of `b`. On a GPU one launch
    /// instead of two (`shaders/adam.rs`); elsewhere by default the two updates.
    #[fusion(meta = |pa, _ga, _ma, _va, pb, _gb, _mb, _vb, _c| {
        (pa.clone(), pa.clone(), pa.clone(), pb.clone(), pb.clone(), pb.clone())
    })]
    // The tuple is spelled out, not `PairUpdate`: the extension macro reads the outputs from
    // the signature's own tokens.
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    fn adam_update_pair(
        param_a: FloatTensor<Self>,
        grad_a: FloatTensor<Self>,
        moment_1_a: FloatTensor<Self>,
        moment_2_a: FloatTensor<Self>,
        param_b: FloatTensor<Self>,
        grad_b: FloatTensor<Self>,
        moment_1_b: FloatTensor<Self>,
        moment_2_b: FloatTensor<Self>,
        coefficients: AdamCoefficients,
    ) -> (
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
    ) {
        let (pa, ma, va) = Self::adam_update(param_a, grad_a, moment_1_a, moment_2_a, coefficients);
        let (pb, mb, vb) = Self::adam_update(param_b, grad_b, moment_1_b, moment_2_b, coefficients);
        (pa, ma, va, pb, mb, vb)
    }

    /// [`FusedOps::adam_update`] with the gradient `grad_a + grad_b`, the sum never stored: the
    /// two half batches' gradients of a CPU step. Adding them in a pass of their own before the
    /// update took 4 % of a step on a Xeon (BENCHMARKS.md). By default the sum, then the update.
    #[fusion(default)]
    fn adam_update_sum(
        param: FloatTensor<Self>,
        grad_a: FloatTensor<Self>,
        grad_b: FloatTensor<Self>,
        moment_1: FloatTensor<Self>,
        moment_2: FloatTensor<Self>,
        coefficients: AdamCoefficients,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let grad = Self::float_add(grad_a, grad_b);
        Self::adam_update(param, grad, moment_1, moment_2, coefficients)
    }

    /// A dense layer, `x W + b`, then relu where `relu` is set: `[batch, outputs]` from x
    /// `[batch, inputs]`, W `[inputs, outputs]` (the layout of Burn's `Linear`), b `[outputs]`.
    /// By default Burn's operations, which Fusion keeps fusing on a GPU.
    #[fusion(default)]
    fn dense(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        relu: bool,
    ) -> FloatTensor<Self> {
        dense_composed::<Self>(x, weight, bias, relu)
    }

    /// The gradients of [`FusedOps::dense`] before its relu (`grad` is d/d(x W + b)): (d x,
    /// d W, d b) = (grad W^T, x^T grad, grad summed over the batch).
    #[fusion(default)]
    fn dense_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        dense_backward_composed::<Self>(x, weight, grad)
    }

    /// (d W, d b) of [`FusedOps::dense_backward`], for a layer whose input needs no gradient
    /// (the first: the images), which saves its largest matrix product.
    #[fusion(default)]
    fn dense_weight_gradients(
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        dense_weight_gradients_composed::<Self>(x, grad)
    }
}

/// What [`FusedOps::adam_update_pair`] returns: (param, moment_1, moment_2) of the first
/// tensor, then of the second.
pub type PairUpdate<B> = (
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
);

/// [`FusedOps::dense`] as Burn's operations (what `burn::nn::Linear` and `relu` do).
pub(crate) fn dense_composed<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    bias: FloatTensor<B>,
    relu: bool,
) -> FloatTensor<B> {
    let outputs = bias.shape().num_elements();
    let bias = B::float_reshape(bias, Shape::from(vec![1, outputs]));
    let y = B::float_add(B::float_matmul(x, weight), bias);
    if relu { B::relu(y) } else { y }
}

/// [`FusedOps::dense_backward`] as Burn's operations.
pub(crate) fn dense_backward_composed<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    grad: FloatTensor<B>,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let d_x = B::float_matmul(grad.clone(), B::float_transpose(weight));
    let (d_weight, d_bias) = dense_weight_gradients_composed::<B>(x, grad);
    (d_x, d_weight, d_bias)
}

/// [`FusedOps::dense_weight_gradients`] as Burn's operations.
pub(crate) fn dense_weight_gradients_composed<B: Backend>(
    x: FloatTensor<B>,
    grad: FloatTensor<B>,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let d_weight = B::float_matmul(B::float_transpose(x), grad.clone());
    let outputs = grad.shape()[1];
    let d_bias = B::float_reshape(B::float_sum_dim(grad, 0), Shape::from(vec![outputs]));
    (d_weight, d_bias)
}

/// The scalars of one Adam step, computed on the host in f32 exactly as `burn::optim::Adam`
/// computes them, so that the fused update makes the same arithmetic (see `shaders/adam.rs`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamCoefficients {
    pub beta_1: f32,
    pub one_minus_beta_1: f32,
    pub beta_2: f32,
    pub one_minus_beta_2: f32,
    /// sqrt(1 - beta_2^t) / (1 - beta_1^t): both bias corrections, multiplying m.
    pub step_size: f32,
    /// epsilon * sqrt(1 - beta_2^t), added to sqrt(v).
    pub epsilon: f32,
    pub lr: f32,
}

impl AdamCoefficients {
    /// The coefficients of step `time` (1 for the first step).
    pub fn new(beta_1: f32, beta_2: f32, epsilon: f32, lr: f64, time: usize) -> Self {
        let time = time as i32;
        let bias_correction_2 = (1.0 - beta_2.powi(time)).sqrt();
        AdamCoefficients {
            beta_1,
            one_minus_beta_1: 1.0 - beta_1,
            beta_2,
            one_minus_beta_2: 1.0 - beta_2,
            step_size: bias_correction_2 / (1.0 - beta_1.powi(time)),
            epsilon: epsilon * bias_correction_2,
            lr: lr as f32,
        }
    }

    /// The update of one element: (param, m, v) after the step. The CPU loop calls this; the
    /// GPU kernel spells out the same operations.
    #[inline(always)]
    pub fn apply(&self, param: f32, grad: f32, m: f32, v: f32) -> (f32, f32, f32) {
        let m = m * self.beta_1 + grad * self.one_minus_beta_1;
        let v = v * self.beta_2 + grad * grad * self.one_minus_beta_2;
        let update = m * self.step_size / (v.sqrt() + self.epsilon);
        (param - update * self.lr, m, v)
    }
}

/// One Adam update through the fused kernel: (param, moment_1, moment_2) after the step. The
/// gradient is `grad`, or `grad + second` where there is a second: a CPU step's two half
/// batches, added as they are read (see [`FusedOps::adam_update_sum`]).
pub fn adam_update<const D: usize>(
    param: Tensor<D>,
    grad: Tensor<D>,
    second: Option<Tensor<D>>,
    moment_1: Tensor<D>,
    moment_2: Tensor<D>,
    coefficients: AdamCoefficients,
) -> (Tensor<D>, Tensor<D>, Tensor<D>) {
    let [param, grad, moment_1, moment_2] =
        [param, grad, moment_1, moment_2].map(Tensor::into_dispatch);
    let (p, m, v) = match second {
        None => Dispatch::adam_update(param, grad, moment_1, moment_2, coefficients),
        Some(second) => Dispatch::adam_update_sum(
            param,
            grad,
            second.into_dispatch(),
            moment_1,
            moment_2,
            coefficients,
        ),
    };
    (
        Tensor::from_dispatch(p),
        Tensor::from_dispatch(m),
        Tensor::from_dispatch(v),
    )
}

/// One parameter's part of an Adam step, flattened: the parameter, its gradient and its two
/// moments going in; the parameter and the moments coming out.
pub struct AdamSlot {
    pub param: Tensor<1>,
    pub grad: Tensor<1>,
    pub moment_1: Tensor<1>,
    pub moment_2: Tensor<1>,
}

/// [`adam_update`] of two parameters with the same coefficients, in one launch on a GPU (see
/// [`FusedOps::adam_update_pair`]): the updated (param, moment_1, moment_2) of `a`, then of `b`.
pub fn adam_update_pair(
    a: AdamSlot,
    b: AdamSlot,
    coefficients: AdamCoefficients,
) -> [(Tensor<1>, Tensor<1>, Tensor<1>); 2] {
    let (pa, ma, va, pb, mb, vb) = Dispatch::adam_update_pair(
        a.param.into_dispatch(),
        a.grad.into_dispatch(),
        a.moment_1.into_dispatch(),
        a.moment_2.into_dispatch(),
        b.param.into_dispatch(),
        b.grad.into_dispatch(),
        b.moment_1.into_dispatch(),
        b.moment_2.into_dispatch(),
        coefficients,
    );
    let out = |p, m, v| {
        (
            Tensor::from_dispatch(p),
            Tensor::from_dispatch(m),
            Tensor::from_dispatch(v),
        )
    };
    [out(pa, ma, va), out(pb, mb, vb)]
}

/// The longest row one reduction folds into one value, in [`sum_all`] and [`sum_in_stages`].
///
/// Mesa's software Vulkan driver (lavapipe: CI, and `--device gpu` on a machine without a
/// GPU) ends every shader loop after 65,535 iterations, counted over all the loops of one
/// invocation, and says nothing (`LP_MAX_TGSI_LOOP_ITERATIONS` in Mesa's gallivm). Burn's
/// whole-tensor sum folds a long axis with one thread in one loop over vectors of 4, so there a
/// sum of more than 262,140 floats kept only the first ones: every GPU test loss (batches of
/// 1,000 images) and the training loss of every batch over 334 images was wrong (issue 17;
/// the reproduction is the `lavapipe_truncates_long_loops` test below). Summing rows of this
/// length, then the row sums, keeps every loop short on every driver; on a real GPU it is
/// also the parallel way to sum.
pub const SUM_ROW: usize = 1024;

/// The sum of every element of `tensor`, `[1]`, in stages of rows of at most [`SUM_ROW`]
/// elements (see there why); differentiable. Use it instead of `Tensor::sum` for anything
/// that can exceed a few thousand elements.
pub fn sum_all<const D: usize>(tensor: Tensor<D>) -> Tensor<1> {
    let n = tensor.shape().num_elements();
    let flat = tensor.reshape([n]);
    if n <= SUM_ROW {
        return flat.sum();
    }
    let rows = n / SUM_ROW;
    let body = rows * SUM_ROW;
    let row_sums = flat
        .clone()
        .slice(0..body)
        .reshape([rows, SUM_ROW])
        .sum_dim(1);
    let total = sum_all(row_sums);
    if body < n {
        total + flat.slice(body..n).sum()
    } else {
        total
    }
}

/// [`sum_all`] on a backend's own tensors, for the fused kernels' launch code.
pub(crate) fn sum_in_stages<B: Backend>(tensor: FloatTensor<B>) -> FloatTensor<B> {
    use burn::backend::Slice;
    let n = tensor.shape().num_elements();
    let flat = B::float_reshape(tensor, Shape::from(vec![n]));
    if n <= SUM_ROW {
        return B::float_sum(flat);
    }
    let rows = n / SUM_ROW;
    let body = rows * SUM_ROW;
    let head = B::float_slice(flat.clone(), &[Slice::from(0..body)]);
    let row_sums = B::float_sum_dim(B::float_reshape(head, Shape::from(vec![rows, SUM_ROW])), 1);
    let total = sum_in_stages::<B>(row_sums);
    if body < n {
        let tail = B::float_slice(flat, &[Slice::from(body..n)]);
        B::float_add(total, B::float_sum(tail))
    } else {
        total
    }
}

/// A one-element tensor of `like`'s dtype.
fn sum_spec(like: &TensorSpec) -> TensorSpec {
    TensorSpec::new(Shape::from(vec![1]), like.dtype)
}

/// The shape of the stacked (z, kl) output for a `[batch, latent]` input.
fn stacked_shape(latent: &Shape) -> Shape {
    let mut dims = vec![2];
    dims.extend(latent.iter().copied());
    Shape::from(dims)
}

/// A latent sample and the KL of its posterior to N(0, I).
pub struct LatentSample {
    /// `[batch, latent]`
    pub z: Tensor<2>,
    /// `[1]`: summed over latent coordinates, averaged over the batch (nats per image).
    pub kl: Tensor<1>,
}

/// The VAE's latent step: z = mu + sigma * eps and the closed-form KL, differentiable on an
/// autodiff device.
///
/// On the CPU one fused loop forward and one backward ([`FusedOps::reparam_kl`]). On a GPU
/// Burn's own operations: its fusion folds them into its kernels and the KL's sum, 61 launches
/// per VAE step on lavapipe where the fused op, whose one output must be sliced in two and
/// whose gradient reassembled from zeros, took 65 (BENCHMARKS.md).
///
/// # Shapes
/// - mu, log_var, eps: `[batch, latent]`
pub fn reparameterise(mu: Tensor<2>, log_var: Tensor<2>, eps: Tensor<2>) -> LatentSample {
    if crate::device::is_cpu(&mu.device()) {
        fused_reparameterise(mu, log_var, eps)
    } else {
        reference::reparameterise_reference(mu, log_var, eps)
    }
}

/// [`reparameterise`] through [`FusedOps::reparam_kl`] on any device.
fn fused_reparameterise(mu: Tensor<2>, log_var: Tensor<2>, eps: Tensor<2>) -> LatentSample {
    let [batch, latent] = mu.dims();
    let stacked = Tensor::<3>::from_dispatch(Dispatch::reparam_kl(
        mu.into_dispatch(),
        log_var.into_dispatch(),
        eps.into_dispatch(),
    ));
    let z = stacked.clone().narrow(0, 0, 1).reshape([batch, latent]);
    let kl = sum_all(stacked.narrow(0, 1, 1)).div_scalar(batch as f64);
    LatentSample { z, kl }
}

/// Binary cross-entropy of `images` under Bernoulli `logits`, summed over pixels and averaged
/// over the batch (nats per image), through the fused kernel; differentiable in the logits.
///
/// # Shapes
/// - logits, images: `[batch, pixels]`
/// - output: `[1]`
pub fn bce_with_logits(logits: Tensor<2>, images: Tensor<2>) -> Tensor<1> {
    let batch = logits.dims()[0] as f64;
    let (sum, _gradient) = Dispatch::bce_logits_sum(logits.into_dispatch(), images.into_dispatch());
    Tensor::<1>::from_dispatch(sum).div_scalar(batch)
}

/// A dense layer and, where `relu` is set, its relu, through [`FusedOps::dense`] on the CPU;
/// differentiable. Elsewhere, and for a layer without a bias, Burn's own `Linear` and `relu`.
///
/// # Shapes
/// - x: `[batch, inputs]` -> `[batch, outputs]`
pub fn dense(x: Tensor<2>, layer: &burn::nn::Linear, relu: bool) -> Tensor<2> {
    match &layer.bias {
        Some(bias) if crate::device::is_cpu(&x.device()) => Tensor::from_dispatch(Dispatch::dense(
            x.into_dispatch(),
            layer.weight.val().into_dispatch(),
            bias.val().into_dispatch(),
            relu,
        )),
        _ => {
            let y = layer.forward(x);
            if relu {
                burn::tensor::activation::relu(y)
            } else {
                y
            }
        }
    }
}

/// Runs `f` with the CPU's matrix products of this thread on this thread alone: for work that
/// runs beside other work on the other cores (the half batches of a training step).
fn with_serial_products<T>(f: impl FnOnce() -> T) -> T {
    flex::with_serial_products(f)
}

/// `a` and `b` side by side on rayon's pool, each with its matrix products unsplit: two halves
/// of one batch, one per core (a training step's half batches, the IWAE's half chunks).
pub fn side_by_side<A: Send, B: Send>(
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B + Send,
) -> (A, B) {
    rayon::join(|| with_serial_products(a), || with_serial_products(b))
}

/// log p(x | z) of Bernoulli pixels, one value per row of `logits`, whose rows `k * i ..
/// k * i + k` decode image `i` of `images`: the sum over pixels of x l - softplus(l), i.e. minus
/// the BCE. What the IWAE bound needs for every one of its K samples per image.
///
/// On the CPU it is one pass over the logits, split over the cores, reading each image in
/// place: the tensor formula ([`reference::bernoulli_log_likelihood_rows_reference`], used on a
/// GPU) repeats every image K times, makes seven passes with as many fresh buffers, and spent
/// most of the IWAE's time outside the matrix products in scalar log1p (BENCHMARKS.md).
///
/// # Shapes
/// - logits: `[n * k, pixels]`; images: `[n, pixels]`; output: `[n * k]`
pub fn bernoulli_log_likelihood_rows(logits: Tensor<2>, images: Tensor<2>, k: usize) -> Tensor<1> {
    let device = logits.device();
    if !crate::device::is_cpu(&device) {
        return reference::bernoulli_log_likelihood_rows_reference(logits, images, k);
    }
    let [rows, pixels] = logits.dims();
    let host = |t: Tensor<2>| {
        t.into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("data converted to f32 reads back as f32")
    };
    let values = flex::bernoulli_rows(&host(logits), &host(images), pixels, k);
    Tensor::from_data(burn::tensor::TensorData::new(values, [rows]), &device)
}

#[cfg(test)]
mod tests {
    //! The fused operations against the unfused tensor code, forward and backward, on the CPU
    //! backend and through wgpu (lavapipe where there is no GPU). Tolerance 1e-5, relative to
    //! the value's size where it exceeds 1: both compute in f32 (some sums in f64), so they
    //! differ by a few ulps of exp, log1p and of the sums.
    use super::*;
    use burn::tensor::{Device, DeviceKind, TensorData};

    const TOLERANCE: f64 = 1e-5;

    /// Inputs covering the range a VAE sees, extremes of log_var included.
    fn inputs(batch: usize, latent: usize) -> [Vec<f32>; 3] {
        let n = batch * latent;
        let wave = |k: f32, scale: f32| -> Vec<f32> {
            (0..n)
                .map(|i| scale * ((i as f32 + 1.0) * k).sin())
                .collect()
        };
        let mut log_var = wave(0.37, 4.0);
        log_var[0] = -12.0;
        log_var[n - 1] = 8.0;
        [wave(0.71, 3.0), log_var, wave(1.93, 2.0)]
    }

    pub(super) fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap()
    }

    pub(super) fn assert_close(what: &str, got: &[f32], want: &[f32]) {
        assert_eq!(got.len(), want.len(), "{what}: lengths");
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            let bound = TOLERANCE * (w.abs() as f64).max(1.0);
            assert!(
                ((g - w) as f64).abs() <= bound,
                "{what}[{i}]: fused {g}, unfused {w}"
            );
        }
    }

    /// Forward values and the gradients of a loss that weighs z and kl differently, so that
    /// both halves of the backward kernel's input matter.
    fn run(
        device: &Device,
        step: fn(Tensor<2>, Tensor<2>, Tensor<2>) -> LatentSample,
        batch: usize,
        latent: usize,
    ) -> Vec<Vec<f32>> {
        let [mu, log_var, eps] = inputs(batch, latent).map(|v| {
            Tensor::<2>::from_data(TensorData::new(v, [batch, latent]), device).require_grad()
        });
        let weights: Vec<f32> = (0..batch * latent).map(|i| (i % 7) as f32 - 3.0).collect();
        let weights = Tensor::<2>::from_data(TensorData::new(weights, [batch, latent]), device);
        let sample = step(mu.clone(), log_var.clone(), eps.clone());
        let loss = (sample.z.clone() * weights).sum() + sample.kl.clone().mul_scalar(3.0);
        let grads = loss.backward();
        let grad = |t: &Tensor<2>| values(t.grad(&grads).expect("tracked input has a gradient"));
        vec![
            values(sample.z),
            values(sample.kl),
            grad(&mu),
            grad(&log_var),
            grad(&eps),
        ]
    }

    /// The BCE value and its gradients (logits and images both tracked), for logits from -40
    /// to 40 and pixel values in [0, 1].
    fn bce_run(
        device: &Device,
        bce: fn(Tensor<2>, Tensor<2>) -> Tensor<1>,
        batch: usize,
        pixels: usize,
    ) -> Vec<Vec<f32>> {
        let n = batch * pixels;
        let logits: Vec<f32> = (0..n)
            .map(|i| match i % 11 {
                0 => 40.0,
                1 => -40.0,
                _ => 9.0 * ((i as f32) * 0.37).sin(),
            })
            .collect();
        let images: Vec<f32> = (0..n).map(|i| ((i * 7) % 256) as f32 / 255.0).collect();
        let [l, x] = [logits, images].map(|v| {
            Tensor::<2>::from_data(TensorData::new(v, [batch, pixels]), device).require_grad()
        });
        let loss = bce(l.clone(), x.clone());
        let grads = loss.clone().mul_scalar(2.5).backward();
        let grad = |t: &Tensor<2>| values(t.grad(&grads).expect("tracked input has a gradient"));
        vec![values(loss), grad(&l), grad(&x)]
    }

    fn fused_matches_unfused(plain: Device) {
        let device = plain.clone().autodiff();
        for (batch, pixels) in [(1, 1), (3, 11), (128, 784)] {
            let fused = bce_run(&device, bce_with_logits, batch, pixels);
            let unfused = bce_run(&device, reference::bce_with_logits_reference, batch, pixels);
            for ((name, f), u) in ["bce", "d logits", "d images"]
                .iter()
                .zip(&fused)
                .zip(&unfused)
            {
                assert_close(&format!("{name} at [{batch}, {pixels}]"), f, u);
            }
        }
        let names = ["z", "kl", "d mu", "d log_var", "d eps"];
        for (batch, latent) in [(1, 1), (128, 2), (333, 5)] {
            let fused = run(&device, fused_reparameterise, batch, latent);
            let unfused = run(&device, reference::reparameterise_reference, batch, latent);
            for ((name, f), u) in names.iter().zip(&fused).zip(&unfused) {
                assert_close(&format!("{name} at [{batch}, {latent}]"), f, u);
            }
        }
        // Without autodiff (evaluation), the same forward values.
        let [mu, log_var, eps] =
            inputs(64, 2).map(|v| Tensor::<2>::from_data(TensorData::new(v, [64, 2]), &plain));
        let fused = fused_reparameterise(mu.clone(), log_var.clone(), eps.clone());
        let unfused = reference::reparameterise_reference(mu, log_var, eps);
        assert_close("z (no autodiff)", &values(fused.z), &values(unfused.z));
        assert_close("kl (no autodiff)", &values(fused.kl), &values(unfused.kl));
        let [l, x, _] =
            inputs(64, 2).map(|v| Tensor::<2>::from_data(TensorData::new(v, [64, 2]), &plain));
        let x = x.clamp(0.0, 1.0);
        assert_close(
            "bce (no autodiff)",
            &values(bce_with_logits(l.clone(), x.clone())),
            &values(reference::bce_with_logits_reference(l, x)),
        );
    }

    /// The fused dense layer on the CPU against Burn's `Linear` and `relu`, forward and
    /// backward, at every layer shape of the default models at the training batch (128) and the
    /// evaluation batch (1,000), with and without relu, with the input tracked or not (the first
    /// layer's is not), and without autodiff. Inputs of the size training sees, some
    /// pre-activations negative, so that relu's mask matters; a dropped product term (about
    /// 0.01) is a thousand times the tolerance.
    #[test]
    fn dense_layers_on_the_cpu_match_burns_linear() {
        use burn::module::Param;
        use burn::nn::Linear;
        let plain = Device::flex();
        let device = plain.clone().autodiff();
        let wave = |n: usize, k: f32, scale: f32| -> Vec<f32> {
            (0..n)
                .map(|i| scale * ((i as f32 + 1.0) * k).sin())
                .collect()
        };
        let shapes = [
            (3, 5, 7, true, true),
            (128, 784, 512, true, false),
            (128, 512, 256, true, true),
            (128, 256, 2, false, true),
            (128, 2, 256, true, true),
            (128, 256, 512, true, true),
            (128, 512, 784, false, true),
            (1000, 512, 784, false, true),
        ];
        for (batch, inputs, outputs, relu, input_tracked) in shapes {
            let what = format!("[{batch}, {inputs}] -> {outputs}, relu {relu}");
            let scale = 1.0 / (inputs as f32).sqrt();
            let layer = |device: &Device| Linear {
                weight: Param::from_tensor(Tensor::<2>::from_data(
                    TensorData::new(wave(inputs * outputs, 0.61, scale), [inputs, outputs]),
                    device,
                )),
                bias: Some(Param::from_tensor(Tensor::<1>::from_data(
                    TensorData::new(wave(outputs, 1.7, scale), [outputs]),
                    device,
                ))),
            };
            let x_values = wave(batch * inputs, 0.37, 1.0);
            let weights = wave(batch * outputs, 0.29, 1.0);
            let run = |dense: fn(Tensor<2>, &Linear, bool) -> Tensor<2>| {
                let layer = layer(&device);
                let x = Tensor::<2>::from_data(
                    TensorData::new(x_values.clone(), [batch, inputs]),
                    &device,
                );
                let x = if input_tracked { x.require_grad() } else { x };
                let y = dense(x.clone(), &layer, relu);
                let w = Tensor::<2>::from_data(
                    TensorData::new(weights.clone(), [batch, outputs]),
                    &device,
                );
                let grads = (y.clone() * w).sum().backward();
                let bias = layer.bias.as_ref().expect("the layer has a bias").val();
                let mut out = vec![
                    values(y),
                    values(layer.weight.val().grad(&grads).expect("W has a gradient")),
                    values(bias.grad(&grads).expect("b has a gradient")),
                ];
                if input_tracked {
                    out.push(values(x.grad(&grads).expect("x has a gradient")));
                }
                out
            };
            let fused = run(dense);
            let unfused = run(reference::dense_reference);
            for ((name, f), u) in ["y", "d W", "d b", "d x"].iter().zip(&fused).zip(&unfused) {
                assert_close(&format!("{name} of {what}"), f, u);
            }
            assert!(
                values_differ_from_zero(&fused[1]),
                "{what}: d W is all zero"
            );
            // Evaluation: no autodiff.
            let layer = layer(&plain);
            let x =
                Tensor::<2>::from_data(TensorData::new(x_values.clone(), [batch, inputs]), &plain);
            assert_close(
                &format!("y of {what} (no autodiff)"),
                &values(dense(x.clone(), &layer, relu)),
                &values(reference::dense_reference(x, &layer, relu)),
            );
        }
    }

    fn values_differ_from_zero(v: &[f32]) -> bool {
        v.iter().any(|&x| x != 0.0)
    }

    /// The IWAE's per-sample likelihood on the CPU against the tensor formula: K samples per
    /// image, logits out to +-100, grey and black-and-white pixels, at the sizes the IWAE
    /// decodes (8,200 rows of 784 pixels, K = 100: more rows than one task, not a multiple of
    /// it) and at odd small ones.
    #[test]
    fn bernoulli_rows_on_the_cpu_match_the_tensor_formula() {
        let device = Device::flex();
        for (images, pixels, k) in [(1, 1, 1), (3, 5, 7), (300, 13, 1), (82, 784, 100)] {
            let rows = images * k;
            let logits: Vec<f32> = (0..rows * pixels)
                .map(|i| match i % 13 {
                    0 => 100.0,
                    1 => -100.0,
                    2 => 40.0,
                    _ => 9.0 * ((i as f32) * 0.37).sin(),
                })
                .collect();
            let x: Vec<f32> = (0..images * pixels)
                .map(|i| match i % 3 {
                    0 => ((i * 7) % 256) as f32 / 255.0,
                    1 => 1.0,
                    _ => 0.0,
                })
                .collect();
            let logits = Tensor::<2>::from_data(TensorData::new(logits, [rows, pixels]), &device);
            let x = Tensor::<2>::from_data(TensorData::new(x, [images, pixels]), &device);
            let fused = bernoulli_log_likelihood_rows(logits.clone(), x.clone(), k);
            let unfused = reference::bernoulli_log_likelihood_rows_reference(logits, x, k);
            assert_close(
                &format!("log p(x|z) at [{rows}, {pixels}], K = {k}"),
                &values(fused),
                &values(unfused),
            );
        }
    }

    /// The BCE and the latent step through [`FusedOps`] against Burn's operations: on the CPU
    /// the loops training uses; through wgpu the BCE kernel, and the latent step's default
    /// (which a GPU's training path does not take: [`reparameterise`] goes to Burn's there).
    #[test]
    fn fused_latent_step_matches_unfused_on_the_cpu() {
        fused_matches_unfused(Device::flex());
    }

    #[test]
    fn fused_latent_step_matches_unfused_through_wgpu() {
        fused_matches_unfused(Device::wgpu(DeviceKind::DefaultDevice));
    }

    // Sizes past every launch limit, the GPU against the CPU. Each kernel runs one thread per
    // element; 2^24 + 1,001 elements need more than 65,535 cubes even of 256 threads, so the
    // launch spreads them over a second grid dimension. Sentinels sit at the boundaries a
    // launch or a loop could stop at (65,535 vectors of 4 was lavapipe's, 2^18 and 2^24
    // elements, the last element), each large enough that losing it changes the sum by far
    // more than the tolerance.
    pub(super) const PAST_EVERY_LIMIT: usize = (1 << 24) + 1_001;

    pub(super) fn gpu() -> Device {
        Device::wgpu(DeviceKind::DefaultDevice)
    }

    fn sentinels(n: usize) -> Vec<usize> {
        let mut marks: Vec<usize> = [
            0,
            65_535,
            262_139,
            262_140,
            262_143,
            262_144,
            1 << 24,
            n - 1,
        ]
        .into_iter()
        .filter(|&i| i < n)
        .collect();
        marks.sort_unstable();
        marks.dedup();
        marks
    }

    fn sum_f64(v: &[f32]) -> f64 {
        v.iter().map(|&x| x as f64).sum()
    }

    fn assert_sum(what: &str, got: f32, want: f64, relative: f64) {
        assert!(
            (got as f64 - want).abs() <= relative * want.abs().max(1.0),
            "{what}: got {got}, want {want}"
        );
    }

    /// `sum_all` counts every element, wherever it sits, on both devices: zeros with ones at
    /// the sentinels sum exactly to their count.
    #[test]
    fn sum_all_counts_every_element_on_both_devices() {
        for device in [Device::flex(), gpu()] {
            for n in [
                1,
                1_023,
                1_024,
                1_025,
                262_141,
                262_145,
                401_408,
                784_000,
                PAST_EVERY_LIMIT,
            ] {
                let mut v = vec![0.0f32; n];
                let marks = sentinels(n);
                for &i in &marks {
                    v[i] = 1.0;
                }
                let t = Tensor::<1>::from_data(TensorData::new(v, [n]), &device);
                let got = values(sum_all(t))[0];
                assert_eq!(got, marks.len() as f32, "{n} elements on {device:?}");
            }
            // A 2-D tensor of non-integers: the sum of rows of 1,024, then of the row sums,
            // against a sum in f64.
            let (rows, cols) = (1_000, 784);
            let v: Vec<f32> = (0..rows * cols)
                .map(|i| ((i as f32) * 0.013).sin() + 1.5)
                .collect();
            let want = sum_f64(&v);
            let t = Tensor::<2>::from_data(TensorData::new(v, [rows, cols]), &device);
            assert_sum("[1000, 784] sum", values(sum_all(t))[0], want, 1e-6);
        }
    }

    /// BCE inputs of `batch` images of 784 pixels with a sentinel loss of ~30 nats at each
    /// sentinel (logit 30 for a black pixel), ~0.5 elsewhere.
    fn bce_inputs(batch: usize) -> (Vec<f32>, Vec<f32>) {
        let n = batch * 784;
        let mut logits: Vec<f32> = (0..n).map(|i| 2.0 * ((i as f32) * 0.61).sin()).collect();
        let mut images: Vec<f32> = (0..n).map(|i| ((i * 7) % 256) as f32 / 255.0).collect();
        for i in sentinels(n) {
            logits[i] = 30.0;
            images[i] = 0.0;
        }
        (logits, images)
    }

    /// The fused BCE on the GPU against the same kernel on the CPU at the batch sizes training
    /// and evaluation use and past every launch limit: the loss (a sentinel lost would move
    /// it by 30 nats over the batch), and sigmoid(l) - x element by element (an element the
    /// kernel skipped would hold whatever the fresh buffer held).
    #[test]
    fn fused_bce_on_the_gpu_matches_the_cpu_at_every_size() {
        for batch in [128, 512, 1_000, PAST_EVERY_LIMIT.div_ceil(784)] {
            let (logits, images) = bce_inputs(batch);
            let run = |device: &Device| {
                let [l, x] = [logits.clone(), images.clone()]
                    .map(|v| Tensor::<2>::from_data(TensorData::new(v, [batch, 784]), device));
                let (sum, unit_grad) =
                    Dispatch::bce_logits_sum(l.into_dispatch(), x.into_dispatch());
                (
                    values(Tensor::<1>::from_dispatch(sum))[0],
                    values(Tensor::<2>::from_dispatch(unit_grad)),
                )
            };
            let (cpu_sum, cpu_grad) = run(&Device::flex());
            let (gpu_sum, gpu_grad) = run(&gpu());
            assert_sum(
                &format!("BCE sum at batch {batch}"),
                gpu_sum,
                cpu_sum as f64,
                1e-5,
            );
            assert_close(
                &format!("sigmoid(l) - x at batch {batch}"),
                &gpu_grad,
                &cpu_grad,
            );
        }
    }

    /// The training path (autodiff through the fused BCE) at batch 512 and 1,000, past the
    /// sizes lavapipe's loop limit cut: loss and both input gradients equal on both devices.
    #[test]
    fn fused_bce_with_gradients_matches_the_cpu_past_lavapipe_limits() {
        for batch in [512, 1_000] {
            let on = |device: Device| bce_run(&device.autodiff(), bce_with_logits, batch, 784);
            let (cpu, gpu) = (on(Device::flex()), on(gpu()));
            for ((name, g), c) in ["bce", "d logits", "d images"].iter().zip(&gpu).zip(&cpu) {
                assert_close(&format!("{name} at batch {batch}"), g, c);
            }
        }
    }

    /// The latent step past 65,535 cubes (2^23 + 7 elements: more than 65,535 cubes of up to
    /// 128 threads; its `[2, n]` output must stay under wgpu's 128 MiB binding), and at the
    /// sizes a VAE uses, on the GPU against the CPU, element by element.
    #[test]
    fn fused_latent_step_on_the_gpu_matches_the_cpu_at_every_size() {
        for (batch, latent) in [(1_000, 2), (60_000, 2), ((1 << 22) + 3, 2), (7, 1 << 20)] {
            let [mu, log_var, eps] = inputs(batch, latent);
            let run = |device: &Device| {
                let [m, l, e] = [mu.clone(), log_var.clone(), eps.clone()]
                    .map(|v| Tensor::<2>::from_data(TensorData::new(v, [batch, latent]), device));
                let s = reparameterise(m, l, e);
                (values(s.z), values(s.kl))
            };
            let (cpu_z, cpu_kl) = run(&Device::flex());
            let (gpu_z, gpu_kl) = run(&gpu());
            assert_close(&format!("z at [{batch}, {latent}]"), &gpu_z, &cpu_z);
            assert_sum(
                &format!("KL at [{batch}, {latent}]"),
                gpu_kl[0],
                cpu_kl[0] as f64,
                1e-5,
            );
        }
    }

    /// A parameter tensor past every launch limit, its gradient in two parts, both moments.
    pub(super) fn adam_inputs() -> [Vec<f32>; 5] {
        let wave = |k: f32, scale: f32| -> Vec<f32> {
            (0..PAST_EVERY_LIMIT)
                .map(|i| scale * ((i as f32 + 1.0) * k).sin())
                .collect()
        };
        let v = wave(0.53, 1e-3).iter().map(|x| x * x).collect();
        let [p, a, b, m] = [(0.37, 0.05), (0.91, 1e-2), (0.61, 1e-2), (0.23, 1e-3)];
        [
            wave(p.0, p.1),
            wave(a.0, a.1),
            wave(b.0, b.1),
            wave(m.0, m.1),
            v,
        ]
    }

    /// (param, moment 1, moment 2) after one Adam step on `device` with the gradient a + b:
    /// added before the update, or by the update itself where `fused`.
    fn adam_step(device: &Device, inputs: &[Vec<f32>; 5], fused: bool) -> [Vec<f32>; 3] {
        let [p, a, b, m, v] = inputs
            .clone()
            .map(|x| Tensor::<1>::from_data(TensorData::new(x, [PAST_EVERY_LIMIT]), device));
        let c = AdamCoefficients::new(0.9, 0.999, 1e-8, 1e-3, 7);
        let (p, m, v) = if fused {
            adam_update(p, a, Some(b), m, v, c)
        } else {
            adam_update(p, a + b, None, m, v, c)
        };
        [values(p), values(m), values(v)]
    }

    fn assert_adam_close(what: &str, gpu: &[Vec<f32>; 3], cpu: &[Vec<f32>; 3]) {
        for ((name, g), c) in ["param", "moment 1", "moment 2"].iter().zip(gpu).zip(cpu) {
            assert_close(
                &format!("{what}: {name}, {PAST_EVERY_LIMIT} elements"),
                g,
                c,
            );
        }
    }

    /// One Adam update of a parameter tensor past every launch limit, GPU against CPU,
    /// element by element (parameter and both moments).
    #[test]
    fn fused_adam_on_the_gpu_matches_the_cpu_past_every_limit() {
        let inputs = adam_inputs();
        let (cpu, gpu) = (
            adam_step(&Device::flex(), &inputs, false),
            adam_step(&gpu(), &inputs, false),
        );
        assert_adam_close("one gradient", &gpu, &cpu);
    }

    /// The update with two gradients (a CPU step's half batches) against the update with their
    /// sum: the same bits on the CPU, where it is one loop of its own, and within tolerance
    /// through wgpu, past every launch limit.
    #[test]
    fn adam_of_two_gradients_is_adam_of_their_sum() {
        let inputs = adam_inputs();
        let cpu = adam_step(&Device::flex(), &inputs, true);
        let summed = adam_step(&Device::flex(), &inputs, false);
        assert!(cpu == summed, "CPU: two gradients vs their sum differ");
        assert_adam_close("two gradients", &adam_step(&gpu(), &inputs, true), &cpu);
    }

    /// Two parameter tensors' updates in one launch against each one's own update: the same
    /// bits through wgpu (one arithmetic, written once in the shader) and within tolerance of
    /// the CPU. At the model's largest layer (784 x 512 and its 512 biases), and with the
    /// pair's second tensor past every launch limit, so that an element lost or shifted at
    /// the seam, at the end or past a limit shows.
    #[test]
    fn adam_of_a_pair_in_one_launch_is_adam_of_each() {
        let inputs = adam_inputs();
        let c = AdamCoefficients::new(0.9, 0.999, 1e-8, 1e-3, 7);
        for (n_a, n_b) in [(784 * 512, 512), (1_001, PAST_EVERY_LIMIT - 1_001)] {
            let parts = [0..n_a, n_a..n_a + n_b];
            let slot = |device: &Device, range: std::ops::Range<usize>| {
                let [param, grad, moment_1, moment_2] = [0, 1, 3, 4].map(|k| {
                    let v = inputs[k][range.clone()].to_vec();
                    Tensor::<1>::from_data(TensorData::new(v, [range.len()]), device)
                });
                AdamSlot {
                    param,
                    grad,
                    moment_1,
                    moment_2,
                }
            };
            let each = |device: &Device| {
                parts.clone().map(|range| {
                    let s = slot(device, range);
                    let (p, m, v) = adam_update(s.param, s.grad, None, s.moment_1, s.moment_2, c);
                    [values(p), values(m), values(v)]
                })
            };
            let device = gpu();
            let [a, b] = parts.clone().map(|range| slot(&device, range));
            let paired =
                adam_update_pair(a, b, c).map(|(p, m, v)| [values(p), values(m), values(v)]);
            let (singles, cpu) = (each(&device), each(&Device::flex()));
            for k in 0..2 {
                let what = format!("tensor {} of the pair ({n_a} + {n_b})", k + 1);
                assert_eq!(paired[k][0].len(), parts[k].len(), "{what}");
                assert!(
                    paired[k] == singles[k],
                    "{what}: paired and single launches differ"
                );
                assert_adam_close(&what, &paired[k], &cpu[k]);
            }
        }
    }
}
