//! backend=james and backend=scim through real libpam, against servers written from their
//! documents (seeds 001 and 002).

mod support;

use support::http::Reply;
use support::*;

fn james_line(url: &str, token: &str) -> (Service, TempDir) {
    let dir = TempDir::new("cfg");
    let cfg = config_file(dir.path(), &format!("token = {token}\n"), 0o600);
    (
        Service::module_line(&format!("backend=james url={url} config={}", cfg.display())),
        dir,
    )
}

#[test]
fn james_verifies_passwords_and_accounts() {
    let server = james::serve(&[("alice+tag@example.test", "p&ss= %+w")]);
    let (svc, _d) = james_line(&server.url("/"), james::ADMIN_JWT);
    assert_eq!(
        svc.login("alice+tag@example.test", "p&ss= %+w"),
        (PAM_SUCCESS, Some(PAM_SUCCESS))
    );
    assert_eq!(svc.auth("alice+tag@example.test", "wrong"), PAM_AUTH_ERR);
    assert_eq!(svc.auth("nobody@example.test", "p&ss= %+w"), PAM_AUTH_ERR);
    assert_eq!(
        svc.start("nobody@example.test", None).acct_mgmt(),
        PAM_USER_UNKNOWN
    );
    let first = &server.requests()[0];
    assert_eq!(first.method, "POST");
    assert_eq!(first.path(), "/users/alice%2Btag%40example%2Etest/verify");
    assert!(
        !first.target.contains("ss"),
        "the password travels only in the body"
    );
}

#[test]
fn james_with_a_wrong_token_is_unavailable_not_a_wrong_password() {
    let server = james::serve(&[("alice@example.test", "pw")]);
    let (svc, _d) = james_line(&server.url("/"), "not-the-jwt");
    assert_eq!(
        svc.start("alice@example.test", None).acct_mgmt(),
        PAM_AUTHINFO_UNAVAIL
    );
    // The verify call's 401 is told apart from a wrong password by one HEAD with the token.
    assert_eq!(svc.auth("alice@example.test", "pw"), PAM_AUTHINFO_UNAVAIL);
}

#[test]
fn james_a_404_from_a_base_that_is_not_webadmin_is_unavailable_not_unknown() {
    // A wrong url= answers 404 for every user: taken as "unknown", `account
    // [user_unknown=ignore]` would wave everyone through. Webadmin sits at the root here; the
    // admin wrote .../webadmin.
    let server = james::serve(&[("alice@example.test", "pw")]);
    let (svc, _d) = james_line(&server.url("/webadmin"), james::ADMIN_JWT);
    for user in [
        "alice@example.test",
        "ghost@example.test",
        "two@@example.test",
    ] {
        assert_eq!(
            svc.start(user, None).acct_mgmt(),
            PAM_AUTHINFO_UNAVAIL,
            "{user}"
        );
    }
    // Another web server altogether (404 for everything).
    let other = support::http::Server::start(|_| Reply::status(404, "text/html", "Not Found"));
    let (svc, _d) = james_line(&other.url("/"), james::ADMIN_JWT);
    assert_eq!(
        svc.start("ghost@example.test", None).acct_mgmt(),
        PAM_AUTHINFO_UNAVAIL
    );
    // On the right base a 404 is an unknown user, and the base is confirmed once.
    let (svc, _d) = james_line(&server.url("/"), james::ADMIN_JWT);
    for _ in 0..3 {
        assert_eq!(
            svc.start("ghost@example.test", None).acct_mgmt(),
            PAM_USER_UNKNOWN
        );
    }
    let probes = server
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path() == "/domains")
        .count();
    assert_eq!(probes, 1);
}

#[test]
fn james_token_is_a_secret() {
    let svc = Service::module_line("backend=james url=http://127.0.0.1:9/ token=abc");
    assert_eq!(svc.auth("a", "b"), PAM_SERVICE_ERR);
}

