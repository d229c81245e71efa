//! The CPU that `--device cpu` computes on: its threads flush denormal floats to zero, and
//! what it offers (instruction set, peak rate) for `bench` to report.
//!
//! Why flush: as training proceeds, Adam's second moments and many small gradients and
//! activations fall below f32's normal range (1.2e-38). x86 processors handle such denormal
//! numbers in microcode, tens of times slower, so epochs got slower and slower (issue 13:
//! 5.2, 7.6, 10.4, 12.0 s for the first four on an Intel Xeon). Flushing them to zero (FTZ for
//! results, DAZ for inputs) keeps epochs flat and changes nothing a loss can show: a denormal
//! is below 1e-38. PyTorch offers the same switch (`torch.set_flush_denormal`).

use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// How the computing threads treat denormal floats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DenormalMode {
    /// FTZ and DAZ set: denormal results and inputs are zero.
    FlushToZero,
    /// The IEEE default: denormals are computed, slowly.
    Kept,
}

impl DenormalMode {
    pub fn as_str(self) -> &'static str {
        match self {
            DenormalMode::FlushToZero => "flush-to-zero",
            DenormalMode::Kept => "kept",
        }
    }
}

/// The environment variable that keeps denormals (for comparisons; any value but "0").
pub const KEEP_DENORMALS_VAR: &str = "LATENTLAB_KEEP_DENORMALS";

/// Makes the calling thread and every thread of rayon's global pool flush denormals to zero,
/// unless [`KEEP_DENORMALS_VAR`] is set; returns the mode in force. Burn's CPU backend computes
/// on exactly these threads (its element-wise loops on the caller or in rayon's pool, the
/// matrix products of `gemm` in rayon's pool), so call this once at start, before anything
/// computes: the pool's threads take the mode as they start.
pub fn init_compute_threads() -> DenormalMode {
    let keep = std::env::var_os(KEEP_DENORMALS_VAR).is_some_and(|v| v != "0");
    if keep || !can_flush() {
        return DenormalMode::Kept;
    }
    flush_this_thread();
    // Fails only if the pool was already built (by a test, say): its threads then keep the
    // mode they started with, which `denormal_mode` reports.
    let _ = flushing_pool().build_global();
    denormal_mode()
}

/// Makes the allocator keep freed buffers of up to 32 MB for the next allocation instead of
/// handing them back to the system. The CPU backend allocates a fresh buffer for every tensor;
/// glibc maps large ones afresh each time (above a threshold it raises only as it sees frees)
/// and returns freed memory at the top of its heap, so the IWAE's and the evaluation's
/// buffers of tens of MB were faulted in and zeroed page by page on every chunk: a fifth of
/// the IWAE's time went to the kernel's page faults (BENCHMARKS.md). Call once at start.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets the allocator's thresholds; glibc makes it thread-safe, and
    // values in range are accepted (32 MB is the largest mmap threshold it allows).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// Runs `work` on one of the global pool's threads, the caller waiting, and returns its result.
///
/// Burn's CPU backend, `gemm` and the training step's two half batches all fork and join on
/// rayon's pool. A join called from outside the pool hands both sides to the pool and puts the
/// caller to sleep until they are done, so every phase of every step cost a sleep and a wake-up
/// of the main thread on top of the pool's own: about 50 context switches per step. Called from
/// a pool thread, a join runs one side on that thread and the other on the next free one. On
/// the 2-core EPYC this took `bench --model ae` from 21,090 context switches to 4,310 and its
/// step from 6.99 to 6.65 ms (BENCHMARKS.md). Call it once, around a whole command.
pub fn on_compute_threads<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| work())
}

/// Runs `f` with the pool's second thread awake: until `f` returns, it spins in rayon's yield,
/// taking whatever `f` forks, instead of falling asleep whenever the work pauses.
///
/// A training step forks a dozen times (its two halves, each half's backward, Adam's chunks)
/// with short serial stretches between, each long enough for rayon to put the idle thread to
/// sleep, so every fork paid a futex wake-up: 3.8 % of a step on a 2-core Xeon VM, where
/// spinning took the AE step from 4.77 to 4.64 ms (BENCHMARKS.md).
///
/// Only on a pool of exactly two threads: the step's work is two halves, and with more threads
/// a spinner stolen by a thread that is waiting inside a join would hold up that join until `f`
/// ends, which needs the join. Only around CPU work: the spinning costs a core.
pub fn with_partner_awake<R>(f: impl FnOnce() -> R) -> R {
    let Some(me) = rayon::current_thread_index() else {
        return f();
    };
    if rayon::current_num_threads() != 2 {
        return f();
    }
    let done = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&done);
    rayon::spawn(move || {
        // Run by the thread that spawned it (a join waiting on its own queue), it must not
        // spin: that thread is the one that ends the wait.
        if rayon::current_thread_index() == Some(me) {
            return;
        }
        while !flag.load(Ordering::Acquire) {
            if rayon::yield_now() != Some(rayon::Yield::Executed) {
                std::hint::spin_loop();
            }
        }
    });
    let out = f();
    done.store(true, Ordering::Release);
    out
}

/// A pool of `threads` threads (at least one) that treat denormals as the calling thread does:
/// for work that runs beside other work, each on its share of the cores.
pub fn pool_like_this_thread(
    threads: usize,
) -> Result<rayon::ThreadPool, rayon::ThreadPoolBuildError> {
    let builder = if thread_flushes() {
        flushing_pool()
    } else {
        rayon::ThreadPoolBuilder::new()
    };
    builder.num_threads(threads.max(1)).build()
}

