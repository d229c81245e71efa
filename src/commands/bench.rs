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
use crate::train::session::{Session, read_scalar};
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

pub fn bench(args: BenchArgs) -> Result<(), AppError> {
    // MNIST's default folder falls back to the copy inside the binary; any other folder is
    // read as a custom set.
    let defaults = TrainSettings::new(args.model);
    let dataset = if args.data_dir == defaults.data_dir {
        DatasetName::Mnist
    } else {
        DatasetName::Custom
    };
    let settings = TrainSettings {
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
    let latent = settings.model.latent;
    let data = load_data(&settings)?;
    let opened = device::open(args.device)?;
    let mut settings = settings;
    settings.model.input = data.pixels();
    let model = settings.model.init(0, &opened.device);
    let optim = if args.burn_adam { burn_adam() } else { adam() };
    let mut session = Session::new(settings, opened.device.clone(), &data, model, optim);

    let (bs, n) = (args.batch_size as usize, session.train.len());
    let total = (args.warmup + args.steps) as usize;
    let perm = rng::epoch_permutation(1, 1, n);
    let noise = rng::epoch_noise(1, 1, bs, latent);
    let sync = |d: &burn::tensor::Device| {
        d.sync()
            .map_err(|e| crate::train::TrainError::Execution(format!("{e:?}")))
    };
    let batch = |session: &Session, step: usize| {
        let idx: Vec<i64> = (0..bs).map(|i| perm[(step * bs + i) % n]).collect();
        let x = session.train.gather(&idx);
        let eps = args.model.is_variational().then(|| {
            Tensor::<2>::from_data(
                TensorData::new(noise.clone(), [bs, latent]),
                &session.device,
            )
        });
        (x, eps)
    };
    let mut times = Vec::with_capacity(args.steps as usize);
    let launches = std::sync::Arc::new(LaunchCounter::default());
    let mut watching = None;
    for step in 0..total {
        if step == args.warmup as usize {
            watching = Some(cubecl::logging::LaunchObservation::new(launches.clone()));
        }
        // Batches are gathered before the clock starts, as in the reference.
        let (x, eps) = batch(&session, step);
        sync(&opened.device)?;
        let start = Instant::now();
        let loss = session.step(x, eps);
        read_scalar(loss)?; // waits for the device
        if step >= args.warmup as usize {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    drop(watching);
    let kernel_launches_per_step = launches.count() as f64 / args.steps as f64;
    // Where the time goes: the same steps again, waiting for the device after each phase.
    let mut phases: [Vec<f32>; 3] = Default::default();
    for step in total..total + args.steps as usize {
        let (x, eps) = batch(&session, step);
        sync(&opened.device)?;
        let mut last = Instant::now();
        let mut failed = None;
        let device = opened.device.clone();
        session.step_marked(x, eps, &mut |phase| {
            if let Err(e) = sync(&device) {
                failed = Some(e);
            }
            let now = Instant::now();
            phases[phase as usize].push((now - last).as_secs_f64() as f32 * 1e3);
            last = now;
        });
        if let Some(e) = failed {
            return Err(e.into());
        }
    }
    let [forward, backward, optimizer] = phases.map(|p| percentile(&p, 50.0));
    let train_sync_every = session.sync_every;
    let flops = session.settings.model.flops_per_step(bs);
    let times32: Vec<f32> = times.iter().map(|&t| t as f32).collect();
    let median = percentile(&times32, 50.0);
    let gflops_at_median = flops / 1e9 / (median / 1e3);
    let peak_gflops = (args.device == device::DeviceChoice::Cpu).then(matmul_peak_gflops);
    let result = BenchResult {
        model: args.model.as_str().into(),
        device: args.device.as_str().into(),
        backend: opened.backend.into(),
        adapter: opened.adapter.clone(),
        batch_size: bs,
        hidden: session.settings.model.hidden,
        latent,
        lr: session.settings.lr,
        steps: args.steps as usize,
        warmup: args.warmup as usize,
        median_step_ms: median,
        p10_step_ms: percentile(&times32, 10.0),
        p90_step_ms: percentile(&times32, 90.0),
        images_per_sec: bs as f64 / (median / 1e3),
        median_forward_ms: forward,
        median_backward_ms: backward,
        median_optimizer_ms: optimizer,
        gflop_per_step: flops / 1e9,
        gflops_at_median,
        peak_gflops,
        share_of_peak: peak_gflops.map(|p| gflops_at_median / p),
        syncs_per_step: 1.0,
        train_sync_every,
        kernel_launches_per_step,
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
        say!(
            "{} {}-{}-{} on {} ({}, {}), batch {}: step median {:.3} ms (p10 {:.3}, p90 {:.3}), {:.0} images/s, {:.1} GFLOP/s{}; phases: forward+loss {:.3} ms, backward {:.3} ms, {} {:.3} ms; {:.0} kernel launches per step; {} threads on {} cores of {} ({}, denormals {}), {} build",
            result.model.to_uppercase(),
            result.hidden[0],
            result.hidden[1],
            result.latent,
            result.backend,
            result.device,
            result.adapter,
            bs,
            result.median_step_ms,
            result.p10_step_ms,
            result.p90_step_ms,
            result.images_per_sec,
            result.gflops_at_median,
            match (result.peak_gflops, result.share_of_peak) {
                (Some(p), Some(f)) =>
                    format!(" = {:.0} % of one large matrix product's {p:.1}", 100.0 * f),
                _ => String::new(),
            },
            result.median_forward_ms,
            result.median_backward_ms,
            result.optimizer,
            result.median_optimizer_ms,
            result.kernel_launches_per_step,
            result.threads,
            result.cores,
            result.cpu,
            result.instruction_set,
            result.denormals,
            result.profile
        )?;
    }
    Ok(())
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

/// Counts kernel launches while installed (CubeCL calls it on the launching thread).
#[derive(Default)]
struct LaunchCounter(std::sync::atomic::AtomicUsize);

impl LaunchCounter {
    fn count(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl cubecl::logging::LaunchObserver for LaunchCounter {
    fn launched(&self, _kernel: &'static str) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}
