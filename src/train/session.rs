//! A model, its optimiser and the data set, resident on one device: the training loop proper.
//!
//! The whole data set is uploaded once (`split`); a batch is a `select` of rows on the CPU, a
//! slice of the epoch's permuted copy on a GPU (`EpochOrder`), so the host sends only an index
//! permutation (and the VAE's noise) per epoch.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};

use super::TrainError;
use super::adam::{Grads, Optimiser};
use super::graph::{self, EpochGraph, KlWeight, Segment, StepInputs, WARMUP_STEPS};
use super::halves;
use super::progress::Progress;
use super::rng;
use crate::config::TrainSettings;
use crate::data::Dataset;

pub use super::readback::{read_scalar, read_vec, wait_for};
pub use super::split::{DeviceSplit, EpochOrder};
use crate::model::{AutoEncoder, LatentUsage, latent_usage};

/// Images per forward pass when evaluating or encoding (no gradients, so larger is fine).
const EVAL_BATCH: usize = 1000;

/// Keeps a snapshot of the test codes after the run's step (`Session::train_epoch`).
pub type SnapshotHook<'a> = dyn FnMut(&Session, usize) -> Result<(), TrainError> + 'a;

/// The phases of one training step, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepPhase {
    ForwardAndLoss,
    Backward,
    Optimizer,
}

/// The result of one epoch of training.
#[derive(Debug, Clone, Copy)]
pub struct EpochStats {
    pub seconds: f64,
    /// Time in `snapshot`, left out of `seconds`.
    pub hook_seconds: f64,
    pub train_loss: f64,
    /// The KL weight of the epoch's last step.
    pub beta: f64,
    /// Steps that were replays of a captured step (`graph`), not issued anew.
    pub replayed: usize,
}

/// Test-set losses, nats per image.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalMetrics {
    pub recon: f64,
    pub kl: f64,
    /// recon + beta * kl with the run's full beta, whatever the warm-up: comparable epoch to
    /// epoch.
    pub loss: f64,
    /// How the VAE's test posteriors use each latent dimension; `None` for the AE.
    pub usage: Option<LatentUsage>,
}

/// Latent codes of a split on the host: `n * latent` values each.
#[derive(Debug, Clone)]
pub struct Codes {
    pub mu: Vec<f32>,
    /// Posterior standard deviations, VAE only.
    pub sigma: Option<Vec<f32>>,
    pub latent: usize,
}

pub struct Session {
    pub settings: TrainSettings,
    pub device: Device,
    /// Taken out only for the optimiser's step, so that the step owns the only reference to
    /// every weight tensor and the CPU backend updates them in place instead of copying.
    model: Option<AutoEncoder>,
    pub optim: Optimiser,
    pub train: DeviceSplit,
    pub test: DeviceSplit,
    /// How many steps between reads of the loss (each read waits for the device).
    pub sync_every: usize,
    /// The KL weight of the next step: `settings.beta`, or less during a warm-up.
    pub beta: f64,
}

impl Session {
    /// Uploads the data; `model` and `optim` are fresh or come from a checkpoint.
    pub fn new(
        settings: TrainSettings,
        device: Device,
        data: &Dataset,
        model: AutoEncoder,
        optim: Optimiser,
    ) -> Session {
        let pixels = data.pixels();
        let sync_every = if settings.device == crate::device::DeviceChoice::Gpu {
            50
        } else {
            10
        };
        Session {
            train: DeviceSplit::upload(&data.train, pixels, &device),
            test: DeviceSplit::upload(&data.test, pixels, &device.clone().inner()),
            beta: settings.beta,
            settings,
            device,
            model: Some(model),
            optim,
            sync_every,
        }
    }

    pub fn model(&self) -> &AutoEncoder {
        self.model
            .as_ref()
            .expect("the model is in place between steps")
    }

    pub fn steps_per_epoch(&self) -> usize {
        self.settings.steps_per_epoch(self.train.len())
    }

