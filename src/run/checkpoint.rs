//! The checkpoint: model and Adam state after the last finished epoch, as burnpack records.
//!
//! Two record files and a pointer: `checkpoint/model-epoch-N.bpk`, `optimizer-epoch-N.bpk`,
//! and `checkpoint/latest.json` naming them. Each is written atomically and the pointer last,
//! so a crash at any moment leaves a pointer to a complete pair; the previous pair is removed
//! only after the new pointer is in place.

use std::fs;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device};
use serde::{Deserialize, Serialize};

use super::{RunError, write_atomic, write_json};
use crate::model::{AutoEncoder, ModelConfig, ModelKind};

const FORMAT: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pointer {
    format: u32,
    /// The last finished epoch (1-based).
    epoch: usize,
    model: ModelKind,
    model_file: String,
    optimizer_file: String,
}

fn folder(run_dir: &Path) -> PathBuf {
    run_dir.join("checkpoint")
}

/// Saves the state after `epoch`, then drops the files of the epoch before.
pub fn save(
    run_dir: &Path,
    epoch: usize,
    model: &AutoEncoder,
    optim: &ModuleOptimizer,
    kind: ModelKind,
) -> Result<(), RunError> {
    let dir = folder(run_dir);
    fs::create_dir_all(&dir).map_err(RunError::io(&dir))?;
    let previous = read_pointer(run_dir).ok();
    let pointer = Pointer {
        format: FORMAT,
        epoch,
        model: kind,
        model_file: format!("model-epoch-{epoch}.bpk"),
        optimizer_file: format!("optimizer-epoch-{epoch}.bpk"),
    };
    let model_bytes = model
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|e| corrupt(&dir, e))?;
    let optim_bytes = optim.into_bytes().map_err(|e| corrupt(&dir, e))?;
    let model_path = dir.join(&pointer.model_file);
    write_atomic(&model_path, &model_bytes).map_err(RunError::io(&model_path))?;
    let optim_path = dir.join(&pointer.optimizer_file);
    write_atomic(&optim_path, &optim_bytes).map_err(RunError::io(&optim_path))?;
    write_json(&dir.join("latest.json"), &pointer)?;
    if let Some(old) = previous.filter(|p| p.epoch != epoch) {
        let _ = fs::remove_file(dir.join(old.model_file));
        let _ = fs::remove_file(dir.join(old.optimizer_file));
    }
    Ok(())
}

/// The last finished epoch recorded in a run's checkpoint.
pub fn last_epoch(run_dir: &Path) -> Result<usize, RunError> {
    Ok(read_pointer(run_dir)?.epoch)
}

/// Loads the model of a run's checkpoint onto `device`.
pub fn load_model(
    run_dir: &Path,
    config: &ModelConfig,
    device: &Device,
) -> Result<AutoEncoder, RunError> {
    let pointer = read_pointer(run_dir)?;
    let path = folder(run_dir).join(&pointer.model_file);
    let bytes = read_checkpoint_file(&path)?;
    let record =
        ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes)).map_err(|e| corrupt(&path, e))?;
    config
        .init(0, device)
        .try_load_record(record)
        .map_err(|e| corrupt(&path, e))
}

/// Loads the Adam state of a run's checkpoint into a fresh optimiser.
pub fn load_optimizer(run_dir: &Path, fresh: ModuleOptimizer) -> Result<ModuleOptimizer, RunError> {
    let pointer = read_pointer(run_dir)?;
    let path = folder(run_dir).join(&pointer.optimizer_file);
    let bytes = read_checkpoint_file(&path)?;
    fresh
        .from_bytes(Bytes::from_bytes_vec(bytes))
        .map_err(|e| corrupt(&path, e))
}

