//! The in-process cache (`cache_ttl=`, `cache_size=`, `cache_fallback=`) and the kept-alive
//! client, through real libpam against the MailStore fake: the fake counts requests, so a
//! cache hit is a login that reached no server.

mod support;

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use support::http::{Reply, Server};
use support::mailstore::MailStore;
use support::*;

/// The tests of this file run one at a time: the fork test must not fork while another test
/// thread is inside libpam or the module.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

const NORMAL: u8 = 0;
const ERROR_500: u8 = 1;
const REFUSE_ALL: u8 = 2;

/// A MailStore fake whose behaviour can be switched while it runs.
struct Switchable {
    server: Server,
    mode: Arc<AtomicU8>,
}

impl Switchable {
    fn start(users: &[(&str, &str)]) -> Switchable {
        let store = MailStore::new(users);
        let mode = Arc::new(AtomicU8::new(NORMAL));
        let m = mode.clone();
        let server = Server::start(move |req| match m.load(Ordering::SeqCst) {
            ERROR_500 => Reply::status(500, "text/plain", "Internal Server Error"),
            REFUSE_ALL => Reply::status(200, "application/json", "{\"succeeded\": false}"),
            _ => store.answer(req),
        });
        Switchable { server, mode }
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }
}

fn line(server: &Server, extra: &str) -> Service {
    Service::module_line(&format!(
        "backend=mailstore url={} timeout=5 connect_timeout=2 {extra}",
        server.url("/mailstore-integration/index.php")
    ))
}

#[test]
fn a_success_is_answered_from_the_cache() {
    let _serial = serial();
    let server = MailStore::new(&[("john.doe", "Passw0rd")]).serve();
    let svc = line(&server, "cache_ttl=60");
    assert_eq!(
        svc.login("john.doe", "Passw0rd"),
        (PAM_SUCCESS, Some(PAM_SUCCESS))
    );
    assert_eq!(server.count(), 1);
    for _ in 0..5 {
        assert_eq!(
            svc.login("john.doe", "Passw0rd"),
            (PAM_SUCCESS, Some(PAM_SUCCESS))
        );
    }
    assert_eq!(server.count(), 1, "the repeated logins reached the server");
}

#[test]
fn without_cache_ttl_every_login_asks_the_server() {
    let _serial = serial();
    let server = MailStore::new(&[("john.doe", "Passw0rd")]).serve();
    let svc = line(&server, "");
    for _ in 0..3 {
        assert_eq!(svc.auth("john.doe", "Passw0rd"), PAM_SUCCESS);
    }
    assert_eq!(server.count(), 3);
}

#[test]
fn a_failure_is_never_cached() {
    let _serial = serial();
    let server = MailStore::new(&[("john.doe", "Passw0rd")]).serve();
    let svc = line(&server, "cache_ttl=60");
    for n in 1..=3 {
        assert_eq!(svc.auth("john.doe", "wrong"), PAM_AUTH_ERR);
        assert_eq!(server.count(), n);
    }
    assert_eq!(svc.auth("nobody", "Passw0rd"), PAM_AUTH_ERR);
    assert_eq!(svc.auth("nobody", "Passw0rd"), PAM_AUTH_ERR);
    assert_eq!(server.count(), 5);
}

#[test]
fn another_password_never_hits() {
    let _serial = serial();
    let server = MailStore::new(&[("john.doe", "Passw0rd")]).serve();
    let svc = line(&server, "cache_ttl=60");
    assert_eq!(svc.auth("john.doe", "Passw0rd"), PAM_SUCCESS);
    assert_eq!(server.count(), 1);
    // Wrong, differing only in case, a prefix, an extension: each one asks the server.
    for (n, other) in ["passw0rd", "Passw0r", "Passw0rd ", "Passw0rdX"]
        .iter()
        .enumerate()
    {
        assert_eq!(svc.auth("john.doe", other), PAM_AUTH_ERR, "{other}");
        assert_eq!(server.count(), n + 2, "{other}");
    }
    // The refusals dropped the cached check: the right password asks again, then hits.
    assert_eq!(svc.auth("john.doe", "Passw0rd"), PAM_SUCCESS);
    assert_eq!(svc.auth("john.doe", "Passw0rd"), PAM_SUCCESS);
    assert_eq!(server.count(), 6);
}

