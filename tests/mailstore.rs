//! backend=mailstore through real libpam, against a local server written from MailStore's
//! protocol document, including every failure the shared HTTP layer must absorb.

mod support;

use std::time::{Duration, Instant};
use support::http::{refused_url, Reply, Server};
use support::mailstore::{Form, MailStore};
use support::*;

fn line(server: &Server, extra: &str) -> Service {
    Service::module_line(&format!(
        "backend=mailstore url={} {extra}",
        server.url("/mailstore-integration/index.php")
    ))
}

#[test]
fn right_password_succeeds_for_auth_and_account_in_both_answer_forms() {
    for form in [Form::Strict, Form::Document] {
        let server = MailStore::new(&[("john.doe", "Passw0rd")])
            .form(form)
            .serve();
        let svc = line(&server, "");
        assert_eq!(
            svc.login("john.doe", "Passw0rd"),
            (PAM_SUCCESS, Some(PAM_SUCCESS))
        );
        let req = &server.requests()[0];
        assert_eq!(req.method, "POST");
        assert_eq!(req.form().get("cmd").map(String::as_str), Some("auth"));
    }
}

#[test]
fn wrong_password_is_auth_err_in_both_answer_forms() {
    for form in [Form::Strict, Form::Document] {
        let server = MailStore::new(&[("john.doe", "Passw0rd")])
            .form(form)
            .serve();
        assert_eq!(line(&server, "").auth("john.doe", "passw0rd"), PAM_AUTH_ERR);
        assert_eq!(line(&server, "").auth("nobody", "Passw0rd"), PAM_AUTH_ERR);
    }
}

#[test]
fn awkward_characters_arrive_intact() {
    let user = "o'brien & co=+%\"x ü@例え.jp";
    let password = "p&ss=w+rd%20 'q\" ünï©ødé 🔑";
    let server = MailStore::new(&[(user, password)]).serve();
    assert_eq!(line(&server, "").auth(user, password), PAM_SUCCESS);
    let form = server.requests()[0].form();
    assert_eq!(form.get("user").map(String::as_str), Some(user));
    assert_eq!(form.get("pass").map(String::as_str), Some(password));
    // ...and the password travelled only in the body.
    assert!(!server.requests()[0].target.contains("rd"));
}

#[test]
fn empty_password_is_refused_without_asking_the_server() {
    let server = MailStore::new(&[("john.doe", "")]).serve();
    assert_eq!(line(&server, "").auth("john.doe", ""), PAM_AUTH_ERR);
    assert_eq!(server.count(), 0);
}

#[test]
fn basic_credentials_come_from_the_config_file() {
    let server = MailStore::new(&[("john.doe", "Passw0rd")])
        .basic("mailstore@example.test", "Passw0rd!")
        .serve();
    let dir = TempDir::new("cfg");
    let good = config_file(
        dir.path(),
        "http_user = mailstore@example.test\nhttp_password = Passw0rd!\n",
        0o640,
    );
    assert_eq!(
        line(&server, &format!("config={}", good.display())).auth("john.doe", "Passw0rd"),
        PAM_SUCCESS
    );
    assert_eq!(
        server.requests()[0].basic_auth(),
        Some((
            "mailstore@example.test".to_string(),
            "Passw0rd!".to_string()
        ))
    );

    let dir = TempDir::new("cfg");
    let bad = config_file(
        dir.path(),
        "http_user = mailstore@example.test\nhttp_password = wrong\n",
        0o600,
    );
    let svc = line(&server, &format!("config={}", bad.display()));
    // The endpoint rejecting the module's own credentials says nothing about the user.
    assert_eq!(svc.auth("john.doe", "Passw0rd"), PAM_AUTHINFO_UNAVAIL);
    assert_eq!(
        line(&server, "").auth("john.doe", "Passw0rd"),
        PAM_AUTHINFO_UNAVAIL
    );
}

/// Authenticates against a misbehaving server and returns the code and how long it took.
fn against(reply: fn() -> Reply, timeout: &str) -> (i32, Duration, Server) {
    let server = Server::start(move |_| reply());
    let svc = line(&server, &format!("timeout={timeout} connect_timeout=1"));
    let started = Instant::now();
    let rc = svc.auth("john.doe", "Passw0rd");
    (rc, started.elapsed(), server)
}

