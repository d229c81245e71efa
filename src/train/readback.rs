//! Values back from the device to the host. Each read waits for the device, which is why the
//! loop reads the loss only every few steps; a device error becomes one readable line.

use burn::tensor::{Device, Tensor};

use super::TrainError;

/// Reads a one-element tensor back to the host (this waits for the device).
pub fn read_scalar(t: Tensor<1>) -> Result<f64, TrainError> {
    Ok(read_vec(t)?.first().copied().unwrap_or(f32::NAN) as f64)
}

pub fn read_vec<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, TrainError> {
    let data = t
        .try_into_data()
        .map_err(|e| TrainError::Execution(one_line(&e.to_string())))?;
    data.try_into_vec::<f32>()
        .map_err(|e| TrainError::Execution(one_line(&format!("{e:?}"))))
}

/// Waits until the device has run everything queued on it.
pub fn wait_for(device: &Device) -> Result<(), TrainError> {
    device
        .sync()
        .map_err(|e| TrainError::Execution(one_line(&e.to_string())))
}

/// A device error as one line: its headline and its innermost cause (the backends report a
/// chain of causes and a backtrace over many lines).
fn one_line(report: &str) -> String {
    let lines: Vec<&str> = report
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Backtrace:"))
        .filter(|l| {
            !l.is_empty()
                && !l.starts_with("Caused by")
                && !l.starts_with('│')
                && !l.starts_with('┌')
        })
        .collect();
    match lines.as_slice() {
        [] => "unknown device error".to_string(),
        [only] => only.to_string(),
        [first, .., last] => format!("{first}: {last}"),
    }
}
