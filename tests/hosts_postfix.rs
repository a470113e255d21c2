//! SMTP AUTH as mail admins deploy it: a private Postfix whose smtpd hands AUTH PLAIN/LOGIN to
//! Cyrus SASL, which asks saslauthd (`-a pam`), which runs
//! pam.d-examples/smtp with the built module against a MailStore fake that records every name
//! it is asked about. One Postfix and two saslauthds per run (CI time). smtpd listeners:
//!
//! | port | saslauthd | PAM service |
//! |---|---|---|
//! | `WITH_R` | `-r` | `smtp`: the example with `domain=example.test` |
//! | `WITHOUT_R` | no `-r` | `smtp` |
//! | `WITH_R_AS_IS` | `-r` | `smtp-as-is`: the example without mapping, so the backend is asked about exactly what the module received |
//! | `WITHOUT_R_AS_IS` | no `-r` | `smtp-as-is` |
//!
//! libsasl2 splits `user@realm` at the last `@` before saslauthd sees it; only `-r` joins the
//! two again. Without `-r` the module receives `jane` for `jane@evil.example`, and `domain=`
//! turns that into `jane@example.test`: docs/hosts-and-stacks.md, "Behind Postfix and
//! saslauthd".

mod support;

use base64::Engine;
use std::time::{Duration, Instant};
use support::examples::Example;
use support::http::{Reply, Server};
use support::mailstore::MailStore;
use support::postfix::{smtp_auth, smtp_session, Mech, Postfix};
use support::saslauthd::{Saslauthd, Setup};
use support::syslog::Capture;

const PATH: &str = "/mailstore-integration/index.php";
const JANE: &str = "jane@example.test";
const JANE_PW: &str = "Jane's-pw 1";
const JUERGEN: &str = "jürgen@example.test";
const JUERGEN_PW: &str = "Jü-pw 2 ñ";
/// The backend never answers for this user.
const HANG: &str = "hang@example.test";
const HANG_PW: &str = "Hang-pw 3";
/// The module's `timeout=` in this run.
const TIMEOUT: Duration = Duration::from_secs(2);

const WITH_R: usize = 0;
const WITHOUT_R: usize = 1;
const WITH_R_AS_IS: usize = 2;
const WITHOUT_R_AS_IS: usize = 3;

const ACCEPTED: u16 = 235;
const REFUSED: u16 = 535;

struct Stack {
    backend: Server,
    postfix: Postfix,
    /// Every (user, password) sent, for the log search at the end.
    sent: std::sync::Mutex<Vec<(String, String)>>,
}

impl Stack {
    /// AUTH on smtpd listener `port` (see the table at the top); returns the reply code and
    /// the names the backend was asked about meanwhile (none may be asked in parallel).
    fn auth(&self, port: usize, mech: Mech, user: &str, password: &str) -> (u16, Vec<String>) {
        self.sent
            .lock()
            .unwrap()
            .push((user.to_string(), password.to_string()));
        let before = self.backend.count();
        let reply = smtp_auth(self.postfix.port(port), mech, user, password);
        let asked = names_asked(&self.backend)[before..].to_vec();
        (reply.code, asked)
    }
}

#[test]
fn smtp_auth_through_postfix_cyrus_sasl_and_saslauthd() {
    let started = Instant::now();
    let capture = Capture::start();
    let store = MailStore::new(&[(JANE, JANE_PW), (JUERGEN, JUERGEN_PW)]);
    let backend = Server::start(move |req| {
        if req.form().get("user").map(String::as_str) == Some(HANG) {
            Reply::Hang
        } else {
            store.answer(req)
        }
    });
    // offline_interval=0: this fake hangs for one user only, and offline marking
    // (tests/offline.rs) would rightly take the whole URL out of that saslauthd worker for
    // the AUTHs that follow.
    let smtp = Example::load("smtp").mailstore(&backend.url(PATH)).with(
        "index.php\n",
        "index.php domain=example.test timeout=2 offline_interval=0\n",
    );
    let as_is = Example::load("smtp")
        .mailstore(&backend.url(PATH))
        .with("index.php\n", "index.php timeout=2 offline_interval=0\n");
    let syslog = [(support::confdir::USE_SYSLOG, "1")];
    let saslauthd = |realm| {
        Saslauthd::start_with_env(
            Setup {
                services: &[("smtp", &smtp.text), ("smtp-as-is", &as_is.text)],
                workers: 3,
                realm,
            },
            &syslog,
        )
    };
    let (mut with_r, mut without_r) = (saslauthd(true), saslauthd(false));
    capture.watch_session(with_r.session());
    capture.watch_session(without_r.session());
    // In the order of the port constants.
    let postfix = Postfix::start(&[
        (with_r.socket(), "smtp"),
        (without_r.socket(), "smtp"),
        (with_r.socket(), "smtp-as-is"),
        (without_r.socket(), "smtp-as-is"),
    ]);
    eprintln!("stack up after {:?}", started.elapsed());
    let stack = Stack {
        backend,
        postfix,
        sent: Default::default(),
    };

    right_wrong_and_unknown(&stack);
    realms_with_and_without_saslauthd_r(&stack);
    utf8_and_at_names(&stack);
    a_hanging_backend_is_bounded_and_others_are_served_meanwhile(&stack);
    parallel_clients_are_answered_exactly(&stack);

    // No crash: every daemon still runs with the processes it started with.
    with_r.assert_alive();
    without_r.assert_alive();
    stack.postfix.assert_alive();
    no_password_in_any_log(&stack, &capture, &[&with_r.log(), &without_r.log()]);
    eprintln!("whole run {:?}", started.elapsed());
}

