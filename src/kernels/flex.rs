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
        let n = shape.num_elements();
        // Read in place where they are f32 in order (they are in training), copied otherwise.
        let [logits, images] = [logits, images].map(dense_f32);
        let (logits, images) = (&logits.storage::<f32>()[..n], &images.storage::<f32>()[..n]);
        let mut unit_grad = vec![0.0f32; n];
        // Fixed chunks, their sums added in order: the same total whatever the thread count.
        let sums: Vec<f64> = unit_grad
            .par_chunks_mut(ELEMENTS_PER_TASK)
            .zip(logits.par_chunks(ELEMENTS_PER_TASK))
            .zip(images.par_chunks(ELEMENTS_PER_TASK))
            .map(|((g, l), x)| bce_chunk(l, x, Some(g)))
            .collect();
        let sum: f64 = sums.iter().sum();
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
        adam_in_place(param, grad, None, moment_1, moment_2, coefficients)
    }

    fn adam_update_sum(
        param: FloatTensor<Self>,
        grad_a: FloatTensor<Self>,
        grad_b: FloatTensor<Self>,
        moment_1: FloatTensor<Self>,
        moment_2: FloatTensor<Self>,
        coefficients: AdamCoefficients,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        adam_in_place(
            param,
            grad_a,
            Some(grad_b),
            moment_1,
            moment_2,
            coefficients,
        )
    }

    fn dense(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        relu: bool,
    ) -> FloatTensor<Self> {
        if !all_f32(&[&x, &weight, &bias]) {
            return super::dense_composed::<Self>(x, weight, bias, relu);
        }
        let ([batch, inputs], outputs) = (dims(&x), dims(&weight)[1]);
        let [x, weight, bias] = [x, weight, bias].map(dense_f32);
        let (x, weight) = (x.storage::<f32>(), weight.storage::<f32>());
        let bias = &bias.storage::<f32>()[..outputs];
        // The bias in every row, then the product added to it: no zeroed buffer, no pass of
        // its own for the bias.
        let mut y = Vec::with_capacity(batch * outputs);
        for _ in 0..batch {
            y.extend_from_slice(bias);
        }
        let x = Matrix::row_major(x, batch, inputs);
        let weight = Matrix::row_major(weight, inputs, outputs);
        add_product(&mut y, x, weight);
        if relu {
            // As Burn's relu on this backend: NaN stays NaN (`<=` is false for it). Every
            // element is stored, zero or itself, so the loop vectorises: the conditional store
            // it replaces compiled to a branch per element, 5.8 % of a step on a Xeon.
            for v in &mut y {
                *v = if *v <= 0.0 { 0.0 } else { *v };
            }
        }
        tensor(y, Shape::from(vec![batch, outputs]), DType::F32)
    }

    fn dense_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        if !all_f32(&[&x, &weight, &grad]) {
            return super::dense_backward_composed::<Self>(x, weight, grad);
        }
        let ([batch, outputs], inputs) = (dims(&grad), dims(&weight)[0]);
        let [x, weight, grad] = [x, weight, grad].map(dense_f32);
        let g = Matrix::row_major(&grad.storage::<f32>()[..batch * outputs], batch, outputs);
        // grad W^T: W^T's element (o, i) is W's (i, o).
        let weight_t = Matrix::row_major(weight.storage::<f32>(), inputs, outputs).transposed();
        let d_x = product(g, weight_t);
        let (d_weight, d_bias) = weight_gradients(&x, g);
        (
            tensor(d_x, Shape::from(vec![batch, inputs]), DType::F32),
            d_weight,
            d_bias,
        )
    }

    fn dense_weight_gradients(
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        if !all_f32(&[&x, &grad]) {
            return super::dense_weight_gradients_composed::<Self>(x, grad);
        }
        let [batch, outputs] = dims(&grad);
        let [x, grad] = [x, grad].map(dense_f32);
        let g = Matrix::row_major(&grad.storage::<f32>()[..batch * outputs], batch, outputs);
        weight_gradients(&x, g)
    }
}

