//! The operations of a training step that can be captured once and replayed (`train::graph`):
//! they read what changes from step to step (which batch, Adam's bias corrections) from device
//! buffers, and write their results into the buffers they read (`shaders/step_graph.rs`).
//!
//! GPU only (Burn's `Cube` backend, through its fusion): a replay exists only there, and on the
//! CPU Burn's graph capture would re-run the closure, gaining nothing.
//!
//! Writing into an input is outside what Burn's fusion knows: it orders operations by the
//! tensors they read and produce, and these produce nothing. So the caller keeps every tensor
//! written here alive (the model, the moments, the counter), and puts a fusion flush
//! ([`burn::tensor::Device::flush`]) before an operation here that writes what queued
//! operations still read: the weights after the backward pass, the counter after Adam.

#[path = "../../shaders/step_graph.rs"]
mod shader;

use burn::backend::cubecl::dtype_to_storage_type;
use burn::backend::fusion::custom::TensorSpec;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, backend_extension};
use burn::tensor::{Shape, Tensor};
use burn_cubecl::CubeBackend;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::InputScalar;

use super::cube::{like, one_thread_each};

/// Adam's constants; the step-dependent bias corrections come from the table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConstants {
    pub beta_1: f32,
    pub beta_2: f32,
    pub lr: f32,
}

#[backend_extension(Cube, Fusion)]
pub trait StepGraphOps: Backend {
    /// `[rows, columns]`: batch `counter[0]` of an epoch whose block `source` (`[n, columns]`)
    /// starts with batch `first`.
    #[fusion(meta = |source, _counter, rows, _first| rows_spec(source, *rows))]
    fn rows_at(
        source: FloatTensor<Self>,
        counter: FloatTensor<Self>,
        rows: usize,
        first: usize,
    ) -> FloatTensor<Self>;

    /// `running[0] += loss[0] * weight`, then `counter[0] += 1`, in place.
    #[fusion(meta = |_running, _counter, _loss, _weight| ())]
    #[allow(clippy::unused_unit)]
    fn finish_step(
        running: FloatTensor<Self>,
        counter: FloatTensor<Self>,
        loss: FloatTensor<Self>,
        weight: f32,
    ) -> ();

    /// Adam's step of two parameters in place: each `(param, grad, moment_1, moment_2)`,
    /// the param contiguous in any shape, the moments flat; the bias corrections of step
    /// `counter[0]` at `table[2 * step]` (step size) and `table[2 * step + 1]` (epsilon).
    #[fusion(meta = |_pa, _ga, _ma, _va, _pb, _gb, _mb, _vb, _table, _counter, _c| ())]
    #[allow(clippy::too_many_arguments, clippy::unused_unit)]
    fn adam_in_place(
        param_a: FloatTensor<Self>,
        grad_a: FloatTensor<Self>,
        moment_1_a: FloatTensor<Self>,
        moment_2_a: FloatTensor<Self>,
        param_b: FloatTensor<Self>,
        grad_b: FloatTensor<Self>,
        moment_1_b: FloatTensor<Self>,
        moment_2_b: FloatTensor<Self>,
        table: FloatTensor<Self>,
        counter: FloatTensor<Self>,
        constants: AdamConstants,
    ) -> ();
}

fn rows_spec(source: &TensorSpec, rows: usize) -> TensorSpec {
    TensorSpec::new(Shape::from(vec![rows, source.shape[1]]), source.dtype)
}

/// A tensor the kernel writes in place: it must be the buffer itself, not a contiguous copy.
fn in_place(tensor: CubeTensor, what: &str) -> CubeTensor {
    assert!(
        tensor.is_contiguous(),
        "{what} is written in place and must be contiguous"
    );
    tensor
}

impl StepGraphOps for CubeBackend {
    fn rows_at(
        source: FloatTensor<Self>,
        counter: FloatTensor<Self>,
        rows: usize,
        first: usize,
    ) -> FloatTensor<Self> {
        let [source, counter] = [source, counter].map(into_contiguous);
        let columns = source.meta.shape()[1];
        let out = like(&source, Shape::from(vec![rows, columns]));
        let storage = dtype_to_storage_type(source.dtype);
        let (cube_count, cube_dim) = one_thread_each(&out, rows * columns);
        shader::rows_at::launch(
            &out.client,
            cube_count,
            cube_dim,
            source.into_tensor_arg(),
            counter.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            InputScalar::new(first as f32, storage),
            storage,
        );
        out
    }

    fn finish_step(
        running: FloatTensor<Self>,
        counter: FloatTensor<Self>,
        loss: FloatTensor<Self>,
        weight: f32,
    ) {
        let running = in_place(running, "the running loss");
        let counter = in_place(counter, "the step counter");
        let loss = into_contiguous(loss);
        let storage = dtype_to_storage_type(running.dtype);
        let (cube_count, cube_dim) = one_thread_each(&running, 1);
        shader::finish_step::launch(
            &running.client.clone(),
            cube_count,
            cube_dim,
            running.into_tensor_arg(),
            counter.into_tensor_arg(),
            loss.into_tensor_arg(),
            InputScalar::new(weight, storage),
            storage,
        );
    }

