//! The time bound of a check (issue 11 item 1): every HTTP backend answers within `timeout=`
//! plus a small slack per URL tried, against servers that accept and then hardly move (an
//! answer trickling one byte every 1.5 s, headers included) or stay silent, and whatever the
//! check asks of that URL: name resolution, connect, the login, Axigen's WebMail logout,
//! MailStore's directory read after a refusal, James's token check after a 401. Through the
//! built module and real libpam, with `timeout=2`. Offline marking is off
//! (`offline_interval=0`): a server of a later test may get the port of an earlier test's server
//! that timed out, and that server's mark (process-wide, 30 s) would skip it without asking.
//!
//! The bounds are asserted generously (the tests run on a loaded 2-core machine), but each
//! multi-request case is built so that the code before the shared deadline (each request
//! with a whole `timeout=` of its own) overshoots it: the first answer comes after 1.5 s, the
//! second never, so that code took 3.5 s.

mod support;

use std::net::UdpSocket;
use std::time::{Duration, Instant};
use support::axigen::Axigen;
use support::http::{serve_unix, Reply, Server};
use support::kopano_soap::logon_response;
use support::process::rerun_test_isolated;
use support::*;

const TIMEOUT: Duration = Duration::from_secs(2);
/// One byte every this long: alive, never done within `TIMEOUT`.
const DRIP: Duration = Duration::from_millis(1500);
/// What a first request of a check costs in the multi-request cases: late enough that a
/// second request with a timeout of its own would overrun, early enough that a loaded
/// machine still reads the whole first answer before the deadline.
const FIRST_ANSWER_AFTER: Duration = Duration::from_millis(1000);

/// A single request cut off: `timeout=` plus the generous slack of a loaded machine.
fn assert_single_bound(took: Duration) {
    println!("took {took:?}");
    assert!(
        took >= TIMEOUT - Duration::from_millis(100),
        "gave up early: {took:?}"
    );
    assert!(took < TIMEOUT + Duration::from_secs(2), "took {took:?}");
}

/// Several requests of one check share one `timeout=`: well under first answer + timeout.
fn assert_shared_bound(took: Duration) {
    println!("took {took:?}");
    assert!(
        took < TIMEOUT + Duration::from_secs(1),
        "took {took:?}: the second request had a timeout of its own"
    );
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let started = Instant::now();
    let out = f();
    (out, started.elapsed())
}

fn trickled(status: u16, content_type: &str, body: &str) -> Reply {
    Reply::status(status, content_type, body.to_string()).trickle(DRIP)
}

fn mailstore_line(server: &Server, extra: &str) -> Service {
    Service::module_line(&format!(
        "backend=mailstore url={} timeout=2 offline_interval=0 {extra}",
        server.url("/")
    ))
}

#[test]
fn mailstore_trickling_answer_is_cut_off_at_the_timeout() {
    let server = Server::start(|_| trickled(200, "text/json", "{\"succeeded\": true}"));
    let svc = mailstore_line(&server, "");
    let (rc, took) = timed(|| svc.auth("john", "Passw0rd"));
    assert_eq!(rc, PAM_AUTHINFO_UNAVAIL);
    assert_single_bound(took);
}

#[test]
fn mailstore_silent_server_is_cut_off_at_the_timeout() {
    let server = Server::start(|_| Reply::Hang);
    let svc = mailstore_line(&server, "");
    let (rc, took) = timed(|| svc.auth("john", "Passw0rd"));
    assert_eq!(rc, PAM_AUTHINFO_UNAVAIL);
    assert_single_bound(took);
}

#[test]
fn mailstore_directory_read_after_a_refusal_shares_the_timeout() {
    let server = Server::start(|req| match req.form().get("cmd").map(String::as_str) {
        Some("auth") => {
            Reply::status(200, "text/json", "{\"succeeded\": false}").late(FIRST_ANSWER_AFTER)
        }
        _ => trickled(200, "text/json", "[{\"userName\": \"john\"}]"),
    });
    let svc = mailstore_line(&server, "account=check");
    let (rc, took) = timed(|| svc.auth("john", "wrong"));
    // The directory could not be read in time: the refusal stays a plain no.
    assert_eq!(rc, PAM_AUTH_ERR);
    assert_shared_bound(took);
    let cmds: Vec<_> = server
        .requests()
        .iter()
        .map(|r| r.form().get("cmd").cloned().unwrap_or_default())
        .collect();
    // The directory read goes out 1.5 s in; on a machine too loaded to send it within the
    // 0.5 s left it is (rightly) not sent at all.
    assert!(cmds == ["auth", "list"] || cmds == ["auth"], "{cmds:?}");
}

