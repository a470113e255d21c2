//! The failure throttle (`deny=`, `fail_interval=`, `unlock_time=`, `tally_dir=`): a real
//! saslauthd with four workers in front of a MailStore fake that counts requests, and real
//! libpam (pam_start_confdir) for the tally directory's rules, hostile user names, the log
//! line, the admin's reset and the per-process fallback.

mod support;

use pam_mailauth::throttle::{self, Policy};
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::http::{Reply, Server};
use support::mailstore::MailStore;
use support::saslauthd::{Answer, Saslauthd, Setup};
use support::syslog::Capture;
use support::*;

const PATH: &str = "/mailstore-integration/index.php";
const USER: &str = "john.doe@example.com";
const PASSWORD: &str = "Passw0rd";

/// A MailStore fake that can be switched to answer 500 (an outage).
struct Store {
    server: Server,
    down: Arc<AtomicBool>,
}

impl Store {
    fn start() -> Store {
        Store::with(&[])
    }

    /// With more mailboxes (password "secret"): their wrong passwords count in `tally_dir`,
    /// where a name the backend does not know is counted in the process only.
    fn with(more: &[&str]) -> Store {
        let mut users = vec![(USER, PASSWORD), ("jane@example.com", "Jane pass")];
        users.extend(more.iter().map(|u| (*u, "secret")));
        let store = MailStore::new(&users);
        let down = Arc::new(AtomicBool::new(false));
        let d = down.clone();
        let server = Server::start(move |req| {
            if d.load(Ordering::SeqCst) {
                Reply::status(500, "text/plain", "Internal Server Error")
            } else {
                store.answer(req)
            }
        });
        Store { server, down }
    }

    fn url(&self) -> String {
        self.server.url(PATH)
    }

    fn count(&self) -> usize {
        self.server.count()
    }
}