#[test]
fn a_cached_check_belongs_to_its_user_and_service() {
    let _serial = serial();
    let server = MailStore::new(&[("john.doe", "Passw0rd"), ("jane.doe", "Other")]).serve();
    let svc = line(&server, "cache_ttl=60");
    assert_eq!(svc.auth("john.doe", "Passw0rd"), PAM_SUCCESS);
    // jane's login with john's password must ask (and fail).
    assert_eq!(svc.auth("jane.doe", "Passw0rd"), PAM_AUTH_ERR);
    assert_eq!(server.count(), 2);
    // The same module line under another service name asks once for itself.
    let other = Service::module_line(&format!(
        "backend=mailstore url={} cache_ttl=60",
        server.url("/mailstore-integration/index.php")
    ));
    let mut t = Transaction::start(other.dir.path(), &other.name, "john.doe", Some("Passw0rd"));
    assert_eq!(t.authenticate(), PAM_SUCCESS);
    drop(t);
    let renamed = other.dir.path().join("imap");
    std::fs::copy(other.dir.path().join(&other.name), &renamed).unwrap();
    let mut t = Transaction::start(other.dir.path(), "imap", "john.doe", Some("Passw0rd"));
    assert_eq!(t.authenticate(), PAM_SUCCESS);
    assert_eq!(
        server.count(),
        3,
        "service mailtest hit, service imap asked"
    );
}

#[test]
fn a_cached_check_expires_after_cache_ttl() {
    let _serial = serial();
    let server = MailStore::new(&[("john.doe", "Passw0rd")]).serve();
    let svc = line(&server, "cache_ttl=1");
    assert_eq!(svc.auth("john.doe", "Passw0rd"), PAM_SUCCESS);
    assert_eq!(svc.auth("john.doe", "Passw0rd"), PAM_SUCCESS);
    assert_eq!(server.count(), 1);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(svc.auth("john.doe", "Passw0rd"), PAM_SUCCESS);
    assert_eq!(server.count(), 2, "an expired check was used");
}

#[test]
fn cache_size_bounds_the_entries_and_evicts_the_oldest() {
    let _serial = serial();
    let users = [("a", "pa"), ("b", "pb"), ("c", "pc")];
    let server = MailStore::new(&users).serve();
    let svc = line(&server, "cache_ttl=60 cache_size=2");
    for (u, p) in users {
        assert_eq!(svc.auth(u, p), PAM_SUCCESS);
    }
    assert_eq!(server.count(), 3);
    // b and c fit; a, the oldest, was evicted.
    assert_eq!(svc.auth("c", "pc"), PAM_SUCCESS);
    assert_eq!(svc.auth("b", "pb"), PAM_SUCCESS);
    assert_eq!(server.count(), 3);
    assert_eq!(svc.auth("a", "pa"), PAM_SUCCESS);
    assert_eq!(server.count(), 4, "a should have been evicted");
    // ...which evicted b, the oldest left.
    assert_eq!(svc.auth("c", "pc"), PAM_SUCCESS);
    assert_eq!(server.count(), 4);
    assert_eq!(svc.auth("b", "pb"), PAM_SUCCESS);
    assert_eq!(server.count(), 5, "b should have been evicted");
}

#[test]
fn without_cache_fallback_an_outage_is_authinfo_unavail() {
    let _serial = serial();
    let s = Switchable::start(&[("john.doe", "Passw0rd")]);
    // cache_ttl=1: checks are cached, but not for use during an outage.
    let svc = line(&s.server, "cache_ttl=1");
    assert_eq!(svc.auth("john.doe", "Passw0rd"), PAM_SUCCESS);
    std::thread::sleep(Duration::from_millis(1100));
    s.set(ERROR_500);
    assert_eq!(svc.auth("john.doe", "Passw0rd"), PAM_AUTHINFO_UNAVAIL);
    assert_eq!(s.server.count(), 2);
}

