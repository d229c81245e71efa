//! Adam through the fused update of `shaders/adam.rs`, as a `burn::optim` optimiser.
//!
//! Burn's own Adam spends ~2 ms of a ~11 ms CPU step in a dozen element-wise passes over the
//! 1.07 M parameters (BENCHMARKS.md); [`FusedAdam`] makes the same update in one. It keeps
//! Burn's per-parameter state type, `AdamState`, so its checkpoints are Burn Adam records:
//! checkpoints written before it existed resume with it, and the other way round.
//!
//! A CPU step computes its gradients as two half batches (`halves`). [`Optimiser`] hands both
//! to the fused Adam, which adds them as it reads them, instead of adding them in a pass of
//! their own first.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{
    AdamState, AdaptiveMomentumState, GradientsParams, LearningRate, ModuleOptimizer, Optimizer,
};
use burn::tensor::{Device, Tensor};

use super::halves;
use crate::kernels::{AdamCoefficients, adam_update};
use crate::model::AutoEncoder;

/// Adam as the reference configures it (betas 0.9 / 0.999, PyTorch's epsilon 1e-8 where Burn's
/// default is 1e-5), through the fused update, which reads the halves' two gradients itself.
pub fn adam() -> Optimiser {
    let seconds = SecondGrads::default();
    Optimiser {
        module: FusedAdam::new(Some(seconds.clone())).into(),
        seconds: Some(seconds),
    }
}

/// Burn's own Adam with the same settings: what [`FusedAdam`] replaces (`bench --burn-adam`
/// times it, the tests compare with it). The halves' gradients are added before it.
pub fn burn_adam() -> Optimiser {
    Optimiser {
        module: burn::optim::AdamConfig::new().with_epsilon(1e-8).init(),
        seconds: None,
    }
}

/// A step's gradients: of the whole batch, or of its two halves (`halves::backward`).
pub enum Grads {
    Whole(GradientsParams),
    Halves([GradientsParams; 2]),
}

/// The training loop's optimiser.
pub struct Optimiser {
    /// Burn's module optimiser: it keeps each parameter's Adam state (which checkpoints save
    /// and load) and calls the per-parameter update.
    pub module: ModuleOptimizer,
    /// Where the update is [`FusedAdam`]: the channel through which it reads the second half's
    /// gradients. Burn's `ModuleOptimizer` hands an optimiser one gradient per parameter and
    /// not the parameter's id, but it visits the parameters in the module's order, always; the
    /// second gradients go in, in that order, just before the step.
    seconds: Option<SecondGrads>,
}

impl Optimiser {
    /// This optimiser with the per-parameter states `load` makes of Burn's fresh ones (a
    /// checkpoint's); the update and its second-gradient channel stay as they are.
    pub fn load<E>(
        mut self,
        load: impl FnOnce(ModuleOptimizer) -> Result<ModuleOptimizer, E>,
    ) -> Result<Optimiser, E> {
        self.module = load(self.module)?;
        Ok(self)
    }

    /// One Adam step of every parameter of `model` with a gradient.
    pub fn step(&mut self, lr: LearningRate, model: AutoEncoder, grads: Grads) -> AutoEncoder {
        let grads = match (grads, &self.seconds) {
            (Grads::Whole(grads), _) => grads,
            (Grads::Halves([a, b]), Some(seconds)) => {
                let mut pair = Pair {
                    first: a,
                    second: b,
                    seconds: Vec::new(),
                };
                model.visit(&mut pair);
                seconds.fill(pair.seconds);
                pair.first
            }
            (Grads::Halves([a, b]), None) => halves::sum(&model, a, b),
        };
        let model = self.module.step(lr, model, grads);
        if let Some(seconds) = &self.seconds {
            // Every second gradient was read by the parameter it was queued for.
            assert!(
                seconds.is_empty(),
                "the fused Adam left second gradients unread"
            );
        }
        model
    }
}

/// The second gradients of the next step, in the order `ModuleOptimizer` visits the
/// parameters that have a gradient: `None` for one whose gradient came from one half only.
#[derive(Clone, Default)]
struct SecondGrads(Arc<Mutex<VecDeque<Option<Tensor<1>>>>>);

impl SecondGrads {
    fn fill(&self, grads: Vec<Option<Tensor<1>>>) {
        let mut queue = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        queue.clear();
        queue.extend(grads);
    }

    /// The next parameter's second gradient (`None` also where none was queued: a step of
    /// whole-batch gradients).
    fn next(&self) -> Option<Tensor<1>> {
        let mut queue = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        queue.pop_front().flatten()
    }

