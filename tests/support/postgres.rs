//! A private PostgreSQL for the shared SQL layer's tests: started lazily, once per test
//! process, as the `postgres` account (initdb refuses root) from a thread that lives as long as
//! the process, in its own session and temp dir, on a free port bound to 127.0.0.1 and a
//! private socket directory. It speaks TLS only over TCP (pg_hba.conf: `hostssl` with
//! scram-sha-256, plain `host` rejected), with a certificate from its own CA for 127.0.0.1 and
//! localhost. It dies with the test process; an atexit hook also stops it.

use super::tls::{CertFiles, Pki};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

pub const DB_USER: &str = "pfa";
pub const DB_PASSWORD: &str = "pg-Pw-0417";
pub const DB_NAME: &str = "postfix";

pub struct Postgres {
    pub dir: PathBuf,
    pub port: u16,
    pub ca: CertFiles,
    pub other_ca: CertFiles,
    _pki: Pki,
}

static SERVER: OnceLock<Postgres> = OnceLock::new();
static PID: AtomicUsize = AtomicUsize::new(0);
static DIR: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn stop_at_exit() {
    let pid = PID.load(Ordering::SeqCst);
    if pid != 0 {
        unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
    if let Some(dir) = DIR.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn bin(name: &str) -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("apt-get install postgresql")
        .flatten()
        .map(|e| e.path().join("bin").join(name))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found.pop().expect("a PostgreSQL server binary")
}

/// The `postgres` account's uid and gid (the server refuses to run as root).
fn postgres_ids() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    (id("-u"), id("-g"))
}

fn chown_postgres(path: &std::path::Path) {
    let out = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success());
}

pub fn server() -> &'static Postgres {
    SERVER.get_or_init(start)
}

fn start() -> Postgres {
    let dir = std::env::temp_dir().join(format!("pam_mailauth-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let _ = DIR.set(dir.clone());
    unsafe { libc::atexit(stop_at_exit) };
    let pki = Pki::new();
    let ca = pki.ca("pg-ca");
    let other_ca = pki.ca("pg-other-ca");
    let cert = pki.issued(&ca, "pg", "IP:127.0.0.1,DNS:localhost");
    let key = dir.join("server.key");
    std::fs::copy(&cert.key, &key).unwrap();
    std::fs::copy(&cert.cert, dir.join("server.crt")).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    chown_postgres(&dir);
    let data = dir.join("data");
    let (uid, gid) = postgres_ids();
    let out = Command::new(bin("initdb"))
        .uid(uid)
        .gid(gid)
        .args([
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-U",
            "postgres",
        ])
        .arg("-D")
        .arg(&data)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "initdb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(
        data.join("pg_hba.conf"),
        "local all all trust\n\
         hostssl all all 127.0.0.1/32 scram-sha-256\n\
         host all all 127.0.0.1/32 reject\n",
    )
    .unwrap();
    let port = super::mariadb::free_port();
    // Run as postgres directly (no runuser in between), so that the death signal set by
    // own_session, which runs after the uid change, reaches the server itself.
    let mut cmd = Command::new(bin("postgres"));
    cmd.uid(uid)
        .gid(gid)
        .arg("-D")
        .arg(&data)
        .arg("-k")
        .arg(&dir)
        .args(["-p", &port.to_string()])
        .args(["-c", "listen_addresses=127.0.0.1", "-c", "ssl=on"])
        .arg("-c")
        .arg(format!(
            "ssl_cert_file={}",
            dir.join("server.crt").display()
        ))
        .arg("-c")
        .arg(format!("ssl_key_file={}", key.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("server.log")).unwrap());
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
    PID.store(pid as usize, Ordering::SeqCst);
    let pg = Postgres {
        dir: dir.clone(),
        port,
        ca,
        other_ca,
        _pki: pki,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while pg.try_sql("SELECT 1").is_err() {
        assert!(
            Instant::now() < deadline,
            "postgres did not start: {}",
            std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    pg.sql(&format!(
        "CREATE ROLE {DB_USER} LOGIN PASSWORD '{DB_PASSWORD}'"
    ));
    pg.sql(&format!("CREATE DATABASE {DB_NAME} OWNER {DB_USER}"));
    pg
}

impl Postgres {
    fn try_sql_in(&self, db: &str, sql: &str) -> Result<String, String> {
        let out = Command::new(bin("psql"))
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-U",
                "postgres",
            ])
            .arg("-h")
            .arg(&self.dir)
            .args(["-p", &self.port.to_string(), "-d", db, "-c", sql])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    fn try_sql(&self, sql: &str) -> Result<String, String> {
        self.try_sql_in("postgres", sql)
    }

    fn sql(&self, sql: &str) -> String {
        self.try_sql(sql)
            .unwrap_or_else(|e| panic!("SQL failed: {e}\n{sql}"))
    }

    /// Runs SQL as the superuser in the test database, then hands its tables to DB_USER.
    pub fn sql_in_db(&self, sql: &str) -> String {
        self.try_sql_in(DB_NAME, sql)
            .unwrap_or_else(|e| panic!("SQL failed: {e}\n{sql}"))
    }

    /// The DSN over TCP to 127.0.0.1, with the given query string.
    pub fn dsn(&self, password: &str, query: &str) -> String {
        format!(
            "postgresql://{DB_USER}:{password}@127.0.0.1:{}/{DB_NAME}{query}",
            self.port
        )
    }
}
