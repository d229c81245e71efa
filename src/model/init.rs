//! Weight initialisation drawn on the host from a seeded ChaCha stream.
//!
//! Drawing on the host instead of on the device gives the CPU and the GPU backends the very
//! same starting weights for a seed, which is what lets a test compare their losses step by step.

use burn::module::Param;
use burn::nn::Linear;
use burn::tensor::{Device, Tensor, TensorData};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// A `Linear` layer initialised as PyTorch's `nn.Linear`: weights and bias uniform in
/// (-1/sqrt(fan_in), 1/sqrt(fan_in)).
pub fn linear(rng: &mut ChaCha8Rng, d_in: usize, d_out: usize, device: &Device) -> Linear {
    let k = 1.0 / (d_in as f32).sqrt();
    let mut draw = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-k..k)).collect() };
    let weight = draw(d_in * d_out);
    let bias = draw(d_out);
    Linear {
        weight: Param::from_tensor(Tensor::from_data(
            TensorData::new(weight, [d_in, d_out]),
            device,
        )),
        bias: Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(bias, [d_out]),
            device,
        ))),
    }
}
