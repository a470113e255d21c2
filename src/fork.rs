//! Which process this is, without a system call per question.
//!
//! State kept between logins (runtimes, kept-alive connections, offline marks, the TLS
//! context) is tagged with the process that made it, so that a forked child never uses its
//! parent's sessions. `std::process::id()` asks the kernel every time (glibc no longer caches
//! getpid), and a check asked it a dozen times. So every hook asks once, on entry
//! ([`refresh`]), and the checks inside it read that answer. A child, however it was made
//! (fork(), a raw clone() or _Fork(), which skip pthread_atfork handlers), enters the module
//! through a hook, so it never runs a check with its parent's pid. Code that may run outside a
//! hook (destructors at thread exit) asks the kernel itself. (A child sharing its parent's
//! memory, clone(CLONE_VM) without CLONE_THREAD, would write its pid into the parent's copy
//! too; the parent would then only rebuild what it keeps, never use a child's. No PAM host
//! makes such children.)

use std::sync::atomic::{AtomicU32, Ordering};

static PID: AtomicU32 = AtomicU32::new(0);

/// Asks the kernel which process this is; called on entry to every hook.
pub fn refresh() {
    PID.store(std::process::id(), Ordering::Relaxed);
}

/// This process's id, as the hook running on this thread learned it on entry (or from the
/// kernel, outside any hook so far).
pub fn pid() -> u32 {
    match PID.load(Ordering::Relaxed) {
        0 => std::process::id(),
        pid => pid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forked_child_knows_its_own_pid_once_it_enters_a_hook() {
        refresh();
        let parent = pid();
        assert_eq!(parent, std::process::id());
        // SAFETY: the child only calls async-signal-safe code and getpid, then _exit.
        let child = unsafe { libc::fork() };
        assert!(child >= 0);
        if child == 0 {
            refresh();
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
