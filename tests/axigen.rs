//! backend=axigen through real libpam, against a local Axigen written from the documents
//! (tests/support/axigen.rs): the WebMail HSP login (POST and the SSO document's GET), the
//! logout that leaves no session behind, the Mailbox REST API, and every failure the shared
//! HTTP layer must absorb. A recording PAM handle drives `core` directly where the test
//! needs to read the log lines.

mod support;

use pam_mailauth::pam::{Host, Level};
use pam_mailauth::secret::Secret;
use pamsm::PamError;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use support::axigen::{Axigen, AxigenServer, Body};
use support::http::{refused_url, Reply, Server};
use support::*;

const USER: &str = "john.doe@example.com";
const PASSWORD: &str = "Passw0rd";

fn line(server: &AxigenServer, extra: &str) -> Service {
    Service::module_line(&format!("backend=axigen url={} {extra}", server.url("/")))
}

fn server() -> AxigenServer {
    Axigen::new(&[(USER, PASSWORD)]).serve()
}

/// Login requests (logouts and REST calls left out).
fn logins(server: &AxigenServer) -> Vec<support::http::Request> {
    server
        .requests()
        .into_iter()
        .filter(|r| {
            let fields = if r.method == "POST" {
                r.form()
            } else {
                r.query()
            };
            fields.get("action").map(String::as_str) == Some("login")
        })
        .collect()
}

