//! The command line: clap structs whose doc comments are the `--help` text, turned into
//! `TrainSettings` at once so that nothing past this file sees clap.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{TrainSettings, defaults};
use crate::data::{Binarize, DatasetName};
use crate::device::DeviceChoice;
use crate::model::{Arch, ModelConfig, ModelKind};
use crate::plot::grid::GridRange;
use crate::report::FigureOptions;

/// Train small autoencoders (AE, VAE) with a 2-D latent on MNIST-family images and see
/// what their latent spaces look like.
#[derive(Debug, Parser)]
#[command(name = "latentlab", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train one model and write a run directory (config, metrics, checkpoint, codes, figures).
    Train(TrainArgs),
    /// Train the AE and the VAE alike (at the same time on the CPU, each on half of the cores;
    /// or take two finished runs) and write the side-by-side figures and a report that answers
    /// "what do you notice?" with numbers.
    Compare(CompareArgs),
    /// Redraw every figure of a run from its checkpoint.
    Plot(PlotArgs),
    /// Write the latent codes of a split to CSV (index,label,z1,z2[,sigma1,sigma2]).
    Encode(EncodeArgs),
    /// Decode one latent point to an image.
    Decode(DecodeArgs),
    /// Decode points drawn from the prior N(0, I) into a montage (meaningful for the VAE).
    Sample(SampleArgs),
    /// Decode the straight line between the codes of two test images.
    Interpolate(InterpolateArgs),
    /// Write a run's weights to a .safetensors file with PyTorch state_dict names and layouts.
    #[command(after_long_help = EXPORT_HELP)]
    Export(ExportArgs),
    /// Time one full training step (forward, loss, backward, Adam, synchronised) after warm-up.
    Bench(BenchArgs),
    /// List the graphics adapters wgpu finds, and the one `--device gpu` takes.
    Devices,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Which model.
    #[arg(long, value_enum, default_value = "ae")]
    pub model: ModelKind,
    /// cpu or gpu.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceChoice,
    /// Images per step.
    #[arg(long, default_value_t = defaults::BATCH_SIZE as u64, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub batch_size: u64,
    #[command(flatten)]
    pub sizes: ModelFlags,
    /// Adam's learning rate.
    #[arg(long, default_value_t = defaults::LR, allow_hyphen_values = true, value_parser = positive_finite)]
    pub lr: f64,
    /// Timed steps.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub steps: u64,
    /// Untimed steps first (kernel compilation, autotune, caches).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(0..=100_000))]
    pub warmup: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Time Burn's own Adam instead of latentlab's fused update (an A/B of shaders/adam.rs).
    #[arg(long)]
    pub burn_adam: bool,
    /// With --device gpu, time only steps issued anew. Without it a GPU also times the step as
    /// `train` takes it there: replayed from a captured step that updates the weights in place.
    #[arg(long)]
    pub no_graph: bool,
    /// Folder of the four IDX files (the steps train on real images).
    #[arg(long, value_name = "DIR", default_value = "data/mnist")]
    pub data_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// A finished AE run to compare instead of training one (needs --vae too; the runs keep
    /// their own training settings, so training flags are refused beside it).
    #[arg(long, value_name = "RUN_DIR", requires = "vae", conflicts_with_all = TRAIN_FLAGS)]
    pub ae: Option<PathBuf>,

    /// A finished VAE run to compare instead of training one (needs --ae too).
    #[arg(long, value_name = "RUN_DIR", requires = "ae")]
    pub vae: Option<PathBuf>,

    /// Write the comparison to exactly this folder (it must not exist).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// The folder under which new run and comparison directories are made.
    #[arg(long, value_name = "DIR", default_value = "runs")]
    pub runs_dir: PathBuf,

    #[command(flatten)]
    pub flags: TrainFlags,

    #[command(flatten)]
    pub figures: FigureFlags,
}

#[derive(Debug, Args)]
pub struct PlotArgs {
    /// The run directory.
    pub run: PathBuf,

