//! IMAP logins as mail admins deploy them: a private Dovecot 2.3 whose auth worker runs
//! `passdb { driver = pam args = session=yes imap }` with
//! pam.d-examples/imap as written (module path and MailStore URL replaced), against a
//! MailStore fake that records every name it is asked about. One Dovecot per run (CI time).
//!
//! Dovecot calls pam_authenticate, pam_acct_mgmt, and with `session=yes` pam_open_session and
//! pam_close_session in one handle: the example's `session` line must answer PAM_SUCCESS for
//! the user the module authenticated, or libpam denies every login.

mod support;

use base64::Engine;
use std::time::{Duration, Instant};
use support::dovecot::{Answer, Dovecot};
use support::examples::Example;
use support::http::{Reply, Server};
use support::mailstore::MailStore;
use support::syslog::Capture;
use support::{Service, PAM_AUTH_ERR, PAM_SUCCESS};

const PATH: &str = "/mailstore-integration/index.php";
const JANE: &str = "jane@example.test";
const JANE_PW: &str = "Jane's-imap-pw 1";
const JUERGEN: &str = "jürgen@example.test";
const JUERGEN_PW: &str = "Jü-imap-pw 2 ñ";
/// The backend never answers for this user.
const HANG: &str = "hang@example.test";
const HANG_PW: &str = "Hang-imap-pw 3";
const TIMEOUT: Duration = Duration::from_secs(2);

struct Stack {
    backend: Server,
    dovecot: Dovecot,
    sent: std::sync::Mutex<Vec<(String, String)>>,
}

#[derive(Clone, Copy, Debug)]
enum How {
    Login,
    Plain,
}

impl Stack {
    /// One login; returns Dovecot's answer and the names the backend was asked meanwhile.
    fn login(&self, how: How, user: &str, password: &str) -> (Answer, Vec<String>) {
        self.sent
            .lock()
            .unwrap()
            .push((user.to_string(), password.to_string()));
        let before = self.backend.count();
        let answer = match how {
            How::Login => self.dovecot.login(user, password),
            How::Plain => self.dovecot.authenticate_plain(user, password),
        };
        (answer, names_asked(&self.backend)[before..].to_vec())
    }
}

#[test]
fn imap_logins_through_dovecot_pam_passdb_with_sessions() {
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
    // (tests/offline.rs) would rightly take the whole URL out of that auth worker for the
    // logins that follow.
    let imap = Example::load("imap")
        .mailstore(&backend.url(PATH))
        .with("index.php\n", "index.php timeout=2 offline_interval=0\n");
    let dovecot = Dovecot::start("imap", &imap.text, "session=yes imap");
    capture.watch_session(dovecot.session());
    eprintln!("dovecot up after {:?}", started.elapsed());
    let mut stack = Stack {
        backend,
        dovecot,
        sent: Default::default(),
    };

    right_wrong_and_unknown(&stack);
    names_as_dovecot_passes_them(&stack);
    a_hanging_backend_is_bounded_and_others_are_served_meanwhile(&stack);
    parallel_clients_are_answered_exactly(&stack);

    stack.dovecot.assert_alive();
    let module_lines = capture.module_lines();
    // Dovecot passes the client's address as PAM_RHOST.
    assert!(
        module_lines
            .iter()
            .any(|l| l.contains("pam_mailauth(imap:auth)") && l.contains("rhost=127.0.0.1")),
        "the module's lines from Dovecot's auth worker: {module_lines:?}"
    );
    no_password_in_any_log(&stack, &module_lines);
    eprintln!("whole run {:?}", started.elapsed());
    let _ = &mut stack;
}

fn right_wrong_and_unknown(stack: &Stack) {
    for how in [How::Login, How::Plain] {
        assert_eq!(
            stack.login(how, JANE, JANE_PW),
            (Answer::Ok, vec![JANE.to_string()]),
            "{how:?}: right password (session=yes: the session line must answer SUCCESS)\n{}",
            stack.dovecot.log()
        );
        let (answer, asked) = stack.login(how, JANE, "jane's-imap-pw 1");
        assert!(answer.is_refusal(), "{how:?}: wrong password: {answer:?}");
        assert_eq!(asked, [JANE]);
        let (answer, asked) = stack.login(how, "nobody@example.test", JANE_PW);
        assert!(answer.is_refusal(), "{how:?}: unknown user: {answer:?}");
        assert_eq!(asked, ["nobody@example.test"]);
    }
}

/// Dovecot lower-cases names (`auth_username_format = %Lu`), ASCII letters only, and passes
/// UTF-8 and `@` through with `auth_username_chars` empty.
fn names_as_dovecot_passes_them(stack: &Stack) {
    assert_eq!(
        stack.login(How::Login, "Jane@Example.TEST", JANE_PW),
        (Answer::Ok, vec![JANE.to_string()])
    );
    assert_eq!(
        stack.login(How::Plain, JUERGEN, JUERGEN_PW),
        (Answer::Ok, vec![JUERGEN.to_string()])
    );
    let (answer, asked) = stack.login(How::Plain, "JÜRGEN@example.test", JUERGEN_PW);
    assert_eq!(
        asked,
        ["jÜrgen@example.test"],
        "only ASCII letters are folded"
    );
    assert!(answer.is_refusal(), "{answer:?}");
    let (answer, asked) = stack.login(How::Plain, "jane@example.test@evil.example", JANE_PW);
    assert_eq!(asked, ["jane@example.test@evil.example"], "no split at '@'");
    assert!(answer.is_refusal(), "{answer:?}");
}

