//! One error type for the command line, and the exit status of each failure, in one place:
//! 2 for input the user can fix, 1 for a failure at run time, 130 for an interruption.

use thiserror::Error;

use crate::data::DataError;
use crate::device::DeviceError;
use crate::explorer::ExplorerError;
use crate::export::ExportError;
use crate::plot::PlotError;
use crate::report::ReportError;
use crate::run::RunError;
use crate::train::TrainError;

pub const EXIT_RUNTIME: u8 = 1;
pub const EXIT_BAD_INPUT: u8 = 2;
pub const EXIT_INTERRUPTED: u8 = 130;

#[derive(Debug, Error)]
pub enum AppError {
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Plot(#[from] PlotError),
    #[error(transparent)]
    Explorer(#[from] ExplorerError),
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error("{0}")]
    Usage(String),
    /// Standard output closed or failed. A reader that stopped early (`latentlab devices |
    /// head`) is no failure: `is_closed_pipe` lets main end quietly then.
    #[error("could not write to standard output: {0}")]
    Stdout(std::io::Error),
}

impl AppError {
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::Train(e) => train_code(e),
            AppError::Device(_) | AppError::Data(_) | AppError::Usage(_) => EXIT_BAD_INPUT,
            AppError::Run(e) => run_code(e),
            AppError::Report(ReportError::Run(e)) => run_code(e),
            AppError::Report(ReportError::Train(e)) => train_code(e),
            AppError::Report(ReportError::Unfinished(_)) => EXIT_BAD_INPUT,
            AppError::Report(_)
            | AppError::Plot(_)
            | AppError::Explorer(_)
            | AppError::Stdout(_) => EXIT_RUNTIME,
            // The one way a user gets it wrong is an --out that exists, refused up front.
            AppError::Export(_) => EXIT_RUNTIME,
        }
    }

    /// True when the reader of standard output went away: the output was not wanted any more.
    pub fn is_closed_pipe(&self) -> bool {
        matches!(self, AppError::Stdout(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

fn train_code(e: &TrainError) -> u8 {
    match e {
        TrainError::Data(_) | TrainError::Device(_) | TrainError::Settings(_) => EXIT_BAD_INPUT,
        TrainError::Run(e) => run_code(e),
        TrainError::Stopped { .. } | TrainError::Interrupted { .. } => EXIT_INTERRUPTED,
        TrainError::Fetch(_) | TrainError::Diverged { .. } | TrainError::Execution(_) => {
            EXIT_RUNTIME
        }
    }
}

fn run_code(e: &RunError) -> u8 {
    match e {
        RunError::Io { .. } => EXIT_RUNTIME,
        RunError::Exists { .. }
        | RunError::OutputExists { .. }
        | RunError::NotARun { .. }
        | RunError::Corrupt { .. }
        | RunError::NoCheckpoint { .. }
        | RunError::Unwritable { .. } => EXIT_BAD_INPUT,
    }
}