/// (x^T grad, grad summed over the batch) for f32 `x` whose elements are its buffer's start.
fn weight_gradients(x: &FloatTensor<Flex>, grad: Matrix) -> (FloatTensor<Flex>, FloatTensor<Flex>) {
    let ([batch, inputs], outputs) = (dims(x), grad.cols);
    // x^T's element (i, b) is x's (b, i).
    let x_t = Matrix::row_major(x.storage::<f32>(), batch, inputs).transposed();
    let d_weight = product(x_t, grad);
    let mut d_bias = vec![0.0f32; outputs];
    for row in grad.data.chunks_exact(outputs.max(1)) {
        for (d, &v) in d_bias.iter_mut().zip(row) {
            *d += v;
        }
    }
    (
        tensor(d_weight, Shape::from(vec![inputs, outputs]), DType::F32),
        tensor(d_bias, Shape::from(vec![outputs]), DType::F32),
    )
}

/// Whether every tensor is f32: the host loops read f32; other float types take Burn's
/// operations.
fn all_f32(tensors: &[&FloatTensor<Flex>]) -> bool {
    tensors.iter().all(|t| t.dtype() == DType::F32)
}

/// The two dimensions of a matrix.
fn dims(t: &FloatTensor<Flex>) -> [usize; 2] {
    let shape = t.layout().shape();
    [shape[0], shape[1]]
}

/// A matrix in host memory: element (r, c) at `data[r * row_stride + c * col_stride]`.
#[derive(Clone, Copy)]
struct Matrix<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Matrix<'a> {
    fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Matrix {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The same memory read as the transpose: no copy.
    fn transposed(self) -> Self {
        Matrix {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// Whether every element lies inside `data`.
    fn in_bounds(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride
                < self.data.len()
    }
}

thread_local! {
    /// Set while this thread computes one of several things that run side by side (the half
    /// batches of a training step): its matrix products then stay on this thread, since the
    /// other cores are busy with the other halves.
    static SERIAL_PRODUCTS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with this thread's matrix products unsplit (see [`SERIAL_PRODUCTS`]).
pub(super) fn with_serial_products<T>(f: impl FnOnce() -> T) -> T {
    let before = SERIAL_PRODUCTS.replace(true);
    let result = f();
    SERIAL_PRODUCTS.set(before);
    result
}

/// Matrix products above this many multiply-adds are split over the cores: burn-flex's own
/// threshold, so that the layers split as Burn's matmul did.
const PARALLEL_MACS: usize = 192 * 192 * 192;

/// lhs rhs added to `out` (row-major, lhs.rows x rhs.cols); through `gemm`, the library of
/// burn-flex's own matmul.
fn add_product(out: &mut [f32], lhs: Matrix, rhs: Matrix) {
    // SAFETY: `out` is `out.len()` initialised elements that nothing else borrows.
    unsafe { gemm_into(out.as_mut_ptr(), out.len(), true, lhs, rhs) }
}

/// lhs rhs in a new row-major buffer, which is not zeroed first: told not to accumulate, gemm
/// writes every element of its output without reading it (zero where `lhs` has no columns).
/// Zeroing the gradients' buffers took 3.4 % of a step on a Xeon (BENCHMARKS.md).
fn product(lhs: Matrix, rhs: Matrix) -> Vec<f32> {
    let len = lhs.rows * rhs.cols;
    let mut out = Vec::with_capacity(len);
    // SAFETY: `out` has room for `len` elements and nothing else sees it; gemm, not
    // accumulating, writes all `len` of them and reads none, so they are initialised after.
    unsafe {
        gemm_into(out.as_mut_ptr(), len, false, lhs, rhs);
        out.set_len(len);
    }
    out
}

/// `out` = lhs rhs (+ what it holds where `accumulate` is set), row-major, `len` elements.
///
/// # Safety
/// `out` must be valid for writes of `len` elements that nothing else accesses, and hold
/// initialised values where `accumulate` is set.
unsafe fn gemm_into(out: *mut f32, len: usize, accumulate: bool, lhs: Matrix, rhs: Matrix) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert!(
        rhs.rows == k && len == m * n && lhs.in_bounds() && rhs.in_bounds(),
        "matmul: [{m}, {k}] x [{}, {n}] into {len} elements",
        rhs.rows,
    );
    let parallelism = if m * n * k >= PARALLEL_MACS && !SERIAL_PRODUCTS.get() {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    let stride = |s: usize| s as isize;
    // SAFETY: the assertion above keeps every element gemm reads inside `lhs.data` and
    // `rhs.data` and every element it writes inside `out`'s `len`, which the caller vouches for.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out,
            1,
            stride(n),
            accumulate,
            lhs.data.as_ptr(),
            stride(lhs.col_stride),
            stride(lhs.row_stride),
            rhs.data.as_ptr(),
            stride(rhs.col_stride),
            stride(rhs.row_stride),
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            parallelism,
        );
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

/// Elements per task of the fused BCE: a training batch (100 K pixels) still splits over two
/// cores, and a task outweighs rayon's hand-off.
const ELEMENTS_PER_TASK: usize = 1 << 14;

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
                // log p(x | z) is minus the BCE.
                *o = -bce_chunk(row, x, None) as f32;
            }
        });
    out
}

