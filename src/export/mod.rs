//! `latentlab export`: a finished run's weights as one `.safetensors` file with PyTorch
//! `state_dict` names and layouts (`crate::model::state_dict`), so that the model can be
//! loaded, decoded or fine-tuned in Python without latentlab.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, tensor::TensorView};
use thiserror::Error;

use crate::model::state_dict::NamedTensor;

#[derive(Debug, Error)]
#[error("{path}: cannot write the weights: {reason}")]
pub struct ExportError {
    pub path: PathBuf,
    pub reason: String,
}

/// Writes `tensors` (float32) and `metadata` (the file's `__metadata__`) to `path`, which must
/// not exist, atomically; returns the file's size in bytes.
pub fn write_safetensors(
    path: &Path,
    tensors: &[NamedTensor],
    metadata: HashMap<String, String>,
) -> Result<u64, ExportError> {
    let fail = |reason: String| ExportError {
        path: path.to_path_buf(),
        reason,
    };
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|t| t.values.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|(t, b)| {
            TensorView::new(Dtype::F32, t.shape.clone(), b)
                .map(|v| (t.name.clone(), v))
                .map_err(|e| fail(format!("tensor {}: {e}", t.name)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let file = safetensors::serialize(views, Some(metadata)).map_err(|e| fail(e.to_string()))?;
    crate::atomic::write_new_atomic(path, &file).map_err(|e| fail(e.to_string()))?;
    Ok(file.len() as u64)
}
