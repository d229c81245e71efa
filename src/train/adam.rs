//! Adam through the fused updates of `shaders/adam.rs`.
//!
//! Burn's own Adam spends ~2 ms of a ~11 ms CPU step in a dozen element-wise passes over the
//! 1.07 M parameters (BENCHMARKS.md); [`FusedAdam`] makes the same update in one pass per
//! parameter tensor, and on a GPU one launch per two tensors (a layer's weight and bias: a
//! GPU step's cost is its launches, not its arithmetic).
//!
//! Burn's `ModuleOptimizer` hands an optimiser one parameter at a time and keeps the moments
//! where only it can see them, so no update there can take two tensors at once. [`FusedAdam`]
//! therefore keeps the moments itself, and uses a `ModuleOptimizer` only to write and read
//! checkpoints ([`Optimiser::records`], [`Optimiser::load`]): those stay Burn Adam records, so
//! checkpoints written before this existed resume with it, and the other way round.
//!
//! A CPU step computes its gradients as two half batches (`halves`); the fused Adam adds the
//! two as it reads them, instead of adding them in a pass of their own first.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use burn::backend::Dispatch;
use burn::backend::tensor::FloatTensor;
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::{
    AdamState, AdaptiveMomentumState, GradientsParams, LearningRate, ModuleOptimizer, Optimizer,
};
use burn::tensor::{Device, Tensor};

use super::halves;
use crate::kernels::{AdamCoefficients, AdamSlot, adam_update, adam_update_pair};
use crate::model::AutoEncoder;

/// Adam as the reference configures it (betas 0.9 / 0.999, PyTorch's epsilon 1e-8 where Burn's
/// default is 1e-5), through the fused updates.
pub fn adam() -> Optimiser {
    Optimiser::Fused(FusedAdam {
        beta_1: 0.9,
        beta_2: 0.999,
        epsilon: 1e-8,
        states: HashMap::new(),
    })
}

/// Burn's own Adam with the same settings: what [`FusedAdam`] replaces (`bench --burn-adam`
/// times it, the tests compare with it). The halves' gradients are added before it.
pub fn burn_adam() -> Optimiser {
    Optimiser::Burn(burn::optim::AdamConfig::new().with_epsilon(1e-8).init())
}

/// A step's gradients: of the whole batch, or of its two halves (`halves::backward`).
pub enum Grads {
    Whole(GradientsParams),
    Halves([GradientsParams; 2]),
}

/// The training loop's optimiser.
pub enum Optimiser {
    Fused(FusedAdam),
    Burn(ModuleOptimizer),
}

impl Optimiser {
    /// One Adam step of every parameter of `model` with a gradient.
    pub fn step(&mut self, lr: LearningRate, model: AutoEncoder, grads: Grads) -> AutoEncoder {
        match self {
            Optimiser::Fused(adam) => adam.step(lr, model, grads),
            Optimiser::Burn(module) => {
                let grads = match grads {
                    Grads::Whole(grads) => grads,
                    Grads::Halves([a, b]) => halves::sum(&model, a, b),
                };
                module.step(lr, model, grads)
            }
        }
    }

    /// The per-parameter states as Burn's module optimiser holds them: what a checkpoint saves
    /// (`into_bytes`). `model` is the one this optimiser steps.
    pub fn records(&self, model: &AutoEncoder) -> ModuleOptimizer {
        match self {
            Optimiser::Burn(module) => module.clone(),
            Optimiser::Fused(adam) => {
                let mut queue = Queue {
                    states: &adam.states,
                    moments: VecDeque::new(),
                    grads: GradientsParams::new(),
                };
                model.visit(&mut queue);
                let relay = Relay::new(RelayMode::Deliver(queue.moments));
                let mut module = ModuleOptimizer::from(relay.clone());
                // The relay hands each parameter its moments; the weights stay as they are.
                let _ = module.step(0.0, model.clone(), queue.grads);
                relay.assert_done();
                module
            }
        }
    }