/// A tally directory as the admin makes it: root-owned, 0700, inside a private parent.
fn tally_dir(parent: &TempDir) -> PathBuf {
    let dir = parent.path().join("tally");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

fn policy(dir: &Path, deny: u32, unlock: u64) -> Policy {
    Policy {
        deny,
        fail_interval: Duration::from_secs(60),
        unlock_time: Duration::from_secs(unlock),
        dir: dir.to_path_buf(),
    }
}

/// The pids of the saslauthd processes that logged a success for USER on `service`.
fn pids_with_success(daemon: &Saslauthd, service: &str) -> BTreeSet<String> {
    let needle = format!(":auth success: [user={USER}] [service={service}]");
    daemon
        .log()
        .lines()
        .filter(|l| l.contains(&needle))
        .filter_map(|l| {
            l.strip_prefix("saslauthd[")
                .and_then(|r| r.split_once(']'))
                .map(|(pid, _)| pid.to_string())
        })
        .collect()
}

#[test]
fn saslauthd_four_workers_a_spray_reaches_the_backend_at_most_deny_times() {
    const DENY: usize = 3;
    const UNLOCK: u64 = 4;
    let store = Store::start();
    let parent = TempDir::new("throttle-sasl");
    let dir = tally_dir(&parent);
    let so = module();
    let throttle = format!(
        "deny={DENY} fail_interval=60 unlock_time={UNLOCK} tally_dir={}",
        dir.display()
    );
    let line = |extra: &str| {
        format!(
            "auth required {so} backend=mailstore url={} {throttle} {extra}\n\
             account required {so} backend=mailstore url={}\n",
            store.url(),
            store.url(),
            so = so.display()
        )
    };
    // smtp keeps verified successes for a minute; imap has no cache. One tally for both.
    let (smtp, imap) = (line("cache_ttl=60"), line(""));
    let mut daemon = Saslauthd::start_with(Setup {
        services: &[("smtp", &smtp), ("imap", &imap)],
        workers: 4,
        realm: false,
    });

    // A recent success in every worker's cache (saslauthd hands requests round the workers;
    // its log names the worker that answered).
    for _ in 0..40 {
        if pids_with_success(&daemon, "smtp").len() >= 4 {
            break;
        }
        assert_eq!(daemon.ask("smtp", USER, PASSWORD, None), Answer::Ok);
    }
    assert_eq!(
        pids_with_success(&daemon, "smtp").len(),
        4,
        "{}",
        daemon.log()
    );
    let warmed = store.count();
    assert!(warmed <= 4, "the cache did not answer repeated logins");

    // The spray: 50 wrong passwords from 8 parallel clients.
    let answers = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    std::thread::scope(|s| {
        for c in 0..8 {
            let (daemon, answers) = (&daemon, answers.clone());
            s.spawn(move || {
                for i in (c..50).step_by(8) {
                    let got = daemon.ask("smtp", USER, &format!("guess-{i}"), None);
                    answers.lock().unwrap().push(got);
                }
            });
        }
    });
    let spray_took = started.elapsed();
    let answers = answers.lock().unwrap().clone();
    assert_eq!(answers.len(), 50);
    assert!(answers.iter().all(|a| *a == Answer::No), "{answers:?}");
    let reached = store.count() - warmed;
    // A lock that ended during the spray would let one more through per unlock_time.
    let lock_ends = (spray_took.as_secs() / UNLOCK) as usize;
    assert!(
        reached <= DENY + lock_ends && reached >= 1,
        "{reached} of 50 wrong passwords reached the backend (deny={DENY}, spray took \
         {spray_took:?})"
    );
    assert_eq!(
        lock_ends, 0,
        "the spray took {spray_took:?}, longer than unlock_time: the machine is too slow for \
         this test to prove 'at most deny'"
    );
    assert_eq!(reached, DENY, "the first deny checks must be asked");

    // The admin sees the lock.
    let listed = throttle::list(&policy(&dir, DENY as u32, UNLOCK)).unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].user, USER);
    assert!(listed[0]
        .locked_until(&policy(&dir, DENY as u32, UNLOCK))
        .is_some_and(|t| t > throttle::now_ms()));

    // During the lock: the right password without the cache is refused unasked...
    let before = store.count();
    assert_eq!(daemon.ask("imap", USER, PASSWORD, None), Answer::No);
    assert_eq!(
        store.count(),
        before,
        "a locked user's check reached the backend"
    );
    // ...and with a recent success in the cache it is accepted, by every worker, unasked.
    for _ in 0..8 {
        assert_eq!(daemon.ask("smtp", USER, PASSWORD, None), Answer::Ok);
    }
    assert_eq!(store.count(), before, "a cache hit reached the backend");
    // Another mailbox is not throttled.
    assert_eq!(
        daemon.ask("imap", "jane@example.com", "Jane pass", None),
        Answer::Ok
    );

    // After unlock_time the user logs in again (the backend is asked), and the tally is gone.
    std::thread::sleep(Duration::from_secs(UNLOCK) + Duration::from_millis(300));
    let before = store.count();
    assert_eq!(daemon.ask("imap", USER, PASSWORD, None), Answer::Ok);
    assert_eq!(store.count(), before + 1);
    assert!(throttle::list(&policy(&dir, DENY as u32, UNLOCK))
        .unwrap()
        .is_empty());

    // An outage during a spray counts nothing: every check is asked, none is counted.
    store.down.store(true, Ordering::SeqCst);
    let before = store.count();
    for i in 0..20 {
        assert_eq!(
            daemon.ask("imap", USER, &format!("guess-{i}"), None),
            Answer::No
        );
    }
    assert_eq!(
        store.count(),
        before + 20,
        "unavailable checks were throttled"
    );
    store.down.store(false, Ordering::SeqCst);
    assert!(throttle::list(&policy(&dir, DENY as u32, UNLOCK))
        .unwrap()
        .is_empty());
    assert_eq!(daemon.ask("imap", USER, PASSWORD, None), Answer::Ok);
    daemon.assert_alive();
}

/// A module line against `store` with the throttle in `dir`.
fn service(store: &Store, dir: &Path, extra: &str) -> Service {
    Service::module_line(&format!(
        "backend=mailstore url={} timeout=5 deny=2 fail_interval=60 unlock_time=60 \
         tally_dir={} {extra}",
        store.url(),
        dir.display()
    ))
}

