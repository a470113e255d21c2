//! Which process this is, without a system call per question.
//!
//! State kept between logins (runtimes, kept-alive connections, offline marks, the TLS
//! context) is tagged with the process that made it, so that a forked child never uses or
//! closes its parent's sessions. `std::process::id()` asks the kernel every time (glibc no
//! longer caches getpid), and a check asked it a dozen times. The pid is kept here instead
//! and forgotten in every child fork() makes (a `pthread_atfork` handler: glibc runs it in the
//! child before fork() returns there). The handler is never unloaded: the module is linked
//! with `-z nodelete` (build.rs).

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Once;

static PID: AtomicU32 = AtomicU32::new(0);
static HANDLER: Once = Once::new();
/// Whether the handler is in place; without it nothing is kept (every call asks the kernel).
static FORGOTTEN_IN_CHILDREN: AtomicBool = AtomicBool::new(false);

extern "C" fn in_child() {
    PID.store(0, Ordering::Relaxed);
}

/// This process's id.
pub fn pid() -> u32 {
    let known = PID.load(Ordering::Relaxed);
    if known != 0 {
        return known;
    }
    HANDLER.call_once(|| {
        // SAFETY: registers a handler that only stores to an atomic.
        let registered = unsafe { libc::pthread_atfork(None, None, Some(in_child)) } == 0;
        FORGOTTEN_IN_CHILDREN.store(registered, Ordering::Relaxed);
    });
    let pid = std::process::id();
    if FORGOTTEN_IN_CHILDREN.load(Ordering::Relaxed) {
        PID.store(pid, Ordering::Relaxed);
    }
    pid
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forked_child_knows_its_own_pid() {
        let parent = pid();
        assert_eq!(parent, std::process::id());
        // SAFETY: the child only calls async-signal-safe code and getpid, then _exit.
        let child = unsafe { libc::fork() };
        assert!(child >= 0);
        if child == 0 {
            let right = pid() == std::process::id() && pid() != parent;
            unsafe { libc::_exit(if right { 0 } else { 1 }) };
        }
        let mut status = 0;
        unsafe { libc::waitpid(child, &mut status, 0) };
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "{status}"
        );
        assert_eq!(pid(), parent);
    }
}