    fn is_empty(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }
}

/// Splits the halves' gradients into the ones `ModuleOptimizer` hands over and the queue of
/// second ones, parameter by parameter in the module's order.
struct Pair {
    first: GradientsParams,
    second: GradientsParams,
    seconds: Vec<Option<Tensor<1>>>,
}

impl ModuleVisitor for Pair {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let id = param.id;
        match (self.first.get::<D>(id), self.second.remove::<D>(id)) {
            (Some(_), second) => self.seconds.push(second.map(|g| {
                let n = g.shape().num_elements();
                g.reshape([n])
            })),
            (None, Some(only)) => {
                self.first.register(id, only);
                self.seconds.push(None);
            }
            (None, None) => {}
        }
    }
}

/// Adam without weight decay, gradient clipping or AMSGrad (the spec uses none of them).
#[derive(Clone)]
pub struct FusedAdam {
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
    /// Where the second gradients come from, if they do (see [`Optimiser::seconds`]).
    seconds: Option<SecondGrads>,
}

impl FusedAdam {
    fn new(seconds: Option<SecondGrads>) -> FusedAdam {
        FusedAdam {
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-8,
            seconds,
        }
    }
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
        let second = self
            .seconds
            .as_ref()
            .and_then(SecondGrads::next)
            .map(|second| {
                assert_eq!(
                    second.dims()[0],
                    grad.shape().num_elements(),
                    "a second gradient queued for another parameter"
                );
                second.reshape(grad.shape())
            });
        let (tensor, moment_1, moment_2) =
            adam_update(tensor, grad, second, moment_1, moment_2, coefficients);
        let momentum = AdaptiveMomentumState::new(time, moment_1, moment_2);
        (tensor, Some(AdamState::new(momentum)))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        AdamState::new(state.momentum.to_device(device))
    }
}

#[cfg(test)]
mod tests {
    //! The fused Adam against Burn's: the same model, the same batches, the same steps, with
    //! whole-batch gradients and with the halves' pairs.
    use super::*;
    use burn::tensor::{DeviceKind, TensorData};

    use crate::model::{ModelConfig, ModelKind};

    /// The decoder's weights and the encoder's outputs on a fixed batch after `steps` Adam
    /// steps on fixed batches, with the optimiser saved to bytes and loaded into a fresh one
    /// halfway (as a resumed run does). The gradients are the whole batch's, or where `split`
    /// is set the two halves' of a CPU step.
    fn train(
        device: &Device,
        mut optim: Optimiser,
        fresh: fn() -> Optimiser,
        steps: usize,
        split: bool,
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
            let grads = if split {
                let (_, parts) = halves::forward(&model, x, Some(e), 1.0);
                Grads::Halves(halves::backward(parts))
            } else {
                let loss = model.losses(x, Some(e), 1.0).total;
                Grads::Whole(GradientsParams::from_grads(loss.backward(), &model))
            };
            // lr 1e-2 so that 40 steps move the weights well beyond rounding.
            model = optim.step(1e-2, model, grads);
            if step == steps / 2 {
                let bytes = optim
                    .module
                    .into_bytes()
                    .expect("optimizer state serialises");
                optim = fresh()
                    .load(|fresh| fresh.from_bytes(bytes))
                    .expect("optimizer state loads");
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
        let initial = train(&device, adam(), adam, 0, false);
        // Whole-batch gradients, and the halves' pairs, which the fused Adam adds as it reads
        // them and Burn's gets added: a pair queued for the wrong parameter, or one half left
        // out, changes the weights by far more than a bit.
        for split in [false, true] {
            let ours = train(&device, adam(), adam, 40, split);
            let burns = train(&device, burn_adam(), burn_adam, 40, split);
            assert_eq!(ours.len(), burns.len());
            assert_ne!(ours, initial, "the steps changed the weights");
            assert_eq!(ours, burns, "split {split}");
        }
        assert_ne!(
            train(&device, adam(), adam, 40, true),
            train(&device, adam(), adam, 40, false),
            "the halves' sum differs from the whole batch's gradient in the last bits"
        );
    }

    #[test]
    fn fused_adam_matches_burns_through_wgpu() {
        let device = Device::wgpu(DeviceKind::DefaultDevice).autodiff();
        let ours = train(&device, adam(), adam, 12, false);
        let burns = train(&device, burn_adam(), burn_adam, 12, false);
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
        for split in [false, true] {
            let ours = train(&device, adam(), adam, 40, split);
            let mixed = train(&device, burn_adam(), adam, 40, split);
            assert_eq!(ours, mixed, "split {split}");
        }
    }
}
