//! The MLP autoencoder (AE) and variational autoencoder (VAE) of the spec.
//!
//! Both share one structure: an encoder 784-512-256 with a latent head, and a mirrored decoder
//! to logits. The VAE's encoder has a second head for the log-variance; an `Option` field keeps
//! one type for both, so every command works on either model without generics.

use burn::nn::Linear;
use burn::nn::conv::{Conv2d, ConvTranspose2d};
use burn::prelude::*;
use burn::tensor::activation::relu;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::init;
use super::state_dict::floats;
use crate::kernels::{LatentSample, bce_with_logits, dense, reparameterise};

/// Which of the two models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Plain autoencoder: the encoder outputs the code z.
    Ae,
    /// Variational autoencoder: the encoder outputs mu and log-variance, z is sampled.
    Vae,
}

impl ModelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Ae => "ae",
            ModelKind::Vae => "vae",
        }
    }

    pub fn is_variational(self) -> bool {
        self == ModelKind::Vae
    }

    /// Names of the latent axes in figures: the VAE's plotted codes are posterior means.
    pub fn axis_names(self) -> (String, String) {
        let mu = if self.is_variational() { " (mu)" } else { "" };
        (format!("z1{mu}"), format!("z2{mu}"))
    }
}

/// Pixels of a 28x28 image, the size of every bundled and fetched set.
pub const INPUT: usize = 784;
/// The spec's hidden widths, encoder order.
pub const HIDDEN: [usize; 2] = [512, 256];
/// The exercise's latent plane.
pub const LATENT: usize = 2;

/// The layers between the pixels and the dense layers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// The spec's MLP: the pixels go straight into the dense layers.
    #[default]
    Mlp,
    /// Two 3x3 stride-2 convolutions (32 and 64 channels: 28x28 -> 14x14 -> 7x7) before the
    /// dense layers, and two transposed convolutions after the decoder's (7x7 -> 14x14 ->
    /// 28x28), the usual convolutional VAE of the Keras and TensorFlow tutorials.
    Conv,
}

impl Arch {
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::Mlp => "mlp",
            Arch::Conv => "conv",
        }
    }
}

/// The channels of the two convolutions (encoder order; the decoder mirrors them).
pub const CONV_CHANNELS: [usize; 2] = [32, 64];

/// The sizes of a model; with the kind, all that is needed to rebuild it from a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub kind: ModelKind,
    /// Pixels per image (784 for 28x28).
    pub input: usize,
    /// Widths of the two hidden layers (the decoder mirrors them).
    pub hidden: [usize; 2],
    /// Latent dimensions (2 for the exercise).
    pub latent: usize,
    /// Runs made before `--arch` existed were MLPs.
    #[serde(default)]
    pub arch: Arch,
}

impl ModelConfig {
    /// The spec's model of `kind`: 784-512-256-2 and back.
    pub fn new(kind: ModelKind) -> ModelConfig {
        ModelConfig {
            kind,
            input: INPUT,
            hidden: HIDDEN,
            latent: LATENT,
            arch: Arch::Mlp,
        }
    }

    /// A model with weights drawn from `seed` (the same weights on every device).
    pub fn init(&self, seed: u64, device: &Device) -> AutoEncoder {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let [h1, h2] = self.hidden;
        let [c1, c2] = CONV_CHANNELS;
        let conv = self.arch == Arch::Conv;
        // What the dense layers see: the pixels, or the second convolution's 64 x 7 x 7.
        let dense_in = self.dense_input();
        let (conv1, conv2) = match conv {
            true => (
                Some(init::conv_down(&mut rng, 1, c1, device)),
                Some(init::conv_down(&mut rng, c1, c2, device)),
            ),
            false => (None, None),
        };
        let mut layer = |i, o| init::linear(&mut rng, i, o, device);
        let encoder = Encoder {
            conv1,
            conv2,
            hidden1: layer(dense_in, h1),
            hidden2: layer(h1, h2),
            mu: layer(h2, self.latent),
            log_var: self.kind.is_variational().then(|| layer(h2, self.latent)),
        };
        let (hidden1, hidden2, output) =
            (layer(self.latent, h2), layer(h2, h1), layer(h1, dense_in));
        let (deconv1, deconv2) = match conv {
            true => (
                Some(init::conv_up(&mut rng, c2, c1, device)),
                Some(init::conv_up(&mut rng, c1, 1, device)),
            ),
            false => (None, None),
        };
        let decoder = Decoder {
            hidden1,
            hidden2,
            output,
            deconv1,
            deconv2,
            side: self.side(),
        };
        AutoEncoder { encoder, decoder }
    }