fn right_wrong_and_unknown(stack: &Stack) {
    for mech in [Mech::Plain, Mech::Login] {
        assert_eq!(
            stack.auth(WITH_R, mech, JANE, JANE_PW),
            (ACCEPTED, vec![JANE.to_string()]),
            "{mech:?}: right password"
        );
        assert_eq!(
            stack.auth(WITH_R, mech, JANE, "jane's-pw 1"),
            (REFUSED, vec![JANE.to_string()]),
            "{mech:?}: wrong password"
        );
        assert_eq!(
            stack.auth(WITH_R, mech, "nobody@example.test", JANE_PW),
            (REFUSED, vec!["nobody@example.test".to_string()]),
            "{mech:?}: unknown user"
        );
    }
}

/// Issue 11.10: what the module receives through Postfix and Cyrus SASL.
fn realms_with_and_without_saslauthd_r(stack: &Stack) {
    // With -r: the address as typed. Another domain's jane is another user: refused.
    assert_eq!(
        stack.auth(WITH_R, Mech::Plain, "jane@evil.example", JANE_PW),
        (REFUSED, vec!["jane@evil.example".to_string()]),
        "saslauthd -r: jane@evil.example with jane@example.test's password"
    );
    // With -r, a bare name has no realm (smtpd_sasl_local_domain is empty): domain= adds it.
    assert_eq!(
        stack.auth(WITH_R, Mech::Plain, "jane", JANE_PW),
        (ACCEPTED, vec![JANE.to_string()]),
        "saslauthd -r: bare name plus domain="
    );
    // Without -r, libsasl2 drops everything from the last '@': the module receives "jane",
    // domain= makes it jane@example.test, and the other domain's login is accepted. This is
    // the configuration the docs now warn against.
    assert_eq!(
        stack.auth(WITHOUT_R, Mech::Plain, "jane@evil.example", JANE_PW),
        (ACCEPTED, vec![JANE.to_string()]),
        "without -r the realm never reaches the module"
    );
    assert_eq!(
        stack.auth(WITHOUT_R, Mech::Login, JANE, JANE_PW),
        (ACCEPTED, vec![JANE.to_string()])
    );
    // What the module itself receives (no mapping: the backend is asked about exactly that).
    let received = |port, user| stack.auth(port, Mech::Plain, user, "not-the-password").1;
    assert_eq!(
        received(WITH_R_AS_IS, "jane@evil.example"),
        ["jane@evil.example"]
    );
    assert_eq!(received(WITH_R_AS_IS, "jane"), ["jane"]);
    assert_eq!(received(WITHOUT_R_AS_IS, "jane@evil.example"), ["jane"]);
    assert_eq!(received(WITHOUT_R_AS_IS, JANE), ["jane"]);
    assert_eq!(
        received(WITHOUT_R_AS_IS, "jane@example.test@evil.example"),
        [JANE]
    );
    // Postfix itself keeps the login as typed: smtpd_sender_login_maps and
    // reject_sender_login_mismatch judge "jane@evil.example", a login the store never checked.
    let (auth, replies) = smtp_session(
        stack.postfix.port(WITHOUT_R),
        Mech::Plain,
        "jane@evil.example",
        JANE_PW,
        &[
            "MAIL FROM:<jane@example.test>",
            "RCPT TO:<rcpt@example.net>",
        ],
    );
    assert_eq!(auth.code, ACCEPTED);
    assert!(
        replies[1]
            .text
            .contains("not owned by user jane@evil.example"),
        "Postfix' view of the login: {replies:?}\n{}",
        stack.postfix.maillog()
    );
    stack
        .sent
        .lock()
        .unwrap()
        .push(("jane@evil.example".into(), JANE_PW.into()));
}

