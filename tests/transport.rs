//! Secrets travel safely (issue 10): verified TLS to the database, no plaintext to another
//! host over HTTP or MySQL unless `disable_tls_never_use_in_production`, and a CA file checked
//! like the config file. Tests about non-loopback hosts run inside a private network namespace
//! (support::netns): no packet leaves the machine.

mod support;

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use support::mailstore::MailStore;
use support::mariadb::{self, KopanoUser, REMOTE_IP};
use support::netns::in_private_net;
use support::syslog::Capture;
use support::tls::{Pki, TlsServer};
use support::*;

/// A Kopano module line whose DSN sits in a 0600 config file.
fn db_line(dir: &TempDir, dsn: &str, extra: &str) -> Service {
    let cfg = config_file(dir.path(), &format!("dsn = {dsn}\n"), 0o600);
    Service::module_line(&format!(
        "backend=kopano config={} timeout=5 {extra}",
        cfg.display()
    ))
}

/// Where in the module's log lines `needle` appears (all of them, for the assertion message).
fn logged(capture: &Capture, needle: &str) -> (bool, String) {
    let lines = capture.module_lines();
    (lines.iter().any(|l| l.contains(needle)), lines.join("\n"))
}

#[test]
fn database_tls_is_verified_against_cafile_and_another_ca_is_authinfo_unavail() {
    let db = mariadb::tls_server();
    let tls = db.tls.as_ref().unwrap();
    db.add_users(&[KopanoUser::active("tls-user", "Passw0rd")]);
    let dir = TempDir::new("db-tls");
    let capture = Capture::start();

    // The server speaks only TLS: a plaintext DSN is turned away by the server itself.
    let plain = db_line(&dir, &db.dsn(), "");
    assert_eq!(plain.auth("tls-user", "Passw0rd"), PAM_AUTHINFO_UNAVAIL);

    // TLS verified against the server's own CA: works, both phases, right and wrong password.
    let ca = format!("cafile={}", tls.ca.cert.display());
    for host in ["127.0.0.1", "localhost"] {
        let svc = db_line(&dir, &db.tls_dsn(host), &ca);
        assert_eq!(svc.auth("tls-user", "Passw0rd"), PAM_SUCCESS, "{host}");
        assert_eq!(svc.auth("tls-user", "wrong"), PAM_AUTH_ERR, "{host}");
        assert_eq!(
            svc.start("tls-user", None).acct_mgmt(),
            PAM_SUCCESS,
            "{host}"
        );
    }

    // Not in the system store: without cafile= the certificate is refused.
    capture.clear();
    let unknown = db_line(&dir, &db.tls_dsn("127.0.0.1"), "");
    assert_eq!(unknown.auth("tls-user", "Passw0rd"), PAM_AUTHINFO_UNAVAIL);

    // A CA that did not issue the server's certificate: refused, and the log says why.
    let other = format!("cafile={}", tls.other_ca.cert.display());
    let svc = db_line(&dir, &db.tls_dsn("127.0.0.1"), &other);
    assert_eq!(svc.auth("tls-user", "Passw0rd"), PAM_AUTHINFO_UNAVAIL);
    let (said, lines) = logged(&capture, "certificate verify failed");
    assert!(said, "{lines}");
    let (said, lines) = logged(&capture, "TLS with the database failed");
    assert!(said, "{lines}");
    assert!(!lines.contains(mariadb::DB_PASSWORD), "{lines}");
}

#[test]
fn database_tls_checks_the_host_name() {
    // The certificate names 127.0.0.1, localhost and REMOTE_IP; 127.0.0.2 is the same server
    // under a name the certificate does not carry.
    let db = mariadb::tls_server();
    let tls = db.tls.as_ref().unwrap();
    db.add_users(&[KopanoUser::active("tls-name", "Passw0rd")]);
    db.root_sql(&format!(
        "CREATE USER IF NOT EXISTS '{u}'@'127.0.0.2' IDENTIFIED BY '{p}';
         GRANT SELECT ON {d}.* TO '{u}'@'127.0.0.2';",
        u = mariadb::DB_USER,
        p = mariadb::DB_PASSWORD,
        d = mariadb::DB_NAME
    ));
    let dir = TempDir::new("db-tls-name");
    let ca = format!("cafile={}", tls.ca.cert.display());
    let svc = db_line(&dir, &db.tls_dsn("127.0.0.2"), &ca);
    let capture = Capture::start();
    assert_eq!(svc.auth("tls-name", "Passw0rd"), PAM_AUTHINFO_UNAVAIL);
    let (said, lines) = logged(&capture, "TLS with the database failed");
    assert!(said, "{lines}");
}

