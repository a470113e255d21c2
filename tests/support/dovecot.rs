//! A private Dovecot 2.3 (testing.md §8): `dovecot -F -c FILE` in its own session, IMAP on a
//! free loopback port, `passdb { driver = pam }` whose auth workers read the test's PAM
//! services (a wrapper script as their `executable` preloads confdir.rs' library: Dovecot
//! clears the environment of the processes it starts), the per-IP auth penalty off (every test client is 127.0.0.1) and
//! `auth_username_chars` empty (UTF-8 names). Also a raw IMAP client (LOGIN and
//! AUTHENTICATE PLAIN).

use super::pam::TempDir;
use super::postfix::free_port;
use super::saslauthd::live_group;
use base64::Engine;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Dovecot {
    child: Child,
    pgid: i32,
    dir: TempDir,
    _services: TempDir,
    port: u16,
}

/// What Dovecot answered a login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Ok,
    /// The tagged NO, e.g. `[AUTHENTICATIONFAILED] Authentication failed.` or
    /// `[UNAVAILABLE] Temporary authentication failure.`
    No(String),
    Other(String),
}

impl Answer {
    /// A refusal of the credentials (not a temporary failure).
    pub fn is_refusal(&self) -> bool {
        matches!(self, Answer::No(t) if t.contains("[AUTHENTICATIONFAILED]"))
    }
    /// Dovecot's "try later" (the passdb reported an internal failure).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Answer::No(t) if t.contains("[UNAVAILABLE]"))
    }
}

