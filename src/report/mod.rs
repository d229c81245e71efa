//! Measuring a finished run and drawing its figures: summary numbers, the IWAE bound, the
//! comparison of two runs. `commands::output` sequences them into a run's files.

pub mod compare;
pub mod figures;
pub mod iwae;
pub mod metrics;
pub mod summary;

use thiserror::Error;

use crate::run::RunError;
use crate::train::TrainError;
pub use figures::FigureOptions;
pub use summary::Summary;

#[derive(Debug, Error)]
pub enum ReportError {
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Plot(#[from] crate::plot::PlotError),
    #[error(transparent)]
    Train(#[from] TrainError),
    /// A run without its summary (it never finished).
    #[error("{0}")]
    Unfinished(String),
}