#[test]
fn right_wrong_and_unknown_user_with_post_by_default() {
    let server = server();
    let svc = line(&server, "");
    assert_eq!(svc.login(USER, PASSWORD), (PAM_SUCCESS, Some(PAM_SUCCESS)));
    assert_eq!(svc.auth(USER, "passw0rd"), PAM_AUTH_ERR);
    assert_eq!(svc.auth("nobody@example.com", PASSWORD), PAM_AUTH_ERR);

    let logins = logins(&server);
    assert_eq!(logins.len(), 3);
    for req in &logins {
        assert_eq!(req.method, "POST");
        assert_eq!(req.target, "/", "nothing in the URL");
        assert_eq!(
            req.header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
        let form = req.form();
        assert_eq!(form.get("action").map(String::as_str), Some("login"));
        assert_eq!(form.get("custom").map(String::as_str), Some("ajax"));
    }
    assert_eq!(
        logins[0].form().get("username").map(String::as_str),
        Some(USER)
    );
    assert_eq!(
        logins[0].form().get("password").map(String::as_str),
        Some(PASSWORD)
    );
    assert!(server
        .requests()
        .iter()
        .all(|r| !r.target.contains(PASSWORD)));
    // The one successful login was logged out again.
    assert_eq!(server.logins(), 1);
    assert_eq!(server.logouts(), 1);
    assert_eq!(server.live_sessions(), 0);
}

#[test]
fn the_logout_names_the_session_by_its_h_key_and_cookie() {
    let server = server();
    assert_eq!(line(&server, "").auth(USER, PASSWORD), PAM_SUCCESS);
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let logout = &requests[1];
    assert_eq!(logout.path(), "/");
    let query = logout.query();
    assert_eq!(query.get("action").map(String::as_str), Some("logout"));
    let h = query.get("_h").expect("_h in the logout");
    assert_eq!(h.len(), 32);
    let cookie = logout.header("cookie").expect("cookie on the logout");
    assert!(
        cookie.starts_with("_hmail=") && cookie.len() == 7 + 32,
        "{cookie}"
    );
    assert!(!logout.target.contains(PASSWORD));
    assert_eq!(server.live_sessions(), 0);
}

#[test]
fn every_documented_success_form_and_no_session_left_open() {
    for body in [Body::Document, Body::Strict] {
        let server = Axigen::new(&[(USER, PASSWORD)]).body(body).serve();
        for method in ["", "method=post", "method=get"] {
            let svc = line(&server, method);
            for _ in 0..3 {
                assert_eq!(
                    svc.login(USER, PASSWORD),
                    (PAM_SUCCESS, Some(PAM_SUCCESS)),
                    "{body:?} {method}"
                );
                assert_eq!(server.live_sessions(), 0, "{body:?} {method}");
            }
            assert_eq!(svc.auth(USER, "wrong"), PAM_AUTH_ERR, "{body:?} {method}");
        }
        assert_eq!(server.logins(), 9);
        assert_eq!(server.logouts(), 9);
    }
}

#[test]
fn session_keys_without_the_success_body_are_a_refusal_and_still_logged_out() {
    // The module always sends custom=ajax, and then Axigen's success carries the body
    // `{ success: true, sessionKey: "..." }`. A 303 with keys but no such body is not a yes.
    let server = Axigen::new(&[(USER, PASSWORD)])
        .body(Body::HeadersOnly)
        .serve();
    for method in ["method=post", "method=get"] {
        assert_eq!(
            line(&server, method).auth(USER, PASSWORD),
            PAM_AUTH_ERR,
            "{method}"
        );
    }
    assert_eq!(server.logins(), 2);
    assert_eq!(
        server.logouts(),
        2,
        "the sessions the keys named were closed"
    );
    assert_eq!(server.live_sessions(), 0);
    // The same with a failure page as the body.
    let (rc, _, server) = against(
        || {
            Reply::status(
                303,
                "text/html",
                "<html>Invalid username or password</html>",
            )
            .with_header("Set-Cookie", "_hmail=c;Path=/")
            .with_header("Location", "/?_h=u")
        },
        "timeout=3",
    );
    assert_eq!(rc, PAM_AUTH_ERR);
    let logout = server
        .requests()
        .into_iter()
        .find(|r| r.query().get("action").map(String::as_str) == Some("logout"));
    assert!(logout.is_some(), "the keys' session was logged out");
}

#[test]
fn a_body_giving_a_key_twice_is_unavailable_and_the_next_url_is_asked() {
    // `{ success: false, success: true, ... }` has no honest reading: not a yes (whichever
    // value a lenient parser keeps) and not a no either (spec: duplicate or conflicting keys
    // are PAM_AUTHINFO_UNAVAIL).
    let conflicting = Axigen::new(&[(USER, PASSWORD)])
        .body(Body::Conflicting)
        .serve();
    assert_eq!(
        line(&conflicting, "timeout=3").auth(USER, PASSWORD),
        PAM_AUTHINFO_UNAVAIL
    );
    assert_eq!(conflicting.live_sessions(), 0, "its session was logged out");
    let (rc, _, _s) = against(
        || {
            Reply::status(
                200,
                "text/html",
                "{ success: true, sessionKey: \"k\", success: false }",
            )
        },
        "timeout=3",
    );
    assert_eq!(rc, PAM_AUTHINFO_UNAVAIL);
    // Not a definite answer, so the next URL decides.
    let good = server();
    let svc = Service::module_line(&format!(
        "backend=axigen url={} url={} timeout=3",
        conflicting.url("/"),
        good.url("/")
    ));
    assert_eq!(svc.auth(USER, PASSWORD), PAM_SUCCESS);
    assert_eq!(good.logins(), 1);
}

#[test]
fn the_success_body_without_the_303_and_its_keys_is_unavailable() {
    // protocols.md: success is the 303, the _hmail cookie, the _h Location AND the body.
    let stripped = Axigen::new(&[(USER, PASSWORD)])
        .body(Body::WithoutKeys)
        .serve();
    for method in ["method=post", "method=get"] {
        assert_eq!(
            line(&stripped, &format!("timeout=3 {method}")).auth(USER, PASSWORD),
            PAM_AUTHINFO_UNAVAIL,
            "{method}"
        );
    }
    let partial: [fn() -> Reply; 3] = [
        // The keys and the body, but a 200.
        || {
            Reply::status(200, "text/html", "{ success: true, sessionKey: \"k\" }")
                .with_header("Set-Cookie", "_hmail=c;Path=/")
                .with_header("Location", "/?_h=u")
        },
        // The 303 and the body, without the Location's _h key.
        || {
            Reply::status(303, "text/html", "{ success: true, sessionKey: \"k\" }")
                .with_header("Set-Cookie", "_hmail=c;Path=/")
        },
        // The 303 and the body, without the cookie.
        || {
            Reply::status(303, "text/html", "{ success: true, sessionKey: \"k\" }")
                .with_header("Location", "/?_h=u")
        },
    ];
    for (i, case) in partial.into_iter().enumerate() {
        let (rc, _, _s) = against(case, "timeout=3");
        assert_eq!(rc, PAM_AUTHINFO_UNAVAIL, "case {i}");
    }
    // The whole shape from the next URL is a yes.
    let good = server();
    let svc = Service::module_line(&format!(
        "backend=axigen url={} url={} timeout=3",
        stripped.url("/"),
        good.url("/")
    ));
    assert_eq!(svc.auth(USER, PASSWORD), PAM_SUCCESS);
}

#[test]
fn method_get_sends_the_sso_documents_exact_query() {
    let server = server();
    let svc = line(&server, "method=get");
    assert_eq!(svc.auth(USER, PASSWORD), PAM_SUCCESS);
    assert_eq!(svc.auth(USER, "wrong"), PAM_AUTH_ERR);
    let logins = logins(&server);
    assert_eq!(logins.len(), 2);
    assert_eq!(logins[0].method, "GET");
    assert_eq!(
        logins[0].target,
        "/?action=login&username=john.doe%40example.com&password=Passw0rd&custom=ajax"
    );
    assert!(logins[0].body.is_empty());
    assert_eq!(server.live_sessions(), 0);
}

#[test]
fn user_names_and_passwords_with_awkward_characters_arrive_intact() {
    let user = "j.doe+smtp@example.com";
    let password = "p&ss = 100% +plus and  spaces=&";
    let server = Axigen::new(&[(user, password)]).serve();
    for method in ["method=post", "method=get", "api=rest"] {
        assert_eq!(
            line(&server, method).auth(user, password),
            PAM_SUCCESS,
            "{method}"
        );
        // A near miss must not pass: the encoding keeps every character.
        assert_eq!(
            line(&server, method).auth(user, "p&ss = 100% +plus and spaces=&"),
            PAM_AUTH_ERR,
            "{method}"
        );
        assert_eq!(
            line(&server, method).auth("j.doe smtp@example.com", password),
            PAM_AUTH_ERR,
            "{method}"
        );
    }
    let requests = server.requests();
    let post = &requests[0];
    assert_eq!(post.form().get("username").map(String::as_str), Some(user));
    assert_eq!(
        post.form().get("password").map(String::as_str),
        Some(password)
    );
    let get = logins(&server)
        .into_iter()
        .find(|r| r.method == "GET")
        .unwrap();
    assert_eq!(get.query().get("username").map(String::as_str), Some(user));
    assert_eq!(
        get.query().get("password").map(String::as_str),
        Some(password)
    );
    let rest = requests
        .iter()
        .find(|r| r.path() == "/api/v1/login")
        .unwrap();
    assert_eq!(
        rest.basic_auth(),
        Some((user.to_string(), password.to_string()))
    );
    assert_eq!(server.live_sessions(), 0);
}

#[test]
fn the_default_domain_is_appended_before_axigen_sees_the_name() {
    let server = server();
    assert_eq!(
        line(&server, "domain=example.com").auth("john.doe", PASSWORD),
        PAM_SUCCESS
    );
    assert_eq!(
        logins(&server)[0]
            .form()
            .get("username")
            .map(String::as_str),
        Some(USER)
    );
}

#[test]
fn rest_api_right_wrong_and_unknown() {
    let server = server();
    let svc = line(&server, "api=rest");
    assert_eq!(svc.login(USER, PASSWORD), (PAM_SUCCESS, Some(PAM_SUCCESS)));
    assert_eq!(svc.auth(USER, "wrong"), PAM_AUTH_ERR);
    assert_eq!(svc.auth("nobody@example.com", PASSWORD), PAM_AUTH_ERR);
    let requests: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.target != "/api/v1/logout")
        .collect();
    assert_eq!(requests.len(), 3);
    for req in &requests {
        assert_eq!(req.method, "POST");
        assert_eq!(req.target, "/api/v1/login");
    }
    assert_eq!(
        requests[0].basic_auth(),
        Some((USER.to_string(), PASSWORD.to_string()))
    );
    assert_eq!(server.rest_sessions(), 1);
    // The WebMail side was never touched.
    assert_eq!(server.logins(), 0);

    // A url= that already names the endpoint is used as it is.
    let svc = Service::module_line(&format!(
        "backend=axigen api=rest url={}",
        server.url("/api/v1/login")
    ));
    assert_eq!(svc.auth(USER, PASSWORD), PAM_SUCCESS);
}

