//! The database layer every SQL-backed check shares (Kopano's `dsn=`, PostfixAdmin's): one
//! place for each decision about a DSN and the connection it names.
//!
//! - **Parsing** by the driver's own parser (`mysql_async::Opts::from_url`), after refusing the
//!   shapes in which an unencoded `@`, `/`, `?` or `#` of a password would make the driver read
//!   part of the password as host, port, database or parameter (and so show it in log lines).
//! - **Secrets**: a DSN is a secret when the driver would send a password from it (for MySQL
//!   only the userinfo carries one: `mysql_async` refuses unknown parameters such as
//!   `?password=`), or when it cannot be parsed at all (nothing can be said about it).
//! - **One redacted form** ([`Dsn::redacted`]): engine, host and port (or socket) and
//!   database; never the user, password or query. Errors about a DSN never echo it.
//! - **TLS policy** ([`Dsn::check_transport`]): TLS as the DSN asks (`require_ssl=true`),
//!   verifying the certificate chain (system store, or only `cafile=` when set) and the host
//!   name; a TCP host that is not loopback without verified TLS is a configuration error
//!   unless [`crate::offhost::OPT_OUT`].
//! - **Deadline**: every call runs on this thread's runtime ([`crate::runtime`]) under one
//!   `tokio::time::timeout` until the caller's [`Deadline`]: DNS resolution, connect, TLS and
//!   MySQL handshakes and queries together.
//! - **Pooling**: one idle connection per DSN and thread (a connection belongs to the runtime
//!   that made it, see `crate::runtime`); a connection made by another runtime generation
//!   (inherited across fork()) is leaked, never used or closed, since closing it would end the
//!   parent's session. A pooled connection that fails is dropped and one fresh one is tried
//!   while time remains.
//!
//! Queries are given for each engine ([`Query`]) with positional parameters ([`Param`]); rows
//! come back as [`Row`]s of integers and byte strings, at most `max_rows` of them.

use crate::fork::Owned;
use crate::offhost;
use crate::options::Options;
use crate::runtime::{self, Stopped};
use crate::secret::Secret;
use crate::verdict::Verdict;
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

mod mysql;
mod postgres;

/// Which server a DSN names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Mysql,
    Postgres,
}

/// What the DSN asks of TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tls {
    Off,
    /// Certificate chain and host name verified.
    Verified,
    /// `verify_ca=false` or `verify_identity=false`: encrypted, but anyone on the path can
    /// present a certificate; as good as plaintext against an active attacker.
    Unverified,
}

/// A DSN the driver can use, parsed; holds no secret itself.
#[derive(Debug, Clone)]
pub struct Dsn {
    engine: Engine,
    /// `None` when the connection goes over a unix socket.
    host: Option<String>,
    port: u16,
    socket: Option<String>,
    database: String,
    has_password: bool,
    tls: Tls,
}

/// Why a DSN cannot be used, and how one is written. Never contains any part of the DSN.
fn unusable(why: &str, form: &str) -> String {
    format!(
        "dsn= is not usable: {why} (the DSN is not shown: it may hold a password); the form is \
         {form}"
    )
}

/// A reason the rows cannot be read as this layer's values.
const ODD_VALUE: &str = "a value of unexpected type or range in the answer (a float, date, or \
                         an integer beyond 2^63): does dsn= name the right database?";

/// The checks made on the raw text before the driver sees it. Each refuses a shape in which a
/// password with an unencoded delimiter would be read as something else.
fn check_shape(text: &str) -> Result<(Engine, &'static str), String> {
    let (engine, form, rest) = if let Some(rest) = text.strip_prefix("mysql://") {
        (Engine::Mysql, mysql::FORM, rest)
    } else if let Some(rest) = text
        .strip_prefix("postgresql://")
        .or_else(|| text.strip_prefix("postgres://"))
    {
        (Engine::Postgres, postgres::FORM, rest)
    } else {
        return Err(unusable(
            "it must start with mysql:// or postgresql://",
            mysql::FORM,
        ));
    };
    let unusable = |why: &str| unusable(why, form);
    if text.contains('#') {
        return Err(unusable(
            "it contains '#' (a '#' in the password must be written %23)",
        ));
    }
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let ats = rest.matches('@').count();
    let in_authority = rest[..authority_end].contains('@');
    if ats > 1 || (ats == 1 && !in_authority) {
        return Err(unusable(
            "an '@' stands after the host (a password containing '@', '/', '?' or '#' must be \
             percent-encoded: %40, %2F, %3F, %23)",
        ));
    }
    Ok((engine, form))
}

