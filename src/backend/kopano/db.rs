//! `dsn=mysql://user:pass@host:port/db` (or `?socket=/path`): the Kopano DB user plugin's
//! tables in MySQL/MariaDB.
//!
//! - `object(id, externid, objectclass)`: 65537 (ACTIVE_USER) is an active user; other user
//!   classes (0x1xxxx: non-active user, room, equipment, contact) exist but may not log in.
//! - `objectproperty(objectid, propname, value)`: `loginname`, `password`.
//! - `objectmvproperty(objectid, propname, orderid, value)`: `0x67B3101E` explicitly enabled
//!   features, `0x67B4101E` explicitly disabled features.
//!
//! The login name is attacker-controlled: it only ever travels as a bound parameter of a
//! prepared statement. Kopano matches it with the column's case-insensitive collation and
//! then re-checks the row with `stricmp`; we do the same (ASCII case folding), which also
//! drops rows that the collation's trailing-space padding would match.
//!
//! One process keeps its connections (a few per DSN) for reuse across authentications; a
//! pooled connection that fails is dropped and one fresh connection is tried, and a
//! connection inherited across `fork()` is never used (nor closed: that would close the
//! parent's session). Connect, read and write timeouts come from `connect_timeout=` and
//! `timeout=`.

use super::{Record, ACTIVE_USER};
use crate::options::Options;
use crate::secret::Secret;
use crate::verdict::Verdict;
use mysql::prelude::Queryable;
use mysql::{Conn, Opts, OptsBuilder};
use once_cell::sync::Lazy;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Idle connections kept per DSN and process.
const IDLE_PER_DSN: usize = 4;

/// At most this many rows can match one login (case variants); more is not a Kopano store.
const MAX_ROWS: usize = 16;

/// The user objects whose `loginname` equals the name under the column's collation.
const USER_QUERY: &str = "SELECT o.id, o.objectclass, login.value, pass.value \
     FROM object AS o \
     JOIN objectproperty AS login \
       ON login.objectid = o.id AND login.propname = 'loginname' \
     LEFT JOIN objectproperty AS pass \
       ON pass.objectid = o.id AND pass.propname = 'password' \
     WHERE login.value = ? AND (o.objectclass & 0xFFFF0000) = 0x10000 \
     ORDER BY (o.objectclass = 65537) DESC, o.id \
     LIMIT 16";

/// PR_EC_ENABLED_FEATURES / PR_EC_DISABLED_FEATURES of one object.
const FEATURE_QUERY: &str = "SELECT propname, value FROM objectmvproperty \
     WHERE objectid = ? AND propname IN ('0x67B3101E', '0x67B4101E', '0x67b3101e', '0x67b4101e')";

type Key = [u8; 32];

struct Pooled {
    pid: u32,
    idle: Vec<Conn>,
}

static POOL: Lazy<Mutex<HashMap<Key, Pooled>>> = Lazy::new(|| Mutex::new(HashMap::new()));

