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

mod postgres;

use crate::offhost;
use crate::options::Options;
use crate::runtime::{self, Stopped};
use crate::secret::Secret;
use crate::trusted_file;
use crate::verdict::Verdict;
use mysql_async::prelude::Queryable;
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// How a DSN should be written, for error messages.
pub const MYSQL_FORM: &str = "mysql://user:password@host:port/database?require_ssl=true \
     (or mysql://user:password@localhost/database?socket=/path)";

/// How a PostgreSQL DSN should be written, for error messages.
pub const POSTGRES_FORM: &str = "postgresql://user:password@host:port/database?sslmode=require \
     (or postgresql://user:password@%2Fvar%2Frun%2Fpostgresql/database)";

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

/// Why a DSN cannot be used. Never contains any part of the DSN.
fn unusable(why: &str) -> String {
    format!("dsn= is not usable: {why} (the DSN is not shown: it may hold a password); the form is {MYSQL_FORM}, or {POSTGRES_FORM}")
}

/// The checks made on the raw text before the driver sees it. Each refuses a shape in which a
/// password with an unencoded delimiter would be read as something else.
fn check_shape(text: &str) -> Result<(), String> {
    let Some(rest) = ["mysql://", "postgresql://", "postgres://"]
        .iter()
        .find_map(|p| text.strip_prefix(p))
    else {
        return Err(unusable("it must start with mysql:// or postgresql://"));
    };
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
    Ok(())
}

fn url_error_words(e: &mysql_async::UrlError) -> &'static str {
    use mysql_async::UrlError as U;
    match e {
        U::UnknownParameter { .. } => {
            "it has a query parameter the MySQL driver does not know (a password goes in \
             user:password@, percent-encoded; TLS is asked with require_ssl=true)"
        }
        U::InvalidParamValue { .. } => "a query parameter has a value of the wrong kind",
        U::FeatureRequired { .. } => "a query parameter needs a driver feature not built in",
        U::InvalidPoolConstraints { .. } => "pool_min is above pool_max",
        U::UnsupportedScheme { .. } => "it must start with mysql://",
        U::Parse(_) | U::Invalid => {
            "it is not a valid URL (is the port a number? are '@', '/', '?', '#' in the \
             password percent-encoded?)"
        }
    }
}

