//! A private MariaDB for the Kopano DB-plugin tests (testing.md §4): started lazily, once per
//! test process, from a thread that lives as long as the process (PR_SET_PDEATHSIG fires when
//! the *thread* that forked exits), in its own session and temp dir, on a free port bound to
//! 127.0.0.1 and a private socket. It dies with the test process; an atexit hook also stops it
//! and removes its directory.
//!
//! The Kopano DB user plugin's tables are created as kopano-server creates them (utf8mb4,
//! case-insensitive collation on `value`), and users are written the way Kopano writes them:
//! an `object` row with the object class, `objectproperty` rows `loginname` and `password`
//! (salt of 8 lowercase hex characters + MD5(salt || password), computed here by MariaDB's
//! own MD5(), not by the module's code), and feature lists in `objectmvproperty`.

use super::tls::{CertFiles, Pki};
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

pub const ACTIVE_USER: u32 = 0x10001;
pub const NONACTIVE_USER: u32 = 0x10002;
pub const ENABLED_FEATURES: &str = "0x67B3101E";
pub const DISABLED_FEATURES: &str = "0x67B4101E";

/// The account the module uses (a DSN with a password: config file only).
pub const DB_USER: &str = "kopano";
pub const DB_PASSWORD: &str = "k0pano-db-pw";
pub const DB_NAME: &str = "kopano";

pub struct MariaDb {
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub port: u16,
    pub pid: u32,
    /// Set for [`tls_server`].
    pub tls: Option<TlsSetup>,
}

/// The certificates of [`tls_server`]: its own CA, and another CA that issued nothing it uses.
pub struct TlsSetup {
    pub ca: CertFiles,
    pub other_ca: CertFiles,
    _pki: Pki,
}

/// The "remote" address tests serve on inside a private network namespace (testing.md §9).
pub const REMOTE_IP: &str = "192.0.2.2";

static SERVER: OnceLock<MariaDb> = OnceLock::new();
static TLS_SERVER: OnceLock<MariaDb> = OnceLock::new();
static SERVER_PIDS: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];
static SERVER_DIRS: [OnceLock<PathBuf>; 2] = [OnceLock::new(), OnceLock::new()];