#[test]
fn rest_api_sessions_are_logged_out_with_their_session_id() {
    let server = server();
    let svc = line(&server, "api=rest");
    assert_eq!(svc.auth(USER, PASSWORD), PAM_SUCCESS);
    assert_eq!(svc.auth(USER, PASSWORD), PAM_SUCCESS);
    assert_eq!(svc.auth(USER, "wrong"), PAM_AUTH_ERR);
    assert_eq!(server.rest_sessions(), 2);
    // Each session was closed, by its own id, in X-Axigen-Session.
    let logouts = server.rest_logouts();
    assert_eq!(logouts.len(), 2, "{logouts:?}");
    assert_ne!(logouts[0], logouts[1]);
    assert_eq!(server.rest_live_sessions(), 0);
    let logout = server
        .requests()
        .into_iter()
        .find(|r| r.target == "/api/v1/logout")
        .unwrap();
    assert_eq!(logout.method, "POST");
    assert!(
        logout.header("authorization").is_none(),
        "no credentials on logout"
    );

    // A logout that fails is a warning and leaves the verdict alone, within the time bound.
    let cases: [fn() -> Reply; 3] = [
        || Reply::status(500, "application/json", "{}"),
        || Reply::Raw(b"garbage\r\n\r\n".to_vec()),
        || Reply::Hang,
    ];
    for (i, case) in cases.into_iter().enumerate() {
        let server = Axigen::new(&[(USER, PASSWORD)])
            .logout_misbehaves(case)
            .serve();
        let host = Recorder::new(PASSWORD);
        let started = Instant::now();
        let rc = authenticate(
            &host,
            &format!(
                "backend=axigen api=rest url={} timeout=1.5 connect_timeout=1",
                server.url("/")
            ),
        );
        assert_eq!(rc, PamError::SUCCESS, "case {i}");
        assert!(started.elapsed() < Duration::from_millis(4000), "case {i}");
        assert_eq!(server.logout_attempts(), 1, "case {i}");
        let logs = host.logs();
        assert!(
            logs.iter()
                .any(|(l, t)| *l == Level::Warning && t.contains("not closed")),
            "case {i}: {logs:?}"
        );
    }
}

