//! User-name mapping (`strip_domain`, then `domain=`, then `lowercase`), checked where it
//! matters: the name the backend receives (the MailStore fake records every request).

mod support;

use support::http::Server;
use support::mailstore::MailStore;
use support::*;

const PATH: &str = "/mailstore-integration/index.php";

/// Authenticates `user` with the given mapping options and returns the PAM code and the name
/// the backend was asked about.
fn backend_sees(args: &str, user: &str) -> (i32, String) {
    let server = MailStore::new(&[("john.doe@example.com", "Passw0rd")]).serve();
    let svc = Service::module_line(&format!(
        "backend=mailstore url={} {args}",
        server.url(PATH)
    ));
    let rc = svc.auth(user, "Passw0rd");
    (rc, only_user(&server))
}

fn only_user(server: &Server) -> String {
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "exactly one backend request");
    requests[0].form().get("user").cloned().unwrap_or_default()
}

#[test]
fn without_options_the_name_is_passed_unchanged() {
    assert_eq!(
        backend_sees("", "John.Doe@Example.COM"),
        (PAM_AUTH_ERR, "John.Doe@Example.COM".into())
    );
}

#[test]
fn domain_appends_to_bare_names_only() {
    assert_eq!(
        backend_sees("domain=example.com", "john.doe"),
        (PAM_SUCCESS, "john.doe@example.com".into())
    );
    assert_eq!(
        backend_sees("domain=example.com", "john.doe@example.org"),
        (PAM_AUTH_ERR, "john.doe@example.org".into())
    );
}

#[test]
fn lowercase_folds_ascii_letters_only() {
    assert_eq!(
        backend_sees("lowercase", "John.DOE@Example.COM"),
        (PAM_SUCCESS, "john.doe@example.com".into())
    );
    // Outside ASCII nothing is folded: Unicode case rules would merge distinct names (the
    // Kelvin sign K with k, for one).
    assert_eq!(
        backend_sees("lowercase", "ÜLLA@EXAMPLE.COM").1,
        "Ülla@example.com"
    );
    assert_eq!(
        backend_sees("lowercase", "\u{212A}ATE@EXAMPLE.COM").1,
        "\u{212A}ate@example.com"
    );
}

#[test]
fn strip_domain_drops_everything_from_the_at_sign() {
    let server = MailStore::new(&[("john.doe", "Passw0rd")]).serve();
    let svc = Service::module_line(&format!(
        "backend=mailstore url={} strip_domain",
        server.url(PATH)
    ));
    assert_eq!(svc.auth("john.doe@example.com", "Passw0rd"), PAM_SUCCESS);
    assert_eq!(only_user(&server), "john.doe");
    assert_eq!(
        backend_sees("strip_domain", "john.doe").1,
        "john.doe",
        "a bare name stays as it is"
    );
}

#[test]
fn combined_order_is_strip_then_domain_then_lowercase() {
    // Moves every user into one domain, whatever the client typed after the '@'.
    assert_eq!(
        backend_sees(
            "strip_domain domain=Example.COM lowercase",
            "John.Doe@old-domain.example"
        ),
        (PAM_SUCCESS, "john.doe@example.com".into())
    );
    assert_eq!(
        backend_sees("domain=example.com lowercase", "JOHN.DOE").1,
        "john.doe@example.com"
    );
}

#[test]
fn mapping_options_work_from_the_config_file_too() {
    let server = MailStore::new(&[("john.doe@example.com", "Passw0rd")]).serve();
    let dir = TempDir::new("mapcfg");
    let cfg = config_file(
        dir.path(),
        "# mapping\nstrip_domain\ndomain = example.com\nlowercase\n",
        0o644,
    );
    let svc = Service::module_line(&format!(
        "backend=mailstore url={} config={}",
        server.url(PATH),
        cfg.display()
    ));
    assert_eq!(svc.auth("John.Doe@elsewhere", "Passw0rd"), PAM_SUCCESS);
    assert_eq!(only_user(&server), "john.doe@example.com");
}

#[test]
fn the_account_phase_asks_about_the_mapped_name() {
    let server = MailStore::new(&[("john.doe@example.com", "Passw0rd")]).serve();
    let svc = Service::module_line(&format!(
        "backend=mailstore url={} domain=example.com account=check",
        server.url(PATH)
    ));
    let (auth, acct) = svc.login("john.doe", "Passw0rd");
    assert_eq!((auth, acct), (PAM_SUCCESS, Some(PAM_SUCCESS)));
    // Only under its mapped name is this user in the directory.
    let unmapped = Service::module_line(&format!(
        "backend=mailstore url={} account=check",
        server.url(PATH)
    ));
    assert_eq!(
        unmapped.start("john.doe", None).acct_mgmt(),
        PAM_USER_UNKNOWN
    );
}

#[test]
fn malformed_domain_is_a_configuration_error() {
    let server = MailStore::new(&[]).serve();
    for bad in ["domain=@example.com", "domain=a@b"] {
        let svc =
            Service::module_line(&format!("backend=mailstore url={} {bad}", server.url(PATH)));
        assert_eq!(svc.auth("john.doe", "Passw0rd"), PAM_SERVICE_ERR, "{bad}");
    }
    assert_eq!(server.count(), 0);
}

#[test]
fn a_name_that_maps_to_nothing_never_reaches_the_backend() {
    // "@example.com" with strip_domain would leave an empty name.
    let server = MailStore::new(&[("", "Passw0rd")]).serve();
    let svc = Service::module_line(&format!(
        "backend=mailstore url={} strip_domain",
        server.url(PATH)
    ));
    assert_eq!(svc.auth("@example.com", "Passw0rd"), PAM_USER_UNKNOWN);
    assert_eq!(
        svc.start("@example.com", None).acct_mgmt(),
        PAM_USER_UNKNOWN
    );
    assert_eq!(server.count(), 0);
}
