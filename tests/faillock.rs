//! pam.d-examples/faillock, run as written through libpam: pam_faillock (the system's own
//! module, its tally in a private dir=) around pam_mailauth, against a fake MailStore that
//! counts the requests it is sent.

mod support;

use support::examples::Example;
use support::http::{refused_url, Server};
use support::mailstore::MailStore;
use support::*;

/// A user the system knows (Debian's base-passwd has it on every machine): pam_faillock only
/// counts users it can look up with getpwnam.
const SYSTEM_USER: &str = "mail";
const SYSTEM_PASSWORD: &str = "Mail syst3m pass";
/// A virtual mailbox, in no user database of this system.
const MAILBOX: &str = "john.doe@example.com";
const MAILBOX_PASSWORD: &str = "Passw0rd mail";
const PATH: &str = "/mailstore-integration/index.php";

struct Stack {
    service: TempDir,
    _tally: TempDir,
}

/// The example with its MailStore URL pointing at `url` and its tally in a fresh directory.
fn stack(url: &str, tally: Option<&TempDir>) -> (Stack, String) {
    let own = TempDir::new("faillock-tally");
    let dir = tally.map_or(own.path(), |t| t.path()).display().to_string();
    let example = Example::load("faillock")
        .mailstore(url)
        .with("pam_faillock.so", &format!("pam_faillock.so dir={dir}"));
    (
        Stack {
            service: example.install("mail"),
            _tally: own,
        },
        dir,
    )
}

fn auth(stack: &Stack, user: &str, password: &str) -> i32 {
    Transaction::start(stack.service.path(), "mail", user, Some(password)).authenticate()
}

fn login(stack: &Stack, user: &str, password: &str) -> (i32, Option<i32>) {
    let mut t = Transaction::start(stack.service.path(), "mail", user, Some(password));
    let a = t.authenticate();
    (a, (a == PAM_SUCCESS).then(|| t.acct_mgmt()))
}

fn server() -> Server {
    MailStore::new(&[(SYSTEM_USER, SYSTEM_PASSWORD), (MAILBOX, MAILBOX_PASSWORD)]).serve()
}

#[test]
fn after_deny_failures_a_system_user_is_refused_before_the_mail_server_is_asked() {
    assert!(
        std::process::Command::new("getent")
            .args(["passwd", SYSTEM_USER])
            .status()
            .unwrap()
            .success(),
        "the test needs the system user '{SYSTEM_USER}'"
    );
    let server = server();
    let (stack, _) = stack(&server.url(PATH), None);
    assert_eq!(
        login(&stack, SYSTEM_USER, SYSTEM_PASSWORD),
        (PAM_SUCCESS, Some(PAM_SUCCESS))
    );
    for _ in 0..3 {
        assert_eq!(auth(&stack, SYSTEM_USER, "guess"), PAM_AUTH_ERR);
    }
    assert_eq!(server.count(), 4, "each failure was a real check");
    // deny=3 reached: even the right password is refused, and the mail server never hears of it.
    assert_eq!(auth(&stack, SYSTEM_USER, SYSTEM_PASSWORD), PAM_AUTH_ERR);
    assert_eq!(auth(&stack, SYSTEM_USER, "guess"), PAM_AUTH_ERR);
    assert_eq!(
        server.count(),
        4,
        "preauth refused before the mail server was asked"
    );
}

#[test]
fn a_success_clears_the_count() {
    let server = server();
    let (stack, _) = stack(&server.url(PATH), None);
    for _ in 0..2 {
        assert_eq!(auth(&stack, SYSTEM_USER, "guess"), PAM_AUTH_ERR);
    }
    assert_eq!(
        login(&stack, SYSTEM_USER, SYSTEM_PASSWORD),
        (PAM_SUCCESS, Some(PAM_SUCCESS))
    );
    for _ in 0..2 {
        assert_eq!(auth(&stack, SYSTEM_USER, "guess"), PAM_AUTH_ERR);
    }
    assert_eq!(
        login(&stack, SYSTEM_USER, SYSTEM_PASSWORD),
        (PAM_SUCCESS, Some(PAM_SUCCESS))
    );
}

#[test]
fn virtual_mailboxes_are_never_counted_by_pam_faillock() {
    let server = server();
    let (stack, _) = stack(&server.url(PATH), None);
    for _ in 0..6 {
        assert_eq!(auth(&stack, MAILBOX, "guess"), PAM_AUTH_ERR);
    }
    assert_eq!(server.count(), 6, "every guess reached the mail server");
    assert_eq!(
        login(&stack, MAILBOX, MAILBOX_PASSWORD),
        (PAM_SUCCESS, Some(PAM_SUCCESS)),
        "never locked: the module's own throttle is what protects mailboxes"
    );
}

#[test]
fn an_unreachable_mail_server_locks_nobody_out() {
    let server = server();
    let tally = TempDir::new("faillock-shared");
    let (down, _) = stack(&refused_url(), Some(&tally));
    for _ in 0..5 {
        assert_eq!(
            auth(&down, SYSTEM_USER, SYSTEM_PASSWORD),
            PAM_AUTHINFO_UNAVAIL
        );
    }
    let (up, dir) = stack(&server.url(PATH), Some(&tally));
    assert_eq!(dir, tally.path().display().to_string());
    assert_eq!(
        login(&up, SYSTEM_USER, SYSTEM_PASSWORD),
        (PAM_SUCCESS, Some(PAM_SUCCESS))
    );
}