#[test]
fn rest_refuses_a_user_name_that_basic_auth_cannot_carry() {
    // "john.doe@example.com:Passw0rd" + "x" would reach the server as john.doe with the
    // password "Passw0rd:x"; a colon is in no Axigen account name.
    let server = Axigen::new(&[(USER, "Passw0rd:x")]).serve();
    assert_eq!(
        line(&server, "api=rest").auth(&format!("{USER}:Passw0rd"), "x"),
        PAM_AUTH_ERR
    );
    assert_eq!(server.requests().len(), 0);
}

/// Authenticates against a misbehaving server and returns the code and how long it took.
fn against(reply: fn() -> Reply, extra: &str) -> (i32, Duration, Server) {
    let server = Server::start(move |_| reply());
    let svc = Service::module_line(&format!(
        "backend=axigen url={} connect_timeout=1 {extra}",
        server.url("/")
    ));
    let started = Instant::now();
    let rc = svc.auth(USER, PASSWORD);
    (rc, started.elapsed(), server)
}

#[test]
fn server_down_is_authinfo_unavail() {
    for api in ["api=webmail", "api=webmail method=get", "api=rest"] {
        let svc = Service::module_line(&format!(
            "backend=axigen url={} timeout=2 {api}",
            refused_url()
        ));
        let started = Instant::now();
        assert_eq!(svc.auth(USER, PASSWORD), PAM_AUTHINFO_UNAVAIL, "{api}");
        assert!(started.elapsed() < Duration::from_secs(2), "{api}");
    }
}