    /// This optimiser with the per-parameter states `load` makes of Burn's fresh ones (a
    /// checkpoint's) for the parameters of `model`.
    pub fn load<E>(
        self,
        model: &AutoEncoder,
        load: impl FnOnce(ModuleOptimizer) -> Result<ModuleOptimizer, E>,
    ) -> Result<Optimiser, E> {
        match self {
            Optimiser::Burn(module) => Ok(Optimiser::Burn(load(module)?)),
            Optimiser::Fused(mut adam) => {
                let relay = Relay::new(RelayMode::Collect(Vec::new()));
                let mut module = load(ModuleOptimizer::from(relay.clone()))?;
                let mut every = Every {
                    ids: Vec::new(),
                    grads: GradientsParams::new(),
                };
                model.visit(&mut every);
                // The relay takes each parameter's loaded moments (or none) as Burn hands them
                // over, in the module's order: the order of `every.ids`.
                let _ = module.step(0.0, model.clone(), every.grads);
                adam.states = every
                    .ids
                    .into_iter()
                    .zip(relay.collected())
                    .filter_map(|(id, moments)| Some((id, moments?)))
                    .collect();
                Ok(Optimiser::Fused(adam))
            }
        }
    }
}

/// What an in-place Adam step (`train::graph`) updates: every parameter with its moments, in
/// the module's order and in pairs (a layer's weight and bias), all at step `time`.
pub struct InPlaceParams {
    pub pairs: Vec<[InPlaceParam; 2]>,
    /// Steps every parameter has taken so far.
    pub time: usize,
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
}

/// One parameter: the tensor the model holds, in its shape, off the autodiff graph (its buffer
/// is what the step writes: a reshaped view might be a copy), and its moments, flat.
#[derive(Clone)]
pub struct InPlaceParam {
    pub id: ParamId,
    pub param: FloatTensor<Dispatch>,
    pub moment_1: Tensor<1>,
    pub moment_2: Tensor<1>,
}

impl Optimiser {
    /// The parameters of `model` and their moments for steps that write them in place, or
    /// `None` where such steps cannot stand for this optimiser's (Burn's Adam; parameters at
    /// different steps; an odd count). Parameters that have taken no step get zero moments,
    /// which is what their first step starts from anyway.
    pub fn in_place(&mut self, model: &AutoEncoder) -> Option<InPlaceParams> {
        let Optimiser::Fused(adam) = self else {
            return None;
        };
        let mut every = Flat(Vec::new());
        model.visit(&mut every);
        let mut params = Vec::with_capacity(every.0.len());
        let mut time = None;
        for (id, param, n, device) in every.0 {
            let moments = adam.states.entry(id).or_insert_with(|| Moments {
                time: 0,
                moment_1: Tensor::zeros([n], &device),
                moment_2: Tensor::zeros([n], &device),
            });
            if *time.get_or_insert(moments.time) != moments.time {
                return None;
            }
            params.push(InPlaceParam {
                id,
                param,
                moment_1: moments.moment_1.clone(),
                moment_2: moments.moment_2.clone(),
            });
        }
        let time = time?;
        if !params.len().is_multiple_of(2) {
            return None;
        }
        let mut pairs = Vec::with_capacity(params.len() / 2);
        let mut params = params.into_iter();
        while let (Some(a), Some(b)) = (params.next(), params.next()) {
            pairs.push([a, b]);
        }
        Some(InPlaceParams {
            pairs,
            time,
            beta_1: adam.beta_1,
            beta_2: adam.beta_2,
            epsilon: adam.epsilon,
        })
    }

    /// Counts `steps` in-place steps of every parameter (their moments are already written):
    /// once per graph, when it is done (`EpochGraph::finish`).
    pub fn advance(&mut self, steps: usize) {
        if let Optimiser::Fused(adam) = self {
            for moments in adam.states.values_mut() {
                moments.time += steps;
            }
        }
    }
}

/// Every parameter off the autodiff graph, with its size and device.
struct Flat(Vec<(ParamId, FloatTensor<Dispatch>, usize, Device)>);

