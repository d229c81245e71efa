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
        let [param_a, moment_1_a, moment_2_a, param_b, moment_1_b, moment_2_b] = [
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