#[test]
fn a_hanging_server_is_authinfo_unavail_within_the_timeout() {
    for api in ["api=webmail", "api=webmail method=get", "api=rest"] {
        let (rc, took, server) = against(|| Reply::Hang, &format!("timeout=1.5 {api}"));
        assert_eq!(rc, PAM_AUTHINFO_UNAVAIL, "{api}");
        assert!(took >= Duration::from_millis(1400), "{api}: {took:?}");
        assert!(took < Duration::from_millis(2500), "{api}: {took:?}");
        assert_eq!(server.count(), 1);
    }
    // A body dripping past the deadline, too.
    let (rc, took, _s) = against(
        || Reply::Drip {
            body: b"{ success: true, sessionKey: \"f2531832aba5b28a947b35dfe3481b54\" }".to_vec(),
            interval: Duration::from_millis(300),
        },
        "timeout=1.5",
    );
    assert_eq!(rc, PAM_AUTHINFO_UNAVAIL);
    assert!(took < Duration::from_millis(2500), "{took:?}");
}

#[test]
fn server_errors_are_authinfo_unavail() {
    let webmail: [fn() -> Reply; 6] = [
        || Reply::status(500, "text/html", "<h1>Internal Server Error</h1>"),
        // A 5xx wearing the success shape is still a 5xx.
        || {
            Reply::status(503, "text/html", "{ success: true, sessionKey: \"k\" }")
                .with_header("Set-Cookie", "_hmail=c;Path=/")
                .with_header("Location", "/?_h=u")
        },
        || Reply::status(404, "text/html", "<h1>Not Found</h1>"),
        || Reply::status(403, "text/html", "<h1>Forbidden</h1>"),
        || Reply::Raw(b"\x00\x01garbage that is not HTTP\r\n\r\n".to_vec()),
        || Reply::Huge(64 * 1024 * 1024),
    ];
    for (i, case) in webmail.into_iter().enumerate() {
        for method in ["method=post", "method=get"] {
            let (rc, took, _s) = against(case, &format!("timeout=3 {method}"));
            assert_eq!(rc, PAM_AUTHINFO_UNAVAIL, "case {i} {method}");
            assert!(took < Duration::from_secs(3), "case {i}: {took:?}");
        }
    }
    let rest: [fn() -> Reply; 5] = [
        || Reply::status(500, "application/json", "{\"error\": \"internal\"}"),
        || Reply::status(502, "text/html", "bad gateway"),
        || Reply::status(404, "text/html", "<h1>Not Found</h1>"),
        || Reply::status(200, "application/json", "{\"error\": \"no sessid\"}"),
        || Reply::status(200, "text/html", "<html>login</html>"),
    ];
    for (i, case) in rest.into_iter().enumerate() {
        let (rc, _, _s) = against(case, "timeout=3 api=rest");
        assert_eq!(rc, PAM_AUTHINFO_UNAVAIL, "rest case {i}");
    }
}

#[test]
fn normal_answers_without_the_success_shape_are_refusals() {
    let cases: [fn() -> Reply; 6] = [
        // The login page again (the captcha page after repeated failures looks the same).
        || Reply::status(200, "text/html", "<html><form>captcha</form></html>"),
        || Reply::status(200, "text/html", ""),
        // A 303 back to the login page, without the session cookie.
        || Reply::status(303, "text/html", "").with_header("Location", "/?_h=abc"),
        // The keys, but the body says no.
        || {
            Reply::status(303, "text/html", "{ success: false, errorCode: 1 }")
                .with_header("Set-Cookie", "_hmail=c;Path=/")
                .with_header("Location", "/?_h=u")
        },
        || Reply::status(200, "text/html", "{ success: true }"),
        || Reply::status(200, "text/html", "{ success: \"true\", sessionKey: \"k\" }"),
    ];
    for (i, case) in cases.into_iter().enumerate() {
        let (rc, _, _s) = against(case, "timeout=3");
        assert_eq!(rc, PAM_AUTH_ERR, "case {i}");
    }
}

