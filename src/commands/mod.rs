//! What each subcommand does, from parsed arguments to files and printed lines.

/// `println!` that returns `AppError::Stdout` instead of panicking when standard output is
/// closed, as it is under `latentlab devices | head`.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*).map_err($crate::error::AppError::Stdout)
    }};
}

mod bench;
mod inspect;
pub mod output;
mod train;

use crate::cli::{Cli, Command};
use crate::device;
use crate::error::AppError;

pub fn run(cli: Cli) -> Result<(), AppError> {
    match cli.command {
        Command::Train(args) => train::train(args),
        Command::Compare(args) => train::compare(args),
        Command::Plot(args) => inspect::plot(args),
        Command::Encode(args) => inspect::encode(args),
        Command::Decode(args) => inspect::decode_command(args),
        Command::Sample(args) => inspect::sample(args),
        Command::Interpolate(args) => inspect::interpolate(args),
        Command::Export(args) => inspect::export(args),
        Command::Bench(args) => bench::bench(args),
        Command::Devices => devices(),
    }
}

/// Refuses, before any work, a run whose latent space is not the plane that `what` draws.
fn needs_plane(run: &crate::run::LoadedRun, what: &str) -> Result<(), AppError> {
    let latent = run.config.settings.model.latent;
    if latent == 2 {
        return Ok(());
    }
    Err(AppError::Usage(format!(
        "{}: this model has {latent} latent dimensions; {what} needs a 2-D latent (--latent 2)",
        run.dir.display()
    )))
}

fn devices() -> Result<(), AppError> {
    let (adapters, chosen) = device::list_adapters()?;
    say!("wgpu adapters:")?;
    for a in &adapters {
        say!("  {}  [{}]", a.name, a.id)?;
    }
    say!("--device gpu uses: {chosen}")?;
    say!(
        "--device cpu uses: Burn's flex backend on {}",
        device::cpu_name()
    )?;
    Ok(())
}
