//! `bench`: the time of one full training step, measured the way the PyTorch reference
//! measures it (real images, fresh model, warm-up, then the median of single steps).

use std::time::Instant;

use burn::tensor::{Tensor, TensorData};
use serde::Serialize;

use crate::cli::BenchArgs;
use crate::config::TrainSettings;
use crate::data::DatasetName;
use crate::device;
use crate::error::AppError;
use crate::stats::percentile;
use crate::train::adam::{adam, burn_adam};
use crate::train::session::{EpochOrder, Session, read_scalar};
use crate::train::{load_data, rng};

#[derive(Debug, Serialize)]
pub struct BenchResult {
    pub model: String,
    pub device: String,
    pub backend: String,
    pub adapter: String,
    pub batch_size: usize,
    /// The model's sizes (`--hidden`, `--latent`), as `train` takes them.
    pub hidden: [usize; 2],
    pub latent: usize,
    pub lr: f64,
    pub steps: usize,
    pub warmup: usize,
    pub median_step_ms: f64,
    pub p10_step_ms: f64,
    pub p90_step_ms: f64,
    /// Median milliseconds of the same steps until `step` returned on the calling thread,
    /// before the loss is read back: the host's own work (Burn's graph, fusion, the launches
    /// handed on), the GPU still running behind it. Near the whole step, the host is the
    /// bottleneck and fewer launches on the device will not help; well under it, the device
    /// (or its driver thread) is.
    pub median_enqueue_ms: f64,
    pub images_per_sec: f64,
    /// Medians of the three phases of a step, each waited for, over a second run of the same
    /// number of steps (the waits would distort the timing of whole steps on a GPU).
    pub median_forward_ms: f64,
    pub median_backward_ms: f64,
    pub median_optimizer_ms: f64,
    /// "fused adam" (latentlab's, what training uses) or "burn adam" (`--burn-adam`).
    pub optimizer: &'static str,
    /// Floating-point operations of one step (the matrix products), and the rate the median
    /// step reaches.
    pub gflop_per_step: f64,
    pub gflops_at_median: f64,
    /// CPU only: the rate of one large matrix product (1024^3) on the same backend and
    /// threads, the most this machine gives latentlab's matrix products, and the share of it
    /// a step reaches.
    pub peak_gflops: Option<f64>,
    pub share_of_peak: Option<f64>,
    /// Host-device synchronisations per step: `bench` reads each step's loss back to time it
    /// (1); `train` reads the loss once every this many steps.
    pub syncs_per_step: f64,
    pub train_sync_every: usize,
    /// GPU kernels launched per timed step, as CubeCL's launch observer counts them (fused
    /// kernels count once); 0 on the CPU backend.
    pub kernel_launches_per_step: f64,
    /// The same launches by kernel name, most frequent first, so that a change to the step
    /// shows which launches it saved.
    pub kernel_launches_by_kernel: LaunchesByKernel,
    /// `--replay`: the same step captured once as a graph and replayed.
    pub replay_probe: Option<ReplayProbe>,
    /// The widest vector instructions the CPU offers the matrix products, and how its computing
    /// threads treat denormal floats.
    pub instruction_set: &'static str,
    pub denormals: &'static str,
    pub threads: usize,
    pub cpu: String,
    pub cores: usize,
    pub profile: &'static str,
    pub latentlab_version: &'static str,
}

/// `bench --replay`: one step captured with `burn::tensor::capture` on the GPU and replayed
/// `steps` times, each replay read back. A replay re-issues the recorded kernels against the
/// buffers of the capture, skipping autodiff, Burn's fusion and CubeCL's launch planning; the
/// weights and Adam's moments are not updated in place, so every replay recomputes the
/// captured step from the same weights (which is what `same_loss` checks). A probe of the
/// ordinary step's replay cost, not a training step: `train` replays its own in-place step
/// (`train::graph`; `bench/graph_epochs.sh` times it).
#[derive(Debug, Serialize)]
pub struct ReplayProbe {
    pub median_step_ms: f64,
    pub p10_step_ms: f64,
    pub p90_step_ms: f64,
    /// Median milliseconds until `replay` returned, before the read-back.
    pub median_enqueue_ms: f64,
    /// Every replay's loss equals, bit for bit, the loss an ordinary forward pass computes
    /// from the weights the captured step read, on the same batch.
    pub same_loss: bool,
}

