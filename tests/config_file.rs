//! The config file's safety rules (spec.md), one by one, through the built module and real
//! libpam: each violation is PAM_SERVICE_ERR, contacts no server, and logs a line that tells
//! the admin the fix. The good cases next to them prove the rules are not simply "refuse".

mod support;

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::time::Duration;
use support::http::Server;
use support::mailstore::MailStore;
use support::syslog::Capture;
use support::*;

const USER: &str = "john.doe";
const PASSWORD: &str = "Passw0rd";
const SECRET: &str = "http_user = archive\nhttp_password = Fil3-S3cret\n";

fn server() -> Server {
    MailStore::new(&[(USER, PASSWORD)])
        .basic("archive", "Fil3-S3cret")
        .serve()
}

fn auth_with(server: &Server, config: &Path) -> i32 {
    Service::module_line(&format!(
        "backend=mailstore url={} config={}",
        server.url("/"),
        config.display()
    ))
    .auth(USER, PASSWORD)
}

/// Authenticates with `config`, expects PAM_SERVICE_ERR without any request, and returns the
/// module's configuration error line.
fn refused(server: &Server, config: &Path) -> String {
    let capture = Capture::start();
    let before = server.count();
    assert_eq!(
        auth_with(server, config),
        PAM_SERVICE_ERR,
        "{}",
        config.display()
    );
    assert_eq!(server.count(), before, "no server may be asked");
    let lines = capture.module_lines();
    let errors: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("configuration error"))
        .collect();
    assert_eq!(errors.len(), 1, "{lines:#?}");
    assert!(
        !errors[0].contains("Fil3-S3cret"),
        "secret in the log: {}",
        errors[0]
    );
    errors[0].clone()
}

fn assert_says(line: &str, words: &[&str]) {
    for w in words {
        assert!(line.contains(w), "{w:?} missing from: {line}");
    }
}

#[test]
fn a_root_owned_private_file_is_accepted_with_the_modes_spec_allows() {
    let server = server();
    for mode in [0o600, 0o640, 0o400, 0o440] {
        let dir = TempDir::new("cfg");
        let cfg = config_file(dir.path(), SECRET, mode);
        assert_eq!(auth_with(&server, &cfg), PAM_SUCCESS, "mode {mode:o}");
    }
    // Without a secret, world-readable is fine.
    let open = MailStore::new(&[(USER, PASSWORD)]).serve();
    let dir = TempDir::new("cfg");
    let cfg = config_file(dir.path(), "timeout = 5\n", 0o644);
    assert_eq!(auth_with(&open, &cfg), PAM_SUCCESS);
}

#[test]
fn a_symlink_is_refused_and_the_message_names_the_real_file() {
    let server = server();
    let dir = TempDir::new("cfg");
    let real = config_file(dir.path(), SECRET, 0o600);
    let link = dir.path().join("link.conf");
    symlink(&real, &link).unwrap();
    let line = refused(&server, &link);
    assert_says(
        &line,
        &[
            "symbolic link",
            &link.display().to_string(),
            &format!("point config= at config={}", real.display()),
        ],
    );
    // The real file itself is fine.
    assert_eq!(auth_with(&server, &real), PAM_SUCCESS);
}

#[test]
fn a_file_not_owned_by_root_is_refused_with_chown() {
    let server = server();
    let dir = TempDir::new("cfg");
    let cfg = config_file(dir.path(), SECRET, 0o600);
    std::os::unix::fs::chown(&cfg, Some(65534), Some(65534)).unwrap();
    let line = refused(&server, &cfg);
    assert_says(
        &line,
        &["owned by root", &format!("chown root {}", cfg.display())],
    );
    // Root-owned with a non-root group is fine.
    std::os::unix::fs::chown(&cfg, Some(0), Some(65534)).unwrap();
    assert_eq!(auth_with(&server, &cfg), PAM_SUCCESS);
}

#[test]
fn group_or_other_writable_is_refused_with_chmod_go_w() {
    let server = server();
    for mode in [0o620, 0o602, 0o666] {
        let dir = TempDir::new("cfg");
        let cfg = config_file(dir.path(), "timeout = 5\n", mode);
        let line = refused(&server, &cfg);
        assert_says(
            &line,
            &[
                "writable by group or other",
                &format!("chmod go-w {}", cfg.display()),
            ],
        );
    }
}