#[test]
fn connection_refused_is_authinfo_unavail() {
    let svc = Service::module_line(&format!(
        "backend=mailstore url={} timeout=2",
        refused_url()
    ));
    let started = Instant::now();
    assert_eq!(svc.auth("john.doe", "Passw0rd"), PAM_AUTHINFO_UNAVAIL);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn no_answer_is_authinfo_unavail_within_the_timeout() {
    let (rc, took, server) = against(|| Reply::Hang, "1.5");
    assert_eq!(rc, PAM_AUTHINFO_UNAVAIL);
    assert!(
        took >= Duration::from_millis(1400),
        "gave up too early: {took:?}"
    );
    assert!(took < Duration::from_millis(2500), "{took:?}");
    assert_eq!(server.count(), 1);
}

#[test]
fn dripping_body_is_cut_off_at_the_timeout() {
    let (rc, took, _s) = against(
        || Reply::Drip {
            body: b"{\"succeeded\": true}".to_vec(),
            interval: Duration::from_millis(400),
        },
        "1.5",
    );
    assert_eq!(rc, PAM_AUTHINFO_UNAVAIL);
    assert!(took < Duration::from_millis(2500), "{took:?}");
}

#[test]
fn server_errors_and_garbage_are_authinfo_unavail() {
    let cases: [fn() -> Reply; 7] = [
        || Reply::status(500, "text/html", "<h1>Internal Server Error</h1>"),
        || Reply::status(503, "text/json", "{\"succeeded\": true}"),
        || Reply::status(200, "text/json", "{ succeeded: maybe }"),
        || Reply::status(200, "text/html", "<html>{\"succeeded\": true}</html>"),
        || Reply::status(200, "application/json", "{\"succeeded\": \"true\"}"),
        || Reply::status(404, "text/json", "{\"succeeded\": false}"),
        || Reply::Raw(b"\x00\x01garbage that is not HTTP\r\n\r\n".to_vec()),
    ];
    for case in cases {
        let (rc, took, _s) = against(case, "3");
        assert_eq!(rc, PAM_AUTHINFO_UNAVAIL);
        assert!(took < Duration::from_secs(3));
    }
}

#[test]
fn a_64_mib_body_is_refused_not_read() {
    // A valid yes padded to 64 MiB: only the size cap stands between it and PAM_SUCCESS.
    let (rc, took, _s) = against(
        || Reply::Padded(b"{\"succeeded\": true}".to_vec(), 64 * 1024 * 1024),
        "5",
    );
    assert_eq!(rc, PAM_AUTHINFO_UNAVAIL);
    assert!(took < Duration::from_secs(5), "{took:?}");
    // Also without a Content-Length that gives it away: a chunked answer of the same size.
    let (rc, _, _s) = against(
        || {
            let mut raw =
                b"HTTP/1.1 200 OK\r\nContent-Type: text/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                    .to_vec();
            raw.extend_from_slice(b"13\r\n{\"succeeded\": true}\r\n");
            for _ in 0..1024 {
                raw.extend_from_slice(b"10000\r\n");
                raw.extend(std::iter::repeat_n(b' ', 0x10000));
                raw.extend_from_slice(b"\r\n");
            }
            raw.extend_from_slice(b"0\r\n\r\n");
            Reply::Raw(raw)
        },
        "5",
    );
    assert_eq!(rc, PAM_AUTHINFO_UNAVAIL);
}

#[test]
fn redirects_are_not_followed() {
    let target = MailStore::new(&[("john.doe", "Passw0rd")]).serve();
    let to = target.url("/stolen");
    let redirector = Server::start(move |_| {
        Reply::status(307, "text/html", "moved").with_header("Location", &to)
    });
    assert_eq!(
        line(&redirector, "").auth("john.doe", "Passw0rd"),
        PAM_AUTHINFO_UNAVAIL
    );
    assert_eq!(redirector.count(), 1);
    assert_eq!(
        target.count(),
        0,
        "the redirect target must receive nothing"
    );
}

#[test]
fn failover_moves_on_when_a_server_is_down_but_not_after_a_definite_no() {
    let second = MailStore::new(&[("john.doe", "Passw0rd")]).serve();
    let svc = Service::module_line(&format!(
        "backend=mailstore url={} url={} timeout=2",
        refused_url(),
        second.url("/")
    ));
    assert_eq!(svc.auth("john.doe", "Passw0rd"), PAM_SUCCESS);
    assert_eq!(second.count(), 1);

    let failing = Server::start(|_| Reply::status(502, "text/html", "bad gateway"));
    let svc = Service::module_line(&format!(
        "backend=mailstore url={} url={}",
        failing.url("/"),
        second.url("/")
    ));
    assert_eq!(svc.auth("john.doe", "Passw0rd"), PAM_SUCCESS);
    assert_eq!(failing.count(), 1);

    let first = MailStore::new(&[("john.doe", "Passw0rd")]).serve();
    let third = MailStore::new(&[("john.doe", "other")]).serve();
    let svc = Service::module_line(&format!(
        "backend=mailstore url={} url={}",
        first.url("/"),
        third.url("/")
    ));
    assert_eq!(svc.auth("john.doe", "other"), PAM_AUTH_ERR);
    assert_eq!(
        third.count(),
        0,
        "a definite no must not be asked again elsewhere"
    );
}

#[test]
fn configuration_errors_are_service_err() {
    let server = MailStore::new(&[("john.doe", "Passw0rd")]).serve();
    // A secret as a module argument.
    let svc = line(&server, "http_user=a http_password=b");
    assert_eq!(svc.auth("john.doe", "Passw0rd"), PAM_SERVICE_ERR);
    // A world-readable file holding a secret.
    let dir = TempDir::new("cfg");
    let cfg = config_file(dir.path(), "http_user = a\nhttp_password = b\n", 0o644);
    assert_eq!(
        line(&server, &format!("config={}", cfg.display())).auth("john.doe", "Passw0rd"),
        PAM_SERVICE_ERR
    );
    // An unknown option, in the arguments and in the file.
    assert_eq!(
        line(&server, "colour=blue").auth("john.doe", "Passw0rd"),
        PAM_SERVICE_ERR
    );
    let dir = TempDir::new("cfg");
    let cfg = config_file(dir.path(), "colour = blue\n", 0o644);
    assert_eq!(
        line(&server, &format!("config={}", cfg.display())).auth("john.doe", "Passw0rd"),
        PAM_SERVICE_ERR
    );
    // No backend; a malformed value.
    assert_eq!(
        Service::module_line(&format!("url={}", server.url("/"))).auth("john.doe", "Passw0rd"),
        PAM_SERVICE_ERR
    );
    assert_eq!(
        line(&server, "timeout=soon").auth("john.doe", "Passw0rd"),
        PAM_SERVICE_ERR
    );
    // The account phase reports the same configuration error.
    assert_eq!(
        line(&server, "colour=blue")
            .start("john.doe", None)
            .acct_mgmt(),
        PAM_SERVICE_ERR
    );
    assert_eq!(server.count(), 0);
}

#[test]
fn sufficient_above_pam_deny() {
    let server = MailStore::new(&[("john.doe", "Passw0rd")]).serve();
    let svc = Service::new(&format!(
        "auth sufficient MODULE backend=mailstore url={}\nauth required pam_deny.so\n\
         account sufficient MODULE backend=mailstore url={}\naccount required pam_deny.so\n",
        server.url("/"),
        server.url("/")
    ));
    assert_eq!(
        svc.login("john.doe", "Passw0rd"),
        (PAM_SUCCESS, Some(PAM_SUCCESS))
    );
    assert_eq!(svc.auth("john.doe", "wrong"), PAM_AUTH_ERR);
    // Account phase without our authentication in this handle: we step aside, pam_deny decides.
    assert_eq!(svc.start("john.doe", None).acct_mgmt(), PAM_AUTH_ERR);
}

#[test]
fn setcred_and_account_know_who_was_authenticated_here() {
    let server = MailStore::new(&[("john.doe", "Passw0rd")]).serve();
    let svc = Service::new(&format!(
        "auth required MODULE backend=mailstore url={0}\naccount required MODULE backend=mailstore url={0}\n",
        server.url("/")
    ));
    let mut t = svc.start("john.doe", Some("Passw0rd"));
    assert_eq!(t.authenticate(), PAM_SUCCESS);
    assert_eq!(t.setcred(), PAM_SUCCESS);
    assert_eq!(t.acct_mgmt(), PAM_SUCCESS);
    // A fresh handle that did not authenticate: PAM_IGNORE, which a lone required line turns
    // into a failure of the stack.
    let mut t = svc.start("john.doe", None);
    assert_ne!(t.acct_mgmt(), PAM_SUCCESS);
    assert_ne!(t.setcred(), PAM_SUCCESS);
}

#[test]
fn account_check_consults_the_directory() {
    let server = MailStore::new(&[("john.doe", "Passw0rd")]).serve();
    let svc = line(&server, "account=check");
    assert_eq!(svc.start("John.Doe", None).acct_mgmt(), PAM_SUCCESS);
    assert_eq!(svc.start("nobody", None).acct_mgmt(), PAM_USER_UNKNOWN);
    assert!(server
        .requests()
        .iter()
        .all(|r| r.form().get("cmd").map(String::as_str) == Some("list")));
}

#[test]
fn use_first_pass_never_prompts_and_try_first_pass_prompts_once() {
    let server = MailStore::new(&[("john.doe", "Passw0rd")]).serve();
    let mut t = line(&server, "use_first_pass").start("john.doe", Some("Passw0rd"));
    assert_eq!(t.authenticate(), PAM_AUTH_ERR);
    assert_eq!(t.prompts(), 0);
    assert_eq!(server.count(), 0);
    let mut t = line(&server, "try_first_pass").start("john.doe", Some("Passw0rd"));
    assert_eq!(t.authenticate(), PAM_SUCCESS);
    assert_eq!(t.prompts(), 1);
}