#[test]
fn james_a_name_james_rejects_is_a_refusal_not_an_outage() {
    // James answers 400 for names that are not valid James user names; users type them.
    let server = james::serve(&[("alice@example.test", "pw")]);
    let (svc, _d) = james_line(&server.url("/"), james::ADMIN_JWT);
    let long = format!("{}@example.test", "a".repeat(300));
    for name in [
        "a@b@example.test",
        "@example.test",
        long.as_str(),
        "alice@bad..example",
        "alice@",
        " ",
    ] {
        assert!(!james::valid_username(name), "{name}");
        assert_eq!(svc.auth(name, "pw"), PAM_AUTH_ERR, "{name:?}");
        assert_eq!(
            svc.start(name, None).acct_mgmt(),
            PAM_USER_UNKNOWN,
            "{name:?}"
        );
    }
    assert!(server.requests().iter().any(|r| r.method == "POST"));
}

#[test]
fn james_without_webadmin_authentication_needs_no_token() {
    let server = james::serve_with(james::Auth::None, &[("alice@example.test", "pw")]);
    let svc = Service::module_line(&format!("backend=james url={}", server.url("/")));
    assert_eq!(
        svc.login("alice@example.test", "pw"),
        (PAM_SUCCESS, Some(PAM_SUCCESS))
    );
    assert_eq!(svc.auth("alice@example.test", "wrong"), PAM_AUTH_ERR);
    assert_eq!(
        svc.start("nobody@example.test", None).acct_mgmt(),
        PAM_USER_UNKNOWN
    );
    assert!(server
        .requests()
        .iter()
        .all(|r| r.header("authorization").is_none()));
    // The same line against a webadmin that wants a JWT: unavailable, never a refusal.
    let jwt = james::serve(&[("alice@example.test", "pw")]);
    let svc = Service::module_line(&format!("backend=james url={}", jwt.url("/")));
    assert_eq!(svc.auth("alice@example.test", "pw"), PAM_AUTHINFO_UNAVAIL);
    assert_eq!(
        svc.start("alice@example.test", None).acct_mgmt(),
        PAM_AUTHINFO_UNAVAIL
    );
}

#[test]
fn james_with_a_static_webadmin_password_as_token() {
    let server = james::serve_with(james::Auth::Password, &[("alice@example.test", "pw")]);
    let (svc, _d) = james_line(&server.url("/"), james::PASSWORD);
    assert_eq!(
        svc.login("alice@example.test", "pw"),
        (PAM_SUCCESS, Some(PAM_SUCCESS))
    );
    assert_eq!(svc.auth("alice@example.test", "wrong"), PAM_AUTH_ERR);
    // A read-only password may HEAD but not POST: the verify call is refused with 403, which
    // is the module's own credential problem, not the user's.
    let (svc, _d) = james_line(&server.url("/"), james::READ_ONLY_PASSWORD);
    assert_eq!(svc.auth("alice@example.test", "pw"), PAM_AUTHINFO_UNAVAIL);
    assert_eq!(
        svc.start("alice@example.test", None).acct_mgmt(),
        PAM_SUCCESS
    );
    let (svc, _d) = james_line(&server.url("/"), "not-the-password");
    assert_eq!(svc.auth("alice@example.test", "pw"), PAM_AUTHINFO_UNAVAIL);
}

fn scim_line(url: &str, secrets: &str) -> (Service, TempDir) {
    let dir = TempDir::new("cfg");
    let cfg = config_file(dir.path(), secrets, 0o600);
    let svc = Service::new(&format!(
        "auth required pam_permit.so\naccount required MODULE backend=scim url={url} config={}\n",
        cfg.display()
    ));
    (svc, dir)
}