impl ModuleVisitor for Flat {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let tensor = param.val().inner();
        let (n, device) = (tensor.shape().num_elements(), tensor.device());
        self.0.push((param.id, tensor.into_dispatch(), n, device));
    }
}

/// Adam without weight decay, gradient clipping or AMSGrad (the spec uses none of them).
pub struct FusedAdam {
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
    /// Each parameter's moments after its last step.
    states: HashMap<ParamId, Moments>,
}

/// One parameter's Adam state, flattened (the kernels see every tensor as a row).
#[derive(Clone)]
struct Moments {
    /// Steps taken so far.
    time: usize,
    moment_1: Tensor<1>,
    moment_2: Tensor<1>,
}

impl FusedAdam {
    fn step(&mut self, lr: LearningRate, model: AutoEncoder, grads: Grads) -> AutoEncoder {
        let (mut first, second) = match grads {
            Grads::Whole(grads) => (grads, None),
            Grads::Halves([a, b]) => (a, Some(b)),
        };
        // On a GPU the updates go two tensors a launch, made before the weights are swapped
        // in. The CPU updates each tensor in place as the mapper takes it out of the model
        // (so nothing else may hold it then), one at a time: it has no launches to save.
        let on_gpu = model
            .devices()
            .first()
            .is_some_and(|device| !crate::device::is_cpu(device));
        let updated = match (on_gpu, &second) {
            (true, None) => {
                let mut jobs = Jobs {
                    grads: &mut first,
                    jobs: Vec::new(),
                };
                model.visit(&mut jobs);
                self.update_in_pairs(lr, jobs.jobs)
            }
            _ => HashMap::new(),
        };
        model.map(&mut Apply {
            adam: self,
            lr,
            first,
            second,
            updated,
        })
    }

    fn coefficients(&self, lr: LearningRate, time: usize) -> AdamCoefficients {
        AdamCoefficients::new(self.beta_1, self.beta_2, self.epsilon, lr, time)
    }

    /// A parameter's moments and step number for its next step; a first step starts from zero
    /// moments, which gives exactly Burn's first step.
    fn next_moments(&mut self, id: ParamId, grad: &Tensor<1>) -> Moments {
        match self.states.remove(&id) {
            Some(Moments {
                time,
                moment_1,
                moment_2,
            }) => Moments {
                time: time + 1,
                moment_1,
                moment_2,
            },
            None => Moments {
                time: 1,
                moment_1: grad.zeros_like(),
                moment_2: grad.zeros_like(),
            },
        }
    }

    /// One parameter's step, of any rank: the parameter after it. The gradient is `grad`, or
    /// `grad + second` (the halves'), added as the kernel reads them.
    fn update_one<const D: usize>(
        &mut self,
        lr: LearningRate,
        id: ParamId,
        param: Tensor<D>,
        grad: Tensor<D>,
        second: Option<Tensor<D>>,
    ) -> Tensor<D> {
        let n = grad.shape().num_elements();
        let moments = self.next_moments(id, &grad.clone().reshape([n]));
        self.update_from(lr, id, param, grad, second, moments)
    }

    /// [`FusedAdam::update_one`] from the parameter's `moments` for this step (as
    /// [`FusedAdam::next_moments`] gives them), which it replaces with the new ones.
    fn update_from<const D: usize>(
        &mut self,
        lr: LearningRate,
        id: ParamId,
        param: Tensor<D>,
        grad: Tensor<D>,
        second: Option<Tensor<D>>,
        moments: Moments,
    ) -> Tensor<D> {
        let dims = param.dims();
        let n = param.shape().num_elements();
        let coefficients = self.coefficients(lr, moments.time);
        let (param, moment_1, moment_2) = adam_update(
            param,
            grad,
            second,
            moments.moment_1.reshape(dims),
            moments.moment_2.reshape(dims),
            coefficients,
        );
        self.states.insert(
            id,
            Moments {
                time: moments.time,
                moment_1: moment_1.reshape([n]),
                moment_2: moment_2.reshape([n]),
            },
        );
        param
    }