impl Dsn {
    /// Parses and checks a DSN; the error names the problem without echoing the DSN.
    pub fn parse(text: &str) -> Result<Dsn, String> {
        let (engine, form) = check_shape(text)?;
        let dsn = match engine {
            Engine::Mysql => mysql::parse(text)?,
            Engine::Postgres => postgres::parse(text)?,
        };
        if dsn.database.contains(['/', '@', '?']) {
            return Err(unusable("the database name contains '/', '@' or '?'", form));
        }
        Ok(dsn)
    }

    /// Whether the driver would send a password taken from this DSN.
    pub fn has_password(&self) -> bool {
        self.has_password
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The one form of a DSN that log lines and errors show: engine, host and port (or socket),
    /// database. Never the user name, password or query parameters.
    pub fn redacted(&self) -> String {
        let engine = match self.engine {
            Engine::Mysql => "mysql",
            Engine::Postgres => "postgresql",
        };
        match (&self.socket, &self.host) {
            (Some(socket), _) => format!("{engine} {socket}/{}", self.database),
            (None, Some(host)) if host.contains(':') && !host.starts_with('[') => {
                format!("{engine} [{host}]:{}/{}", self.port, self.database)
            }
            (None, host) => format!(
                "{engine} {}:{}/{}",
                host.as_deref().unwrap_or("?"),
                self.port,
                self.database
            ),
        }
    }

    /// The plaintext rule ([`crate::offhost`]): a TCP connection to another host needs verified
    /// TLS unless the admin opted out.
    pub fn check_transport(&self, plaintext_allowed: bool) -> Result<(), String> {
        let Some(host) = &self.host else {
            return Ok(());
        };
        if plaintext_allowed || offhost::is_loopback(host) || self.tls == Tls::Verified {
            return Ok(());
        }
        let what = match self.tls {
            Tls::Unverified => "the database connection (TLS without verify_ca/verify_identity)",
            _ => "the database connection",
        };
        let fix = match self.engine {
            Engine::Mysql => "Add ?require_ssl=true to dsn=",
            Engine::Postgres => "Add ?sslmode=require to dsn= (prefer may fall back to plaintext)",
        };
        Err(offhost::refusal(
            what,
            host,
            &format!(
                "{fix} (the server's certificate is checked against the system store, or \
                 against cafile= when set)"
            ),
        ))
    }
}

/// Whether a `dsn=` value is a secret (config file only, and that file not readable by other).
/// A DSN that cannot be parsed counts as one: nothing can be said about what it holds.
pub fn is_secret(text: &str) -> bool {
    Dsn::parse(text).map_or(true, |d| d.has_password())
}

/// One positional parameter of a query.
#[derive(Debug, Clone, Copy)]
pub enum Param<'a> {
    Text(&'a str),
    Int(i64),
}

/// A query written for each engine the layer speaks: `?` placeholders for MySQL, `$1`, `$2`
/// for PostgreSQL (cast them where the type is not evident: `$1::text`; an integer parameter
/// is sent as int8, so compare it as `$2::bigint`). `postgres: None` for a backend whose store
/// is MySQL only; a postgresql:// DSN then fails with a clear reason.
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    pub mysql: &'a str,
    pub postgres: Option<&'a str>,
}

/// One column value. Text comes back as bytes (wiped on drop: it may be a password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Int(i64),
    Text(Zeroizing<Vec<u8>>),
}

/// One row of integers and byte strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row(pub Vec<Value>);

impl Row {
    /// Column `i` as an integer; NULL, text or a missing column is an error for the caller.
    pub fn int(&self, i: usize) -> Option<i64> {
        match self.0.get(i) {
            Some(Value::Int(n)) => Some(*n),
            _ => None,
        }
    }

