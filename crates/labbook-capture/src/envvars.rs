//! The slice of the process environment worth recording with a run: what
//! selects devices, threads, distributed ranks and cluster jobs, and never
//! anything that looks like a secret.

use std::collections::BTreeMap;

use labbook_core::redact::{redact_value, secret_env_name};

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

/// Longest value kept, in bytes.
const MAX_VALUE_BYTES: usize = 4096;

/// Whether the environment variable `name` is recorded with a run.
///
/// Allowed are device, threading, distributed-training and virtualenv
/// variables and any `SLURM_*`, `PBS_*`, `LSB_*` or `SGE_*`; a name that
/// [`secret_env_name`] takes for a secret's (TOKEN, SECRET, PASSWORD, KEY,
/// AUTH, SESSION, JWT, PRIVATE, CERT… anywhere, or a word PASS, PAT, PW…)
/// is refused regardless: schedulers export keys and tokens under their own
/// prefixes too (`SLURM_JWT`).
pub fn env_var_allowed(name: &str) -> bool {
    if secret_env_name(name) {
        return false;
    }
    ALLOWED.contains(&name) || ALLOWED_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The allowed variables of this process, values cut to 4096 bytes and
/// without credentials: an allowed name can still hold a URL with a
/// password in it (`SLURM_DB_URL=postgres://u:***@h/db` is kept that way).
pub(crate) fn collect() -> BTreeMap<String, String> {
    collect_from(std::env::vars_os())
}

fn collect_from(
    vars: impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
) -> BTreeMap<String, String> {
    vars.filter_map(|(name, value)| {
        let name = name.into_string().ok()?;
        env_var_allowed(&name).then(|| {
            // Redacted before the cut, so a cut cannot split a secret out of
            // the pattern that finds it.
            let value = redact_value(&value.to_string_lossy());
            let value = truncate(&value, MAX_VALUE_BYTES).to_owned();
            (name, value)
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
            "SLURM_JWT",
            "SLURM_DB_PASS",
            "PBS_CERT_PATH",
            "PATH",
            "HOME",
            "cuda_visible_devices",
            "RANKING",
        ] {
            assert!(!env_var_allowed(name), "{name} should be denied");
        }
    }

    #[test]
    fn values_lose_credentials() {
        let vars = [
            ("SLURM_DB_URL", "postgres://u:pw@h/db"),
            ("SLURM_JWT", "eyJ.x.y"),
            ("MASTER_ADDR", "10.0.0.1"),
            ("CUDA_VISIBLE_DEVICES", "0,1"),
            ("HOME", "/root"),
        ]
        .map(|(n, v)| (n.into(), v.into()));
        let got = collect_from(vars.into_iter());
        let expected: BTreeMap<String, String> = [
            ("CUDA_VISIBLE_DEVICES", "0,1"),
            ("MASTER_ADDR", "10.0.0.1"),
            ("SLURM_DB_URL", "postgres://u:***@h/db"),
        ]
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .into();
        assert_eq!(got, expected);
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
