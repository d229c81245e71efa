//! A CPU training step as two half batches, one per core, their gradients added.
//!
//! The matrix products of these small layers barely use a second core when one product is
//! split over two (two threads make a step about 1.35x as fast as one, BENCHMARKS.md), while
//! two half batches side by side keep both cores busy from the first layer to the last, with
//! one hand-over per phase instead of one per product. The step is always split on the CPU,
//! whatever the thread count (one thread computes the halves one after the other), so a run's
//! result does not depend on the machine's cores.
//!
//! Each half's loss is its mean scaled by its share of the batch, so the two losses and the
//! two gradients add up to the whole batch's: the same step as one pass, up to the order of the
//! float additions.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use rayon::prelude::*;
use std::sync::{Mutex, PoisonError};

use crate::kernels::side_by_side;
use crate::model::AutoEncoder;

/// One half's model and its scaled loss, the graph recorded.
pub struct Half {
    model: AutoEncoder,
    loss: Tensor<1>,
}

/// The forward pass of both halves at once: `[batch, pixels]` images (and the VAE's `[batch,
/// latent]` noise) split at batch / 2; the whole batch's loss (off the graph) and the halves.
pub fn forward(
    model: &AutoEncoder,
    images: Tensor<2>,
    eps: Option<Tensor<2>>,
    beta: f64,
) -> (Tensor<1>, [Half; 2]) {
    let n = images.dims()[0];
    let cut = n / 2;
    let part = |start: usize, len: usize| {
        let images = images.clone().narrow(0, start, len);
        let eps = eps.clone().map(|e| e.narrow(0, start, len));
        // Fresh leaves over the same weights, so that the halves' graphs share no node and
        // their backward passes run apart.
        let model = model.clone().map(&mut FreshLeaves);
        let loss = model.losses(images, eps, beta).total;
        Half {
            loss: loss.mul_scalar(len as f64 / n as f64),
            model,
        }
    };
    let (a, b) = side_by_side(|| part(0, cut), || part(cut, n - cut));
    let loss = a.loss.clone().detach() + b.loss.clone().detach();
    (loss, [a, b])
}

/// The backward passes of both halves at once: each half's gradients, keyed by the ids of the
/// model's parameters (which the fresh leaves keep). Their sum is the gradient of the whole
/// batch's mean loss; the fused Adam adds them as it reads them (`adam`), and [`sum`] adds
/// them for any other optimiser.
pub fn backward(halves: [Half; 2]) -> [GradientsParams; 2] {
    let grads = |h: Half| GradientsParams::from_grads(h.loss.backward(), &h.model);
    let [a, b] = halves;
    let (a, b) = side_by_side(|| grads(a), || grads(b));
    [a, b]
}

/// The halves' gradients added, parameter by parameter.
pub fn sum(model: &AutoEncoder, a: GradientsParams, b: GradientsParams) -> GradientsParams {
    let mut sum = Sum {
        a,
        b,
        jobs: Vec::new(),
    };
    model.visit(&mut sum);
    // On both cores: the two largest layers, one at each end of the model, are most of the
    // parameters, and rayon's halving of the list puts them on different cores.
    let out = Mutex::new(GradientsParams::new());
    sum.jobs.into_par_iter().for_each(|add| add(&out));
    out.into_inner().unwrap_or_else(PoisonError::into_inner)
}

/// Replaces every weight by a new leaf of the graph holding the same values (no copy).
struct FreshLeaves;

impl ModuleMapper for FreshLeaves {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.map(|t| t.detach().require_grad())
    }
}

/// Adds one parameter's two gradients and registers the sum.
type AddJob = Box<dyn FnOnce(&Mutex<GradientsParams>) + Send>;

/// Adds the halves' gradients parameter by parameter: a job per parameter, so that the
/// additions (of whatever rank each weight has) can run on any core.
struct Sum {
    a: GradientsParams,
    b: GradientsParams,
    jobs: Vec<AddJob>,
}

impl ModuleVisitor for Sum {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let id = param.id;
        let pair = (self.a.remove::<D>(id), self.b.remove::<D>(id));
        self.jobs.push(Box::new(move |out| {
            let sum = match pair {
                (Some(a), Some(b)) => a + b,
                (Some(g), None) | (None, Some(g)) => g,
                (None, None) => return,
            };
            out.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .register(id, sum);
        }));
    }
}

#[cfg(test)]
mod tests {
    //! The split step against one pass over the whole batch: the same loss and the same
    //! gradients, up to the order of the float additions.
    use super::*;
    use burn::module::ParamId;
    use burn::tensor::{Device, TensorData};

    use crate::model::{ModelConfig, ModelKind};

    /// Every parameter's gradient, by id, as host floats.
    struct Collect<'a> {
        grads: &'a GradientsParams,
        out: Vec<(ParamId, Vec<f32>)>,
    }

    impl ModuleVisitor for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let g = self
                .grads
                .get::<D>(param.id)
                .expect("every weight has a gradient");
            let values = g
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .unwrap();
            self.out.push((param.id, values));
        }
    }

    fn collect(model: &AutoEncoder, grads: &GradientsParams) -> Vec<(ParamId, Vec<f32>)> {
        let mut c = Collect {
            grads,
            out: Vec::new(),
        };
        model.visit(&mut c);
        c.out
    }

    #[test]
    fn two_halves_give_the_whole_batchs_loss_and_gradients() {
        let device = Device::flex().autodiff();
        for (kind, batch) in [
            (ModelKind::Ae, 128),
            (ModelKind::Vae, 128),
            (ModelKind::Vae, 97),
        ] {
            let model = ModelConfig::new(kind).init(5, &device);
            let pixels: Vec<f32> = (0..batch * 784)
                .map(|i| ((i * 7919) % 256) as f32 / 255.0)
                .collect();
            let images = Tensor::<2>::from_data(TensorData::new(pixels, [batch, 784]), &device);
            let noise: Vec<f32> = (0..batch * 2).map(|i| ((i as f32) * 0.7).sin()).collect();
            let eps = kind
                .is_variational()
                .then(|| Tensor::<2>::from_data(TensorData::new(noise, [batch, 2]), &device));

            let whole = model.losses(images.clone(), eps.clone(), 1.0).total;
            let whole_loss = whole.clone().into_scalar::<f32>() as f64;
            let whole_grads = GradientsParams::from_grads(whole.backward(), &model);
            let (loss, parts) = forward(&model, images, eps, 1.0);
            let [a, b] = backward(parts);
            let split_grads = sum(&model, a, b);
            let split_loss = loss.into_scalar::<f32>() as f64;

            assert!(
                (split_loss - whole_loss).abs() < 1e-5 * whole_loss.abs(),
                "{kind:?} batch {batch}: loss {split_loss} vs {whole_loss}"
            );
            let (whole, split) = (collect(&model, &whole_grads), collect(&model, &split_grads));
            assert_eq!(whole.len(), split.len());
            for ((id, w), (_, s)) in whole.iter().zip(&split) {
                // Relative to the tensor's largest gradient: a half batch's gradient left out
                // or counted twice is off by about half of it.
                let scale = w.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-12);
                for (i, (a, b)) in w.iter().zip(s).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-4 * scale,
                        "{kind:?} batch {batch}, param {id}[{i}]: whole {a}, halves {b}"
                    );
                }
            }
        }
    }
}