/// A rayon pool whose threads flush denormals as they start.
fn flushing_pool() -> rayon::ThreadPoolBuilder {
    rayon::ThreadPoolBuilder::new().start_handler(|_| flush_this_thread())
}

/// The mode of the calling thread and of every rayon pool thread: flushed only if all flush.
pub fn denormal_mode() -> DenormalMode {
    let here = thread_flushes();
    let pool = rayon::broadcast(|_| thread_flushes());
    if here && pool.iter().all(|&f| f) {
        DenormalMode::FlushToZero
    } else {
        DenormalMode::Kept
    }
}

#[cfg(target_arch = "x86_64")]
mod mxcsr {
    /// MXCSR bits: flush-to-zero (15) and denormals-are-zero (6).
    const FTZ_DAZ: u32 = (1 << 15) | (1 << 6);

    pub fn can_flush() -> bool {
        // DAZ exists on every x86-64 processor with SSE2 bar the very first Pentium 4s.
        true
    }

    #[allow(deprecated)] // _mm_getcsr/_mm_setcsr: still the way to reach MXCSR from Rust.
    pub fn flush_this_thread() {
        // SAFETY: SSE is part of x86-64; setting FTZ and DAZ changes only how this thread
        // rounds results below the normal range.
        unsafe {
            use std::arch::x86_64::{_mm_getcsr, _mm_setcsr};
            _mm_setcsr(_mm_getcsr() | FTZ_DAZ);
        }
    }

    #[allow(deprecated)]
    pub fn thread_flushes() -> bool {
        // SAFETY: reading MXCSR has no effect.
        unsafe { std::arch::x86_64::_mm_getcsr() & FTZ_DAZ == FTZ_DAZ }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod mxcsr {
    // On other processors (Arm's FPCR has its own flush bit) latentlab keeps the default.
    pub fn can_flush() -> bool {
        false
    }
    pub fn flush_this_thread() {}
    pub fn thread_flushes() -> bool {
        false
    }
}

use mxcsr::{can_flush, flush_this_thread, thread_flushes};

/// The widest vector instructions this CPU has that the matrix products use: `gemm` (under
/// burn's CPU backend) is built with its AVX-512 kernels and picks them at run time where the
/// CPU has AVX-512F, else its AVX2+FMA kernels.
pub fn instruction_set() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "avx512f";
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return "avx2+fma";
        }
        "sse2"
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        std::env::consts::ARCH
    }
}

/// The CPU's model name from /proc/cpuinfo where there is one.
pub fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Forks inside, on pools of one, two and three threads: every one completes with its
    /// result (a spinner that waited on its own thread would hang here), and the second
    /// thread is let go when `f` returns (the pool still runs later work).
    #[test]
    fn forks_complete_with_the_partner_kept_awake() {
        fn sum(range: std::ops::Range<u64>) -> u64 {
            if range.end - range.start <= 64 {
                return range.sum();
            }
            let mid = (range.start + range.end) / 2;
            let (a, b) = rayon::join(|| sum(range.start..mid), || sum(mid..range.end));
            a + b
        }
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                for round in 0..200u64 {
                    let n = 1000 + round;
                    assert_eq!(with_partner_awake(|| sum(0..n)), n * (n - 1) / 2);
                }
            });
            let after = pool.install(|| rayon::join(|| 1, || 2));
            assert_eq!(after, (1, 2), "{threads} threads");
        }
    }

    /// A denormal input and a result below the normal range both come out zero on a thread
    /// that flushes and on the threads of a pool built to flush (the property the speed
    /// depends on); a thread left alone keeps them.
    #[test]
    fn flushing_threads_turn_denormals_into_zero() {
        let tiny = std::hint::black_box(1e-39f32);
        assert!(tiny > 0.0 && !tiny.is_normal(), "1e-39 is denormal");
        let small = std::hint::black_box(1e-20f32);
        let kept = std::thread::spawn(move || (tiny * 1.0, small * small, thread_flushes()))
            .join()
            .unwrap();
        assert!(
            kept.0 == tiny && kept.1 > 0.0 && !kept.2,
            "the IEEE default keeps them: {kept:?}"
        );
        if !can_flush() {
            return;
        }
        flush_this_thread();
        assert!(thread_flushes());
        assert_eq!(
            std::hint::black_box(tiny) * 1.0,
            0.0,
            "DAZ: a denormal input reads 0"
        );
        assert_eq!(small * small, 0.0, "FTZ: a denormal result is 0");
        let pool = flushing_pool().num_threads(2).build().unwrap();
        let results: Vec<f32> = pool.broadcast(|_| std::hint::black_box(1e-20f32) * 1e-20);
        assert_eq!(results, vec![0.0, 0.0], "every pool thread flushes");
    }

    #[test]
    fn the_instruction_set_named_is_one_this_cpu_has() {
        let isa = instruction_set();
        #[cfg(target_arch = "x86_64")]
        match isa {
            "avx512f" => assert!(std::arch::is_x86_feature_detected!("avx512f")),
            "avx2+fma" => assert!(std::arch::is_x86_feature_detected!("avx2")),
            "sse2" => {}
            other => panic!("unexpected instruction set {other}"),
        }
        assert!(!isa.is_empty());
    }
}
