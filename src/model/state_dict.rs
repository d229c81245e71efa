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
        let mut out = Vec::with_capacity(2 * layers.len());
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
        Ok(out)
    }
}

fn floats(data: burn::tensor::TensorData) -> Result<Vec<f32>, String> {
    data.try_into_vec::<f32>().map_err(|e| format!("{e:?}"))
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Tensor, TensorData};

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
}
