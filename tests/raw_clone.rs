//! A child made without fork()'s atfork handlers (a raw clone() system call, glibc's _Fork)
//! still never uses its parent's kept-alive connection: with TLS, two processes writing on one
//! session could each read the answer meant for the other. Its own test binary: the child is
//! made from this process, which should run nothing else meanwhile.

mod support;

use std::time::{Duration, Instant};
use support::mailstore::MailStore;
use support::*;

#[test]
fn a_child_made_by_a_raw_clone_opens_its_own_connection() {
    let server = MailStore::new(&[("john.doe", "Passw0rd")]).serve();
    let url = server.url("/mailstore-integration/index.php");
    let svc = Service::module_line(&format!("backend=mailstore url={url} timeout=5"));
    assert_eq!(svc.auth("john.doe", "Passw0rd"), PAM_SUCCESS);
    assert_eq!(svc.auth("john.doe", "Passw0rd"), PAM_SUCCESS);
    assert_eq!(server.connections(), 1, "the parent keeps its connection");

    // SAFETY: clone(SIGCHLD) without CLONE_VM is a fork that skips pthread_atfork handlers;
    // the child runs one PAM transaction and leaves with _exit.
    let child =
        unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_long, 0, 0, 0, 0) };
    assert!(child >= 0, "clone failed");
    if child == 0 {
        let code = svc.auth("john.doe", "Passw0rd");
        unsafe { libc::_exit(if code == PAM_SUCCESS { 0 } else { 1 }) };
    }
    let child = child as libc::pid_t;
    let until = Instant::now() + Duration::from_secs(20);
    let mut status = 0;
    loop {
        let done = unsafe { libc::waitpid(child, &mut status, libc::WNOHANG) };
        if done == child {
            break;
        }
        if Instant::now() > until {
            unsafe { libc::kill(child, libc::SIGKILL) };
            panic!("the cloned child did not finish its login");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the child's login failed ({status})"
    );
    assert_eq!(
        server.connections(),
        2,
        "the child used its parent's connection instead of opening its own"
    );
    // The parent's connection still serves the parent.
    assert_eq!(svc.auth("john.doe", "Passw0rd"), PAM_SUCCESS);
    assert_eq!(server.connections(), 2);
}