#[test]
fn scim_answers_the_account_phase() {
    let server = scim::serve(&[("active@example.test", true), ("off@example.test", false)]);
    for secrets in [
        format!("token = {}\n", scim::JWT),
        "http_user = admin@example.test\nhttp_password = s3cret\n".into(),
    ] {
        let (svc, _d) = scim_line(&server.url("/scim"), &secrets);
        assert_eq!(
            svc.login("active@example.test", "x"),
            (PAM_SUCCESS, Some(PAM_SUCCESS))
        );
        assert_eq!(
            svc.login("off@example.test", "x"),
            (PAM_SUCCESS, Some(PAM_PERM_DENIED))
        );
        assert_eq!(
            svc.login("ghost@example.test", "x"),
            (PAM_SUCCESS, Some(PAM_USER_UNKNOWN))
        );
    }
    let (svc, _d) = scim_line(&server.url("/scim"), "token = wrong\n");
    assert_eq!(
        svc.login("active@example.test", "x"),
        (PAM_SUCCESS, Some(PAM_AUTHINFO_UNAVAIL))
    );
}

#[test]
fn scim_garbage_is_unavailable_and_auth_lines_are_a_configuration_error() {
    let server = support::http::Server::start(|_| {
        Reply::status(200, "application/scim+json", "{\"active\": \"yes\"}")
    });
    let (svc, _d) = scim_line(&server.url("/scim"), &format!("token = {}\n", scim::JWT));
    assert_eq!(
        svc.login("a@example.test", "x"),
        (PAM_SUCCESS, Some(PAM_AUTHINFO_UNAVAIL))
    );
    let dir = TempDir::new("cfg");
    let cfg = config_file(dir.path(), &format!("token = {}\n", scim::JWT), 0o600);
    let svc = Service::module_line(&format!(
        "backend=scim url={} config={}",
        server.url("/scim"),
        cfg.display()
    ));
    // Refused as a configuration error before anyone is asked for a password.
    let mut t = svc.start("a@example.test", Some(""));
    assert_eq!(t.authenticate(), PAM_SERVICE_ERR);
    assert_eq!(t.prompts(), 0);
}

// --- SCIM: a 404 means "unknown mailbox" only from a base confirmed to be the SCIM API ---

fn scim_basic() -> String {
    format!(
        "http_user = {}\nhttp_password = {}\n",
        scim::ADMIN,
        scim::ADMIN_PASSWORD
    )
}

fn scim_account(url: &str, secrets: &str, user: &str) -> i32 {
    let (svc, _d) = scim_line(url, secrets);
    svc.start(user, None).acct_mgmt()
}

#[test]
fn scim_a_wrong_base_url_is_authinfo_unavail_naming_the_url_to_fix() {
    // The API sits at the root; the admin wrote .../scim. The real API answers every path
    // outside its routes 404 with a JSON error body, before looking at credentials.
    let server = scim::ScimApi::at("")
        .mailbox("active@example.test", true)
        .serve();
    let wrong = server.url("/scim");
    let capture = support::syslog::Capture::start();
    for user in ["ghost@example.test", "active@example.test"] {
        for secrets in [scim_basic(), format!("token = {}\n", scim::JWT)] {
            assert_eq!(
                scim_account(&wrong, &secrets, user),
                PAM_AUTHINFO_UNAVAIL,
                "{user}"
            );
        }
    }
    let lines = capture.module_lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&wrong) && l.contains("url=")),
        "{lines:?}"
    );
    // The right base still works, and a 404 from it is an unknown mailbox.
    let right = server.url("");
    assert_eq!(
        scim_account(&right, &scim_basic(), "active@example.test"),
        PAM_SUCCESS
    );
    assert_eq!(
        scim_account(&right, &scim_basic(), "ghost@example.test"),
        PAM_USER_UNKNOWN
    );
}

