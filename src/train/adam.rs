//! Adam through the fused update of `shaders/adam.rs`, as a `burn::optim` optimiser.
//!
//! Burn's own Adam spends ~2 ms of a ~11 ms CPU step in a dozen element-wise passes over the
//! 1.07 M parameters (BENCHMARKS.md); [`FusedAdam`] makes the same update in one. It keeps
//! Burn's per-parameter state type, `AdamState`, so its checkpoints are Burn Adam records:
//! checkpoints written before it existed resume with it, and the other way round.

use burn::optim::{AdamState, AdaptiveMomentumState, LearningRate, ModuleOptimizer, Optimizer};
use burn::tensor::{Device, Tensor};

use crate::kernels::{AdamCoefficients, adam_update};

/// Adam as the reference configures it: betas 0.9 / 0.999 and PyTorch's epsilon 1e-8 (Burn's
/// default is 1e-5).
pub fn adam() -> ModuleOptimizer {
    FusedAdam {
        beta_1: 0.9,
        beta_2: 0.999,
        epsilon: 1e-8,
    }
    .into()
}

/// Burn's own Adam with the same settings: what [`FusedAdam`] replaces (`bench --burn-adam`
/// times it, the tests compare with it).
pub fn burn_adam() -> ModuleOptimizer {
    burn::optim::AdamConfig::new().with_epsilon(1e-8).init()
}

/// Adam without weight decay, gradient clipping or AMSGrad (the spec uses none of them).
#[derive(Debug, Clone)]
pub struct FusedAdam {
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
}

impl Optimizer for FusedAdam {
    type State<const D: usize> = AdamState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        // A first step starts from zero moments, which gives exactly Burn's first step.
        let (time, moment_1, moment_2) = match state {
            Some(AdamState { momentum }) => (momentum.time, momentum.moment_1, momentum.moment_2),
            None => (0, grad.zeros_like(), grad.zeros_like()),
        };
        let time = time + 1;
        let coefficients = AdamCoefficients::new(self.beta_1, self.beta_2, self.epsilon, lr, time);
        let (tensor, moment_1, moment_2) =
            adam_update(tensor, grad, moment_1, moment_2, coefficients);
        let momentum = AdaptiveMomentumState::new(time, moment_1, moment_2);
        (tensor, Some(AdamState::new(momentum)))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        AdamState::new(state.momentum.to_device(device))
    }
}

#[cfg(test)]
mod tests {
    //! The fused Adam against Burn's: the same model, the same batches, the same steps.
    use super::*;
    use burn::module::Module;
    use burn::optim::GradientsParams;
    use burn::tensor::{DeviceKind, TensorData};

    use crate::model::{ModelConfig, ModelKind};

    /// The decoder's weights and the encoder's outputs on a fixed batch after `steps` Adam
    /// steps on fixed batches, with the optimiser saved to bytes and loaded into a fresh one
    /// halfway (as a resumed run does).
    fn train(
        device: &Device,
        mut optim: ModuleOptimizer,
        fresh: fn() -> ModuleOptimizer,
        steps: usize,
    ) -> Vec<f32> {
        let config = ModelConfig {
            kind: ModelKind::Vae,
            input: 30,
            hidden: [24, 12],
            latent: 2,
            arch: crate::model::Arch::Mlp,
        };
        let mut model = config.init(7, device);
        for step in 0..steps {
            let images: Vec<f32> = (0..16 * 30)
                .map(|i| (((i * 7 + step * 13) % 17) as f32) / 16.0)
                .collect();
            let eps: Vec<f32> = (0..16 * 2)
                .map(|i| ((i + step) as f32 * 0.7).sin())
                .collect();
            let x = Tensor::<2>::from_data(TensorData::new(images, [16, 30]), device);
            let e = Tensor::<2>::from_data(TensorData::new(eps, [16, 2]), device);
            let loss = model.losses(x, Some(e), 1.0).total;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            // lr 1e-2 so that 40 steps move the weights well beyond rounding.
            model = optim.step(1e-2, model, grads);
            if step == steps / 2 {
                let bytes = optim.into_bytes().expect("optimizer state serialises");
                optim = fresh().from_bytes(bytes).expect("optimizer state loads");
            }
        }
        let model = model.valid();
        let mut flat = Vec::new();
        for layer in model.decoder.dense_layers().expect("f32 weights") {
            flat.extend(layer.weight);
            flat.extend(layer.bias);
        }
        let probe: Vec<f32> = (0..4 * 30).map(|i| (i as f32 * 0.37).cos()).collect();
        let encoded = model.encoder.forward(Tensor::<2>::from_data(
            TensorData::new(probe, [4, 30]),
            &device.clone().inner(),
        ));
        for t in [Some(encoded.mu), encoded.log_var].into_iter().flatten() {
            flat.extend(
                t.into_data()
                    .convert::<f32>()
                    .try_to_vec::<f32>()
                    .expect("f32"),
            );
        }
        flat
    }

    #[test]
    fn fused_adam_makes_burns_updates_bit_for_bit_on_the_cpu() {
        let device = Device::flex().autodiff();
        let ours = train(&device, adam(), adam, 40);
        let burns = train(&device, burn_adam(), burn_adam, 40);
        let initial = train(&device, adam(), adam, 0);
        assert_eq!(ours.len(), burns.len());
        assert_ne!(ours, initial, "the steps changed the weights");
        assert_eq!(ours, burns);
    }

    #[test]
    fn fused_adam_matches_burns_through_wgpu() {
        let device = Device::wgpu(DeviceKind::DefaultDevice).autodiff();
        let ours = train(&device, adam(), adam, 12);
        let burns = train(&device, burn_adam(), burn_adam, 12);
        for (i, (a, b)) in ours.iter().zip(&burns).enumerate() {
            assert!(
                (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                "weight {i}: fused {a}, Burn {b}"
            );
        }
    }

    #[test]
    fn burn_adam_checkpoints_resume_with_the_fused_adam() {
        let device = Device::flex().autodiff();
        let ours = train(&device, adam(), adam, 40);
        let mixed = train(&device, burn_adam(), adam, 40);
        assert_eq!(ours, mixed);
    }
}