#[test]
fn a_secret_in_a_world_readable_file_is_refused_with_chmod_o_r() {
    let server = server();
    for (text, what) in [
        (SECRET, "http_password"),
        ("token = T0ken-S3cret\n", "token"),
    ] {
        let dir = TempDir::new("cfg");
        let cfg = config_file(dir.path(), text, 0o644);
        let line = refused(&server, &cfg);
        assert_says(
            &line,
            &["holds a secret", &format!("chmod o-r {}", cfg.display())],
        );
        assert!(!line.contains("T0ken-S3cret"), "{what}: {line}");
    }
}

#[test]
fn an_oversized_file_is_refused() {
    let server = server();
    let dir = TempDir::new("cfg");
    let mut text = String::from("timeout = 5\n");
    while text.len() <= 64 * 1024 {
        text.push_str("# padding padding padding padding padding padding padding padding\n");
    }
    let cfg = config_file(dir.path(), &text, 0o600);
    let line = refused(&server, &cfg);
    assert_says(
        &line,
        &["larger than 65536 bytes", "check that config= names"],
    );
    // Just under the cap is read.
    text.truncate(64 * 1024 - 1);
    text.push('\n');
    assert_eq!(text.len(), 64 * 1024);
    let cfg = config_file(dir.path(), &text, 0o600);
    let open = MailStore::new(&[(USER, PASSWORD)]).serve();
    assert_eq!(auth_with(&open, &cfg), PAM_SUCCESS);
}

#[test]
fn not_a_regular_file_is_refused_without_waiting() {
    let server = server();
    let dir = TempDir::new("cfg");
    // A FIFO: opening it for reading would wait for a writer for ever.
    let fifo = dir.path().join("fifo.conf");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let line = within_5s(move || refused(&crate::server(), &fifo));
    assert_says(
        &line,
        &["not a regular file", "point config= at a regular file"],
    );
    // A directory; a device.
    let sub = dir.path().join("dir.conf");
    std::fs::create_dir(&sub).unwrap();
    std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_says(&refused(&server, &sub), &["not a regular file"]);
    assert_says(
        &refused(&server, Path::new("/dev/null")),
        &["not a regular file"],
    );
}

/// Runs `f` on its own thread and fails (instead of hanging) if it takes 5 s.
fn within_5s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(5))
        .expect("no answer within 5 s: the module waits on the file")
}

#[test]
fn a_kopano_hash_file_that_is_a_fifo_is_refused_without_waiting() {
    let dir = TempDir::new("cfg");
    let fifo = dir.path().join("hashes");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let capture = Capture::start();
    let rc = within_5s(move || {
        Service::module_line(&format!("backend=kopano file={}", fifo.display()))
            .auth(USER, PASSWORD)
    });
    assert_eq!(rc, PAM_SERVICE_ERR);
    let lines = capture.module_lines();
    assert!(
        lines.iter().any(|l| l.contains("not a regular file")),
        "{lines:#?}"
    );
}

#[test]
fn a_missing_file_names_the_path_to_check() {
    let server = server();
    let dir = TempDir::new("cfg");
    let missing = dir.path().join("nope.conf");
    let line = refused(&server, &missing);
    assert_says(
        &line,
        &[
            &missing.display().to_string(),
            "No such file",
            "check the path given in config=",
        ],
    );
}

#[test]
fn a_bad_line_is_named_by_file_and_line_number() {
    let server = server();
    let dir = TempDir::new("cfg");
    let cfg = config_file(
        dir.path(),
        "# comment\n\ntimeout = 5\ncolour = blue\n",
        0o600,
    );
    let line = refused(&server, &cfg);
    assert_says(
        &line,
        &[
            &format!("{}: line 4", cfg.display()),
            "unknown option 'colour'",
        ],
    );
    let cfg = config_file(dir.path(), "timeout = 5\n\u{0}\u{ff}\n", 0o600);
    std::fs::write(&cfg, b"timeout = 5\n\xff\xfe\n").unwrap();
    assert_says(&refused(&server, &cfg), &["not UTF-8", "save it as UTF-8"]);
}