#[test]
fn scim_a_404_from_a_base_that_is_not_scim_is_authinfo_unavail() {
    // Any web server answers 404 for paths it does not know, often with an empty body.
    for body in ["", "<h1>Not Found</h1>"] {
        let server = support::http::Server::start(move |_| Reply::status(404, "text/html", body));
        assert_eq!(
            scim_account(&server.url("/scim"), &scim_basic(), "ghost@example.test"),
            PAM_AUTHINFO_UNAVAIL,
            "{body:?}"
        );
        // Never the ServiceProviderConfig endpoint (it answers 500 on PHP 8.2).
        assert!(server
            .requests()
            .iter()
            .all(|r| !r.path().contains("ServiceProviderConfig")));
    }
}

#[test]
fn scim_the_base_is_confirmed_once_and_serviceproviderconfig_never_asked() {
    let server = scim::ScimApi::at("/api")
        .mailbox("a@example.test", true)
        .serve();
    let url = server.url("/api");
    for _ in 0..3 {
        assert_eq!(
            scim_account(&url, &scim_basic(), "ghost@example.test"),
            PAM_USER_UNKNOWN
        );
    }
    let requests = server.requests();
    let probes = requests
        .iter()
        .filter(|r| r.path() == "/api/ResourceTypes" || r.path() == "/api/Schemas")
        .count();
    assert_eq!(
        probes,
        1,
        "{:?}",
        requests
            .iter()
            .map(|r| r.path().to_string())
            .collect::<Vec<_>>()
    );
    assert!(requests
        .iter()
        .all(|r| !r.path().contains("ServiceProviderConfig")));
}

#[test]
fn scim_a_body_giving_active_twice_is_unavailable() {
    // serde_json keeps the last of `"active":false,"active":true`: that read "active".
    let server = scim::ScimApi::at("/scim")
        .duplicate_active("twice@example.test")
        .mailbox("a@example.test", true)
        .serve();
    let url = server.url("/scim");
    assert_eq!(
        scim_account(&url, &scim_basic(), "twice@example.test"),
        PAM_AUTHINFO_UNAVAIL
    );
    assert_eq!(
        scim_account(&url, &scim_basic(), "a@example.test"),
        PAM_SUCCESS
    );
}

#[test]
fn scim_database_faults_fail_closed() {
    // Database down: the real API answers 401, as for wrong credentials.
    let server = scim::ScimApi::at("")
        .mailbox("a@example.test", true)
        .db(scim::Db::Down)
        .serve();
    assert_eq!(
        scim_account(&server.url(""), &scim_basic(), "a@example.test"),
        PAM_AUTHINFO_UNAVAIL
    );
    // A failed query ends as 404 with an empty body, exactly like an unknown mailbox (and a
    // forward-only mailbox): the module cannot tell them apart, and never turns them into a
    // yes. PAM_USER_UNKNOWN denies in the account phase (docs: no user_unknown=ignore).
    let server = scim::ScimApi::at("")
        .mailbox("a@example.test", true)
        .db(scim::Db::QueryFails)
        .serve();
    assert_eq!(
        scim_account(&server.url(""), &scim_basic(), "a@example.test"),
        PAM_USER_UNKNOWN
    );
    let server = scim::ScimApi::at("")
        .forward_only("fwd@example.test")
        .serve();
    assert_eq!(
        scim_account(&server.url(""), &scim_basic(), "fwd@example.test"),
        PAM_USER_UNKNOWN
    );
    // A token with only `sub` (the API reads the claim `user`) is refused: unavailable.
    let server = scim::ScimApi::at("")
        .mailbox("a@example.test", true)
        .serve();
    assert_eq!(
        scim_account(
            &server.url(""),
            &format!("token = {}\n", scim::SUB_ONLY_JWT),
            "a@example.test"
        ),
        PAM_AUTHINFO_UNAVAIL
    );
}