fn a_hanging_backend_is_bounded_and_others_are_served_meanwhile(stack: &Stack) {
    std::thread::scope(|s| {
        let hung = s.spawn(|| {
            let t = Instant::now();
            (stack.dovecot.login(HANG, HANG_PW), t.elapsed())
        });
        std::thread::sleep(Duration::from_millis(300));
        // Dovecot runs PAM in several auth workers: a hung one does not hold the others.
        let t = Instant::now();
        assert_eq!(stack.dovecot.login(JANE, JANE_PW), Answer::Ok);
        assert!(
            // Well before the hung one ends (a fresh worker's first login costs ~0.5 s).
            t.elapsed() < TIMEOUT - Duration::from_millis(500),
            "a healthy login waited {:?} behind a hung one",
            t.elapsed()
        );
        let (answer, took) = hung.join().unwrap();
        // Dovecot's PAM passdb reports every PAM error but PAM_USER_UNKNOWN as a password
        // mismatch: the module's PAM_AUTHINFO_UNAVAIL reaches the client as a refusal.
        assert!(
            answer.is_refusal(),
            "a hung backend is never a yes: {answer:?}"
        );
        assert!(
            took >= TIMEOUT && took < TIMEOUT + Duration::from_secs(3),
            "timeout=2 bounded the hung login at {took:?}"
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
                    let (user, password, ok) = match (c + i) % 4 {
                        0 => (JANE, JANE_PW, true),
                        1 => (JUERGEN, JUERGEN_PW, true),
                        2 => (JANE, JUERGEN_PW, false),
                        _ => ("mallory@example.test", JANE_PW, false),
                    };
                    let answer = if i % 2 == 0 {
                        stack.dovecot.login(user, password)
                    } else {
                        stack.dovecot.authenticate_plain(user, password)
                    };
                    if (answer == Answer::Ok) != ok || !(ok || answer.is_refusal()) {
                        wrong
                            .lock()
                            .unwrap()
                            .push(format!("client {c} #{i} {user}: {answer:?}"));
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
        "one backend request per login"
    );
}

/// No password (nor base64 of an AUTHENTICATE PLAIN blob) in Dovecot's log (auth_verbose) or
/// the module's syslog lines from Dovecot's auth worker.
fn no_password_in_any_log(stack: &Stack, module_lines: &[String]) {
    let logs = [stack.dovecot.log(), module_lines.join("\n")];
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let mut sent = stack.sent.lock().unwrap().clone();
    sent.push((HANG.into(), HANG_PW.into()));
    for (user, password) in sent {
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
}

/// The session hooks through libpam: PAM_SUCCESS for the user this module authenticated in
/// this handle (so a `session` line of this module alone lets the login through), PAM_IGNORE
/// otherwise (a stack of ignoring modules is a denial: libpam answers PAM_PERM_DENIED... or
/// whatever it answers, as long as it is not PAM_SUCCESS).
#[test]
fn session_hooks_answer_as_setcred_does() {
    let backend = MailStore::new(&[(JANE, JANE_PW)]).serve();
    let url = backend.url(PATH);
    let service = Service::new(&format!(
        "auth required MODULE backend=mailstore url={url}\n\
         account required MODULE backend=mailstore url={url}\n\
         session required MODULE\n"
    ));

    // Authenticated in this handle: open and close succeed (Dovecot's session=yes order).
    let mut t = service.start(JANE, Some(JANE_PW));
    assert_eq!(t.authenticate(), PAM_SUCCESS);
    assert_eq!(t.acct_mgmt(), PAM_SUCCESS);
    assert_eq!(t.open_session(), PAM_SUCCESS);
    assert_eq!(t.close_session(), PAM_SUCCESS);
    drop(t);

    // Refused in this handle: the module takes no part, and a stack of it alone fails.
    let mut t = service.start(JANE, Some("wrong"));
    assert_eq!(t.authenticate(), PAM_AUTH_ERR);
    assert_ne!(t.open_session(), PAM_SUCCESS);
    assert_ne!(t.close_session(), PAM_SUCCESS);
    drop(t);

    // Never authenticated here (another module did, or none): no part either.
    let mut t = service.start(JANE, Some(JANE_PW));
    assert_ne!(t.open_session(), PAM_SUCCESS);
    drop(t);

    // Beside another session module, PAM_IGNORE lets that one decide.
    let beside = Service::new(&format!(
        "auth required MODULE backend=mailstore url={url}\n\
         session required MODULE\n\
         session required pam_permit.so\n"
    ));
    let mut t = beside.start(JANE, Some(JANE_PW));
    assert_eq!(t.open_session(), PAM_SUCCESS);
}

/// The user names the MailStore fake was asked about, in order.
fn names_asked(server: &Server) -> Vec<String> {
    server
        .requests()
        .iter()
        .map(|r| r.form().get("user").cloned().unwrap_or_default())
        .collect()
}