#[test]
fn hostile_user_names_never_create_a_file_outside_the_tally_directory() {
    let long = "x".repeat(1000);
    let names = [
        "../escaped",
        "../../../tmp/pam_mailauth-escaped",
        "/etc/passwd",
        "..",
        ".",
        "a/b/../../c",
        "tab\there\u{1}\u{1b}[31m\nnew line\u{7f}",
        long.as_str(),
    ];
    // Mailboxes of the backend, so their failures are counted in files.
    let store = Store::with(&names);
    let parent = TempDir::new("throttle-names");
    let dir = tally_dir(&parent);
    let svc = service(&store, &dir, "");
    for name in names {
        assert_eq!(svc.auth(name, "wrong"), PAM_AUTH_ERR, "{name:?}");
    }
    // The parent holds the tally directory and nothing else.
    let beside: Vec<_> = std::fs::read_dir(parent.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(beside, vec![std::ffi::OsString::from("tally")]);
    assert!(!Path::new("/tmp/pam_mailauth-escaped").exists());
    assert!(!Path::new("/etc/passwd.tally").exists());
    // Inside: one file per name, each named by 64 hex digits, each a plain file.
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == ".swept" {
            continue;
        }
        assert!(
            name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()),
            "{name:?}"
        );
        assert!(entry.file_type().unwrap().is_file());
        files += 1;
    }
    assert_eq!(files, names.len());
    // The listing shows every name exactly as the backend saw it.
    let listed: BTreeSet<String> = throttle::list(&policy(&dir, 2, 60))
        .unwrap()
        .into_iter()
        .map(|t| t.user)
        .collect();
    let expected: BTreeSet<String> = names.iter().map(|n| n.to_string()).collect();
    assert_eq!(listed, expected);
}

/// The backends compare names ignoring case: `John.Doe@...` and `JOHN.DOE@...` are one
/// mailbox, with one tally of `deny` guesses.
#[test]
fn a_name_in_any_ascii_case_shares_one_tally() {
    let store = Store::start();
    let parent = TempDir::new("throttle-case");
    let dir = tally_dir(&parent);
    let svc = service(&store, &dir, "");
    assert_eq!(svc.auth("John.Doe@example.com", "wrong"), PAM_AUTH_ERR);
    assert_eq!(svc.auth("JOHN.DOE@EXAMPLE.COM", "wrong"), PAM_AUTH_ERR);
    let before = store.count();
    assert_eq!(svc.auth(USER, PASSWORD), PAM_AUTH_ERR, "not throttled");
    assert_eq!(store.count(), before, "asked while locked");
    let listed: Vec<String> = throttle::list(&policy(&dir, 2, 60))
        .unwrap()
        .into_iter()
        .map(|t| t.user)
        .collect();
    assert_eq!(listed, vec![USER.to_string()]);
    assert_eq!(
        throttle::reset(&policy(&dir, 2, 60), "John.DOE@example.com"),
        Ok(true)
    );
    assert_eq!(svc.auth(USER, PASSWORD), PAM_SUCCESS);
}

/// A bot sending random names must not fill tally_dir (tmpfs /run): names the backend does
/// not know are counted in the process, and still throttled there.
#[test]
fn random_unknown_names_leave_no_tally_file() {
    let store = Store::start();
    let parent = TempDir::new("throttle-unknown");
    let dir = tally_dir(&parent);
    // account=check: MailStore's directory tells an unknown name from a wrong password.
    let svc = service(&store, &dir, "account=check");
    for i in 0..30 {
        assert_eq!(
            svc.auth(&format!("bot-{i}@example.com"), "guess"),
            PAM_USER_UNKNOWN
        );
    }
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != ".swept")
        .collect();
    assert!(files.is_empty(), "{} tally files: {files:?}", files.len());
    // Counted all the same: deny=2, so the third check of one unknown name is not asked.
    for _ in 0..2 {
        assert_eq!(svc.auth("ghost@example.com", "guess"), PAM_USER_UNKNOWN);
    }
    let before = store.count();
    assert_eq!(
        svc.auth("ghost@example.com", "guess"),
        PAM_AUTH_ERR,
        "not throttled"
    );
    assert_eq!(store.count(), before, "an unknown name was not throttled");
}

