//! The module stacked with a local-account module, through real libpam (pam_start_confdir).
//! pam_unix is played by pam_exec with `expose_authtok` and a script that knows one local
//! user (testing.md §1): like pam_unix it prompts once, or takes the token an earlier module
//! obtained, and leaves PAM_AUTHTOK set for the modules below.

mod support;

use support::examples::{Example, LocalUnix, LOCAL_PASSWORD, LOCAL_USER};
use support::http::refused_url;
use support::mailstore::MailStore;
use support::*;

const PATH: &str = "/mailstore-integration/index.php";
const MAIL_USER: &str = "john.doe@example.com";
const MAIL_PASSWORD: &str = "Passw0rd mail";

fn mail_server() -> support::http::Server {
    MailStore::new(&[(MAIL_USER, MAIL_PASSWORD)]).serve()
}

/// Runs auth (and account after a successful auth) and reports codes and prompt count.
fn run(dir: &TempDir, service: &str, user: &str, password: &str) -> (i32, Option<i32>, usize) {
    let mut t = Transaction::start(dir.path(), service, user, Some(password));
    let auth = t.authenticate();
    let acct = (auth == PAM_SUCCESS).then(|| t.acct_mgmt());
    (auth, acct, t.prompts())
}

/// A stack written inline: `MODULE` is the built module, `UNIX` the pam_unix stand-in's auth
/// line, `UNIXACCT` its account line.
fn stack(text: &str, unix: &LocalUnix) -> TempDir {
    let dir = TempDir::new("stack");
    let text = text
        .replace("UNIXACCT", &unix.account_module())
        .replace("UNIX", &unix.auth_module())
        .replace("MODULE", module().to_str().unwrap());
    std::fs::write(dir.path().join("login"), text).unwrap();
    dir
}

#[test]
fn debian_style_stack_asks_once_and_sends_each_user_to_the_right_place() {
    let server = mail_server();
    let unix = LocalUnix::new();
    let example = Example::load("common-auth")
        .mailstore(&server.url(PATH))
        .with("pam_unix.so nullok", &unix.auth_module())
        .with("pam_unix.so\n", &format!("{}\n", unix.account_module()));
    let dir = example.install("common-auth");

    // A mail user: pam_unix (stand-in) prompts and fails, pam_mailauth takes its token.
    assert_eq!(
        run(&dir, "common-auth", MAIL_USER, MAIL_PASSWORD),
        (PAM_SUCCESS, Some(PAM_SUCCESS), 1)
    );
    assert_eq!(server.count(), 1);
    let form = server.requests()[0].form();
    assert_eq!(form.get("pass").map(String::as_str), Some(MAIL_PASSWORD));

    // Wrong password: denied, still asked once.
    let (auth, _, prompts) = run(&dir, "common-auth", MAIL_USER, "Passw0rd");
    assert_eq!((auth, prompts), (PAM_AUTH_ERR, 1));

    // A local user: pam_unix says yes, the mail store is never asked.
    let before = server.count();
    assert_eq!(
        run(&dir, "common-auth", LOCAL_USER, LOCAL_PASSWORD),
        (PAM_SUCCESS, Some(PAM_SUCCESS), 1)
    );
    assert_eq!(server.count(), before);

    // Neither: denied.
    let (auth, _, prompts) = run(&dir, "common-auth", "stranger", "x");
    assert_eq!((auth, prompts), (PAM_AUTH_ERR, 1));
}

