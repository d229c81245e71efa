//! The same training steps on the CPU backend and through wgpu (lavapipe on a machine without
//! a GPU): the loss goes down, and both backends agree.
//!
//! Tolerance: both start from the same weights and see the same batches and noise, so they
//! differ only by float rounding (summation order in matmuls and reductions). The first
//! steps must agree to 1e-4 relative; over 200 Adam steps the rounding differences grow, so
//! the mean of the last 20 losses must agree to 1%.

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use latentlab::config::TrainSettings;
use latentlab::data::Dataset;
use latentlab::device::{self, DeviceChoice};
use latentlab::model::ModelKind;
use latentlab::train::adam::adam;
use latentlab::train::load_data;
use latentlab::train::rng;
use latentlab::train::session::{DeviceSplit, Session, read_scalar};

const STEPS: usize = 200;

fn settings(kind: ModelKind, device: DeviceChoice) -> TrainSettings {
    TrainSettings {
        device,
        data_dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist"),
        epochs: 1,
        batch_size: 64,
        seed: 3,
        train_limit: Some(4096),
        iwae_samples: 1,
        ..TrainSettings::new(kind)
    }
}

fn data() -> Dataset {
    load_data(&settings(ModelKind::Vae, DeviceChoice::Cpu)).unwrap()
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn run(kind: ModelKind, choice: DeviceChoice, data: &Dataset) -> Vec<f64> {
    let opened = device::open(choice).unwrap_or_else(|e| {
        panic!(
            "{e}\n(the GPU tests need a Vulkan driver; on Debian: apt install mesa-vulkan-drivers)"
        )
    });
    losses_of_steps(&settings(kind, choice), opened.device, data, STEPS)
}

#[test]
fn a_few_hundred_cpu_steps_lower_the_loss() {
    let data = data();
    for kind in [ModelKind::Ae, ModelKind::Vae] {
        let l = run(kind, DeviceChoice::Cpu, &data);
        let (first, last) = (mean(&l[..10]), mean(&l[STEPS - 20..]));
        assert!(last < 0.5 * first, "{kind:?}: loss {first:.1} -> {last:.1}");
        assert!(
            last < 230.0,
            "{kind:?}: loss after {STEPS} steps still {last:.1}"
        );
    }
}

#[test]
fn wgpu_agrees_with_the_cpu_backend() {
    let data = data();
    for kind in [ModelKind::Ae, ModelKind::Vae] {
        let cpu = run(kind, DeviceChoice::Cpu, &data);
        let gpu = run(kind, DeviceChoice::Gpu, &data);
        for (i, (c, g)) in cpu.iter().zip(&gpu).take(5).enumerate() {
            assert!(
                (c - g).abs() <= 1e-4 * c.abs(),
                "{kind:?} step {i}: cpu {c} wgpu {g}"
            );
        }
        let (c, g) = (mean(&cpu[STEPS - 20..]), mean(&gpu[STEPS - 20..]));
        assert!(
            (c - g).abs() <= 0.01 * c,
            "{kind:?}: last-20 mean cpu {c:.3} wgpu {g:.3}"
        );
        assert!(
            g < 0.5 * mean(&gpu[..10]),
            "{kind:?}: the wgpu loss goes down too"
        );
    }
}

/// The whole MNIST training set (188 MB as f32) is more than wgpu lets one buffer hold on
/// lavapipe (and WebGPU's default limit); it must still go to the GPU and give the same
/// batches there as on the CPU, rows from every block included.
#[test]
fn the_full_training_set_fits_on_the_gpu() {
    let mut full = settings(ModelKind::Ae, DeviceChoice::Cpu);
    full.train_limit = None;
    let data = load_data(&full).unwrap();
    assert_eq!(data.train.len(), 60_000);
    let gpu = device::open(DeviceChoice::Gpu).unwrap().device;
    let on_gpu = DeviceSplit::upload(&data.train, data.pixels(), &gpu);
    let on_cpu = DeviceSplit::upload(&data.train, data.pixels(), &burn::tensor::Device::flex());
    let index: Vec<i64> = vec![59_999, 0, 31_337, 21_400, 42_000, 7, 59_998, 30_000];
    let read = |t: burn::Tensor<2>| t.into_data().try_to_vec::<f32>().unwrap();
    assert_eq!(read(on_gpu.gather(&index)), read(on_cpu.gather(&index)));
    assert_eq!(
        read(on_gpu.rows(21_000..22_000)),
        read(on_cpu.rows(21_000..22_000))
    );
    // Back to the CPU as the report does after training (block by block, never joined on
    // the GPU), and from the CPU to the GPU again.
    let back = on_gpu.to_device(&burn::tensor::Device::flex());
    assert_eq!(read(back.gather(&index)), read(on_cpu.gather(&index)));
    let again = on_cpu.to_device(&gpu);
    assert_eq!(read(again.gather(&index)), read(on_cpu.gather(&index)));
}

/// The losses of `steps` training steps from fresh weights, batches taken in order from the
/// start of the training set (no shuffle), each loss read back at once: a fixed workload
/// whose numbers can be compared across devices.
fn losses_of_steps(
    settings: &TrainSettings,
    device: Device,
    data: &Dataset,
    steps: usize,
) -> Vec<f64> {
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
        losses.push(read_scalar(loss).unwrap());
    }
    losses
}
