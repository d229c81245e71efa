//! The plain files of a run: config.json, metrics.csv, latents.csv, summary.json.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{RunError, write_atomic};
use crate::config::TrainSettings;
use crate::model::LatentUsage;

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
///
/// The file's columns: the seven below, then `beta`, then for a VAE `active_units` and one
/// column per latent dimension of each of `kl_z<i>`, `mu_var_z<i>`, `sigma_z<i>` (the
/// collapse diagnostics of `crate::model::usage` on the test set after that epoch). Files of
/// runs made before those columns existed still read; their cells are left empty.
#[derive(Debug, Clone, PartialEq)]
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
    /// test_recon + beta * test_kl, with the run's final beta whatever the warm-up.
    pub test_loss: f64,
    /// The KL weight of the epoch's last step (below `--beta` during a `--kl-warmup`).
    pub beta: Option<f64>,
    /// VAE only.
    pub usage: Option<LatentUsage>,
}

const FIXED_COLUMNS: [&str; 8] = [
    "epoch",
    "seconds",
    "images_per_sec",
    "train_loss",
    "test_recon",
    "test_kl",
    "test_loss",
    "beta",
];

/// The per-dimension column groups of a VAE's rows, in file order.
const DIM_GROUPS: [&str; 3] = ["kl_z", "mu_var_z", "sigma_z"];

impl MetricsRow {
    fn fixed_cells(&self) -> [String; 8] {
        [
            self.epoch.to_string(),
            self.seconds.to_string(),
            self.images_per_sec.to_string(),
            self.train_loss.to_string(),
            self.test_recon.to_string(),
            self.test_kl.to_string(),
            self.test_loss.to_string(),
            self.beta.map_or(String::new(), |b| b.to_string()),
        ]
    }
}

/// Writes `value` as pretty JSON, atomically.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<(), RunError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| RunError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    write_atomic(path, format!("{text}\n").as_bytes()).map_err(RunError::io(path))
}