#[test]
fn use_first_pass_and_try_first_pass_below_a_local_module_ask_once() {
    let server = mail_server();
    let unix = LocalUnix::new();
    for option in ["use_first_pass", "try_first_pass"] {
        let dir = stack(
            &format!(
                "auth [success=done default=ignore] UNIX\n\
                 auth required MODULE backend=mailstore url={} {option}\n",
                server.url(PATH)
            ),
            &unix,
        );
        let mut t = Transaction::start(dir.path(), "login", MAIL_USER, Some(MAIL_PASSWORD));
        assert_eq!(t.authenticate(), PAM_SUCCESS, "{option}");
        assert_eq!(t.prompts(), 1, "{option}");
        let mut t = Transaction::start(dir.path(), "login", MAIL_USER, Some("wrong"));
        assert_eq!(t.authenticate(), PAM_AUTH_ERR, "{option}");
        assert_eq!(t.prompts(), 1, "{option}");
        let mut t = Transaction::start(dir.path(), "login", LOCAL_USER, Some(LOCAL_PASSWORD));
        assert_eq!(t.authenticate(), PAM_SUCCESS, "{option}");
        assert_eq!(t.prompts(), 1, "{option}");
    }
    // Every mail check carried the token the local module obtained.
    let passwords: Vec<String> = server
        .requests()
        .iter()
        .map(|r| r.form().get("pass").cloned().unwrap_or_default())
        .collect();
    assert_eq!(passwords, [MAIL_PASSWORD, "wrong", MAIL_PASSWORD, "wrong"]);
}

#[test]
fn without_first_pass_options_the_module_asks_again() {
    // The contrast that makes the test above mean something: a plain module line prompts.
    let server = mail_server();
    let unix = LocalUnix::new();
    let dir = stack(
        &format!(
            "auth [success=done default=ignore] UNIX\n\
             auth required MODULE backend=mailstore url={}\n",
            server.url(PATH)
        ),
        &unix,
    );
    let mut t = Transaction::start(dir.path(), "login", MAIL_USER, Some(MAIL_PASSWORD));
    assert_eq!(t.authenticate(), PAM_SUCCESS);
    assert_eq!(t.prompts(), 2);
}

#[test]
fn local_user_still_passes_below_sufficient_pam_mailauth() {
    let server = mail_server();
    let unix = LocalUnix::new();
    let dir = stack(
        &format!(
            "auth sufficient MODULE backend=mailstore url={}\n\
             auth required UNIX\n\
             account sufficient MODULE backend=mailstore url={}\n\
             account required UNIXACCT\n",
            server.url(PATH),
            server.url(PATH)
        ),
        &unix,
    );
    // The mail store says no to the local user; pam_unix below reuses the token: one prompt.
    assert_eq!(
        run(&dir, "login", LOCAL_USER, LOCAL_PASSWORD),
        (PAM_SUCCESS, Some(PAM_SUCCESS), 1)
    );
    assert_eq!(
        run(&dir, "login", MAIL_USER, MAIL_PASSWORD),
        (PAM_SUCCESS, Some(PAM_SUCCESS), 1)
    );
    let (auth, _, prompts) = run(&dir, "login", LOCAL_USER, "wrong");
    assert_ne!(auth, PAM_SUCCESS);
    assert_eq!(prompts, 1);
    let (auth, _, _) = run(&dir, "login", MAIL_USER, "wrong");
    assert_ne!(auth, PAM_SUCCESS);
}

/// `[success=done ignore=ignore default=die]`: the mail store decides for its users; only
/// what the module steps aside for reaches the local module.
fn lenient_stack(unix: &LocalUnix, url: &str, args: &str) -> TempDir {
    stack(
        &format!(
            "auth [success=done ignore=ignore default=die] MODULE backend=mailstore url={url} {args}\n\
             auth required UNIX\n"
        ),
        unix,
    )
}

#[test]
fn ignore_unknown_user_passes_control_down() {
    let server = mail_server();
    let unix = LocalUnix::new();
    let url = server.url(PATH);

    let lenient = lenient_stack(&unix, &url, "account=check ignore_unknown_user");
    let mut t = Transaction::start(lenient.path(), "login", LOCAL_USER, Some(LOCAL_PASSWORD));
    assert_eq!(t.authenticate(), PAM_SUCCESS);
    assert_eq!(t.prompts(), 1);
    // A mail user with a wrong password is a definite no: not retried against local accounts.
    let mut t = Transaction::start(lenient.path(), "login", MAIL_USER, Some("wrong"));
    assert_eq!(t.authenticate(), PAM_AUTH_ERR);
    let mut t = Transaction::start(lenient.path(), "login", MAIL_USER, Some(MAIL_PASSWORD));
    assert_eq!(t.authenticate(), PAM_SUCCESS);

    // Without the option the unknown user ends the stack.
    let strict = lenient_stack(&unix, &url, "account=check");
    let mut t = Transaction::start(strict.path(), "login", LOCAL_USER, Some(LOCAL_PASSWORD));
    assert_eq!(t.authenticate(), PAM_USER_UNKNOWN);

    // The module alone says which it is: unknown, or known with a wrong password.
    let alone = Service::module_line(&format!("backend=mailstore url={url} account=check"));
    assert_eq!(alone.auth(LOCAL_USER, LOCAL_PASSWORD), PAM_USER_UNKNOWN);
    assert_eq!(alone.auth(MAIL_USER, "wrong"), PAM_AUTH_ERR);
}

