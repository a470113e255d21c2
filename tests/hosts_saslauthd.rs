//! The module inside a real saslauthd (`-a pam`, the SMTP AUTH path of Postfix and Sendmail),
//! run with the service files from pam.d-examples/, asked through the real
//! `testsaslauthd` client. saslauthd loads and unloads the module for every request and calls
//! pam_acct_mgmt after every successful pam_authenticate.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};
use support::examples::Example;
use support::mailstore::MailStore;
use support::saslauthd::{Answer, Saslauthd, Setup};
use support::TempDir;

const PATH: &str = "/mailstore-integration/index.php";

#[test]
fn mailstore_right_and_wrong_password() {
    let server = MailStore::new(&[("john.doe@example.com", "Passw0rd")]).serve();
    let smtp = Example::load("smtp").mailstore(&server.url(PATH));
    let mut daemon = Saslauthd::start("smtp", &smtp.text);

    assert!(daemon.check("john.doe@example.com", "Passw0rd"));
    assert!(!daemon.check("john.doe@example.com", "passw0rd"));
    assert!(!daemon.check("nobody@example.com", "Passw0rd"));
    // An empty password never reaches the backend.
    assert!(!daemon.check("john.doe@example.com", ""));
    daemon.assert_alive();

    let users = names_asked(&server);
    assert_eq!(
        users,
        [
            "john.doe@example.com",
            "john.doe@example.com",
            "nobody@example.com"
        ]
    );
}

#[test]
fn mailstore_unreachable_is_a_no_and_the_daemon_lives_on() {
    let smtp = Example::load("smtp").mailstore(&support::http::refused_url());
    let mut daemon = Saslauthd::start("smtp", &smtp.text);
    assert!(!daemon.check("john.doe@example.com", "Passw0rd"));
    daemon.assert_alive();
}

/// Kopano's salted MD5 as the file backend stores it: 8 hex digits of salt, then
/// md5(salt || password) in hex.
const KOPANO_SECRET: &str = "0a1b2c3d8633ae2424d0813ebe58c8b23ccda08f";

#[test]
fn kopano_file_right_and_wrong_password() {
    let dir = TempDir::new("kopano");
    let users = dir.path().join("kopano-users");
    std::fs::write(
        &users,
        format!("john.doe:{KOPANO_SECRET}\njane:0a1b2c3d00000000000000000000000000000000\n"),
    )
    .unwrap();
    std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o600)).unwrap();
    let smtp =
        Example::load("smtp-kopano").with("/etc/security/kopano-users", users.to_str().unwrap());
    let mut daemon = Saslauthd::start("smtp", &smtp.text);
    assert!(
        daemon.check("john.doe", "secret"),
        "backend=kopano file= refused the right password"
    );
    assert!(!daemon.check("john.doe", "Secret"));
    assert!(!daemon.check("jane", "secret"));
    assert!(!daemon.check("nobody", "secret"));
    daemon.assert_alive();
}

#[test]
fn hundreds_of_sequential_authentications_are_answered_exactly() {
    let server = MailStore::new(&[("alice", "Al1ce pass"), ("bob", "b0b&pass=")]).serve();
    let smtp = Example::load("smtp").mailstore(&server.url(PATH));
    let mut daemon = Saslauthd::start("smtp", &smtp.text);
    let cases = [
        ("alice", "Al1ce pass", true),
        ("bob", "b0b&pass=", true),
        ("alice", "b0b&pass=", false),
        ("bob", "wrong", false),
        ("carol", "Al1ce pass", false),
    ];
    let total = 300;
    for i in 0..total {
        let (user, password, expected) = cases[i % cases.len()];
        assert_eq!(
            daemon.check(user, password),
            expected,
            "request {i}: {user}\n{}",
            daemon.log_tail()
        );
    }
    daemon.assert_alive();
    // Each request reached the backend exactly once (no retries, no cache, no skips).
    assert_eq!(server.count(), total);
}

