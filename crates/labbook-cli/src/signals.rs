//! Forwarding SIGINT and SIGTERM from the `labbook run` wrapper to the
//! program it runs, so that `kill <wrapper>` (a scheduler's preemption, a
//! `timeout`) stops the program and the run is recorded as killed instead of
//! the wrapper dying and leaving the program orphaned.
//!
//! The handler only reads and writes atomics and calls kill(2), all
//! async-signal-safe. A signal that arrives before the child exists is kept
//! and delivered right after it starts.

use std::sync::atomic::{AtomicI32, Ordering};

/// The child's pid once it runs; 0 before (never a valid target: kill(0, …)
/// would signal our whole process group).
static CHILD: AtomicI32 = AtomicI32::new(0);
/// A signal received before the child started.
static PENDING: AtomicI32 = AtomicI32::new(0);
/// The last interrupting signal received at all (0: none).
static RECEIVED: AtomicI32 = AtomicI32::new(0);

#[cfg(unix)]
extern "C" fn on_signal(signal: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    RECEIVED.store(signal, Ordering::SeqCst);
    let pid = CHILD.load(Ordering::SeqCst);
    if pid <= 0 {
        PENDING.store(signal, Ordering::SeqCst);
        return;
    }
    if signal == libc::SIGINT && from_terminal(info) {
        // Ctrl-C goes to the whole foreground process group, the child
        // included: sending it again would interrupt the child's own
        // KeyboardInterrupt handling a second time.
        return;
    }
    // SAFETY: kill(2) is async-signal-safe and `pid` is a positive pid of a
    // child we spawned and have not yet reaped, so it cannot be reused.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// Whether the kernel generated the signal (the terminal's Ctrl-C) rather
/// than a process calling kill(2).
#[cfg(target_os = "linux")]
fn from_terminal(info: *mut libc::siginfo_t) -> bool {
    // SAFETY: with SA_SIGINFO the kernel passes a valid siginfo_t that lives
    // for the duration of the handler; null is checked anyway.
    !info.is_null() && unsafe { (*info).si_code } == libc::SI_KERNEL
}

#[cfg(all(unix, not(target_os = "linux")))]
fn from_terminal(_: *mut libc::siginfo_t) -> bool {
    false
}

/// Installs the forwarding handlers. Call before spawning the child.
///
/// A signal ignored when labbook started (`nohup`, a shell's `&` without job
/// control) stays ignored: the program inherits that, as it would have
/// without the wrapper.
#[cfg(unix)]
pub fn install() -> std::io::Result<()> {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: with a null new action, sigaction(2) only reads the
        // current one into `current`, a valid, writable sigaction.
        let ignored = unsafe {
            let mut current: libc::sigaction = std::mem::zeroed();
            libc::sigaction(signal, std::ptr::null(), &mut current) == 0
                && current.sa_sigaction == libc::SIG_IGN
        };
        if ignored {
            continue;
        }
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask"
        // value; we then set a handler with the three-argument signature
        // SA_SIGINFO requires. The handler is async-signal-safe (see above).
        let rc = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal
                as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void)
                as libc::sighandler_t;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Starts forwarding to `pid`, delivering a signal that came in before.
#[cfg(unix)]
pub fn set_child(pid: u32) {
    let Ok(pid) = i32::try_from(pid) else { return };
    CHILD.store(pid, Ordering::SeqCst);
    let pending = PENDING.swap(0, Ordering::SeqCst);
    if pending != 0 {
        // SAFETY: as in the handler: a live, unreaped child's pid.
        unsafe {
            libc::kill(pid, pending);
        }
    }
}

/// Stops forwarding: after the child is reaped its pid may be reused.
pub fn clear_child() {
    CHILD.store(-1, Ordering::SeqCst);
}

/// The interrupting signal (SIGINT, SIGTERM) the wrapper received, if
/// any: a program that then exits on its own terms (Python's
/// KeyboardInterrupt exits with 1) was still stopped by the user.
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// The signal received while no child was running (the program could not
/// be started), if any.
pub fn take_pending() -> Option<i32> {
    match PENDING.swap(0, Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

#[cfg(not(unix))]
pub fn install() -> std::io::Result<()> {
    Ok(())
}

#[cfg(not(unix))]
pub fn set_child(_: u32) {}
