//! People type passwords into the user prompt. The one rule (spec.md, last bullet): a name
//! typed there is logged without `debug` only when the backend confirmed that user exists
//! (accepted, account disabled, or refused by a backend that can tell unknown users apart).
//! Every other path (unknown user, a refusal by a backend that cannot tell, empty password,
//! conversation failure, backend unavailable, a warning) leaves the name out unless `debug`.
//! Through real libpam, with syslog captured at /dev/log.

mod support;

use support::axigen::Axigen;
use support::http::refused_url;
use support::kopano_soap::KopanoServer;
use support::mailstore::MailStore;
use support::syslog::Capture;
use support::*;

/// A user name that is really somebody's password, typed into the user prompt.
const NAME: &str = "Tr0ub4dor&3-s3cr3t";
const PASSWORD: &str = "secret";
/// protocols.md's worked example: salt 0a1b2c3d + "secret".
const KOPANO_HASH: &str = "0a1b2c3d8633ae2424d0813ebe58c8b23ccda08f";

/// Runs one path and checks whether the module's log lines name the user.
fn expect(capture: &Capture, path: &str, shown: bool, run: impl FnOnce()) {
    capture.clear();
    run();
    let lines = capture.module_lines();
    assert!(!lines.is_empty(), "{path}: the module logged nothing");
    let named = lines
        .iter()
        .any(|l| l.contains(NAME) || l.to_lowercase().contains(&NAME.to_lowercase()));
    if shown {
        assert!(
            named,
            "{path}: the confirmed user should be named: {lines:#?}"
        );
    } else {
        assert!(!named, "{path}: the typed name was logged: {lines:#?}");
    }
}

fn auth(svc: &Service, user: &str, password: Option<&str>) -> i32 {
    svc.start(user, password).authenticate()
}

fn with_config(text: &str, args: &str) -> (Service, TempDir) {
    let dir = TempDir::new("names");
    let cfg = config_file(dir.path(), text, 0o600);
    (
        Service::new(&format!(
            "auth required MODULE {args} config={0}\naccount required MODULE {args} config={0}\n",
            cfg.display()
        )),
        dir,
    )
}

