//! mailauth-check, the admin's tool, run as a separate process as an admin would run it:
//! its exit statuses (0 accepted, 1 refused, 2 backend unavailable, 3 configuration error),
//! its words, its silence about the password (from standard input and from a terminal with
//! echo off), and its --service mode through real libpam (pam_start_confdir).

mod support;

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::http::refused_url;
use support::mailstore::MailStore;
use support::*;

const TOOL: &str = env!("CARGO_BIN_EXE_mailauth-check");
const PATH: &str = "/mailstore-integration/index.php";
const USER: &str = "john.doe@example.com";
/// Distinctive, so that any trace of it in the output is unmistakable.
const PASSWORD: &str = "Qx7-Vesper-Lantern-93";

struct Run {
    status: i32,
    stdout: String,
    stderr: String,
}

fn run_with(args: &[&str], stdin: Option<&str>) -> Run {
    let mut child = Command::new(TOOL)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mailauth-check runs");
    {
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            // The tool may exit before reading (a configuration error): ignore EPIPE.
            let _ = input.write_all(text.as_bytes());
        }
    }
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().unwrap();
    let run = Run {
        status: status.code().expect("exited, not killed"),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    };
    assert_silent_about_the_password(&run);
    run
}

fn run(args: &[&str], password: &str) -> Run {
    run_with(args, Some(&format!("{password}\n")))
}

/// Neither the password nor any 6-character piece of it appears in what the tool printed.
fn assert_silent_about_the_password(run: &Run) {
    let all = format!("{}{}", run.stdout, run.stderr);
    for start in 0..=PASSWORD.len() - 6 {
        let piece = &PASSWORD[start..start + 6];
        assert!(
            !all.contains(piece),
            "the output holds {piece:?} of the password:\n{all}"
        );
    }
}

fn line(server: &support::http::Server) -> String {
    format!("url={}", server.url(PATH))
}

#[test]
fn exit_0_for_the_right_password_with_the_verdict_code_latency_and_server() {
    let server = MailStore::new(&[(USER, PASSWORD)]).serve();
    let url = line(&server);
    let r = run(&["backend=mailstore", &url, USER], PASSWORD);
    assert_eq!(r.status, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("auth: accepted (PAM_SUCCESS), latency "),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("account: "), "{}", r.stdout);
    // The module's own syslog line, with the answering server.
    let expected = format!(
        "pam_mailauth(mailauth-check:auth): auth: accepted for user '{USER}' backend=mailstore server={}",
        server.addr
    );
    assert!(r.stderr.contains(&expected), "{}", r.stderr);
    // The password reached the mail server exactly as typed on standard input.
    let form = server.requests()[0].form();
    assert_eq!(form.get("pass").map(String::as_str), Some(PASSWORD));
}

#[test]
fn exit_1_for_a_wrong_password_and_for_an_unknown_user() {
    let server = MailStore::new(&[(USER, PASSWORD)]).serve();
    let url = line(&server);
    let r = run(&["backend=mailstore", &url, USER], "Qx7-Vesper-Lantern-94");
    assert_eq!(r.status, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("auth: refused (PAM_AUTH_ERR)"),
        "{}",
        r.stdout
    );
    assert!(r.stderr.contains("auth: refused for user"), "{}", r.stderr);

    // An unknown user, where the backend can tell (MailStore's user list): account phase.
    let r = run_with(
        &[
            "--account",
            "backend=mailstore",
            &url,
            "account=check",
            "nobody@example.com",
        ],
        None,
    );
    assert_eq!(r.status, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("account: unknown user (PAM_USER_UNKNOWN)"),
        "{}",
        r.stdout
    );
}

