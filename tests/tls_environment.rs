//! The trust roots come from cafile= or the system's bundle, never from the host process's
//! environment: in a setuid host (su, sudo, passwd) that environment is the invoking user's,
//! and `SSL_CERT_FILE`/`SSL_CERT_DIR` would let them add a CA of their own. Its own test
//! binary: the environment is the process's, and the TLS context is built once per process.

mod support;

use support::mailstore::MailStore;
use support::tls::{Pki, TlsServer};
use support::*;

#[test]
fn ssl_cert_file_in_the_environment_adds_no_trusted_ca() {
    let pki = Pki::new();
    let ca = pki.ca("their-ca");
    let cert = pki.issued(&ca, "server", "IP:127.0.0.1,DNS:localhost");
    let fake = MailStore::new(&[("john.doe", "Passw0rd")]);
    let server = TlsServer::start(&cert, move |req| fake.answer(req));
    // What a user could set before running a setuid PAM application.
    std::env::set_var("SSL_CERT_FILE", &ca.cert);
    std::env::set_var("SSL_CERT_DIR", ca.cert.parent().unwrap());
    let url = server.url("127.0.0.1", "/mailstore-integration/index.php");
    let svc = Service::module_line(&format!("backend=mailstore url={url} timeout=5"));
    assert_eq!(svc.auth("john.doe", "Passw0rd"), PAM_AUTHINFO_UNAVAIL);
    assert!(
        server.requests().is_empty(),
        "the password went to a server only the environment vouched for"
    );
    // The same CA named by cafile= is trusted: the server and the check do work.
    let cafile = format!("cafile={}", ca.cert.display());
    let svc = Service::module_line(&format!("backend=mailstore url={url} timeout=5 {cafile}"));
    assert_eq!(svc.auth("john.doe", "Passw0rd"), PAM_SUCCESS);
}

/// The trust roots are read only when an https connection is opened: a plain `http://`
/// configuration works on a machine without a CA bundle, and https without `cafile=` there is
/// a configuration error that names the missing bundle.
#[test]
fn no_ca_bundle_is_needed_without_https() {
    if !support::netns::in_private_mounts(
        "no_ca_bundle_is_needed_without_https",
        "mount -t tmpfs none /etc/ssl/certs",
    ) {
        return;
    }
    assert!(!std::path::Path::new("/etc/ssl/certs/ca-certificates.crt").exists());
    let log = support::syslog::Capture::start();
    let server = MailStore::new(&[("john.doe", "Passw0rd")]).serve();
    let url = server.url("/mailstore-integration/index.php");
    let svc = Service::module_line(&format!("backend=mailstore url={url} timeout=5"));
    assert_eq!(svc.auth("john.doe", "Passw0rd"), PAM_SUCCESS);

    let pki = Pki::new();
    let cert = pki.self_signed("self", "IP:127.0.0.1");
    let fake = MailStore::new(&[("john.doe", "Passw0rd")]);
    let tls = TlsServer::start(&cert, move |req| fake.answer(req));
    let https = tls.url("127.0.0.1", "/mailstore-integration/index.php");
    let svc = Service::module_line(&format!("backend=mailstore url={https} timeout=5"));
    assert_eq!(svc.auth("john.doe", "Passw0rd"), PAM_SERVICE_ERR);
    assert!(tls.requests().is_empty());
    let logged = log.module_lines().join("\n");
    assert!(
        logged.contains("the system's CA bundle") && logged.contains("set cafile="),
        "{logged}"
    );
}
