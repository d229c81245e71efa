//! A run directory and everything in it: config, metrics, checkpoint, summary, codes.
//!
//! Every file here is written atomically (see `crate::atomic`), so an interrupted run leaves each
//! file either as it was or complete.

pub mod checkpoint;
pub mod dir;
pub mod files;
pub mod loaded;
pub mod snapshots;

use std::path::PathBuf;

use thiserror::Error;

pub use crate::atomic::{write_atomic, write_new_atomic};
pub use dir::{create_exact_dir, create_new_run_dir};
pub use files::{
    Latents, MetricsRow, RunConfig, read_metrics, write_json, write_latents, write_metrics,
};
pub use loaded::LoadedRun;

#[derive(Debug, Error)]
pub enum RunError {
    #[error(
        "{path}: already exists; latentlab never overwrites a run (choose another --out, or --resume it)"
    )]
    Exists { path: PathBuf },
    #[error("{path}: already exists; latentlab never overwrites a file, choose another --out")]
    OutputExists { path: PathBuf },
    #[error("{path}: {}", describe_io(source))]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}: not a latentlab run directory (no config.json); pass the folder a `latentlab train` wrote"
    )]
    NotARun { path: PathBuf },
    #[error("{path}: unreadable ({reason}); the file is corrupt or from another program")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{path}: cannot create this folder ({reason}); choose a place you can write to")]
    Unwritable { path: PathBuf, reason: String },
    #[error("{path}: no finished epoch to resume from (no checkpoint yet); start the run again")]
    NoCheckpoint { path: PathBuf },
}

/// An I/O failure in words; a full disk says what was kept and how to go on.
fn describe_io(source: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match source.kind() {
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded => "the disk is full (no space left \
            on device); every file written before is whole and nothing half-written is left: \
            free some space, then run again (`latentlab train --resume RUN_DIR` continues a \
            training run from its last finished epoch)"
            .to_string(),
        _ => source.to_string(),
    }
}

/// Writes a new output file atomically; an existing file is refused, never replaced.
pub fn write_new_file(path: &std::path::Path, bytes: &[u8]) -> Result<(), RunError> {
    write_new_atomic(path, bytes).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            RunError::OutputExists {
                path: path.to_path_buf(),
            }
        } else {
            RunError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

impl RunError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> RunError {
        let path = path.into();
        move |source| RunError::Io { path, source }
    }
}