#[test]
fn the_303_is_read_never_followed_and_other_redirects_are_unavailable() {
    let target = server();
    let to = target.url("/?_h=stolen");
    // A redirect that is not WebMail's login answer: not followed, not a refusal.
    let redirector = Server::start(move |_| {
        Reply::status(302, "text/html", "moved").with_header("Location", &to)
    });
    let svc = Service::module_line(&format!("backend=axigen url={}", redirector.url("/")));
    assert_eq!(svc.auth(USER, PASSWORD), PAM_AUTHINFO_UNAVAIL);
    assert_eq!(redirector.count(), 1);
    assert_eq!(target.requests().len(), 0, "nothing may reach the target");
    // The success 303's Location points at another server: read, never visited.
    let to = target.url("/?_h=abc");
    let sso = Server::start(move |req| {
        if req.query().get("action").map(String::as_str) == Some("logout") {
            return Reply::status(303, "text/html", "").with_header("Location", "/");
        }
        Reply::status(303, "text/html", "{ success: true, sessionKey: \"k\" }")
            .with_header("Set-Cookie", "_hmail=c;Path=/")
            .with_header("Location", &to)
    });
    let svc = Service::module_line(&format!("backend=axigen url={}", sso.url("/")));
    assert_eq!(svc.auth(USER, PASSWORD), PAM_SUCCESS);
    assert_eq!(target.requests().len(), 0);
    // ...and the logout went to the configured WebMail root with that key.
    let requests = sso.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[1].query().get("_h").map(String::as_str),
        Some("abc")
    );
}

#[test]
fn a_failed_logout_does_not_change_the_verdict() {
    let cases: [fn() -> Reply; 3] = [
        || Reply::status(500, "text/html", "<h1>error</h1>"),
        || Reply::Raw(b"garbage\r\n\r\n".to_vec()),
        || Reply::Hang,
    ];
    for (i, case) in cases.into_iter().enumerate() {
        let server = Axigen::new(&[(USER, PASSWORD)])
            .logout_misbehaves(case)
            .serve();
        let svc = line(&server, "timeout=1.5 connect_timeout=1");
        let started = Instant::now();
        assert_eq!(
            svc.login(USER, PASSWORD),
            (PAM_SUCCESS, Some(PAM_SUCCESS)),
            "case {i}"
        );
        // The logout is bounded by the same timeout as the login.
        assert!(
            started.elapsed() < Duration::from_millis(4000),
            "case {i}: {:?}",
            started.elapsed()
        );
        assert_eq!(server.logout_attempts(), 1, "case {i}");
        assert_eq!(svc.auth(USER, "wrong"), PAM_AUTH_ERR, "case {i}");
    }
}

#[test]
fn failover_moves_on_and_logs_out_where_it_logged_in() {
    let second = server();
    let failing = Server::start(|_| Reply::status(502, "text/html", "bad gateway"));
    let svc = Service::module_line(&format!(
        "backend=axigen url={} url={} url={} timeout=2",
        refused_url(),
        failing.url("/"),
        second.url("/")
    ));
    assert_eq!(svc.auth(USER, PASSWORD), PAM_SUCCESS);
    assert_eq!(failing.count(), 1);
    assert_eq!(second.logins(), 1);
    assert_eq!(second.live_sessions(), 0);

    // A definite no is not asked again elsewhere.
    let first = server();
    let third = Axigen::new(&[(USER, "other")]).serve();
    let svc = Service::module_line(&format!(
        "backend=axigen url={} url={}",
        first.url("/"),
        third.url("/")
    ));
    assert_eq!(svc.auth(USER, "other"), PAM_AUTH_ERR);
    assert_eq!(third.requests().len(), 0);
}

#[test]
fn bad_options_are_service_err() {
    let server = server();
    for extra in ["api=soap", "method=put", "api", "method="] {
        assert_eq!(
            line(&server, extra).auth(USER, PASSWORD),
            PAM_SERVICE_ERR,
            "{extra}"
        );
    }
    assert_eq!(
        Service::module_line("backend=axigen").auth(USER, PASSWORD),
        PAM_SERVICE_ERR
    );
    assert_eq!(server.requests().len(), 0);
}

