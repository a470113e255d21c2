//! TLS is always verified: real HTTPS servers started here, with certificates made by the
//! `openssl` command at test time, in front of the MailStore fake. A refused certificate means
//! PAM_AUTHINFO_UNAVAIL and the password never leaves the module.

mod support;

use support::mailstore::MailStore;
use support::syslog::Capture;
use support::tls::{Pki, TlsServer};
use support::*;

const USER: &str = "john.doe";
const PASSWORD: &str = "Passw0rd";

fn mailstore_tls(cert: &support::tls::CertFiles) -> TlsServer {
    let fake = MailStore::new(&[(USER, PASSWORD)]);
    TlsServer::start(cert, move |req| fake.answer(req))
}

fn line(url: &str, extra: &str) -> Service {
    Service::module_line(&format!("backend=mailstore url={url} timeout=5 {extra}"))
}

#[test]
fn untrusted_self_signed_certificate_is_authinfo_unavail_and_trusted_by_cafile_succeeds() {
    let pki = Pki::new();
    let cert = pki.self_signed("self", "IP:127.0.0.1,DNS:localhost");
    let server = mailstore_tls(&cert);
    let url = server.url("127.0.0.1", "/mailstore-integration/index.php");

    // Not in the system trust store: refused.
    assert_eq!(line(&url, "").auth(USER, PASSWORD), PAM_AUTHINFO_UNAVAIL);
    // The server's thread counts the failed handshake after the module has hung up.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while server.handshake_failures() == 0 && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(server.handshake_failures() >= 1);
    assert!(
        server.requests().is_empty(),
        "the password must not be sent over an unverified connection"
    );

    // The same certificate trusted through cafile=: a right password succeeds, a wrong one is
    // refused (the server really answers over this connection).
    let cafile = format!("cafile={}", cert.cert.display());
    assert_eq!(line(&url, &cafile).auth(USER, PASSWORD), PAM_SUCCESS);
    assert_eq!(line(&url, &cafile).auth(USER, "wrong"), PAM_AUTH_ERR);
    let localhost = server.url("localhost", "/mailstore-integration/index.php");
    assert_eq!(line(&localhost, &cafile).auth(USER, PASSWORD), PAM_SUCCESS);
    assert_eq!(server.requests().len(), 3);
}

#[test]
fn a_private_ca_in_cafile_verifies_the_servers_it_issued() {
    let pki = Pki::new();
    let ca = pki.ca("ca");
    let cert = pki.issued(&ca, "server", "IP:127.0.0.1,DNS:localhost");
    let server = mailstore_tls(&cert);
    let url = server.url("localhost", "/");
    assert_eq!(line(&url, "").auth(USER, PASSWORD), PAM_AUTHINFO_UNAVAIL);
    let cafile = format!("cafile={}", ca.cert.display());
    assert_eq!(line(&url, &cafile).auth(USER, PASSWORD), PAM_SUCCESS);

    // cafile= replaces the trust store: another CA's bundle does not vouch for this server.
    let other = Pki::new();
    let other_ca = other.ca("other-ca");
    let cafile = format!("cafile={}", other_ca.cert.display());
    assert_eq!(
        line(&url, &cafile).auth(USER, PASSWORD),
        PAM_AUTHINFO_UNAVAIL
    );
}

#[test]
fn a_certificate_for_another_host_name_is_refused_even_with_cafile() {
    let pki = Pki::new();
    let ca = pki.ca("ca");
    let cert = pki.issued(&ca, "elsewhere", "DNS:mail.other.example");
    let server = mailstore_tls(&cert);
    let failures_before = server.handshake_failures();
    for host in ["127.0.0.1", "localhost"] {
        let url = server.url(host, "/");
        assert_eq!(
            line(&url, &format!("cafile={}", ca.cert.display())).auth(USER, PASSWORD),
            PAM_AUTHINFO_UNAVAIL,
            "{host}"
        );
    }
    // Also when the trusted certificate is that very (self-signed) certificate.
    let self_signed = pki.self_signed("self-other", "DNS:mail.other.example");
    let server2 = mailstore_tls(&self_signed);
    assert_eq!(
        line(
            &server2.url("127.0.0.1", "/"),
            &format!("cafile={}", self_signed.cert.display())
        )
        .auth(USER, PASSWORD),
        PAM_AUTHINFO_UNAVAIL
    );
    assert!(server.handshake_failures() >= failures_before + 2);
    assert!(server.requests().is_empty() && server2.requests().is_empty());
}

#[test]
fn the_refusal_tells_the_admin_why_the_certificate_failed() {
    let pki = Pki::new();
    let ca = pki.ca("ca");
    let self_signed = mailstore_tls(&pki.self_signed("self", "IP:127.0.0.1"));
    let foreign = mailstore_tls(&pki.issued(&ca, "other", "DNS:mail.other.example"));
    let capture = Capture::start();
    let cafile = format!("cafile={}", ca.cert.display());
    for (server, host, cafile, why) in [
        (&self_signed, "127.0.0.1", "", "self-signed certificate"),
        (&foreign, "localhost", &*cafile, "hostname mismatch"),
        (&foreign, "127.0.0.1", &*cafile, "ip address mismatch"),
    ] {
        capture.clear();
        assert_eq!(
            line(&server.url(host, "/"), cafile).auth(USER, PASSWORD),
            PAM_AUTHINFO_UNAVAIL
        );
        let lines = capture.module_lines();
        assert!(
            lines.iter().any(|l| l.contains("backend unavailable")
                && l.contains("certificate verify failed")
                && l.to_lowercase().contains(why)),
            "{why}: {lines:#?}"
        );
    }
}

#[test]
fn a_cafile_that_is_not_pem_is_a_configuration_error() {
    let dir = TempDir::new("cafile");
    let bogus = dir.path().join("ca.pem");
    std::fs::write(&bogus, "not a certificate\n").unwrap();
    let pki = Pki::new();
    let cert = pki.self_signed("self", "IP:127.0.0.1");
    let server = mailstore_tls(&cert);
    let rc = line(
        &server.url("127.0.0.1", "/"),
        &format!("cafile={}", bogus.display()),
    )
    .auth(USER, PASSWORD);
    assert_eq!(rc, PAM_SERVICE_ERR);
    assert_eq!(server.handshake_failures() + server.requests().len(), 0);
}
