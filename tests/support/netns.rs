//! Running one test inside a private network namespace (testing.md §9): only the namespace's
//! own loopback interface exists there, carrying 127.0.0.1 and [`super::mariadb::REMOTE_IP`]
//! (a "remote" address the test serves itself; the module judges hosts as written, so to it
//! that address is another host). A connect anywhere else fails at once with ENETUNREACH: no
//! packet leaves the machine. (A dummy interface would do as well, but not every kernel that
//! runs the tests has the dummy driver.)

use std::process::Command;

/// Set in the child that runs inside the namespace.
pub const MARKER: &str = "PAM_MAILAUTH_NETNS";

/// In the test process: runs test `name` of this binary again inside a fresh private network
/// namespace, fails if it fails there, and returns `false` (the caller returns). Inside the
/// namespace: returns `true` (the caller runs the test body).
pub fn in_private_net(name: &str) -> bool {
    let setup = format!(
        "ip link set lo up && ip addr add {}/32 dev lo",
        super::mariadb::REMOTE_IP
    );
    run_inside(
        name,
        &["--net"],
        &setup,
        MARKER,
        "a private network namespace",
    )
}

/// Runs test `name` of this binary again under `unshare` with `flags`, after the shell command
/// `setup`, with `marker` set; fails if it fails there. `true` inside (run the body).
fn run_inside(name: &str, flags: &[&str], setup: &str, marker: &str, where_: &str) -> bool {
    if std::env::var_os(marker).is_some() {
        return true;
    }
    let setup = format!("{setup} && exec \"$@\"");
    let out = Command::new("unshare")
        .args(flags)
        .args(["sh", "-c", &setup, "sh"])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(marker, "1")
        .env("PAM_MAILAUTH_SO", super::pam::module())
        .output()
        .expect("unshare (util-linux), ip (iproute2)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{name} inside {where_} failed ({}):\n{}\n{}",
        out.status,
        indented(&stdout),
        indented(&String::from_utf8_lossy(&out.stderr))
    );
    false
}

/// The inner run's output, set off from the outer's (and so not counted twice by
/// scripts/test.sh's tally of "test result:" lines).
fn indented(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("  | {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Set in the child that runs inside a private mount namespace.
pub const MOUNTS_MARKER: &str = "PAM_MAILAUTH_MOUNTNS";

/// As [`in_private_net`], in a private mount namespace where `setup` (a shell command, e.g. a
/// tmpfs mounted over a directory) has run first. The host's mounts are not touched.
pub fn in_private_mounts(name: &str, setup: &str) -> bool {
    run_inside(
        name,
        &["--mount", "--propagation", "private"],
        setup,
        MOUNTS_MARKER,
        "a private mount namespace",
    )
}
