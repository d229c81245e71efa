//! The weights as PyTorch names and lays them out, so that a trained model leaves Burn: the
//! names are those of the PyTorch reference's `AutoEncoder` (`enc`, `head_mu`, `head_logvar`,
//! `dec`, with `nn.Sequential` indices), so its `load_state_dict` takes them as they are.

use burn::nn::Linear;

use super::AutoEncoder;

/// One tensor of a PyTorch `state_dict`: row-major `values` of `shape`.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

impl AutoEncoder {
    /// Every weight and bias, in the reference's order. A weight is `[out, in]`, the layout
    /// of `torch.nn.Linear` (`y = x W^T + b`), where Burn keeps `[in, out]` (`y = x W + b`):
    /// each weight matrix is transposed on the way out.
    ///
    /// Kept whole: the names and their layers in PyTorch's order, one list a reader checks against
    /// the reference.
    pub fn pytorch_state_dict(&self) -> Result<Vec<NamedTensor>, String> {
        let (e, d) = (&self.encoder, &self.decoder);
        let mut layers: Vec<(&str, &Linear)> = vec![
            ("enc.0", &e.hidden1),
            ("enc.2", &e.hidden2),
            ("head_mu", &e.mu),
        ];
        if let Some(log_var) = &e.log_var {
            layers.push(("head_logvar", log_var));
        }
        layers.extend([
            ("dec.0", &d.hidden1),
            ("dec.2", &d.hidden2),
            ("dec.4", &d.output),
        ]);
        let mut out = Vec::with_capacity(2 * layers.len() + 8);
        // --arch conv: the convolutions keep PyTorch's layouts as they are in Burn (`Conv2d`
        // [out, in, 3, 3], `ConvTranspose2d` [in, out, 3, 3]); they go under `enc_conv` and
        // `dec_conv`, indexed as in an nn.Sequential with a ReLU between.
        let convs = [
            ("enc_conv.0", e.conv1.as_ref().map(|c| (&c.weight, &c.bias))),
            ("enc_conv.2", e.conv2.as_ref().map(|c| (&c.weight, &c.bias))),
        ];
        push_convs(&mut out, convs)?;
        for (prefix, layer) in layers {
            let [inputs, outputs] = layer.weight.dims();
            let weight = floats(layer.weight.val().into_data())?;
            let mut transposed = vec![0.0f32; weight.len()];
            for i in 0..inputs {
                for o in 0..outputs {
                    transposed[o * inputs + i] = weight[i * outputs + o];
                }
            }
            let bias = match &layer.bias {
                Some(b) => floats(b.val().into_data())?,
                None => vec![0.0; outputs],
            };
            out.push(NamedTensor {
                name: format!("{prefix}.weight"),
                shape: vec![outputs, inputs],
                values: transposed,
            });
            out.push(NamedTensor {
                name: format!("{prefix}.bias"),
                shape: vec![outputs],
                values: bias,
            });
        }
        let deconvs = [
            (
                "dec_conv.0",
                d.deconv1.as_ref().map(|c| (&c.weight, &c.bias)),
            ),
            (
                "dec_conv.2",
                d.deconv2.as_ref().map(|c| (&c.weight, &c.bias)),
            ),
        ];
        push_convs(&mut out, deconvs)?;
        Ok(out)
    }
}

/// The weight and bias of each convolution present (`--arch conv`), under its name.
fn push_convs(
    out: &mut Vec<NamedTensor>,
    convs: [(&str, Option<ConvParams>); 2],
) -> Result<(), String> {
    for (prefix, (weight, bias)) in convs.into_iter().filter_map(|(p, c)| Some((p, c?))) {
        out.push(NamedTensor {
            name: format!("{prefix}.weight"),
            shape: weight.dims().to_vec(),
            values: floats(weight.val().into_data())?,
        });
        if let Some(b) = bias {
            out.push(NamedTensor {
                name: format!("{prefix}.bias"),
                shape: b.dims().to_vec(),
                values: floats(b.val().into_data())?,
            });
        }
    }
    Ok(())
}

type ConvParams<'a> = (
    &'a burn::module::Param<burn::tensor::Tensor<4>>,
    &'a Option<burn::module::Param<burn::tensor::Tensor<1>>>,
);