    /// One optimisation step (forward, loss, backward, Adam) on a batch; returns the batch's
    /// mean loss as a `[1]` tensor off the graph, not yet read back from the device.
    ///
    /// # Shapes
    /// - images: `[batch, pixels]`, eps: `[batch, latent]`
    pub fn step(&mut self, images: Tensor<2>, eps: Option<Tensor<2>>) -> Tensor<1> {
        self.step_marked(images, eps, &mut |_| {})
    }

    /// [`Session::step`], calling `mark` after each of its three phases (`bench` times them).
    pub fn step_marked(
        &mut self,
        images: Tensor<2>,
        eps: Option<Tensor<2>>,
        mark: &mut dyn FnMut(StepPhase),
    ) -> Tensor<1> {
        if crate::device::is_cpu(&self.device) {
            // The step forks a dozen times; the second core waits awake between (see there).
            crate::device::cpu::with_partner_awake(|| self.phases(images, eps, mark))
        } else {
            self.phases(images, eps, mark)
        }
    }

    fn phases(
        &mut self,
        images: Tensor<2>,
        eps: Option<Tensor<2>>,
        mark: &mut dyn FnMut(StepPhase),
    ) -> Tensor<1> {
        let (batch_loss, grads) = if crate::device::is_cpu(&self.device) && images.dims()[0] >= 2 {
            // Two half batches, one per core (see `halves`).
            let (loss, parts) = halves::forward(self.model(), images, eps, self.beta);
            mark(StepPhase::ForwardAndLoss);
            let grads = halves::backward(parts);
            mark(StepPhase::Backward);
            (loss.inner(), Grads::Halves(grads))
        } else {
            let losses = self.model().losses(images, eps, self.beta);
            let batch_loss = losses.total.clone().detach().inner();
            mark(StepPhase::ForwardAndLoss);
            let grads = GradientsParams::from_grads(losses.total.backward(), self.model());
            mark(StepPhase::Backward);
            (batch_loss, Grads::Whole(grads))
        };
        let model = self
            .model
            .take()
            .expect("the model is in place between steps");
        self.model = Some(self.optim.step(self.settings.lr, model, grads));
        mark(StepPhase::Optimizer);
        batch_loss
    }