#[test]
fn exit_2_when_the_backend_is_unavailable_naming_each_server_skipped_and_why() {
    let down = refused_url();
    let garbage = support::http::Server::start(|_| {
        support::http::Reply::status(500, "text/plain", "Internal Server Error")
    });
    let first = format!("url={down}");
    let second = format!("url={}", garbage.url(PATH));
    let r = run(
        &["backend=mailstore", &first, &second, "timeout=2", USER],
        PASSWORD,
    );
    assert_eq!(r.status, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("auth: backend unavailable (PAM_AUTHINFO_UNAVAIL)"),
        "{}",
        r.stdout
    );
    let down_host = down.trim_start_matches("http://").trim_end_matches('/');
    assert!(
        r.stderr.contains(&format!("{down_host}: cannot connect")),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&garbage.addr.to_string()) && r.stderr.contains("500"),
        "{}",
        r.stderr
    );
}

#[test]
fn exit_3_for_configuration_errors_with_the_modules_own_words() {
    // An unknown key.
    let r = run(
        &[
            "backend=mailstore",
            "url=http://127.0.0.1:9/",
            "colour=blue",
            USER,
        ],
        PASSWORD,
    );
    assert_eq!(r.status, 3, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("configuration error (PAM_SERVICE_ERR)"));
    assert!(
        r.stderr.contains(
            "pam_mailauth(mailauth-check:auth): configuration error: unknown option 'colour'"
        ),
        "{}",
        r.stderr
    );
    // A secret given as a module argument.
    let r = run(
        &[
            "backend=mailstore",
            "url=http://127.0.0.1:9/",
            "http_password=hunter22",
            USER,
        ],
        PASSWORD,
    );
    assert_eq!(r.status, 3);
    assert!(
        r.stderr.contains("'http_password' is a secret"),
        "{}",
        r.stderr
    );
    // A config file holding a secret that everyone may read: the file's mode is named.
    let dir = TempDir::new("check-conf");
    let conf = config_file(
        dir.path(),
        "backend = mailstore\nurl = http://127.0.0.1:9/\nhttp_user = u\nhttp_password = p4ss-in-file\n",
        0o644,
    );
    let config = format!("config={}", conf.display());
    let r = run(&[&config, USER], PASSWORD);
    assert_eq!(r.status, 3, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("chmod o-r"), "{}", r.stderr);
    assert!(!r.stderr.contains("p4ss-in-file"));
    // A command line the tool cannot use: no password option exists.
    let r = run_with(&["--password", PASSWORD, "backend=mailstore", USER], None);
    assert_eq!(r.status, 3);
    assert!(
        r.stderr.contains("unknown option --password"),
        "{}",
        r.stderr
    );
}

#[test]
fn an_empty_standard_input_is_no_password_not_an_empty_one() {
    let server = MailStore::new(&[(USER, PASSWORD)]).serve();
    let url = line(&server);
    let r = run_with(&["backend=mailstore", &url, USER], Some(""));
    assert_eq!(r.status, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("PAM_CONV_ERR"), "{}", r.stdout);
    assert_eq!(server.count(), 0, "nobody was asked");
}