/// Kept whole: after the measuring calls it is the one `BenchResult` literal, a field a line.
pub fn bench(args: BenchArgs) -> Result<(), AppError> {
    if args.replay && args.device != device::DeviceChoice::Gpu {
        return Err(AppError::Usage(
            "--replay captures a step as a GPU graph: it needs --device gpu".into(),
        ));
    }
    let (mut session, opened) = open_session(&args)?;
    let batches = Batches::new(
        &session,
        args.batch_size as usize,
        args.model.is_variational(),
    );
    let (warmup, steps) = (args.warmup as usize, args.steps as usize);
    let (times, enqueue, kernel_launches_by_kernel) =
        time_steps(&mut session, &batches, &opened.device, warmup, steps)?;
    // Where the time goes: the same steps again, waiting for the device after each phase.
    let [forward, backward, optimizer] = time_phases(
        &mut session,
        &batches,
        &opened.device,
        warmup + steps,
        steps,
    )?;
    let replay_probe = if args.replay {
        Some(time_replays(&mut session, &batches, steps)?)
    } else {
        None
    };
    let bs = batches.size;
    let flops = session.settings.model.flops_per_step(bs);
    let median = percentile(&times, 50.0);
    let gflops_at_median = flops / 1e9 / (median / 1e3);
    let peak_gflops = (args.device == device::DeviceChoice::Cpu).then(matmul_peak_gflops);
    let result = BenchResult {
        model: args.model.as_str().into(),
        device: args.device.as_str().into(),
        backend: opened.backend.clone(),
        adapter: opened.adapter.clone(),
        batch_size: bs,
        hidden: session.settings.model.hidden,
        latent: session.settings.model.latent,
        lr: session.settings.lr,
        steps,
        warmup,
        median_step_ms: median,
        p10_step_ms: percentile(&times, 10.0),
        p90_step_ms: percentile(&times, 90.0),
        median_enqueue_ms: percentile(&enqueue, 50.0),
        images_per_sec: bs as f64 / (median / 1e3),
        median_forward_ms: forward,
        median_backward_ms: backward,
        median_optimizer_ms: optimizer,
        gflop_per_step: flops / 1e9,
        gflops_at_median,
        peak_gflops,
        share_of_peak: peak_gflops.map(|p| gflops_at_median / p),
        syncs_per_step: 1.0,
        train_sync_every: session.sync_every,
        // From +0.0: an empty f64 sum is -0.0, which printed as "-0 kernel launches".
        kernel_launches_per_step: kernel_launches_by_kernel
            .iter()
            .fold(0.0, |sum, (_, n)| sum + n),
        kernel_launches_by_kernel,
        replay_probe,
        instruction_set: device::cpu::instruction_set(),
        denormals: device::cpu::denormal_mode().as_str(),
        threads: rayon::current_num_threads(),
        optimizer: if args.burn_adam {
            "burn adam"
        } else {
            "fused adam"
        },
        cpu: device::cpu_name(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        profile: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        latentlab_version: env!("CARGO_PKG_VERSION"),
    };
    if args.json {
        say!("{}", serde_json::to_string(&result).unwrap_or_default())?;
    } else {
        say!("{}", result.sentence())?;
    }
    Ok(())
}

/// A fresh model of the sizes asked for, with its optimiser and the data, on the device.
fn open_session(args: &BenchArgs) -> Result<(Session, device::OpenedDevice), AppError> {
    // MNIST's default folder falls back to the copy inside the binary; any other folder is
    // read as a custom set.
    let defaults = TrainSettings::new(args.model);
    let dataset = if args.data_dir == defaults.data_dir {
        DatasetName::Mnist
    } else {
        DatasetName::Custom
    };
    let mut settings = TrainSettings {
        model: args.sizes.config(args.model),
        device: args.device,
        dataset,
        data_dir: args.data_dir.clone(),
        epochs: 1,
        batch_size: args.batch_size as usize,
        lr: args.lr,
        iwae_samples: 1,
        ..defaults
    };
    let data = load_data(&settings)?;
    let opened = device::open(args.device)?;
    settings.model.input = data.pixels();
    let model = settings.model.init(0, &opened.device);
    let optim = if args.burn_adam { burn_adam() } else { adam() };
    let session = Session::new(settings, opened.device.clone(), &data, model, optim);
    Ok((session, opened))
}

/// The batches of the timed steps: real training images in a fixed shuffled order, taken
/// the way training takes them (`EpochOrder`), and one fixed noise draw for the VAE; made
/// ready before the clock starts, as in the reference.
struct Batches {
    order: EpochOrder,
    noise: Option<Vec<f32>>,
    size: usize,
    latent: usize,
}

impl Batches {
    fn new(session: &Session, size: usize, variational: bool) -> Batches {
        let latent = session.settings.model.latent;
        // A set smaller than the batch is one batch, as in training.
        let size = size.min(session.train.len()).max(1);
        let perm = rng::epoch_permutation(1, 1, session.train.len());
        Batches {
            order: EpochOrder::new(&session.train, perm, size),
            noise: variational.then(|| rng::epoch_noise(1, 1, size, latent)),
            size,
            latent,
        }
    }

    /// The `step`th batch, starting over from the first when the set runs out.
    fn get(&self, session: &Session, step: usize) -> (Tensor<2>, Option<Tensor<2>>) {
        let per_pass = (session.train.len() / self.size).max(1);
        let a = (step % per_pass) * self.size;
        let b = a + self.size;
        let eps = self.noise.as_ref().map(|noise| {
            Tensor::<2>::from_data(
                TensorData::new(noise.clone(), [self.size, self.latent]),
                &session.device,
            )
        });
        (self.order.batch(&session.train, a..b), eps)
    }
}

fn sync(device: &burn::tensor::Device) -> Result<(), AppError> {
    device
        .sync()
        .map_err(|e| crate::train::TrainError::Execution(format!("{e:?}")).into())
}

/// Milliseconds of each of `steps` whole steps after `warmup` untimed ones, each waited for;
/// the milliseconds of each until the host had handed its work on (see
/// [`BenchResult::median_enqueue_ms`]); and the kernel launches per timed step, by kernel.
fn time_steps(
    session: &mut Session,
    batches: &Batches,
    device: &burn::tensor::Device,
    warmup: usize,
    steps: usize,
) -> Result<(Vec<f32>, Vec<f32>, LaunchesByKernel), AppError> {
    let mut times = Vec::with_capacity(steps);
    let mut enqueue = Vec::with_capacity(steps);
    let launches = std::sync::Arc::new(LaunchCounter::default());
    let mut watching = None;
    for step in 0..warmup + steps {
        if step == warmup {
            watching = Some(cubecl::logging::LaunchObservation::new(launches.clone()));
        }
        let (x, eps) = batches.get(session, step);
        sync(device)?;
        let start = Instant::now();
        let loss = session.step(x, eps);
        let handed_on = start.elapsed();
        read_scalar(loss)?; // waits for the device
        if step >= warmup {
            times.push(start.elapsed().as_secs_f32() * 1e3);
            enqueue.push(handed_on.as_secs_f32() * 1e3);
        }
    }
    drop(watching);
    Ok((times, enqueue, launches.per_step(steps)))
}

/// See [`ReplayProbe`]. The capture runs three ordinary steps on the first batch to warm up,
/// then records a fourth.
fn time_replays(
    session: &mut Session,
    batches: &Batches,
    steps: usize,
) -> Result<ReplayProbe, AppError> {
    let (x, eps) = batches.get(session, 0);
    // The capture is opened on the inner (non-autodiff) device, whose stream runs every
    // kernel of the step, backward included: Burn's autodiff backend offers no capture itself.
    let inner = session.device.clone().inner();
    // The weights each captured step read: kept alive, so that no later allocation takes
    // their buffers while the replays still read them.
    let mut read: Vec<crate::model::AutoEncoder> = Vec::new();
    let mut graph = burn::tensor::capture(&inner, || {
        read.push(session.model().clone());
        session.step(x.clone(), eps.clone())
    });
    if !graph.is_hardware() {
        return Err(crate::train::TrainError::Execution(
            "this device cannot capture a graph".into(),
        )
        .into());
    }
    let (mut times, mut enqueue) = (Vec::with_capacity(steps), Vec::with_capacity(steps));
    let mut losses = Vec::with_capacity(steps);
    for _ in 0..steps {
        let start = Instant::now();
        // Safety: the buffers the graph reads are the batch and noise (`x`, `eps`, alive here
        // until after the graph), the weights (kept in `read`) and what the capture allocated
        // (pinned by the graph); this thread alone issues work, on the capture's stream, and
        // reads each replay back before the next.
        let loss = unsafe { graph.replay() }.clone();
        let handed_on = start.elapsed();
        losses.push(read_scalar(loss)?);
        times.push(start.elapsed().as_secs_f32() * 1e3);
        enqueue.push(handed_on.as_secs_f32() * 1e3);
    }
    drop(graph);
    // On wgpu the capture records the launches without running them, so the captured step's
    // own loss is never computed; an ordinary forward pass from its weights is the reference.
    let ordinary = match read.last() {
        Some(model) => read_scalar(model.losses(x, eps, session.beta).total.detach().inner())?,
        None => f64::NAN,
    };
    drop(read);
    let same_loss = losses.iter().all(|l| l.to_bits() == ordinary.to_bits());
    Ok(ReplayProbe {
        median_step_ms: percentile(&times, 50.0),
        p10_step_ms: percentile(&times, 10.0),
        p90_step_ms: percentile(&times, 90.0),
        median_enqueue_ms: percentile(&enqueue, 50.0),
        same_loss,
    })
}

/// Median milliseconds of the three phases of `steps` steps from step `first` on, the device
/// waited for after each phase (which would distort whole-step times on a GPU).
fn time_phases(
    session: &mut Session,
    batches: &Batches,
    device: &burn::tensor::Device,
    first: usize,
    steps: usize,
) -> Result<[f64; 3], AppError> {
    let mut phases: [Vec<f32>; 3] = Default::default();
    for step in first..first + steps {
        let (x, eps) = batches.get(session, step);
        sync(device)?;
        let mut last = Instant::now();
        let mut failed = None;
        session.step_marked(x, eps, &mut |phase| {
            if let Err(e) = sync(device) {
                failed = Some(e);
            }
            let now = Instant::now();
            phases[phase as usize].push((now - last).as_secs_f32() * 1e3);
            last = now;
        });
        if let Some(e) = failed {
            return Err(e);
        }
    }
    Ok(phases.map(|p| percentile(&p, 50.0)))
}

impl BenchResult {
    /// The text `bench` prints without `--json`.
    fn sentence(&self) -> String {
        let replay = self.replay_probe.as_ref().map_or(String::new(), |r| {
            format!(
                "; replayed from a captured graph (a probe: the weights do not advance): median {:.3} ms (p10 {:.3}, p90 {:.3}; host done after {:.3}), {} loss as an ordinary forward pass from the same weights",
                r.median_step_ms,
                r.p10_step_ms,
                r.p90_step_ms,
                r.median_enqueue_ms,
                if r.same_loss { "the same" } else { "NOT the same" }
            )
        });
        format!(
            "{} {}-{}-{} on {} ({}, {}), batch {}: step median {:.3} ms (p10 {:.3}, p90 {:.3}; host done after {:.3}), {:.0} images/s, {:.1} GFLOP/s{}; phases: forward+loss {:.3} ms, backward {:.3} ms, {} {:.3} ms; {:.0} kernel launches per step; {} threads on {} cores of {} ({}, denormals {}), {} build{}",
            self.model.to_uppercase(),
            self.hidden[0],
            self.hidden[1],
            self.latent,
            self.backend,
            self.device,
            self.adapter,
            self.batch_size,
            self.median_step_ms,
            self.p10_step_ms,
            self.p90_step_ms,
            self.median_enqueue_ms,
            self.images_per_sec,
            self.gflops_at_median,
            match (self.peak_gflops, self.share_of_peak) {
                (Some(p), Some(f)) =>
                    format!(" = {:.0} % of one large matrix product's {p:.1}", 100.0 * f),
                _ => String::new(),
            },
            self.median_forward_ms,
            self.median_backward_ms,
            self.optimizer,
            self.median_optimizer_ms,
            self.kernel_launches_per_step,
            self.threads,
            self.cores,
            self.cpu,
            self.instruction_set,
            self.denormals,
            self.profile,
            replay
        )
    }
}

/// GFLOP/s of the best of five 1024 x 1024 x 1024 matrix products on the CPU backend: what its
/// matrix kernels reach on this machine, with the same threads as training.
fn matmul_peak_gflops() -> f64 {
    let n = 1024;
    let device = burn::tensor::Device::flex();
    let a = Tensor::<2>::from_data(TensorData::new(vec![0.5f32; n * n], [n, n]), &device);
    let b = Tensor::<2>::from_data(TensorData::new(vec![0.25f32; n * n], [n, n]), &device);
    let mut best = f64::INFINITY;
    for _ in 0..6 {
        let start = Instant::now();
        let c = a.clone().matmul(b.clone());
        let _ = c.into_data();
        best = best.min(start.elapsed().as_secs_f64());
    }
    2.0 * (n * n * n) as f64 / best / 1e9
}

/// Kernel launches per step by kernel name, most frequent first.
type LaunchesByKernel = Vec<(String, f64)>;

/// Counts kernel launches by kernel name while installed (CubeCL calls it on the launching
/// thread).
#[derive(Default)]
struct LaunchCounter(std::sync::Mutex<std::collections::HashMap<&'static str, usize>>);

impl LaunchCounter {
    /// Launches per step by kernel, most frequent first (ties by name, so runs compare).
    fn per_step(&self, steps: usize) -> LaunchesByKernel {
        let counts = self.0.lock().map(|c| c.clone()).unwrap_or_default();
        let mut rows: Vec<(String, f64)> = counts
            .into_iter()
            .map(|(name, n)| (short_kernel_name(name), n as f64 / steps.max(1) as f64))
            .collect();
        rows.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        rows
    }
}

/// A kernel's type name without its type parameters' paths, which run to a thousand
/// characters for a matrix product: the path, and the last segment of each parameter.
fn short_kernel_name(name: &str) -> String {
    let Some((path, params)) = name.split_once('<') else {
        return name.to_string();
    };
    let mut seen = std::collections::HashSet::new();
    let params: Vec<&str> = params
        .split([',', '<', '>', '(', ')'])
        .map(|p| p.trim().rsplit("::").next().unwrap_or(""))
        .filter(|p| !p.is_empty() && !p.starts_with("__") && seen.insert(*p))
        .collect();
    format!("{path}<{}>", params.join(", "))
}

impl cubecl::logging::LaunchObserver for LaunchCounter {
    fn launched(&self, kernel: &'static str) {
        if let Ok(mut counts) = self.0.lock() {
            *counts.entry(kernel).or_default() += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::short_kernel_name;

    #[test]
    fn kernel_names_keep_their_path_and_the_last_segment_of_each_parameter() {
        assert_eq!(
            short_kernel_name("m::MatmulEntry<a::TensorArgs, b::Dyn<c::__Lhs>, d::Dyn<e::__Rhs>>"),
            "m::MatmulEntry<TensorArgs, Dyn>"
        );
        assert_eq!(
            short_kernel_name("m::MatmulEntry<x::FusedMatmulArgs, b::Dyn<c::__Lhs>>"),
            "m::MatmulEntry<FusedMatmulArgs, Dyn>"
        );
        assert_eq!(short_kernel_name("k::AdamUpdate"), "k::AdamUpdate");
    }
}