fn utf8_and_at_names(stack: &Stack) {
    assert_eq!(
        stack.auth(WITH_R, Mech::Plain, JUERGEN, JUERGEN_PW),
        (ACCEPTED, vec![JUERGEN.to_string()]),
        "UTF-8 name"
    );
    assert_eq!(
        stack.auth(WITH_R, Mech::Login, JUERGEN, "Jü-pw 2 n"),
        (REFUSED, vec![JUERGEN.to_string()])
    );
    // Two '@': libsasl2 splits at the last one, -r joins them again.
    assert_eq!(
        stack.auth(
            WITH_R,
            Mech::Plain,
            "jane@example.test@example.test",
            JANE_PW
        ),
        (REFUSED, vec!["jane@example.test@example.test".to_string()])
    );
    // Without -r the same login reaches the module as "jane@example.test".
    assert_eq!(
        stack.auth(
            WITHOUT_R,
            Mech::Plain,
            "jane@example.test@evil.example",
            JANE_PW
        ),
        (ACCEPTED, vec![JANE.to_string()])
    );
}

fn a_hanging_backend_is_bounded_and_others_are_served_meanwhile(stack: &Stack) {
    std::thread::scope(|s| {
        let hung = s.spawn(|| {
            let t = Instant::now();
            let reply = smtp_auth(stack.postfix.port(WITH_R), Mech::Plain, HANG, HANG_PW);
            (reply.code, t.elapsed())
        });
        // While one saslauthd worker waits on the backend, the others answer at once.
        std::thread::sleep(Duration::from_millis(300));
        let t = Instant::now();
        let reply = smtp_auth(stack.postfix.port(WITH_R), Mech::Plain, JANE, JANE_PW);
        assert_eq!(reply.code, ACCEPTED, "{reply:?}");
        assert!(
            // Well before the hung one ends (a fresh worker's first login costs ~0.5 s).
            t.elapsed() < TIMEOUT - Duration::from_millis(500),
            "a healthy login waited {:?} behind a hung one",
            t.elapsed()
        );
        let (code, took) = hung.join().unwrap();
        assert_eq!(code, REFUSED, "a hung backend is never a yes");
        assert!(
            took >= TIMEOUT && took < TIMEOUT + Duration::from_secs(3),
            "timeout=2 bounded the hung AUTH at {took:?}"
        );
    });
}

fn parallel_clients_are_answered_exactly(stack: &Stack) {
    let wrong = std::sync::Mutex::new(Vec::new());
    let before = stack.backend.count();
    std::thread::scope(|s| {
        for c in 0..6 {
            let wrong = &wrong;
            s.spawn(move || {
                for i in 0..6 {
                    let (user, password, expected) = match (c + i) % 4 {
                        0 => (JANE, JANE_PW, ACCEPTED),
                        1 => (JUERGEN, JUERGEN_PW, ACCEPTED),
                        2 => (JANE, JUERGEN_PW, REFUSED),
                        _ => ("mallory@example.test", JANE_PW, REFUSED),
                    };
                    let mech = if i % 2 == 0 { Mech::Plain } else { Mech::Login };
                    let reply = smtp_auth(stack.postfix.port(c % 2), mech, user, password);
                    if reply.code != expected {
                        wrong
                            .lock()
                            .unwrap()
                            .push(format!("client {c} #{i} {user}: {reply:?}"));
                    }
                }
            });
        }
    });
    let wrong = wrong.into_inner().unwrap();
    assert!(wrong.is_empty(), "wrong answers: {wrong:?}");
    assert_eq!(
        stack.backend.count() - before,
        36,
        "one backend request per AUTH"
    );
}

/// No password, nor the base64 of an AUTH PLAIN blob holding one, in Postfix's maillog,
/// saslauthd's output or the syslog lines of the module inside saslauthd.
fn no_password_in_any_log(stack: &Stack, capture: &Capture, daemon_logs: &[&str]) {
    let module_lines = capture.module_lines();
    eprintln!("{}", module_lines.join("\n"));
    assert!(
        module_lines
            .iter()
            .any(|l| l.contains("pam_mailauth(smtp:auth)")),
        "the syslog capture saw the module inside saslauthd: {module_lines:?}"
    );
    let mut logs = vec![stack.postfix.maillog(), module_lines.join("\n")];
    logs.extend(daemon_logs.iter().map(|l| l.to_string()));
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    for (user, password) in stack.sent.lock().unwrap().iter() {
        let plain = b64(&[b"\0", user.as_bytes(), b"\0", password.as_bytes()].concat());
        for needle in [password.clone(), b64(password.as_bytes()), plain] {
            for log in &logs {
                assert!(
                    !log.contains(&needle),
                    "{needle:?} ({user}'s password) found in a log:\n{log}"
                );
            }
        }
    }
    for log in &logs {
        for password in [JANE_PW, JUERGEN_PW, HANG_PW] {
            assert!(!log.contains(password), "{password:?} in a log:\n{log}");
        }
    }
}

/// The user names the MailStore fake was asked about, in order.
fn names_asked(server: &Server) -> Vec<String> {
    server
        .requests()
        .iter()
        .map(|r| r.form().get("user").cloned().unwrap_or_default())
        .collect()
}