impl Dovecot {
    /// Dovecot with PAM service `service` (`pam_text` in the test's service directory) and
    /// `passdb { driver = pam args = <passdb_args> }`.
    pub fn start(service: &str, pam_text: &str, passdb_args: &str) -> Dovecot {
        let services = TempDir::new("dovecot-svc");
        std::fs::write(services.path().join(service), pam_text).unwrap();
        std::fs::write(
            services.path().join("other"),
            "auth required pam_deny.so\naccount required pam_deny.so\n",
        )
        .unwrap();
        let dir = TempDir::new("dovecot");
        let root = dir.path();
        // Logged-in users' imap processes run as nobody and create their Maildir here.
        let homes = root.join("home");
        std::fs::create_dir_all(&homes).unwrap();
        std::fs::set_permissions(&homes, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let port = free_port();
        let worker = root.join("auth-worker.sh");
        std::fs::write(
            &worker,
            format!(
                "#!/bin/sh\n\
                 # Dovecot's auth worker reading the test's PAM services (confdir.rs); the\n\
                 # module's pam_syslog lines go to /dev/log (a capture), not to its stderr.\n\
                 LD_PRELOAD='{}' {}='{}' {}=1 exec /usr/lib/dovecot/auth \"$@\"\n",
                super::confdir::preload().display(),
                super::confdir::CONFDIR,
                services.path().display(),
                super::confdir::USE_SYSLOG
            ),
        )
        .unwrap();
        std::fs::set_permissions(&worker, std::fs::Permissions::from_mode(0o755)).unwrap();
        let conf = root.join("dovecot.conf");
        std::fs::write(
            &conf,
            format!(
                "protocols = imap\n\
                 listen = 127.0.0.1\n\
                 base_dir = {root}/run\n\
                 state_dir = {root}/state\n\
                 log_path = {root}/dovecot.log\n\
                 ssl = no\n\
                 disable_plaintext_auth = no\n\
                 auth_mechanisms = plain login\n\
                 auth_verbose = yes\n\
                 # UTF-8 names; no failure delay (the tests count seconds).\n\
                 auth_username_chars =\n\
                 auth_failure_delay = 0\n\
                 service auth-worker {{\n\
                 \x20 executable = {worker} -w\n\
                 }}\n\
                 service imap-login {{\n\
                 \x20 inet_listener imap {{\n\
                 \x20   address = 127.0.0.1\n\
                 \x20   port = {port}\n\
                 \x20 }}\n\
                 \x20 inet_listener imaps {{\n\
                 \x20   port = 0\n\
                 \x20 }}\n\
                 }}\n\
                 # Every client is 127.0.0.1: no per-IP penalty after failures.\n\
                 service anvil {{\n\
                 \x20 unix_listener anvil-auth-penalty {{\n\
                 \x20   mode = 0\n\
                 \x20 }}\n\
                 }}\n\
                 passdb {{\n\
                 \x20 driver = pam\n\
                 \x20 args = {passdb_args}\n\
                 }}\n\
                 userdb {{\n\
                 \x20 driver = static\n\
                 \x20 args = uid=nobody gid=nogroup home={homes}/%u\n\
                 }}\n\
                 mail_location = maildir:~/Maildir\n",
                root = root.display(),
                homes = homes.display(),
                worker = worker.display(),
            ),
        )
        .unwrap();
        let log = std::fs::File::create(root.join("stdout")).unwrap();
        let mut cmd = Command::new("dovecot");
        cmd.arg("-F")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        super::process::own_session(&mut cmd);
        let child = cmd
            .spawn()
            .expect("dovecot (dovecot-core) must be installed");
        let pgid = child.id() as i32;
        let mut dovecot = Dovecot {
            child,
            pgid,
            dir,
            _services: services,
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = dovecot.child.try_wait() {
                panic!("dovecot exited at start ({status}):\n{}", dovecot.log());
            }
            assert!(
                Instant::now() < deadline,
                "dovecot not listening after 20 s:\n{}",
                dovecot.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        dovecot
    }

    /// Its session id (it runs in a session of its own), for syslog::Capture::watch_session.
    pub fn session(&self) -> i32 {
        self.pgid
    }

    /// Dovecot's own log (log_path) and what it printed.
    pub fn log(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
        read("dovecot.log") + &read("stdout")
    }

    /// `a LOGIN "user" "password"` (quoted strings, for ASCII names).
    pub fn login(&self, user: &str, password: &str) -> Answer {
        let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
        self.session_with(|imap| {
            imap.send(&format!("a LOGIN {} {}", quote(user), quote(password)));
            imap.tagged()
        })
    }

    /// `a AUTHENTICATE PLAIN` and the base64 blob: the name travels byte for byte.
    pub fn authenticate_plain(&self, user: &str, password: &str) -> Answer {
        let blob = [b"\0", user.as_bytes(), b"\0", password.as_bytes()].concat();
        let blob = base64::engine::general_purpose::STANDARD.encode(blob);
        self.session_with(|imap| {
            imap.send("a AUTHENTICATE PLAIN");
            let line = imap.line();
            if !line.starts_with('+') {
                return Answer::Other(format!("no continuation: {line:?}"));
            }
            imap.send(&blob);
            imap.tagged()
        })
    }

    fn session_with(&self, body: impl FnOnce(&mut Imap) -> Answer) -> Answer {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut imap = Imap {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
        };
        let greeting = imap.line();
        assert!(greeting.starts_with("* OK"), "greeting {greeting:?}");
        let answer = body(&mut imap);
        imap.send("b LOGOUT");
        answer
    }

    /// The master still runs, IMAP still answers, and no Dovecot process died.
    pub fn assert_alive(&mut self) {
        assert!(
            matches!(self.child.try_wait(), Ok(None)),
            "dovecot master exited:\n{}",
            self.log()
        );
        assert!(
            TcpStream::connect(("127.0.0.1", self.port)).is_ok(),
            "dovecot no longer listens"
        );
        let log = self.log();
        for bad in ["Panic:", "Fatal:", "killed with signal", "(core dumped)"] {
            assert!(!log.contains(bad), "dovecot log shows {bad:?}:\n{log}");
        }
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        unsafe { libc::kill(-self.pgid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while !live_group(self.pgid).is_empty() && Instant::now() < deadline {
            let _ = self.child.try_wait();
            std::thread::sleep(Duration::from_millis(20));
        }
        if !live_group(self.pgid).is_empty() {
            unsafe { libc::kill(-self.pgid, libc::SIGKILL) };
        }
        let _ = self.child.wait();
    }
}

struct Imap {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Imap {
    fn send(&mut self, line: &str) {
        let _ = self.writer.write_all(format!("{line}\r\n").as_bytes());
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(_) => line.trim_end().to_string(),
            Err(e) => format!("(read failed: {e})"),
        }
    }

    /// Skips untagged lines up to the answer tagged `a`.
    fn tagged(&mut self) -> Answer {
        loop {
            let line = self.line();
            if line.is_empty() || line.starts_with("(read failed") {
                return Answer::Other(format!("connection ended: {line:?}"));
            }
            if let Some(rest) = line.strip_prefix("a ") {
                return match rest.split_once(' ') {
                    Some(("OK", _)) => Answer::Ok,
                    Some(("NO", text)) => Answer::No(text.to_string()),
                    _ => Answer::Other(line),
                };
            }
        }
    }
}
