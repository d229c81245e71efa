//! `--device cpu|gpu`: which Burn backend a run uses, chosen at run time.
//!
//! burn 0.22 makes the backend a runtime value, so both choices share one training path; this
//! module only opens the device and turns "no GPU" into one clear sentence instead of the
//! panic wgpu would give.

pub mod cpu;

use std::panic::{AssertUnwindSafe, catch_unwind};

pub use cpu::cpu_name;

use burn::tensor::{Device, DeviceKind, DeviceType};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Where training runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// Burn's pure-Rust CPU backend (flex).
    Cpu,
    /// The default wgpu adapter (Vulkan, Metal or DX12), with kernel fusion and autotune.
    Gpu,
}

impl DeviceChoice {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceChoice::Cpu => "cpu",
            DeviceChoice::Gpu => "gpu",
        }
    }
}

#[derive(Debug, Error)]
pub enum DeviceError {
    #[error(
        "--device gpu: wgpu found no graphics adapter on this machine ({0}); use --device cpu, or install a Vulkan driver (on Debian: apt install mesa-vulkan-drivers)"
    )]
    NoAdapter(String),
}

/// An opened device with the names a run records.
#[derive(Debug, Clone)]
pub struct OpenedDevice {
    /// The autodiff device training runs on.
    pub device: Device,
    /// The Burn backend: "flex", or on a GPU wgpu with the shader language CubeCL compiles its
    /// kernels to: "wgpu<wgsl>", or "wgpu<spirv>" in a build with the `spirv` feature on a
    /// Vulkan adapter that has what CubeCL's SPIR-V needs.
    pub backend: String,
    /// The adapter's own name ("llvmpipe (LLVM 15.0.6, 256 bits)", "NVIDIA H100 ..."), or the CPU's.
    pub adapter: String,
}

/// Whether tensors on `device` live in host memory (Burn's CPU backend, with or without
/// autodiff), where reading them back costs nothing and a loop over them beats a chain of
/// tensor operations.
pub fn is_cpu(device: &Device) -> bool {
    matches!(
        device.clone().inner().as_dispatch(),
        burn::backend::DispatchDevice::Flex(_)
    )
}

/// Opens the device a choice names, with autodiff.
pub fn open(choice: DeviceChoice) -> Result<OpenedDevice, DeviceError> {
    match choice {
        DeviceChoice::Cpu => Ok(OpenedDevice {
            device: Device::flex().autodiff(),
            backend: "flex".to_string(),
            adapter: cpu_name(),
        }),
        DeviceChoice::Gpu => {
            let device = Device::wgpu(DeviceKind::DefaultDevice);
            let (adapter, runtime) = quietly(|| {
                let adapter = device.identity().map(|id| id.name);
                (
                    adapter,
                    <burn::backend::Dispatch as burn::backend::Backend>::name(device.as_dispatch()),
                )
            })
            .map_err(DeviceError::NoAdapter)?;
            Ok(OpenedDevice {
                device: device.autodiff(),
                backend: wgpu_runtime(&runtime),
                adapter: adapter.unwrap_or_else(|| "unnamed wgpu adapter".to_string()),
            })
        }
    }
}

/// "wgpu<spirv>" out of Burn's name for a device's backend stack
/// ("dispatch<fusion<cubecl<wgpu<spirv>>>>"); "wgpu" where the name has no such part.
fn wgpu_runtime(stack: &str) -> String {
    stack
        .find("wgpu<")
        .and_then(|start| {
            let rest = &stack[start..];
            rest.find('>').map(|end| rest[..=end].to_string())
        })
        .unwrap_or_else(|| "wgpu".to_string())
}

/// One adapter wgpu sees.
#[derive(Debug, Clone, Serialize)]
pub struct AdapterInfo {
    pub name: String,
    pub id: String,
}