#[test]
fn names_are_logged_only_for_users_the_backend_confirmed() {
    let mailstore = MailStore::new(&[(NAME, PASSWORD)]).serve();
    let axigen = Axigen::new(&[(NAME, PASSWORD)]).serve();
    let kopano = KopanoServer::new(&[(NAME, PASSWORD)]);
    let soap = kopano.serve();
    let james = support::james::serve(&[(NAME, PASSWORD)]);
    let scim = support::scim::serve(&[(NAME, true), ("off-Tr0ub4dor&3-s3cr3t", false)]);
    let files = TempDir::new("names-kopano");
    let hashes = files.path().join("hashes");
    std::fs::write(&hashes, format!("{NAME}:{KOPANO_HASH}\n")).unwrap();
    // The hash file must not be readable by other (salted MD5 is cheap to crack).
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hashes, std::fs::Permissions::from_mode(0o600)).unwrap();

    let ms = |extra: &str| {
        Service::module_line(&format!(
            "backend=mailstore url={} {extra}",
            mailstore.url("/")
        ))
    };
    let kopano_file = Service::module_line(&format!("backend=kopano file={}", hashes.display()));
    let (james_svc, _j) = with_config(
        &format!("token = {}\n", support::james::ADMIN_JWT),
        &format!("backend=james url={}", james.url("/")),
    );
    let (scim_svc, _s) = with_config(
        &format!("token = {}\n", support::scim::JWT),
        &format!("backend=scim url={}", scim.url("/scim")),
    );
    let scim_account = |user: &str| scim_svc.start(user, None).acct_mgmt();

    let capture = Capture::start();

    // Confirmed users: named.
    expect(&capture, "accepted", true, || {
        assert_eq!(auth(&ms(""), NAME, Some(PASSWORD)), PAM_SUCCESS)
    });
    expect(&capture, "kopano file: wrong password", true, || {
        assert_eq!(auth(&kopano_file, NAME, Some("wrong")), PAM_AUTH_ERR)
    });
    expect(
        &capture,
        "mailstore account=check: wrong password",
        true,
        || {
            assert_eq!(
                auth(&ms("account=check"), NAME, Some("wrong")),
                PAM_AUTH_ERR
            )
        },
    );
    expect(&capture, "scim: account fine", true, || {
        assert_eq!(scim_account(NAME), PAM_SUCCESS)
    });
    expect(&capture, "scim: account disabled", true, || {
        assert_eq!(scim_account("off-Tr0ub4dor&3-s3cr3t"), PAM_PERM_DENIED)
    });

    // Everything else: not named.
    expect(&capture, "mailstore: wrong password", false, || {
        assert_eq!(auth(&ms(""), NAME, Some("wrong")), PAM_AUTH_ERR)
    });
    expect(&capture, "axigen: wrong password", false, || {
        let svc = Service::module_line(&format!("backend=axigen url={}", axigen.url("/")));
        assert_eq!(auth(&svc, NAME, Some("wrong")), PAM_AUTH_ERR)
    });
    expect(
        &capture,
        "axigen rest: a name Basic cannot carry",
        false,
        || {
            let svc =
                Service::module_line(&format!("backend=axigen api=rest url={}", axigen.url("/")));
            assert_eq!(auth(&svc, &format!("{NAME}:x"), Some("y")), PAM_AUTH_ERR)
        },
    );
    expect(&capture, "kopano soap: wrong password", false, || {
        let svc = Service::module_line(&format!("backend=kopano url={}", soap.url("/")));
        assert_eq!(auth(&svc, NAME, Some("wrong")), PAM_AUTH_ERR)
    });
    expect(&capture, "james: wrong password", false, || {
        assert_eq!(auth(&james_svc, NAME, Some("wrong")), PAM_AUTH_ERR)
    });
    expect(&capture, "kopano file: unknown user", false, || {
        let unknown = format!("x{NAME}");
        assert_eq!(
            auth(&kopano_file, &unknown, Some("secret")),
            PAM_USER_UNKNOWN
        )
    });
    expect(
        &capture,
        "mailstore account=check: unknown user",
        false,
        || {
            let unknown = format!("x{NAME}");
            assert_eq!(
                auth(&ms("account=check"), &unknown, Some("x")),
                PAM_USER_UNKNOWN
            );
            assert_eq!(
                ms("account=check").start(&unknown, None).acct_mgmt(),
                PAM_USER_UNKNOWN
            );
        },
    );
    expect(&capture, "scim: unknown user", false, || {
        assert_eq!(scim_account(&format!("x{NAME}")), PAM_USER_UNKNOWN)
    });
    expect(&capture, "empty password", false, || {
        assert_eq!(auth(&ms(""), NAME, Some("")), PAM_AUTH_ERR)
    });
    expect(&capture, "conversation failure", false, || {
        assert_ne!(auth(&ms(""), NAME, None), PAM_SUCCESS)
    });
    expect(&capture, "backend unavailable", false, || {
        let svc = Service::module_line(&format!("backend=mailstore url={}", refused_url()));
        assert_eq!(auth(&svc, NAME, Some(PASSWORD)), PAM_AUTHINFO_UNAVAIL)
    });

    // With debug the admin asked for names: the same refusal names the user.
    expect(&capture, "mailstore: wrong password, debug", true, || {
        assert_eq!(auth(&ms("debug"), NAME, Some("wrong")), PAM_AUTH_ERR)
    });
    expect(&capture, "empty password, debug", true, || {
        assert_eq!(auth(&ms("debug"), NAME, Some("")), PAM_AUTH_ERR)
    });
    drop(capture);
    assert!(kopano.logons().iter().all(|l| l.user == NAME));
}
