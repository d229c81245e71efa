//! Training runs: a new run or a resumed one, epoch by epoch, each epoch saved to its run
//! directory. What a finished run is turned into (summary, figures, explorer) is the
//! commands' business: training returns the trained session and knows nothing of figures.

pub mod adam;
pub mod graph;
mod halves;
pub mod progress;
pub mod readback;
pub mod rng;
pub mod session;
pub mod split;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use thiserror::Error;

use crate::config::TrainSettings;
use crate::data::{Binarize, DataError, Dataset, load_dataset};
use crate::device::{self, DeviceError, OpenedDevice};
use crate::run::{self, MetricsRow, RunConfig, RunError, checkpoint};
use adam::adam;
use progress::Progress;
use session::{Session, encode_images};

/// Set by the Ctrl-C / SIGTERM handler; the loop stops at the next batch.
pub static STOP: AtomicBool = AtomicBool::new(false);

#[derive(Debug, Error)]
pub enum TrainError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Fetch(#[from] crate::data::fetch::FetchError),
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("{0}")]
    Settings(String),
    #[error("{}", diverged_message(*epoch, *step, *loss))]
    Diverged {
        epoch: usize,
        step: usize,
        loss: f64,
    },
    /// Raised inside an epoch; the caller turns it into `Stopped`, which knows the run.
    #[error("interrupted in epoch {epoch}")]
    Interrupted { epoch: usize },
    #[error("{}", stopped_message(run_dir, *finished))]
    Stopped { run_dir: PathBuf, finished: usize },
    #[error("the device failed while training: {0}; --device cpu still works")]
    Execution(String),
}

fn diverged_message(epoch: usize, step: usize, loss: f64) -> String {
    let kept = if epoch > 1 {
        format!("the checkpoint of epoch {} is kept", epoch - 1)
    } else {
        "no epoch had finished, so nothing is saved".to_string()
    };
    format!(
        "the loss became {loss} in epoch {epoch} at step {step}: training diverged; {kept}; try a smaller --lr"
    )
}

fn stopped_message(run_dir: &Path, finished: usize) -> String {
    let dir = run_dir.display();
    if finished == 0 {
        format!(
            "interrupted before the first epoch finished; nothing to resume in {dir}, start again"
        )
    } else {
        format!(
            "interrupted; epochs 1-{finished} are saved in {dir}; continue with: latentlab train --resume {dir}"
        )
    }
}

/// A run whose epochs are all done: the model and data still on the device, and what each
/// epoch measured.
pub struct Trained {
    pub session: Session,
    pub opened: OpenedDevice,
    pub run_dir: PathBuf,
    pub rows: Vec<MetricsRow>,
    /// Where this process's time went so far ([`TRAINING_PHASES`]).
    pub timings: Timings,
}

/// Seconds spent per phase of a command, in the order the phases first ran, so that a user
/// sees where the time went (`compare` prints them at its end).
#[derive(Debug, Clone, Default)]
pub struct Timings(Vec<(&'static str, f64)>);

impl Timings {
    /// Adds `seconds` to `phase`.
    pub fn add(&mut self, phase: &'static str, seconds: f64) {
        match self.0.iter_mut().find(|(p, _)| *p == phase) {
            Some((_, s)) => *s += seconds,
            None => self.0.push((phase, seconds)),
        }
    }

    /// Runs `f`, adding its wall time to `phase`.
    pub fn time<T>(&mut self, phase: &'static str, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let result = f();
        self.add(phase, start.elapsed().as_secs_f64());
        result
    }

    /// Forgets `phase` (its time is counted elsewhere).
    pub fn remove(&mut self, phase: &str) {
        self.0.retain(|(p, _)| *p != phase);
    }

    pub fn merge(&mut self, other: &Timings) {
        for &(phase, seconds) in &other.0 {
            self.add(phase, seconds);
        }
    }

    pub fn total(&self) -> f64 {
        self.0.iter().map(|(_, s)| s).sum()
    }
}

impl std::fmt::Display for Timings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(p, s)| format!("{p} {s:.1} s"))
            .collect();
        write!(f, "{} (total {:.1} s)", parts.join(", "), self.total())
    }
}

const STARTUP: &str = "start-up";
const TRAINING: &str = "training";
const SNAPSHOTS: &str = "snapshots";
const TEST_LOSSES: &str = "test losses";
const CHECKPOINTS: &str = "checkpoints";
/// The phases a run's training records in [`Trained::timings`], in the order they first run
/// (`compare` counts them in its side-by-side training instead).
pub const TRAINING_PHASES: [&str; 5] = [STARTUP, TRAINING, SNAPSHOTS, TEST_LOSSES, CHECKPOINTS];

/// Where a new run goes.
#[derive(Debug, Clone)]
pub enum RunTarget {
    /// A new `<model>-<dataset>-<time>` folder under this one.
    Under(PathBuf),
    /// Exactly this folder, which must not exist.
    Exact(PathBuf),
}

