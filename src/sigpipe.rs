//! No write of the module raises SIGPIPE in the host.
//!
//! A write to a socket whose peer has closed raises SIGPIPE in the writing thread, and the
//! default action of SIGPIPE ends the whole process. saslauthd and httpd ignore it; other
//! hosts (Dovecot's auth worker, pamtester, custom daemons) need not. Rust's standard library
//! sends on TCP sockets with MSG_NOSIGNAL, but not on unix sockets (kopano's `socket=`, a
//! database's socket) nor in every vectored write, and libraries below us may write however
//! they like. So the module makes SIGPIPE harmless in two places: every hook holds a [`Hook`]
//! guard (`src/lib.rs`), and the SQL drivers' network I/O runs inside `crate::runtime::run`,
//! which calls [`before_io`] first. HTTP needs no guard for its own writes: every one is sent
//! with MSG_NOSIGNAL (`crate::http::client`), so an HTTP check leaves the signal mask alone;
//! it calls [`before_io`] only before a name lookup, which may start a pool thread.
//!
//! - The hook only arms the guard: a thread-local state, no system call. A hook that does no
//!   network I/O (a cache hit, setcred, a refused configuration) leaves the host's signal mask
//!   alone and costs nothing here.
//! - The first network I/O of the hook blocks SIGPIPE on the calling thread, once, until the
//!   hook returns. A SIGPIPE that one of its writes raises stays pending instead of being
//!   delivered (the write fails with EPIPE, which the module handles like any connection
//!   failure).
//! - Threads the module starts inherit the creating thread's signal mask (pthread_create), and
//!   the module starts them only after the block (inside `runtime::run`, or after an HTTP
//!   name lookup's own call of [`before_io`]): the name-lookup threads of a runtime's blocking
//!   pool (HTTP and SQL I/O itself runs on the calling thread) block SIGPIPE for their whole
//!   life. A SIGPIPE raised there stays pending on that thread
//!   and is never delivered.
//! - When the hook returns, if it blocked SIGPIPE, a SIGPIPE left pending on the calling
//!   thread is taken back with `sigtimedwait` and a zero timeout, and SIGPIPE is unblocked
//!   again, so unblocking delivers nothing.
//!
//! If the host already blocks SIGPIPE on the calling thread, nothing is changed and nothing
//! is taken back: a pending SIGPIPE is then the host's own business. A hook entered again on
//! the same thread (re-entry from inside a hook) gets its own guard, and the outer hook's
//! state comes back when it returns. The cost: nothing for a hook without network I/O; one
//! system call before its first network I/O and two at its end for a hook with some (just the
//! one if the host blocks SIGPIPE already), without any memory allocation. Should the
//! thread-local state not be reachable (a hook called while the thread is being torn down),
//! the hook blocks SIGPIPE at once for its whole run, as every hook did before the lazy
//! guard: never less safe.

use std::cell::Cell;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::ptr;

/// Where this thread stands with SIGPIPE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No hook of the module is running on this thread: network I/O here (none in the module)
    /// is not guarded.
    Outside,
    /// A hook runs and has done no network I/O yet: the mask is as the host left it.
    Armed,
    /// A hook runs and SIGPIPE is blocked. `ours`: this hook blocked it, and so must take back
    /// a pending one and unblock when it returns; otherwise the host (or an outer hook on this
    /// thread) had it blocked already.
    Blocked { ours: bool },
}

thread_local! {
    // A const-initialised Cell of a Copy type registers no destructor, so it stays reachable
    // even while the thread is being torn down; every access still goes through `try_with`.
    static STATE: Cell<State> = const { Cell::new(State::Outside) };
}

/// The guard a hook holds for its whole run (see the module documentation).
pub struct Hook {
    how: Guarding,
    /// The state lives in a thread-local: the guard must be dropped on the thread that made it.
    _this_thread: PhantomData<*const ()>,
}

enum Guarding {
    /// Armed through the thread-local state; `outer` is what to put back on drop.
    Lazily { outer: State },
    /// The thread-local state was out of reach: SIGPIPE was blocked at once, for the call.
    AtOnce { _held: Blocked },
}

impl Hook {
    /// Arms the guard for a hook starting on this thread. No system call, unless the
    /// thread-local state is out of reach (then SIGPIPE is blocked right away).
    pub fn arm() -> Hook {
        let armed = STATE.try_with(|state| {
            let outer = state.get();
            state.set(match outer {
                // An outer hook on this thread blocked it already: it stays blocked, and the
                // outer hook takes back what is pending when it returns.
                State::Blocked { .. } => State::Blocked { ours: false },
                State::Outside | State::Armed => State::Armed,
            });
            outer
        });
        let how = match armed {
            Ok(outer) => Guarding::Lazily { outer },
            Err(_) => Guarding::AtOnce {
                _held: Blocked::here(),
            },
        };
        Hook {
            how,
            _this_thread: PhantomData,
        }
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        let Guarding::Lazily { outer } = self.how else {
            return; // `Blocked`'s own Drop undoes the block.
        };
        // Out of reach now (it was reachable on arming): nothing is known to undo, and leaving
        // SIGPIPE blocked is the safe side.
        let mine = STATE.try_with(|state| state.replace(outer));
        if let Ok(State::Blocked { ours: true }) = mine {
            take_back_and_unblock();
        }
    }
}

