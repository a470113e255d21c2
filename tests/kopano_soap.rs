//! backend=kopano url= / socket=: through real libpam against a fake kopano-server written
//! from the gSOAP definitions of `ns__logon` (tests/support/kopano_soap.rs).

mod support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};
use support::http::{refused_url, Reply, Server};
use support::kopano_soap::*;
use support::*;

fn line(server: &Server, extra: &str) -> Service {
    Service::module_line(&format!("backend=kopano url={} {extra}", server.url("/")))
}

#[test]
fn right_password_succeeds_and_wrong_password_is_auth_err() {
    let kopano = KopanoServer::new(&[("john", "Passw0rd")]);
    let server = kopano.serve();
    let svc = line(&server, "");
    assert_eq!(
        svc.login("john", "Passw0rd"),
        (PAM_SUCCESS, Some(PAM_SUCCESS))
    );
    assert_eq!(svc.auth("john", "passw0rd"), PAM_AUTH_ERR);
    // The server cannot tell an unknown user from a wrong password.
    assert_eq!(svc.auth("nobody", "Passw0rd"), PAM_AUTH_ERR);
    // Without a password the SOAP source has nothing to say about an account: the module
    // answers PAM_IGNORE, which libpam turns into PAM_PERM_DENIED for a stack where no
    // module decided anything.
    assert_eq!(svc.start("john", None).acct_mgmt(), PAM_PERM_DENIED);
    let logons = kopano.logons();
    assert_eq!(logons.len(), 3);
    assert_eq!(logons[0].user, "john");
    assert_eq!(logons[0].impersonate, "");
    assert!(logons[0]
        .content_type
        .as_deref()
        .is_some_and(|c| c.starts_with("text/xml")));
    assert!(logons[0].soap_action.is_some());
}

#[test]
fn xml_special_characters_arrive_intact() {
    let user = "o'brien&<co>\"@example.com";
    let password = "p<a&s>s\"w'o]]></szPassword>\r\n\t&amp; ü🔑";
    let kopano = KopanoServer::new(&[(user, password)]);
    let server = kopano.serve();
    let svc = line(&server, "");
    assert_eq!(svc.auth(user, password), PAM_SUCCESS);
    let seen = &kopano.logons()[0];
    assert_eq!(seen.user, user);
    assert_eq!(seen.password, password);
    assert_eq!(svc.auth(user, "p<a&s>s\"w'o]]>"), PAM_AUTH_ERR);
}

#[test]
fn every_logon_sends_no_uid_auth_no_register_session_and_unicode() {
    let kopano = KopanoServer::new(&[("john", "Passw0rd")]);
    let server = kopano.serve();
    let dir = TempDir::new("kopano-sock");
    let socket = dir.path().join("server.sock");
    kopano.serve_socket(socket.clone());
    let http = line(&server, "");
    let sock = Service::module_line(&format!("backend=kopano socket={}", socket.display()));
    for svc in [&http, &sock] {
        assert_eq!(svc.auth("john", "Passw0rd"), PAM_SUCCESS);
        assert_eq!(svc.auth("john", "wrong"), PAM_AUTH_ERR);
    }
    let logons = kopano.logons();
    assert_eq!(logons.len(), 4);
    assert_eq!(logons.iter().filter(|l| l.over_socket).count(), 2);
    for l in &logons {
        assert_eq!(
            l.flags & KOPANO_LOGON_NO_UID_AUTH,
            KOPANO_LOGON_NO_UID_AUTH,
            "{l:?}"
        );
        assert_eq!(
            l.flags & KOPANO_LOGON_NO_REGISTER_SESSION,
            KOPANO_LOGON_NO_REGISTER_SESSION,
            "{l:?}"
        );
        assert_eq!(
            l.capabilities & KOPANO_CAP_UNICODE,
            KOPANO_CAP_UNICODE,
            "{l:?}"
        );
    }
}