/// Loads the data set the settings name.
///
/// A set that is not bundled (Fashion-MNIST, KMNIST) is fetched from its mirror into its
/// folder on first use; so is any known set when `--mirror` names where to fetch it from.
pub fn load_data(settings: &TrainSettings) -> Result<Dataset, TrainError> {
    if let Some(set) = settings.dataset.known() {
        let bundled = settings.dataset == crate::data::DatasetName::Mnist;
        let wanted = !bundled || settings.mirror.is_some();
        if wanted && crate::data::fetch::is_incomplete(&settings.data_dir) {
            crate::data::fetch::fetch_missing(set, &settings.data_dir, settings.mirror.as_deref())?;
        }
    }
    let mut data = load_dataset(
        &settings.data_dir,
        settings.dataset.as_str(),
        settings.dataset.known(),
    )?;
    if let Some(limit) = settings.train_limit {
        let pixels = data.pixels();
        data.train.truncate(limit, pixels);
    }
    use crate::data::binarize::{STATIC_TRAIN_SEED, TEST_SEED, binarize_split};
    if settings.binarize != Binarize::None {
        binarize_split(&mut data.test, TEST_SEED);
    }
    if settings.binarize == Binarize::Static {
        binarize_split(&mut data.train, STATIC_TRAIN_SEED);
    }
    Ok(data)
}

/// Trains a new model on `data` (loaded from `settings` by `load_data`, or shared by the two
/// models of a comparison), saving every epoch in a new run directory.
pub fn train_new(
    mut settings: TrainSettings,
    data: &Dataset,
    target: &RunTarget,
) -> Result<Trained, TrainError> {
    let started = Instant::now();
    settings.model.input = data.pixels();
    settings.model.check().map_err(TrainError::Settings)?;
    let opened = device::open(settings.device)?;
    let run_dir = match target {
        RunTarget::Under(root) => run::create_new_run_dir(
            root,
            settings.model.kind.as_str(),
            settings.dataset.as_str(),
        )?,
        RunTarget::Exact(dir) => run::create_exact_dir(dir)?,
    };
    let config = RunConfig {
        latentlab_version: env!("CARGO_PKG_VERSION").to_string(),
        settings: settings.clone(),
        backend: opened.backend.clone(),
        adapter: opened.adapter.clone(),
        created: chrono::Local::now().to_rfc3339(),
    };
    run::write_json(&run_dir.join("config.json"), &config)?;
    let model = settings.model.init(settings.seed, &opened.device);
    let session = Session::new(settings, opened.device.clone(), data, model, adam());
    run_epochs(session, opened, run_dir, data, Vec::new(), started)
}

/// Continues a run from its last finished epoch, with the settings it was started with; also
/// returns the data it loaded for that.
pub fn resume(run_dir: &Path) -> Result<(Trained, Dataset), TrainError> {
    let config = RunConfig::load(run_dir)?;
    let finished = checkpoint::last_epoch(run_dir)?;
    let settings = config.settings;
    let data = load_data(&settings)?;
    if data.pixels() != settings.model.input {
        return Err(TrainError::Settings(format!(
            "{}: the run was trained on {} pixels per image, {} holds {}",
            run_dir.display(),
            settings.model.input,
            settings.data_dir.display(),
            data.pixels()
        )));
    }
    let started = Instant::now();
    let opened = device::open(settings.device)?;
    let model = checkpoint::load_model(run_dir, &settings.model, &opened.device)?;
    let optim = adam().load(&model, |fresh| checkpoint::load_optimizer(run_dir, fresh))?;
    let metrics_path = run_dir.join("metrics.csv");
    let mut rows = if metrics_path.is_file() {
        run::read_metrics(&metrics_path)?
    } else {
        Vec::new()
    };
    rows.retain(|r| r.epoch <= finished);
    let session = Session::new(settings, opened.device.clone(), &data, model, optim);
    let trained = run_epochs(session, opened, run_dir.to_path_buf(), &data, rows, started)?;
    Ok((trained, data))
}

/// Measures a trained epoch on the test set and saves it: its row of metrics.csv, then the
/// checkpoint (so that a run resumed from the checkpoint has the row).
fn save_epoch(
    session: &Session,
    epoch: usize,
    stats: session::EpochStats,
    run_dir: &Path,
    rows: &mut Vec<MetricsRow>,
    timings: &mut Timings,
) -> Result<MetricsRow, TrainError> {
    let eval = timings.time(TEST_LOSSES, || session.evaluate())?;
    let row = MetricsRow {
        epoch,
        seconds: stats.seconds,
        images_per_sec: session.train.len() as f64 / stats.seconds,
        train_loss: stats.train_loss,
        test_recon: eval.recon,
        test_kl: eval.kl,
        test_loss: eval.loss,
        beta: Some(stats.beta),
        usage: eval.usage,
    };
    rows.push(row.clone());
    timings.time(CHECKPOINTS, || {
        run::write_metrics(&run_dir.join("metrics.csv"), rows)?;
        checkpoint::save(
            run_dir,
            epoch,
            session.model(),
            &session.optim.records(session.model()),
            session.settings.model.kind,
        )
    })?;
    Ok(row)
}