#[test]
fn ignore_authinfo_unavail_passes_control_down_when_the_store_is_down() {
    let unix = LocalUnix::new();
    let down = refused_url();

    let lenient = lenient_stack(&unix, &down, "ignore_authinfo_unavail");
    let mut t = Transaction::start(lenient.path(), "login", LOCAL_USER, Some(LOCAL_PASSWORD));
    assert_eq!(t.authenticate(), PAM_SUCCESS);
    assert_eq!(t.prompts(), 1);
    // Mail users are not let in by it: the local module below says no.
    let mut t = Transaction::start(lenient.path(), "login", MAIL_USER, Some(MAIL_PASSWORD));
    assert_ne!(t.authenticate(), PAM_SUCCESS);

    let strict = lenient_stack(&unix, &down, "");
    let mut t = Transaction::start(strict.path(), "login", LOCAL_USER, Some(LOCAL_PASSWORD));
    assert_eq!(t.authenticate(), PAM_AUTHINFO_UNAVAIL);
}

#[test]
fn ignore_authinfo_unavail_applies_to_the_account_phase_too() {
    let unix = LocalUnix::new();
    let down = refused_url();
    let text = |args: &str| {
        format!(
            "account [success=done ignore=ignore default=die] MODULE backend=mailstore url={down} account=check {args}\n\
             account required UNIXACCT\n"
        )
    };
    let lenient = stack(&text("ignore_authinfo_unavail"), &unix);
    let mut t = Transaction::start(lenient.path(), "login", LOCAL_USER, None);
    assert_eq!(t.acct_mgmt(), PAM_SUCCESS);
    let mut t = Transaction::start(lenient.path(), "login", MAIL_USER, None);
    assert_ne!(t.acct_mgmt(), PAM_SUCCESS);

    let strict = stack(&text(""), &unix);
    let mut t = Transaction::start(strict.path(), "login", LOCAL_USER, None);
    assert_eq!(t.acct_mgmt(), PAM_AUTHINFO_UNAVAIL);
}

#[test]
fn a_password_that_is_not_utf8_is_refused_here_and_reaches_the_modules_below_intact() {
    use std::os::unix::fs::PermissionsExt;
    // A Latin-1 client types "müller": one byte 0xFC, not UTF-8. No mail backend can be asked
    // that faithfully, so the module refuses it without asking; pam_unix below (here a
    // stand-in comparing the exact bytes) must still get what was typed, not a "repaired" copy.
    let server = MailStore::new(&[("anna", "m\u{fc}ller")]).serve();
    let dir = TempDir::new("latin1");
    let script = dir.path().join("check-bytes.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\npw=$(tr -d '\\000')\n[ \"$pw\" = \"$(printf 'm\\374ller')\" ]\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let svc = Service::new(&format!(
        "auth optional MODULE backend=mailstore url={}\n\
         auth required pam_exec.so expose_authtok quiet {}\n",
        server.url("/"),
        script.display()
    ));
    let mut t = svc.start_raw("anna", b"m\xfcller");
    assert_eq!(
        t.authenticate(),
        PAM_SUCCESS,
        "the raw bytes reached pam_exec"
    );
    assert_eq!(t.prompts(), 1);
    assert_eq!(server.count(), 0, "a non-UTF-8 password is never sent");
    // The same stack with the module required: its refusal decides.
    let svc = Service::module_line(&format!("backend=mailstore url={}", server.url("/")));
    assert_eq!(
        svc.start_raw("anna", b"m\xfcller").authenticate(),
        PAM_AUTH_ERR
    );
    assert_eq!(server.count(), 0);
}