extern "C" fn stop_at_exit() {
    for (pid, dir) in SERVER_PIDS.iter().zip(&SERVER_DIRS) {
        let pid = pid.load(Ordering::SeqCst);
        if pid != 0 {
            unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        if let Some(dir) = dir.get() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The one server of this test process, started on first use.
pub fn server() -> &'static MariaDb {
    SERVER.get_or_init(|| start(None))
}

/// A second server of this test process that speaks only TLS (`require_secure_transport=ON`),
/// with a certificate from its own CA for 127.0.0.1, localhost and [`REMOTE_IP`]. Inside a
/// private network namespace (testing.md §9, `PAM_MAILAUTH_NETNS` set) it listens on every
/// address of that namespace, so it can stand for a remote database at [`REMOTE_IP`].
pub fn tls_server() -> &'static MariaDb {
    TLS_SERVER.get_or_init(|| {
        let pki = Pki::new();
        let ca = pki.ca("db-ca");
        let other_ca = pki.ca("other-ca");
        let cert = pki.issued(
            &ca,
            "db",
            &format!("IP:127.0.0.1,DNS:localhost,IP:{REMOTE_IP}"),
        );
        start(
            Some(TlsSetup {
                ca,
                other_ca,
                _pki: pki,
            })
            .map(|t| (t, cert)),
        )
    })
}

fn start(tls: Option<(TlsSetup, CertFiles)>) -> MariaDb {
    let slot = usize::from(tls.is_some());
    let dir = std::env::temp_dir().join(format!(
        "pam_mailauth-mariadb-{}-{slot}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let _ = SERVER_DIRS[slot].set(dir.clone());
    unsafe { libc::atexit(stop_at_exit) };
    let data = dir.join("data");
    // A temp directory of its own: two servers bootstrapping at once in a shared /tmp (one
    // test process and one inside a private network namespace) collide on their temporary
    // tables' names ("Could not remove temporary table '/tmp/#sql-temptable-...'").
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let out = Command::new("mariadb-install-db")
        .args([
            "--no-defaults",
            "--user=root",
            "--skip-test-db",
            "--auth-root-authentication-method=socket",
        ])
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--tmpdir={}", tmp.display()))
        .stdin(Stdio::null())
        .output()
        .expect("mariadb-install-db (apt-get install mariadb-server)");
    assert!(
        out.status.success(),
        "mariadb-install-db failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let socket = dir.join("sock");
    let port = free_port();
    let in_private_net = std::env::var_os(super::netns::MARKER).is_some();
    let mut cmd = Command::new("mariadbd");
    cmd.args(["--no-defaults", "--user=root", "--skip-log-bin"])
        .arg(if in_private_net {
            "--bind-address=0.0.0.0"
        } else {
            // 127.0.0.2 reaches the same server under an address its certificate lacks.
            "--bind-address=127.0.0.1,127.0.0.2"
        });
    if let Some((_, cert)) = &tls {
        cmd.arg(format!("--ssl-cert={}", cert.cert.display()))
            .arg(format!("--ssl-key={}", cert.key.display()))
            .arg("--require-secure-transport=ON");
    }
    cmd.arg(format!("--datadir={}", data.display()))
        .arg(format!("--tmpdir={}", tmp.display()))
        .arg(format!("--socket={}", socket.display()))
        .arg(format!("--port={port}"))
        .arg(format!("--pid-file={}", dir.join("pid").display()))
        .arg(format!("--log-error={}", dir.join("error.log").display()))
        .args([
            "--innodb-buffer-pool-size=16M",
            "--skip-name-resolve",
            "--max-connections=500",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    super::process::own_session(&mut cmd);
    // Fork from a thread that never ends, so PDEATHSIG fires only when the process dies.
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
    let pid = rx.recv().unwrap().expect("mariadbd");
    SERVER_PIDS[slot].store(pid as usize, Ordering::SeqCst);
    let db = MariaDb {
        dir: dir.clone(),
        socket,
        port,
        pid,
        tls: tls.map(|(t, _)| t),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while db.try_root_sql("SELECT 1").is_err() {
        assert!(
            Instant::now() < deadline,
            "mariadbd did not start: {}",
            std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    db.root_sql(&format!(
        "CREATE DATABASE {DB_NAME} CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci;
         CREATE USER '{DB_USER}'@'127.0.0.1' IDENTIFIED BY '{DB_PASSWORD}';
         CREATE USER '{DB_USER}'@'localhost' IDENTIFIED BY '{DB_PASSWORD}';
         CREATE USER '{DB_USER}'@'192.0.2.%' IDENTIFIED BY '{DB_PASSWORD}';
         GRANT SELECT ON {DB_NAME}.* TO '{DB_USER}'@'127.0.0.1';
         GRANT SELECT ON {DB_NAME}.* TO '{DB_USER}'@'localhost';
         GRANT SELECT ON {DB_NAME}.* TO '{DB_USER}'@'192.0.2.%';
         USE {DB_NAME};
         {SCHEMA}"
    ));
    db
}

/// The DB user plugin's tables, as kopano-server creates them.
const SCHEMA: &str = "
CREATE TABLE object (
  id int(11) unsigned NOT NULL auto_increment,
  externid varbinary(255),
  objectclass int(11) unsigned NOT NULL default '0',
  PRIMARY KEY (id, objectclass),
  UNIQUE KEY id (id),
  UNIQUE KEY externid (externid, objectclass)
) ENGINE=InnoDB CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci;
CREATE TABLE objectproperty (
  objectid int(11) unsigned NOT NULL default '0',
  propname varchar(255) binary NOT NULL,
  value text,
  PRIMARY KEY (objectid, propname)
) ENGINE=InnoDB CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci;
CREATE TABLE objectmvproperty (
  objectid int(11) unsigned NOT NULL default '0',
  propname varchar(255) binary NOT NULL,
  orderid tinyint(11) unsigned NOT NULL default '0',
  value text,
  PRIMARY KEY (objectid, orderid, propname)
) ENGINE=InnoDB CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci;
";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// A user as `kopano-admin -c` would write it.
pub struct KopanoUser<'a> {
    pub login: &'a str,
    pub password: Option<&'a str>,
    pub class: u32,
    pub enabled: &'a [&'a str],
    pub disabled: &'a [&'a str],
    /// Store this raw value instead of the salted hash (e.g. a legacy unsalted MD5).
    pub raw_password_value: Option<&'a str>,
}

impl<'a> KopanoUser<'a> {
    pub fn active(login: &'a str, password: &'a str) -> Self {
        KopanoUser {
            login,
            password: Some(password),
            class: ACTIVE_USER,
            enabled: &[],
            disabled: &[],
            raw_password_value: None,
        }
    }
}

impl MariaDb {
    fn try_root_sql(&self, sql: &str) -> Result<String, String> {
        let mut child = Command::new("mariadb")
            .args(["--no-defaults", "-uroot", "--batch", "--skip-column-names"])
            .arg(format!("--socket={}", self.socket.display()))
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

    /// Runs SQL as the server's root (over the private socket) and returns its output.
    pub fn root_sql(&self, sql: &str) -> String {
        self.try_root_sql(sql)
            .unwrap_or_else(|e| panic!("SQL failed: {e}\n{sql}"))
    }

    /// A DSN over TCP for the given DB account.
    pub fn dsn_as(&self, user: &str, password: &str) -> String {
        format!(
            "mysql://{user}:{password}@127.0.0.1:{}/{DB_NAME}",
            self.port
        )
    }

    /// The module's DSN over TCP to `host`, asking for TLS (`require_ssl=true`).
    pub fn tls_dsn(&self, host: &str) -> String {
        format!(
            "mysql://{DB_USER}:{DB_PASSWORD}@{host}:{}/{DB_NAME}?require_ssl=true",
            self.port
        )
    }

    /// The module's DSN over TCP.
    pub fn dsn(&self) -> String {
        self.dsn_as(DB_USER, DB_PASSWORD)
    }

    /// The module's DSN over the unix socket.
    pub fn socket_dsn(&self) -> String {
        format!(
            "mysql://{DB_USER}:{DB_PASSWORD}@localhost/{DB_NAME}?socket={}",
            self.socket.display()
        )
    }

    /// Another SELECT-only account (for tests that kill its connections).
    pub fn add_db_account(&self, user: &str, password: &str) {
        self.root_sql(&format!(
            "CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{password}';
             GRANT SELECT ON {DB_NAME}.* TO '{user}'@'127.0.0.1';"
        ));
    }

    /// Kills every connection of a DB account (what a server restart or wait_timeout does).
    pub fn kill_connections_of(&self, user: &str) -> usize {
        let ids = self.root_sql(&format!(
            "SELECT id FROM information_schema.processlist WHERE user = '{user}';"
        ));
        let ids: Vec<&str> = ids.split_whitespace().collect();
        for id in &ids {
            let _ = self.try_root_sql(&format!("KILL {id};"));
        }
        ids.len()
    }

    /// What one DB account sent the server, by command (`Connect`, `Prepare`, `Execute`,
    /// `Query`, ...), from the server's general log. The log (to the `mysql.general_log`
    /// table) is switched on by the first call and stays on: call this once before the
    /// account connects, then again to read what it did.
    pub fn commands_of(&self, user: &str) -> std::collections::BTreeMap<String, usize> {
        let out = self.root_sql(&format!(
            "SET GLOBAL log_output = 'TABLE'; SET GLOBAL general_log = ON;
             SELECT command_type, COUNT(*) FROM mysql.general_log WHERE thread_id IN
               (SELECT thread_id FROM mysql.general_log
                WHERE command_type = 'Connect' AND argument LIKE '{user}@%')
             GROUP BY command_type;"
        ));
        out.lines()
            .filter_map(|l| {
                let (command, count) = l.split_once('\t')?;
                Some((command.to_string(), count.trim().parse().ok()?))
            })
            .collect()
    }

    /// The statements a DB account prepared (from the general log, see [`commands_of`]), each
    /// with the number of internal temporary tables the server makes to execute it once with
    /// `params` (as root, in a session of its own; a temporary table of a TEXT column is
    /// written to disk).
    pub fn temp_tables_of_statements(&self, user: &str, params: &[&str]) -> Vec<(String, i64)> {
        let statements = self.root_sql(&format!(
            "SELECT HEX(argument) FROM mysql.general_log WHERE command_type = 'Prepare' AND \
             thread_id IN (SELECT thread_id FROM mysql.general_log \
                           WHERE command_type = 'Connect' AND argument LIKE '{user}@%');"
        ));
        let status = "(SELECT variable_value FROM information_schema.session_status \
                      WHERE variable_name = 'CREATED_TMP_TABLES')";
        let mut seen = Vec::new();
        for hexed in statements.split_whitespace() {
            let bytes: Vec<u8> = (0..hexed.len() / 2)
                .map(|i| u8::from_str_radix(&hexed[2 * i..2 * i + 2], 16).unwrap())
                .collect();
            let text = String::from_utf8(bytes).unwrap();
            let mut sql = format!("USE {DB_NAME}; SET @q = X'{hexed}'; PREPARE s FROM @q;\n");
            let mut vars = Vec::new();
            for (i, p) in params.iter().enumerate() {
                sql.push_str(&format!("SET @p{i} = X'{}';\n", hex(p.as_bytes())));
                vars.push(format!("@p{i}"));
            }
            let using = if vars.is_empty() {
                String::new()
            } else {
                format!(" USING {}", vars.join(", "))
            };
            // What reading the counter itself costs, then what one execution adds to it.
            sql.push_str(&format!(
                "SET @a = {status}; SET @b = {status};\n\
                 EXECUTE s{using};\n\
                 SET @c = {status};\n\
                 SELECT 'made:', (@c - @b) - (@b - @a);\n"
            ));
            let out = self.root_sql(&sql);
            let made = out
                .lines()
                .find_map(|l| l.strip_prefix("made:\t"))
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or_else(|| panic!("no count in {out}"));
            seen.push((text, made));
        }
        seen
    }

    /// Writes users the way Kopano writes them. Every value travels as a hex literal.
    pub fn add_users(&self, users: &[KopanoUser]) {
        static SALT: AtomicUsize = AtomicUsize::new(0x1a2b3c00);
        let mut sql = format!("USE {DB_NAME};\n");
        for u in users {
            let salt = format!("{:08x}", SALT.fetch_add(0x1011, Ordering::SeqCst));
            let externid = hex(format!("ext-{}-{}", u.login, salt).as_bytes());
            sql.push_str(&format!(
                "INSERT INTO object (externid, objectclass) VALUES (X'{externid}', {});\n\
                 SET @id = LAST_INSERT_ID();\n\
                 INSERT INTO objectproperty (objectid, propname, value) VALUES \
                 (@id, 'loginname', CONVERT(X'{}' USING utf8mb4));\n",
                u.class,
                hex(u.login.as_bytes())
            ));
            let value = match (u.raw_password_value, u.password) {
                (Some(raw), _) => {
                    Some(format!("CONVERT(X'{}' USING utf8mb4)", hex(raw.as_bytes())))
                }
                (None, Some(pw)) => Some(format!(
                    "CONCAT('{salt}', MD5(CONCAT('{salt}', X'{}')))",
                    hex(pw.as_bytes())
                )),
                (None, None) => None,
            };
            if let Some(value) = value {
                sql.push_str(&format!(
                    "INSERT INTO objectproperty (objectid, propname, value) VALUES \
                     (@id, 'password', {value});\n"
                ));
            }
            for (list, prop) in [
                (u.enabled, ENABLED_FEATURES),
                (u.disabled, DISABLED_FEATURES),
            ] {
                for (i, f) in list.iter().enumerate() {
                    sql.push_str(&format!(
                        "INSERT INTO objectmvproperty (objectid, propname, orderid, value) \
                         VALUES (@id, '{prop}', {i}, '{f}');\n"
                    ));
                }
            }
        }
        self.root_sql(&sql);
    }

    /// The stored password value of a login (to check it was written the Kopano way).
    pub fn stored_password(&self, login: &str) -> String {
        self.root_sql(&format!(
            "SELECT p.value FROM {DB_NAME}.objectproperty l JOIN {DB_NAME}.objectproperty p \
             ON p.objectid = l.objectid AND p.propname = 'password' \
             WHERE l.propname = 'loginname' AND l.value = CONVERT(X'{}' USING utf8mb4);",
            hex(login.as_bytes())
        ))
        .trim()
        .to_string()
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}
