//! A private PostgreSQL for the PostfixAdmin tests, started like the private MariaDB
//! (mariadb.rs): lazily, once per test process, from a thread that lives as long as the
//! process (PR_SET_PDEATHSIG), in its own session and temp dir, on a free port bound to
//! 127.0.0.1 and a private unix socket directory. PostgreSQL refuses to run as root, so
//! `initdb` and `postgres` run as the `postgres` system user (setpriv, no extra fork).
//!
//! TLS is on with a certificate for `localhost`/127.0.0.1 from a private CA (the module is
//! expected to verify it); password logins over TCP use SCRAM, the socket trusts local users
//! (for the test's own psql).

use super::tls::{CertFiles, Pki};
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

pub struct Postgres {
    pub dir: PathBuf,
    /// The unix socket directory (`host=` of libpq).
    pub socket_dir: PathBuf,
    pub port: u16,
    pub pid: u32,
    /// The CA that issued the server's certificate.
    pub ca: CertFiles,
    /// Kept alive for the server's key files.
    _pki: Pki,
}

static SERVER: OnceLock<Postgres> = OnceLock::new();
static SERVER_PID: AtomicUsize = AtomicUsize::new(0);
static SERVER_DIR: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn stop_at_exit() {
    let pid = SERVER_PID.load(Ordering::SeqCst);
    if pid != 0 {
        unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
    if let Some(dir) = SERVER_DIR.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// The directory of initdb and postgres (Debian keeps them out of PATH).
fn bindir() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL (apt-get install postgresql)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("postgres").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("no /usr/lib/postgresql/*/bin/postgres")
}

/// `cmd` run as the postgres user: setpriv execs in place, so signals and PDEATHSIG reach
/// the server itself.
fn as_postgres(program: &Path) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid=postgres",
        "--regid=postgres",
        "--init-groups",
        "--",
    ])
    .arg(program);
    cmd
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn chown_postgres(path: &Path) {
    let status = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success(), "chown postgres {}", path.display());
}

/// The one server of this test process, started on first use.
pub fn server() -> &'static Postgres {
    SERVER.get_or_init(start)
}

fn start() -> Postgres {
    let dir = std::env::temp_dir().join(format!("pam_mailauth-postgres-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let _ = SERVER_DIR.set(dir.clone());
    unsafe { libc::atexit(stop_at_exit) };
    let bin = bindir();
    let data = dir.join("data");
    let socket_dir = dir.join("sock");
    std::fs::create_dir_all(&socket_dir).unwrap();
    // TLS material: the server's key must belong to postgres and be private.
    let pki = Pki::new();
    let ca = pki.ca("pfa-test-ca");
    let cert = pki.issued(&ca, "localhost", "DNS:localhost,IP:127.0.0.1");
    let tls = dir.join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    std::fs::copy(&cert.cert, tls.join("server.crt")).unwrap();
    std::fs::copy(&cert.key, tls.join("server.key")).unwrap();
    std::fs::set_permissions(
        tls.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    chown_postgres(&dir);
    let out = as_postgres(&bin.join("initdb"))
        .args([
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--username=postgres",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            "-D",
        ])
        .arg(&data)
        .stdin(Stdio::null())
        .output()
        .expect("initdb");
    assert!(
        out.status.success(),
        "initdb failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let port = free_port();
    let mut cmd = as_postgres(&bin.join("postgres"));
    cmd.arg("-D")
        .arg(&data)
        .arg("-p")
        .arg(port.to_string())
        .arg("-k")
        .arg(&socket_dir)
        .args(["-c", "listen_addresses=127.0.0.1"])
        .args(["-c", "ssl=on"])
        .arg("-c")
        .arg(format!(
            "ssl_cert_file={}",
            tls.join("server.crt").display()
        ))
        .arg("-c")
        .arg(format!("ssl_key_file={}", tls.join("server.key").display()))
        .args(["-c", "fsync=off", "-c", "max_connections=200"])
        .args(["-c", "shared_buffers=16MB"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(
            std::fs::File::create(dir.join("server.log"))
                .map(Stdio::from)
                .unwrap_or_else(|_| Stdio::null()),
        );
    super::process::own_session(&mut cmd);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let child = cmd.spawn();
        let failed = child.is_err();
        tx.send(child.map(|c| c.id())).unwrap();
        if !failed {
            loop {
                std::thread::park();
            }
        }
    });
    let pid = rx.recv().unwrap().expect("postgres");
    SERVER_PID.store(pid as usize, Ordering::SeqCst);
    let pg = Postgres {
        dir: dir.clone(),
        socket_dir,
        port,
        pid,
        ca,
        _pki: pki,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while pg.try_sql("postgres", "SELECT 1").is_err() {
        assert!(
            Instant::now() < deadline,
            "postgres did not start: {}",
            std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    pg
}

impl Postgres {
    /// Runs SQL as the superuser over the private socket, in `database`.
    pub fn try_sql(&self, database: &str, sql: &str) -> Result<String, String> {
        let mut child = Command::new(bindir().join("psql"))
            .args([
                "-X",
                "-q",
                "-t",
                "-A",
                "-v",
                "ON_ERROR_STOP=1",
                "-U",
                "postgres",
            ])
            .arg("-h")
            .arg(&self.socket_dir)
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-d")
            .arg(database)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(sql.as_bytes())
            .map_err(|e| e.to_string())?;
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    pub fn sql(&self, database: &str, sql: &str) -> String {
        self.try_sql(database, sql)
            .unwrap_or_else(|e| panic!("SQL failed: {e}\n{sql}"))
    }

    /// Ends every session of a role (what a server restart does to pooled connections).
    pub fn kill_connections_of(&self, role: &str) {
        self.sql(
            "postgres",
            &format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}';"
            ),
        );
    }
}