#[test]
fn a_tally_directory_anyone_could_write_is_a_configuration_error() {
    let store = Store::start();
    let parent = TempDir::new("throttle-perm");
    let dir = tally_dir(&parent);
    let link = parent.path().join("link");
    std::os::unix::fs::symlink(&dir, &link).unwrap();
    let capture = Capture::start();
    let refused = |path: &Path, says: &str| {
        capture.clear();
        let svc = service(&store, path, "");
        assert_eq!(svc.auth(USER, PASSWORD), PAM_SERVICE_ERR, "{says}");
        assert_eq!(store.count(), 0, "{says}: the backend was asked");
        let lines = capture.module_lines();
        assert!(
            lines
                .iter()
                .any(|l| l.contains("configuration error") && l.contains(says)),
            "{says}: {lines:#?}"
        );
    };
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    refused(&dir, "writable by others");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&dir, Some(65534), None).unwrap();
    refused(&dir, "must be owned by root");
    refused(&link, "symbolic link");
    // Group-writable (the documented way to share it with Apache) is fine.
    std::os::unix::fs::chown(&dir, Some(0), Some(33)).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o2770)).unwrap();
    assert_eq!(service(&store, &dir, "").auth(USER, PASSWORD), PAM_SUCCESS);
}

#[test]
fn the_log_says_throttled_and_for_how_long_and_names_the_user_only_with_debug() {
    // Alone in a process of its own: the capture keeps this process's lines, and other tests
    // here throttle users of their own at the same time.
    const ALONE: &str = "PAM_MAILAUTH_TEST_LOG_ALONE";
    if std::env::var_os(ALONE).is_none() {
        support::process::rerun_test(
            "the_log_says_throttled_and_for_how_long_and_names_the_user_only_with_debug",
            &[(ALONE, "1".into())],
        );
        return;
    }
    let store = Store::start();
    let parent = TempDir::new("throttle-log");
    let dir = tally_dir(&parent);
    let user = "typed-a-password-here";
    let capture = Capture::start();
    for extra in ["", "debug"] {
        let svc = service(&store, &dir, extra);
        assert!(throttle::reset(&policy(&dir, 2, 60), user).is_ok());
        for _ in 0..2 {
            assert_eq!(svc.auth(user, "wrong"), PAM_AUTH_ERR);
        }
        let before = store.count();
        capture.clear();
        assert_eq!(svc.auth(user, "wrong"), PAM_AUTH_ERR);
        assert_eq!(store.count(), before);
        let lines = capture.module_lines();
        let throttled: Vec<&String> = lines.iter().filter(|l| l.contains("throttled")).collect();
        assert_eq!(throttled.len(), 1, "{lines:#?}");
        let line = throttled[0];
        assert!(
            line.contains("2 failed checks") && line.contains("another 60s"),
            "{line}"
        );
        assert_eq!(line.contains(user), extra == "debug", "{line}");
    }
}

#[test]
fn an_admin_reset_lifts_the_lock_and_a_success_resets_the_tally() {
    let store = Store::start();
    let parent = TempDir::new("throttle-reset");
    let dir = tally_dir(&parent);
    let svc = service(&store, &dir, "");
    let p = policy(&dir, 2, 60);
    // One failure, then a success: the tally is reset, so two more failures are asked.
    assert_eq!(svc.auth(USER, "wrong"), PAM_AUTH_ERR);
    assert_eq!(svc.auth(USER, PASSWORD), PAM_SUCCESS);
    assert!(throttle::list(&p).unwrap().is_empty());
    for _ in 0..2 {
        assert_eq!(svc.auth(USER, "wrong"), PAM_AUTH_ERR);
    }
    assert_eq!(store.count(), 4);
    assert_eq!(svc.auth(USER, PASSWORD), PAM_AUTH_ERR, "locked");
    assert_eq!(store.count(), 4);
    assert_eq!(throttle::reset(&p, USER), Ok(true));
    assert_eq!(throttle::reset(&p, "nobody@example.com"), Ok(false));
    assert_eq!(svc.auth(USER, PASSWORD), PAM_SUCCESS);
    assert_eq!(store.count(), 5);
    // deny=0 (the default) throttles nothing and writes nothing.
    let off = Service::module_line(&format!(
        "backend=mailstore url={} tally_dir={}",
        store.url(),
        dir.display()
    ));
    for _ in 0..5 {
        assert_eq!(off.auth(USER, "wrong"), PAM_AUTH_ERR);
    }
    assert_eq!(store.count(), 10);
    assert!(throttle::list(&p).unwrap().is_empty());
}

