//! What replaying a captured graph saves on the GPU path (issue 18): a chain of 30 small dense
//! layers (matrix product, relu, add: about the operations of one training step), run as Burn
//! operations and replayed from a graph captured with `burn::tensor::capture`, without and
//! with gradients. Prints milliseconds per iteration, each ending with a read-back, and the
//! sums of the results, which must agree.
//!
//!   cargo run --release --example graph_replay -- [iterations, default 200]
//!
//! The layers are 8 wide so that the device's arithmetic is next to nothing: what is left is
//! the host's work per operation (Burn's autodiff, its fusion, CubeCL's launches), which a
//! replay skips. BENCHMARKS.md ("A captured graph ...") has what it printed and what a
//! training step would need before it can be replayed.
use burn::tensor::{Device, DeviceKind, Distribution, Tensor};
use std::time::Instant;

fn main() {
    let device = Device::wgpu(DeviceKind::DefaultDevice);
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let w = Tensor::<2>::random([8, 8], Distribution::Default, &device).mul_scalar(0.1);
    let x = Tensor::<2>::random([8, 8], Distribution::Default, &device);
    // 30 matmuls, 30 relus, 30 adds: about what one training step issues.
    compare("forward", &device, n, || {
        let mut h = x.clone();
        for _ in 0..30 {
            h = h.matmul(w.clone()).clamp_min(0.0).add_scalar(0.01);
        }
        h.sum()
    });

    // The same chain with gradients: tensors on the autodiff device, the graph captured on the
    // inner device's stream (Burn's autodiff backend itself reports no graph support).
    let ad = device.clone().autodiff();
    let wa = Tensor::<2>::random([8, 8], Distribution::Default, &ad)
        .mul_scalar(0.1)
        .require_grad();
    let xa = Tensor::<2>::random([8, 8], Distribution::Default, &ad);
    compare("forward and backward", &device, n, || {
        let mut h = xa.clone();
        for _ in 0..30 {
            h = h.matmul(wa.clone()).clamp_min(0.0).add_scalar(0.01);
        }
        let grads = h.sum().backward();
        wa.grad(&grads).map(|g| g.sum()).unwrap()
    });
}

/// `f` run `n` times as Burn operations, then captured and replayed `n` times, after the same
/// 20 untimed runs (kernel compilation, autotune); each iteration read back.
fn compare(what: &str, device: &Device, n: usize, mut f: impl FnMut() -> Tensor<1>) {
    for _ in 0..20 {
        let _ = f().into_scalar::<f32>();
    }
    let t = Instant::now();
    let ran: f32 = (0..n).map(|_| f().into_scalar::<f32>()).sum();
    let normal = t.elapsed().as_secs_f64() * 1e3 / n as f64;
    let mut graph = burn::tensor::capture(device, f);
    let t = Instant::now();
    // Safety: every tensor the closure reads lives in `main` until after this function, and
    // one thread issues everything, on the capture's stream.
    let replayed: f32 = (0..n)
        .map(|_| unsafe { graph.replay() }.clone().into_scalar::<f32>())
        .sum();
    let replay = t.elapsed().as_secs_f64() * 1e3 / n as f64;
    println!(
        "{what}: run {normal:.3} ms/iteration (sum {ran}), replayed {replay:.3} ms/iteration \
         (sum {replayed}; a captured graph: {})",
        graph.is_hardware()
    );
}