#[test]
fn empty_password_never_reaches_axigen() {
    let server = server();
    for api in ["", "method=get", "api=rest"] {
        assert_eq!(line(&server, api).auth(USER, ""), PAM_AUTH_ERR);
    }
    assert_eq!(server.requests().len(), 0);
}

/// A PAM handle that records what the module logs, to drive `core` without libpam.
struct Recorder {
    password: String,
    logs: Mutex<Vec<(Level, String)>>,
    authenticated: Mutex<Option<String>>,
}

impl Recorder {
    fn new(password: &str) -> Recorder {
        Recorder {
            password: password.into(),
            logs: Mutex::new(Vec::new()),
            authenticated: Mutex::new(None),
        }
    }

    fn logs(&self) -> Vec<(Level, String)> {
        self.logs.lock().unwrap().clone()
    }
}

impl Host for Recorder {
    fn service(&self) -> std::borrow::Cow<'_, str> {
        "smtp".into()
    }
    fn user(&self) -> Result<String, PamError> {
        Ok(USER.into())
    }
    fn rhost(&self) -> Option<String> {
        Some("192.0.2.7".into())
    }
    fn stacked_password(&self) -> Result<Option<Secret>, PamError> {
        Ok(None)
    }
    fn prompt_password(&self) -> Result<Secret, PamError> {
        Ok(Secret::new(self.password.clone()))
    }
    fn remember_authenticated(&self, user: &str) {
        *self.authenticated.lock().unwrap() = Some(user.into());
    }
    fn authenticated_user(&self) -> Option<String> {
        self.authenticated.lock().unwrap().clone()
    }
    fn log(&self, level: Level, message: &str) {
        self.logs.lock().unwrap().push((level, message.into()));
    }
    fn fail_delay(&self, _micros: u32) {}
}

fn authenticate(host: &Recorder, args: &str) -> PamError {
    let args: Vec<&str> = args.split_whitespace().collect();
    pam_mailauth::core::authenticate(host, &args)
}

#[test]
fn a_failed_logout_is_logged_as_a_warning() {
    let server = Axigen::new(&[(USER, PASSWORD)])
        .logout_misbehaves(|| Reply::status(500, "text/html", "<h1>error</h1>"))
        .serve();
    let host = Recorder::new(PASSWORD);
    let rc = authenticate(
        &host,
        &format!("backend=axigen url={} quiet", server.url("/")),
    );
    assert_eq!(rc, PamError::SUCCESS);
    let logs = host.logs();
    let warnings: Vec<_> = logs.iter().filter(|(l, _)| *l == Level::Warning).collect();
    assert_eq!(warnings.len(), 1, "{logs:?}");
    assert!(
        warnings[0].1.contains("not closed") && warnings[0].1.contains("HTTP 500"),
        "{warnings:?}"
    );

    // A logout that works leaves no warning.
    let server = Axigen::new(&[(USER, PASSWORD)]).serve();
    let host = Recorder::new(PASSWORD);
    let rc = authenticate(&host, &format!("backend=axigen url={}", server.url("/")));
    assert_eq!(rc, PamError::SUCCESS);
    assert!(
        host.logs().iter().all(|(l, _)| *l != Level::Warning),
        "{:?}",
        host.logs()
    );
}

