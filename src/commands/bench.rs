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
use crate::train::graph::{self, KlWeight, Segment, StepInputs, WARMUP_STEPS};
use crate::train::session::{EpochOrder, Session, read_scalar, wait_for};
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
    /// GPU, unless `--no-graph`: the step as `train` takes it there, replayed from a captured
    /// step (`train::graph`). `None` on the CPU, under `--no-graph`, or where it cannot be
    /// (`not_replayed` says why).
    pub replayed: Option<ReplayedSteps>,
    pub not_replayed: Option<&'static str>,
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

/// The training step as `train` takes it on a GPU: the full batches of a block of the shuffled
/// set, each a replay of one captured step that finds its batch, its Adam bias corrections and
/// the weights on the device and writes the weights and moments in place (`train::graph`), so
/// the weights advance from replay to replay as in training. Timed the way the ordinary step
/// is: each replay read back before the next (the running loss sum), `warmup` untimed replays
/// first. A capture's own warm-up (three ordinary steps) and recording are not timed: `train`
/// pays them three times an epoch on MNIST at batch 128, which its epoch times show.
#[derive(Debug, Serialize)]
pub struct ReplayedSteps {
    pub median_step_ms: f64,
    pub p10_step_ms: f64,
    pub p90_step_ms: f64,
    /// Median milliseconds until `replay` returned, before the read-back.
    pub median_enqueue_ms: f64,
    /// Graphs captured to make the replays (one per block of the set, as a block runs out).
    pub captures: usize,
    /// Median milliseconds of a capture, its three ordinary warm-up steps included, waited
    /// for: `train` pays it once per block per epoch (three times at batch 128 on MNIST),
    /// which says how much reusing graphs across epochs could save.
    pub median_capture_ms: f64,
    /// The largest difference between a replay's loss (read from the running sum) and the
    /// loss an ordinary forward pass computes, just before it, from the weights as they are
    /// then and the same batch; in units of the running sum's rounding (so `<= 1`: the same).
    pub worst_loss_error: f64,
    /// Every replay's loss is that of an ordinary forward pass from the model's weights as the
    /// steps before it left them (`worst_loss_error <= 1`): the replay read the right batch and
    /// the model's own weights, not a copy. (That its Adam writes them as the ordinary step
    /// would is the integration tests' check: a replayed and an issued run end alike.)
    pub same_loss: bool,
}