#[test]
fn cache_fallback_answers_a_verified_password_while_the_backend_fails() {
    let _serial = serial();
    let s = Switchable::start(&[("john.doe", "Passw0rd")]);
    // cache_ttl=0: no ordinary hits, so every login below reaches the server.
    let svc = line(&s.server, "cache_ttl=0 cache_fallback=60");
    assert_eq!(svc.auth("john.doe", "Passw0rd"), PAM_SUCCESS);
    assert_eq!(svc.auth("john.doe", "Passw0rd"), PAM_SUCCESS);
    assert_eq!(
        s.server.count(),
        2,
        "cache_fallback alone must not make hits"
    );

    s.set(ERROR_500);
    assert_eq!(
        svc.login("john.doe", "Passw0rd"),
        (PAM_SUCCESS, Some(PAM_SUCCESS))
    );
    assert_eq!(s.server.count(), 3, "the backend was asked first");
    // Not for another password, and not for a user never verified.
    assert_eq!(svc.auth("john.doe", "passw0rd"), PAM_AUTHINFO_UNAVAIL);
    assert_eq!(svc.auth("jane.doe", "Passw0rd"), PAM_AUTHINFO_UNAVAIL);

    // A definite "no" from the backend is never overruled by the cache...
    s.set(REFUSE_ALL);
    assert_eq!(svc.auth("john.doe", "Passw0rd"), PAM_AUTH_ERR);
    // ...and it forgets the old check, so the next outage does not resurrect it.
    s.set(ERROR_500);
    assert_eq!(svc.auth("john.doe", "Passw0rd"), PAM_AUTHINFO_UNAVAIL);
}

#[test]
fn cache_fallback_covers_an_unreachable_server() {
    let _serial = serial();
    let server = MailStore::new(&[("john.doe", "Passw0rd")]).serve();
    let url = server.url("/mailstore-integration/index.php");
    let args = format!("backend=mailstore url={url} timeout=5 connect_timeout=2");
    let with = Service::module_line(&format!("{args} cache_fallback=60"));
    let without = Service::module_line(&format!("{args} cache_ttl=1"));
    assert_eq!(with.auth("john.doe", "Passw0rd"), PAM_SUCCESS);
    drop(server);
    // Let the listener close: connections are then refused.
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(url.trim_start_matches("http://").split('/').next().unwrap())
        .is_ok()
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(1100));
    // Same store, same check 1.1 s old: past cache_ttl=1, within cache_fallback=60.
    assert_eq!(without.auth("john.doe", "Passw0rd"), PAM_AUTHINFO_UNAVAIL);
    assert_eq!(with.auth("john.doe", "Passw0rd"), PAM_SUCCESS);
    assert_eq!(with.auth("john.doe", "other"), PAM_AUTHINFO_UNAVAIL);
}

#[test]
fn cache_fallback_does_not_cover_a_configuration_error() {
    let _serial = serial();
    let server = MailStore::new(&[("john.doe", "Passw0rd")]).serve();
    let svc = line(&server, "cache_fallback=60");
    assert_eq!(svc.auth("john.doe", "Passw0rd"), PAM_SUCCESS);
    // The same line with a broken option: configuration errors stay errors.
    let broken = line(&server, "cache_fallback=60 timeout=abc");
    assert_eq!(broken.auth("john.doe", "Passw0rd"), PAM_SERVICE_ERR);
}

#[test]
fn cache_options_are_validated() {
    let _serial = serial();
    let server = MailStore::new(&[("john.doe", "Passw0rd")]).serve();
    for bad in [
        "cache_ttl=-1",
        "cache_ttl=abc",
        "cache_ttl=86401",
        "cache_size=0",
        "cache_fallback=x",
    ] {
        assert_eq!(
            line(&server, bad).auth("john.doe", "Passw0rd"),
            PAM_SERVICE_ERR,
            "{bad}"
        );
    }
    assert_eq!(server.count(), 0);
}