/// Accepts connections on REMOTE_IP:port and counts them (a "remote" host that answers
/// nothing), so a test can tell whether the module tried to connect at all.
fn counting_listener(port: u16) -> Arc<AtomicUsize> {
    let listener = TcpListener::bind((REMOTE_IP, port)).unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for c in listener.incoming().flatten() {
            seen.fetch_add(1, Ordering::SeqCst);
            drop(c);
        }
    });
    count
}

#[test]
fn plaintext_to_a_remote_database_is_a_configuration_error_unless_opted_out() {
    if !in_private_net("plaintext_to_a_remote_database_is_a_configuration_error_unless_opted_out") {
        return;
    }
    let connects = counting_listener(3306);
    let dir = TempDir::new("db-plain-remote");
    let dsn = format!(
        "mysql://{}:{}@{REMOTE_IP}:3306/kopano",
        mariadb::DB_USER,
        mariadb::DB_PASSWORD
    );
    let capture = Capture::start();
    let svc = db_line(&dir, &dsn, "");
    assert_eq!(svc.auth("someone", "Passw0rd"), PAM_SERVICE_ERR);
    let (said, lines) = logged(&capture, "disable_tls_never_use_in_production");
    assert!(said, "{lines}");
    let (said, lines) = logged(&capture, "require_ssl=true");
    assert!(said, "{lines}");
    // TLS without verification is no better against a machine on the path.
    for weak in [
        "require_ssl=true&verify_ca=false",
        "require_ssl=true&verify_identity=false",
    ] {
        let svc = db_line(&dir, &format!("{dsn}?{weak}"), "");
        assert_eq!(svc.auth("someone", "Passw0rd"), PAM_SERVICE_ERR, "{weak}");
    }
    assert_eq!(connects.load(Ordering::SeqCst), 0, "nothing may be sent");

    // The explicit opt-out: the module connects (and, the server saying nothing, gives up).
    let svc = db_line(&dir, &dsn, "disable_tls_never_use_in_production timeout=2");
    assert_eq!(svc.auth("someone", "Passw0rd"), PAM_AUTHINFO_UNAVAIL);
    assert!(connects.load(Ordering::SeqCst) >= 1);
}

#[test]
fn verified_tls_to_a_remote_database_works() {
    if !in_private_net("verified_tls_to_a_remote_database_works") {
        return;
    }
    let db = mariadb::tls_server();
    let tls = db.tls.as_ref().unwrap();
    db.add_users(&[KopanoUser::active("remote-user", "Passw0rd")]);
    let dir = TempDir::new("db-tls-remote");
    let ca = format!("cafile={}", tls.ca.cert.display());
    let svc = db_line(&dir, &db.tls_dsn(REMOTE_IP), &ca);
    assert_eq!(svc.auth("remote-user", "Passw0rd"), PAM_SUCCESS);
    assert_eq!(svc.auth("remote-user", "wrong"), PAM_AUTH_ERR);
    let other = format!("cafile={}", tls.other_ca.cert.display());
    let svc = db_line(&dir, &db.tls_dsn(REMOTE_IP), &other);
    assert_eq!(svc.auth("remote-user", "Passw0rd"), PAM_AUTHINFO_UNAVAIL);
}

#[test]
fn plain_http_to_a_remote_host_is_a_configuration_error_unless_opted_out() {
    if !in_private_net("plain_http_to_a_remote_host_is_a_configuration_error_unless_opted_out") {
        return;
    }
    let connects = counting_listener(8080);
    let remote = format!("http://{REMOTE_IP}:8080/mailstore-integration/index.php");
    let capture = Capture::start();
    for extra in [
        "backend=mailstore",
        "backend=axigen",
        "backend=kopano",
        "backend=james token=t",
        "backend=scim token=t",
    ] {
        let backend = extra.split_whitespace().next().unwrap();
        let (file, args): (String, &str) = match extra.split_once(' ') {
            Some((_, secret)) => (format!("{}\n", secret.replace('=', " = ")), backend),
            None => (String::new(), extra),
        };
        let dir = TempDir::new("http-remote");
        let cfg = config_file(dir.path(), &file, 0o600);
        let svc = Service::module_line(&format!("{args} config={} url={remote}", cfg.display()));
        assert_eq!(svc.auth("someone", "Passw0rd"), PAM_SERVICE_ERR, "{extra}");
    }
    let (said, lines) = logged(&capture, "disable_tls_never_use_in_production");
    assert!(said, "{lines}");
    assert_eq!(connects.load(Ordering::SeqCst), 0, "nothing may be sent");

    // Loopback stays allowed, by address and by the name localhost.
    let fake = MailStore::new(&[("john", "Passw0rd")]).serve();
    for (host, expect) in [
        ("127.0.0.1", PAM_SUCCESS),
        ("localhost", PAM_SUCCESS),
        // Anywhere in 127/8 is loopback: asked (nobody listens there), not refused.
        ("127.0.0.2", PAM_AUTHINFO_UNAVAIL),
    ] {
        let url = fake.url("/").replace("127.0.0.1", host);
        let svc = Service::module_line(&format!("backend=mailstore url={url}"));
        assert_eq!(svc.auth("john", "Passw0rd"), expect, "{host}");
    }

    // The explicit opt-out: the module asks the remote host.
    let svc = Service::module_line(&format!(
        "backend=mailstore url={remote} timeout=2 disable_tls_never_use_in_production"
    ));
    assert_eq!(svc.auth("someone", "Passw0rd"), PAM_AUTHINFO_UNAVAIL);
    assert!(connects.load(Ordering::SeqCst) >= 1);
}