    fn adam_in_place(
        param_a: FloatTensor<Self>,
        grad_a: FloatTensor<Self>,
        moment_1_a: FloatTensor<Self>,
        moment_2_a: FloatTensor<Self>,
        param_b: FloatTensor<Self>,
        grad_b: FloatTensor<Self>,
        moment_1_b: FloatTensor<Self>,
        moment_2_b: FloatTensor<Self>,
        table: FloatTensor<Self>,
        counter: FloatTensor<Self>,
        c: AdamConstants,
    ) {
        let [
            param_a,
            moment_1_a,
            moment_2_a,
            param_b,
            moment_1_b,
            moment_2_b,
        ] = [
            param_a, moment_1_a, moment_2_a, param_b, moment_1_b, moment_2_b,
        ]
        .map(|t| in_place(t, "a parameter or its moment"));
        let [grad_a, grad_b, table, counter] =
            [grad_a, grad_b, table, counter].map(into_contiguous);
        let n = param_a.meta.shape().num_elements() + param_b.meta.shape().num_elements();
        let storage = dtype_to_storage_type(param_a.dtype);
        let scalar = |value: f32| InputScalar::new(value, storage);
        let (cube_count, cube_dim) = one_thread_each(&param_a, n);
        shader::adam_in_place::launch(
            &param_a.client.clone(),
            cube_count,
            cube_dim,
            param_a.into_tensor_arg(),
            grad_a.into_tensor_arg(),
            moment_1_a.into_tensor_arg(),
            moment_2_a.into_tensor_arg(),
            param_b.into_tensor_arg(),
            grad_b.into_tensor_arg(),
            moment_1_b.into_tensor_arg(),
            moment_2_b.into_tensor_arg(),
            table.into_tensor_arg(),
            counter.into_tensor_arg(),
            scalar(c.beta_1),
            scalar(1.0 - c.beta_1),
            scalar(c.beta_2),
            scalar(1.0 - c.beta_2),
            scalar(c.lr),
            storage,
        );
    }
}

/// [`StepGraphOps::rows_at`]: batch `counter[0]` (`rows` rows) of an epoch whose block
/// `source` starts with batch `first`.
pub fn rows_at(source: &Tensor<2>, counter: &Tensor<1>, rows: usize, first: usize) -> Tensor<2> {
    Tensor::from_dispatch(Dispatch::rows_at(
        source.clone().into_dispatch(),
        counter.clone().into_dispatch(),
        rows,
        first,
    ))
}

/// [`StepGraphOps::finish_step`].
pub fn finish_step(running: &Tensor<1>, counter: &Tensor<1>, loss: Tensor<1>, weight: f32) {
    Dispatch::finish_step(
        running.clone().into_dispatch(),
        counter.clone().into_dispatch(),
        loss.into_dispatch(),
        weight,
    );
}

/// One parameter's part of an in-place Adam step: the parameter as the model holds it (any
/// rank), its gradient in the same shape, its two moments flat.
pub struct InPlaceSlot {
    pub param: FloatTensor<Dispatch>,
    pub grad: FloatTensor<Dispatch>,
    pub moment_1: Tensor<1>,
    pub moment_2: Tensor<1>,
}

/// [`StepGraphOps::adam_in_place`] of two parameters.
pub fn adam_in_place(
    a: InPlaceSlot,
    b: InPlaceSlot,
    table: &Tensor<1>,
    counter: &Tensor<1>,
    constants: AdamConstants,
) {
    Dispatch::adam_in_place(
        a.param,
        a.grad,
        a.moment_1.into_dispatch(),
        a.moment_2.into_dispatch(),
        b.param,
        b.grad,
        b.moment_1.into_dispatch(),
        b.moment_2.into_dispatch(),
        table.clone().into_dispatch(),
        counter.clone().into_dispatch(),
        constants,
    );
}

