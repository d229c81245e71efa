//! What each subcommand does, from parsed arguments to files and printed lines.

use crate::cli::{Cli, Command, TrainArgs};
use crate::device;
use crate::error::AppError;
use crate::run::RunConfig;
use crate::train::{self, RunTarget};

pub fn run(cli: Cli) -> Result<(), AppError> {
    match cli.command {
        Command::Train(args) => train_command(args),
        Command::Devices => devices_command(),
    }
}

fn train_command(args: TrainArgs) -> Result<(), AppError> {
    let run_dir = if let Some(run_dir) = &args.resume {
        let config = RunConfig::load(run_dir)?;
        if let Some(model) = args.model.filter(|m| *m != config.settings.model.kind) {
            return Err(AppError::Usage(format!(
                "--resume {}: that run trains the {}, not the {}; drop --model or pick a {} run",
                run_dir.display(),
                config.settings.model.kind.as_str().to_uppercase(),
                model.as_str().to_uppercase(),
                model.as_str().to_uppercase()
            )));
        }
        train::resume(run_dir, &args.figures.options())?
    } else {
        let model = args
            .model
            .ok_or_else(|| AppError::Usage("--model ae|vae is required".into()))?;
        let settings = args.flags.settings(model).map_err(AppError::Usage)?;
        let target = match args.out {
            Some(dir) => RunTarget::Exact(dir),
            None => RunTarget::Under(args.runs_dir),
        };
        train::train_new(settings, &target, &args.figures.options())?
    };
    println!("{}", run_dir.display());
    Ok(())
}

fn devices_command() -> Result<(), AppError> {
    let (adapters, chosen) = device::list_adapters()?;
    println!("wgpu adapters:");
    for a in &adapters {
        println!("  {}  [{}]", a.name, a.id);
    }
    println!("--device gpu uses: {chosen}");
    println!("--device cpu uses: Burn's flex backend on {}", device::cpu_name());
    Ok(())
}
