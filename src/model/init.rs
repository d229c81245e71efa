//! Weight initialisation drawn on the host from a seeded ChaCha stream.
//!
//! Drawing on the host instead of on the device gives the CPU and the GPU backends the very
//! same starting weights for a seed, which is what lets a test compare their losses step by step.

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{Linear, PaddingConfig2d};
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

/// Uniform draws in (-1/sqrt(fan_in), 1/sqrt(fan_in)) for a weight of `shape` and its bias:
/// PyTorch's default for its convolutions too.
fn uniform_pair(
    rng: &mut ChaCha8Rng,
    fan_in: usize,
    shape: [usize; 4],
    bias: usize,
    device: &Device,
) -> (Param<Tensor<4>>, Param<Tensor<1>>) {
    let k = 1.0 / (fan_in as f32).sqrt();
    let mut draw = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-k..k)).collect() };
    let weight = draw(shape.iter().product());
    let b = draw(bias);
    (
        Param::from_tensor(Tensor::from_data(TensorData::new(weight, shape), device)),
        Param::from_tensor(Tensor::from_data(TensorData::new(b, [bias]), device)),
    )
}

/// A 3x3, stride-2, padding-1 convolution (halves each side), initialised as PyTorch's
/// `nn.Conv2d` (fan in = in channels x 9).
pub fn conv_down(rng: &mut ChaCha8Rng, c_in: usize, c_out: usize, device: &Device) -> Conv2d {
    let mut conv = Conv2dConfig::new([c_in, c_out], [3, 3])
        .with_stride([2, 2])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(device);
    let (w, b) = uniform_pair(rng, c_in * 9, [c_out, c_in, 3, 3], c_out, device);
    conv.weight = w;
    conv.bias = Some(b);
    conv
}

/// Its mirror: a 3x3, stride-2 transposed convolution that doubles each side (padding 1,
/// output padding 1), initialised as PyTorch's `nn.ConvTranspose2d` (its weight is
/// `[in, out, 3, 3]`, and PyTorch takes the fan in from the second dimension: out x 9).
pub fn conv_up(
    rng: &mut ChaCha8Rng,
    c_in: usize,
    c_out: usize,
    device: &Device,
) -> ConvTranspose2d {
    let mut conv = ConvTranspose2dConfig::new([c_in, c_out], [3, 3])
        .with_stride([2, 2])
        .with_padding([1, 1])
        .with_padding_out([1, 1])
        .init(device);
    let (w, b) = uniform_pair(rng, c_out * 9, [c_in, c_out, 3, 3], c_out, device);
    conv.weight = w;
    conv.bias = Some(b);
    conv
}