    /// The side of the square images (28 for the MNIST family).
    pub fn side(&self) -> usize {
        (self.input as f64).sqrt().round() as usize
    }

    /// Whether the convolutions fit these images: square, with a side divisible by 4 (two
    /// halvings); an MLP takes any size.
    pub fn check(&self) -> Result<(), String> {
        let side = self.side();
        if self.arch == Arch::Conv && (side * side != self.input || !side.is_multiple_of(4)) {
            return Err(format!(
                "--arch conv needs square images with a side divisible by 4 (28x28 is); these \
                 have {} pixels",
                self.input
            ));
        }
        Ok(())
    }

    /// Inputs of the first dense layer (outputs of the decoder's last): the pixels, or the
    /// 64 channels of the second convolution at a quarter of the side.
    pub fn dense_input(&self) -> usize {
        match self.arch {
            Arch::Mlp => self.input,
            Arch::Conv => CONV_CHANNELS[1] * (self.side() / 4).pow(2),
        }
    }
}

impl ModelConfig {
    /// Multiply-adds of one image's forward pass through every layer.
    pub fn macs_per_image(&self) -> usize {
        let [h1, h2] = self.hidden;
        let heads = if self.kind.is_variational() { 2 } else { 1 };
        let d = self.dense_input();
        let encoder = d * h1 + h1 * h2 + heads * h2 * self.latent;
        let decoder = self.latent * h2 + h2 * h1 + h1 * d;
        // Each convolution: 9 multiply-adds per input channel, per output channel, per output
        // pixel of the smaller side; the transposed ones mirror them exactly.
        let [c1, c2] = CONV_CHANNELS;
        let (half, quarter) = ((self.side() / 2).pow(2), (self.side() / 4).pow(2));
        let convs = match self.arch {
            Arch::Mlp => 0,
            Arch::Conv => 2 * 9 * (half * c1 + quarter * c2 * c1),
        };
        encoder + decoder + convs
    }

    /// Floating-point operations of one training step on `batch` images, counting the matrix
    /// products (everything else is a few per element): the forward pass, then twice as much
    /// backward (the gradients of each layer's input and weights), less the input gradient of
    /// the first layer, which nothing needs. 0.72 GFLOP for the AE at batch 128.
    pub fn flops_per_step(&self, batch: usize) -> f64 {
        let forward = 2.0 * (batch * self.macs_per_image()) as f64;
        let first = match self.arch {
            Arch::Mlp => self.input * self.hidden[0],
            Arch::Conv => 9 * (self.side() / 2).pow(2) * CONV_CHANNELS[0],
        };
        3.0 * forward - 2.0 * (batch * first) as f64
    }
}

#[derive(Module, Debug)]
pub struct Encoder {
    /// `--arch conv` only: 1 -> 32 -> 64 channels, each halving the side.
    pub(super) conv1: Option<Conv2d>,
    pub(super) conv2: Option<Conv2d>,
    pub(super) hidden1: Linear,
    pub(super) hidden2: Linear,
    /// The code z (AE) or the posterior mean mu (VAE).
    pub(super) mu: Linear,
    /// The posterior log-variance; only the VAE has it.
    pub(super) log_var: Option<Linear>,
}

#[derive(Module, Debug)]
pub struct Decoder {
    pub(super) hidden1: Linear,
    pub(super) hidden2: Linear,
    pub(super) output: Linear,
    /// `--arch conv` only: 64 -> 32 -> 1 channels, each doubling the side.
    pub(super) deconv1: Option<ConvTranspose2d>,
    pub(super) deconv2: Option<ConvTranspose2d>,
    /// The images' side, to fold the dense output into channels (not a parameter).
    #[module(skip)]
    pub(super) side: usize,
}