fn axigen_line(server: &Server, extra: &str) -> Service {
    Service::module_line(&format!(
        "backend=axigen url={} timeout=2 offline_interval=0 {extra}",
        server.url("/")
    ))
}

#[test]
fn axigen_webmail_trickling_login_is_cut_off_at_the_timeout() {
    let server = Server::start(|_| trickled(200, "text/html", "<html>login</html>"));
    let svc = axigen_line(&server, "");
    let (rc, took) = timed(|| svc.auth("john@example.com", "Passw0rd"));
    assert_eq!(rc, PAM_AUTHINFO_UNAVAIL);
    assert_single_bound(took);
}

#[test]
fn axigen_webmail_logout_shares_the_timeout_with_the_login() {
    let axigen = Axigen::new(&[("john@example.com", "Passw0rd")])
        .logout_misbehaves(|| Reply::status(303, "text/html", "").trickle(DRIP));
    let server = Server::start(move |req| {
        let reply = axigen.answer(req);
        let login = req.form().get("action").map(String::as_str) == Some("login");
        if login {
            reply.late(FIRST_ANSWER_AFTER)
        } else {
            reply
        }
    });
    let svc = axigen_line(&server, "");
    let (rc, took) = timed(|| svc.auth("john@example.com", "Passw0rd"));
    // A logout that does not finish never changes the verdict.
    assert_eq!(rc, PAM_SUCCESS);
    assert_shared_bound(took);
    // Login, then the logout (unless a loaded machine left no time to send it).
    assert!((1..=2).contains(&server.count()), "{}", server.count());
}

#[test]
fn axigen_rest_trickling_login_is_cut_off_at_the_timeout() {
    let server = Server::start(|_| trickled(200, "application/json", "{\"sessid\": \"x\"}"));
    let svc = axigen_line(&server, "api=rest");
    let (rc, took) = timed(|| svc.auth("john@example.com", "Passw0rd"));
    assert_eq!(rc, PAM_AUTHINFO_UNAVAIL);
    assert_single_bound(took);
}

fn with_token(backend: &str, server: &Server, token: &str, extra: &str) -> (Service, TempDir) {
    let dir = TempDir::new("cfg");
    let cfg = config_file(dir.path(), &format!("token = {token}\n"), 0o600);
    let svc = Service::module_line(&format!(
        "backend={backend} url={} timeout=2 offline_interval=0 config={} {extra}",
        server.url("/"),
        cfg.display()
    ));
    (svc, dir)
}

#[test]
fn james_trickling_verify_is_cut_off_at_the_timeout() {
    let server = Server::start(|_| trickled(204, "text/plain", ""));
    let (svc, _d) = with_token("james", &server, james::ADMIN_JWT, "");
    let (rc, took) = timed(|| svc.auth("alice@example.test", "Passw0rd"));
    assert_eq!(rc, PAM_AUTHINFO_UNAVAIL);
    assert_single_bound(took);
}

#[test]
fn james_token_check_after_a_401_shares_the_timeout() {
    let server = Server::start(|req| match req.method.as_str() {
        "POST" => Reply::status(401, "text/plain", "").late(FIRST_ANSWER_AFTER),
        _ => trickled(200, "text/plain", ""),
    });
    let (svc, _d) = with_token("james", &server, james::ADMIN_JWT, "");
    let (rc, took) = timed(|| svc.auth("alice@example.test", "wrong"));
    assert_eq!(rc, PAM_AUTHINFO_UNAVAIL);
    assert_shared_bound(took);
    // Verify, then the token check (unless a loaded machine left no time to send it).
    assert!((1..=2).contains(&server.count()), "{}", server.count());
}

