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
    let f = || {
        let mut h = x.clone();
        for _ in 0..30 {
            h = h.matmul(w.clone()).clamp_min(0.0).add_scalar(0.01);
        }
        h.sum()
    };
    for _ in 0..20 {
        let _ = f().into_scalar::<f32>();
    }
    let t = Instant::now();
    let mut s = 0.0;
    for _ in 0..n {
        s += f().into_scalar::<f32>();
    }
    let normal = t.elapsed().as_secs_f64() * 1e3 / n as f64;
    // Safety of the replays below: every tensor the closures read (x, w, xa, wa) lives until
    // the end of main, and one thread issues everything, on the capture's stream.
    let mut g = burn::tensor::capture(&device, f);
    println!("hardware graph: {}", g.is_hardware());
    let t = Instant::now();
    let mut s2 = 0.0;
    for _ in 0..n {
        s2 += unsafe { g.replay() }.clone().into_scalar::<f32>();
    }
    let replay = t.elapsed().as_secs_f64() * 1e3 / n as f64;
    println!("normal {normal:.3} ms/iter (sum {s}), replay {replay:.3} ms/iter (sum {s2})");

    // The same chain with gradients: tensors on the autodiff device, the graph captured on the
    // inner device's stream (Burn's autodiff backend itself reports no graph support).
    let ad = device.clone().autodiff();
    let wa = Tensor::<2>::random([8, 8], Distribution::Default, &ad)
        .mul_scalar(0.1)
        .require_grad();
    let xa = Tensor::<2>::random([8, 8], Distribution::Default, &ad);
    let fa = || {
        let mut h = xa.clone();
        for _ in 0..30 {
            h = h.matmul(wa.clone()).clamp_min(0.0).add_scalar(0.01);
        }
        let loss = h.sum();
        let grads = loss.backward();
        wa.grad(&grads).map(|g| g.sum()).unwrap()
    };
    let t = Instant::now();
    let mut s = 0.0;
    for _ in 0..n {
        s += fa().into_scalar::<f32>();
    }
    let normal = t.elapsed().as_secs_f64() * 1e3 / n as f64;
    let mut g = burn::tensor::capture(&device, fa);
    println!("autodiff: hardware graph: {}", g.is_hardware());
    let t = Instant::now();
    let mut s2 = 0.0;
    for _ in 0..n {
        s2 += unsafe { g.replay() }.clone().into_scalar::<f32>();
    }
    let replay = t.elapsed().as_secs_f64() * 1e3 / n as f64;
    println!(
        "autodiff: normal {normal:.3} ms/iter (sum {s}), replay {replay:.3} ms/iter (sum {s2})"
    );
}