/// The adapters wgpu sees, and the one `--device gpu` takes, with the shader language its
/// kernels are compiled to.
pub fn list_adapters() -> Result<(Vec<AdapterInfo>, String), DeviceError> {
    let all = quietly(|| {
        Device::enumerate(DeviceType::Wgpu)
            .into_vec()
            .into_iter()
            .map(|d| AdapterInfo {
                name: d.identity().map(|i| i.name).unwrap_or_default(),
                id: format!("{d:?}"),
            })
            .collect::<Vec<_>>()
    })
    .map_err(DeviceError::NoAdapter)?;
    let opened = open(DeviceChoice::Gpu)?;
    Ok((
        all,
        format!("{} through {}", opened.adapter, opened.backend),
    ))
}

/// Runs `f`, turning a panic of the graphics stack into its message, without printing it.
///
/// wgpu's adapter is opened on a worker thread: when that fails, the panic `f` sees is only a
/// closed channel, so every panic message raised meanwhile is kept and the first one (the
/// cause) is reported.
///
/// The panic hook is one per process: calls are serialised so that two threads opening
/// devices at once (the tests do) never restore each other's hook in the wrong order.
fn quietly<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    use std::sync::{Arc, Mutex};
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    // A panic inside `f` is caught below, so the lock is never poisoned by it; take it anyway.
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let hook = std::panic::take_hook();
    let record = Arc::clone(&seen);
    std::panic::set_hook(Box::new(move |info| {
        if let Ok(mut seen) = record.lock() {
            seen.push(payload_text(info.payload()));
        }
    }));
    let result = catch_unwind(AssertUnwindSafe(f));
    std::panic::set_hook(hook);
    result.map_err(|e| {
        let first = seen.lock().ok().and_then(|s| s.first().cloned());
        let cause = concise(&first.unwrap_or_else(|| payload_text(e.as_ref())));
        match std::env::var("CUBECL_WGPU_DEFAULT_DEVICE") {
            Ok(asked) => format!("{cause}; CUBECL_WGPU_DEFAULT_DEVICE={asked} asks for it"),
            Err(_) => cause,
        }
    })
}

/// The driver's own sentence out of cubecl's debug dump of the failure, where it has one
/// (`AdapterUnavailable { .., message: "No Discrete GPU device found, adapters [..]" }`).
fn concise(cause: &str) -> String {
    let Some((_, rest)) = cause.split_once("message: \"") else {
        return cause.to_string();
    };
    let end = [rest.find(", adapters"), rest.find('"')]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(rest.len());
    rest[..end].to_string()
}

fn payload_text(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    // The first line only: some drivers append a backtrace or a chain of causes.
    match text.lines().next().map(str::trim) {
        Some(line) if !line.is_empty() => line.to_string(),
        _ => "the graphics driver failed to start".to_string(),
    }
}

/// A mode-0700 folder for `XDG_RUNTIME_DIR` when the environment has no usable one, so the
/// Vulkan loader starts quietly; `None` when the variable is already fine (or none can be made).
#[cfg(unix)]
pub fn private_runtime_dir() -> Option<std::path::PathBuf> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let usable = |p: &std::path::Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_dir() && m.mode() & 0o077 == 0)
    };
    if std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|v| usable(std::path::Path::new(&v))) {
        return None;
    }
    let user = std::env::var("USER").unwrap_or_else(|_| "user".into());
    let dir = std::env::temp_dir().join(format!("latentlab-runtime-{user}"));
    std::fs::create_dir_all(&dir).ok()?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).ok()?;
    usable(&dir).then_some(dir)
}

/// Only the Vulkan loader of unix systems reads `XDG_RUNTIME_DIR`: nothing to give elsewhere.
#[cfg(not(unix))]
pub fn private_runtime_dir() -> Option<std::path::PathBuf> {
    None
}

#[cfg(test)]
mod tests {
    use super::wgpu_runtime;

    #[test]
    fn the_shader_language_is_read_out_of_burns_backend_name() {
        assert_eq!(
            wgpu_runtime("dispatch<fusion<cubecl<wgpu<spirv>>>>"),
            "wgpu<spirv>"
        );
        assert_eq!(wgpu_runtime("dispatch<cubecl<wgpu<wgsl>>>"), "wgpu<wgsl>");
        assert_eq!(wgpu_runtime("dispatch<something else>"), "wgpu");
    }
}
