//! The HTTP exchange runs on the thread that called PAM (docs/perf.md): no thread of the
//! module's own, one kept-alive connection per calling thread reused across PAM
//! transactions, and nothing left behind by a thread that exits (the module stays mapped,
//! nodelete, while libpam dlopen()s and dlclose()s it in every transaction, so the thread's
//! destructors run the module's code after the last pam_end). Threads and descriptors are
//! counted in a child process of their own (this test binary re-executed); the fake server
//! runs in the parent.

mod support;

use std::sync::Arc;
use std::time::Duration;
use support::http::Server;
use support::mailstore::MailStore;
use support::process::rerun_test;
use support::*;

const CHILD_URL: &str = "PAM_MAILAUTH_CALLING_THREAD_URL";
const USER: &str = "john.doe";
const PASSWORD: &str = "Passw0rd";

fn tasks() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn mailstore() -> Server {
    MailStore::new(&[(USER, PASSWORD)]).serve()
}

fn line(url: &str) -> Service {
    Service::module_line(&format!("backend=mailstore url={url} quiet"))
}

#[test]
fn logins_start_no_thread_and_reuse_one_connection() {
    if let Ok(url) = std::env::var(CHILD_URL) {
        let svc = line(&url);
        let before = tasks();
        assert_eq!(svc.login(USER, PASSWORD), (PAM_SUCCESS, Some(PAM_SUCCESS)));
        let (threads, descriptors) = (tasks(), fds());
        assert_eq!(threads, before, "the first login started a thread");
        for _ in 0..50 {
            assert_eq!(svc.login(USER, PASSWORD), (PAM_SUCCESS, Some(PAM_SUCCESS)));
        }
        assert_eq!(tasks(), before, "a thread was left behind");
        assert_eq!(fds(), descriptors, "descriptors grew with logins");
        return;
    }
    let server = mailstore();
    rerun_test(
        "logins_start_no_thread_and_reuse_one_connection",
        &[(CHILD_URL, server.url("/"))],
    );
    assert_eq!(server.count(), 51);
    assert_eq!(
        server.connections(),
        1,
        "one kept-alive connection for every login"
    );
}

/// Apache's event MPM, Dovecot's auth workers: many threads of one process in PAM at once.
/// Each gets its answers over a connection of its own, kept for its next login; when the
/// threads end, their connections and runtimes go with them.
#[test]
fn threads_in_pam_at_once_each_keep_a_connection_and_leave_nothing_when_they_exit() {
    const THREADS: usize = 8;
    const LOGINS: usize = 40;
    if let Ok(url) = std::env::var(CHILD_URL) {
        let svc = Arc::new(line(&url));
        // Warm up libpam and syslog on this thread first: what they keep is not ours.
        assert_eq!(svc.login(USER, PASSWORD), (PAM_SUCCESS, Some(PAM_SUCCESS)));
        let (threads, descriptors) = (tasks(), fds());
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let svc = svc.clone();
                std::thread::spawn(move || {
                    (0..LOGINS)
                        .filter(|_| svc.login(USER, PASSWORD) == (PAM_SUCCESS, Some(PAM_SUCCESS)))
                        .count()
                })
            })
            .collect();
        for h in handles {
            // join() returns after the thread's destructors ran.
            assert_eq!(h.join().unwrap(), LOGINS, "every login succeeded");
        }
        assert_eq!(tasks(), threads, "a thread was left behind");
        assert_eq!(fds(), descriptors, "an exited thread left descriptors open");
        return;
    }
    let server = mailstore();
    rerun_test(
        "threads_in_pam_at_once_each_keep_a_connection_and_leave_nothing_when_they_exit",
        &[(CHILD_URL, server.url("/"))],
    );
    assert_eq!(server.count(), 1 + THREADS * LOGINS);
    assert!(
        server.connections() <= 1 + THREADS,
        "{} connections for {} threads",
        server.connections(),
        1 + THREADS
    );
}

/// Between two PAM calls nobody runs the thread's runtime, so nobody sees a server close an
/// idle kept-alive connection (its keep-alive timeout: Apache's is 5 s). The next login must
/// not send its request on that dead connection.
#[test]
fn a_connection_the_server_closed_while_idle_is_not_used_again() {
    let store = MailStore::new(&[(USER, PASSWORD)]);
    let server =
        Server::closing_idle_after(Duration::from_millis(150), move |req| store.answer(req));
    let svc = line(&server.url("/"));
    for round in 1..=4 {
        assert_eq!(
            svc.login(USER, PASSWORD),
            (PAM_SUCCESS, Some(PAM_SUCCESS)),
            "login {round}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(server.count(), 4);
    assert_eq!(server.connections(), 4);
}
