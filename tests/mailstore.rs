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

#[test]
fn duplicate_keys_are_not_an_answer() {
    // The last key would say yes: an answer with two readings is no answer at all.
    let cases: [fn() -> Reply; 4] = [
        || Reply::status(200, "text/json", "{\"succeeded\":false,\"succeeded\":true}"),
        || Reply::status(200, "text/json", "{ succeeded: false, succeeded: true }"),
        || {
            Reply::status(
                200,
                "text/json",
                "{ succeeded: false, \"succeeded\": true }",
            )
        },
        || Reply::status(200, "text/json", "{\"succeeded\":true,\"succeeded\":true}"),
    ];
    for (i, case) in cases.into_iter().enumerate() {
        let (rc, _, server) = against(case, "3");
        assert_eq!(rc, PAM_AUTHINFO_UNAVAIL, "case {i}");
        assert_eq!(server.count(), 1, "case {i}");
    }
    // A directory entry naming two users is no directory either.
    let server = Server::start(|req| match req.form().get("cmd").map(String::as_str) {
        Some("list") => Reply::status(
            200,
            "text/json",
            r#"[{"userName":"nobody","userName":"john.doe"}]"#,
        ),
        _ => Reply::status(200, "text/json", "{\"succeeded\": false}"),
    });
    let svc = line(&server, "account=check");
    assert_eq!(
        svc.start("john.doe", None).acct_mgmt(),
        PAM_AUTHINFO_UNAVAIL
    );
}

#[test]
fn the_body_decides_whatever_the_content_type() {
    // Hand-written endpoints serve the right body as text/html (PHP's default).
    let cases: [(fn() -> Reply, i32); 6] = [
        (
            || Reply::status(200, "text/html", "{\"succeeded\": true}"),
            PAM_SUCCESS,
        ),
        (
            || Reply::status(200, "text/html; charset=UTF-8", "{ succeeded: true }\n"),
            PAM_SUCCESS,
        ),
        (
            || Reply::status(200, "text/plain", "{\"succeeded\": false}"),
            PAM_AUTH_ERR,
        ),
        (
            || Reply::status(200, "application/octet-stream", "{ succeeded: false }"),
            PAM_AUTH_ERR,
        ),
        // Anything but exactly a documented answer stays unavailable, whatever it says.
        (
            || Reply::status(200, "text/html", "<p>{\"succeeded\": true}</p>"),
            PAM_AUTHINFO_UNAVAIL,
        ),
        (
            || Reply::status(200, "application/json", "{\"succeeded\": true} x"),
            PAM_AUTHINFO_UNAVAIL,
        ),
    ];
    for (i, (case, want)) in cases.into_iter().enumerate() {
        let (rc, _, _s) = against(case, "3");
        assert_eq!(rc, want, "case {i}");
    }
    // The directory, too.
    let server = Server::start(|req| match req.form().get("cmd").map(String::as_str) {
        Some("list") => Reply::status(200, "text/html", r#"[{"userName":"john.doe"}]"#),
        _ => Reply::status(200, "text/html", "{\"succeeded\": false}"),
    });
    let svc = line(&server, "account=check");
    assert_eq!(svc.start("john.doe", None).acct_mgmt(), PAM_SUCCESS);
    assert_eq!(svc.start("nobody", None).acct_mgmt(), PAM_USER_UNKNOWN);
}

/// `cmd=list` requests a server received.
fn directory_reads(server: &Server) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.form().get("cmd").map(String::as_str) == Some("list"))
        .count()
}

#[test]
fn the_directory_is_read_once_per_directory_ttl() {
    let server = MailStore::new(&[("john.doe", "Passw0rd")]).serve();
    let svc = line(&server, "account=check directory_ttl=1");
    for _ in 0..3 {
        assert_eq!(svc.auth("john.doe", "wrong"), PAM_AUTH_ERR);
        assert_eq!(svc.auth("nobody", "wrong"), PAM_USER_UNKNOWN);
        assert_eq!(svc.start("john.doe", None).acct_mgmt(), PAM_SUCCESS);
    }
    assert_eq!(directory_reads(&server), 1);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(svc.start("nobody", None).acct_mgmt(), PAM_USER_UNKNOWN);
    assert_eq!(
        directory_reads(&server),
        2,
        "read again once the interval ended"
    );
    // directory_ttl=0: read whenever needed.
    let svc = line(&server, "account=check directory_ttl=0");
    assert_eq!(svc.start("john.doe", None).acct_mgmt(), PAM_SUCCESS);
    assert_eq!(svc.start("john.doe", None).acct_mgmt(), PAM_SUCCESS);
    assert_eq!(directory_reads(&server), 4);
}

