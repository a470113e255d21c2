//! No leak per authentication: the peak memory (VmHWM) of a process doing 5,000
//! authentications through libpam stays within 4 MiB of one doing 500, with and without the
//! cache. Each count runs in a fresh child process (this test binary re-executed), so the
//! numbers are the module's and libpam's alone; the fake server runs here, in the parent.

mod support;

use support::mailstore::MailStore;
use support::process::rerun_test;
use support::*;

const CHILD_COUNT: &str = "PAM_MAILAUTH_LEAK_COUNT";
const CHILD_ARGS: &str = "PAM_MAILAUTH_LEAK_ARGS";
const USERS: usize = 1500;
const TOLERANCE_KIB: u64 = 4 * 1024;

/// Every other login is one of ten regular users (cache hits), the rest cycle through more
/// users than the cache holds (evictions).
fn user(i: usize) -> (String, String) {
    let n = if i % 2 == 0 { (i / 2) % 10 } else { i % USERS };
    (format!("user{n}"), format!("Pw-{n}"))
}

fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

/// The child: `count` logins (auth + account) through libpam, a wrong password every tenth
/// time, cycling through more users than the default cache holds; prints its peak memory.
fn child(count: usize, args: &str) {
    let svc = Service::module_line(args);
    for i in 0..count {
        let (u, p) = user(i);
        if i % 10 == 9 {
            assert_eq!(svc.auth(&u, "wrong"), PAM_AUTH_ERR);
        } else {
            assert_eq!(svc.login(&u, &p), (PAM_SUCCESS, Some(PAM_SUCCESS)), "{u}");
        }
    }
    println!("LEAK-RESULT vmhwm_kib={}", vm_hwm_kib());
}

/// Runs the child for `count` authentications and returns its VmHWM in KiB.
fn peak_after(count: usize, args: &str) -> u64 {
    let stdout = rerun_test(
        "peak_memory_does_not_grow_with_authentications",
        &[
            (CHILD_COUNT, count.to_string()),
            (CHILD_ARGS, args.to_string()),
        ],
    );
    stdout
        .lines()
        .find_map(|l| l.split_once("LEAK-RESULT vmhwm_kib=").map(|(_, v)| v))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no result from the child: {stdout}"))
}

#[test]
fn peak_memory_does_not_grow_with_authentications() {
    if let Ok(count) = std::env::var(CHILD_COUNT) {
        return child(count.parse().unwrap(), &std::env::var(CHILD_ARGS).unwrap());
    }
    let accounts: Vec<(String, String)> = (0..USERS).map(user).collect();
    let pairs: Vec<(&str, &str)> = accounts
        .iter()
        .map(|(u, p)| (u.as_str(), p.as_str()))
        .collect();
    let server = MailStore::new(&pairs).serve();
    let base = format!("backend=mailstore url={}", server.url("/"));
    let mut requests = Vec::new();
    for extra in ["", "cache_ttl=60 cache_size=1024"] {
        let before = server.count();
        let args = format!("{base} {extra}");
        let small = peak_after(500, &args);
        let large = peak_after(5000, &args);
        eprintln!("[{extra}] VmHWM after 500: {small} KiB, after 5000: {large} KiB");
        assert!(
            large <= small + TOLERANCE_KIB,
            "[{extra}] peak memory grew from {small} KiB (500 logins) to {large} KiB (5000)"
        );
        requests.push(server.count() - before);
    }
    // Without the cache every one of the 5,500 logins asked the server; with it the regular
    // users' repeated logins did not: the cache was really exercised.
    assert_eq!(requests[0], 5500, "{requests:?}");
    assert!(requests[1] < 5500 * 3 / 4, "{requests:?}");
}