    /// The steps of `jobs`, two consecutive parameters a launch where they are at the same
    /// step (always, unless one of them once had no gradient): the new values by parameter.
    fn update_in_pairs(&mut self, lr: LearningRate, jobs: Vec<Job>) -> HashMap<ParamId, Tensor<1>> {
        let mut updated = HashMap::with_capacity(jobs.len());
        let mut pending: Option<(Job, Moments)> = None;
        for job in jobs {
            let moments = self.next_moments(job.id, &job.grad);
            match pending.take() {
                Some((a, a_moments)) if a_moments.time == moments.time => {
                    let coefficients = self.coefficients(lr, moments.time);
                    let time = moments.time;
                    let ids = [a.id, job.id];
                    let new = adam_update_pair(a.slot(a_moments), job.slot(moments), coefficients);
                    for (id, (param, moment_1, moment_2)) in ids.into_iter().zip(new) {
                        self.states.insert(
                            id,
                            Moments {
                                time,
                                moment_1,
                                moment_2,
                            },
                        );
                        updated.insert(id, param);
                    }
                }
                Some((a, a_moments)) => {
                    let new = self.update_from(lr, a.id, a.param, a.grad, None, a_moments);
                    updated.insert(a.id, new);
                    pending = Some((job, moments));
                }
                None => pending = Some((job, moments)),
            }
        }
        if let Some((a, a_moments)) = pending {
            let new = self.update_from(lr, a.id, a.param, a.grad, None, a_moments);
            updated.insert(a.id, new);
        }
        updated
    }
}

/// A parameter to update, flattened, off the autodiff graph.
struct Job {
    id: ParamId,
    param: Tensor<1>,
    grad: Tensor<1>,
}

impl Job {
    fn slot(self, moments: Moments) -> AdamSlot {
        AdamSlot {
            param: self.param,
            grad: self.grad,
            moment_1: moments.moment_1,
            moment_2: moments.moment_2,
        }
    }
}

/// Collects the parameters that have a gradient, in the module's order.
struct Jobs<'a> {
    grads: &'a mut GradientsParams,
    jobs: Vec<Job>,
}

impl ModuleVisitor for Jobs<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.remove::<D>(param.id) {
            let n = grad.shape().num_elements();
            self.jobs.push(Job {
                id: param.id,
                param: param.val().inner().reshape([n]),
                grad: grad.reshape([n]),
            });
        }
    }
}

/// Puts the new weights in place: the ones made ahead (`updated`), or each parameter's step
/// made now, as the mapper takes it out of the model.
struct Apply<'a> {
    adam: &'a mut FusedAdam,
    lr: LearningRate,
    first: GradientsParams,
    second: Option<GradientsParams>,
    updated: HashMap<ParamId, Tensor<1>>,
}

impl ModuleMapper for Apply<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let ahead = self.updated.remove(&id);
        let grads = match (
            self.first.remove::<D>(id),
            self.second.as_mut().and_then(|s| s.remove::<D>(id)),
        ) {
            (Some(grad), second) => Some((grad, second)),
            (None, only) => only.map(|grad| (grad, None)),
        };
        if ahead.is_none() && grads.is_none() {
            // No gradient this step: the parameter stays as it is, on the graph as it was.
            return Param::from_mapped_value(id, tensor, mapper);
        }
        let require_grad = tensor.is_require_grad();
        let inner = tensor.inner();
        let new = match (ahead, grads) {
            (Some(new), _) => new.reshape(inner.dims()),
            (None, Some((grad, second))) => self.adam.update_one(self.lr, id, inner, grad, second),
            (None, None) => inner,
        };
        let mut new = Tensor::from_inner(new);
        if require_grad {
            new = new.require_grad();
        }
        Param::from_mapped_value(id, new, mapper)
    }
}

/// Queues the moments of every parameter that has some, in the module's order, and a
/// placeholder gradient for each (the parameter itself) so that `ModuleOptimizer` visits it.
struct Queue<'a> {
    states: &'a HashMap<ParamId, Moments>,
    moments: VecDeque<Moments>,
    grads: GradientsParams,
}