/// A host that forks after the module built its HTTP client (a pre-forking server that
/// authenticated in the parent) must get a working client in the child, not a hang on the
/// parent's runtime thread, which does not exist there.
#[test]
fn a_forked_child_rebuilds_its_client() {
    let _serial = serial();
    let server = MailStore::new(&[("john.doe", "Passw0rd")]).serve();
    let svc = line(&server, "");
    assert_eq!(svc.auth("john.doe", "Passw0rd"), PAM_SUCCESS);
    assert_eq!(server.count(), 1);
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // The child: one login through libpam, its code as the exit status; never unwind.
        let rc = std::panic::catch_unwind(|| svc.auth("john.doe", "Passw0rd")).unwrap_or(100);
        unsafe { libc::_exit(rc) };
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut status = 0;
    loop {
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            break;
        }
        if Instant::now() > deadline {
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            panic!("the forked child hung in pam_authenticate");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(libc::WIFEXITED(status), "child died: status {status:#x}");
    assert_eq!(libc::WEXITSTATUS(status), PAM_SUCCESS, "child's PAM code");
    assert_eq!(server.count(), 2, "the child's login reached the server");
    // The parent's pooled client still works.
    assert_eq!(svc.auth("john.doe", "Passw0rd"), PAM_SUCCESS);
    assert_eq!(server.count(), 3);
}

/// The config file's text is reused while the file is unchanged; every change (content,
/// mode, owner, a symlink in its place) is seen on the next login, and the file checks hold.
#[test]
fn an_unchanged_config_file_is_reused_and_every_change_is_seen() {
    use std::os::unix::fs::PermissionsExt;
    let _serial = serial();
    let a = MailStore::new(&[("john.doe", "Passw0rd")]).serve();
    let b = MailStore::new(&[("john.doe", "Passw0rd")]).serve();
    let (url_a, url_b) = (
        a.url("/mailstore-integration/index.php"),
        b.url("/mailstore-integration/index.php"),
    );
    assert_eq!(
        url_a.len(),
        url_b.len(),
        "same-size files are the hard case"
    );
    let dir = TempDir::new("cfgcache");
    let conf = config_file(
        dir.path(),
        &format!("backend = mailstore\nurl = {url_a}\n"),
        0o600,
    );
    let svc = Service::module_line(&format!("config={} timeout=5", conf.display()));
    // Old enough to be remembered (a file changed in the last seconds never is).
    std::thread::sleep(Duration::from_millis(3200));
    assert_eq!(svc.auth("john.doe", "Passw0rd"), PAM_SUCCESS);
    assert_eq!(svc.auth("john.doe", "Passw0rd"), PAM_SUCCESS);
    assert_eq!((a.count(), b.count()), (2, 0));

    // Rewritten in place, same size: the next login goes to b.
    std::fs::write(&conf, format!("backend = mailstore\nurl = {url_b}\n")).unwrap();
    assert_eq!(svc.auth("john.doe", "Passw0rd"), PAM_SUCCESS);
    assert_eq!((a.count(), b.count()), (2, 1));

    // Made group-writable: refused, although its text was read before.
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o620)).unwrap();
    assert_eq!(svc.auth("john.doe", "Passw0rd"), PAM_SERVICE_ERR);
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(svc.auth("john.doe", "Passw0rd"), PAM_SUCCESS);

    // Owned by someone else: refused.
    unsafe {
        let c = std::ffi::CString::new(conf.to_str().unwrap()).unwrap();
        assert_eq!(libc::chown(c.as_ptr(), 65534, 65534), 0);
    }
    assert_eq!(svc.auth("john.doe", "Passw0rd"), PAM_SERVICE_ERR);

    // Replaced by a symlink to a good file: refused.
    let real = dir.path().join("real.conf");
    std::fs::write(&real, format!("backend = mailstore\nurl = {url_a}\n")).unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::remove_file(&conf).unwrap();
    std::os::unix::fs::symlink(&real, &conf).unwrap();
    assert_eq!(svc.auth("john.doe", "Passw0rd"), PAM_SERVICE_ERR);
    assert_eq!((a.count(), b.count()), (2, 2));
}
