//! Which process this is, without a system call per question.
//!
//! State kept between logins (runtimes, kept-alive connections, offline marks, the TLS
//! context) is tagged with the process that made it, so that a forked child never uses its
//! parent's sessions. `std::process::id()` asks the kernel every time (glibc no longer caches
//! getpid), and a check asked it a dozen times. So a hook asks at most once: the first time
//! something in it needs the pid ([`pid`]), and a hook that keeps nothing (a cache hit) never
//! asks. The answer is kept per thread for that hook only ([`InHook`]). A child, however it was
//! made (fork(), a raw clone() or _Fork(), which skip pthread_atfork handlers), enters the
//! module through a hook, so it never runs a check with its parent's pid. Outside a hook
//! (mailauth-check, destructors at thread exit) every call asks the kernel.

use std::cell::Cell;
use std::mem::ManuallyDrop;

thread_local! {
    /// `None` outside a hook; in one, the pid once asked (0: not yet).
    static HOOK_PID: Cell<Option<u32>> = const { Cell::new(None) };
}

/// One hook on this thread, from entry to return.
pub struct InHook {
    outer: Option<u32>,
}

impl InHook {
    pub fn enter() -> InHook {
        let outer = HOOK_PID.try_with(|p| p.replace(Some(0))).ok().flatten();
        InHook { outer }
    }
}

impl Drop for InHook {
    fn drop(&mut self) {
        let _ = HOOK_PID.try_with(|p| p.set(self.outer));
    }
}

/// This process's id: asked of the kernel once per hook (and on every call outside one).
pub fn pid() -> u32 {
    HOOK_PID
        .try_with(|p| match p.get() {
            Some(0) => {
                let pid = std::process::id();
                p.set(Some(pid));
                pid
            }
            Some(pid) => pid,
            None => std::process::id(),
        })
        .unwrap_or_else(|_| std::process::id())
}

/// State made by this process and kept between logins (a kept connection, a TLS context):
/// dropped as usual in the process that made it, never touched in another. After fork() a
/// child's copy is its parent's session (a socket, a TLS state, an epoll registration, a lock
/// a parent's thread may hold): closing or waiting on it would harm the parent or hang, so
/// there it is leaked.
pub struct Owned<T> {
    pid: u32,
    value: ManuallyDrop<T>,
}

impl<T> Owned<T> {
    pub fn new(value: T) -> Owned<T> {
        Owned {
            pid: pid(),
            value: ManuallyDrop::new(value),
        }
    }

    /// Whether this process made it.
    pub fn ours(&self) -> bool {
        self.pid == pid()
    }

    /// The value, if this process made it; another process's is leaked.
    pub fn take(self) -> Option<T> {
        let mut this = ManuallyDrop::new(self);
        if this.ours() {
            // SAFETY: taken once; `this` is never dropped, so neither is the value again.
            Some(unsafe { ManuallyDrop::take(&mut this.value) })
        } else {
            None
        }
    }
}

impl<T> std::ops::Deref for Owned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> Drop for Owned<T> {
    fn drop(&mut self) {
        // The kernel's answer: a destructor may run outside any hook (at thread exit).
        if self.pid == std::process::id() {
            // SAFETY: dropped once, here, and never used again.
            unsafe { ManuallyDrop::drop(&mut self.value) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Runs `check` in a forked child (inside a hook there, as a host would call it) and says
    /// whether it held. `check` must do only what is safe after fork(): no locks, no threads.
    fn holds_in_a_child(check: impl FnOnce() -> bool) -> bool {
        // SAFETY: the child runs `check` and calls _exit.
        let child = unsafe { libc::fork() };
        assert!(child >= 0);
        if child == 0 {
            let _child_hook = InHook::enter();
            let held = check();
            unsafe { libc::_exit(if held { 0 } else { 1 }) };
        }
        let mut status = 0;
        unsafe { libc::waitpid(child, &mut status, 0) };
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
    }

    #[test]
    fn a_child_never_drops_or_takes_what_its_parent_made() {
        static DROPPED: AtomicUsize = AtomicUsize::new(0);
        struct Counted;
        impl Drop for Counted {
            fn drop(&mut self) {
                DROPPED.fetch_add(1, Ordering::SeqCst);
            }
        }
        let hook = InHook::enter();
        let (kept, taken) = (Owned::new(Counted), Owned::new(Counted));
        assert!(holds_in_a_child(|| {
            // SAFETY: the child's own copies of `taken` and `kept`, each used up once: the
            // child exits in holds_in_a_child, so nothing drops them again.
            let untaken = unsafe { std::ptr::read(&taken) }.take().is_none();
            drop(unsafe { std::ptr::read(&kept) });
            untaken && DROPPED.load(Ordering::SeqCst) == 0
        }));
        assert!(taken.take().is_some());
        drop(kept);
        assert_eq!(DROPPED.load(Ordering::SeqCst), 2);
        drop(hook);
    }

    #[test]
    fn a_forked_child_knows_its_own_pid_once_it_enters_a_hook() {
        let hook = InHook::enter();
        let parent = pid();
        assert_eq!(parent, std::process::id());
        assert!(holds_in_a_child(
            || pid() == std::process::id() && pid() != parent
        ));
        assert_eq!(pid(), parent);
        drop(hook);
        assert_eq!(
            pid(),
            std::process::id(),
            "outside a hook: the kernel's answer"
        );
    }
}
