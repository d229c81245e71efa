//! `train` and `compare`.

use std::path::{Path, PathBuf};

use crate::cli::{CompareArgs, TrainArgs};
use crate::data::Dataset;
use crate::error::AppError;
use crate::model::ModelKind;
use crate::report::compare;
use crate::run::{self, LoadedRun, RunConfig};
use crate::train::{self, RunTarget, Timings, load_data};

use super::output::{self, VisualRun};

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
        let (trained, data) = train::resume(run_dir)?;
        let timings = output::finish_run(&trained, &data, &args.figures.options())?;
        eprintln!("time: {timings}");
        trained.run_dir
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
        let trained = train::train_new(settings, &data, &target)?;
        let timings = output::finish_run(&trained, &data, &args.figures.options())?;
        eprintln!("time: {timings}");
        trained.run_dir
    };
    say!("{}", run_dir.display())?;
    Ok(())
}

/// `compare` without finished runs: refuses what it cannot compare before any training, then
/// trains the AE and the VAE alike on one load of the data, each to a finished run.
fn train_both(
    args: &CompareArgs,
    opts: &crate::report::FigureOptions,
    timings: &mut Timings,
) -> Result<((PathBuf, PathBuf), Dataset), AppError> {
    // Check the output folder before spending minutes on training.
    if let Some(out) = args.out.as_ref().filter(|o| o.exists()) {
        return Err(run::RunError::Exists { path: out.clone() }.into());
    }
    if args.flags.model.latent != 2 {
        return Err(AppError::Usage(format!(
            "--latent {}: compare draws the two latent planes side by side and needs \
             --latent 2 (train takes other sizes, and draws their two most varied dimensions)",
            args.flags.model.latent
        )));
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
    let data = load_data(&ae)?;
    let mut dirs = Vec::new();
    for settings in [ae, vae] {
        let trained = train::train_new(settings, &data, &target)?;
        timings.merge(&output::finish_run(&trained, &data, opts)?);
        dirs.push(trained.run_dir);
    }
    let dirs = (dirs.remove(0), dirs.remove(0));
    Ok((dirs, data))
}

/// Kept whole: the comparison's steps in order (runs, checks, data, measuring, figures, page), each
/// a call.
pub fn compare(args: CompareArgs) -> Result<(), AppError> {
    let opts = args.figures.options();
    let mut timings = Timings::default();
    let mut shared_data = None;
    let (ae_dir, vae_dir) = match (&args.ae, &args.vae) {
        (Some(ae), Some(vae)) => (ae.clone(), vae.clone()),
        _ => {
            let (dirs, data) = train_both(&args, &opts, &mut timings)?;
            shared_data = Some(data);
            dirs
        }
    };
    let ae = open_as(&ae_dir, ModelKind::Ae, "--ae")?;
    let vae = open_as(&vae_dir, ModelKind::Vae, "--vae")?;
    for (run, flag) in [(&ae, "--ae"), (&vae, "--vae")] {
        super::needs_plane(run, &format!("compare {flag}"))?;
    }
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
    let comparing = std::time::Instant::now();
    let ae_side = compare::measure(&ae, &data, &opts)?;
    let vae_side = compare::measure(&vae, &data, &opts)?;
    compare::write(&ae_side, &vae_side, &data.test.labels, &out)?;
    timings.add("comparison", comparing.elapsed().as_secs_f64());
    fn visual<'a>(run: &'a LoadedRun, codes: &'a [f32], data: &Dataset) -> VisualRun<'a> {
        VisualRun {
            model: &run.model,
            device: &run.device,
            kind: run.config.settings.model.kind,
            run_dir: &run.dir,
            epoch: run.epoch,
            steps_per_epoch: run.config.settings.steps_per_epoch(data.train.len()),
            codes,
            latent: 2,
            rows: &[],
        }
    }
    output::write_animation_and_explorer(
        &out,
        "latent_evolution_ae_vs_vae.gif",
        &data,
        &[
            visual(&ae, &ae_side.codes.mu, &data),
            visual(&vae, &vae_side.codes.mu, &data),
        ],
        &mut timings,
    )?;
    for line in compare::observations(&ae_side, &vae_side) {
        eprintln!("- {}", line.replace("**", ""));
    }
    eprintln!("time, both models: {timings}");
    say!("{}", out.display())?;
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
