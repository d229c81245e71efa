//! What each subcommand does, from parsed arguments to files and printed lines.

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
        Command::Bench(args) => bench::bench(args),
        Command::Devices => devices(),
    }
}

fn devices() -> Result<(), AppError> {
    let (adapters, chosen) = device::list_adapters()?;
    println!("wgpu adapters:");
    for a in &adapters {
        println!("  {}  [{}]", a.name, a.id);
    }
    println!("--device gpu uses: {chosen}");
    println!(
        "--device cpu uses: Burn's flex backend on {}",
        device::cpu_name()
    );
    Ok(())
}