#[derive(Module, Debug)]
pub struct AutoEncoder {
    pub encoder: Encoder,
    pub decoder: Decoder,
}

/// What the encoder says about a batch of images.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// `[batch, latent]`: the code (AE) or the posterior mean (VAE).
    pub mu: Tensor<2>,
    /// `[batch, latent]`: the posterior log-variance (VAE only).
    pub log_var: Option<Tensor<2>>,
}

/// The loss of one batch, each a `[1]` tensor in nats per image.
#[derive(Debug, Clone)]
pub struct Losses {
    pub recon: Tensor<1>,
    /// `None` for the AE.
    pub kl: Option<Tensor<1>>,
    /// recon + beta * kl: what is minimised (the negative ELBO for the VAE at beta = 1).
    pub total: Tensor<1>,
}

impl Encoder {
    /// # Shapes
    /// - images: `[batch, pixels]`
    pub fn forward(&self, images: Tensor<2>) -> Encoded {
        let images = match (&self.conv1, &self.conv2) {
            (Some(c1), Some(c2)) => {
                let [batch, pixels] = images.dims();
                let side = (pixels as f64).sqrt().round() as usize;
                let x = images.reshape([batch, 1, side, side]);
                let x = relu(c2.forward(relu(c1.forward(x))));
                let [_, c, h, w] = x.dims();
                x.reshape([batch, c * h * w])
            }
            _ => images,
        };
        let h = dense(images, &self.hidden1, true);
        let h = dense(h, &self.hidden2, true);
        Encoded {
            mu: dense(h.clone(), &self.mu, false),
            log_var: self.log_var.as_ref().map(|l| dense(h, l, false)),
        }
    }
}

impl Decoder {
    /// Logits of the pixels; `sigmoid` of them is the image.
    ///
    /// # Shapes
    /// - z: `[batch, latent]` -> `[batch, pixels]`
    pub fn forward(&self, z: Tensor<2>) -> Tensor<2> {
        let h = dense(z, &self.hidden1, true);
        let h = dense(h, &self.hidden2, true);
        let out = dense(h, &self.output, false);
        match (&self.deconv1, &self.deconv2) {
            (Some(d1), Some(d2)) => {
                let [batch, features] = out.dims();
                let quarter = self.side / 4;
                let channels = features / (quarter * quarter);
                let x = relu(out).reshape([batch, channels, quarter, quarter]);
                let logits = d2.forward(relu(d1.forward(x)));
                logits.reshape([batch, self.side * self.side])
            }
            _ => out,
        }
    }
}

/// One dense layer on the host, `y = x W + b`: what a decoder outside Burn (the explorer's
/// JavaScript) needs to compute the same images.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseLayer {
    pub inputs: usize,
    pub outputs: usize,
    /// Row-major `[inputs, outputs]`, the layout Burn's `Linear` keeps.
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

impl Decoder {
    /// The three layers in order: relu after the first two, sigmoid of the last gives pixels.
    pub fn dense_layers(&self) -> Result<Vec<DenseLayer>, String> {
        [&self.hidden1, &self.hidden2, &self.output]
            .into_iter()
            .map(|l| {
                let [inputs, outputs] = l.weight.dims();
                Ok(DenseLayer {
                    inputs,
                    outputs,
                    weight: floats(l.weight.val().into_data())?,
                    bias: host_bias(&l.bias, outputs)?,
                })
            })
            .collect()
    }
}

/// One transposed convolution on the host (3x3, stride 2, padding 1, output padding 1): what
/// the explorer's JavaScript needs after the dense layers of an `--arch conv` decoder.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvLayer {
    /// Channels in and out.
    pub inputs: usize,
    pub outputs: usize,
    /// Row-major `[inputs, outputs, 3, 3]`, the layout of Burn's (and PyTorch's)
    /// `ConvTranspose2d`.
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