    /// One pass over the shuffled training set; the last, partial batch is kept.
    ///
    /// `snapshot`, where the run keeps them, sees the session after every step one is due
    /// (`TrainSettings::snapshot_due`), with the run's step count so far; the time it takes is
    /// not counted as training time, but the wait for the steps still queued on the device
    /// before it is.
    ///
    /// On a GPU the full batches of each block of the epoch's order are replays of a captured
    /// step where they can be (`graph`): the same arithmetic, none of the host's per-step work.
    ///
    /// Kept whole: the training loop, whose every line (stop, batch, step, hook, read-back) runs
    /// once per step.
    pub fn train_epoch(
        &mut self,
        epoch: usize,
        progress: &Progress,
        stop: &AtomicBool,
        mut snapshot: Option<&mut SnapshotHook>,
    ) -> Result<EpochStats, TrainError> {
        let (seed, bs, latent) = (
            self.settings.seed,
            self.settings.batch_size,
            self.settings.model.latent,
        );
        let n = self.train.len();
        let steps = self.steps_per_epoch();
        let base = (epoch - 1) * steps;
        let start = Instant::now();
        let binarize = (self.settings.binarize == crate::data::Binarize::Dynamic)
            .then(|| rng::binarize_stream(seed, epoch));
        let mut order = EpochOrder::new(
            &self.train,
            rng::epoch_permutation(seed, epoch, n),
            bs,
            binarize,
        );
        let noise = self.settings.model.kind.is_variational().then(|| {
            Tensor::<2>::from_data(
                TensorData::new(rng::epoch_noise(seed, epoch, n, latent), [n, latent]),
                &self.device,
            )
        });
        let mut segments = match self.replays() {
            true => graph::segments(&order, bs),
            false => Vec::new(),
        };
        let mut graph: Option<EpochGraph> = None;
        progress.start_epoch(steps);
        let mut running = Tensor::<1>::zeros([1], &self.device.clone().inner());
        let (mut step, mut seen, mut synced, mut replayed) = (0usize, 0usize, 0usize, 0usize);
        let mut paused = std::time::Duration::ZERO;
        while step < steps {
            if stop.load(Ordering::SeqCst) {
                return Err(TrainError::Interrupted { epoch });
            }
            if let Some(g) = graph.take_if(|g| step >= g.end) {
                self.finish(g)?;
            }
            // Steps done by this turn: the capture's warm-up, or one step.
            let mut done = 0;
            if graph.is_none()
                && let Some(k) = segments
                    .iter()
                    .position(|s| self.can_capture(s, base, step))
            {
                let inputs = StepInputs {
                    segment: segments.remove(k),
                    noise: noise.clone().map(Tensor::inner),
                    batch: bs,
                    kl_weight: self.kl_weight(epoch, step),
                    lr: self.settings.lr,
                    next: step,
                };
                match self.capture(inputs, &running)? {
                    Some((captured, ran)) => {
                        self.beta = self.settings.beta_at(base + step + ran.max(1), steps);
                        graph = Some(captured);
                        done = ran;
                    }
                    None => segments.clear(),
                }
            }
            if done == 0 {
                self.beta = self.settings.beta_at(base + step + 1, steps);
                match graph.as_mut() {
                    Some(g) => {
                        g.replay();
                        replayed += 1;
                    }
                    None => {
                        let (a, b) = (step * bs, ((step + 1) * bs).min(n));
                        let x = order.batch(&self.train, a..b);
                        let eps = noise.as_ref().map(|e| e.clone().slice([a..b, 0..latent]));
                        let batch_loss = self.step(x, eps);
                        running = running + batch_loss.mul_scalar((b - a) as f64);
                    }
                }
                done = 1;
            }
            for _ in 0..done {
                seen += ((step + 1) * bs).min(n) - step * bs;
                step += 1;
                if let Some(snapshot) = snapshot.as_mut()
                    && self.settings.snapshot_due(base + step, steps)
                {
                    // A snapshot reads the device, so it would first wait for the steps still
                    // queued there (on a GPU up to `sync_every` of them): that wait is
                    // training's time, or the epoch would look faster than it ran.
                    wait_for(&self.device)?;
                    let hook = Instant::now();
                    snapshot(self, base + step)?;
                    paused += hook.elapsed();
                }
            }
            if step - synced >= self.sync_every || step == steps {
                synced = step;
                let mean = read_scalar(running.clone())? / seen as f64;
                if !mean.is_finite() {
                    return Err(TrainError::Diverged {
                        epoch,
                        step,
                        loss: mean,
                    });
                }
                let busy = start.elapsed().saturating_sub(paused);
                progress.update(step, mean, seen as f64 / busy.as_secs_f64());
            }
        }
        if let Some(g) = graph {
            self.finish(g)?;
        }
        let train_loss = read_scalar(running)? / n as f64;
        Ok(EpochStats {
            seconds: start.elapsed().saturating_sub(paused).as_secs_f64(),
            hook_seconds: paused.as_secs_f64(),
            train_loss,
            beta: self.beta,
            replayed,
        })
    }

    /// A graph of this session's training step that continues at `inputs.next`, and how many
    /// steps its capture ran (`EpochGraph::capture`); `None` where the optimiser cannot step
    /// in place (Burn's Adam). `train_epoch` and `bench` capture through here.
    pub fn capture(
        &mut self,
        inputs: StepInputs,
        running: &Tensor<1>,
    ) -> Result<Option<(EpochGraph, usize)>, TrainError> {
        let model = self.model().clone();
        let Some(params) = self.optim.in_place(&model) else {
            return Ok(None);
        };
        EpochGraph::capture(&model, params, inputs, running).map(Some)
    }

    /// Once a graph's last step is issued: checks that it ran every step and counts them in
    /// Adam's step count.
    pub fn finish(&mut self, graph: EpochGraph) -> Result<(), TrainError> {
        self.optim.advance(graph.finish()?);
        Ok(())
    }

    /// Whether this epoch's steps may be replays (`graph`): on a GPU, unless asked not to.
    fn replays(&self) -> bool {
        self.settings.step_graph && !crate::device::is_cpu(&self.device)
    }