    /// Column `i` as bytes: `Some(None)` for NULL, `None` for an integer or a missing column.
    pub fn text(&self, i: usize) -> Option<Option<&[u8]>> {
        match self.0.get(i) {
            Some(Value::Text(t)) => Some(Some(t.as_slice())),
            Some(Value::Null) => Some(None),
            _ => None,
        }
    }
}

/// When the whole check must have ended.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: Instant,
    /// The configured `timeout=`, for messages.
    limit: Duration,
}

impl Deadline {
    pub fn after(limit: Duration) -> Deadline {
        Deadline {
            at: Instant::now() + limit,
            limit,
        }
    }

    fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    fn passed(&self) -> String {
        format!("no answer from the database within {:?}", self.limit)
    }
}

type Key = [u8; 32];

/// The pool key: a digest of what decides the connection (the DSN holds a password).
fn key_of(dsn: &Secret, opts: &Options) -> Key {
    let mut h = Sha256::new();
    h.update(dsn.expose().as_bytes());
    h.update([0]);
    if let Some(ca) = &opts.cafile {
        h.update(ca.as_os_str().as_encoded_bytes());
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(&h.finalize());
    key
}

/// A live connection of either engine.
enum Conn {
    Mysql(mysql_async::Conn),
    Postgres(tokio_postgres::Client),
}

/// What a fresh connection needs, prepared before the clock runs (the CA file is read here).
enum Settings {
    Mysql(mysql_async::Opts),
    Postgres(Box<postgres::Settings>),
}

impl Settings {
    fn of(dsn_text: &Secret, dsn: &Dsn, opts: &Options) -> Result<Settings, Verdict> {
        Ok(match dsn.engine {
            Engine::Mysql => Settings::Mysql(mysql::settings(dsn_text, dsn, opts)?),
            Engine::Postgres => {
                Settings::Postgres(Box::new(postgres::settings(dsn_text.expose(), dsn, opts)?))
            }
        })
    }

    async fn connect(self) -> Result<Conn, Failure> {
        Ok(match self {
            Settings::Mysql(s) => Conn::Mysql(mysql::connect(s).await?),
            Settings::Postgres(s) => Conn::Postgres(postgres::connect(*s).await?),
        })
    }
}

impl Conn {
    async fn run(
        &mut self,
        query: Query<'_>,
        params: &[Param<'_>],
        max_rows: usize,
    ) -> Result<Vec<Row>, Failure> {
        match self {
            Conn::Mysql(c) => mysql::run_query(c, query, params, max_rows).await,
            Conn::Postgres(c) => postgres::run_query(c, query, params, max_rows).await,
        }
    }
}

thread_local! {
    /// Idle connections of this thread, each with the runtime generation that made it. One
    /// inherited across fork() is never closed here (its socket is the parent's session, its
    /// I/O registration the parent's epoll instance, which closing would deregister for the
    /// parent too): `fork::Owned` leaks it, also when the thread exits in the child.
    static IDLE: RefCell<HashMap<Key, (u64, Owned<Conn>)>> = RefCell::new(HashMap::new());
}

fn take(key: &Key) -> Option<Conn> {
    let generation = runtime::generation();
    let (made_by, conn) = IDLE
        .try_with(|idle| idle.try_borrow_mut().ok()?.remove(key))
        .ok()??;
    let conn = conn.take()?;
    if made_by == generation && generation != 0 {
        Some(conn)
    } else {
        // Made by a runtime that is gone: its I/O registration is that runtime's. Leak it.
        std::mem::forget(conn);
        None
    }
}

fn give_back(key: Key, conn: Conn) {
    let generation = runtime::generation();
    let kept = IDLE.try_with(|idle| match idle.try_borrow_mut() {
        Ok(mut idle) => {
            if idle.len() >= 16 {
                // Many DSNs in one thread: keep the pool small rather than clever.
                idle.clear();
            }
            idle.insert(key, (generation, Owned::new(conn)));
            None
        }
        Err(_) => Some(conn),
    });
    // Thread exiting or pool busy: the connection is simply closed.
    drop(kept);
}

/// What went wrong with one try: whether a fresh connection might do better.
enum Failure {
    Transport(String),
    Final(String),
}

/// Runs one query against `dsn`, all of it (connection included) before `deadline`.
/// Errors are `Unavailable` (no answer to rely on) or `Misconfigured` (the DSN cannot work).
pub fn query(
    opts: &Options,
    dsn_text: &Secret,
    deadline: Deadline,
    query: Query<'_>,
    params: &[Param<'_>],
    max_rows: usize,
) -> Result<Vec<Row>, Verdict> {
    let dsn = Dsn::parse(dsn_text.expose()).map_err(Verdict::Misconfigured)?;
    dsn.check_transport(opts.disable_tls_never_use_in_production)
        .map_err(Verdict::Misconfigured)?;
    let settings = Settings::of(dsn_text, &dsn, opts)?;
    let key = key_of(dsn_text, opts);
    let stopped = |s: Stopped| match s {
        Stopped::TimedOut => Verdict::Unavailable(deadline.passed()),
        Stopped::NoRuntime(why) => Verdict::Unavailable(why),
    };
    if let Some(mut conn) = take(&key) {
        let outcome = runtime::run(deadline.remaining(), conn.run(query, params, max_rows))
            .map_err(stopped)?;
        match outcome {
            Ok(rows) => {
                give_back(key, conn);
                return Ok(rows);
            }
            Err(Failure::Final(why)) => return Err(Verdict::Unavailable(why)),
            // The server closed an idle connection, restarted, or failed over: start afresh.
            Err(Failure::Transport(_)) => drop(conn),
        }
    }
    let fresh = async {
        let mut conn = settings.connect().await?;
        let rows = conn.run(query, params, max_rows).await?;
        Ok::<_, Failure>((conn, rows))
    };
    match runtime::run(deadline.remaining(), fresh).map_err(stopped)? {
        Ok((conn, rows)) => {
            give_back(key, conn);
            Ok(rows)
        }
        Err(Failure::Final(why) | Failure::Transport(why)) => Err(Verdict::Unavailable(why)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Dsn {
        Dsn::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn redacted_shows_engine_host_port_database_only() {
        let d = parsed("mysql://kopano:pw-xyz@db.example:3307/kopano?require_ssl=true");
        assert_eq!(d.redacted(), "mysql db.example:3307/kopano");
        let d = parsed("mysql://kopano:pw-xyz@localhost/kopano?socket=/run/mysqld/mysqld.sock");
        assert_eq!(d.redacted(), "mysql /run/mysqld/mysqld.sock/kopano");
        let d = parsed("mysql://kopano@[::1]:3306/kopano");
        assert_eq!(d.redacted(), "mysql [::1]:3306/kopano");
    }

    #[test]
    fn the_password_is_found_by_the_drivers_parser() {
        assert!(parsed("mysql://kopano:s3cret@db/kopano").has_password());
        // An empty password is not sent: nothing to keep secret.
        assert!(!parsed("mysql://kopano:@db/kopano").has_password());
        assert!(parsed("mysql://kopano:pa%2Fss@db/kopano").has_password());
        assert!(!parsed("mysql://kopano@db/kopano").has_password());
        assert!(!parsed("mysql://db/kopano?socket=/s").has_password());
        // The driver knows no password parameter: such a DSN is refused outright, and
        // counts as a secret until it is fixed.
        assert!(Dsn::parse("mysql://kopano@db/kopano?password=s3cret").is_err());
        assert!(is_secret("mysql://kopano@db/kopano?password=s3cret"));
        assert!(is_secret("mysql://kopano@db/kopano?pass=s3cret"));
        assert!(!is_secret("mysql://kopano@db/kopano"));
    }

    #[test]
    fn unencoded_delimiters_in_a_password_are_refused_without_echo() {
        for (bad, fragments) in [
            (
                "mysql://kopano:2024/Summer!@127.0.0.1/kopano",
                &["2024", "Summer"][..],
            ),
            ("mysql://kopano:Qa1?Zb2@127.0.0.1/kopano", &["Qa1", "Zb2"]),
            ("mysql://kopano:Qa1#Zb2@127.0.0.1/kopano", &["Qa1", "Zb2"]),
            ("mysql://kopano:Qa1@Zb2@127.0.0.1/kopano", &["Qa1", "Zb2"]),
            (
                "mysql://kopano:x1?y2=z3@127.0.0.1/kopano",
                &["x1", "y2", "z3"],
            ),
            ("mysql://kopano:pw@127.0.0.1/kopano?zz9=1", &["zz9"]),
            (
                "mysql://kopano:pw@127.0.0.1/kopano?require_ssl=qq7",
                &["qq7"],
            ),
            ("mysql://kopano:pw@127.0.0.1:9x9/kopano", &["9x9"]),
        ] {
            let e = match Dsn::parse(bad) {
                Err(e) => e,
                Ok(d) => panic!("{bad} accepted as {}", d.redacted()),
            };
            for f in fragments {
                assert!(!e.contains(f), "{bad}: {e}");
            }
            assert!(is_secret(bad), "{bad}");
        }
    }

    #[test]
    fn postgresql_dsns_by_the_drivers_parser() {
        let d = parsed("postgresql://pfa:pw-xyz@db.example:5433/postfix?sslmode=require");
        assert_eq!(d.engine(), Engine::Postgres);
        assert_eq!(d.redacted(), "postgresql db.example:5433/postfix");
        assert!(d.has_password());
        assert!(d.check_transport(false).is_ok());
        // The password as a parameter: the driver sends it, so it is a secret.
        let d = parsed("postgres://pfa@127.0.0.1/postfix?password=s3cret");
        assert!(d.has_password());
        assert!(is_secret(
            "postgres://pfa@127.0.0.1/postfix?password=s3cret"
        ));
        assert!(!parsed("postgresql://pfa@127.0.0.1/postfix").has_password());
        let d = parsed("postgresql://pfa@/postfix?host=/run/postgresql");
        assert_eq!(d.redacted(), "postgresql /run/postgresql/postfix");
        // prefer (the driver's default) falls back to plaintext: not TLS off-host.
        for weak in ["", "?sslmode=prefer", "?sslmode=disable"] {
            let e = parsed(&format!("postgresql://pfa@192.0.2.1/postfix{weak}"))
                .check_transport(false)
                .unwrap_err();
            assert!(e.contains("sslmode=require"), "{e}");
        }
        for bad in [
            "postgresql://pfa:Qa1@Zb2@127.0.0.1/postfix",
            "postgresql://pfa:Qa1/Zb2@127.0.0.1/postfix",
            "postgresql://pfa@127.0.0.1/postfix?password=Qa1#Zb2",
            "postgresql://pfa@127.0.0.1/postfix?Qa1=Zb2",
            "postgresql://pfa@127.0.0.1,127.0.0.2/postfix",
            "postgresql://pfa@127.0.0.1/postfix?hostaddr=192.0.2.1",
            "host=127.0.0.1 password=Qa1Zb2 dbname=postfix",
        ] {
            let e = Dsn::parse(bad).err().unwrap_or_default();
            assert!(
                !e.is_empty() && !e.contains("Qa1") && !e.contains("Zb2"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn plaintext_only_to_loopback_or_over_a_socket() {
        let ok = |t: &str| parsed(t).check_transport(false);
        assert!(ok("mysql://k@127.0.0.1/db").is_ok());
        assert!(ok("mysql://k@localhost/db").is_ok());
        assert!(ok("mysql://k@[::1]/db").is_ok());
        assert!(ok("mysql://k@db.example/db?socket=/run/mysqld/mysqld.sock").is_ok());
        assert!(ok("mysql://k@db.example/db?require_ssl=true").is_ok());
        let e = ok("mysql://k@db.example/db").unwrap_err();
        assert!(
            e.contains(offhost::OPT_OUT) && e.contains("require_ssl"),
            "{e}"
        );
        assert!(ok("mysql://k@192.0.2.1/db?require_ssl=true&verify_ca=false").is_err());
        assert!(ok("mysql://k@192.0.2.1/db?require_ssl=true&verify_identity=false").is_err());
        assert!(parsed("mysql://k@db.example/db")
            .check_transport(true)
            .is_ok());
    }
}
