//! The module inside a real Apache httpd with mod_authnz_pam, with the event and the prefork
//! MPM, children running as www-data and recycled after three connections
//! (`MaxConnectionsPerChild 3`), so every few requests a child that loaded the module exits:
//! the place where a module's thread-local destructors or runtime threads crash a host.

mod support;

use support::apache::{Apache, Mpm};
use support::examples::Example;
use support::mailstore::MailStore;
use support::TempDir;

const PATH: &str = "/mailstore-integration/index.php";

/// A config file as the webmail example describes it: root:www-data, 0640, holding the
/// endpoint's own credentials.
fn www_data_config(dir: &TempDir) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = support::config_file(
        dir.path(),
        "# endpoint credentials\nhttp_user = pam@example.test\nhttp_password = Endp0int secret\n",
        0o640,
    );
    let www = unsafe { libc::getgrnam(c"www-data".as_ptr()) };
    assert!(
        !www.is_null(),
        "group www-data must exist (apache2 package)"
    );
    let gid = unsafe { (*www).gr_gid };
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::chown(c.as_ptr(), 0, gid) }, 0);
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn uid_of(pid: i32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

fn basic_auth_through(mpm: Mpm) {
    let server = MailStore::new(&[("john.doe@example.com", "Passw0rd:x"), ("jane", "ünï pass")])
        .basic("pam@example.test", "Endp0int secret")
        .serve();
    let cfg_dir = TempDir::new("webcfg");
    let cfg = www_data_config(&cfg_dir);
    let webmail = Example::load("webmail")
        .mailstore(&server.url(PATH))
        .with("/etc/security/pam_mailauth.conf", cfg.to_str().unwrap());
    let mut httpd = Apache::start(mpm, "webmail", &webmail.text);

    let page = "/private/index.html";
    // No credentials: 401 without asking PAM. This also makes sure children are up.
    assert_eq!(httpd.get(page, None), 401);
    let before = httpd.processes();
    // The children that run the module are www-data, not root.
    let www = unsafe { libc::getpwnam(c"www-data".as_ptr()) };
    assert!(!www.is_null());
    let www_uid = unsafe { (*www).pw_uid };
    assert!(
        before.iter().any(|pid| uid_of(*pid) == Some(www_uid)),
        "no www-data child"
    );
    let mut expected_requests = 0;
    for round in 0..10 {
        assert_eq!(
            httpd.get(page, Some(("john.doe@example.com", "Passw0rd:x"))),
            200,
            "round {round}\n{}",
            httpd.logs()
        );
        assert_eq!(httpd.get(page, Some(("jane", "ünï pass"))), 200);
        assert_eq!(
            httpd.get(page, Some(("john.doe@example.com", "passw0rd:x"))),
            401
        );
        assert_eq!(httpd.get(page, Some(("nobody", "Passw0rd:x"))), 401);
        expected_requests += 4;
    }
    httpd.assert_alive();

    // Every check reached the backend, from a www-data child, with the endpoint's credentials
    // read from the root:www-data 0640 file.
    let requests = server.requests();
    assert_eq!(
        requests.len(),
        expected_requests,
        "checks that reached the backend\n{}",
        httpd.logs()
    );
    assert!(requests
        .iter()
        .all(|r| r.basic_auth() == Some(("pam@example.test".into(), "Endp0int secret".into()))));

    // Children were recycled (MaxConnectionsPerChild 3) ...
    let after = httpd.processes();
    assert!(
        before.intersection(&after).count() < before.len(),
        "no child was recycled: {before:?} -> {after:?}"
    );
    // ... and, after the remaining ones exited too (graceful stop), none of them crashed.
    httpd.stop_gracefully();
    let log = httpd.error_log();
    assert!(log.contains("shutting down gracefully"), "{log}");
    for crash in [
        "Segmentation fault",
        "exit signal",
        "Aborted",
        "panicked",
        "core dumped",
    ] {
        assert!(!log.contains(crash), "{crash:?} in error.log:\n{log}");
    }
}

#[test]
fn event_mpm_basic_auth_with_recycled_children() {
    basic_auth_through(Mpm::Event);
}

#[test]
fn prefork_mpm_basic_auth_with_recycled_children() {
    basic_auth_through(Mpm::Prefork);
}
