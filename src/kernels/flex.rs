//! The fused operations on the CPU backend: one pass over the elements each.

use burn::backend::Flex;
use burn::backend::tensor::FloatTensor;
use burn::tensor::{DType, Shape, TensorData};
use rayon::prelude::*;

use super::{AdamCoefficients, FusedOps, stacked_shape};

/// Parameters per task of the parallel Adam update: large enough that a task outweighs
/// rayon's hand-off, small enough that the 400 K-parameter layers keep both cores busy.
const ADAM_CHUNK: usize = 1 << 15;

impl FusedOps for Flex {
    fn bce_logits_sum(
        logits: FloatTensor<Self>,
        images: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let dtype = logits.dtype();
        let shape = logits.layout().shape().clone();
        let [logits, images] = [logits, images].map(values);
        let mut unit_grad = vec![0.0f32; logits.len()];
        let mut sum = 0.0f64;
        // In f32 like the rest of the step (exp and log1p of f32 are the costly part); the
        // sum in f64.
        for ((&l, &x), g) in logits.iter().zip(&images).zip(&mut unit_grad) {
            let e = (-l.abs()).exp();
            sum += (l.max(0.0) - x * l + log1p_unit(e)) as f64;
            let sigmoid = if l >= 0.0 {
                1.0 / (1.0 + e)
            } else {
                e / (1.0 + e)
            };
            *g = sigmoid - x;
        }
        (
            tensor(vec![sum as f32], Shape::from(vec![1]), dtype),
            tensor(unit_grad, shape, dtype),
        )
    }

    fn reparam_kl(
        mu: FloatTensor<Self>,
        log_var: FloatTensor<Self>,
        eps: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let dtype = mu.dtype();
        let shape = mu.layout().shape().clone();
        let [mu, log_var, eps] = [mu, log_var, eps].map(values);
        let n = mu.len();
        let mut out = vec![0.0f32; 2 * n];
        for i in 0..n {
            let (m, lv) = (mu[i] as f64, log_var[i] as f64);
            out[i] = (m + (0.5 * lv).exp() * eps[i] as f64) as f32;
            out[n + i] = (0.5 * (m * m + lv.exp() - 1.0 - lv)) as f32;
        }
        tensor(out, stacked_shape(&shape), dtype)
    }

    fn reparam_kl_backward(
        mu: FloatTensor<Self>,
        log_var: FloatTensor<Self>,
        eps: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let dtype = mu.dtype();
        let shape = mu.layout().shape().clone();
        let [mu, log_var, eps, grad] = [mu, log_var, eps, grad].map(values);
        let n = mu.len();
        let (mut d_mu, mut d_lv, mut d_eps) = (vec![0.0f32; n], vec![0.0f32; n], vec![0.0f32; n]);
        for i in 0..n {
            let lv = log_var[i] as f64;
            let sigma = (0.5 * lv).exp();
            let (dz, dkl) = (grad[i] as f64, grad[n + i] as f64);
            d_mu[i] = (dz + dkl * mu[i] as f64) as f32;
            d_lv[i] = (0.5 * (dz * eps[i] as f64 * sigma + dkl * (lv.exp() - 1.0))) as f32;
            d_eps[i] = (dz * sigma) as f32;
        }
        (
            tensor(d_mu, shape.clone(), dtype),
            tensor(d_lv, shape.clone(), dtype),
            tensor(d_eps, shape, dtype),
        )
    }

    fn adam_update(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        moment_1: FloatTensor<Self>,
        moment_2: FloatTensor<Self>,
        coefficients: AdamCoefficients,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        adam_in_place(param, grad, moment_1, moment_2, coefficients)
    }
}

/// log(1 + e) for e in [0, 1], the softplus of every logit, in f32 to within a few ulps: with
/// s = e / (2 + e) (at most 1/3), log(1 + e) = 2 atanh(s) = 2 s (1 + s^2/3 + s^4/5 + ...), and
/// seven terms leave an error below f32's rounding. A few multiply-adds and one division
/// instead of libm's scalar `log1pf`, which took a fifth of the IWAE's time and 5 % of a
/// training step's (BENCHMARKS.md).
#[inline(always)]
pub(super) fn log1p_unit(e: f32) -> f32 {
    let s = e / (2.0 + e);
    let t = s * s;
    let series = 1.0
        + t * (1.0 / 3.0
            + t * (1.0 / 5.0
                + t * (1.0 / 7.0 + t * (1.0 / 9.0 + t * (1.0 / 11.0 + t * (1.0 / 13.0))))));
    2.0 * s * series
}

/// Rows of logits per task of [`bernoulli_rows`]: a few hundred thousand pixels, so a task
/// outweighs rayon's hand-off.
const ROWS_PER_TASK: usize = 256;