#[test]
fn scim_bodies_are_never_logged() {
    // meta.location echoes the Basic credentials; nothing of a body reaches the log.
    let server = scim::ScimApi::at("")
        .mailbox("a@example.test", true)
        .mailbox("off@example.test", false)
        .serve();
    let capture = support::syslog::Capture::start();
    for (url, user) in [
        (server.url(""), "a@example.test"),
        (server.url(""), "off@example.test"),
        (server.url(""), "ghost@example.test"),
        (server.url("/wrong"), "a@example.test"),
    ] {
        let dir = TempDir::new("cfg");
        let cfg = config_file(dir.path(), &scim_basic(), 0o600);
        let svc = Service::new(&format!(
            "auth required pam_permit.so\naccount required MODULE backend=scim url={url} debug config={}\n",
            cfg.display()
        ));
        let _ = svc.start(user, None).acct_mgmt();
    }
    let lines = capture.module_lines();
    assert!(!lines.is_empty());
    for line in lines {
        assert!(!line.contains(scim::ADMIN_PASSWORD), "{line}");
        assert!(
            !line.contains("meta") && !line.contains("RESOURCE_NOT_FOUND"),
            "{line}"
        );
    }
}

/// The confirmation belongs to the process that made it: a forked child (saslauthd, Apache
/// prefork) confirms for itself, without hanging on anything the parent held, and the
/// parent keeps its own.
#[test]
fn scim_a_forked_child_confirms_the_base_for_itself() {
    use std::time::{Duration, Instant};
    // fork() copies only this thread: a lock another test thread held at that moment (glibc's
    // syslog lock, a capture's socket) would stay held in the child for ever. Run alone.
    const ALONE: &str = "PAM_MAILAUTH_TEST_FORK_ALONE";
    if std::env::var_os(ALONE).is_none() {
        support::process::rerun_test(
            "scim_a_forked_child_confirms_the_base_for_itself",
            &[(ALONE, "1".into())],
        );
        return;
    }
    let server = scim::ScimApi::at("")
        .mailbox("a@example.test", true)
        .serve();
    let (svc, _d) = scim_line(&server.url(""), &scim_basic());
    let probes = || {
        server
            .requests()
            .iter()
            .filter(|r| r.path() == "/ResourceTypes")
            .count()
    };
    assert_eq!(
        svc.start("ghost@example.test", None).acct_mgmt(),
        PAM_USER_UNKNOWN
    );
    assert_eq!(probes(), 1);
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // The child inherits glibc's syslog connection, which may point at a capture socket
        // of another test that this copy of the process keeps alive but nobody reads any
        // more: sending there would block once its queue is full. Reconnect on first use.
        unsafe { libc::closelog() };
        let rc = std::panic::catch_unwind(|| svc.start("ghost@example.test", None).acct_mgmt())
            .unwrap_or(100);
        unsafe { libc::_exit(rc) };
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut status = 0;
    loop {
        if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid {
            break;
        }
        if Instant::now() > deadline {
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            panic!("the forked child hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(libc::WIFEXITED(status), "child died: status {status:#x}");
    assert_eq!(libc::WEXITSTATUS(status), PAM_USER_UNKNOWN);
    assert_eq!(probes(), 2, "the child confirmed the base itself");
    assert_eq!(
        svc.start("ghost@example.test", None).acct_mgmt(),
        PAM_USER_UNKNOWN
    );
    assert_eq!(probes(), 2, "the parent's confirmation still holds");
}

/// A James 400 decides (a refusal) even when its body is cut short: the status was read, and
/// the password must not go on to the next server (a second guess, counted twice by a shared
/// lockout).
#[test]
fn james_a_refusal_whose_body_breaks_off_is_still_a_refusal() {
    use support::http::Server;
    let first = Server::start(|_| {
        Reply::Raw(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 100\r\n\r\nshort".to_vec())
    });
    let second = Server::start(|_| Reply::status(204, "text/plain", ""));
    let svc = Service::module_line(&format!(
        "backend=james url={} url={}",
        first.url("/"),
        second.url("/")
    ));
    assert_eq!(svc.auth("alice@example.test", "pw"), PAM_AUTH_ERR);
    assert_eq!(first.count(), 1);
    assert_eq!(second.count(), 0, "the password went on to the next server");
}
