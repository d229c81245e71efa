//! Launching the CubeCL kernels of `shaders/` on any cubecl runtime.

#[path = "../../shaders/adam.rs"]
pub(super) mod adam_shader;
#[path = "../../shaders/bce_logits.rs"]
mod bce_shader;

use burn::backend::cubecl::dtype_to_storage_type;
use burn::backend::tensor::FloatTensor;
use burn::tensor::Shape;
use burn_cubecl::CubeBackend;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::InputScalar;
use cubecl::{CubeCount, CubeDim, calculate_cube_count_elemwise};

use super::{AdamCoefficients, FusedOps, PairUpdate};

impl FusedOps for CubeBackend {
    fn bce_logits_sum(
        logits: FloatTensor<Self>,
        images: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let [logits, images] = [logits, images].map(into_contiguous);
        let shape = logits.meta.shape().clone();
        let [terms, unit_grad] = [(); 2].map(|_| like(&logits, shape.clone()));
        let n = shape.num_elements();
        let dtype = logits.dtype;
        let (cube_count, cube_dim) = one_thread_each(&logits, n);
        bce_shader::bce_logits_forward::launch(
            &terms.client,
            cube_count,
            cube_dim,
            logits.into_tensor_arg(),
            images.into_tensor_arg(),
            terms.clone().into_tensor_arg(),
            unit_grad.clone().into_tensor_arg(),
            dtype_to_storage_type(dtype),
        );
        // Burn's reductions do the sum, over rows short enough for every driver.
        (super::sum_in_stages::<Self>(terms), unit_grad)
    }

    fn adam_update(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        moment_1: FloatTensor<Self>,
        moment_2: FloatTensor<Self>,
        c: AdamCoefficients,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let [param, grad, moment_1, moment_2] =
            [param, grad, moment_1, moment_2].map(into_contiguous);
        let shape = param.meta.shape().clone();
        let [param_out, moment_1_out, moment_2_out] = [(); 3].map(|_| like(&param, shape.clone()));
        let n = shape.num_elements();
        let storage = dtype_to_storage_type(param.dtype);
        let scalar = |value: f32| InputScalar::new(value, storage);
        let (cube_count, cube_dim) = one_thread_each(&param, n);
        adam_shader::adam_update::launch(
            &param_out.client,
            cube_count,
            cube_dim,
            param.into_tensor_arg(),
            grad.into_tensor_arg(),
            moment_1.into_tensor_arg(),
            moment_2.into_tensor_arg(),
            param_out.clone().into_tensor_arg(),
            moment_1_out.clone().into_tensor_arg(),
            moment_2_out.clone().into_tensor_arg(),
            scalar(c.beta_1),
            scalar(c.one_minus_beta_1),
            scalar(c.beta_2),
            scalar(c.one_minus_beta_2),
            scalar(c.step_size),
            scalar(c.epsilon),
            scalar(c.lr),
            storage,
        );
        (param_out, moment_1_out, moment_2_out)
    }
    fn adam_update_pair(
        param_a: FloatTensor<Self>,
        grad_a: FloatTensor<Self>,
        moment_1_a: FloatTensor<Self>,
        moment_2_a: FloatTensor<Self>,
        param_b: FloatTensor<Self>,
        grad_b: FloatTensor<Self>,
        moment_1_b: FloatTensor<Self>,
        moment_2_b: FloatTensor<Self>,
        c: AdamCoefficients,
    ) -> PairUpdate<Self> {
        // The pair kernel binds 14 buffers (and CubeCL one more for the lengths); a device
        // that offers fewer gets the two single launches.
        if param_a.client.properties().hardware.max_bindings < PAIR_BINDINGS
            || param_a.dtype != param_b.dtype
        {
            let (pa, ma, va) = Self::adam_update(param_a, grad_a, moment_1_a, moment_2_a, c);
            let (pb, mb, vb) = Self::adam_update(param_b, grad_b, moment_1_b, moment_2_b, c);
            return (pa, ma, va, pb, mb, vb);
        }
        let [param_a, grad_a, moment_1_a, moment_2_a] =
            [param_a, grad_a, moment_1_a, moment_2_a].map(into_contiguous);
        let [param_b, grad_b, moment_1_b, moment_2_b] =
            [param_b, grad_b, moment_1_b, moment_2_b].map(into_contiguous);
        let (shape_a, shape_b) = (param_a.meta.shape().clone(), param_b.meta.shape().clone());
        let [pa, ma, va] = [(); 3].map(|_| like(&param_a, shape_a.clone()));
        let [pb, mb, vb] = [(); 3].map(|_| like(&param_b, shape_b.clone()));
        let n = shape_a.num_elements() + shape_b.num_elements();
        let storage = dtype_to_storage_type(param_a.dtype);
        let scalar = |value: f32| InputScalar::new(value, storage);
        let (cube_count, cube_dim) = one_thread_each(&param_a, n);
        adam_shader::adam_update_pair::launch(
            &pa.client,
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
            pa.clone().into_tensor_arg(),
            ma.clone().into_tensor_arg(),
            va.clone().into_tensor_arg(),
            pb.clone().into_tensor_arg(),
            mb.clone().into_tensor_arg(),
            vb.clone().into_tensor_arg(),
            scalar(c.beta_1),
            scalar(c.one_minus_beta_1),
            scalar(c.beta_2),
            scalar(c.one_minus_beta_2),
            scalar(c.step_size),
            scalar(c.epsilon),
            scalar(c.lr),
            storage,
        );
        (pa, ma, va, pb, mb, vb)
    }
}

/// The storage buffers `adam_update_pair` needs bound at once: its 14 tensors and CubeCL's
/// buffer of their lengths.
const PAIR_BINDINGS: u32 = 15;

/// A launch of one thread per element for `n` elements on `tensor`'s device.
pub(super) fn one_thread_each(tensor: &CubeTensor, n: usize) -> (CubeCount, CubeDim) {
    let cube_dim = CubeDim::new(&tensor.client, n);
    (
        calculate_cube_count_elemwise(&tensor.client, n, cube_dim),
        cube_dim,
    )
}

/// A new, uninitialised tensor on `tensor`'s device with its dtype.
pub(super) fn like(tensor: &CubeTensor, shape: Shape) -> CubeTensor {
    empty_device_dtype(
        tensor.client.clone(),
        tensor.device.clone(),
        shape,
        tensor.dtype,
    )
}