/// The fake server really has kopano-server's trap: a root peer on the socket that omits
/// NO_UID_AUTH is let in with any password. (So the test above could fail.)
#[test]
fn the_fake_server_lets_a_root_socket_peer_in_without_no_uid_auth() {
    let kopano = KopanoServer::new(&[("john", "Passw0rd")]);
    let dir = TempDir::new("kopano-sock");
    let socket = dir.path().join("server.sock");
    kopano.serve_socket(socket.clone());
    let body = "<?xml version=\"1.0\"?><SOAP-ENV:Envelope \
        xmlns:SOAP-ENV=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:ns=\"urn:zarafa\">\
        <SOAP-ENV:Body><ns:logon><szUsername>john</szUsername><szPassword>WRONG</szPassword>\
        <szImpersonateUser></szImpersonateUser><ulCapabilities>848</ulCapabilities>\
        <ulFlags>2</ulFlags></ns:logon></SOAP-ENV:Body></SOAP-ENV:Envelope>";
    let mut s = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.contains("<er>0</er>"), "{answer}");
}

#[test]
fn server_down_is_authinfo_unavail_within_the_timeout() {
    let svc = Service::module_line(&format!(
        "backend=kopano url={} timeout=2 connect_timeout=1",
        refused_url()
    ));
    let started = Instant::now();
    assert_eq!(svc.auth("john", "Passw0rd"), PAM_AUTHINFO_UNAVAIL);
    assert!(started.elapsed() < Duration::from_secs(2 + 2));
    let dir = TempDir::new("kopano-sock");
    let sock = Service::module_line(&format!(
        "backend=kopano socket={} timeout=2",
        dir.path().join("absent.sock").display()
    ));
    assert_eq!(sock.auth("john", "Passw0rd"), PAM_AUTHINFO_UNAVAIL);
}

#[test]
fn hanging_server_is_authinfo_unavail_within_the_timeout() {
    let server = Server::start(|_| Reply::Hang);
    let svc = line(&server, "timeout=2 connect_timeout=1");
    let started = Instant::now();
    assert_eq!(svc.auth("john", "Passw0rd"), PAM_AUTHINFO_UNAVAIL);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2 + 2), "{took:?}");
}

#[test]
fn anything_but_a_definite_logon_answer_is_authinfo_unavail() {
    // Another server error code (here: a client without UNICODE would get this).
    let mut kopano = KopanoServer::new(&[("john", "Passw0rd")]);
    kopano.force_er = Some(KCERR_BAD_CHARWIDTH);
    let server = kopano.serve();
    assert_eq!(
        line(&server, "").auth("john", "Passw0rd"),
        PAM_AUTHINFO_UNAVAIL
    );
    for reply in [
        || Reply::status(500, "text/xml", "<SOAP-ENV:Fault>x</SOAP-ENV:Fault>"),
        || Reply::status(200, "text/xml", "<html>er 0</html>"),
        || Reply::status(200, "text/xml", "<er>0</er>"),
        || Reply::status(302, "text/xml", "").with_header("Location", "http://x/"),
        // A valid success padded past the cap: only the cap refuses it.
        || Reply::Padded(logon_response(0), 1 << 20),
        || Reply::Raw(b"garbage\r\n\r\n".to_vec()),
    ] {
        let server = Server::start(move |_| reply());
        assert_eq!(
            line(&server, "timeout=3").auth("john", "Passw0rd"),
            PAM_AUTHINFO_UNAVAIL
        );
    }
}

#[test]
fn failover_to_the_next_url_only_when_one_is_unreachable() {
    let kopano = KopanoServer::new(&[("john", "Passw0rd")]);
    let server = kopano.serve();
    let svc = Service::module_line(&format!(
        "backend=kopano url={} url={} timeout=3",
        refused_url(),
        server.url("/")
    ));
    assert_eq!(svc.auth("john", "Passw0rd"), PAM_SUCCESS);
    assert_eq!(svc.auth("john", "wrong"), PAM_AUTH_ERR);
    // A definite "no" from the first server is final.
    let second = KopanoServer::new(&[("john", "wrong")]);
    let second = second.serve();
    let svc = Service::module_line(&format!(
        "backend=kopano url={} url={}",
        server.url("/"),
        second.url("/")
    ));
    assert_eq!(svc.auth("john", "wrong"), PAM_AUTH_ERR);
    assert_eq!(second.count(), 0);
}

