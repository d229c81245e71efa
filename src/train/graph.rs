//! A GPU epoch's full batches as replays of one captured training step.
//!
//! On a GPU the host's work per step (autodiff, Burn's fusion, CubeCL's launch planning: ~10 ms
//! a step on this project's 2-core VM, for 48-61 launches) is what a step costs, not the
//! arithmetic (BENCHMARKS.md, "Where a GPU step's host time goes"). Burn 0.22 can record a
//! step's launches once (`burn::tensor::capture`) and re-issue them (`Graph::replay`) with
//! none of that work; but a replay reads and writes exactly the buffers of the capture, with
//! the scalars of the capture. So the captured step is written to find everything that changes
//! on the device (`kernels::step_graph`): a counter picks the batch out of the epoch's permuted
//! block and Adam's bias corrections out of a table, Adam writes the weights and moments where
//! it read them, and the loss adds into a running sum. Each replay is then the next step, the
//! same arithmetic as the ordinary loop's.
//!
//! A graph covers the full batches of one block of the permuted split (a GPU keeps the split
//! in blocks of whole batches); `Session::train_epoch` runs the other steps (a partial last
//! batch, steps whose snapshot falls in a capture's warm-up) the ordinary way.

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Graph, Tensor, TensorData};
use std::collections::HashMap;

use burn::backend::Dispatch;
use burn::backend::tensor::FloatTensor;

use super::TrainError;
use super::adam::InPlaceParams;
use super::readback::read_scalar;
use super::split::EpochOrder;
use crate::kernels::step_graph::{
    AdamConstants, InPlaceSlot, adam_in_place, bias_table, finish_step, rows_at,
};
use crate::model::AutoEncoder;

/// Steps `burn::tensor::capture` runs for real before it records (its warm-up).
pub const WARMUP_STEPS: usize = 3;

/// The batches a graph can take: full batches of one block of the epoch's permuted split.
pub struct Segment {
    /// The block, off the autodiff graph.
    pub block: Tensor<2>,
    /// The epoch's batch indices of the full batches in the block (it starts with the first).
    pub batches: std::ops::Range<usize>,
}

/// What a captured step reads besides the model.
pub struct StepInputs {
    pub segment: Segment,
    /// The epoch's noise, `[n, latent]`, off the autodiff graph (VAE).
    pub noise: Option<Tensor<2>>,
    pub batch: usize,
    pub kl_weight: KlWeight,
    pub lr: f64,
    /// The index of the epoch's next batch: where the capture starts.
    pub next: usize,
}

/// The KL weight of the captured step's batches.
pub enum KlWeight {
    /// The same for every batch (no KL warm-up under way).
    Fixed(f64),
    /// Batch `i` of the epoch takes entry `i` (a KL warm-up's ramp), read at the counter.
    PerBatch(Vec<f32>),
}

/// [`KlWeight`] as the captured step reads it.
enum KlTable {
    Fixed(f64),
    Rows(Box<Tensor<2>>),
}

type StepFn = Box<dyn FnMut()>;

/// A captured step and the device buffers it advances.
pub struct EpochGraph {
    graph: Graph<(), StepFn>,
    /// The index of the epoch's next batch, on the device.
    counter: Tensor<1>,
    /// The epoch's batch index where the graph started (its warm-up's first step).
    start: usize,
    /// The epoch's batch index the graph stops before.
    pub end: usize,
}

impl EpochGraph {
    /// Captures a step that continues the epoch at `inputs.next`. The capture runs the step for
    /// real a few times first (its warm-up: they are the epoch's next steps) and may record
    /// one more without running it: the counter says how many ran (the second value).
    ///
    /// Each step adds `loss * batch` to `running` (`[1]`), in place.
    pub fn capture(
        model: &AutoEncoder,
        params: InPlaceParams,
        inputs: StepInputs,
        running: &Tensor<1>,
    ) -> Result<(EpochGraph, usize), TrainError> {
        let Some(device) = params.pairs.first().map(|[a, _]| a.moment_1.device()) else {
            return Err(TrainError::Execution("a model without parameters".into()));
        };
        let (next, end) = (inputs.next, inputs.segment.batches.end);
        // Entry i: the bias corrections of the epoch's batch i, Adam's step
        // `time + 1 + i - next`; the batches before `next` are done.
        let mut table = vec![0.0; 2 * next];
        table.extend(bias_table(
            params.beta_1,
            params.beta_2,
            params.epsilon,
            params.time + 1,
            end - next,
        ));
        let table = Tensor::<1>::from_data(TensorData::new(table, [2 * end]), &device);
        let counter = Tensor::<1>::from_data(TensorData::new(vec![next as f32], [1]), &device);
        let step = step_closure(
            model.clone(),
            params,
            table,
            counter.clone(),
            running.clone(),
            inputs,
            device.clone(),
        );
        let graph = burn::tensor::capture(&device, step);
        let ran = (read_scalar(counter.clone())? as usize).saturating_sub(next);
        let graph = EpochGraph {
            graph,
            counter,
            start: next,
            end,
        };
        Ok((graph, ran))
    }