const DIRECTORY_CHILD: &str = "PAM_MAILAUTH_DIRECTORY_URLS";

/// A directory of just under 16 MiB (the cap) holding john.doe: realistic entries, or the
/// worst case for what the module keeps (names only, as many as fit).
fn big_directory(names_only: bool) -> Vec<u8> {
    const SIZE: usize = 16 * 1024 * 1024 - 4096;
    let mut out = String::with_capacity(SIZE);
    out.push_str(r#"[{"userName":"john.doe"}"#);
    for n in 0.. {
        let entry = if names_only {
            format!(r#",{{"userName":"u{n}"}}"#)
        } else {
            format!(
                r#",{{"userName":"user{n:07}","distinguishedName":"CN=User {n:07},OU=Staff,DC=example,DC=com","fullName":"User {n:07}","emailAddresses":["user{n:07}@example.com","u{n}@example.org"]}}"#
            )
        };
        if out.len() + entry.len() + 1 > SIZE {
            break;
        }
        out.push_str(&entry);
    }
    out.push(']');
    out.into_bytes()
}

/// The child: warms up against a small directory, then lets the big one be read through
/// refusals and account checks, and prints how much its peak memory grew.
fn directory_child(urls: &str) {
    let hwm = || -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    };
    let (small, big) = urls.split_once(' ').unwrap();
    let warm = Service::module_line(&format!("backend=mailstore url={small} account=check"));
    assert_eq!(warm.auth("john.doe", "wrong"), PAM_AUTH_ERR);
    assert_eq!(warm.start("john.doe", None).acct_mgmt(), PAM_SUCCESS);
    let before = hwm();
    let svc = Service::module_line(&format!("backend=mailstore url={big} account=check"));
    for _ in 0..3 {
        assert_eq!(svc.auth("john.doe", "wrong"), PAM_AUTH_ERR);
        assert_eq!(svc.auth("nobody", "wrong"), PAM_USER_UNKNOWN);
        assert_eq!(svc.start("john.doe", None).acct_mgmt(), PAM_SUCCESS);
        assert_eq!(svc.start("nobody", None).acct_mgmt(), PAM_USER_UNKNOWN);
    }
    println!("DIRECTORY-RESULT growth_kib={}", hwm() - before);
}

#[test]
fn a_16_mib_directory_costs_under_64_mib_and_is_read_once() {
    if let Ok(urls) = std::env::var(DIRECTORY_CHILD) {
        return directory_child(&urls);
    }
    let small = MailStore::new(&[("john.doe", "Passw0rd")]).serve();
    for names_only in [false, true] {
        let directory = std::sync::Arc::new(big_directory(names_only));
        let body = directory.clone();
        let big = Server::start(move |req| match req.form().get("cmd").map(String::as_str) {
            Some("list") => Reply::status(200, "text/json; charset=utf8", body.to_vec()),
            _ => Reply::status(200, "text/json; charset=utf8", "{ succeeded: false }"),
        });
        let stdout = support::process::rerun_test(
            "a_16_mib_directory_costs_under_64_mib_and_is_read_once",
            &[(
                DIRECTORY_CHILD,
                format!("{} {}", small.url("/"), big.url("/")),
            )],
        );
        let growth: u64 = stdout
            .lines()
            .find_map(|l| l.split_once("DIRECTORY-RESULT growth_kib=").map(|(_, v)| v))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no result from the child: {stdout}"));
        eprintln!(
            "directory of {} bytes (names only: {names_only}): peak grew {growth} KiB",
            directory.len()
        );
        assert!(
            growth < 64 * 1024,
            "peak memory grew {growth} KiB for a {}-byte directory",
            directory.len()
        );
        assert_eq!(directory_reads(&big), 1, "read once for twelve checks");
    }
}
