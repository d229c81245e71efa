use std::process::ExitCode;
use std::sync::atomic::Ordering;

use clap::Parser;
use latentlab::cli::Cli;
use latentlab::error::EXIT_INTERRUPTED;
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
    let cli = Cli::parse();
    // First Ctrl-C or SIGTERM: finish cleanly at the next batch. Second: leave at once.
    let _ = ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::SeqCst) {
            std::process::exit(EXIT_INTERRUPTED as i32);
        }
        eprintln!("\nstopping after this batch (Ctrl-C again to quit at once)...");
    });
    match latentlab::commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
