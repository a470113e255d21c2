//! No password or secret reaches syslog, even with `debug`, while the decisions do; and the
//! options' `Debug` output redacts every secret.

mod support;

use base64::Engine;
use pam_mailauth::options::Options;
use support::http::{Reply, Server};
use support::mailstore::MailStore;
use support::process::rerun_test;
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
        &format!("backend = kopano\ndsn = mysql://kopano:{BASIC_PASSWORD}@db:3306/kopano?require_ssl=true\n"),
        &[] as &[&str],
    )
    .unwrap();
    let shown = format!("{kopano:?}");
    assert!(!shown.contains("S3cret"), "{shown}");
}

const WIPE_CHILD: &str = "PAM_MAILAUTH_WIPE_CHILD";
/// Long enough that a freed copy keeps a recognisable tail: malloc reuses the first 16 bytes
/// of a freed chunk for its own pointers, so the search looks for the last 24 bytes.
const PASSWORD_LEN: usize = 48;

/// A password that appears nowhere in the binary: made at run time, held only in wiped memory.
fn generated(seed: u8) -> zeroize::Zeroizing<String> {
    let mut s = zeroize::Zeroizing::new(String::with_capacity(PASSWORD_LEN));
    let mut x = seed as u32;
    for _ in 0..PASSWORD_LEN {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        s.push((b'a' + ((x >> 16) % 26) as u8) as char);
    }
    s
}

/// Whether these bytes occur in any writable mapping of this process (heap, stacks, data).
/// The needle is kept XOR-masked so that the search itself adds no copy to be found.
fn in_my_memory(masked: &[u8], mask: u8) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let mut mem = std::fs::File::open("/proc/self/mem").unwrap();
    let mut hits = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else {
            continue;
        };
        if !perms.starts_with("rw") {
            continue;
        }
        let name = line
            .split_whitespace()
            .nth(5)
            .unwrap_or("[anon]")
            .to_string();
        let (start, end) = range.split_once('-').unwrap();
        let (start, end) = (
            u64::from_str_radix(start, 16).unwrap(),
            u64::from_str_radix(end, 16).unwrap(),
        );
        let mut at = start;
        while at < end {
            let want = ((end - at) as usize).min(buf.len());
            if mem.seek(SeekFrom::Start(at)).is_err() {
                break;
            }
            let Ok(n) = mem.read(&mut buf[..want]) else {
                break;
            };
            if n == 0 {
                break;
            }
            if buf[..n]
                .windows(masked.len())
                .any(|w| w.iter().zip(masked).all(|(b, m)| b ^ mask == *m))
            {
                hits.push(format!("{name} {at:x}"));
            }
            // Overlap by the needle's length so a copy across two reads is still seen.
            at += (n.saturating_sub(masked.len() - 1)).max(1) as u64;
        }
    }
    buf.iter_mut().for_each(|b| *b = 0);
    hits
}

/// The child: 80 logins against a Kopano hash file (no network, so no HTTP library holds a copy),
/// then a search of its own memory for both passwords.
fn wipe_child() {
    use pam_mailauth::backend::kopano::hash::stored_value;
    let right = generated(3);
    let wrong = generated(11);
    let dir = TempDir::new("wipe");
    let stored = stored_value(b"0a1b2c3d", right.as_bytes());
    let mut line = zeroize::Zeroizing::new(b"john.doe:".to_vec());
    line.extend_from_slice(&stored);
    line.push(b'\n');
    let hashes = dir.path().join("hashes");
    std::fs::write(&hashes, &*line).unwrap();
    // Hashes are secrets: the module refuses a hash file others can read.
    let private = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600);
    std::fs::set_permissions(&hashes, private).unwrap();
    const MASK: u8 = 0x5a;
    let masked: Vec<Vec<u8>> = [&right, &wrong]
        .iter()
        .map(|p| {
            p.bytes()
                .skip(PASSWORD_LEN - 24)
                .map(|b| b ^ MASK)
                .collect()
        })
        .collect();
    // Without and with the cache (which must keep no plaintext). The right password last, so
    // that its freed copies are the least likely to be reused.
    for extra in ["", "cache_ttl=60"] {
        let svc =
            Service::module_line(&format!("backend=kopano file={} {extra}", hashes.display()));
        for _ in 0..20 {
            assert_eq!(svc.auth(USER, &wrong), PAM_AUTH_ERR);
            assert_eq!(svc.login(USER, &right), (PAM_SUCCESS, Some(PAM_SUCCESS)));
        }
    }
    drop((right, wrong));
    for (what, needle) in ["right", "wrong"].iter().zip(&masked) {
        let hits = in_my_memory(needle, MASK);
        println!("WIPE-RESULT {what} {}", hits.join(","));
    }
}

#[test]
fn passwords_are_wiped_after_use() {
    if std::env::var(WIPE_CHILD).is_ok() {
        return wipe_child();
    }
    let stdout = rerun_test("passwords_are_wiped_after_use", &[(WIPE_CHILD, "1".into())]);
    let results: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("WIPE-RESULT "))
        .collect();
    assert_eq!(results.len(), 2, "{stdout}");
    for r in results {
        let (what, hits) = r.split_once(' ').unwrap_or((r, ""));
        assert!(
            hits.trim().is_empty(),
            "the {what} password is still in memory at: {hits}"
        );
    }
}
