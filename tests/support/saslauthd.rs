//! A real saslauthd (`-a pam`) reading the test's PAM services (testing.md §3; see confdir.rs): started in its own session
//! (it signals its whole process group when it exits), asked through the real
//! `testsaslauthd` client, stopped by signalling its process group.

use super::pam::TempDir;
use std::collections::BTreeSet;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What saslauthd answered one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `OK "Success."`
    Ok,
    /// `NO "authentication failed"`
    No,
    /// Anything else: the client could not connect, timed out, or printed something odd.
    Other(String),
}

pub struct Saslauthd {
    child: Child,
    pgid: i32,
    run: TempDir,
    _services: TempDir,
    /// The processes of the daemon once it was ready (master and workers).
    processes: BTreeSet<i32>,
}

/// How to start one.
pub struct Setup<'a> {
    /// `(service name, PAM service file text)`.
    pub services: &'a [(&'a str, &'a str)],
    /// `-n`: saslauthd's process count (the master serves requests too).
    pub workers: u32,
    /// `-r`: hand PAM `user@realm` when the client names a realm.
    pub realm: bool,
}

impl Saslauthd {
    /// saslauthd serving one PAM service.
    pub fn start(service: &str, text: &str) -> Saslauthd {
        Self::start_with(Setup {
            services: &[(service, text)],
            workers: 2,
            realm: false,
        })
    }

    pub fn start_with(setup: Setup) -> Saslauthd {
        Self::start_with_env(setup, &[])
    }

    /// With extra environment variables (e.g. [`super::confdir::USE_SYSLOG`]: the module's
    /// pam_syslog lines then go to /dev/log instead of saslauthd's stderr).
    pub fn start_with_env(setup: Setup, env: &[(&str, &str)]) -> Saslauthd {
        let services = TempDir::new("sasl-svc");
        for (name, text) in setup.services {
            std::fs::write(services.path().join(name), text).unwrap();
        }
        // libpam falls back to "other" for an unknown service; make it deny.
        if !setup.services.iter().any(|(n, _)| *n == "other") {
            std::fs::write(
                services.path().join("other"),
                "auth required pam_deny.so\naccount required pam_deny.so\n",
            )
            .unwrap();
        }
        let run = TempDir::new("sasl-run");
        let log = std::fs::File::create(run.path().join("log")).unwrap();
        let mut cmd = Command::new("saslauthd");
        cmd.args(["-a", "pam", "-d", "-n", &setup.workers.to_string(), "-m"])
            .arg(run.path());
        if setup.realm {
            cmd.arg("-r");
        }
        cmd.envs(super::confdir::env(services.path()))
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        super::process::own_session(&mut cmd);
        let child = cmd
            .spawn()
            .expect("saslauthd (sasl2-bin) must be installed");
        let pgid = child.id() as i32;
        let mut daemon = Saslauthd {
            child,
            pgid,
            run,
            _services: services,
            processes: BTreeSet::new(),
        };
        daemon.wait_ready(setup.workers.max(1) as usize);
        daemon
    }

    fn wait_ready(&mut self, processes: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("saslauthd exited at start ({status}):\n{}", self.log());
            }
            let group = live_group(self.pgid);
            if UnixStream::connect(self.socket()).is_ok() && group.len() >= processes {
                self.processes = group;
                return;
            }
            assert!(
                Instant::now() < deadline,
                "saslauthd not ready after 20 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its session id (it runs in a session of its own), for syslog::Capture::watch_session.
    pub fn session(&self) -> i32 {
        self.pgid
    }

    pub fn socket(&self) -> PathBuf {
        self.run.path().join("mux")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.run.path().join("log")).unwrap_or_default()
    }

    /// The log in short, for failure messages (a failing run's whole debug log would bury the
    /// message that says what went wrong): the module's first lines, where a problem first
    /// shows, and the log's last lines.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let module: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| l.contains("pam_mailauth"))
            .take(15)
            .collect();
        let from = lines.len().saturating_sub(25);
        format!(
            "(saslauthd log: {} lines; the module's first {}:)\n{}\n(the last {}:)\n{}",
            lines.len(),
            module.len(),
            module.join("\n"),
            lines.len() - from,
            lines[from..].join("\n")
        )
    }

    /// One request through `testsaslauthd` for service `smtp`.
    pub fn answer(&self, user: &str, password: &str) -> Answer {
        self.ask("smtp", user, password, None)
    }

    pub fn ask(&self, service: &str, user: &str, password: &str, realm: Option<&str>) -> Answer {
        let mut cmd = Command::new("testsaslauthd");
        cmd.args(["-u", user, "-p", password, "-s", service, "-f"])
            .arg(self.socket());
        if let Some(r) = realm {
            cmd.args(["-r", r]);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("testsaslauthd (sasl2-bin) must be installed");
        // Bounded: a hung daemon must fail the test, not hang it.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Answer::Other("testsaslauthd did not finish within 60 s".into());
                }
            }
        }
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let text = stdout.trim();
        match (out.status.code(), text) {
            (Some(0), t) if t.starts_with("0: OK ") => Answer::Ok,
            (Some(255), t) if t.starts_with("0: NO ") => Answer::No,
            (code, t) => Answer::Other(format!(
                "exit {code:?}, stdout {t:?}, stderr {:?}",
                String::from_utf8_lossy(&out.stderr).trim()
            )),
        }
    }

    /// True for OK, false for NO; any other answer fails the test.
    pub fn check(&self, user: &str, password: &str) -> bool {
        match self.answer(user, password) {
            Answer::Ok => true,
            Answer::No => false,
            Answer::Other(why) => panic!("saslauthd gave no answer: {why}\n{}", self.log_tail()),
        }
    }

    /// The daemon still runs with exactly the processes it started with: no worker died.
    pub fn assert_alive(&mut self) {
        assert!(
            matches!(self.child.try_wait(), Ok(None)),
            "saslauthd master exited:\n{}",
            self.log_tail()
        );
        let now = live_group(self.pgid);
        assert_eq!(
            now,
            self.processes,
            "saslauthd processes changed (a worker died?):\n{}",
            self.log_tail()
        );
        assert!(
            UnixStream::connect(self.socket()).is_ok(),
            "saslauthd socket gone"
        );
    }
}

impl Drop for Saslauthd {
    fn drop(&mut self) {
        if !live_group(self.pgid).is_empty() {
            unsafe { libc::kill(-self.pgid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if live_group(self.pgid).is_empty() {
                break;
            }
            let _ = self.child.try_wait();
            std::thread::sleep(Duration::from_millis(20));
        }
        if !live_group(self.pgid).is_empty() {
            unsafe { libc::kill(-self.pgid, libc::SIGKILL) };
        }
        let _ = self.child.wait();
    }
}

/// The live (non-zombie) processes whose process group is `pgid`.
pub fn live_group(pgid: i32) -> BTreeSet<i32> {
    let mut found = BTreeSet::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp ...; comm may hold spaces, so split after the last ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[2].parse::<i32>() == Ok(pgid) && fields[0] != "Z" {
            found.insert(pid);
        }
    }
    found
}
