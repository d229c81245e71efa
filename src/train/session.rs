//! A model, its optimiser and the data set, resident on one device: the training loop proper.
//!
//! The whole data set is uploaded once; a batch is a `select` of rows on the device, so the
//! host sends only an index permutation (and the VAE's noise) per epoch.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::TrainError;
use super::adam::adam;
use super::progress::Progress;
use super::rng;
use crate::config::TrainSettings;
use crate::data::{Dataset, Split};
use crate::model::AutoEncoder;

/// Images per forward pass when evaluating or encoding (no gradients, so larger is fine).
const EVAL_BATCH: usize = 1000;

/// Bytes of one image block on a GPU. wgpu caps one buffer binding (WebGPU's default
/// `max_storage_buffer_binding_size` is 128 MiB, lavapipe's too), and the 60,000 MNIST
/// training images are 188 MB as f32, so a split is kept there as blocks of at most this.
const GPU_BLOCK_BYTES: usize = 64 << 20;

/// A split on the device: images `[n, pixels]` in [0, 1], in row blocks, and the labels on the
/// host. On the CPU backend there is one block (no copy limit); on a GPU, blocks of at most
/// [`GPU_BLOCK_BYTES`]. Either way batches come out bit for bit the same.
pub struct DeviceSplit {
    blocks: Vec<Tensor<2>>,
    block_rows: usize,
    pixels: usize,
    device: Device,
    pub labels: Vec<u8>,
}

impl DeviceSplit {
    pub fn upload(split: &Split, pixels: usize, device: &Device) -> DeviceSplit {
        let block_rows = block_rows_for(device, split.len(), pixels);
        Self::upload_in_blocks(split, pixels, device, block_rows)
    }

    fn upload_in_blocks(
        split: &Split,
        pixels: usize,
        device: &Device,
        block_rows: usize,
    ) -> DeviceSplit {
        let images = split.images_f32();
        let n = split.len();
        let blocks = if n == 0 {
            vec![Tensor::from_data(
                TensorData::new(images, [0, pixels]),
                device,
            )]
        } else {
            images
                .chunks(block_rows * pixels)
                .map(|rows| {
                    let data = TensorData::new(rows.to_vec(), [rows.len() / pixels, pixels]);
                    Tensor::from_data(data, device)
                })
                .collect()
        };
        DeviceSplit {
            blocks,
            block_rows,
            pixels,
            device: device.clone(),
            labels: split.labels.clone(),
        }
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Rows `a..b` as one `[b - a, pixels]` tensor.
    pub fn rows(&self, range: std::ops::Range<usize>) -> Tensor<2> {
        self.rows_on(range, &self.device)
    }

    /// Rows `a..b` as one tensor on `device`: each block's part is moved there first and
    /// joined there, so no buffer larger than a block is ever made on this split's device.
    fn rows_on(&self, range: std::ops::Range<usize>, device: &Device) -> Tensor<2> {
        let parts: Vec<Tensor<2>> = self
            .blocks
            .iter()
            .enumerate()
            .filter_map(|(k, block)| {
                let start = k * self.block_rows;
                let (a, b) = (
                    range.start.max(start),
                    range.end.min(start + block.dims()[0]),
                );
                (a < b).then(|| {
                    let part = block.clone().slice(a - start..b - start);
                    if device == &self.device {
                        part
                    } else {
                        part.inner().to_device(device)
                    }
                })
            })
            .collect();
        join(parts, self.pixels, device)
    }

    /// The rows at `index`, in that order, as one `[index.len(), pixels]` tensor.
    pub fn gather(&self, index: &[i64]) -> Tensor<2> {
        if let [block] = self.blocks.as_slice() {
            return block
                .clone()
                .select(0, int_tensor(index.to_vec(), &self.device));
        }
        // Gather from each block, then put the rows back in the order asked for.
        let mut parts = Vec::new();
        let mut position = Vec::with_capacity(index.len());
        for (k, block) in self.blocks.iter().enumerate() {
            let start = (k * self.block_rows) as i64;
            let end = start + block.dims()[0] as i64;
            let mut local = Vec::new();
            for (p, &i) in index.iter().enumerate() {
                if (start..end).contains(&i) {
                    local.push(i - start);
                    position.push(p);
                }
            }
            if !local.is_empty() {
                parts.push(block.clone().select(0, int_tensor(local, &self.device)));
            }
        }
        let mut inverse = vec![0i64; position.len()];
        for (k, &p) in position.iter().enumerate() {
            inverse[p] = k as i64;
        }
        join(parts, self.pixels, &self.device).select(0, int_tensor(inverse, &self.device))
    }

    /// The same split on another device, in the blocks that device needs.
    pub fn to_device(&self, device: &Device) -> DeviceSplit {
        let n = self.len();
        let block_rows = block_rows_for(device, n, self.pixels);
        let blocks = (0..n.div_ceil(block_rows).max(1))
            .map(|k| self.rows_on(k * block_rows..((k + 1) * block_rows).min(n), device))
            .collect();
        DeviceSplit {
            blocks,
            block_rows,
            pixels: self.pixels,
            device: device.clone(),
            labels: self.labels.clone(),
        }
    }
}

/// Rows per block: all of them on the CPU backend, at most [`GPU_BLOCK_BYTES`] on a GPU.
fn block_rows_for(device: &Device, rows: usize, pixels: usize) -> usize {
    if is_cpu(device) {
        rows.max(1)
    } else {
        (GPU_BLOCK_BYTES / (4 * pixels.max(1))).max(1)
    }
}

fn is_cpu(device: &Device) -> bool {
    matches!(
        device.clone().inner().as_dispatch(),
        burn::backend::DispatchDevice::Flex(_)
    )
}

fn int_tensor(values: Vec<i64>, device: &Device) -> Tensor<1, Int> {
    let n = values.len();
    Tensor::from_data(TensorData::new(values, [n]), device)
}

fn join(mut parts: Vec<Tensor<2>>, pixels: usize, device: &Device) -> Tensor<2> {
    match parts.len() {
        0 => Tensor::zeros([0, pixels], device),
        1 => parts.remove(0),
        _ => Tensor::cat(parts, 0),
    }
}

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
    pub train_loss: f64,
}