/// pam.d-examples/smtp-pam_mapi as written: pam_mapi's documented lines with only the module
/// name changed, its default `socket=http://localhost:236/kopano` pointed at the fake.
#[test]
fn the_pam_mapi_example_runs_as_written() {
    use support::examples::Example;
    let example = Example::load("smtp-pam_mapi");
    // The active lines are the documented pam_mapi lines with only the module name changed.
    let active: Vec<&str> = example
        .text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    let module = support::pam::module();
    let module = module.to_str().unwrap();
    for line in &active {
        let as_pam_mapi = line
            .replace(module, "pam_mapi.so")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            example.text.lines().any(|l| l
                .trim_start_matches('#')
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                == as_pam_mapi),
            "no documented pam_mapi line for: {line}"
        );
    }
    let kopano = KopanoServer::new(&[("john", "Passw0rd")]);
    let server = kopano.serve();
    let example = example.with("http://localhost:236/kopano", &server.url("/kopano"));
    let dir = example.install("smtp");
    let start =
        |user: &str, password: &str| Transaction::start(dir.path(), "smtp", user, Some(password));
    let mut t = start("john", "Passw0rd");
    assert_eq!(t.authenticate(), PAM_SUCCESS);
    assert_eq!(t.acct_mgmt(), PAM_SUCCESS);
    assert_eq!(start("john", "wrong").authenticate(), PAM_AUTH_ERR);
    assert_eq!(start("nobody", "Passw0rd").authenticate(), PAM_AUTH_ERR);
    // The logons went where pam_mapi's URL points, with NO_UID_AUTH.
    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    assert!(requests
        .iter()
        .all(|r| r.method == "POST" && r.path() == "/kopano"));
    assert!(kopano
        .logons()
        .iter()
        .all(|l| l.flags & KOPANO_LOGON_NO_UID_AUTH != 0));
}

#[test]
fn every_socket_form_pam_mapi_accepted_works() {
    use support::tls::{Pki, TlsServer};
    let kopano = KopanoServer::new(&[("john", "Passw0rd")]);
    // http://, with Zarafa's path.
    let server = kopano.serve();
    let svc = Service::module_line(&format!("backend=kopano socket={}", server.url("/zarafa")));
    assert_eq!(svc.auth("john", "Passw0rd"), PAM_SUCCESS);
    assert_eq!(svc.auth("john", "wrong"), PAM_AUTH_ERR);
    // https:// (kopano-server on another machine, port 237), verified with cafile=.
    let pki = Pki::new();
    let cert = pki.self_signed("kopano", "IP:127.0.0.1,DNS:localhost");
    let me = kopano.clone();
    let tls = TlsServer::start(&cert, move |req| me.answer(req, false));
    let svc = Service::module_line(&format!(
        "backend=kopano socket={} cafile={}",
        tls.url("localhost", "/kopano"),
        cert.cert.display()
    ));
    assert_eq!(svc.auth("john", "Passw0rd"), PAM_SUCCESS);
    assert_eq!(svc.auth("john", "wrong"), PAM_AUTH_ERR);
    assert_eq!(tls.requests().len(), 2);
    // file:// (the unix socket).
    let dir = TempDir::new("kopano-sock");
    let socket = dir.path().join("server.sock");
    kopano.serve_socket(socket.clone());
    let svc = Service::module_line(&format!(
        "backend=kopano socket=file://{}",
        socket.display()
    ));
    assert_eq!(svc.auth("john", "Passw0rd"), PAM_SUCCESS);
    assert_eq!(svc.auth("john", "wrong"), PAM_AUTH_ERR);
}

#[test]
fn pam_mapi_service_without_a_store_is_a_configuration_error_not_ignored() {
    let kopano = KopanoServer::new(&[("john", "Passw0rd")]);
    let server = kopano.serve();
    let capture = support::syslog::Capture::start();
    let svc = Service::module_line(&format!(
        "backend=kopano socket={} service=imap|pop3",
        server.url("/kopano")
    ));
    assert_eq!(svc.auth("john", "Passw0rd"), PAM_SERVICE_ERR);
    assert!(kopano.logons().is_empty());
    let lines = capture.module_lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("service=") && l.contains("dsn=")),
        "{lines:?}"
    );
}