/// The BCE of `logits` against `images` summed (in f64) over a chunk, writing its gradient
/// sigmoid(l) - x into `grad` where given. Compiled twice, and the AVX2 copy used where the CPU
/// has it: the loop then computes eight elements per instruction instead of four. Both copies
/// make the same arithmetic (no fused multiply-adds), so results do not depend on the CPU.
fn bce_chunk(logits: &[f32], images: &[f32], grad: Option<&mut [f32]>) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { bce_chunk_avx2(logits, images, grad) };
    }
    bce_chunk_lanes(logits, images, grad)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn bce_chunk_avx2(logits: &[f32], images: &[f32], grad: Option<&mut [f32]>) -> f64 {
    bce_chunk_lanes(logits, images, grad)
}

/// Lanes of [`bce_chunk`]: eight running sums, so that the compiler keeps eight elements in
/// flight without reordering any one sum.
const LANES: usize = 8;

#[inline(always)]
fn bce_chunk_lanes(logits: &[f32], images: &[f32], grad: Option<&mut [f32]>) -> f64 {
    let mut sums = [0.0f64; LANES];
    let body = logits.len() / LANES * LANES;
    let tail = logits.len() - body;
    let mut terms = [0.0f32; LANES];
    let mut add = |terms: &[f32; LANES]| {
        for (s, &t) in sums.iter_mut().zip(terms) {
            *s += t as f64;
        }
    };
    let lanes = logits[..body]
        .chunks_exact(LANES)
        .zip(images[..body].chunks_exact(LANES));
    match grad {
        Some(grad) => {
            for ((l, x), g) in lanes.zip(grad[..body].chunks_exact_mut(LANES)) {
                bce_elements(l, x, &mut terms, g);
                add(&terms);
            }
            bce_elements(
                &logits[body..],
                &images[body..],
                &mut terms[..tail],
                &mut grad[body..],
            );
        }
        None => {
            let mut grads = [0.0f32; LANES];
            for (l, x) in lanes {
                bce_elements(l, x, &mut terms, &mut grads);
                add(&terms);
            }
            bce_elements(
                &logits[body..],
                &images[body..],
                &mut terms[..tail],
                &mut grads[..tail],
            );
        }
    }
    sums.iter().sum::<f64>() + terms[..tail].iter().map(|&t| t as f64).sum::<f64>()
}

#[inline(always)]
fn bce_elements(logits: &[f32], images: &[f32], terms: &mut [f32], grads: &mut [f32]) {
    for j in 0..logits.len() {
        (terms[j], grads[j]) = bce_element(logits[j], images[j]);
    }
}

/// One pixel's BCE, max(l, 0) - x l + log(1 + e^-|l|), which never overflows, and its gradient
/// sigmoid(l) - x; branch-free, so that the loop vectorises.
#[inline(always)]
fn bce_element(l: f32, x: f32) -> (f32, f32) {
    let e = exp_nonpositive(-l.abs());
    let term = l.max(0.0) - x * l + log1p_unit(e);
    let inverse = 1.0 / (1.0 + e);
    let sigmoid = if l >= 0.0 { inverse } else { e * inverse };
    (term, sigmoid - x)
}

