//! The plain files of a run: config.json, metrics.csv, latents.csv, summary.json.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{RunError, write_atomic};
use crate::config::TrainSettings;

/// `config.json`: every setting of the run and where it ran.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunConfig {
    pub latentlab_version: String,
    pub settings: TrainSettings,
    /// The Burn backend ("flex" or "wgpu").
    pub backend: String,
    /// The CPU or graphics adapter's own name.
    pub adapter: String,
    /// Local time the run started, RFC 3339.
    pub created: String,
}

impl RunConfig {
    pub fn load(run_dir: &Path) -> Result<RunConfig, RunError> {
        let path = run_dir.join("config.json");
        if !path.is_file() {
            return Err(RunError::NotARun {
                path: run_dir.to_path_buf(),
            });
        }
        let text = std::fs::read_to_string(&path).map_err(RunError::io(&path))?;
        serde_json::from_str(&text).map_err(|e| RunError::Corrupt {
            path,
            reason: e.to_string(),
        })
    }
}

/// One row of `metrics.csv`: one finished epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsRow {
    pub epoch: usize,
    /// Wall time of the epoch's training loop (evaluation excluded).
    pub seconds: f64,
    pub images_per_sec: f64,
    /// Mean training loss over the epoch (nats per image).
    pub train_loss: f64,
    pub test_recon: f64,
    /// 0 for the AE.
    pub test_kl: f64,
    pub test_loss: f64,
}

/// Writes `value` as pretty JSON, atomically.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<(), RunError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| RunError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    write_atomic(path, format!("{text}\n").as_bytes()).map_err(RunError::io(path))
}

/// Rewrites the whole `metrics.csv` (a few hundred bytes) so that it is never half-written.
pub fn write_metrics(path: &Path, rows: &[MetricsRow]) -> Result<(), RunError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for row in rows {
        w.serialize(row).map_err(|e| csv_error(path, e))?;
    }
    let bytes = w.into_inner().map_err(|e| RunError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    write_atomic(path, &bytes).map_err(RunError::io(path))
}

pub fn read_metrics(path: &Path) -> Result<Vec<MetricsRow>, RunError> {
    let mut r = csv::Reader::from_path(path).map_err(|e| csv_error(path, e))?;
    r.deserialize()
        .collect::<Result<Vec<MetricsRow>, _>>()
        .map_err(|e| csv_error(path, e))
}

fn csv_error(path: &Path, e: csv::Error) -> RunError {
    RunError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Latent codes of a split, one row per image: `index,label,z1,z2[,sigma1,sigma2]`.
pub struct Latents<'a> {
    pub labels: &'a [u8],
    /// `n * latent` codes (mu for the VAE).
    pub codes: &'a [f32],
    /// `n * latent` posterior standard deviations (VAE only).
    pub sigmas: Option<&'a [f32]>,
    pub latent: usize,
}

pub fn write_latents(path: &Path, latents: &Latents) -> Result<(), RunError> {
    let d = latents.latent;
    let mut header = vec!["index".to_string(), "label".to_string()];
    header.extend((1..=d).map(|i| format!("z{i}")));
    if latents.sigmas.is_some() {
        header.extend((1..=d).map(|i| format!("sigma{i}")));
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(&header).map_err(|e| csv_error(path, e))?;
    for (i, label) in latents.labels.iter().enumerate() {
        let mut rec = vec![i.to_string(), label.to_string()];
        rec.extend(
            latents.codes[i * d..(i + 1) * d]
                .iter()
                .map(|v| v.to_string()),
        );
        if let Some(s) = latents.sigmas {
            rec.extend(s[i * d..(i + 1) * d].iter().map(|v| v.to_string()));
        }
        w.write_record(&rec).map_err(|e| csv_error(path, e))?;
    }
    let bytes = w.into_inner().map_err(|e| RunError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    write_atomic(path, &bytes).map_err(RunError::io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.csv");
        let rows = vec![MetricsRow {
            epoch: 1,
            seconds: 9.5,
            images_per_sec: 6315.8,
            train_loss: 180.25,
            test_recon: 150.5,
            test_kl: 0.0,
            test_loss: 150.5,
        }];
        write_metrics(&path, &rows).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with(
                "epoch,seconds,images_per_sec,train_loss,test_recon,test_kl,test_loss\n"
            )
        );
        assert_eq!(read_metrics(&path).unwrap(), rows);
    }

    #[test]
    fn latents_have_the_spec_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latents.csv");
        let l = Latents {
            labels: &[3, 7],
            codes: &[0.5, -1.0, 2.0, 0.25],
            sigmas: Some(&[0.1, 0.2, 0.3, 0.4]),
            latent: 2,
        };
        write_latents(&path, &l).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "index,label,z1,z2,sigma1,sigma2\n0,3,0.5,-1,0.1,0.2\n1,7,2,0.25,0.3,0.4\n"
        );
    }
}
