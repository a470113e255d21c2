//! No write of the module raises SIGPIPE in the host.
//!
//! A write to a socket whose peer has closed raises SIGPIPE in the writing thread, and the
//! default action of SIGPIPE ends the whole process. saslauthd and httpd ignore it; other
//! hosts (Dovecot's auth worker, pamtester, custom daemons) need not. Rust's standard library
//! sends on TCP sockets with MSG_NOSIGNAL, but not on unix sockets (kopano's `socket=`, a
//! database's socket) nor in every vectored write, and libraries below us may write however
//! they like. So the module makes SIGPIPE harmless in one place, around every hook:
//!
//! - The calling thread blocks SIGPIPE for the duration of the hook. A SIGPIPE that one of
//!   its writes raises stays pending instead of being delivered (the write fails with EPIPE,
//!   which the module handles like any connection failure).
//! - Threads the module starts inherit the creating thread's signal mask (pthread_create), and
//!   the module starts them only inside a hook: the name-lookup threads of a runtime's
//!   blocking pool (`crate::runtime`; HTTP and SQL I/O itself runs on the calling thread)
//!   block SIGPIPE for their whole life. A SIGPIPE raised there stays pending on that thread
//!   and is never delivered.
//! - Before the host's mask is restored, a SIGPIPE left pending on the calling thread is
//!   taken back with `sigtimedwait` and a zero timeout, so unblocking does not deliver it.
//!
//! If the host already blocks SIGPIPE on the calling thread, nothing is changed and nothing
//! is taken back: a pending SIGPIPE is then the host's own business. The cost is three
//! system calls per hook, without any memory allocation.

use std::mem::MaybeUninit;
use std::ptr;

/// SIGPIPE blocked on this thread until dropped (see the module documentation).
pub struct Blocked {
    /// Whether this guard blocked it (and so must take back a pending one and unblock).
    ours: bool,
}

fn sigpipe_set() -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initializes the set; sigaddset with a valid signal cannot fail.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        libc::sigaddset(set.as_mut_ptr(), libc::SIGPIPE);
        set.assume_init()
    }
}

impl Blocked {
    /// Blocks SIGPIPE on the calling thread.
    pub fn here() -> Blocked {
        let set = sigpipe_set();
        let mut old = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: valid set pointers; pthread_sigmask only changes this thread's mask.
        let ours = unsafe {
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, old.as_mut_ptr()) == 0
                && libc::sigismember(old.as_ptr(), libc::SIGPIPE) == 0
        };
        Blocked { ours }
    }
}

impl Drop for Blocked {
    fn drop(&mut self) {
        if !self.ours {
            return;
        }
        let set = sigpipe_set();
        let no_wait = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: valid set and timeout; a null siginfo pointer is allowed.
        unsafe {
            // Takes back the (at most one, standard signals do not queue) pending SIGPIPE;
            // EAGAIN means there is none. EINTR: another signal came first, try again.
            while libc::sigtimedwait(&set, ptr::null_mut(), &no_wait) < 0
                && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
            {}
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, ptr::null_mut());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked_now() -> bool {
        let mut cur = MaybeUninit::<libc::sigset_t>::uninit();
        unsafe {
            libc::pthread_sigmask(libc::SIG_BLOCK, ptr::null(), cur.as_mut_ptr());
            libc::sigismember(cur.as_ptr(), libc::SIGPIPE) == 1
        }
    }

    fn pending_here() -> bool {
        let mut p = MaybeUninit::<libc::sigset_t>::uninit();
        unsafe {
            libc::sigpending(p.as_mut_ptr());
            libc::sigismember(p.as_ptr(), libc::SIGPIPE) == 1
        }
    }

    #[test]
    fn blocks_for_the_guards_life_and_takes_back_a_pending_sigpipe() {
        // On a thread of its own: the mask is per thread.
        std::thread::spawn(|| {
            assert!(!blocked_now());
            {
                let _g = Blocked::here();
                assert!(blocked_now());
                // A thread started now inherits the blocked SIGPIPE.
                assert!(std::thread::spawn(blocked_now).join().unwrap());
                // SAFETY: a thread-directed SIGPIPE to this thread, where it is blocked.
                unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGPIPE) };
                assert!(pending_here());
            }
            assert!(!pending_here());
            assert!(!blocked_now());
        })
        .join()
        .unwrap();
    }

    #[test]
    fn leaves_a_host_that_blocks_sigpipe_alone() {
        std::thread::spawn(|| {
            let set = sigpipe_set();
            unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, ptr::null_mut()) };
            unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGPIPE) };
            drop(Blocked::here());
            assert!(blocked_now());
            assert!(pending_here(), "the host's pending SIGPIPE is the host's");
        })
        .join()
        .unwrap();
    }
}