#[test]
fn no_log_line_carries_the_password_even_with_method_get_and_debug() {
    let password = "S3cr3t-p&ss w0rd%";
    let encoded = "S3cr3t-p%26ss%20w0rd%25";
    let good = Axigen::new(&[(USER, password)])
        .logout_misbehaves(|| Reply::status(500, "text/html", "x"))
        .serve();
    let bad: [fn() -> Reply; 4] = [
        || Reply::status(500, "text/html", "<h1>Internal Server Error</h1>"),
        || Reply::status(302, "text/html", "").with_header("Location", "/elsewhere"),
        || Reply::Raw(b"\x00garbage\r\n\r\n".to_vec()),
        || Reply::Hang,
    ];
    let servers: Vec<Server> = bad
        .into_iter()
        .map(|reply| Server::start(move |_| reply()))
        .collect();
    let mut urls: Vec<String> = vec![refused_url(), good.url("/")];
    urls.extend(servers.iter().map(|s| s.url("/")));
    for url in urls {
        for api in ["method=get", "method=post", "api=rest"] {
            let host = Recorder::new(password);
            let _ = authenticate(
                &host,
                &format!("backend=axigen url={url} {api} debug timeout=1 connect_timeout=1"),
            );
            let logs = host.logs();
            assert!(!logs.is_empty());
            for (_, text) in &logs {
                assert!(
                    !text.contains(password) && !text.contains(encoded) && !text.contains("S3cr3t"),
                    "{text}"
                );
                assert!(!text.contains("action=login"), "no login URL in: {text}");
            }
        }
    }
}

/// pam.d-examples/webmail-axigen as it is: pam_unix (a stand-in) for local users, Axigen with
/// failover and domain= for everyone else, one prompt, and no WebMail session left behind.
#[test]
fn the_webmail_axigen_example_runs_as_written() {
    use support::examples::{Example, LocalUnix, LOCAL_PASSWORD, LOCAL_USER};
    let server = Axigen::new(&[("anna@example.com", "Mail pass")]).serve();
    let unix = LocalUnix::new();
    let example = Example::load("webmail-axigen")
        .with("https://webmail2.example.com/", &server.url("/"))
        .with(
            "https://webmail.example.com/",
            &support::http::refused_url(),
        )
        .with(
            "auth     sufficient  pam_unix.so",
            &format!("auth sufficient {}", unix.auth_module()),
        )
        .with(
            "account  required    pam_unix.so",
            &format!("account required {}", unix.account_module()),
        );
    let dir = example.install("webmail");
    let run = |user: &str, password: &str| {
        let mut t = Transaction::start(dir.path(), "webmail", user, Some(password));
        let auth = t.authenticate();
        let acct = (auth == PAM_SUCCESS).then(|| t.acct_mgmt());
        (auth, acct, t.prompts())
    };
    // A mail user, by bare name: the first URL is down, the second answers for anna@example.com.
    assert_eq!(
        run("anna", "Mail pass"),
        (PAM_SUCCESS, Some(PAM_SUCCESS), 1)
    );
    assert_eq!(server.logins(), 1);
    assert_eq!(
        server.live_sessions(),
        0,
        "the example's login was logged out"
    );
    assert_eq!(run("anna", "wrong").0, PAM_AUTH_ERR);
    // A local user: pam_unix answers; Axigen is not asked.
    let logins = server.logins();
    assert_eq!(
        run(LOCAL_USER, LOCAL_PASSWORD),
        (PAM_SUCCESS, Some(PAM_SUCCESS), 1)
    );
    assert_eq!(server.logins(), logins);
}

/// A login answer whose head (303, the session keys) arrived but whose body broke off: no
/// readable yes (unavailable), and the session the server opened is logged out all the same.
#[test]
fn a_login_whose_body_breaks_off_is_unavailable_and_its_session_is_logged_out() {
    let server = Server::start(|req| {
        if req.query().get("action").map(String::as_str) == Some("logout") {
            return Reply::status(200, "text/html", "");
        }
        Reply::Raw(
            b"HTTP/1.1 303 See Other\r\nSet-Cookie: _hmail=abc123;Path=/\r\nLocation: /?_h=key456\r\n\
              Content-Length: 100\r\n\r\n{ success: tr"
                .to_vec(),
        )
    });
    let svc = Service::module_line(&format!("backend=axigen url={}", server.url("/")));
    assert_eq!(svc.auth("john", "Passw0rd"), PAM_AUTHINFO_UNAVAIL);
    let logout = server
        .requests()
        .into_iter()
        .find(|r| r.query().get("action").map(String::as_str) == Some("logout"));
    let Some(logout) = logout else {
        panic!("the session the server opened was not logged out")
    };
    assert_eq!(logout.query().get("_h").map(String::as_str), Some("key456"));
}
