//! A private Postfix (testing.md §8): `postfix -c DIR start` with its own main.cf and master.cf,
//! smtpd on free loopback ports, not chrooted (a chrooted smtpd cannot see a private saslauthd
//! socket), SMTP AUTH through Cyrus SASL to a saslauthd, and its log in `maillog_file`. Each
//! listener has its own SASL application name (`smtpd_sasl_path`), hence its own
//! `$config_directory/sasl/NAME.conf` and saslauthd socket, and its own SASL service name
//! (`smtpd_sasl_service`), which saslauthd uses as the PAM service.
//!
//! Also a raw SMTP client (AUTH PLAIN and LOGIN), so that UTF-8 names reach smtpd byte for byte.

use super::pam::TempDir;
use base64::Engine;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

pub struct Postfix {
    dir: TempDir,
    ports: Vec<u16>,
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Postfix {
    /// One smtpd listener per `(saslauthd socket, SASL service)`, in that order (see `port`).
    pub fn start(listeners: &[(PathBuf, &str)]) -> Postfix {
        let dir = TempDir::new("postfix");
        let root = dir.path();
        for sub in ["etc/sasl", "queue", "data"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        // master.lock and friends are created by the postfix user.
        let (uid, gid) = postfix_ids();
        std::os::unix::fs::chown(root.join("data"), Some(uid), Some(gid)).unwrap();
        let maillog = root.join("maillog");
        std::fs::write(
            root.join("etc/main.cf"),
            format!(
                "compatibility_level = 3.6\n\
                 queue_directory = {queue}\n\
                 data_directory = {data}\n\
                 mail_owner = postfix\n\
                 myhostname = mx.example.test\n\
                 mydestination =\n\
                 inet_interfaces = 127.0.0.1\n\
                 inet_protocols = ipv4\n\
                 maillog_file = {maillog}\n\
                 maillog_file_prefixes = {root}\n\
                 alias_maps =\n\
                 alias_database =\n\
                 local_recipient_maps =\n\
                 smtpd_peername_lookup = no\n\
                 smtpd_tls_security_level = none\n\
                 smtpd_sasl_auth_enable = yes\n\
                 smtpd_sasl_local_domain =\n\
                 smtpd_relay_restrictions = permit_sasl_authenticated, reject\n\
                 # Who may send as whom: the login Postfix records is what this checks.\n\
                 smtpd_sender_login_maps = inline:{{ jane@example.test=jane@example.test }}\n\
                 smtpd_sender_restrictions = reject_sender_login_mismatch\n",
                queue = root.join("queue").display(),
                data = root.join("data").display(),
                maillog = maillog.display(),
                root = root.display(),
            ),
        )
        .unwrap();
        let mut master = String::from(
            "postlog   unix-dgram n - n - 1 postlogd\n\
             anvil     unix - - n - 1 anvil\n\
             proxymap  unix - - n - - proxymap\n\
             rewrite   unix - - n - - trivial-rewrite\n",
        );
        let mut ports = Vec::new();
        for (i, (socket, service)) in listeners.iter().enumerate() {
            let port = free_port();
            ports.push(port);
            // Debian's Postfix reads $config_directory/sasl/<smtpd_sasl_path>.conf.
            let app = format!("smtpd{i}");
            std::fs::write(
                root.join(format!("etc/sasl/{app}.conf")),
                format!(
                    "pwcheck_method: saslauthd\nsaslauthd_path: {}\nmech_list: PLAIN LOGIN\n",
                    socket.display()
                ),
            )
            .unwrap();
            master.push_str(&format!(
                "127.0.0.1:{port} inet n - n - - smtpd -o smtpd_sasl_path={app} \
                 -o smtpd_sasl_service={service}\n"
            ));
        }
        std::fs::write(root.join("etc/master.cf"), master).unwrap();
        let postfix = Postfix { dir, ports };
        let out = postfix.command("start");
        assert!(
            out.status.success(),
            "postfix start failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            postfix.maillog()
        );
        for port in &postfix.ports {
            postfix.wait_listening(*port);
        }
        postfix
    }

    fn command(&self, what: &str) -> std::process::Output {
        Command::new("postfix")
            .arg("-c")
            .arg(self.dir.path().join("etc"))
            .arg(what)
            .output()
            .expect("postfix must be installed")
    }

    fn wait_listening(&self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "smtpd not listening on {port} after 20 s:\n{}",
                self.maillog()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The smtpd port of the `i`-th listener given to `start`.
    pub fn port(&self, i: usize) -> u16 {
        self.ports[i]
    }

    pub fn maillog(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }

    fn master_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.dir.path().join("queue/pid/master.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// The master runs, every listener answers, and no Postfix process died of a signal or
    /// a fatal error.
    pub fn assert_alive(&self) {
        let pid = self.master_pid().expect("postfix master.pid");
        assert_eq!(
            unsafe { libc::kill(pid, 0) },
            0,
            "postfix master gone:\n{}",
            self.maillog()
        );
        for port in &self.ports {
            assert!(
                TcpStream::connect(("127.0.0.1", *port)).is_ok(),
                "smtpd on {port} gone"
            );
        }
        let log = self.maillog();
        for bad in ["fatal:", "panic:", "error:", "signal", "core dumped"] {
            assert!(!log.contains(bad), "postfix maillog shows {bad:?}:\n{log}");
        }
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let pid = self.master_pid();
        let _ = self.command("stop");
        if let Some(pid) = pid {
            let deadline = Instant::now() + Duration::from_secs(5);
            while unsafe { libc::kill(pid, 0) } == 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if unsafe { libc::kill(pid, 0) } == 0 {
                let _ = self.command("abort");
            }
        }
    }
}

fn postfix_ids() -> (u32, u32) {
    let out = Command::new("id").args(["-u", "postfix"]).output().unwrap();
    let uid = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let out = Command::new("id").args(["-g", "postfix"]).output().unwrap();
    let gid = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    (uid, gid)
}

#[derive(Clone, Copy, Debug)]
pub enum Mech {
    Plain,
    Login,
}

/// What smtpd answered the AUTH (the final reply: 235 success, 535 refused, 454 temporary).
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: u16,
    pub text: String,
}

/// One SMTP session: greeting, EHLO, AUTH with `mech`, QUIT. Bounded by a 60 s read timeout.
pub fn smtp_auth(port: u16, mech: Mech, user: &str, password: &str) -> Reply {
    smtp_session(port, mech, user, password, &[]).0
}

/// Like `smtp_auth`, then `commands` (e.g. MAIL FROM, RCPT TO) after the AUTH reply, whatever
/// it was; returns the AUTH reply and the reply to each command.
pub fn smtp_session(
    port: u16,
    mech: Mech,
    user: &str,
    password: &str,
    commands: &[&str],
) -> (Reply, Vec<Reply>) {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut send = |line: &str| {
        writer.write_all(line.as_bytes()).unwrap();
        writer.write_all(b"\r\n").unwrap();
    };
    expect(&mut reader, 220);
    send("EHLO client.example.test");
    expect(&mut reader, 250);
    let reply = match mech {
        Mech::Plain => {
            let blob = [b"\0", user.as_bytes(), b"\0", password.as_bytes()].concat();
            send(&format!("AUTH PLAIN {}", b64(&blob)));
            read_reply(&mut reader)
        }
        Mech::Login => {
            send("AUTH LOGIN");
            expect(&mut reader, 334);
            send(&b64(user.as_bytes()));
            expect(&mut reader, 334);
            send(&b64(password.as_bytes()));
            read_reply(&mut reader)
        }
    };
    let replies = commands
        .iter()
        .map(|c| {
            send(c);
            read_reply(&mut reader)
        })
        .collect();
    send("QUIT");
    (reply, replies)
}

fn expect(reader: &mut impl BufRead, code: u16) {
    let reply = read_reply(reader);
    assert_eq!(reply.code, code, "smtpd answered {reply:?}");
}

/// One (possibly multi-line) SMTP reply.
fn read_reply(reader: &mut impl BufRead) -> Reply {
    let mut text = String::new();
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).expect("smtpd reply (60 s)");
        assert!(n > 0, "smtpd closed the connection after {text:?}");
        text.push_str(&line);
        // "250-..." continues, "250 ..." ends.
        if line.as_bytes().get(3) != Some(&b'-') {
            let code = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
            return Reply { code, text };
        }
    }
}