    #[command(flatten)]
    pub figures: FigureFlags,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SplitName {
    Train,
    Test,
}

#[derive(Debug, Args)]
pub struct EncodeArgs {
    /// The run directory.
    pub run: PathBuf,
    /// The CSV file to write (it must not exist).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Which split of the run's data set.
    #[arg(long, value_enum, default_value = "test")]
    pub split: SplitName,
}

#[derive(Debug, Args)]
pub struct DecodeArgs {
    /// The run directory.
    pub run: PathBuf,
    /// A latent point, one number per latent dimension (z1,z2 for the default 2-D space);
    /// repeat the flag for several images.
    #[arg(long, value_name = "Z1,Z2,..", allow_hyphen_values = true, value_parser = latent_point, required = true)]
    pub z: Vec<LatentPoint>,
    /// The file to write (it must not exist): a PNG of the images in a row, or, for a name
    /// ending in .csv, the pixel intensities (0-1) with one row per point: z1,z2,p0,p1,...
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct SampleArgs {
    /// The run directory.
    pub run: PathBuf,
    /// How many images.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub n: u64,
    /// The PNG file to write (it must not exist).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Seed of the prior draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// `export --help`: how the file is laid out and the Python that decodes with it.
const EXPORT_HELP: &str = "\
The names are those of the PyTorch reference's AutoEncoder: enc.0, enc.2 (the hidden layers),
head_mu, head_logvar (VAE only), dec.0, dec.2, dec.4; each a .weight [out, in] and a .bias,
as torch.nn.Linear keeps them. The file's metadata gives the model, sizes and epoch.

Decode the latent point (0, 0) in Python (pip install torch safetensors):

  import torch, torch.nn as nn
  from safetensors.torch import load_file
  sd = load_file(\"model.safetensors\")
  dec = nn.Sequential(nn.Linear(2, 256), nn.ReLU(), nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 784))
  dec.load_state_dict({k[4:]: v for k, v in sd.items() if k.startswith(\"dec.\")})
  image = torch.sigmoid(dec(torch.tensor([[0.0, 0.0]]))).reshape(28, 28)

(with --hidden or --latent other than 512,256 and 2, use the run's sizes in nn.Linear).";

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The run directory.
    pub run: PathBuf,
    /// The file to write (it must not exist), e.g. model.safetensors.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct InterpolateArgs {
    /// The run directory.
    pub run: PathBuf,
    /// Index of the first test image.
    #[arg(long)]
    pub from_index: usize,
    /// Index of the last test image.
    #[arg(long)]
    pub to_index: usize,
    /// Images in the strip, both ends included.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(2..=100))]
    pub steps: u64,
    /// The PNG file to write (it must not exist).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LatentPoint(pub Vec<f64>);

fn latent_point(s: &str) -> Result<LatentPoint, String> {
    let v: Vec<f64> = s
        .split(',')
        .map(|p| p.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| {
            format!(
                "{s} is not a latent point; give one number per latent dimension, as in 0.5,-1.2"
            )
        })?;
    if v.is_empty() || v.iter().any(|x| !x.is_finite()) {
        return Err(format!(
            "{s} is not a latent point; give one number per latent dimension, as in 0.5,-1.2"
        ));
    }
    Ok(LatentPoint(v))
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Which model to train.
    #[arg(long, value_enum, required_unless_present = "resume")]
    pub model: Option<ModelKind>,

    /// Continue an interrupted run from its last finished epoch, with its own settings.
    #[arg(long, value_name = "RUN_DIR", conflicts_with = "out")]
    pub resume: Option<PathBuf>,

    /// Write the run to exactly this folder (it must not exist) instead of a new one under runs/.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// The folder under which new run directories are made.
    #[arg(long, value_name = "DIR", default_value = "runs")]
    pub runs_dir: PathBuf,

    #[command(flatten)]
    pub flags: TrainFlags,

    #[command(flatten)]
    pub figures: FigureFlags,
}

/// How the decoded grids are laid out.
#[derive(Debug, Clone, Args)]
pub struct FigureFlags {
    /// The latent box the decoded grid spans: p1-p99 (1st-99th percentile of the test
    /// codes), min-max, or z1_lo,z1_hi,z2_lo,z2_hi.
    #[arg(
        long,
        default_value = "p1-p99",
        value_name = "RANGE",
        allow_hyphen_values = true
    )]
    pub grid_range: GridRange,

    /// Cells per side of the decoded grids.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=60))]
    pub grid_size: u64,
}

impl FigureFlags {
    pub fn options(&self) -> FigureOptions {
        FigureOptions {
            grid_range: self.grid_range,
            grid_size: self.grid_size as usize,
        }
    }
}

/// The ids of every `TrainFlags` flag, which `compare --ae/--vae` refuses one by one (a
/// conflict with the whole group would list all fourteen in its message); a unit test keeps
/// the list complete.
const TRAIN_FLAGS: [&str; 18] = [
    "device",
    "epochs",
    "batch_size",
    "lr",
    "beta",
    "kl_warmup",
    "seed",
    "dataset",
    "data_dir",
    "mirror",
    "train_limit",
    "binarize",
    "hidden",
    "latent",
    "arch",
    "iwae_samples",
    "snapshot_every",
    "no_graph",
];

/// The settings a training run shares with `compare`.
#[derive(Debug, Clone, Args)]
pub struct TrainFlags {
    /// cpu: Burn's CPU backend (flex); gpu: the default wgpu adapter.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceChoice,

    /// Passes over the training set.
    #[arg(long, default_value_t = defaults::EPOCHS as u64, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub epochs: u64,

    /// Images per training step.
    #[arg(long, default_value_t = defaults::BATCH_SIZE as u64, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub batch_size: u64,

    /// Adam's learning rate.
    #[arg(long, default_value_t = defaults::LR, allow_hyphen_values = true, value_parser = positive_finite)]
    pub lr: f64,

    /// Weight of the KL term of the VAE (1: the ELBO).
    #[arg(long, default_value_t = defaults::BETA, allow_hyphen_values = true, value_parser = non_negative_finite)]
    pub beta: f64,

    /// Raise the VAE's KL weight linearly from 0 to --beta over the first EPOCHS epochs, step
    /// by step (the usual cure for posterior collapse; the test loss always weighs the KL by
    /// --beta, and metrics.csv gives each epoch's weight).
    #[arg(long, value_name = "EPOCHS", default_value_t = defaults::KL_WARMUP as u64, value_parser = clap::value_parser!(u64).range(0..=100_000))]
    pub kl_warmup: u64,

    /// Seed of the weights, the shuffles and the noise.
    #[arg(long, default_value_t = defaults::SEED)]
    pub seed: u64,

    /// The data set.
    #[arg(long, value_enum, default_value = "mnist")]
    pub dataset: DatasetName,

    /// Folder of the four IDX files (default: data/<dataset>).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Base URL to fetch a known set's missing files from (default: its public mirror;
    /// Fashion-MNIST and KMNIST are fetched on first use, MNIST only when this is given).
    #[arg(long, value_name = "URL")]
    pub mirror: Option<String>,

    /// Train on the first N training images only (quick runs).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub train_limit: Option<u64>,

    /// Black-and-white pixels, white with probability grey/255: static draws the training set
    /// once (fixed seed), dynamic draws each image afresh every time a step uses it (the VAE
    /// literature's protocol); the test set is then drawn once (fixed seed).
    #[arg(long, value_enum, default_value = "none")]
    pub binarize: Binarize,

    #[command(flatten)]
    pub model: ModelFlags,

    /// Importance samples per test image for the VAE's log-likelihood estimate.
    #[arg(long, default_value_t = defaults::IWAE_SAMPLES as u64, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub iwae_samples: u64,

    /// Keep the test codes every N training steps for latent_evolution.gif
    /// [default: at the end of every epoch].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub snapshot_every: Option<u64>,

    /// With --device gpu, issue every training step anew instead of replaying one captured
    /// step for the epoch's full batches (the same arithmetic; for comparison).
    #[arg(long)]
    pub no_graph: bool,
}

/// The sizes of the model, shared by `train`, `compare` and `bench`.
#[derive(Debug, Clone, Args)]
pub struct ModelFlags {
    /// Widths of the two hidden layers, encoder order (the decoder mirrors them).
    #[arg(long, value_name = "H1,H2", default_value_t = HiddenSizes(defaults::HIDDEN), value_parser = hidden_sizes)]
    pub hidden: HiddenSizes,

    /// Latent dimensions (the figures need 2).
    #[arg(long, default_value_t = defaults::LATENT as u64, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub latent: u64,

    /// mlp: the pixels straight into the dense layers; conv: two 3x3 stride-2 convolutions
    /// (32, 64 channels) before them and two transposed ones after the decoder's.
    #[arg(long, value_enum, default_value = "mlp")]
    pub arch: Arch,
}

impl ModelFlags {
    pub fn config(&self, kind: ModelKind) -> ModelConfig {
        ModelConfig {
            hidden: self.hidden.0,
            latent: self.latent as usize,
            arch: self.arch,
            ..ModelConfig::new(kind)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HiddenSizes(pub [usize; 2]);

impl std::fmt::Display for HiddenSizes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{},{}", self.0[0], self.0[1])
    }
}

fn hidden_sizes(s: &str) -> Result<HiddenSizes, String> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    let parse = |p: &str| {
        p.parse::<usize>()
            .ok()
            .filter(|&v| (1..=65_536).contains(&v))
    };
    match parts.as_slice() {
        [a, b] => match (parse(a), parse(b)) {
            (Some(a), Some(b)) => Ok(HiddenSizes([a, b])),
            _ => Err("each width must be a whole number from 1 to 65536, as in 512,256".into()),
        },
        _ => Err("give two widths separated by a comma, as in 512,256".into()),
    }
}

fn positive_finite(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{s} is not a positive number, as in 1e-3")),
    }
}

fn non_negative_finite(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("{s} is not a number >= 0")),
    }
}

impl TrainFlags {
    /// The settings of a run of `model`; the input size is fixed later, by the data.
    pub fn settings(&self, model: ModelKind) -> Result<TrainSettings, String> {
        let data_dir = match (&self.data_dir, self.dataset) {
            (Some(dir), _) => dir.clone(),
            (None, DatasetName::Custom) => {
                return Err(
                    "--dataset custom needs --data-dir DIR, the folder of your four IDX files"
                        .into(),
                );
            }
            (None, name) => PathBuf::from("data").join(name.as_str()),
        };
        Ok(TrainSettings {
            model: self.model.config(model),
            device: self.device,
            dataset: self.dataset,
            mirror: self.mirror.clone(),
            data_dir,
            epochs: self.epochs as usize,
            batch_size: self.batch_size as usize,
            lr: self.lr,
            beta: self.beta,
            kl_warmup: self.kl_warmup as usize,
            seed: self.seed,
            train_limit: self.train_limit.map(|n| n as usize),
            binarize: self.binarize,
            iwae_samples: self.iwae_samples as usize,
            snapshot_every: self.snapshot_every.map(|n| n as usize),
            step_graph: !self.no_graph,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every training flag is refused beside `compare --ae/--vae`, a new one included.
    #[test]
    fn compare_of_finished_runs_refuses_every_training_flag() {
        let flags = TrainFlags::augment_args(clap::Command::new("x"));
        let ids: Vec<&str> = flags.get_arguments().map(|a| a.get_id().as_str()).collect();
        assert_eq!(ids.len(), TRAIN_FLAGS.len(), "{ids:?}");
        for id in ids {
            assert!(
                TRAIN_FLAGS.contains(&id),
                "{id} is missing from TRAIN_FLAGS"
            );
        }
        let err = Cli::command()
            .try_get_matches_from([
                "latentlab",
                "compare",
                "--ae",
                "a",
                "--vae",
                "v",
                "--seed",
                "3",
            ])
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("--seed") && !text.contains("--epochs"),
            "{text}"
        );
    }
}
