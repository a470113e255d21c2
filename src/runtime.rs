//! "Run this future on this thread's runtime, bounded by a time limit": the one place that
//! owns the module's async runtimes.
//!
//! Why async at all: a blocking client bounds each read separately, so a server that drips
//! one byte per read can hold a login for ever. A future wrapped in one `tokio::time::timeout`
//! is bounded as a whole: DNS resolution, connect, TLS and protocol handshakes, queries.
//!
//! Why one current-thread runtime per thread: PAM hosts call the module from many threads
//! (Apache's event MPM) or from forked single-threaded workers (saslauthd). A current-thread
//! runtime starts no worker thread, so it costs nothing while idle and no thread of ours runs
//! in the host between calls; one per calling thread means threads never wait for each other.
//!
//! Fork safety: a child inherits the calling thread's runtime, whose epoll instance is shared
//! with the parent and whose blocking-pool threads do not exist in the child. Using it would
//! steal the parent's I/O events; dropping it could wait for those threads for ever. So a
//! runtime built in another process is leaked (`mem::forget`), never used or dropped, and a
//! fresh one is built. [`generation`] changes whenever that happens, so state tied to a
//! runtime (pooled connections) can tell that it belongs to a runtime no longer usable.
//!
//! Who uses it: the SQL drivers, which keep connections per thread, tagged with the generation
//! that made them: a connection's socket is registered with the runtime that opened it and only
//! makes progress while that runtime runs. The HTTP layer (`crate::http::client`) uses it only
//! to open a connection (name lookup, connect); the connected socket leaves the runtime and is
//! read and written synchronously.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Why a future did not run to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    /// The time limit passed first.
    TimedOut,
    /// No runtime could be had (the text says why).
    NoRuntime(String),
}

struct Local {
    pid: u32,
    rt: Option<tokio::runtime::Runtime>,
}

impl Drop for Local {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            // The kernel's answer: this runs at thread exit, maybe outside any hook.
            if self.pid == std::process::id() {
                // At thread exit: never wait for a DNS lookup still running in the pool.
                rt.shutdown_background();
            } else {
                std::mem::forget(rt);
            }
        }
    }
}

thread_local! {
    static LOCAL: RefCell<Option<Local>> = const { RefCell::new(None) };
    static GENERATION: Cell<u64> = const { Cell::new(0) };
    /// Inside [`once`]: a runtime of one call, whose connections must not be kept.
    static ONE_OFF: Cell<bool> = const { Cell::new(false) };
}

static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

/// Which runtime this thread would run a future on now: state made on one generation may only
/// be used on the same one. Never 0 once [`run`] has been called on this thread; a runtime
/// inherited across fork() does not count (its generation is retired on first use). 0 inside a
/// runtime made for one call: nothing made there may be kept.
pub fn generation() -> u64 {
    if ONE_OFF.try_with(Cell::get).unwrap_or(true) {
        return 0;
    }
    let pid = crate::fork::pid();
    let live = LOCAL
        .try_with(|l| {
            l.try_borrow()
                .ok()
                .and_then(|l| l.as_ref().map(|l| l.pid == pid))
                .unwrap_or(true)
        })
        .unwrap_or(false);
    if live {
        GENERATION.try_with(Cell::get).unwrap_or(0)
    } else {
        0
    }
}

fn build() -> Result<tokio::runtime::Runtime, Stopped> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| Stopped::NoRuntime(format!("cannot start the I/O runtime: {e}")))
}

/// This thread's live runtime, made if there is none yet or the one there was inherited
/// across fork() (Local's Drop leaks that one).
fn live(local: &mut Option<Local>) -> Result<&tokio::runtime::Runtime, Stopped> {
    let pid = crate::fork::pid();
    if local.as_ref().is_some_and(|l| l.pid != pid) {
        *local = None;
    }
    if local.is_none() {
        let rt = build()?;
        *local = Some(Local { pid, rt: Some(rt) });
        GENERATION.set(NEXT_GENERATION.fetch_add(1, Ordering::Relaxed));
    }
    local
        .as_ref()
        .and_then(|l| l.rt.as_ref())
        .ok_or_else(|| Stopped::NoRuntime("no runtime".into()))
}

