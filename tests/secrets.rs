//! No password or secret reaches syslog, even with `debug`, while the decisions do; and the
//! options' `Debug` output redacts every secret.

mod support;

use base64::Engine;
use pam_mailauth::options::Options;
use support::http::{Reply, Server};
use support::mailstore::MailStore;
use support::syslog::Capture;
use support::*;

const USER: &str = "john.doe";
const RIGHT: &str = "Right-Pa55-w0rd";
const WRONG: &str = "Wrong-Gue55-w0rd";
const BASIC_USER: &str = "mailstore@example.test";
const BASIC_PASSWORD: &str = "Basic-S3cret-xyzzy";

/// Every form a secret could take on its way into a log line.
fn forms(secret: &str) -> Vec<String> {
    vec![
        secret.to_string(),
        secret.replace('-', "%2D"),
        base64::engine::general_purpose::STANDARD.encode(secret),
        base64::engine::general_purpose::STANDARD.encode(format!("{BASIC_USER}:{secret}")),
    ]
}

fn assert_no_secret(messages: &[String]) {
    for secret in [RIGHT, WRONG, BASIC_PASSWORD] {
        for form in forms(secret) {
            for m in messages {
                assert!(!m.contains(&form), "secret {form:?} in syslog: {m}");
            }
        }
    }
}

#[test]
fn debug_logs_decisions_but_never_secrets() {
    let server = MailStore::new(&[(USER, RIGHT)])
        .basic(BASIC_USER, BASIC_PASSWORD)
        .serve();
    let dir = TempDir::new("secrets");
    let config = config_file(
        dir.path(),
        &format!(
            "backend = mailstore\nurl = {}\nhttp_user = {BASIC_USER}\nhttp_password = {BASIC_PASSWORD}\n\
             debug\naccount = check\n",
            server.url("/mailstore-integration/index.php")
        ),
        0o640,
    );
    let svc = Service::module_line(&format!("config={}", config.display()));
    let capture = Capture::start();

    let mut t = svc.start(USER, Some(RIGHT));
    t.set_rhost("192.0.2.7");
    assert_eq!(t.authenticate(), PAM_SUCCESS);
    assert_eq!(t.acct_mgmt(), PAM_SUCCESS);
    drop(t);
    assert_eq!(svc.auth(USER, WRONG), PAM_AUTH_ERR);
    // The server really checked the Basic credentials from the file.
    assert!(server
        .requests()
        .iter()
        .all(|r| r.basic_auth() == Some((BASIC_USER.into(), BASIC_PASSWORD.into()))));

    let all: Vec<String> = capture.messages().into_iter().map(|m| m.raw).collect();
    let module: Vec<&String> = all.iter().filter(|m| m.contains("pam_mailauth(")).collect();
    // debug was on (the debug line is there), and both decisions were logged with who/where.
    assert!(
        module
            .iter()
            .any(|m| m.contains("asking backend=mailstore")),
        "{all:#?}"
    );
    assert!(
        module
            .iter()
            .any(|m| m.contains("auth: accepted for user 'john.doe'")
                && m.contains("rhost=192.0.2.7")
                && m.contains("backend=mailstore")),
        "{all:#?}"
    );
    assert!(
        module
            .iter()
            .any(|m| m.contains("auth: refused for user 'john.doe'")),
        "{all:#?}"
    );
    assert!(
        module.iter().any(|m| m.contains("account: accepted")),
        "{all:#?}"
    );
    assert_no_secret(&all);
}

#[test]
fn failure_paths_log_no_secret_either() {
    // The endpoint refusing the module's own credentials, a garbage answer, and the secret
    // given as a module argument: each logs why, none logs the secret.
    let picky = MailStore::new(&[(USER, RIGHT)])
        .basic(BASIC_USER, "something-else")
        .serve();
    let garbage = Server::start(|_| Reply::status(200, "text/json", format!("{{ {RIGHT} }}")));
    let dir = TempDir::new("secrets");
    let config = config_file(
        dir.path(),
        &format!("http_user = {BASIC_USER}\nhttp_password = {BASIC_PASSWORD}\ndebug\n"),
        0o600,
    );
    let capture = Capture::start();
    let with_file = |url: String| {
        Service::module_line(&format!(
            "backend=mailstore url={url} config={}",
            config.display()
        ))
    };
    assert_eq!(
        with_file(picky.url("/")).auth(USER, RIGHT),
        PAM_AUTHINFO_UNAVAIL
    );
    assert_eq!(
        Service::module_line(&format!("backend=mailstore url={} debug", garbage.url("/")))
            .auth(USER, WRONG),
        PAM_AUTHINFO_UNAVAIL
    );
    assert_eq!(
        Service::module_line(&format!(
            "backend=mailstore url={} http_user={BASIC_USER} http_password={BASIC_PASSWORD}",
            picky.url("/")
        ))
        .auth(USER, RIGHT),
        PAM_SERVICE_ERR
    );
    let all: Vec<String> = capture.messages().into_iter().map(|m| m.raw).collect();
    assert!(
        all.iter()
            .any(|m| m.contains("refused the module's own credentials")),
        "{all:#?}"
    );
    assert!(
        all.iter()
            .any(|m| m.contains("configuration error") && m.contains("'http_password'")),
        "{all:#?}"
    );
    // The garbage answer echoed RIGHT back; the module must not copy answers into the log.
    assert_no_secret(&all);
}

#[test]
fn options_debug_output_redacts_every_secret() {
    let text = format!(
        "backend = mailstore\nurl = http://127.0.0.1:9/\nhttp_user = {BASIC_USER}\n\
         http_password = {BASIC_PASSWORD}\ntoken = tok-{BASIC_PASSWORD}\n"
    );
    let opts = Options::parse_config_text(&text, &["debug"]).unwrap();
    let shown = format!("{opts:?} {opts:#?}");
    assert!(shown.contains(BASIC_USER), "the user name is not secret");
    assert!(!shown.contains("S3cret"), "{shown}");

    let kopano = Options::parse_config_text(
        &format!("backend = kopano\ndsn = mysql://kopano:{BASIC_PASSWORD}@db:3306/kopano\n"),
        &[] as &[&str],
    )
    .unwrap();
    let shown = format!("{kopano:?}");
    assert!(!shown.contains("S3cret"), "{shown}");
}