/// A checkpoint file that latest.json names but that is gone is a damaged run (bad input),
/// not a failure of the machine.
fn read_checkpoint_file(path: &Path) -> Result<Vec<u8>, RunError> {
    fs::read(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            RunError::Corrupt {
                path: path.to_path_buf(),
                reason: "the checkpoint file is missing".into(),
            }
        } else {
            RunError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

fn read_pointer(run_dir: &Path) -> Result<Pointer, RunError> {
    let path = folder(run_dir).join("latest.json");
    if !path.is_file() {
        return Err(RunError::NoCheckpoint {
            path: run_dir.to_path_buf(),
        });
    }
    let text = fs::read_to_string(&path).map_err(RunError::io(&path))?;
    let pointer: Pointer = serde_json::from_str(&text).map_err(|e| corrupt(&path, e))?;
    if pointer.format != FORMAT {
        return Err(RunError::Corrupt {
            path,
            reason: format!(
                "checkpoint format {} (this latentlab reads {FORMAT})",
                pointer.format
            ),
        });
    }
    Ok(pointer)
}

fn corrupt(path: &Path, e: impl std::fmt::Display) -> RunError {
    RunError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::optim::{AdamConfig, GradientsParams};
    use burn::tensor::{Tensor, TensorData};

    fn config() -> ModelConfig {
        ModelConfig {
            kind: ModelKind::Vae,
            input: 16,
            hidden: [8, 4],
            latent: 2,
            arch: crate::model::Arch::Mlp,
        }
    }

    #[test]
    fn a_saved_checkpoint_gives_identical_outputs_and_optimizer_state() {
        let device = Device::flex().autodiff();
        let cfg = config();
        let mut model = cfg.init(7, &device);
        let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
        let x = Tensor::<2>::from_data(
            TensorData::new(
                (0..32).map(|i| (i % 5) as f32 / 4.0).collect::<Vec<_>>(),
                [2, 16],
            ),
            &device,
        );
        let eps = Tensor::<2>::from_data(
            TensorData::new(vec![0.3f32, -0.2, 1.0, 0.5], [2, 2]),
            &device,
        );
        let step = |model: AutoEncoder, optim: &mut ModuleOptimizer| {
            let loss = model.losses(x.clone(), Some(eps.clone()), 1.0).total;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            optim.step(1e-3, model, grads)
        };
        model = step(model, &mut optim);

        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), 1, &model, &optim, cfg.kind).unwrap();
        assert_eq!(last_epoch(dir.path()).unwrap(), 1);
        let mut loaded = load_model(dir.path(), &cfg, &device).unwrap();
        let mut loaded_optim =
            load_optimizer(dir.path(), AdamConfig::new().with_epsilon(1e-8).init()).unwrap();

        let out = |m: &AutoEncoder| m.valid().decoder.forward(eps.clone().inner()).into_data();
        assert_eq!(out(&model), out(&loaded));

        // One more step from each: the same Adam state gives the very same weights.
        model = step(model, &mut optim);
        loaded = step(loaded, &mut loaded_optim);
        assert_eq!(out(&model), out(&loaded));
    }

    #[test]
    fn a_new_epoch_replaces_the_files_of_the_previous_one() {
        let device = Device::flex().autodiff();
        let model = config().init(1, &device);
        let optim = AdamConfig::new().init();
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), 1, &model, &optim, ModelKind::Vae).unwrap();
        save(dir.path(), 2, &model, &optim, ModelKind::Vae).unwrap();
        let mut names: Vec<_> = fs::read_dir(dir.path().join("checkpoint"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["latest.json", "model-epoch-2.bpk", "optimizer-epoch-2.bpk"]
        );
    }

    #[test]
    fn a_missing_or_corrupt_checkpoint_is_refused() {
        let device = Device::flex().autodiff();
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            load_model(dir.path(), &config(), &device),
            Err(RunError::NoCheckpoint { .. })
        ));
        save(
            dir.path(),
            1,
            &config().init(1, &device),
            &AdamConfig::new().init(),
            ModelKind::Vae,
        )
        .unwrap();
        fs::write(dir.path().join("checkpoint/model-epoch-1.bpk"), b"garbage").unwrap();
        let err = load_model(dir.path(), &config(), &device).unwrap_err();
        assert!(matches!(err, RunError::Corrupt { .. }), "{err}");
    }
}