#[test]
fn load_four_workers_eight_parallel_clients_eight_hundred_mixed_requests() {
    let server = MailStore::new(&[("alice", "Al1ce pass"), ("bob", "b0b&pass=")]).serve();
    let smtp = Example::load("smtp").mailstore(&server.url(PATH));
    let mut daemon = Saslauthd::start_with(Setup {
        services: &[("smtp", &smtp.text)],
        workers: 4,
        realm: false,
    });
    let clients = 8;
    let per_client = 100;
    let wrong = Arc::new(Mutex::new(Vec::new()));
    std::thread::scope(|s| {
        for c in 0..clients {
            let (daemon, wrong) = (&daemon, wrong.clone());
            s.spawn(move || {
                for i in 0..per_client {
                    let (user, password, expected) = match (c + i) % 4 {
                        0 => ("alice", "Al1ce pass", Answer::Ok),
                        1 => ("bob", "b0b&pass=", Answer::Ok),
                        2 => ("alice", "Al1ce pass ", Answer::No),
                        _ => ("mallory", "b0b&pass=", Answer::No),
                    };
                    let got = daemon.answer(user, password);
                    if got != expected {
                        wrong.lock().unwrap().push(format!(
                            "client {c} request {i}: {user}: expected {expected:?}, got {got:?}"
                        ));
                    }
                }
            });
        }
    });
    let wrong = wrong.lock().unwrap();
    assert!(
        wrong.is_empty(),
        "{} of {} answers wrong, first: {:?}\n{}",
        wrong.len(),
        clients * per_client,
        &wrong[..wrong.len().min(5)],
        daemon.log_tail()
    );
    daemon.assert_alive();
    assert_eq!(server.count(), clients * per_client);
}

#[test]
fn realm_from_saslauthd_r_reaches_the_backend_as_user_at_realm() {
    let server =
        MailStore::new(&[("john.doe@example.com", "Passw0rd"), ("john.doe", "Plain")]).serve();
    let smtp = Example::load("smtp").mailstore(&server.url(PATH));
    let stripped = Example::load("smtp")
        .mailstore(&server.url(PATH))
        .with("index.php\n", "index.php strip_domain\n");
    let mut daemon = Saslauthd::start_with(Setup {
        services: &[("smtp", &smtp.text), ("submission", &stripped.text)],
        workers: 2,
        realm: true,
    });
    // -r: the client's realm is appended before PAM sees the name.
    assert_eq!(
        daemon.ask("smtp", "john.doe", "Passw0rd", Some("example.com")),
        Answer::Ok
    );
    // strip_domain undoes it for a backend that knows bare names.
    assert_eq!(
        daemon.ask("submission", "john.doe", "Plain", Some("example.com")),
        Answer::Ok
    );
    // A name that already holds a domain gets the realm appended all the same.
    assert_eq!(
        daemon.ask(
            "smtp",
            "john.doe@example.com",
            "Passw0rd",
            Some("example.com")
        ),
        Answer::No
    );
    assert_eq!(
        daemon.ask(
            "submission",
            "john.doe@example.org",
            "Plain",
            Some("example.com")
        ),
        Answer::Ok
    );
    // Without a realm from the client, the name is passed as typed.
    assert_eq!(
        daemon.ask("smtp", "john.doe@example.com", "Passw0rd", None),
        Answer::Ok
    );
    daemon.assert_alive();
    let users = names_asked(&server);
    assert_eq!(
        users,
        [
            "john.doe@example.com",
            "john.doe",
            "john.doe@example.com@example.com",
            "john.doe",
            "john.doe@example.com"
        ]
    );
}

/// The user names the MailStore fake was asked about, in order.
fn names_asked(server: &support::http::Server) -> Vec<String> {
    server
        .requests()
        .iter()
        .map(|r| r.form().get("user").cloned().unwrap_or_default())
        .collect()
}