impl Decoder {
    /// The transposed convolutions after the dense layers, in order (relu after the first,
    /// sigmoid of the last gives pixels); none for an MLP.
    pub fn transposed_convs(&self) -> Result<Vec<ConvLayer>, String> {
        [&self.deconv1, &self.deconv2]
            .into_iter()
            .flatten()
            .map(|c| {
                let [inputs, outputs, _, _] = c.weight.dims();
                Ok(ConvLayer {
                    inputs,
                    outputs,
                    weight: floats(c.weight.val().into_data())?,
                    bias: host_bias(&c.bias, outputs)?,
                })
            })
            .collect()
    }
}

/// A layer's bias on the host; zeros where the layer has none.
fn host_bias(
    bias: &Option<burn::module::Param<Tensor<1>>>,
    outputs: usize,
) -> Result<Vec<f32>, String> {
    match bias {
        Some(b) => floats(b.val().into_data()),
        None => Ok(vec![0.0; outputs]),
    }
}

impl AutoEncoder {
    pub fn is_variational(&self) -> bool {
        self.encoder.log_var.is_some()
    }

    /// The training objective of a batch.
    ///
    /// The VAE's latent step (sampling and KL) is the fused kernel of `crate::kernels`.
    ///
    /// `eps` is the standard-normal noise of the reparameterisation, drawn by the caller so
    /// that a run is reproducible on any device; the AE ignores it. A VAE given no noise is
    /// decoded at its mean and reports no KL (the reconstruction at mu).
    ///
    /// # Shapes
    /// - images: `[batch, pixels]`, eps: `[batch, latent]`
    pub fn losses(&self, images: Tensor<2>, eps: Option<Tensor<2>>, beta: f64) -> Losses {
        self.losses_and_codes(images, eps, beta).0
    }

    /// [`AutoEncoder::losses`], and what the encoder said on the way (evaluation keeps the
    /// test posteriors for the collapse diagnostics without a second encoder pass).
    pub fn losses_and_codes(
        &self,
        images: Tensor<2>,
        eps: Option<Tensor<2>>,
        beta: f64,
    ) -> (Losses, Encoded) {
        self.losses_weighing_kl(images, eps, |kl| kl.mul_scalar(beta))
    }

    /// [`AutoEncoder::losses`] with the KL weight in a `[1]` tensor on the device: a replayed
    /// step (`train::graph`) reads a KL warm-up's weight of its batch from a table there.
    /// The same arithmetic as a weight given as a number.
    pub fn losses_with_kl_weight(
        &self,
        images: Tensor<2>,
        eps: Option<Tensor<2>>,
        weight: Tensor<1>,
    ) -> Losses {
        self.losses_weighing_kl(images, eps, |kl| kl.mul(weight)).0
    }

    fn losses_weighing_kl(
        &self,
        images: Tensor<2>,
        eps: Option<Tensor<2>>,
        weigh: impl FnOnce(Tensor<1>) -> Tensor<1>,
    ) -> (Losses, Encoded) {
        let encoded = self.encoder.forward(images.clone());
        let Encoded { mu, log_var } = encoded.clone();
        let losses = match (log_var, eps) {
            (Some(log_var), Some(eps)) => {
                let LatentSample { z, kl } = reparameterise(mu, log_var, eps);
                let recon = bce_with_logits(self.decoder.forward(z), images);
                let total = recon.clone() + weigh(kl.clone());
                Losses {
                    recon,
                    kl: Some(kl),
                    total,
                }
            }
            _ => {
                let recon = bce_with_logits(self.decoder.forward(mu), images);
                Losses {
                    recon: recon.clone(),
                    kl: None,
                    total: recon,
                }
            }
        };
        (losses, encoded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_training_step_of_the_default_ae_is_about_0_72_gflop() {
        let ae = ModelConfig::new(ModelKind::Ae);
        // 784*512 + 512*256 + 256*2 + 2*256 + 256*512 + 512*784 multiply-adds per image.
        assert_eq!(ae.macs_per_image(), 1_065_984);
        let gflop = ae.flops_per_step(128) / 1e9;
        assert!((gflop - 0.7159).abs() < 1e-3, "{gflop}");
        let vae = ModelConfig {
            kind: ModelKind::Vae,
            ..ae
        };
        assert_eq!(vae.macs_per_image(), 1_065_984 + 512);
    }
}