/// Runs `fut` to its end on this thread's runtime, or stops it when `limit` has passed. In a
/// hook, SIGPIPE is blocked first (`crate::sigpipe::before_io`) and stays so until the hook
/// returns.
///
/// The future is dropped after the runtime has returned, outside its context: whatever it
/// owned (a half-open connection) is closed there and then, rather than leaving a clean-up
/// task behind on the runtime.
pub fn run<F: Future>(limit: Duration, fut: F) -> Result<F::Output, Stopped> {
    // All of the SQL drivers' socket I/O happens below, and the blocking pool's (name-lookup)
    // threads are started only from here: they inherit the mask this sets.
    crate::sigpipe::before_io();
    run_without_sigpipe_guard(limit, fut)
}

/// [`run`] for a future none of whose writes can raise SIGPIPE (all sent with
/// `MSG_NOSIGNAL`: `crate::http::client`) and which calls `crate::sigpipe::before_io` itself
/// before it starts a thread (a name lookup): the hook's signal mask is then left alone, which
/// spares a check its three system calls.
pub fn run_without_sigpipe_guard<F: Future>(limit: Duration, fut: F) -> Result<F::Output, Stopped> {
    if tokio::runtime::Handle::try_current().is_ok() {
        // Blocking inside someone's runtime would panic (and stall it): no host does this.
        return Err(Stopped::NoRuntime(
            "called from inside an async runtime".into(),
        ));
    }
    // Pinned where it is (no copy to the heap): it stays in this frame until `run` returns.
    let mut fut = std::pin::pin!(fut);
    let outcome = LOCAL.try_with(|cell| {
        let Ok(mut local) = cell.try_borrow_mut() else {
            // Re-entered from inside run() on this thread: use a runtime of its own.
            return once(limit, &mut fut);
        };
        live(&mut local)?.block_on(bounded(limit, &mut fut))
    });
    match outcome {
        Ok(result) => result,
        // The thread is exiting (its locals are gone): a runtime for this one call.
        Err(_) => once(limit, &mut fut),
    }
}

/// A runtime for one call. Dropping a runtime waits for its blocking pool (a DNS lookup may
/// still run there), so it is shut down in the background instead.
fn once<F: Future + Unpin>(limit: Duration, fut: F) -> Result<F::Output, Stopped> {
    let rt = build()?;
    let outer = ONE_OFF
        .try_with(|one_off| one_off.replace(true))
        .unwrap_or(true);
    let result = rt.block_on(bounded(limit, fut));
    let _ = ONE_OFF.try_with(|one_off| one_off.set(outer));
    rt.shutdown_background();
    result
}

async fn bounded<F: Future + Unpin>(limit: Duration, fut: F) -> Result<F::Output, Stopped> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| Stopped::TimedOut)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_future_that_never_ends_is_stopped_at_the_limit() {
        let started = Instant::now();
        let r = run(Duration::from_millis(200), std::future::pending::<()>());
        assert_eq!(r, Err(Stopped::TimedOut));
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn one_runtime_per_thread_reused() {
        assert_eq!(run(Duration::from_secs(1), async { 7 }), Ok(7));
        let g = generation();
        assert_ne!(g, 0);
        assert_eq!(run(Duration::from_secs(1), async { 8 }), Ok(8));
        assert_eq!(generation(), g);
        let other = std::thread::spawn(|| {
            let _ = run(Duration::from_secs(1), async {});
            generation()
        })
        .join()
        .unwrap_or(0);
        assert_ne!(other, g);
        assert_ne!(other, 0);
    }
}
