//! Host, user, OS and hardware facts.

use sysinfo::{CpuRefreshKind, MemoryRefreshKind, System};

use crate::Environment;

/// The host name of this machine, `None` when it cannot be read.
pub fn hostname() -> Option<String> {
    System::host_name().ok().filter(|h| !h.is_empty())
}

/// Whether a process with this pid exists on this host.
///
/// A process owned by another user counts as alive: the kernel refuses to
/// signal it (EPERM), which proves it exists.
#[cfg(unix)]
pub fn pid_alive(pid: u32) -> bool {
    // Pid 0 and values past i32::MAX would address process groups.
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill(2) with signal 0 sends nothing and touches no memory of
    // this process; it only reports whether `pid` could be signalled.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Whether a process with this pid exists on this host.
#[cfg(not(unix))]
pub fn pid_alive(pid: u32) -> bool {
    use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate};
    let Ok(mut sys) = System::new() else {
        return false;
    };
    let pid = Pid::from_u32(pid);
    sys.refresh_processes_specifics(
        ProcessesToUpdate::Some(&[pid]),
        true,
        ProcessRefreshKind::nothing(),
    );
    sys.process(pid).is_some()
}

/// Fills host, user, OS, CPU and memory fields of `env`.
pub(crate) fn fill(env: &mut Environment) {
    env.host = hostname();
    env.user = user_name();
    match os_name() {
        Some(os) => env.os = Some(os),
        None => env.errors.push("os: cannot read the OS name".to_owned()),
    }
    match System::kernel_version() {
        Ok(kernel) => env.kernel = Some(kernel),
        Err(e) => env.errors.push(format!("kernel: {e}")),
    }
    match System::new() {
        Ok(mut sys) => {
            // Only the CPU list (brand, count) and RAM: refreshing usage or
            // frequencies costs tens of milliseconds.
            sys.refresh_cpu_list(CpuRefreshKind::nothing());
            sys.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
            let cpus = sys.cpus();
            env.cpu_count = cpus.len();
            env.cpu_model = cpus
                .first()
                .map(|c| c.brand().trim().to_owned())
                .filter(|b| !b.is_empty());
            let total = sys.total_memory();
            if total > 0 {
                env.memory_bytes = Some(total);
            } else {
                env.errors.push("memory: cannot read total RAM".to_owned());
            }
        }
        Err(e) => env.errors.push(format!("sysinfo: {e}")),
    }
    if env.cpu_count == 0 {
        env.cpu_count = std::thread::available_parallelism().map_or(1, |n| n.get());
    }
}

/// "Debian GNU/Linux 12" where the distribution says so; sysinfo's long
/// form would prefix "Linux (…)", which says nothing new next to `kernel`.
fn os_name() -> Option<String> {
    let name = System::name().ok().filter(|s| !s.is_empty());
    let version = System::os_version().ok().filter(|s| !s.is_empty());
    match (name, version) {
        (Some(name), Some(version)) => Some(format!("{name} {version}")),
        (Some(name), None) => Some(name),
        _ => System::long_os_version().ok().filter(|s| !s.is_empty()),
    }
}

/// The login name: from the environment when set, since that is instant,
/// else from the password database.
fn user_name() -> Option<String> {
    ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))
        .or_else(passwd_name)
}

#[cfg(unix)]
fn passwd_name() -> Option<String> {
    use std::ffi::CStr;
    use std::mem::MaybeUninit;

    // SAFETY: getuid(2) has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let mut buf = vec![0u8; 1024];
    loop {
        let mut pwd = MaybeUninit::<libc::passwd>::uninit();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: `pwd` is writable storage for one `passwd`, `buf` is a live
        // writable buffer of exactly `buf.len()` bytes, and `result` is a
        // valid out-pointer. getpwuid_r writes the strings it returns only
        // into `buf`, which lives until after they are copied below.
        let rc = unsafe {
            libc::getpwuid_r(
                uid,
                pwd.as_mut_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 || result.is_null() {
            return None;
        }
        // SAFETY: rc == 0 with a non-null `result` means getpwuid_r filled
        // `*result` (which is `pwd`), so reading its fields is sound.
        let name_ptr = unsafe { (*result).pw_name };
        if name_ptr.is_null() {
            return None;
        }
        // SAFETY: a non-null `pw_name` from a successful getpwuid_r points to
        // a NUL-terminated string inside `buf`, still alive and unmodified.
        let name = unsafe { CStr::from_ptr(name_ptr) };
        return Some(name.to_string_lossy().into_owned()).filter(|n| !n.is_empty());
    }
}

#[cfg(not(unix))]
fn passwd_name() -> Option<String> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn passwd_lookup_agrees_with_id() {
        let out = std::process::Command::new("id")
            .arg("-un")
            .output()
            .expect("run id -un");
        let expected = out
            .status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned());
        assert_eq!(passwd_name(), expected);
    }
}