#[test]
fn service_mode_runs_the_stack_through_libpam_and_shows_the_modules_lines() {
    let server = MailStore::new(&[(USER, PASSWORD)]).serve();
    let dir = TempDir::new("check-svc");
    std::fs::write(
        dir.path().join("smtp"),
        format!(
            "auth    required {m} backend=mailstore url={u}\naccount required {m} backend=mailstore url={u}\n",
            m = module().display(),
            u = server.url(PATH)
        ),
    )
    .unwrap();
    let confdir = dir.path().to_str().unwrap();
    let args = [
        "--service",
        "smtp",
        "--confdir",
        confdir,
        "--rhost",
        "192.0.2.7",
        USER,
    ];
    let r = run(&args, PASSWORD);
    assert_eq!(r.status, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("auth: accepted (PAM_SUCCESS)"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("account: accepted (PAM_SUCCESS)"),
        "{}",
        r.stdout
    );
    // libpam ran the module: its syslog line, with libpam's prefix and the rhost we set.
    assert!(
        r.stderr.contains(&format!(
            "(smtp:auth): auth: accepted for user '{USER}' rhost=192.0.2.7 backend=mailstore"
        )),
        "{}",
        r.stderr
    );
    assert_eq!(server.count(), 1);

    let r = run(&args, "wrong");
    assert_eq!(r.status, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("auth: refused (PAM_AUTH_ERR)"));

    // The account phase alone asks for no password (standard input stays unread).
    let r = run_with(
        &["--service", "smtp", "--confdir", confdir, "--account", USER],
        None,
    );
    assert!(!r.stdout.contains("auth:"), "{}", r.stdout);
    assert!(r.stdout.contains("account: "), "{}", r.stdout);

    // A missing service file is a configuration error, not libpam's silent fallback to "other".
    let r = run(
        &["--service", "nosuch", "--confdir", confdir, USER],
        PASSWORD,
    );
    assert_eq!(r.status, 3, "{}{}", r.stdout, r.stderr);
}

#[test]
fn service_mode_exit_2_and_3_follow_the_stacks_answer() {
    let dir = TempDir::new("check-svc");
    let confdir = dir.path().to_str().unwrap();
    std::fs::write(
        dir.path().join("down"),
        format!(
            "auth required {} backend=mailstore url={}\n",
            module().display(),
            refused_url()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("broken"),
        format!("auth required {} backend=mailstore\n", module().display()),
    )
    .unwrap();
    let r = run(&["--service", "down", "--confdir", confdir, USER], PASSWORD);
    assert_eq!(r.status, 2, "{}{}", r.stdout, r.stderr);
    let r = run(
        &["--service", "broken", "--confdir", confdir, USER],
        PASSWORD,
    );
    assert_eq!(r.status, 3, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("configuration error"), "{}", r.stderr);
}

/// Runs the tool on a pseudo-terminal, as an admin at a shell would, types `typed` once the
/// password prompt is on the screen, and returns everything the terminal showed.
fn on_a_terminal(args: &[&str], typed: &str) -> (i32, String) {
    let (mut master, slave) = unsafe {
        let (mut m, mut s) = (0, 0);
        assert_eq!(
            libc::openpty(
                &mut m,
                &mut s,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null()
            ),
            0
        );
        (
            std::fs::File::from(OwnedFd::from_raw_fd(m)),
            OwnedFd::from_raw_fd(s),
        )
    };
    let mut child = Command::new(TOOL)
        .args(args)
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave))
        .spawn()
        .unwrap();
    let mut screen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut typed_yet = false;
    let fd = {
        use std::os::fd::AsRawFd;
        master.as_raw_fd()
    };
    loop {
        let mut poll = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let ready = unsafe { libc::poll(&mut poll, 1, 200) };
        if ready > 0 {
            let mut buf = [0u8; 4096];
            match master.read(&mut buf) {
                Ok(0) | Err(_) => break, // EIO once the child closed the terminal
                Ok(n) => screen.extend_from_slice(&buf[..n]),
            }
        }
        if !typed_yet && String::from_utf8_lossy(&screen).contains("Password: ") {
            // Echo is switched off before the prompt's read starts; give it that instant.
            std::thread::sleep(Duration::from_millis(200));
            master.write_all(format!("{typed}\n").as_bytes()).unwrap();
            typed_yet = true;
        }
        if let Some(status) = child.try_wait().unwrap() {
            // Drain what is left.
            while unsafe { libc::poll(&mut poll, 1, 100) } > 0 {
                let mut buf = [0u8; 4096];
                match master.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => screen.extend_from_slice(&buf[..n]),
                }
            }
            assert!(typed_yet, "no password prompt appeared");
            return (
                status.code().unwrap(),
                String::from_utf8_lossy(&screen).into_owned(),
            );
        }
        assert!(
            Instant::now() < deadline,
            "timed out; the screen shows: {:?}",
            String::from_utf8_lossy(&screen)
        );
    }
    let status = child.wait().unwrap();
    (
        status.code().unwrap(),
        String::from_utf8_lossy(&screen).into_owned(),
    )
}