impl Dsn {
    /// Parses and checks a DSN; the error names the problem without echoing the DSN.
    pub fn parse(text: &str) -> Result<Dsn, String> {
        check_shape(text)?;
        if !text.starts_with("mysql://") {
            return postgres::parse(text);
        }
        let opts = mysql_async::Opts::from_url(text).map_err(|e| unusable(url_error_words(&e)))?;
        let database = opts
            .db_name()
            .filter(|d| !d.is_empty())
            .ok_or_else(|| unusable("it names no database (mysql://user@host:port/DATABASE)"))?
            .to_string();
        if database.contains(['/', '@', '?']) {
            return Err(unusable("the database name contains '/', '@' or '?'"));
        }
        let tls = match opts.ssl_opts() {
            None => Tls::Off,
            Some(s) if s.accept_invalid_certs() || s.skip_domain_validation() => Tls::Unverified,
            Some(_) => Tls::Verified,
        };
        let socket = opts.socket().map(str::to_string);
        Ok(Dsn {
            engine: Engine::Mysql,
            host: match socket {
                Some(_) => None,
                None => Some(opts.ip_or_hostname().to_string()),
            },
            port: opts.tcp_port(),
            socket,
            database,
            has_password: opts.pass().is_some(),
            tls,
        })
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
        let ask = match self.engine {
            Engine::Mysql => "Add ?require_ssl=true to dsn=",
            Engine::Postgres => "Add ?sslmode=require to dsn=",
        };
        Err(offhost::refusal(
            what,
            host,
            &format!(
                "{ask} (the server's certificate is checked against the system store, or \
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

/// A query written for each engine the layer speaks.
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    pub mysql: &'a str,
    /// `None` for a store that only exists in MySQL (Kopano): a postgresql:// DSN is then a
    /// configuration error.
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

thread_local! {
    /// Idle connections of this thread, with the runtime generation that made each.
    static IDLE: RefCell<HashMap<Key, (u64, mysql_async::Conn)>> = RefCell::new(HashMap::new());
}

fn take(key: &Key) -> Option<mysql_async::Conn> {
    let generation = runtime::generation();
    let (made_by, conn) = IDLE
        .try_with(|idle| idle.try_borrow_mut().ok()?.remove(key))
        .ok()??;
    if made_by == generation && generation != 0 {
        Some(conn)
    } else {
        // Made by a runtime that is gone or belongs to the parent process: its socket is the
        // parent's session and its I/O registration the parent's epoll. Leak it.
        std::mem::forget(conn);
        None
    }
}

fn give_back(key: Key, conn: mysql_async::Conn) {
    let generation = runtime::generation();
    let kept = IDLE.try_with(|idle| match idle.try_borrow_mut() {
        Ok(mut idle) => {
            if idle.len() >= 16 {
                // Many DSNs in one thread: keep the pool small rather than clever.
                idle.clear();
            }
            idle.insert(key, (generation, conn));
            None
        }
        Err(_) => Some(conn),
    });
    // Thread exiting or pool busy: the connection is simply closed.
    drop(kept);
}

/// The driver's settings: the DSN plus TLS roots and our own choices.
fn settings(dsn_text: &Secret, dsn: &Dsn, opts: &Options) -> Result<mysql_async::Opts, Verdict> {
    let parsed = mysql_async::Opts::from_url(dsn_text.expose())
        .map_err(|e| Verdict::Misconfigured(unusable(url_error_words(&e))))?;
    let ssl = parsed.ssl_opts().cloned();
    let mut builder = mysql_async::OptsBuilder::from_opts(parsed)
        // Never move from the configured TCP endpoint to the server's own socket.
        .prefer_socket(false);
    if let (Some(ssl), Some(ca), Some(_)) = (ssl, &opts.cafile, &dsn.host) {
        // cafile= replaces the system store, as it does for HTTPS. The bytes checked by
        // trusted_file are the bytes used: the driver never opens the path itself.
        let pem = trusted_file::read_cafile(ca).map_err(Verdict::Misconfigured)?;
        let bytes = pem.text.as_bytes().to_vec();
        builder = builder.ssl_opts(
            ssl.with_root_certs(vec![bytes.into()])
                .with_disable_built_in_roots(true),
        );
    }
    Ok(builder.into())
}

/// Words for a driver error, free of the DSN, its user name and its password.
fn describe(err: &mysql_async::Error) -> String {
    use mysql_async::{DriverError as D, Error as E, IoError};
    match err {
        // The server's text names the account ('user'@'host'): only the code is shown.
        E::Server(e) if e.code == 1045 || e.code == 1044 => format!(
            "the database refused the module's own credentials (error {}): check the user and \
             password in dsn= and the account's grants",
            e.code
        ),
        E::Server(e) if e.message.contains("insecure transport") => {
            format!(
                "the database requires TLS (error {}): add ?require_ssl=true to dsn=",
                e.code
            )
        }
        E::Server(e) if e.code == 1049 || e.code == 1146 => format!(
            "database error {}: {}: does dsn= name the right database?",
            e.code, e.message
        ),
        E::Server(e) => format!("database error {}: {}", e.code, e.message),
        E::Io(IoError::Tls(e)) => format!(
            "TLS with the database failed: {e} (is the server's certificate issued by the CA in \
             cafile= or the system store, for the host name in dsn=?)"
        ),
        E::Io(IoError::Io(e)) => format!("cannot talk to the database: {e}"),
        E::Driver(D::NoClientSslFlagFromServer) => {
            "dsn= asks for TLS but the database server does not offer it".into()
        }
        // Never the row or value itself: it may hold a password hash.
        E::Driver(D::FromRow { .. } | D::FromValue { .. }) => {
            "a value of unexpected type in the answer".into()
        }
        E::Driver(e) => format!("cannot talk to the database: {e}"),
        E::Url(e) => unusable(url_error_words(e)),
        E::Other(_) => "database driver error".into(),
    }
}

/// A reason the rows cannot be read as this layer's values.
const ODD_VALUE: &str = "a value of unexpected type or range in the answer (a float, date, or \
                         an integer beyond 2^63): does dsn= name the right database?";

fn value_error() -> String {
    ODD_VALUE.into()
}

fn value_of(v: mysql_async::Value) -> Result<Value, String> {
    use mysql_async::Value as V;
    match v {
        V::NULL => Ok(Value::Null),
        V::Int(n) => Ok(Value::Int(n)),
        V::UInt(n) => i64::try_from(n)
            .map(Value::Int)
            .map_err(|_| ODD_VALUE.to_string()),
        V::Bytes(b) => Ok(Value::Text(Zeroizing::new(b))),
        _ => Err(ODD_VALUE.into()),
    }
}

/// What went wrong with one try: whether a fresh connection might do better.
enum Failure {
    Transport(String),
    Final(String),
}

async fn run_query(
    conn: &mut mysql_async::Conn,
    query: Query<'_>,
    params: &[Param<'_>],
    max_rows: usize,
) -> Result<Vec<Row>, Failure> {
    let values: Vec<mysql_async::Value> = params
        .iter()
        .map(|p| match p {
            Param::Text(t) => mysql_async::Value::Bytes(t.as_bytes().to_vec()),
            Param::Int(n) => mysql_async::Value::Int(*n),
        })
        .collect();
    let classify = |e: mysql_async::Error| {
        if e.is_fatal() {
            Failure::Transport(describe(&e))
        } else {
            Failure::Final(describe(&e))
        }
    };
    let mut result = conn
        .exec_iter(query.mysql, mysql_async::Params::Positional(values))
        .await
        .map_err(classify)?;
    let mut rows = Vec::new();
    while let Some(row) = result.next().await.map_err(classify)? {
        if rows.len() == max_rows {
            return Err(Failure::Final(format!(
                "more than {max_rows} rows for one login: does dsn= name the right database?"
            )));
        }
        let row = row
            .unwrap()
            .into_iter()
            .map(value_of)
            .collect::<Result<Vec<_>, _>>()
            .map_err(Failure::Final)?;
        rows.push(Row(row));
    }
    Ok(rows)
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
    if dsn.engine == Engine::Postgres {
        return postgres::query(opts, dsn_text, &dsn, deadline, query, params, max_rows);
    }
    let settings = settings(dsn_text, &dsn, opts)?;
    let key = key_of(dsn_text, opts);
    let stopped = |s: Stopped| match s {
        Stopped::TimedOut => Verdict::Unavailable(deadline.passed()),
        Stopped::NoRuntime(why) => Verdict::Unavailable(why),
    };
    if let Some(mut conn) = take(&key) {
        let outcome = runtime::run(
            deadline.remaining(),
            run_query(&mut conn, query, params, max_rows),
        )
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
        let mut conn = mysql_async::Conn::new(settings)
            .await
            .map_err(|e| Failure::Final(describe(&e)))?;
        let rows = run_query(&mut conn, query, params, max_rows).await?;
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
