//! `train` and `compare`.

use std::path::Path;

use crate::cli::{CompareArgs, TrainArgs};
use crate::error::AppError;
use crate::model::ModelKind;
use crate::report::{EvolutionInput, ExplorerInput, compare, write_evolution, write_explorer};
use crate::run::{self, LoadedRun, RunConfig};
use crate::train::{self, RunTarget, load_data};

pub fn train(args: TrainArgs) -> Result<(), AppError> {
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
        let data = load_data(&settings)?;
        train::train_new(settings, &data, &target, &args.figures.options())?
    };
    println!("{}", run_dir.display());
    Ok(())
}

pub fn compare(args: CompareArgs) -> Result<(), AppError> {
    let opts = args.figures.options();
    let mut shared_data = None;
    let (ae_dir, vae_dir) = match (&args.ae, &args.vae) {
        (Some(ae), Some(vae)) => (ae.clone(), vae.clone()),
        _ => {
            // Check the output folder before spending minutes on training.
            if let Some(out) = args.out.as_ref().filter(|o| o.exists()) {
                return Err(run::RunError::Exists { path: out.clone() }.into());
            }
            let target = RunTarget::Under(args.runs_dir.clone());
            let ae = args
                .flags
                .settings(ModelKind::Ae)
                .map_err(AppError::Usage)?;
            let vae = args
                .flags
                .settings(ModelKind::Vae)
                .map_err(AppError::Usage)?;
            // One load serves both trainings and the comparison.
            let data = load_data(&ae)?;
            let dirs = (
                train::train_new(ae, &data, &target, &opts)?,
                train::train_new(vae, &data, &target, &opts)?,
            );
            shared_data = Some(data);
            dirs
        }
    };
    let ae = open_as(&ae_dir, ModelKind::Ae, "--ae")?;
    let vae = open_as(&vae_dir, ModelKind::Vae, "--vae")?;
    let (sa, sv) = (&ae.config.settings, &vae.config.settings);
    if sa.dataset != sv.dataset || sa.data_dir != sv.data_dir {
        return Err(AppError::Usage(format!(
            "{} and {} were trained on different data ({} and {}); compare runs of one data set",
            ae_dir.display(),
            vae_dir.display(),
            sa.data_dir.display(),
            sv.data_dir.display()
        )));
    }
    let data = match shared_data {
        Some(data) => data,
        None => load_data(sa)?,
    };
    let out = match &args.out {
        Some(dir) => run::create_exact_dir(dir)?,
        None => run::create_new_run_dir(&args.runs_dir, "compare", sa.dataset.as_str())?,
    };
    let ae_side = compare::measure(&ae, &data, &opts)?;
    let vae_side = compare::measure(&vae, &data, &opts)?;
    compare::write(&ae_side, &vae_side, &data.test.labels, &out)?;
    let sides = [(&ae, &ae_side), (&vae, &vae_side)];
    let inputs: Vec<ExplorerInput> = sides
        .iter()
        .map(|(run, side)| ExplorerInput {
            model: &run.model,
            kind: run.config.settings.model.kind,
            epoch: run.epoch,
            codes: &side.codes.mu,
        })
        .collect();
    write_explorer(&out, &data, &inputs)?;
    let steps_per_epoch = |run: &LoadedRun| run.config.settings.steps_per_epoch(data.train.len());
    let evolution: Vec<EvolutionInput> = sides
        .iter()
        .map(|(run, _)| EvolutionInput {
            run_dir: &run.dir,
            kind: run.config.settings.model.kind,
            dataset: &data.name,
            steps_per_epoch: steps_per_epoch(run),
            last_step: run.epoch * steps_per_epoch(run),
        })
        .collect();
    write_evolution(
        &out.join("latent_evolution_ae_vs_vae.gif"),
        &evolution,
        &data.test.labels,
    )?;
    for line in compare::observations(&ae_side, &vae_side) {
        eprintln!("- {}", line.replace("**", ""));
    }
    println!("{}", out.display());
    Ok(())
}

fn open_as(dir: &Path, kind: ModelKind, flag: &str) -> Result<LoadedRun, AppError> {
    let run = LoadedRun::open(dir)?;
    if run.config.settings.model.kind != kind {
        return Err(AppError::Usage(format!(
            "{flag} {}: that run trains the {}, not the {}",
            dir.display(),
            run.config.settings.model.kind.as_str().to_uppercase(),
            kind.as_str().to_uppercase()
        )));
    }
    Ok(run)
}
