//! No write of the module raises SIGPIPE in the host (issue 11 item 5). saslauthd and httpd
//! ignore SIGPIPE; other hosts (Dovecot's auth worker, pamtester, custom daemons) keep the
//! default action, which kills the process. Rust programs, this test binary included, ignore
//! it from the start, so each case reruns itself in a child process that puts SIGPIPE back to
//! SIG_DFL (a host that did not ignore it) and then authenticates against a server that
//! closes the connection while a 2 MB password is still being written.

mod support;

use std::io::Read;
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::time::Duration;
use support::process::rerun_test;
use support::*;

const AS_HOST: &str = "PAM_MAILAUTH_TEST_SIGPIPE_HOST";

/// In the child: SIGPIPE back to its default action (terminate), as a C host has it.
fn become_a_host_that_dies_of_sigpipe() {
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

/// Reads a little of each connection, then closes it with the rest of the request unread.
fn close_early(mut conn: impl Read) {
    let mut buf = [0u8; 1024];
    let _ = conn.read(&mut buf);
    drop(conn);
}

fn big_password() -> String {
    "p".repeat(2 * 1024 * 1024)
}

/// The child's transaction, and the proof that it survived (a killed child prints nothing
/// and fails `rerun_test`).
fn authenticate_as_host(svc: &Service) {
    become_a_host_that_dies_of_sigpipe();
    let password = big_password();
    for _ in 0..3 {
        assert_eq!(svc.auth("john", &password), PAM_AUTHINFO_UNAVAIL);
    }
    // A pending SIGPIPE left behind would kill this process at the next unblock.
    std::thread::sleep(Duration::from_millis(200));
    println!("HOST SURVIVED");
}

#[test]
fn kopano_socket_closed_during_a_2mb_password_does_not_kill_the_host() {
    if std::env::var_os(AS_HOST).is_none() {
        let out = rerun_test(
            "kopano_socket_closed_during_a_2mb_password_does_not_kill_the_host",
            &[(AS_HOST, "1".into())],
        );
        assert!(out.contains("HOST SURVIVED"), "{out}");
        return;
    }
    let dir = TempDir::new("sigpipe");
    let path = dir.path().join("server.sock");
    let listener = UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            close_early(conn);
        }
    });
    let svc = Service::module_line(&format!(
        "backend=kopano socket={} timeout=5",
        path.display()
    ));
    authenticate_as_host(&svc);
}

#[test]
fn tcp_server_closed_during_a_2mb_password_does_not_kill_the_host() {
    if std::env::var_os(AS_HOST).is_none() {
        let out = rerun_test(
            "tcp_server_closed_during_a_2mb_password_does_not_kill_the_host",
            &[(AS_HOST, "1".into())],
        );
        assert!(out.contains("HOST SURVIVED"), "{out}");
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            close_early(conn);
        }
    });
    let svc = Service::module_line(&format!("backend=kopano url={url} timeout=5"));
    authenticate_as_host(&svc);
}