/// Run in a child process by the two tests below, as the user THROTTLE_CHILD_UID (a host's
/// unprivileged child, as Apache's): `deny=2` in THROTTLE_CHILD_DIR, six wrong passwords.
/// Prints how many reached the backend and the module's throttle warnings.
#[test]
fn child_as_an_unprivileged_host() {
    let (Ok(dir), Ok(uid)) = (
        std::env::var("THROTTLE_CHILD_DIR"),
        std::env::var("THROTTLE_CHILD_UID"),
    ) else {
        return;
    };
    let uid: u32 = uid.parse().unwrap();
    let capture = Capture::start();
    // Root stays the saved id, so the capture can remove its socket afterwards.
    unsafe {
        assert_eq!(libc::setgroups(0, std::ptr::null()), 0);
        assert_eq!(libc::setresgid(uid, uid, 0), 0);
        assert_eq!(libc::setresuid(uid, uid, 0), 0);
    }
    let store = Store::start();
    let svc = service(&store, Path::new(&dir), "");
    for _ in 0..6 {
        assert_eq!(svc.auth(USER, "wrong"), PAM_AUTH_ERR);
    }
    unsafe {
        assert_eq!(libc::setresuid(0, 0, 0), 0);
        assert_eq!(libc::setresgid(0, 0, 0), 0);
    }
    println!("CHILD-ASKED {}", store.count());
    for line in capture.module_lines() {
        if line.contains("throttle:") {
            println!("CHILD-WARNING {line}");
        }
    }
}

fn run_child(dir: &Path, uid: u32) -> (usize, Vec<String>) {
    static ONE_CHILD_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _one = ONE_CHILD_AT_A_TIME
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let out = support::process::rerun_test(
        "child_as_an_unprivileged_host",
        &[
            ("THROTTLE_CHILD_DIR", dir.display().to_string()),
            ("THROTTLE_CHILD_UID", uid.to_string()),
        ],
    );
    let asked = out
        .lines()
        .find_map(|l| l.strip_prefix("CHILD-ASKED "))
        .unwrap_or_else(|| panic!("the child did not run: {out}"))
        .parse()
        .unwrap();
    let warnings = out
        .lines()
        .filter_map(|l| l.strip_prefix("CHILD-WARNING "))
        .map(String::from)
        .collect();
    (asked, warnings)
}

#[test]
fn a_host_that_cannot_write_the_tally_directory_counts_in_its_process() {
    let parent = TempDir::new("throttle-fallback");
    std::fs::set_permissions(parent.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = tally_dir(&parent);
    let (asked, warnings) = run_child(&dir, 65534);
    assert_eq!(asked, 2, "deny=2 must hold within the process");
    assert_eq!(warnings.len(), 1, "said once: {warnings:#?}");
    assert!(
        warnings[0].contains("not writable by this process") && warnings[0].contains("chmod 2770"),
        "{}",
        warnings[0]
    );
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
}

#[test]
fn a_group_writable_tally_directory_is_shared_with_an_unprivileged_host() {
    let store = Store::start();
    let parent = TempDir::new("throttle-shared");
    std::fs::set_permissions(parent.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = tally_dir(&parent);
    // The documented grant: root:www-data 2770.
    std::os::unix::fs::chown(&dir, Some(0), Some(33)).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o2770)).unwrap();
    // One failure counted by a root process (saslauthd)...
    assert_eq!(service(&store, &dir, "").auth(USER, "wrong"), PAM_AUTH_ERR);
    // ...is seen and updated by www-data (Apache): one more check, then the lock.
    let (asked, warnings) = run_child(&dir, 33);
    assert!(warnings.is_empty(), "{warnings:#?}");
    assert_eq!(asked, 1, "www-data did not share root's tally");
    // And the lock www-data recorded holds for root.
    let before = store.count();
    assert_eq!(service(&store, &dir, "").auth(USER, PASSWORD), PAM_AUTH_ERR);
    assert_eq!(store.count(), before);
}
