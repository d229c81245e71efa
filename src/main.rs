use std::process::ExitCode;
use std::sync::atomic::Ordering;

use clap::Parser;
use latentlab::cli::Cli;
use latentlab::error::{EXIT_INTERRUPTED, EXIT_RUNTIME};
use latentlab::train::STOP;

fn main() -> ExitCode {
    // Burn materialises loaded optimiser state on its default device before moving it to the
    // training device; pin that default to the CPU so a resume never starts a GPU driver.
    // SAFETY: the first statement of main, before any other thread exists.
    unsafe { std::env::set_var("BURN_DEVICE", "flex") };
    // The Vulkan loader warns on every start without a private runtime folder; give it one.
    if let Some(dir) = latentlab::device::private_runtime_dir() {
        // SAFETY: as above, still before any other thread exists.
        unsafe { std::env::set_var("XDG_RUNTIME_DIR", dir) };
    }
    latentlab::device::cpu::keep_freed_memory();
    latentlab::device::cpu::init_compute_threads();
    let cli = Cli::parse();
    // First Ctrl-C or SIGTERM: finish cleanly at the next batch. Second: leave at once.
    let _ = ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::SeqCst) {
            std::process::exit(EXIT_INTERRUPTED as i32);
        }
        eprintln!("\nstopping after this batch (Ctrl-C again to quit at once)...");
    });
    std::panic::set_hook(Box::new(report_panic));
    let run = || latentlab::device::cpu::on_compute_threads(|| latentlab::commands::run(cli));
    match std::panic::catch_unwind(run) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) if e.is_closed_pipe() => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
        Err(_) => ExitCode::from(EXIT_RUNTIME),
    }
}

/// A failure latentlab did not foresee (most often the GPU driver failing mid-run) as one
/// sentence that says what is kept and what to try, instead of a backtrace; RUST_BACKTRACE=1
/// shows Rust's own report as well.
fn report_panic(info: &std::panic::PanicHookInfo) {
    let payload = info.payload();
    let message = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("unknown failure");
    let first = message.lines().next().unwrap_or_default().trim();
    let cause = message
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !l.contains("backtrace") && !l.starts_with("Asked at"))
        .unwrap_or_default();
    let what = if cause.is_empty() || cause == first {
        first.to_string()
    } else {
        format!("{first}: {cause}")
    };
    eprintln!(
        "error: latentlab stopped on an unexpected failure ({what}); the checkpoint of the last \
         finished epoch is kept (`latentlab train --resume RUN_DIR` continues); if it happened \
         on --device gpu, --device cpu avoids the graphics driver"
    );
    if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
        eprintln!("{info}\n{}", std::backtrace::Backtrace::force_capture());
    }
}
