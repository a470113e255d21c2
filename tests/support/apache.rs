//! A real Apache httpd with mod_authnz_pam reading the test's PAM services (testing.md §3, confdir.rs): a private
//! server root, a free port, children running as www-data, `-D FOREGROUND` in its own
//! process group, which is killed when the value is dropped.

use super::pam::TempDir;
use super::saslauthd::live_group;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MODULES: &str = "/usr/lib/apache2/modules";

#[derive(Clone, Copy, Debug)]
pub enum Mpm {
    Event,
    Prefork,
}

impl Mpm {
    fn load_line(self) -> String {
        let name = match self {
            Mpm::Event => "event",
            Mpm::Prefork => "prefork",
        };
        format!("LoadModule mpm_{name}_module {MODULES}/mod_mpm_{name}.so")
    }
}

pub struct Apache {
    child: Child,
    pgid: i32,
    pub root: TempDir,
    pub port: u16,
}

/// Makes a path readable (and directories traversable) by everyone, as the www-data
/// children need.
pub fn world_readable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = if path.is_dir() { 0o755 } else { 0o644 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

impl Apache {
    /// Starts httpd protecting /private with PAM service `service` (text `pam_text`).
    pub fn start(mpm: Mpm, service: &str, pam_text: &str) -> Apache {
        // The free port may be taken between probing and Apache's bind: try another.
        for _ in 0..3 {
            match Self::try_start(mpm, service, pam_text) {
                Ok(apache) => return apache,
                Err(logs) if logs.contains("Address already in use") => continue,
                Err(logs) => panic!("apache2 exited at start:\n{logs}"),
            }
        }
        panic!("apache2 found no free port in three tries");
    }

    fn try_start(mpm: Mpm, service: &str, pam_text: &str) -> Result<Apache, String> {
        let root = TempDir::new("httpd");
        let r = root.path();
        for d in ["htdocs/private", "run", "services"] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        std::fs::write(r.join("htdocs/private/index.html"), "private\n").unwrap();
        std::fs::write(r.join("services").join(service), pam_text).unwrap();
        std::fs::write(
            r.join("services/other"),
            "auth required pam_deny.so\naccount required pam_deny.so\n",
        )
        .unwrap();
        for p in [
            r.to_path_buf(),
            r.join("htdocs"),
            r.join("htdocs/private"),
            r.join("htdocs/private/index.html"),
            r.join("run"),
            r.join("services"),
            r.join("services").join(service),
            r.join("services/other"),
        ] {
            world_readable(&p);
        }
        let port = free_port();
        let conf = format!(
            r#"ServerRoot "{root}"
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile "{root}/run/httpd.pid"
DefaultRuntimeDir "{root}/run"
Mutex file:{root}/run
ErrorLog "{root}/error.log"
LogLevel info
{mpm}
LoadModule authn_core_module {m}/mod_authn_core.so
LoadModule authz_core_module {m}/mod_authz_core.so
LoadModule auth_basic_module {m}/mod_auth_basic.so
LoadModule authz_user_module {m}/mod_authz_user.so
LoadModule authnz_pam_module {m}/mod_authnz_pam.so
User www-data
Group www-data
StartServers 2
MaxConnectionsPerChild 3
KeepAlive Off
DocumentRoot "{root}/htdocs"
<Directory "{root}/htdocs">
  Require all granted
</Directory>
<Location /private>
  AuthType Basic
  AuthName "mail"
  AuthBasicProvider PAM
  AuthPAMService {service}
  Require valid-user
</Location>
"#,
            root = r.display(),
            mpm = mpm.load_line(),
            m = MODULES,
        );
        std::fs::write(r.join("httpd.conf"), conf).unwrap();
        let mut cmd = Command::new("apache2");
        cmd.arg("-d")
            .arg(r)
            .arg("-f")
            .arg(r.join("httpd.conf"))
            .args(["-D", "FOREGROUND"])
            .envs(super::confdir::env(&r.join("services")))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(r.join("stderr.log")).unwrap());
        super::process::own_session(&mut cmd);
        let child = cmd.spawn().expect("apache2 must be installed");
        let pgid = child.id() as i32;
        let mut apache = Apache {
            child,
            pgid,
            root,
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = apache.child.try_wait() {
                return Err(format!("({status})\n{}", apache.logs()));
            }
            assert!(
                Instant::now() < deadline,
                "apache2 not listening after 20 s:\n{}",
                apache.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(apache)
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("error.log")).unwrap_or_default()
    }

    pub fn logs(&self) -> String {
        format!(
            "error.log:\n{}\nstderr:\n{}",
            self.error_log(),
            std::fs::read_to_string(self.root.path().join("stderr.log")).unwrap_or_default()
        )
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    /// GET `path` on a new connection with Basic credentials; the HTTP status.
    pub fn get(&self, path: &str, credentials: Option<(&str, &str)>) -> u16 {
        use base64::Engine;
        let mut conn = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut request =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
        if let Some((u, p)) = credentials {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            request.push_str(&format!("Authorization: Basic {token}\r\n"));
        }
        request.push_str("\r\n");
        conn.write_all(request.as_bytes()).unwrap();
        let mut answer = Vec::new();
        let _ = conn.read_to_end(&mut answer);
        let text = String::from_utf8_lossy(&answer);
        text.split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no HTTP answer: {text:?}\n{}", self.logs()))
    }

    /// The server's processes (parent and children).
    pub fn processes(&self) -> std::collections::BTreeSet<i32> {
        live_group(self.pgid)
    }

    /// Graceful stop (SIGWINCH, as `apache2 -k graceful-stop`): children finish and exit the
    /// normal way, with the module loaded, and the parent reaps and logs each of them before it
    /// exits. Waits for the parent (bounded); afterwards error.log is complete.
    pub fn stop_gracefully(&mut self) {
        unsafe { libc::kill(self.pgid, libc::SIGWINCH) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => panic!("apache2 did not stop within 30 s:\n{}", self.logs()),
            }
        }
    }

    /// The parent is running.
    pub fn assert_alive(&mut self) {
        assert!(
            matches!(self.child.try_wait(), Ok(None)),
            "apache2 exited:\n{}",
            self.logs()
        );
    }
}

impl Drop for Apache {
    fn drop(&mut self) {
        if !live_group(self.pgid).is_empty() {
            unsafe { libc::kill(-self.pgid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && !live_group(self.pgid).is_empty() {
            let _ = self.child.try_wait();
            std::thread::sleep(Duration::from_millis(20));
        }
        if !live_group(self.pgid).is_empty() {
            unsafe { libc::kill(-self.pgid, libc::SIGKILL) };
        }
        let _ = self.child.wait();
    }
}