/// The pool key: a digest of the DSN and the timeouts (the DSN itself holds a password).
fn key_of(dsn: &Secret, opts: &Options) -> Key {
    let mut h = Sha256::new();
    h.update(dsn.expose().as_bytes());
    h.update(opts.timeout.as_nanos().to_le_bytes());
    h.update(opts.connect_timeout.as_nanos().to_le_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(&h.finalize());
    key
}

fn take(key: &Key) -> Option<Conn> {
    let pid = std::process::id();
    // Without the lock (see crate::lock) the login simply opens a fresh connection.
    let mut pool = crate::lock::lock_briefly(&POOL)?;
    let entry = pool.entry(*key).or_insert_with(|| Pooled {
        pid,
        idle: Vec::new(),
    });
    if entry.pid != pid {
        // Inherited across fork(): the sockets are the parent's. Closing them would send
        // COM_QUIT on the parent's sessions, so leak them instead.
        for conn in entry.idle.drain(..) {
            std::mem::forget(conn);
        }
        entry.pid = pid;
    }
    entry.idle.pop()
}

fn give_back(key: &Key, conn: Conn) {
    let pid = std::process::id();
    let Some(mut pool) = crate::lock::lock_briefly(&POOL) else {
        return;
    };
    match pool.get_mut(key) {
        Some(entry) if entry.pid == pid && entry.idle.len() < IDLE_PER_DSN => entry.idle.push(conn),
        _ => drop(conn),
    }
}

/// Connection settings from the DSN with our timeouts; the error never shows the DSN.
fn settings(dsn: &Secret, opts: &Options) -> Result<Opts, Verdict> {
    let parsed = Opts::from_url(dsn.expose()).map_err(|e| {
        Verdict::Misconfigured(format!(
            "dsn is not a usable mysql:// URL ({e}); the form is \
             mysql://user:password@host:port/database or mysql://user@localhost/database?socket=/path"
        ))
    })?;
    if parsed.get_db_name().is_none_or(str::is_empty) {
        return Err(Verdict::Misconfigured(
            "dsn names no database: mysql://user:password@host:port/DATABASE".into(),
        ));
    }
    Ok(OptsBuilder::from_opts(parsed)
        .tcp_connect_timeout(Some(opts.connect_timeout.min(opts.timeout)))
        .read_timeout(Some(opts.timeout))
        .write_timeout(Some(opts.timeout))
        // Never switch from TCP to the server's own socket behind the admin's back.
        .prefer_socket(false)
        .into())
}

/// Where the database is, for log lines: host and port or socket, and the database name.
pub fn endpoint(dsn: &Secret) -> Option<String> {
    let o = Opts::from_url(dsn.expose()).ok()?;
    let db = o.get_db_name().unwrap_or("");
    Some(match o.get_socket() {
        Some(socket) => format!("mysql {socket}/{db}"),
        None => format!("mysql {}:{}/{db}", o.get_ip_or_hostname(), o.get_tcp_port()),
    })
}

/// Words for a database error, free of the DSN and its password.
fn describe(err: &mysql::Error, timeout: Duration) -> String {
    use mysql::Error as E;
    match err {
        E::MySqlError(e) if e.code == 1045 || e.code == 1044 => format!(
            "the database refused the module's own credentials (error {}: {}): check the user \
             and password in dsn=",
            e.code, e.message
        ),
        E::MySqlError(e) if e.code == 1049 || e.code == 1146 => format!(
            "database error {}: {}: does dsn= name the Kopano database?",
            e.code, e.message
        ),
        E::MySqlError(e) => format!("database error {}: {}", e.code, e.message),
        E::IoError(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ) =>
        {
            format!("no answer from the database within {timeout:?}")
        }
        E::IoError(e) => format!("cannot talk to the database: {e}"),
        E::DriverError(e) => format!("cannot talk to the database: {e}"),
        E::CodecError(e) => format!("garbled answer from the database: {e}"),
        // Never the row itself: it may hold a password hash.
        E::FromRowError(_) => {
            "a row of unexpected shape (NULL or out-of-range id or object class): does dsn= \
             name a Kopano database?"
                .into()
        }
        other => format!("database: {other}"),
    }
}

/// Errors after which a fresh connection may succeed where a pooled one failed.
fn is_transport(err: &mysql::Error) -> bool {
    matches!(
        err,
        mysql::Error::IoError(_) | mysql::Error::DriverError(_) | mysql::Error::CodecError(_)
    )
}

type UserRow = (u64, u32, Option<Vec<u8>>, Option<Vec<u8>>);

/// Converts rows without the panicking `FromRow::from_row`: a NULL or out-of-range value is an
/// error the caller reports, not a panic carrying the row to the host's stderr.
fn typed<T: mysql::prelude::FromRow>(rows: Vec<mysql::Row>) -> mysql::Result<Vec<T>> {
    rows.into_iter()
        .take(MAX_ROWS)
        .map(|row| mysql::from_row_opt::<T>(row).map_err(|e| mysql::Error::FromRowError(e.0)))
        .collect()
}

fn query(conn: &mut Conn, user: &str, want_features: bool) -> mysql::Result<Option<Record>> {
    let rows: Vec<UserRow> = typed(conn.exec(USER_QUERY, (user,))?)?;
    let found = rows.into_iter().find(|(_, _, login, _)| {
        login
            .as_deref()
            .is_some_and(|l| l.eq_ignore_ascii_case(user.as_bytes()))
    });
    let Some((id, object_class, _, password)) = found else {
        return Ok(None);
    };
    let mut record = Record {
        object_class,
        hash: password.map(|p| Secret::new(String::from_utf8_lossy(&p).into_owned())),
        enabled: Vec::new(),
        disabled: Vec::new(),
    };
    if want_features && object_class == ACTIVE_USER {
        let props: Vec<(String, Option<String>)> = typed(conn.exec(FEATURE_QUERY, (id,))?)?;
        for (propname, value) in props {
            let Some(value) = value else { continue };
            let feature = value.trim().to_ascii_lowercase();
            if propname.eq_ignore_ascii_case("0x67B3101E") {
                record.enabled.push(feature);
            } else {
                record.disabled.push(feature);
            }
        }
    }
    Ok(Some(record))
}

/// The record for `user`, `None` if there is no user object with that login name.
pub fn lookup(
    opts: &Options,
    dsn: &Secret,
    user: &str,
    want_features: bool,
) -> Result<Option<Record>, Verdict> {
    let settings = settings(dsn, opts)?;
    let key = key_of(dsn, opts);
    let started = Instant::now();
    if let Some(mut conn) = take(&key) {
        match query(&mut conn, user, want_features) {
            Ok(found) => {
                give_back(&key, conn);
                return Ok(found);
            }
            Err(err) if !is_transport(&err) || started.elapsed() >= opts.timeout => {
                return Err(Verdict::Unavailable(describe(&err, opts.timeout)));
            }
            // The server closed an idle connection, restarted, or failed over: start afresh.
            Err(_) => drop(conn),
        }
    }
    let mut conn =
        Conn::new(settings).map_err(|e| Verdict::Unavailable(describe(&e, opts.timeout)))?;
    let found = query(&mut conn, user, want_features)
        .map_err(|e| Verdict::Unavailable(describe(&e, opts.timeout)))?;
    give_back(&key, conn);
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_never_shows_the_password() {
        let dsn = Secret::new("mysql://kopano:pw-xyz@db.example:3307/kopano");
        assert_eq!(
            endpoint(&dsn).as_deref(),
            Some("mysql db.example:3307/kopano")
        );
        let dsn = Secret::new("mysql://kopano@localhost/kopano?socket=/run/mysqld/mysqld.sock");
        assert_eq!(
            endpoint(&dsn).as_deref(),
            Some("mysql /run/mysqld/mysqld.sock/kopano")
        );
    }

    #[test]
    fn bad_dsns_are_configuration_errors_without_the_password() {
        let opts = Options::default();
        for bad in [
            "mysql://u:pw-xyz@h:notaport/db",
            "mysql://u:pw-xyz@h/db?colour=blue",
            "mysql://u:pw-xyz@h:3306/",
        ] {
            match settings(&Secret::new(bad), &opts) {
                Err(Verdict::Misconfigured(why)) => assert!(!why.contains("xyz"), "{why}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }
}