/// Kept whole: after the measuring calls it is the one `BenchResult` literal, a field a line.
pub fn bench(args: BenchArgs) -> Result<(), AppError> {
    let (mut session, opened) = open_session(&args)?;
    let mut batches = Batches::new(
        &session,
        args.batch_size as usize,
        args.model.is_variational(),
    );
    let (warmup, steps) = (args.warmup as usize, args.steps as usize);
    let (times, enqueue, kernel_launches_by_kernel) =
        time_steps(&mut session, &mut batches, &opened.device, warmup, steps)?;
    // Where the time goes: the same steps again, waiting for the device after each phase.
    let [forward, backward, optimizer] = time_phases(
        &mut session,
        &mut batches,
        &opened.device,
        warmup + steps,
        steps,
    )?;
    let (replayed, not_replayed) = match args.device {
        device::DeviceChoice::Gpu if !args.no_graph => {
            match time_replayed(&mut session, &mut batches, warmup, steps)? {
                Ok(r) => (Some(r), None),
                Err(why) => (None, Some(why)),
            }
        }
        _ => (None, None),
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
        replayed,
        not_replayed,
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
            order: EpochOrder::new(&session.train, perm, size, None),
            noise: variational.then(|| rng::epoch_noise(1, 1, size, latent)),
            size,
            latent,
        }
    }

    /// The `step`th batch, starting over from the first when the set runs out.
    fn get(&mut self, session: &Session, step: usize) -> (Tensor<2>, Option<Tensor<2>>) {
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

/// Milliseconds of each of `steps` whole steps after `warmup` untimed ones, each waited for;
/// the milliseconds of each until the host had handed its work on (see
/// [`BenchResult::median_enqueue_ms`]); and the kernel launches per timed step, by kernel.
fn time_steps(
    session: &mut Session,
    batches: &mut Batches,
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
        wait_for(device)?;
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

/// See [`ReplayedSteps`]; `Err` says why a step cannot be replayed here.
///
/// Kept whole: one loop over captures and their replays, each replay checked and timed.
fn time_replayed(
    session: &mut Session,
    batches: &mut Batches,
    warmup: usize,
    steps: usize,
) -> Result<Result<ReplayedSteps, &'static str>, AppError> {
    let size = batches.size;
    let blocks: Vec<Segment> = graph::segments(&batches.order, size)
        .into_iter()
        .filter(|s| s.batches.len() >= WARMUP_STEPS + 2)
        .collect();
    if blocks.is_empty() {
        return Ok(Err(
            "no block of the training set holds five full batches (a capture's warm-up, its step and one replay)",
        ));
    }
    let (n, latent) = (session.train.len(), batches.latent);
    let inner = session.device.clone().inner();
    // The replays take the VAE's noise out of one epoch's draw, as training does.
    let noise = batches.noise.as_ref().map(|_| {
        Tensor::<2>::from_data(
            TensorData::new(rng::epoch_noise(1, 1, n, latent), [n, latent]),
            &inner,
        )
    });
    let running = Tensor::<1>::zeros([1], &inner);
    let (mut times, mut enqueue) = (Vec::with_capacity(steps), Vec::with_capacity(steps));
    let (mut capture_times, mut worst) = (Vec::new(), 0.0f64);
    // Replays made so far, the untimed ones included.
    let (total, mut done) = (warmup + steps, 0);
    let w = size as f32;
    for block in blocks.iter().cycle() {
        if done >= total {
            break;
        }
        let start = block.batches.start;
        // A graph that ends with the replays still wanted (one more where the capture records
        // its step without running it).
        let end = block
            .batches
            .end
            .min(start + WARMUP_STEPS + 1 + total - done);
        let inputs = StepInputs {
            segment: Segment {
                block: block.block.clone(),
                batches: start..end,
            },
            noise: noise.clone(),
            batch: size,
            kl_weight: KlWeight::Fixed(session.beta),
            lr: session.settings.lr,
            next: start,
        };
        let clock = Instant::now();
        let Some((mut graph, ran)) = session.capture(inputs, &running)? else {
            return Ok(Err(
                "Burn's Adam (--burn-adam) does not step in place: train issues every step with it",
            ));
        };
        let mut sum = read_scalar(running.clone())? as f32;
        capture_times.push(clock.elapsed().as_secs_f32() * 1e3);
        for next in start + ran..end {
            // What the replay should add to the running sum: an ordinary forward pass from the
            // weights as they are now, on the batch the replay should take.
            let (a, b) = (next * size, (next + 1) * size);
            let x = batches.order.batch(&session.train, a..b);
            let eps = noise
                .as_ref()
                .map(|e| Tensor::from_inner(e.clone().slice([a..b, 0..latent])));
            let losses = session.model().losses(x, eps, session.beta);
            let expected = read_scalar(losses.total.detach().inner())? as f32;
            let clock = Instant::now();
            graph.replay();
            let handed_on = clock.elapsed();
            let after = read_scalar(running.clone())? as f32; // waits for the device
            let took = clock.elapsed();
            // The device added fl(expected * w) to the sum and rounded: half an ulp of each.
            let rounding = half_ulp(after) + half_ulp(expected * w);
            let error = (f64::from(after) - f64::from(sum) - f64::from(expected) * f64::from(w))
                .abs()
                / rounding;
            worst = worst.max(if error.is_nan() { f64::INFINITY } else { error });
            sum = after;
            if (warmup..total).contains(&done) {
                times.push(took.as_secs_f32() * 1e3);
                enqueue.push(handed_on.as_secs_f32() * 1e3);
            }
            done += 1;
        }
        session.finish(graph)?;
    }
    Ok(Ok(ReplayedSteps {
        median_step_ms: percentile(&times, 50.0),
        p10_step_ms: percentile(&times, 10.0),
        p90_step_ms: percentile(&times, 90.0),
        median_enqueue_ms: percentile(&enqueue, 50.0),
        captures: capture_times.len(),
        median_capture_ms: percentile(&capture_times, 50.0),
        worst_loss_error: worst,
        same_loss: worst <= 1.0,
    }))
}

/// Half the distance from `v` to the next float away from zero: the most rounding to nearest
/// moves a result of that size.
fn half_ulp(v: f32) -> f64 {
    let v = v.abs();
    f64::from(f32::from_bits(v.to_bits() + 1) - v) / 2.0
}

/// Median milliseconds of the three phases of `steps` steps from step `first` on, the device
/// waited for after each phase (which would distort whole-step times on a GPU).
fn time_phases(
    session: &mut Session,
    batches: &mut Batches,
    device: &burn::tensor::Device,
    first: usize,
    steps: usize,
) -> Result<[f64; 3], AppError> {
    let mut phases: [Vec<f32>; 3] = Default::default();
    for step in first..first + steps {
        let (x, eps) = batches.get(session, step);
        wait_for(device)?;
        let mut last = Instant::now();
        let mut failed = None;
        session.step_marked(x, eps, &mut |phase| {
            if let Err(e) = wait_for(device) {
                failed = Some(e);
            }
            let now = Instant::now();
            phases[phase as usize].push((now - last).as_secs_f32() * 1e3);
            last = now;
        });
        if let Some(e) = failed {
            return Err(e.into());
        }
    }
    Ok(phases.map(|p| percentile(&p, 50.0)))
}

impl BenchResult {
    /// The text `bench` prints without `--json`.
    fn sentence(&self) -> String {
        let replay = match (&self.replayed, self.not_replayed) {
            (Some(r), _) => format!(
                "; replayed as train takes it ({} captures of {:.1} ms, the weights advancing in place): median {:.3} ms (p10 {:.3}, p90 {:.3}; host done after {:.3}), {} loss as an ordinary forward pass from the same weights",
                r.captures,
                r.median_capture_ms,
                r.median_step_ms,
                r.p10_step_ms,
                r.p90_step_ms,
                r.median_enqueue_ms,
                if r.same_loss {
                    "the same"
                } else {
                    "NOT the same"
                }
            ),
            (None, Some(why)) => format!("; not replayed: {why}"),
            (None, None) => String::new(),
        };
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
