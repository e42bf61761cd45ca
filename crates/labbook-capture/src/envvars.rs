//! The slice of the process environment worth recording with a run: what
//! selects devices, threads, distributed ranks and cluster jobs, and never
//! anything that looks like a secret.

use std::collections::BTreeMap;

/// Variables recorded by exact name.
const ALLOWED: &[&str] = &[
    "CUDA_VISIBLE_DEVICES",
    "CUDA_DEVICE_ORDER",
    "NVIDIA_VISIBLE_DEVICES",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "PYTHONHASHSEED",
    "CUBLAS_WORKSPACE_CONFIG",
    "PYTORCH_CUDA_ALLOC_CONF",
    "NCCL_DEBUG",
    "NCCL_SOCKET_IFNAME",
    "WORLD_SIZE",
    "RANK",
    "LOCAL_RANK",
    "MASTER_ADDR",
    "MASTER_PORT",
    "XLA_FLAGS",
    "TF_CPP_MIN_LOG_LEVEL",
    "VIRTUAL_ENV",
    "CONDA_DEFAULT_ENV",
    "CONDA_PREFIX",
    "HOSTNAME",
];

/// Prefixes of cluster schedulers' job variables (Slurm, PBS, LSF, SGE).
const ALLOWED_PREFIXES: &[&str] = &["SLURM_", "PBS_", "LSB_", "SGE_"];

/// Substrings (upper case) that exclude a variable even when it is allowed
/// above: schedulers export keys and tokens under their own prefixes too.
const DENIED_PARTS: &[&str] = &[
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "CREDENTIAL",
    "KEY",
    "AUTH",
    "COOKIE",
    "SESSION",
];

/// Longest value kept, in bytes.
const MAX_VALUE_BYTES: usize = 4096;

/// Whether the environment variable `name` is recorded with a run.
///
/// Allowed are device, threading, distributed-training and virtualenv
/// variables and any `SLURM_*`, `PBS_*`, `LSB_*` or `SGE_*`; a name containing
/// (in any case) TOKEN, SECRET, PASSWORD, PASSWD, CREDENTIAL, KEY, AUTH,
/// COOKIE or SESSION is refused regardless.
pub fn env_var_allowed(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    if DENIED_PARTS.iter().any(|part| upper.contains(part)) {
        return false;
    }
    ALLOWED.contains(&name) || ALLOWED_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The allowed variables of this process, values cut to 4096 bytes.
pub(crate) fn collect() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(name, value)| {
            let name = name.into_string().ok()?;
            env_var_allowed(&name).then(|| {
                let value = value.to_string_lossy();
                (name, truncate(&value, MAX_VALUE_BYTES).to_owned())
            })
        })
        .collect()
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character
/// boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_and_deny() {
        for name in [
            "CUDA_VISIBLE_DEVICES",
            "SLURM_JOB_ID",
            "PBS_JOBID",
            "LOCAL_RANK",
            "HOSTNAME",
        ] {
            assert!(env_var_allowed(name), "{name} should be allowed");
        }
        for name in [
            "HF_TOKEN",
            "AWS_SECRET_ACCESS_KEY",
            "WANDB_API_KEY",
            "SLURM_AUTH_KEY",
            "SLURM_JOB_token",
            "SGE_SESSION_ID",
            "PATH",
            "HOME",
            "cuda_visible_devices",
            "RANKING",
        ] {
            assert!(!env_var_allowed(name), "{name} should be denied");
        }
    }

    #[test]
    fn truncates_on_char_boundary() {
        assert_eq!(truncate("abc", 4096), "abc");
        let long = "é".repeat(3000);
        let cut = truncate(&long, MAX_VALUE_BYTES);
        assert_eq!(cut.len(), 4096);
        assert_eq!(truncate("aé", 2), "a");
    }
}