/// A tensor's values on the host as f32, or why not (one sentence).
pub(super) fn floats(data: burn::tensor::TensorData) -> Result<Vec<f32>, String> {
    data.try_into_vec::<f32>().map_err(|e| format!("{e:?}"))
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Tensor, TensorData};

    use super::NamedTensor;
    use crate::model::{ModelConfig, ModelKind};

    /// The exported layers, multiplied out as PyTorch would (`x W^T + b`, relu between),
    /// decode a latent point to the very pixels Burn's decoder gives: names, order and the
    /// transposition are right.
    #[test]
    fn the_state_dict_decodes_as_burns_decoder_does() {
        let device = Device::flex();
        let cfg = ModelConfig {
            kind: ModelKind::Vae,
            input: 12,
            hidden: [7, 5],
            latent: 3,
            arch: crate::model::Arch::Mlp,
        };
        let model = cfg.init(11, &device);
        let sd = model.pytorch_state_dict().unwrap();
        let names: Vec<&str> = sd.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "enc.0.weight",
                "enc.0.bias",
                "enc.2.weight",
                "enc.2.bias",
                "head_mu.weight",
                "head_mu.bias",
                "head_logvar.weight",
                "head_logvar.bias",
                "dec.0.weight",
                "dec.0.bias",
                "dec.2.weight",
                "dec.2.bias",
                "dec.4.weight",
                "dec.4.bias"
            ]
        );
        let get = |n: &str| sd.iter().find(|t| t.name == n).unwrap();
        assert_eq!(get("enc.0.weight").shape, [7, 12]);
        assert_eq!(get("dec.0.weight").shape, [5, 3]);
        assert_eq!(get("dec.4.bias").shape, [12]);

        let z = [0.3f32, -1.1, 0.7];
        let mut x = z.to_vec();
        for (i, layer) in ["dec.0", "dec.2", "dec.4"].iter().enumerate() {
            let (w, b) = (
                get(&format!("{layer}.weight")),
                get(&format!("{layer}.bias")),
            );
            let (outs, ins) = (w.shape[0], w.shape[1]);
            x = (0..outs)
                .map(|o| {
                    let y =
                        b.values[o] + (0..ins).map(|k| w.values[o * ins + k] * x[k]).sum::<f32>();
                    if i < 2 { y.max(0.0) } else { y }
                })
                .collect();
        }
        let burn_logits = model
            .decoder
            .forward(Tensor::<2>::from_data(
                TensorData::new(z.to_vec(), [1, 3]),
                &device,
            ))
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        for (a, b) in x.iter().zip(&burn_logits) {
            assert!((a - b).abs() < 1e-5, "{x:?} vs {burn_logits:?}");
        }
        let ae = ModelConfig {
            kind: ModelKind::Ae,
            ..cfg
        }
        .init(11, &device);
        assert_eq!(
            ae.pytorch_state_dict().unwrap().len(),
            12,
            "the AE has no log-variance head"
        );
    }

    /// PyTorch's convolution (`nn.Conv2d`, weight [out, in, k, k]) of a `[c, side, side]`
    /// image, 3x3, stride 2, padding 1, written out loop by loop.
    fn conv_down(
        x: &[f32],
        c_in: usize,
        side: usize,
        w: &NamedTensor,
        b: &NamedTensor,
    ) -> Vec<f32> {
        let (c_out, half) = (w.shape[0], side / 2);
        let mut y = vec![0.0f32; c_out * half * half];
        for o in 0..c_out {
            for r in 0..half {
                for c in 0..half {
                    let mut acc = b.values[o];
                    for i in 0..c_in {
                        for ky in 0..3 {
                            for kx in 0..3 {
                                let (iy, ix) =
                                    ((2 * r + ky) as isize - 1, (2 * c + kx) as isize - 1);
                                if iy < 0 || ix < 0 || iy >= side as isize || ix >= side as isize {
                                    continue;
                                }
                                let v = x[(i * side + iy as usize) * side + ix as usize];
                                acc += v * w.values[((o * c_in + i) * 3 + ky) * 3 + kx];
                            }
                        }
                    }
                    y[(o * half + r) * half + c] = acc;
                }
            }
        }
        y
    }

    /// PyTorch's transposed convolution (`nn.ConvTranspose2d`, weight [in, out, k, k]), 3x3,
    /// stride 2, padding 1, output padding 1: each input pixel scatters into the doubled side.
    fn conv_up(x: &[f32], c_in: usize, side: usize, w: &NamedTensor, b: &NamedTensor) -> Vec<f32> {
        let (c_out, double) = (w.shape[1], side * 2);
        let mut y: Vec<f32> = (0..c_out * double * double)
            .map(|k| b.values[k / (double * double)])
            .collect();
        for i in 0..c_in {
            for r in 0..side {
                for c in 0..side {
                    let v = x[(i * side + r) * side + c];
                    for o in 0..c_out {
                        for ky in 0..3 {
                            for kx in 0..3 {
                                let (oy, ox) =
                                    ((2 * r + ky) as isize - 1, (2 * c + kx) as isize - 1);
                                if oy < 0
                                    || ox < 0
                                    || oy >= double as isize
                                    || ox >= double as isize
                                {
                                    continue;
                                }
                                y[(o * double + oy as usize) * double + ox as usize] +=
                                    v * w.values[((i * c_out + o) * 3 + ky) * 3 + kx];
                            }
                        }
                    }
                }
            }
        }
        y
    }

    fn dense(x: &[f32], w: &NamedTensor, b: &NamedTensor, relu: bool) -> Vec<f32> {
        let (outs, ins) = (w.shape[0], w.shape[1]);
        (0..outs)
            .map(|o| {
                let y = b.values[o] + (0..ins).map(|k| w.values[o * ins + k] * x[k]).sum::<f32>();
                if relu { y.max(0.0) } else { y }
            })
            .collect()
    }

    /// --arch conv: the exported convolutions, run as PyTorch defines its layers (written out
    /// here loop by loop), encode an image and decode a point as Burn's model does: the
    /// layouts, the flattening order (channels, then rows) and the transposed convolution's
    /// padding are PyTorch's.
    #[test]
    fn a_conv_state_dict_runs_as_pytorch_layers_would() {
        use crate::model::Arch;
        let device = Device::flex();
        let cfg = ModelConfig {
            kind: ModelKind::Vae,
            input: 64,
            hidden: [10, 6],
            latent: 2,
            arch: Arch::Conv,
        };
        let model = cfg.init(3, &device);
        let sd = model.pytorch_state_dict().unwrap();
        let get = |n: &str| {
            sd.iter()
                .find(|t| t.name == n)
                .unwrap_or_else(|| panic!("{n}"))
        };
        assert_eq!(get("enc_conv.0.weight").shape, [32, 1, 3, 3]);
        assert_eq!(get("enc.0.weight").shape, [10, 64 * 2 * 2]);
        assert_eq!(get("dec_conv.0.weight").shape, [64, 32, 3, 3]);

        // Encode one 8x8 image.
        let image: Vec<f32> = (0..64).map(|k| ((k * 37) % 11) as f32 / 10.0).collect();
        let h = conv_down(
            &image,
            1,
            8,
            get("enc_conv.0.weight"),
            get("enc_conv.0.bias"),
        );
        let h: Vec<f32> = h.into_iter().map(|v| v.max(0.0)).collect();
        let h = conv_down(&h, 32, 4, get("enc_conv.2.weight"), get("enc_conv.2.bias"));
        let h: Vec<f32> = h.into_iter().map(|v| v.max(0.0)).collect();
        let h = dense(&h, get("enc.0.weight"), get("enc.0.bias"), true);
        let h = dense(&h, get("enc.2.weight"), get("enc.2.bias"), true);
        let mu = dense(&h, get("head_mu.weight"), get("head_mu.bias"), false);
        let burn_mu = model
            .encoder
            .forward(Tensor::<2>::from_data(
                TensorData::new(image, [1, 64]),
                &device,
            ))
            .mu
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        for (a, b) in mu.iter().zip(&burn_mu) {
            assert!((a - b).abs() < 1e-5, "encode: {mu:?} vs {burn_mu:?}");
        }

        // Decode one point.
        let z = [0.4f32, -0.9];
        let x = dense(&z, get("dec.0.weight"), get("dec.0.bias"), true);
        let x = dense(&x, get("dec.2.weight"), get("dec.2.bias"), true);
        let x = dense(&x, get("dec.4.weight"), get("dec.4.bias"), true);
        let x = conv_up(&x, 64, 2, get("dec_conv.0.weight"), get("dec_conv.0.bias"));
        let x: Vec<f32> = x.into_iter().map(|v| v.max(0.0)).collect();
        let logits = conv_up(&x, 32, 4, get("dec_conv.2.weight"), get("dec_conv.2.bias"));
        let burn_logits = model
            .decoder
            .forward(Tensor::<2>::from_data(
                TensorData::new(z.to_vec(), [1, 2]),
                &device,
            ))
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(logits.len(), 64);
        for (a, b) in logits.iter().zip(&burn_logits) {
            assert!(
                (a - b).abs() < 1e-5,
                "decode: {logits:?} vs {burn_logits:?}"
            );
        }
    }
}