/// Rewrites the whole `metrics.csv` (a few kilobytes) so that it is never half-written.
pub fn write_metrics(path: &Path, rows: &[MetricsRow]) -> Result<(), RunError> {
    let dims = rows
        .iter()
        .filter_map(|r| r.usage.as_ref())
        .map(|u| u.kl_per_dim.len())
        .max()
        .unwrap_or(0);
    let mut header: Vec<String> = FIXED_COLUMNS.iter().map(|c| c.to_string()).collect();
    if dims > 0 {
        header.push("active_units".into());
        for group in DIM_GROUPS {
            header.extend((1..=dims).map(|i| format!("{group}{i}")));
        }
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(&header).map_err(|e| csv_error(path, e))?;
    for row in rows {
        let mut cells = row.fixed_cells().to_vec();
        if dims > 0 {
            let per_dim = |v: Option<&Vec<f64>>| -> Vec<String> {
                (0..dims)
                    .map(|d| {
                        v.and_then(|v| v.get(d))
                            .map_or(String::new(), f64::to_string)
                    })
                    .collect()
            };
            let u = row.usage.as_ref();
            cells.push(u.map_or(String::new(), |u| u.active_units.to_string()));
            cells.extend(per_dim(u.map(|u| &u.kl_per_dim)));
            cells.extend(per_dim(u.map(|u| &u.mu_variance_per_dim)));
            cells.extend(per_dim(u.map(|u| &u.sigma_mean_per_dim)));
        }
        w.write_record(&cells).map_err(|e| csv_error(path, e))?;
    }
    let bytes = w.into_inner().map_err(|e| RunError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    write_atomic(path, &bytes).map_err(RunError::io(path))
}

pub fn read_metrics(path: &Path) -> Result<Vec<MetricsRow>, RunError> {
    let corrupt = |reason: String| RunError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let mut r = csv::Reader::from_path(path).map_err(|e| csv_error(path, e))?;
    let header: Vec<String> = r
        .headers()
        .map_err(|e| csv_error(path, e))?
        .iter()
        .map(str::to_string)
        .collect();
    let column = |name: &str| header.iter().position(|h| h == name);
    let dims = (1..)
        .take_while(|i| column(&format!("kl_z{i}")).is_some())
        .count();
    let mut rows = Vec::new();
    for (line, record) in r.records().enumerate() {
        let record = record.map_err(|e| csv_error(path, e))?;
        rows.push(metrics_row(&record, &column, dims, line + 1).map_err(corrupt)?);
    }
    Ok(rows)
}

/// One row of metrics.csv, its cells found by their column's name (`column`); empty cells and
/// missing columns read as `None`, anything else must be a number. The error names the row.
fn metrics_row(
    record: &csv::StringRecord,
    column: &dyn Fn(&str) -> Option<usize>,
    dims: usize,
    line: usize,
) -> Result<MetricsRow, String> {
    let cell = |name: &str| -> Result<Option<f64>, String> {
        match column(name).and_then(|i| record.get(i)).map(str::trim) {
            None | Some("") => Ok(None),
            Some(text) => text
                .parse::<f64>()
                .map(Some)
                .map_err(|_| format!("row {line}: {name} is {text:?}, not a number")),
        }
    };
    let required =
        |name: &str| -> Result<f64, String> { cell(name)?.ok_or(format!("row {line}: no {name}")) };
    let per_dim = |group: &str| -> Result<Option<Vec<f64>>, String> {
        let values = (1..=dims)
            .map(|i| cell(&format!("{group}{i}")))
            .collect::<Result<Option<Vec<f64>>, _>>()?;
        Ok(values.filter(|v| !v.is_empty()))
    };
    let usage = match (
        cell("active_units")?,
        per_dim(DIM_GROUPS[0])?,
        per_dim(DIM_GROUPS[1])?,
        per_dim(DIM_GROUPS[2])?,
    ) {
        (Some(active), Some(kl), Some(var), Some(sigma)) => Some(LatentUsage {
            kl_per_dim: kl,
            mu_variance_per_dim: var,
            sigma_mean_per_dim: sigma,
            active_units: active as usize,
        }),
        _ => None,
    };
    let epoch = required("epoch")?;
    if epoch < 1.0 || epoch.fract() != 0.0 {
        return Err(format!("row {line}: epoch {epoch}"));
    }
    Ok(MetricsRow {
        epoch: epoch as usize,
        seconds: required("seconds")?,
        images_per_sec: required("images_per_sec")?,
        train_loss: required("train_loss")?,
        test_recon: required("test_recon")?,
        test_kl: required("test_kl")?,
        test_loss: required("test_loss")?,
        beta: cell("beta")?,
        usage,
    })
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

    fn row(epoch: usize, usage: Option<LatentUsage>) -> MetricsRow {
        MetricsRow {
            epoch,
            seconds: 9.5,
            images_per_sec: 6315.8,
            train_loss: 180.25,
            test_recon: 150.5,
            test_kl: 0.0,
            test_loss: 150.5,
            beta: Some(0.25 * epoch as f64),
            usage,
        }
    }

    #[test]
    fn metrics_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.csv");
        let rows = vec![row(1, None), row(2, None)];
        write_metrics(&path, &rows).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with(
                "epoch,seconds,images_per_sec,train_loss,test_recon,test_kl,test_loss,beta\n"
            ),
            "{text}"
        );
        assert_eq!(read_metrics(&path).unwrap(), rows);
    }

    /// A VAE's rows carry the collapse diagnostics, one column per dimension, and read back
    /// exactly (f64's shortest round-trip text).
    #[test]
    fn a_vaes_diagnostics_round_trip_column_by_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.csv");
        let usage = LatentUsage {
            kl_per_dim: vec![3.125, 0.0012, 2.5],
            mu_variance_per_dim: vec![1.25, 0.004, 0.9],
            sigma_mean_per_dim: vec![0.1, 0.99, 1.0 / 3.0],
            active_units: 2,
        };
        let rows = vec![row(1, Some(usage.clone())), row(2, Some(usage))];
        write_metrics(&path, &rows).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let header = text.lines().next().unwrap();
        assert_eq!(
            header,
            "epoch,seconds,images_per_sec,train_loss,test_recon,test_kl,test_loss,beta,\
             active_units,kl_z1,kl_z2,kl_z3,mu_var_z1,mu_var_z2,mu_var_z3,sigma_z1,sigma_z2,sigma_z3"
        );
        assert!(
            text.lines()
                .nth(1)
                .unwrap()
                .ends_with(",0.25,2,3.125,0.0012,2.5,1.25,0.004,0.9,0.1,0.99,0.3333333333333333"),
            "{text}"
        );
        assert_eq!(read_metrics(&path).unwrap(), rows);
    }

    /// metrics.csv as runs wrote it before beta and the diagnostics existed: it still reads
    /// (a resumed old run keeps its rows), the new cells empty; a damaged cell is named.
    #[test]
    fn an_older_metrics_file_still_reads_and_a_bad_cell_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.csv");
        std::fs::write(
            &path,
            "epoch,seconds,images_per_sec,train_loss,test_recon,test_kl,test_loss\n\
             1,9.5,6315.8,180.25,150.5,0,150.5\n",
        )
        .unwrap();
        let rows = read_metrics(&path).unwrap();
        assert_eq!(
            rows,
            vec![MetricsRow {
                beta: None,
                ..row(1, None)
            }]
        );
        std::fs::write(
            &path,
            "epoch,seconds,images_per_sec,train_loss,test_recon,test_kl,test_loss\n\
             1,9.5,6315.8,oops,150.5,0,150.5\n",
        )
        .unwrap();
        let err = read_metrics(&path).unwrap_err().to_string();
        assert!(err.contains("train_loss is \"oops\""), "{err}");
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
