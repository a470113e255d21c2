//! Locks for process-wide state that a forked child inherits.
//!
//! Hosts fork (saslauthd with -n, Apache prefork). A mutex that another thread held at the
//! moment of fork() stays locked for ever in the child, and waiting on it would hang the login.
//! So the module's pools and caches are taken with a short, bounded wait; a caller that does
//! not get the lock does its work without the shared state (an unpooled client, a cache miss).

use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

/// The lock, waiting at most a few milliseconds for it; `None` if it stays taken.
pub fn lock_briefly<T>(mutex: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    // The clock is read only once the lock is found taken: an uncontended lock (every cache
    // hit takes two) costs no clock reads.
    let mut deadline = None;
    loop {
        match mutex.try_lock() {
            Ok(guard) => return Some(guard),
            Err(TryLockError::Poisoned(p)) => return Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => {
                let now = Instant::now();
                if now >= *deadline.get_or_insert(now + Duration::from_millis(20)) {
                    return None;
                }
                std::thread::yield_now();
            }
        }
    }
}

/// The lock, waiting for it until `until` (a caller's time budget); `None` if it stays taken.
/// For state a caller must not do without (the throttle's per-process tally), where going on
/// without it would be wrong and only the wait is bounded.
pub fn lock_until<T>(mutex: &Mutex<T>, until: Instant) -> Option<MutexGuard<'_, T>> {
    loop {
        match mutex.try_lock() {
            Ok(guard) => return Some(guard),
            Err(TryLockError::Poisoned(p)) => return Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => {
                if Instant::now() >= until {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}
