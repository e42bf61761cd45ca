//! Periodic system metrics for the training process.

use std::time::Instant;

use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
use sysinfo::{
    MINIMUM_CPU_UPDATE_INTERVAL, MemoryRefreshKind, Pid, ProcessRefreshKind, ProcessesToUpdate,
    System,
};

const MIB: f64 = 1024.0 * 1024.0;

/// Samples system metrics for one process (the training process) every few
/// seconds.
///
/// NVML is started once, in [`SystemSampler::new`]; without it the sampler
/// reports CPU and memory only.
pub struct SystemSampler {
    pid: Pid,
    sys: Option<System>,
    nvml: Option<Nvml>,
    gpu_count: u32,
    /// When CPU times were last read; usage is the change since then.
    last_cpu_read: Option<Instant>,
    /// Whether the process's CPU times were overwritten without the
    /// machine's, so the next difference would mix two intervals.
    cpu_baseline_stale: bool,
}

impl std::fmt::Debug for SystemSampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemSampler")
            .field("pid", &self.pid)
            .field("nvml", &self.nvml.is_some())
            .field("gpu_count", &self.gpu_count)
            .finish_non_exhaustive()
    }
}

impl SystemSampler {
    /// A sampler for the process `pid`. Never fails: metrics that cannot be
    /// read are left out of [`SystemSampler::sample`].
    pub fn new(pid: u32) -> Self {
        let nvml = crate::gpu::init().ok().flatten();
        let gpu_count = nvml
            .as_ref()
            .and_then(|n| n.device_count().ok())
            .unwrap_or(0);
        SystemSampler {
            pid: Pid::from_u32(pid),
            sys: System::new().ok(),
            nvml,
            gpu_count,
            last_cpu_read: None,
            cpu_baseline_stale: false,
        }
    }

    /// Whether NVML was found, so GPU metrics will be reported.
    pub fn has_nvml(&self) -> bool {
        self.nvml.is_some()
    }

    /// Returns (metric key, value) pairs.
    ///
    /// Keys: `sys/cpu_percent` (the process, % of one core, so 200 means two
    /// busy cores), `sys/rss_mb` (process resident memory, MiB),
    /// `sys/system_cpu_percent` (whole machine, 0–100),
    /// `sys/system_mem_percent`, and per GPU `i` when NVML is present:
    /// `sys/gpu{i}/util_percent`, `sys/gpu{i}/mem_used_mb`,
    /// `sys/gpu{i}/mem_percent`, `sys/gpu{i}/temp_c`, `sys/gpu{i}/power_w`.
    ///
    /// CPU percentages are differences between two samples, so the first
    /// call omits them, as does a call less than 200 ms after the previous.
    /// The process keys are omitted once the process is gone.
    pub fn sample(&mut self) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        self.sample_system(&mut out);
        self.sample_gpus(&mut out);
        out
    }

    fn sample_system(&mut self, out: &mut Vec<(String, f64)>) {
        let Some(sys) = self.sys.as_mut() else {
            return;
        };
        let now = Instant::now();
        // sysinfo does not re-read the machine's CPU times within its minimum
        // interval, while a process refresh always re-reads the process's:
        // dividing one by the other would be wrong.
        let read_cpu = self
            .last_cpu_read
            .is_none_or(|t| now.duration_since(t) >= MINIMUM_CPU_UPDATE_INTERVAL);
        let report_cpu = read_cpu && self.last_cpu_read.is_some() && !self.cpu_baseline_stale;

        let mut kind = ProcessRefreshKind::nothing().with_memory();
        if read_cpu {
            sys.refresh_cpu_usage();
            kind = kind.with_cpu();
            self.last_cpu_read = Some(now);
            self.cpu_baseline_stale = false;
        } else {
            self.cpu_baseline_stale = true;
        }
        sys.refresh_processes_specifics(ProcessesToUpdate::Some(&[self.pid]), true, kind);
        if let Some(process) = sys.process(self.pid) {
            if report_cpu {
                out.push(("sys/cpu_percent".to_owned(), f64::from(process.cpu_usage())));
            }
            out.push(("sys/rss_mb".to_owned(), process.memory() as f64 / MIB));
        }
        if report_cpu {
            out.push((
                "sys/system_cpu_percent".to_owned(),
                f64::from(sys.global_cpu_usage()),
            ));
        }

        sys.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
        let total = sys.total_memory();
        if total > 0 {
            let used = sys.used_memory() as f64 / total as f64 * 100.0;
            out.push(("sys/system_mem_percent".to_owned(), used));
        }
    }

    fn sample_gpus(&self, out: &mut Vec<(String, f64)>) {
        let Some(nvml) = &self.nvml else {
            return;
        };
        for i in 0..self.gpu_count {
            // Each metric is optional: consumer GPUs and MIG slices refuse
            // some of them.
            let Ok(device) = nvml.device_by_index(i) else {
                continue;
            };
            if let Ok(util) = device.utilization_rates() {
                out.push((format!("sys/gpu{i}/util_percent"), f64::from(util.gpu)));
            }
            if let Ok(mem) = device.memory_info() {
                out.push((format!("sys/gpu{i}/mem_used_mb"), mem.used as f64 / MIB));
                if mem.total > 0 {
                    let percent = mem.used as f64 / mem.total as f64 * 100.0;
                    out.push((format!("sys/gpu{i}/mem_percent"), percent));
                }
            }
            if let Ok(temp) = device.temperature(TemperatureSensor::Gpu) {
                out.push((format!("sys/gpu{i}/temp_c"), f64::from(temp)));
            }
            if let Ok(milliwatts) = device.power_usage() {
                out.push((
                    format!("sys/gpu{i}/power_w"),
                    f64::from(milliwatts) / 1000.0,
                ));
            }
        }
    }
}

// Samplers are moved onto a background thread by their users.
const _: fn() = || {
    fn assert_send<T: Send>() {}
    assert_send::<SystemSampler>();
};