#[test]
fn scim_trickling_account_answer_is_cut_off_at_the_timeout() {
    let server = Server::start(|_| trickled(200, "application/scim+json", "{\"active\": true}"));
    let (svc, _d) = with_token("scim", &server, scim::JWT, "");
    let (rc, took) = timed(|| svc.start("alice@example.test", None).acct_mgmt());
    assert_eq!(rc, PAM_AUTHINFO_UNAVAIL);
    assert_single_bound(took);
}

fn kopano_trickle(_: &support::http::Request) -> Reply {
    Reply::status(200, "text/xml; charset=utf-8", logon_response(0)).trickle(DRIP)
}

#[test]
fn kopano_soap_trickling_answer_is_cut_off_at_the_timeout() {
    let server = Server::start(kopano_trickle);
    let svc = Service::module_line(&format!(
        "backend=kopano url={} timeout=2 offline_interval=0",
        server.url("/")
    ));
    let (rc, took) = timed(|| svc.auth("john", "Passw0rd"));
    assert_eq!(rc, PAM_AUTHINFO_UNAVAIL);
    assert_single_bound(took);
}

#[test]
fn kopano_socket_trickling_answer_is_cut_off_at_the_timeout() {
    let dir = TempDir::new("sock");
    let path = dir.path().join("server.sock");
    let requests = serve_unix(&path, kopano_trickle);
    let svc = Service::module_line(&format!(
        "backend=kopano socket={} timeout=2 offline_interval=0",
        path.display()
    ));
    let (rc, took) = timed(|| svc.auth("john", "Passw0rd"));
    assert_eq!(rc, PAM_AUTHINFO_UNAVAIL);
    assert_single_bound(took);
    assert_eq!(requests.lock().unwrap().len(), 1);
}

#[test]
fn two_silent_urls_cost_one_timeout_each() {
    let (a, b) = (
        Server::start(|_| Reply::Hang),
        Server::start(|_| Reply::Hang),
    );
    let svc = Service::module_line(&format!(
        "backend=mailstore url={} url={} timeout=2 offline_interval=0",
        a.url("/"),
        b.url("/")
    ));
    let (rc, took) = timed(|| svc.auth("john", "Passw0rd"));
    assert_eq!(rc, PAM_AUTHINFO_UNAVAIL);
    assert!(took >= 2 * TIMEOUT - Duration::from_millis(200), "{took:?}");
    assert!(took < 2 * TIMEOUT + Duration::from_secs(2), "{took:?}");
    assert_eq!((a.count(), b.count()), (1, 1));
}

const IN_NETNS: &str = "PAM_MAILAUTH_TEST_IN_NETNS";

/// A name whose lookup never ends (a DNS server that reads queries and never answers,
/// glibc waiting 5 s per try) costs no more than `timeout=`. Runs in a private network and
/// mount namespace whose /etc/resolv.conf names 127.0.0.1: no query leaves the machine.
#[test]
fn name_resolution_that_never_answers_is_cut_off_at_the_timeout() {
    if std::env::var_os(IN_NETNS).is_none() {
        rerun_test_isolated(
            "name_resolution_that_never_answers_is_cut_off_at_the_timeout",
            &[(IN_NETNS, "1".into())],
        );
        return;
    }
    let dns = UdpSocket::bind("127.0.0.1:53").expect("a private network namespace");
    let svc = Service::module_line(
        "backend=mailstore url=https://mailstore.pam-mailauth.invalid/ timeout=2 offline_interval=0",
    );
    let (rc, took) = timed(|| svc.auth("john", "Passw0rd"));
    assert_eq!(rc, PAM_AUTHINFO_UNAVAIL);
    assert_single_bound(took);
    // The module did ask the (silent) name server: the wait really was a name lookup.
    dns.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 512];
    let (n, _) = dns
        .recv_from(&mut buf)
        .expect("a DNS query reached 127.0.0.1:53");
    let name = String::from_utf8_lossy(&buf[..n]);
    assert!(name.contains("pam-mailauth"), "{name:?}");
}
