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
fn james_token_is_a_secret() {
    let svc = Service::module_line("backend=james url=http://127.0.0.1:9/ token=abc");
    assert_eq!(svc.auth("a", "b"), PAM_SERVICE_ERR);
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
