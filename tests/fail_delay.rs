//! `fail_delay=MS` asks libpam (pam_fail_delay, as pam_unix does) to delay a failed
//! authentication, and never a successful one. libpam randomises the delay to between 50% and
//! 150% of the largest value any module asked for (Linux-PAM `_pam_compute_delay`).

mod support;

use std::cell::RefCell;
use std::ffi::{c_int, c_uint, c_void};
use std::time::{Duration, Instant};
use support::mailstore::MailStore;
use support::*;

const USER: &str = "john.doe";
const PASSWORD: &str = "Passw0rd";
const PAM_FAIL_DELAY: c_int = 10;

#[link(name = "pam")]
extern "C" {
    fn pam_set_item(pamh: *mut c_void, item: c_int, value: *const c_void) -> c_int;
}

thread_local! {
    /// (status, microseconds) for each call libpam made to the application's delay function.
    static DELAYS: RefCell<Vec<(i32, u32)>> = const { RefCell::new(Vec::new()) };
}

extern "C" fn record_delay(status: c_int, usec: c_uint, _appdata: *mut c_void) {
    DELAYS.with(|d| d.borrow_mut().push((status, usec)));
}

/// Runs pam_authenticate with an application delay function (PAM_FAIL_DELAY item), which
/// libpam calls instead of sleeping: returns the code and what libpam passed to it.
fn authenticate_recording(svc: &Service, password: &str) -> (i32, Vec<(i32, u32)>) {
    DELAYS.with(|d| d.borrow_mut().clear());
    let mut t = svc.start(USER, Some(password));
    let f: extern "C" fn(c_int, c_uint, *mut c_void) = record_delay;
    assert_eq!(
        unsafe { pam_set_item(t.handle(), PAM_FAIL_DELAY, f as *const c_void) },
        PAM_SUCCESS
    );
    let rc = t.authenticate();
    (rc, DELAYS.with(|d| d.borrow().clone()))
}

fn in_libpam_range(usec: u32, base_ms: u32) -> bool {
    let base = base_ms as u64 * 1000;
    (base / 2..=base * 3 / 2).contains(&(usec as u64))
}

#[test]
fn libpam_is_asked_for_the_configured_delay_and_sleeps_only_on_failure() {
    let server = MailStore::new(&[(USER, PASSWORD)]).serve();
    let svc = Service::module_line(&format!(
        "backend=mailstore url={} fail_delay=1500",
        server.url("/")
    ));
    let (rc, calls) = authenticate_recording(&svc, "wrong");
    assert_eq!(rc, PAM_AUTH_ERR);
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].0, PAM_AUTH_ERR);
    assert!(in_libpam_range(calls[0].1, 1500), "{calls:?}");

    // A success is reported to the delay function as a success: nothing to wait for.
    let (rc, calls) = authenticate_recording(&svc, PASSWORD);
    assert_eq!(rc, PAM_SUCCESS);
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].0, PAM_SUCCESS);

    // Without fail_delay= the module asks for no delay at all.
    let plain = Service::module_line(&format!("backend=mailstore url={}", server.url("/")));
    let (rc, calls) = authenticate_recording(&plain, "wrong");
    assert_eq!(rc, PAM_AUTH_ERR);
    assert_eq!(calls, vec![(PAM_AUTH_ERR, 0)]);
}

#[test]
fn the_delay_also_applies_when_the_backend_is_down_and_when_set_in_the_config_file() {
    let dir = TempDir::new("delay");
    let cfg = config_file(dir.path(), "fail_delay = 800\n", 0o600);
    let svc = Service::module_line(&format!(
        "backend=mailstore url={} config={} timeout=2",
        support::http::refused_url(),
        cfg.display()
    ));
    let (rc, calls) = authenticate_recording(&svc, PASSWORD);
    assert_eq!(rc, PAM_AUTHINFO_UNAVAIL);
    assert_eq!(calls.len(), 1);
    assert!(in_libpam_range(calls[0].1, 800), "{calls:?}");
}

#[test]
fn our_success_in_a_failing_stack_still_delays_like_pam_unix() {
    // libpam delays when the whole stack fails, whichever module failed it.
    let server = MailStore::new(&[(USER, PASSWORD)]).serve();
    let svc = Service::new(&format!(
        "auth required MODULE backend=mailstore url={} fail_delay=1000\nauth required pam_deny.so\n",
        server.url("/")
    ));
    let (rc, calls) = authenticate_recording(&svc, PASSWORD);
    assert_eq!(rc, PAM_AUTH_ERR);
    assert!(in_libpam_range(calls[0].1, 1000), "{calls:?}");
}

#[test]
fn with_libpams_own_handler_a_wrong_password_waits_and_a_right_one_does_not() {
    // No delay function: libpam itself sleeps. Bounds on behaviour, not speed claims: a
    // failure cannot return before libpam's lower bound (50% of 2000 ms), and a success never
    // waits that long (it is not delayed at all).
    let server = MailStore::new(&[(USER, PASSWORD)]).serve();
    let svc = Service::module_line(&format!(
        "backend=mailstore url={} fail_delay=2000",
        server.url("/")
    ));
    let started = Instant::now();
    assert_eq!(svc.auth(USER, "wrong"), PAM_AUTH_ERR);
    let failed = started.elapsed();
    assert!(failed >= Duration::from_millis(1000), "{failed:?}");
    assert!(failed < Duration::from_millis(3000 + 2000), "{failed:?}");

    let started = Instant::now();
    assert_eq!(svc.auth(USER, PASSWORD), PAM_SUCCESS);
    let succeeded = started.elapsed();
    assert!(succeeded < Duration::from_millis(1000), "{succeeded:?}");
}