/// Test-set losses, nats per image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalMetrics {
    pub recon: f64,
    pub kl: f64,
    pub loss: f64,
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
    pub optim: ModuleOptimizer,
    pub train: DeviceSplit,
    pub test: DeviceSplit,
    /// How many steps between reads of the loss (each read waits for the device).
    pub sync_every: usize,
}

impl Session {
    /// Uploads the data; `model` and `optim` are fresh or come from a checkpoint.
    pub fn new(
        settings: TrainSettings,
        device: Device,
        data: &Dataset,
        model: AutoEncoder,
        optim: ModuleOptimizer,
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
        let losses = self.model().losses(images, eps, self.settings.beta);
        let batch_loss = losses.total.clone().detach().inner();
        mark(StepPhase::ForwardAndLoss);
        let grads = GradientsParams::from_grads(losses.total.backward(), self.model());
        mark(StepPhase::Backward);
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
    /// `after_step` sees the session after every step with the run's step count so far (it
    /// keeps snapshots); the time it takes is not counted as training time.
    pub fn train_epoch(
        &mut self,
        epoch: usize,
        progress: &Progress,
        stop: &AtomicBool,
        after_step: &mut dyn FnMut(&Session, usize) -> Result<(), TrainError>,
    ) -> Result<EpochStats, TrainError> {
        let (seed, bs, latent) = (
            self.settings.seed,
            self.settings.batch_size,
            self.settings.model.latent,
        );
        let n = self.train.len();
        let steps = self.steps_per_epoch();
        let start = Instant::now();
        let perm = rng::epoch_permutation(seed, epoch, n);
        let noise = self.settings.model.kind.is_variational().then(|| {
            Tensor::<2>::from_data(
                TensorData::new(rng::epoch_noise(seed, epoch, n, latent), [n, latent]),
                &self.device,
            )
        });
        progress.start_epoch(steps);
        let mut running = Tensor::<1>::zeros([1], &self.device.clone().inner());
        let mut seen = 0usize;
        let mut paused = std::time::Duration::ZERO;
        for step in 0..steps {
            if stop.load(Ordering::SeqCst) {
                return Err(TrainError::Interrupted { epoch });
            }
            let (a, b) = (step * bs, ((step + 1) * bs).min(n));
            let x = self.train.gather(&perm[a..b]);
            let eps = noise.as_ref().map(|e| e.clone().slice([a..b, 0..latent]));
            let batch_loss = self.step(x, eps);
            running = running + batch_loss.mul_scalar((b - a) as f64);
            seen += b - a;
            let hook = Instant::now();
            after_step(self, (epoch - 1) * steps + step + 1)?;
            paused += hook.elapsed();
            if (step + 1) % self.sync_every == 0 || step + 1 == steps {
                let sum = read_scalar(running.clone())?;
                let mean = sum / seen as f64;
                if !mean.is_finite() {
                    return Err(TrainError::Diverged {
                        epoch,
                        step: step + 1,
                        loss: mean,
                    });
                }
                let busy = start.elapsed().saturating_sub(paused);
                progress.update(step + 1, mean, seen as f64 / busy.as_secs_f64());
            }
        }
        let train_loss = read_scalar(running)? / n as f64;
        Ok(EpochStats {
            seconds: start.elapsed().saturating_sub(paused).as_secs_f64(),
            train_loss,
        })
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
        for a in (0..n).step_by(EVAL_BATCH) {
            let b = (a + EVAL_BATCH).min(n);
            let x = self.test.rows(a..b);
            let eps = noise.as_ref().map(|e| e.clone().slice([a..b, 0..latent]));
            let losses = model.losses(x, eps, s.beta);
            let w = (b - a) as f64;
            recon = recon + losses.recon.mul_scalar(w);
            if let Some(k) = losses.kl {
                kl = kl + k.mul_scalar(w);
            }
        }
        let recon = read_scalar(recon)? / n as f64;
        let kl = read_scalar(kl)? / n as f64;
        Ok(EvalMetrics {
            recon,
            kl,
            loss: recon + s.beta * kl,
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

/// Reads a one-element tensor back to the host (this waits for the device).
pub fn read_scalar(t: Tensor<1>) -> Result<f64, TrainError> {
    Ok(read_vec(t)?.first().copied().unwrap_or(f32::NAN) as f64)
}

pub fn read_vec<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, TrainError> {
    let data = t
        .try_into_data()
        .map_err(|e| TrainError::Execution(one_line(&e.to_string())))?;
    data.try_into_vec::<f32>()
        .map_err(|e| TrainError::Execution(one_line(&format!("{e:?}"))))
}

/// A device error as one line: its headline and its innermost cause (the backends report a
/// chain of causes and a backtrace over many lines).
fn one_line(report: &str) -> String {
    let lines: Vec<&str> = report
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Backtrace:"))
        .filter(|l| {
            !l.is_empty()
                && !l.starts_with("Caused by")
                && !l.starts_with('│')
                && !l.starts_with('┌')
        })
        .collect();
    match lines.as_slice() {
        [] => "unknown device error".to_string(),
        [only] => only.to_string(),
        [first, .., last] => format!("{first}: {last}"),
    }
}

/// The losses of `steps` training steps from fresh weights, batches taken in order from the
/// start of the training set (no shuffle), each loss read back at once: a fixed workload
/// whose numbers can be compared across devices.
pub fn losses_of_steps(
    settings: &TrainSettings,
    device: Device,
    data: &Dataset,
    steps: usize,
) -> Result<Vec<f64>, TrainError> {
    let mut settings = settings.clone();
    settings.model.input = data.pixels();
    let model = settings.model.init(settings.seed, &device);
    let mut session = Session::new(settings, device, data, model, adam());
    let (n, bs, latent) = (
        session.train.len(),
        session.settings.batch_size,
        session.settings.model.latent,
    );
    let noise = rng::epoch_noise(session.settings.seed, 1, steps * bs, latent);
    let mut losses = Vec::with_capacity(steps);
    for step in 0..steps {
        let a = (step * bs) % n.max(1);
        let b = (a + bs).min(n);
        let x = session.train.rows(a..b);
        let eps = session.settings.model.kind.is_variational().then(|| {
            let e = noise[step * bs * latent..(step * bs + (b - a)) * latent].to_vec();
            Tensor::<2>::from_data(TensorData::new(e, [b - a, latent]), &session.device)
        });
        let loss = session.step(x, eps);
        losses.push(read_scalar(loss)?);
    }
    Ok(losses)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(t: Tensor<2>) -> Vec<f32> {
        t.into_data().try_into_vec::<f32>().unwrap()
    }

    /// Ten 3-pixel images whose pixels name their row.
    fn split() -> Split {
        Split {
            images: (0..10u8).flat_map(|r| [r, r, 255 - r]).collect(),
            labels: (0..10u8).collect(),
        }
    }

    #[test]
    fn blocked_split_gives_the_same_batches_as_one_block() {
        let device = Device::flex();
        let one = DeviceSplit::upload(&split(), 3, &device);
        for block_rows in [1, 3, 4, 10] {
            let blocked = DeviceSplit::upload_in_blocks(&split(), 3, &device, block_rows);
            for index in [vec![7i64, 0, 9, 3, 3, 5], vec![9], (0..10).rev().collect()] {
                assert_eq!(
                    values(blocked.gather(&index)),
                    values(one.gather(&index)),
                    "gather {index:?}, blocks of {block_rows}"
                );
            }
            for range in [0..10, 2..8, 3..4, 9..10] {
                assert_eq!(
                    values(blocked.rows(range.clone())),
                    values(one.rows(range.clone())),
                    "rows {range:?}, blocks of {block_rows}"
                );
            }
            let moved = blocked.to_device(&Device::flex());
            assert_eq!(values(moved.rows(0..10)), values(one.rows(0..10)));
        }
        // Row 7 is [7, 7, 248] / 255.
        assert_eq!(
            values(one.gather(&[7])),
            vec![7.0 / 255.0, 7.0 / 255.0, 248.0 / 255.0]
        );
    }
}