    /// The KL weight of a graph starting at the epoch's batch `step`: during a KL warm-up the
    /// ramp's weight of each of the epoch's batches (the values `beta_at` gives the ordinary
    /// steps), else the one weight.
    fn kl_weight(&self, epoch: usize, step: usize) -> KlWeight {
        let s = &self.settings;
        let steps = self.steps_per_epoch();
        let base = (epoch - 1) * steps;
        if s.warming_up(epoch) {
            KlWeight::PerBatch(
                (1..=steps)
                    .map(|i| s.beta_at(base + i, steps) as f32)
                    .collect(),
            )
        } else {
            KlWeight::Fixed(s.beta_at(base + step + 1, steps))
        }
    }

    /// Whether a graph can start at the epoch's batch `step` in `segment`: its warm-up steps
    /// (and the recorded one, which a device that cannot record runs too) are all in the
    /// segment with one step at least left to replay, and none of them is due a snapshot,
    /// since their hooks see the weights only after the warm-up.
    fn can_capture(&self, segment: &Segment, base: usize, step: usize) -> bool {
        let steps = self.steps_per_epoch();
        segment.batches.contains(&step)
            && step + WARMUP_STEPS + 2 <= segment.batches.end
            && (base + step + 1..=base + step + WARMUP_STEPS + 1)
                .all(|s| !self.settings.snapshot_due(s, steps))
    }

    /// Test-set losses; the VAE uses one fixed noise draw per image, the same every epoch.
    pub fn evaluate(&self) -> Result<EvalMetrics, TrainError> {
        let model = self.model().valid();
        let s = &self.settings;
        let (n, latent) = (self.test.len(), s.model.latent);
        let device = self.device.clone().inner();
        let noise = s.model.kind.is_variational().then(|| {
            Tensor::<2>::from_data(
                TensorData::new(rng::eval_noise(s.seed, n * latent), [n, latent]),
                &device,
            )
        });
        let mut recon = Tensor::<1>::zeros([1], &device);
        let mut kl = Tensor::<1>::zeros([1], &device);
        let variational = s.model.kind.is_variational();
        let (mut mu, mut sigma) = (Vec::new(), Vec::new());
        for a in (0..n).step_by(EVAL_BATCH) {
            let b = (a + EVAL_BATCH).min(n);
            let x = self.test.rows(a..b);
            let eps = noise.as_ref().map(|e| e.clone().slice([a..b, 0..latent]));
            let (losses, codes) = model.losses_and_codes(x, eps, s.beta);
            let w = (b - a) as f64;
            recon = recon + losses.recon.mul_scalar(w);
            if let Some(k) = losses.kl {
                kl = kl + k.mul_scalar(w);
            }
            if let (true, Some(log_var)) = (variational, codes.log_var) {
                mu.extend(read_vec(codes.mu)?);
                sigma.extend(read_vec(log_var.mul_scalar(0.5).exp())?);
            }
        }
        let recon = read_scalar(recon)? / n as f64;
        let kl = read_scalar(kl)? / n as f64;
        Ok(EvalMetrics {
            recon,
            kl,
            loss: recon + s.beta * kl,
            usage: variational.then(|| latent_usage(&mu, &sigma, latent)),
        })
    }
}

/// Encodes `images` (`[n, pixels]`, on any device) in batches.
pub fn encode_images(
    model: &AutoEncoder,
    images: &DeviceSplit,
    latent: usize,
) -> Result<Codes, TrainError> {
    let model = model.valid();
    let n = images.len();
    let mut mu = Vec::with_capacity(n * latent);
    let mut sigma = model
        .is_variational()
        .then(|| Vec::with_capacity(n * latent));
    for a in (0..n).step_by(EVAL_BATCH) {
        let b = (a + EVAL_BATCH).min(n);
        let enc = model.encoder.forward(images.rows(a..b).inner());
        mu.extend(read_vec(enc.mu)?);
        if let (Some(sigma), Some(lv)) = (sigma.as_mut(), enc.log_var) {
            sigma.extend(read_vec(lv.mul_scalar(0.5).exp())?);
        }
    }
    Ok(Codes { mu, sigma, latent })
}