/// What the progress display keeps of a finished epoch.
/// `replayed`: of `steps`, the steps that were graph replays (said only where there were some,
/// so that a GPU user sees whether the fast path ran).
fn epoch_line(row: &MetricsRow, warming: bool, replayed: usize, steps: usize) -> String {
    let mut line = format!(
        "{:.1}s  {:.0} img/s  train {:.2}  test recon {:.2}  KL {:.2}  loss {:.2}",
        row.seconds, row.images_per_sec, row.train_loss, row.test_recon, row.test_kl, row.test_loss,
    );
    if let Some(u) = &row.usage {
        line.push_str(&format!(
            "  active {}/{}",
            u.active_units,
            u.kl_per_dim.len()
        ));
    }
    if let (true, Some(beta)) = (warming, row.beta) {
        line.push_str(&format!("  beta {beta:.3}"));
    }
    if replayed > 0 {
        line.push_str(&format!("  replayed {replayed}/{steps} steps"));
    }
    line
}

/// Kept whole: the epoch loop and the snapshot schedule it shares with `train_epoch`'s hook read
/// best together.
///
/// `started`: when the command began opening the device; the time from then to the first step
/// is the run's "start-up" (device, data upload, and on a GPU the first kernels' compilation).
fn run_epochs(
    mut session: Session,
    opened: OpenedDevice,
    run_dir: PathBuf,
    data: &Dataset,
    mut rows: Vec<MetricsRow>,
    started: Instant,
) -> Result<Trained, TrainError> {
    let run_dir_path = run_dir.clone();
    let run_dir = run_dir_path.as_path();
    let mut timings = Timings::default();
    let settings = session.settings.clone();
    let first = rows.len() + 1;
    let label = format!(
        "{} on {}",
        settings.model.kind.as_str().to_uppercase(),
        opened.backend
    );
    let progress = Progress::for_stderr(&label, settings.epochs, first);
    progress.println(&format!(
        "training {} on {} ({} images, {}), run directory {}",
        settings.model.kind.as_str().to_uppercase(),
        data.name,
        session.train.len(),
        opened.adapter,
        run_dir.display()
    ));
    let steps = session.steps_per_epoch();
    // The test codes for latent_evolution.gif (2-D codes only): before training, then where
    // `snapshot_due` says (every N steps or at the end of every epoch, and always after the
    // last step). Each is written before the epoch's checkpoint, so a resumed run has every
    // snapshot up to where it continues.
    let mut keep = |s: &Session, step: usize| -> Result<(), TrainError> {
        let codes = encode_images(s.model(), &s.test, 2)?;
        run::snapshots::write_snapshot(run_dir, step, &codes.mu)?;
        Ok(())
    };
    let snapshots = settings.model.latent == 2;
    if first == 1 && snapshots {
        keep(&session, 0)?;
    }
    timings.add(STARTUP, started.elapsed().as_secs_f64());
    for epoch in first..=settings.epochs {
        let stats =
            match session.train_epoch(epoch, &progress, &STOP, snapshots.then_some(&mut keep)) {
                Err(TrainError::Interrupted { .. }) => {
                    progress.finish();
                    return Err(TrainError::Stopped {
                        run_dir: run_dir_path.clone(),
                        finished: epoch - 1,
                    });
                }
                other => other?,
            };
        timings.add(TRAINING, stats.seconds);
        timings.add(SNAPSHOTS, stats.hook_seconds);
        let row = save_epoch(&session, epoch, stats, run_dir, &mut rows, &mut timings)?;
        let warming = settings.warming_up(epoch);
        progress.finish_epoch(
            epoch,
            settings.epochs,
            &epoch_line(&row, warming, stats.replayed, steps),
        );
    }
    progress.finish();
    Ok(Trained {
        session,
        opened,
        run_dir: run_dir_path,
        rows,
        timings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelKind;

    fn binary(images: &[u8]) -> bool {
        images.iter().all(|&p| p == 0 || p == 255)
    }

    /// --binarize: the test set is drawn once, the same for every run and seed; static draws
    /// the training set once too, dynamic leaves it grey for the steps to draw afresh.
    #[test]
    fn binarising_draws_the_test_set_once_and_the_training_set_as_asked() {
        let settings = |binarize, seed| TrainSettings {
            binarize,
            seed,
            train_limit: Some(2000),
            ..TrainSettings::new(ModelKind::Vae)
        };
        let grey = load_data(&settings(Binarize::None, 0)).unwrap();
        assert!(!binary(&grey.test.images) && !binary(&grey.train.images));
        let dynamic = load_data(&settings(Binarize::Dynamic, 0)).unwrap();
        assert!(binary(&dynamic.test.images));
        assert_eq!(dynamic.train.images, grey.train.images);
        let fixed = load_data(&settings(Binarize::Static, 7)).unwrap();
        assert!(binary(&fixed.train.images));
        assert_eq!(
            fixed.test.images, dynamic.test.images,
            "one test draw for every run"
        );
        // The draw follows the grey levels: about as much ink as the grey images' mean level.
        let ink =
            |images: &[u8]| images.iter().map(|&p| p as f64).sum::<f64>() / images.len() as f64;
        assert!((ink(&fixed.train.images) - ink(&grey.train.images)).abs() < 1.0);
    }
}