/// A CA file for a MailStore behind TLS, and a check that the module line works with it.
struct CaCase {
    pki: Pki,
    server: TlsServer,
    ca: support::tls::CertFiles,
}

impl CaCase {
    fn new() -> CaCase {
        let pki = Pki::new();
        let ca = pki.ca("ca");
        let cert = pki.issued(&ca, "server", "IP:127.0.0.1,DNS:localhost");
        let fake = MailStore::new(&[("john", "Passw0rd")]);
        let server = TlsServer::start(&cert, move |req| fake.answer(req));
        CaCase { pki, server, ca }
    }

    fn auth(&self, cafile: &std::path::Path) -> i32 {
        let url = self.server.url("127.0.0.1", "/");
        Service::module_line(&format!(
            "backend=mailstore url={url} cafile={}",
            cafile.display()
        ))
        .auth("john", "Passw0rd")
    }
}

fn chown(path: &std::path::Path, uid: u32, follow: bool) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let r = unsafe {
        if follow {
            libc::chown(c.as_ptr(), uid, u32::MAX)
        } else {
            libc::lchown(c.as_ptr(), uid, u32::MAX)
        }
    };
    assert_eq!(r, 0, "chown {}", path.display());
}

const NOBODY: u32 = 65534;

#[test]
fn a_cafile_others_can_change_is_a_configuration_error() {
    let case = CaCase::new();
    assert_eq!(case.auth(&case.ca.cert), PAM_SUCCESS);
    let capture = Capture::start();

    // Owned by nobody, or writable by everyone: whoever can write it picks whom we trust.
    let dir = case.pki.dir.path();
    let copy = dir.join("copy.pem");
    std::fs::copy(&case.ca.cert, &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o666)).unwrap();
    assert_eq!(case.auth(&copy), PAM_SERVICE_ERR);
    let (said, lines) = logged(&capture, "chmod go-w");
    assert!(said, "{lines}");
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o644)).unwrap();
    chown(&copy, NOBODY, true);
    assert_eq!(case.auth(&copy), PAM_SERVICE_ERR);
    let (said, lines) = logged(&capture, "must be owned by root");
    assert!(said, "{lines}");
    assert!(
        case.server.requests().len() == 1,
        "only the good line may reach the server"
    );
}

#[test]
fn a_cafile_link_is_followed_through_root_owned_directories_only() {
    let case = CaCase::new();
    let base = case.pki.dir.path();
    // The /etc/ssl/certs layout: a link in one directory to the file in another.
    let store = base.join("share");
    let certs = base.join("certs");
    for dir in [&store, &certs] {
        std::fs::create_dir(dir).unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let real = store.join("local-ca.crt");
    std::fs::copy(&case.ca.cert, &real).unwrap();
    let link = certs.join("local-ca.pem");
    std::os::unix::fs::symlink("../share/local-ca.crt", &link).unwrap();
    let hashed = certs.join("1a2b3c4d.0");
    std::os::unix::fs::symlink("local-ca.pem", &hashed).unwrap();
    assert_eq!(case.auth(&link), PAM_SUCCESS);
    assert_eq!(case.auth(&hashed), PAM_SUCCESS, "a link to a link");

    let capture = Capture::start();
    // The target's directory writable by group: its members could swap the file.
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o775)).unwrap();
    assert_eq!(case.auth(&link), PAM_SERVICE_ERR);
    let (said, lines) = logged(&capture, &format!("directory {}", store.display()));
    assert!(said, "{lines}");
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(case.auth(&link), PAM_SUCCESS);

    // The link's directory owned by someone else: they could point the link anywhere.
    chown(&certs, NOBODY, true);
    assert_eq!(case.auth(&link), PAM_SERVICE_ERR);
    chown(&certs, 0, true);

    // A link owned by someone else.
    chown(&hashed, NOBODY, false);
    assert_eq!(case.auth(&hashed), PAM_SERVICE_ERR);
    let (said, lines) = logged(&capture, "chown -h root");
    assert!(said, "{lines}");
}