#[test]
fn a_password_typed_at_a_terminal_is_not_echoed() {
    let server = MailStore::new(&[(USER, PASSWORD)]).serve();
    let url = line(&server);
    let (status, screen) = on_a_terminal(&["backend=mailstore", &url, USER], PASSWORD);
    assert_eq!(status, 0, "{screen}");
    assert!(screen.contains("Password: "), "{screen}");
    assert!(screen.contains("auth: accepted"), "{screen}");
    assert!(
        !screen.contains(&PASSWORD[..6]),
        "the password was echoed: {screen:?}"
    );
    let form = server.requests()[0].form();
    assert_eq!(form.get("pass").map(String::as_str), Some(PASSWORD));
}

#[test]
fn help_documents_every_flag_and_the_exit_statuses_and_so_does_the_man_page() {
    let r = run_with(&["--help"], None);
    assert_eq!(r.status, 0);
    let page = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/mailauth-check.8"),
    )
    .unwrap()
    .replace("\\-", "-");
    for section in [
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "OPTIONS",
        "EXIT STATUS",
        "EXAMPLES",
    ] {
        assert!(r.stdout.contains(section), "--help lacks {section}");
        assert!(
            page.contains(&format!(".SH {section}")),
            "the man page lacks {section}"
        );
    }
    for flag in [
        "--service",
        "--confdir",
        "--account",
        "--rhost",
        "--throttled",
        "--reset",
        "--help",
        "--version",
    ] {
        assert!(r.stdout.contains(flag), "--help lacks {flag}");
        assert!(page.contains(flag), "mailauth-check.8 lacks {flag}");
    }
    for status in ["0", "1", "2", "3"] {
        assert!(
            r.stdout.contains(&format!("    {status}   ")),
            "--help lacks exit {status}"
        );
        assert!(
            page.contains(&format!(".B {status}\n")),
            "the man page lacks exit {status}"
        );
    }
}

#[test]
fn throttled_lists_the_locked_user_and_reset_lifts_the_lock() {
    use std::os::unix::fs::PermissionsExt;
    let server = MailStore::new(&[(USER, PASSWORD)]).serve();
    let dir = TempDir::new("check-tally");
    let tally = dir.path().join("tally");
    let line = format!(
        "backend=mailstore url={} deny=2 unlock_time=600 tally_dir={}",
        server.url(PATH),
        tally.display()
    );
    let words: Vec<&str> = line.split_whitespace().collect();
    fn with<'a>(first: &[&'a str], words: &[&'a str]) -> Vec<&'a str> {
        first.iter().chain(words).copied().collect()
    }
    // Lock USER through the module itself.
    let svc = Service::module_line(&line);
    for _ in 0..2 {
        assert_eq!(svc.auth(USER, "wrong"), PAM_AUTH_ERR);
    }
    assert_eq!(svc.auth(USER, PASSWORD), PAM_AUTH_ERR, "not locked");
    assert_eq!(server.count(), 2);

    let r = run_with(&with(&["--throttled"], &words), None);
    assert_eq!(r.status, 0, "{}{}", r.stdout, r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{}", r.stdout);
    assert!(
        lines[0].starts_with(&format!("{USER}\t2 failure(s), the last "))
            && lines[0].contains("throttled for another"),
        "{}",
        lines[0]
    );

    // The name as the user types it, mapped as the line maps it.
    let r = run_with(
        &with(&["--reset", "JOHN.DOE@example.com", "lowercase"], &words),
        None,
    );
    assert_eq!(r.status, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("failures reset"), "{}", r.stdout);
    let r = run_with(&with(&["--throttled"], &words), None);
    assert_eq!((r.status, r.stdout.as_str()), (0, ""), "{}", r.stderr);
    assert_eq!(
        svc.auth(USER, PASSWORD),
        PAM_SUCCESS,
        "the reset did not lift the lock"
    );
    let r = run_with(&with(&["--reset", USER], &words), None);
    assert_eq!(r.status, 1, "{}{}", r.stdout, r.stderr);

    // A tally directory anyone could write is a configuration error here too.
    std::fs::set_permissions(&tally, std::fs::Permissions::from_mode(0o777)).unwrap();
    let r = run_with(&with(&["--throttled"], &words), None);
    assert_eq!(r.status, 3, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("writable by others"), "{}", r.stderr);
}