/// e^x for x <= 0, in f32 to about an ulp (Cephes' expf: x = n ln 2 + r with |r| <= ln 2 / 2,
/// a degree-6 polynomial for e^r, 2^n from the exponent bits). Branch-free, unlike libm's
/// scalar `expf`, so the BCE's loop vectorises: the BCE took 1.7 ms of a 13 ms step with
/// `expf` (BENCHMARKS.md). Below -87.3 it returns about 1e-38 instead of a denormal, which
/// changes no loss: 1 + e is then 1.
#[inline(always)]
pub(super) fn exp_nonpositive(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    const LN_2_HI: f32 = 0.693_359_4;
    const LN_2_LO: f32 = -2.121_944_4e-4;
    // Round to nearest without a call: adding 1.5 * 2^23 leaves no fraction bits.
    const ROUND: f32 = 12_582_912.0;
    let x = x.max(-87.3);
    let n = (x * LOG2_E + ROUND) - ROUND;
    let r = (x - n * LN_2_HI) - n * LN_2_LO;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 0.166_666_65;
    let p = p * r + 0.5;
    let er = p * r * r + r + 1.0;
    // n is in [-126, 0]: 2^n is a normal float with exponent n.
    er * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// The Adam update on the CPU: in place, one pass, split over rayon's threads; the gradient is
/// `grad`, or `grad + second` where there is a second (added element by element on the way).
fn adam_in_place(
    param: FloatTensor<Flex>,
    grad: FloatTensor<Flex>,
    second: Option<FloatTensor<Flex>>,
    moment_1: FloatTensor<Flex>,
    moment_2: FloatTensor<Flex>,
    c: AdamCoefficients,
) -> (FloatTensor<Flex>, FloatTensor<Flex>, FloatTensor<Flex>) {
    let dtype = param.dtype();
    let [mut param, mut moment_1, mut moment_2] = [param, moment_1, moment_2].map(dense_f32);
    let n = param.layout().shape().num_elements();
    let grad = dense_f32(grad);
    let second = second.map(dense_f32);
    // Written in place where the tensor is not shared (copied first where it is).
    let p = &mut param.storage_mut::<f32>()[..n];
    let m = &mut moment_1.storage_mut::<f32>()[..n];
    let v = &mut moment_2.storage_mut::<f32>()[..n];
    let g = &grad.storage::<f32>()[..n];
    let h = second.as_ref().map(|h| &h.storage::<f32>()[..n]);
    p.par_chunks_mut(ADAM_CHUNK)
        .zip(m.par_chunks_mut(ADAM_CHUNK))
        .zip(v.par_chunks_mut(ADAM_CHUNK))
        .enumerate()
        .for_each(|(i, ((p, m), v))| {
            let range = i * ADAM_CHUNK..i * ADAM_CHUNK + p.len();
            let h = h.map(|h| &h[range.clone()]);
            adam_chunk(p, m, v, (&g[range], h), &c)
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

/// One chunk's gradients: the gradient, and a second one to add to it where there is one.
type ChunkGrads<'a> = (&'a [f32], Option<&'a [f32]>);

/// The Adam update of one chunk of parameters. Compiled twice, and the AVX2 copy used where the
/// CPU has it (eight parameters per square root and division instead of four: the update spent
/// most of its time there). Both copies make the same IEEE operations in the same order, so the
/// result is Burn's Adam bit for bit on any CPU (with two gradients: Burn's Adam of their sum).
fn adam_chunk(p: &mut [f32], m: &mut [f32], v: &mut [f32], g: ChunkGrads, c: &AdamCoefficients) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { adam_chunk_avx2(p, m, v, g, c) };
    }
    adam_chunk_lanes(p, m, v, g, c)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn adam_chunk_avx2(
    p: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
    g: ChunkGrads,
    c: &AdamCoefficients,
) {
    adam_chunk_lanes(p, m, v, g, c)
}

#[inline(always)]
fn adam_chunk_lanes(
    p: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
    g: ChunkGrads,
    c: &AdamCoefficients,
) {
    let params = p.iter_mut().zip(m).zip(v);
    match g {
        (g, None) => {
            for (((p, m), v), &g) in params.zip(g) {
                (*p, *m, *v) = c.apply(*p, g, *m, *v);
            }
        }
        (g, Some(h)) => {
            for (((p, m), v), (&g, &h)) in params.zip(g.iter().zip(h)) {
                (*p, *m, *v) = c.apply(*p, g + h, *m, *v);
            }
        }
    }
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
    use super::{exp_nonpositive, log1p_unit};

    /// Against f64's exp over [-87, 0], every 2^-12: within 2 f32 ulps; tiny beyond.
    #[test]
    fn exp_nonpositive_is_f32_accurate() {
        let mut worst = 0.0f64;
        for i in 0..=(87 << 12) {
            let x = -(i as f32) / 4096.0;
            let exact = (x as f64).exp();
            let ulp = (exact as f32) as f64 * f32::EPSILON as f64;
            worst = worst.max((exp_nonpositive(x) as f64 - exact).abs() / ulp);
        }
        assert!(worst <= 2.0, "worst error {worst} ulps");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        for x in [-87.5f32, -100.0, -1e30, f32::NEG_INFINITY] {
            let e = exp_nonpositive(x);
            assert!((0.0..1.3e-38).contains(&e), "exp({x}) = {e}");
        }
    }

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
