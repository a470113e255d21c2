//! Starting the real daemons the tests use (saslauthd, Apache, MariaDB).

use std::os::unix::process::CommandExt;
use std::process::Command;

/// Gives the daemon its own session and process group (saslauthd signals its whole group on
/// exit, which would otherwise hit the test runner; a group is also what the tests stop), and
/// makes it die with the thread that starts it (PR_SET_PDEATHSIG), so no daemon outlives a
/// test run.
pub fn own_session(cmd: &mut Command) {
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// Runs one test of the current test binary again in a fresh child process (for what must
/// be measured or searched in a process of its own), with these extra variables, and returns
/// its standard output; fails the calling test if the child failed.
pub fn rerun_test(name: &str, env: &[(&str, String)]) -> String {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", name, "--nocapture"])
        .env("PAM_MAILAUTH_SO", super::pam::module());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "child {name} failed ({}): {stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Like `rerun_test`, in a private network and mount namespace: only loopback exists (a
/// connect to any other address fails at once; nothing leaves the machine), and
/// /etc/resolv.conf names 127.0.0.1, so every name lookup goes where the test says.
pub fn rerun_test_isolated(name: &str, env: &[(&str, String)]) -> String {
    let resolv = super::pam::TempDir::new("resolv");
    let conf = resolv.path().join("resolv.conf");
    std::fs::write(
        &conf,
        "nameserver 127.0.0.1\noptions attempts:2 timeout:5\n",
    )
    .unwrap();
    let mut cmd = Command::new("unshare");
    cmd.args(["--net", "--mount", "sh", "-c"])
        .arg("ip link set lo up && mount --bind \"$0\" /etc/resolv.conf && exec \"$@\"")
        .arg(&conf)
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture"])
        .env("PAM_MAILAUTH_SO", super::pam::module());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "child {name} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs `cmd` to its end and returns its standard output; fails the test, with its standard
/// error, if it could not start (`needs` says which package provides it) or did not succeed.
pub fn output_of(cmd: &mut Command, needs: &str) -> Vec<u8> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (needs {needs})"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