/// [`super::bernoulli_log_likelihood_rows`] on host memory: `logits` holds rows of `pixels`
/// values, row r decoding image r / k of `images`.
pub(super) fn bernoulli_rows(logits: &[f32], images: &[f32], pixels: usize, k: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; logits.len() / pixels.max(1)];
    out.par_chunks_mut(ROWS_PER_TASK)
        .zip(logits.par_chunks(ROWS_PER_TASK * pixels))
        .enumerate()
        .for_each(|(task, (out, logits))| {
            for (j, (o, row)) in out.iter_mut().zip(logits.chunks(pixels)).enumerate() {
                let image = (task * ROWS_PER_TASK + j) / k;
                let x = &images[image * pixels..(image + 1) * pixels];
                // x l - softplus(l), with softplus(l) = max(l, 0) + log1p(exp(-|l|)), which
                // never overflows; summed in f64 like the fused BCE.
                let sum: f64 = row
                    .iter()
                    .zip(x)
                    .map(|(&l, &x)| (x * l - l.max(0.0) - log1p_unit((-l.abs()).exp())) as f64)
                    .sum();
                *o = sum as f32;
            }
        });
    out
}

/// The Adam update on the CPU: in place, one pass, split over rayon's threads.
fn adam_in_place(
    param: FloatTensor<Flex>,
    grad: FloatTensor<Flex>,
    moment_1: FloatTensor<Flex>,
    moment_2: FloatTensor<Flex>,
    c: AdamCoefficients,
) -> (FloatTensor<Flex>, FloatTensor<Flex>, FloatTensor<Flex>) {
    let dtype = param.dtype();
    let [mut param, grad, mut moment_1, mut moment_2] =
        [param, grad, moment_1, moment_2].map(dense_f32);
    let n = param.layout().shape().num_elements();
    // Written in place where the tensor is not shared (copied first where it is).
    let p = &mut param.storage_mut::<f32>()[..n];
    let m = &mut moment_1.storage_mut::<f32>()[..n];
    let v = &mut moment_2.storage_mut::<f32>()[..n];
    let g = &grad.storage::<f32>()[..n];
    p.par_chunks_mut(ADAM_CHUNK)
        .zip(m.par_chunks_mut(ADAM_CHUNK))
        .zip(v.par_chunks_mut(ADAM_CHUNK))
        .zip(g.par_chunks(ADAM_CHUNK))
        .for_each(|(((p, m), v), g)| {
            for (((p, m), v), &g) in p.iter_mut().zip(m).zip(v).zip(g) {
                (*p, *m, *v) = c.apply(*p, g, *m, *v);
            }
        });
    let back = |t: FloatTensor<Flex>| {
        if dtype == DType::F32 {
            t
        } else {
            let shape = t.layout().shape().clone();
            tensor(values(t), shape, dtype)
        }
    };
    (back(param), back(moment_1), back(moment_2))
}

/// `t` itself when it is f32 and its elements are the start of its buffer in order, else an
/// f32 copy that is.
fn dense_f32(t: FloatTensor<Flex>) -> FloatTensor<Flex> {
    if t.dtype() == DType::F32 && matches!(t.layout().contiguous_offsets(), Some((0, _))) {
        t
    } else {
        let shape = t.layout().shape().clone();
        tensor(values(t), shape, DType::F32)
    }
}

/// The values in logical (row-major) order, as f32 whatever the tensor's float type.
fn values(t: FloatTensor<Flex>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("data converted to f32 reads back as f32")
}

fn tensor(values: Vec<f32>, shape: Shape, dtype: DType) -> FloatTensor<Flex> {
    FloatTensor::<Flex>::from_data(TensorData::new(values, shape).convert_dtype(dtype))
}

#[cfg(test)]
mod tests {
    use super::log1p_unit;

    /// Against f64's log1p over the whole range the losses use, every 2^-20: within 2 f32 ulps
    /// of the exact value (libm's log1pf is within 1).
    #[test]
    fn log1p_unit_is_f32_accurate_on_zero_to_one() {
        let mut worst = 0.0f64;
        for i in 0..=(1u32 << 20) {
            let e = i as f32 / (1u32 << 20) as f32;
            let exact = (e as f64).ln_1p();
            let got = log1p_unit(e) as f64;
            let ulp = (exact as f32).abs().max(f32::MIN_POSITIVE) as f64 * f32::EPSILON as f64;
            worst = worst.max((got - exact).abs() / ulp);
        }
        assert!(worst <= 2.0, "worst error {worst} ulps");
        // Tiny arguments keep their relative precision (log1p(e) ~ e).
        for e in [1e-30f32, 1e-20, 1e-10, 1e-7] {
            let rel = (log1p_unit(e) as f64 - (e as f64).ln_1p()).abs() / e as f64;
            assert!(rel < 1e-6, "log1p_unit({e}) relative error {rel}");
        }
    }
}
