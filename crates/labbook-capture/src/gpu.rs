//! NVIDIA GPUs through NVML, which is loaded at run time: a machine without
//! the driver simply has no GPUs.

use nvml_wrapper::error::NvmlError;
use nvml_wrapper::{Nvml, cuda_driver_version_major, cuda_driver_version_minor};

use crate::Gpu;

/// Starts NVML; `Ok(None)` when this machine has no NVIDIA driver, which is
/// not worth reporting.
pub(crate) fn init() -> Result<Option<Nvml>, String> {
    match Nvml::init() {
        Ok(nvml) => Ok(Some(nvml)),
        Err(
            NvmlError::LibloadingError(_)
            | NvmlError::LibraryNotFound
            | NvmlError::DriverNotLoaded
            | NvmlError::FailedToLoadSymbol(_),
        ) => Ok(None),
        Err(e) => Err(format!("nvml: {e}")),
    }
}

/// The GPUs of this machine and the reasons for any facts left out.
pub(crate) fn probe() -> (Vec<Gpu>, Vec<String>) {
    let mut errors = Vec::new();
    let nvml = match init() {
        Ok(Some(nvml)) => nvml,
        Ok(None) => return (Vec::new(), errors),
        Err(e) => {
            errors.push(e);
            return (Vec::new(), errors);
        }
    };
    let count = match nvml.device_count() {
        Ok(n) => n,
        Err(e) => {
            errors.push(format!("nvml: device count: {e}"));
            return (Vec::new(), errors);
        }
    };
    let driver_version = nvml.sys_driver_version().ok();
    let cuda_version = nvml.sys_cuda_driver_version().ok().map(|v| {
        format!(
            "{}.{}",
            cuda_driver_version_major(v),
            cuda_driver_version_minor(v)
        )
    });
    let mut gpus = Vec::new();
    for index in 0..count {
        let device = match nvml.device_by_index(index) {
            Ok(d) => d,
            Err(e) => {
                errors.push(format!("gpu{index}: {e}"));
                continue;
            }
        };
        let name = device.name().unwrap_or_else(|e| {
            errors.push(format!("gpu{index}: name: {e}"));
            String::new()
        });
        gpus.push(Gpu {
            index,
            name,
            uuid: device.uuid().ok(),
            memory_bytes: device.memory_info().ok().map(|m| m.total),
            driver_version: driver_version.clone(),
            cuda_version: cuda_version.clone(),
        });
    }
    (gpus, errors)
}