/// To be called before any network I/O of the module: in a hook whose guard is armed, blocks
/// SIGPIPE on this thread until the hook returns (the first call of a hook makes one system
/// call; later ones none). Threads started after it inherit the block.
pub fn before_io() {
    let _ = STATE.try_with(|state| {
        if state.get() == State::Armed {
            state.set(State::Blocked { ours: block_here() });
        }
    });
}

/// SIGPIPE blocked on this thread until dropped: the fallback of [`Hook::arm`].
struct Blocked {
    /// Whether this guard blocked it (and so must take back a pending one and unblock).
    ours: bool,
}

impl Blocked {
    fn here() -> Blocked {
        Blocked { ours: block_here() }
    }
}

impl Drop for Blocked {
    fn drop(&mut self) {
        if self.ours {
            take_back_and_unblock();
        }
    }
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

/// Blocks SIGPIPE on the calling thread; true if it was not blocked before (so the caller
/// must undo it with [`take_back_and_unblock`]).
fn block_here() -> bool {
    let set = sigpipe_set();
    let mut old = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: valid set pointers; pthread_sigmask only changes this thread's mask.
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, old.as_mut_ptr()) == 0
            && libc::sigismember(old.as_ptr(), libc::SIGPIPE) == 0
    }
}

/// Takes back a SIGPIPE pending on this thread and unblocks SIGPIPE: only for a block that
/// [`block_here`] made.
fn take_back_and_unblock() {
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

    fn raise_here() {
        // SAFETY: a thread-directed SIGPIPE to this thread, where the callers have it blocked.
        unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGPIPE) };
    }

    /// Runs `f` on a thread of its own: the mask is per thread, and so is the guard's state.
    fn on_a_fresh_thread(f: impl FnOnce() + Send + 'static) {
        std::thread::spawn(f).join().unwrap();
    }

    #[test]
    fn an_armed_guard_without_io_leaves_the_mask_alone() {
        on_a_fresh_thread(|| {
            assert!(!blocked_now());
            {
                let _g = Hook::arm();
                assert_eq!(STATE.get(), State::Armed);
                assert!(!blocked_now(), "no block before any I/O");
                assert!(!std::thread::spawn(blocked_now).join().unwrap());
            }
            assert!(!blocked_now());
            assert_eq!(STATE.get(), State::Outside);
        });
    }

    #[test]
    fn the_first_io_blocks_for_the_hooks_life_and_a_pending_sigpipe_is_taken_back() {
        on_a_fresh_thread(|| {
            {
                let _g = Hook::arm();
                before_io();
                assert!(blocked_now());
                before_io(); // a second exchange in the same hook changes nothing
                assert_eq!(STATE.get(), State::Blocked { ours: true });
                // A thread started now inherits the blocked SIGPIPE.
                assert!(std::thread::spawn(blocked_now).join().unwrap());
                raise_here();
                assert!(pending_here());
            }
            assert!(!pending_here());
            assert!(!blocked_now());
            assert_eq!(STATE.get(), State::Outside);
        });
    }

    #[test]
    fn io_through_the_runtime_blocks_there_and_on_its_lookup_threads() {
        on_a_fresh_thread(|| {
            let _g = Hook::arm();
            assert!(!blocked_now());
            let seen = crate::runtime::run(std::time::Duration::from_secs(5), async {
                // A name lookup runs on the blocking pool, started from in here.
                let pool = tokio::task::spawn_blocking(blocked_now)
                    .await
                    .unwrap_or(false);
                (blocked_now(), pool)
            });
            assert_eq!(seen, Ok((true, true)));
            assert!(blocked_now(), "until the hook returns");
        });
    }

    #[test]
    fn a_host_that_blocks_sigpipe_keeps_its_pending_signal() {
        on_a_fresh_thread(|| {
            let set = sigpipe_set();
            unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, ptr::null_mut()) };
            raise_here();
            {
                let _g = Hook::arm();
                before_io();
                assert_eq!(STATE.get(), State::Blocked { ours: false });
            }
            assert!(blocked_now());
            assert!(pending_here(), "the host's pending SIGPIPE is the host's");
            drop(Blocked::here()); // the fallback leaves it alone as well
            assert!(blocked_now());
            assert!(pending_here());
        });
    }

    #[test]
    fn a_nested_hook_gives_the_outer_hook_its_state_back() {
        on_a_fresh_thread(|| {
            let outer = Hook::arm();
            {
                // Inner hook with I/O, outer armed: the inner one blocks and undoes it.
                let _inner = Hook::arm();
                before_io();
                assert!(blocked_now());
            }
            assert!(!blocked_now());
            assert_eq!(STATE.get(), State::Armed);
            before_io();
            {
                // Outer blocked: the inner hook leaves the block and its pending SIGPIPE to it.
                let _inner = Hook::arm();
                before_io();
                raise_here();
            }
            assert!(blocked_now());
            assert!(pending_here());
            assert_eq!(STATE.get(), State::Blocked { ours: true });
            drop(outer);
            assert!(!pending_here());
            assert!(!blocked_now());
        });
    }

    #[test]
    fn the_fallback_blocks_at_once_and_takes_back_a_pending_sigpipe() {
        on_a_fresh_thread(|| {
            {
                let _b = Blocked::here();
                assert!(blocked_now());
                raise_here();
            }
            assert!(!pending_here());
            assert!(!blocked_now());
        });
    }
}