    /// The next step: the recorded launches again, or on a device that cannot record, the
    /// step's code again.
    pub fn replay(&mut self) {
        // Safety: every buffer the step reads or writes belongs to a tensor its closure owns
        // (the model's parameters through its copy of the model, the moments, the table, the
        // counter, the running sum, the block and the noise), and the closure lives in the
        // graph; what the capture allocated in between, the graph pins. Only this thread issues
        // work on the capture's stream, and any read of what the replays wrote goes through
        // that stream.
        unsafe {
            self.graph.replay();
        }
    }

    /// Once the graph's last step is issued: the steps it made (warm-up included), for the
    /// optimiser's step count, after checking that the device counted every one of them up to
    /// its end: a replay that did not run would leave the counter behind (and the weights with
    /// it), which nothing else would show.
    pub fn finish(self) -> Result<usize, TrainError> {
        let next = read_scalar(self.counter.clone())?;
        if next == self.end as f64 {
            Ok(self.end - self.start)
        } else {
            Err(TrainError::Execution(format!(
                "a replayed training step did not run (the device counted {next} batches of {}); --no-graph issues every step anew",
                self.end
            )))
        }
    }
}

fn step_closure(
    model: AutoEncoder,
    params: InPlaceParams,
    table: Tensor<1>,
    counter: Tensor<1>,
    running: Tensor<1>,
    inputs: StepInputs,
    device: Device,
) -> StepFn {
    let constants = AdamConstants {
        beta_1: params.beta_1,
        beta_2: params.beta_2,
        lr: inputs.lr as f32,
    };
    let StepInputs {
        segment,
        noise,
        batch,
        kl_weight,
        ..
    } = inputs;
    // A warm-up's weights as a `[batches, 1]` table on the device, one row per batch.
    let kl_table = match kl_weight {
        KlWeight::Fixed(beta) => KlTable::Fixed(beta),
        KlWeight::PerBatch(weights) => {
            let n = weights.len();
            KlTable::Rows(Box::new(Tensor::from_data(
                TensorData::new(weights, [n, 1]),
                &device,
            )))
        }
    };
    Box::new(move || {
        let x = Tensor::from_inner(rows_at(
            &segment.block,
            &counter,
            batch,
            segment.batches.start,
        ));
        let eps = noise
            .as_ref()
            .map(|e| Tensor::from_inner(rows_at(e, &counter, batch, 0)));
        let losses = match &kl_table {
            KlTable::Fixed(beta) => model.losses(x, eps, *beta),
            KlTable::Rows(table) => {
                let weight = Tensor::from_inner(rows_at(table, &counter, 1, 0)).reshape([1]);
                model.losses_with_kl_weight(x, eps, weight)
            }
        };
        let loss = losses.total.clone().detach().inner();
        let mut grads = GradsById {
            grads: GradientsParams::from_grads(losses.total.backward(), &model),
            by_id: HashMap::new(),
        };
        model.visit(&mut grads);
        // Every read of the weights (the backward pass's included) is queued before Adam
        // writes them: the flush makes Burn's fusion issue it all first (see
        // `kernels::step_graph`). Inside the capture a flush only orders the recording.
        let _ = device.flush();
        for [a, b] in &params.pairs {
            let (Some(grad_a), Some(grad_b)) =
                (grads.by_id.remove(&a.id), grads.by_id.remove(&b.id))
            else {
                continue;
            };
            let slot = |p: &super::adam::InPlaceParam, grad| InPlaceSlot {
                param: p.param.clone(),
                grad,
                moment_1: p.moment_1.clone(),
                moment_2: p.moment_2.clone(),
            };
            adam_in_place(
                slot(a, grad_a),
                slot(b, grad_b),
                &table,
                &counter,
                constants,
            );
        }
        // Adam has read the counter before it advances.
        let _ = device.flush();
        finish_step(&running, &counter, loss, batch as f32);
    })
}

/// Takes each parameter's gradient out of `grads`, in its shape.
struct GradsById {
    grads: GradientsParams,
    by_id: HashMap<ParamId, FloatTensor<Dispatch>>,
}

impl ModuleVisitor for GradsById {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.remove::<D>(param.id) {
            self.by_id.insert(param.id, grad.into_dispatch());
        }
    }
}

/// The segments of an epoch's order that graphs can take: on a GPU, one per block of the
/// permuted split (blocks of whole batches), its full batches; none on the CPU.
pub fn segments(order: &EpochOrder, batch: usize) -> Vec<Segment> {
    let EpochOrder::Permuted(split) = order else {
        return Vec::new();
    };
    split
        .blocks()
        .filter_map(|(start, block)| {
            let full = block.dims()[0] / batch;
            (start.is_multiple_of(batch) && full > 0).then(|| Segment {
                block: block.clone().inner(),
                batches: start / batch..start / batch + full,
            })
        })
        .collect()
}