/// The bias corrections of Adam steps `first..first + n` (1 for a run's first step), as
/// [`StepGraphOps::adam_in_place`] reads them, indexed from 0: the same f32 values the
/// ordinary update computes on the host (`AdamCoefficients`).
pub fn bias_table(beta_1: f32, beta_2: f32, epsilon: f32, first: usize, n: usize) -> Vec<f32> {
    (first..first + n)
        .flat_map(|time| {
            let c = super::AdamCoefficients::new(beta_1, beta_2, epsilon, 0.0, time);
            [c.step_size, c.epsilon]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::tests::{PAST_EVERY_LIMIT, adam_inputs, assert_close, gpu, values};
    use crate::kernels::{AdamCoefficients, AdamSlot, adam_update, adam_update_pair};
    use burn::tensor::{Device, TensorData};

    fn tensor(v: Vec<f32>, device: &Device) -> Tensor<1> {
        let n = v.len();
        Tensor::from_data(TensorData::new(v, [n]), device)
    }

    /// The in-place update of a pair at the step the counter names is the update the pair
    /// kernel makes with that step's coefficients (the moments to the bit, the weights within
    /// tolerance of the CPU's), written into the very tensors passed in. At the model's largest
    /// layer and with the second tensor past every launch limit, so that an element lost or
    /// shifted at the seam, at the end or past a limit shows; a table entry read for the wrong
    /// step would change every element.
    #[test]
    fn adam_in_place_is_the_pair_update_of_the_counters_step() {
        let inputs = adam_inputs();
        let device = gpu();
        let (beta_1, beta_2, epsilon, lr) = (0.9, 0.999, 1e-8, 1e-3);
        // Entries for steps 5, 6 and 7; the counter picks the last.
        let table = tensor(bias_table(beta_1, beta_2, epsilon, 5, 3), &device);
        let counter = tensor(vec![2.0], &device);
        let c = AdamCoefficients::new(beta_1, beta_2, epsilon, lr as f64, 7);
        let constants = AdamConstants { beta_1, beta_2, lr };
        for (n_a, n_b) in [(784 * 512, 512), (1_001, PAST_EVERY_LIMIT - 1_001)] {
            let parts = [0..n_a, n_a..n_a + n_b];
            let slot = |device: &Device, range: &std::ops::Range<usize>| {
                let [param, grad, moment_1, moment_2] =
                    [0, 1, 3, 4].map(|k| tensor(inputs[k][range.clone()].to_vec(), device));
                AdamSlot {
                    param,
                    grad,
                    moment_1,
                    moment_2,
                }
            };
            let [a, b] = parts.clone().map(|range| slot(&device, &range));
            let paired =
                adam_update_pair(a, b, c).map(|(p, m, v)| [values(p), values(m), values(v)]);
            let [a, b] = parts.clone().map(|range| slot(&device, &range));
            let held = [&a, &b].map(|s| [&s.param, &s.moment_1, &s.moment_2].map(Clone::clone));
            let [a, b] = [a, b].map(|s| InPlaceSlot {
                param: s.param.into_dispatch(),
                grad: s.grad.into_dispatch(),
                moment_1: s.moment_1,
                moment_2: s.moment_2,
            });
            adam_in_place(a, b, &table, &counter, constants);
            let in_place = held.map(|tensors| tensors.map(values));
            for k in 0..2 {
                let what = format!("tensor {} of the pair ({n_a} + {n_b})", k + 1);
                // The moments are the same bits as the pair kernel's. The weights are held, like
                // the pair kernel's, to the CPU's within tolerance: the two shaders are compiled
                // apart and may round the division differently (up to 4e-6 relative seen on
                // lavapipe, where an update is 600 times its learning rate).
                assert!(in_place[k][1..] == paired[k][1..], "{what}: moments differ");
                let s = slot(&Device::flex(), &parts[k]);
                let (p, m, v) = adam_update(s.param, s.grad, None, s.moment_1, s.moment_2, c);
                for (name, (got, want)) in ["param", "moment 1", "moment 2"]
                    .iter()
                    .zip(in_place[k].iter().zip([values(p), values(m), values(v)]))
                {
                    assert_close(&format!("{what}: {name}"), got, &want);
                }
            }
        }
    }

    /// The batch the counter names, out of a block whose rows past the counter's batch lie
    /// beyond 2^24 elements (an f32 cannot index them), at batch sizes 128 and 1,024 of 784
    /// pixels: every element, in place, against the host's slice.
    #[test]
    fn rows_at_copies_the_counters_batch_out_of_a_block() {
        let device = gpu();
        let (n, pixels) = (22_000, 784);
        let block: Vec<f32> = (0..n * pixels).map(|i| (i % 1_000_003) as f32).collect();
        let source = Tensor::<2>::from_data(TensorData::new(block.clone(), [n, pixels]), &device);
        for (rows, batch, first) in [(128, 170, 2), (128, 2, 2), (1_024, 20, 0)] {
            let counter = tensor(vec![batch as f32], &device);
            let got = values(rows_at(&source, &counter, rows, first));
            let start = (batch - first) * rows * pixels;
            assert!(
                got == block[start..start + rows * pixels],
                "batch {batch} of {rows} rows, block from batch {first}"
            );
        }
    }

    /// The running sum gains loss * weight as the ordinary loop adds it (`running + loss *
    /// weight`, in f32) and the counter one, step after step.
    #[test]
    fn finish_step_adds_the_weighted_loss_and_counts_the_step() {
        let device = gpu();
        let (running, counter) = (tensor(vec![2.5], &device), tensor(vec![7.0], &device));
        let mut want = 2.5f32;
        for (k, loss) in [0.3f32, 541.25, 1e-3].into_iter().enumerate() {
            finish_step(&running, &counter, tensor(vec![loss], &device), 128.0);
            want += loss * 128.0;
            assert_eq!(values(running.clone()), vec![want], "step {k}");
            assert_eq!(values(counter.clone()), vec![8.0 + k as f32], "step {k}");
        }
    }
}