impl ModuleVisitor for Queue<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(moments) = self.states.get(&param.id) {
            self.moments.push_back(moments.clone());
            self.grads.register(param.id, param.val().inner());
        }
    }
}

/// Every parameter's id in the module's order, each with a placeholder gradient.
struct Every {
    ids: Vec<ParamId>,
    grads: GradientsParams,
}

impl ModuleVisitor for Every {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.ids.push(param.id);
        self.grads.register(param.id, param.val().inner());
    }
}

/// What a [`Relay`] does with the states `ModuleOptimizer` hands it.
enum RelayMode {
    /// Replace them with these, in order (writing a checkpoint).
    Deliver(VecDeque<Moments>),
    /// Keep them, in order (reading one).
    Collect(Vec<Option<Moments>>),
}

/// The `burn::optim` optimiser through which moments go into and out of a `ModuleOptimizer`.
/// It never changes a weight. `ModuleOptimizer` visits the parameters in the module's order,
/// always, and hands over no id, so both directions go by that order.
#[derive(Clone)]
struct Relay(Arc<Mutex<RelayMode>>);

impl Relay {
    fn new(mode: RelayMode) -> Relay {
        Relay(Arc::new(Mutex::new(mode)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RelayMode> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn collected(&self) -> Vec<Option<Moments>> {
        match &mut *self.lock() {
            RelayMode::Collect(states) => std::mem::take(states),
            RelayMode::Deliver(_) => Vec::new(),
        }
    }

    fn assert_done(&self) {
        if let RelayMode::Deliver(queue) = &*self.lock() {
            assert!(queue.is_empty(), "moments left over for a checkpoint");
        }
    }
}

impl Optimizer for Relay {
    type State<const D: usize> = AdamState<D>;

    fn step<const D: usize>(
        &self,
        _lr: LearningRate,
        tensor: Tensor<D>,
        _grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let dims = tensor.dims();
        let n = tensor.shape().num_elements();
        let state = match &mut *self.lock() {
            RelayMode::Deliver(queue) => queue.pop_front().map(|m| {
                let momentum = AdaptiveMomentumState::new(
                    m.time,
                    m.moment_1.reshape(dims),
                    m.moment_2.reshape(dims),
                );
                AdamState::new(momentum)
            }),
            RelayMode::Collect(states) => {
                states.push(state.clone().map(|s| Moments {
                    time: s.momentum.time,
                    moment_1: s.momentum.moment_1.reshape([n]),
                    moment_2: s.momentum.moment_2.reshape([n]),
                }));
                state
            }
        };
        (tensor, state)
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

    /// What happens to the optimiser halfway through [`train`].
    #[derive(Clone, Copy)]
    enum Halfway {
        Nothing,
        /// Saved to bytes and loaded into this fresh one, as a resumed run does.
        Reload(fn() -> Optimiser),
        /// Replaced by a fresh fused Adam: every moment lost.
        Restart,
        /// Nothing halfway, but the first parameter gets no gradient in the first step: from
        /// then on it is a step behind its neighbours.
        FirstLags,
    }

    /// The decoder's weights and the encoder's outputs on a fixed batch after `steps` Adam
    /// steps on fixed batches, with `halfway` done to the optimiser halfway. The gradients are
    /// the whole batch's, or where `split` is set the two halves' of a CPU step.
    fn train(
        device: &Device,
        mut optim: Optimiser,
        halfway: Halfway,
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
                let mut grads = GradientsParams::from_grads(loss.backward(), &model);
                if step == 0 && matches!(halfway, Halfway::FirstLags) {
                    let mut first = First(None);
                    model.visit(&mut first);
                    let id = first.0.expect("the model has parameters");
                    assert!(
                        grads.remove::<2>(id).is_some(),
                        "a weight matrix comes first"
                    );
                }
                Grads::Whole(grads)
            };
            // lr 1e-2 so that 40 steps move the weights well beyond rounding.
            model = optim.step(1e-2, model, grads);
            if step == steps / 2 {
                optim = match halfway {
                    Halfway::Nothing | Halfway::FirstLags => optim,
                    Halfway::Reload(fresh) => {
                        let bytes = optim
                            .records(&model)
                            .into_bytes()
                            .expect("optimizer state serialises");
                        fresh()
                            .load(&model, |fresh| fresh.from_bytes(bytes))
                            .expect("optimizer state loads")
                    }
                    Halfway::Restart => adam(),
                };
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
        let initial = train(&device, adam(), Halfway::Reload(adam), 0, false);
        // Whole-batch gradients, and the halves' pairs, which the fused Adam adds as it reads
        // them and Burn's gets added: a pair queued for the wrong parameter, or one half left
        // out, changes the weights by far more than a bit.
        for split in [false, true] {
            let ours = train(&device, adam(), Halfway::Reload(adam), 40, split);
            let burns = train(&device, burn_adam(), Halfway::Reload(burn_adam), 40, split);
            assert_eq!(ours.len(), burns.len());
            assert_ne!(ours, initial, "the steps changed the weights");
            assert_eq!(ours, burns, "split {split}");
        }
        assert_ne!(
            train(&device, adam(), Halfway::Reload(adam), 40, true),
            train(&device, adam(), Halfway::Reload(adam), 40, false),
            "the halves' sum differs from the whole batch's gradient in the last bits"
        );
    }

    #[test]
    fn fused_adam_matches_burns_through_wgpu() {
        let device = Device::wgpu(DeviceKind::DefaultDevice).autodiff();
        let ours = train(&device, adam(), Halfway::Reload(adam), 12, false);
        let burns = train(&device, burn_adam(), Halfway::Reload(burn_adam), 12, false);
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
            let ours = train(&device, adam(), Halfway::Reload(adam), 40, split);
            let mixed = train(&device, burn_adam(), Halfway::Reload(adam), 40, split);
            assert_eq!(ours, mixed, "split {split}");
        }
    }

    /// Saving the fused Adam's moments into Burn's record and loading them back (what a
    /// resumed run does) changes no bit of the steps after it, on the CPU and through wgpu
    /// (where the steps go two tensors a launch): every moment and step count went through.
    #[test]
    fn fused_adam_resumes_where_it_stopped() {
        let cpu = Device::flex().autodiff();
        let gpu = Device::wgpu(DeviceKind::DefaultDevice).autodiff();
        for (device, split) in [(&cpu, true), (&cpu, false), (&gpu, false)] {
            let straight = train(device, adam(), Halfway::Nothing, 12, split);
            let resumed = train(device, adam(), Halfway::Reload(adam), 12, split);
            let restarted = train(device, adam(), Halfway::Restart, 12, split);
            assert_eq!(straight, resumed, "{device:?}, split {split}");
            assert_ne!(straight, restarted, "{device:?}: the moments matter");
        }
    }

    /// The id of the first parameter in the module's order.
    struct First(Option<ParamId>);

    impl ModuleVisitor for First {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.get_or_insert(param.id);
        }
    }

    /// A parameter that missed a step is a step behind its neighbours, so a GPU step cannot
    /// pair it (one launch, one step count): it is updated alone and the pairs shift. Through
    /// wgpu the weights still match the CPU's one-tensor-at-a-time steps, and differ from a
    /// run where nothing lagged.
    #[test]
    fn a_parameter_a_step_behind_gets_its_own_step_count_on_the_gpu() {
        let gpu = Device::wgpu(DeviceKind::DefaultDevice).autodiff();
        let cpu = Device::flex().autodiff();
        let lagging = train(&gpu, adam(), Halfway::FirstLags, 6, false);
        let on_cpu = train(&cpu, adam(), Halfway::FirstLags, 6, false);
        for (i, (g, c)) in lagging.iter().zip(&on_cpu).enumerate() {
            assert!(
                (g - c).abs() <= 1e-5 * c.abs().max(1.0),
                "weight {i}: GPU {g}, CPU {c}"
            );
        }
        assert_ne!(lagging, train(&gpu, adam(), Halfway::Nothing, 6, false));
    }
}
