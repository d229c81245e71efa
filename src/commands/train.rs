//! `train` and `compare`.

use std::path::{Path, PathBuf};

use crate::cli::{CompareArgs, TrainArgs};
use crate::config::TrainSettings;
use crate::data::Dataset;
use crate::device::DeviceChoice;
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
    match side_by_side_pools(&ae) {
        Some(pools) => {
            let start = std::time::Instant::now();
            let both = train_at_once([ae, vae], pools, &data, &target)?;
            // One wall time for the two trainings: their own clocks ran at the same time.
            timings.add(AT_ONCE, start.elapsed().as_secs_f64());
            for trained in &both {
                let mut own = output::finish_run(trained, &data, opts)?;
                for phase in train::TRAINING_PHASES {
                    own.remove(phase);
                }
                timings.merge(&own);
                dirs.push(trained.run_dir.clone());
            }
        }
        None => {
            for settings in [ae, vae] {
                let trained = train::train_new(settings, &data, &target)?;
                timings.merge(&output::finish_run(&trained, &data, opts)?);
                dirs.push(trained.run_dir);
            }
        }
    }
    let dirs = (dirs.remove(0), dirs.remove(0));
    Ok((dirs, data))
}

/// The time of the two trainings side by side, in `compare`'s breakdown.
const AT_ONCE: &str =
    "training both at once (start-up, snapshots, test losses and checkpoints included)";

/// Two thread pools, each with half of the cores, where `compare` trains its models at once:
/// on the CPU with at least two cores. A small model's matrix products barely use a second
/// core (two threads make a step about 1.35x as fast as one, BENCHMARKS.md), so the two models
/// side by side, one core each, take about 0.65 of the time of one after the other; each
/// result is the same either way, since the arithmetic does not depend on the thread count.
/// None (train one after the other) on a GPU, on one core, or where no pool can be made.
fn side_by_side_pools(settings: &TrainSettings) -> Option<[rayon::ThreadPool; 2]> {
    let threads = rayon::current_num_threads();
    if settings.device != DeviceChoice::Cpu || threads < 2 {
        return None;
    }
    // Built here, on the command's thread: the pools take its denormal mode.
    let pool = || crate::device::cpu::pool_like_this_thread(threads / 2).ok();
    Some([pool()?, pool()?])
}

/// Trains both models at the same time, each in its own pool; every failure is reported (one
/// Ctrl-C stops both, and each says how to resume), the last one as the error.
fn train_at_once(
    settings: [TrainSettings; 2],
    pools: [rayon::ThreadPool; 2],
    data: &Dataset,
    target: &RunTarget,
) -> Result<Vec<train::Trained>, AppError> {
    let results: Vec<Result<train::Trained, train::TrainError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = settings
            .into_iter()
            .zip(pools)
            .map(|(settings, pool)| {
                scope.spawn(move || pool.install(|| train::train_new(settings, data, target)))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    let (mut both, mut errors) = (Vec::new(), Vec::new());
    for result in results {
        match result {
            Ok(trained) => both.push(trained),
            Err(e) => errors.push(e),
        }
    }
    match errors.pop() {
        Some(last) => {
            for e in errors {
                eprintln!("error: {e}");
            }
            Err(last.into())
        }
        None => Ok(both),
    }
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
