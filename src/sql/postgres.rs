//! The PostgreSQL side of the SQL layer (tokio-postgres, TLS through postgres-native-tls):
//! the same rules as MySQL's, in PostgreSQL's words.
//!
//! - **DSN**: `postgresql://user:password@host:port/database?sslmode=require` (or
//!   `postgres://`), parsed by tokio-postgres' own parser; a password in the userinfo or in
//!   `?password=` makes it a secret. One host only, and no `hostaddr=` (the connection must go
//!   where the DSN's host says, since that host is what the plaintext rule judges). A unix
//!   socket is a host that is a directory: `?host=/var/run/postgresql`.
//! - **TLS**: `sslmode=require` means TLS verified like every TLS of this module (chain against
//!   the system store or `cafile=`, and the host name); libpq's unverified `require` does not
//!   exist here. Without it the connection is plaintext (never "prefer": a TLS attempt that an
//!   attacker can refuse protects nothing), allowed only to loopback or a socket.
//! - **Deadline and pool**: as for MySQL. The connection's I/O task runs on this thread's
//!   runtime (see `crate::runtime`); an idle client waits in a per-thread pool keyed like
//!   MySQL's, and one made by another runtime generation is leaked, never used or dropped.

use super::{
    key_of, unusable, value_error, Deadline, Dsn, Engine, Failure, Key, Param, Query, Row, Tls,
    Value,
};
use crate::options::Options;
use crate::runtime::{self, Stopped};
use crate::secret::Secret;
use crate::trusted_file;
use crate::verdict::Verdict;
use std::cell::RefCell;
use std::collections::HashMap;
use std::str::FromStr;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Config, NoTls};
use zeroize::Zeroizing;

/// Parses a `postgresql://` DSN with tokio-postgres' own parser.
pub(super) fn parse(text: &str) -> Result<Dsn, String> {
    let config = Config::from_str(text).map_err(|_| {
        unusable(
            "it is not a PostgreSQL URL the driver accepts (is the port a number? are '@', '/', \
             '?', '#' in the password percent-encoded? is every ?parameter one libpq knows, \
             with sslmode one of disable, prefer, require?)",
        )
    })?;
    if !config.get_hostaddrs().is_empty() {
        return Err(unusable(
            "it sets hostaddr=: name the server in the host part only",
        ));
    }
    let (host, socket) = match config.get_hosts() {
        [Host::Tcp(h)] => (Some(h.clone()), None),
        [Host::Unix(dir)] => (None, Some(dir.display().to_string())),
        [] => {
            return Err(unusable(
                "it names no host (postgresql://user@HOST:port/database)",
            ))
        }
        _ => return Err(unusable("it names more than one host")),
    };
    let port = match config.get_ports() {
        [] => 5432,
        [p] => *p,
        _ => return Err(unusable("it names more than one port")),
    };
    let database = config
        .get_dbname()
        .filter(|d| !d.is_empty())
        .ok_or_else(|| unusable("it names no database (postgresql://user@host:port/DATABASE)"))?
        .to_string();
    if database.contains(['/', '@', '?']) {
        return Err(unusable("the database name contains '/', '@' or '?'"));
    }
    Ok(Dsn {
        engine: Engine::Postgres,
        host,
        port,
        socket,
        database,
        has_password: config.get_password().is_some(),
        tls: match config.get_ssl_mode() {
            SslMode::Require => Tls::Verified,
            _ => Tls::Off,
        },
    })
}

thread_local! {
    /// Idle clients of this thread, with the runtime generation that made each.
    static IDLE: RefCell<HashMap<Key, (u64, Client)>> = RefCell::new(HashMap::new());
}

fn take(key: &Key) -> Option<Client> {
    let generation = runtime::generation();
    let (made_by, client) = IDLE
        .try_with(|idle| idle.try_borrow_mut().ok()?.remove(key))
        .ok()??;
    if made_by == generation && generation != 0 && !client.is_closed() {
        Some(client)
    } else if made_by != generation {
        // Its I/O task lives on a runtime that is gone or the parent's: leak it.
        std::mem::forget(client);
        None
    } else {
        None
    }
}

fn give_back(key: Key, client: Client) {
    let generation = runtime::generation();
    let kept = IDLE.try_with(|idle| match idle.try_borrow_mut() {
        Ok(mut idle) => {
            if idle.len() >= 16 {
                idle.clear();
            }
            idle.insert(key, (generation, client));
            None
        }
        Err(_) => Some(client),
    });
    drop(kept);
}

/// The TLS connector: native-tls verifying chain and host name, with `cafile=` (when set)
/// as the only trust anchors.
fn connector(opts: &Options) -> Result<postgres_native_tls::MakeTlsConnector, Verdict> {
    let mut builder = native_tls::TlsConnector::builder();
    if let Some(ca) = &opts.cafile {
        let pem = trusted_file::read_cafile(ca).map_err(Verdict::Misconfigured)?;
        let mut any = false;
        for block in pem_blocks(&pem.text) {
            let cert = native_tls::Certificate::from_pem(block.as_bytes()).map_err(|e| {
                Verdict::Misconfigured(format!(
                    "cafile {} holds a certificate that cannot be read: {e}",
                    ca.display()
                ))
            })?;
            builder.add_root_certificate(cert);
            any = true;
        }
        if !any {
            return Err(Verdict::Misconfigured(format!(
                "cafile {} holds no PEM certificate",
                ca.display()
            )));
        }
        builder.disable_built_in_roots(true);
    }
    let tls = builder
        .build()
        .map_err(|e| Verdict::Unavailable(format!("cannot set up TLS for the database: {e}")))?;
    Ok(postgres_native_tls::MakeTlsConnector::new(tls))
}

/// Each `-----BEGIN CERTIFICATE-----` block of a PEM bundle.
fn pem_blocks(text: &str) -> Vec<String> {
    const END: &str = "-----END CERTIFICATE-----";
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN CERTIFICATE-----") {
        let Some(end) = rest[start..].find(END) else {
            break;
        };
        let stop = start + end + END.len();
        blocks.push(rest[start..stop].to_string());
        rest = &rest[stop..];
    }
    blocks
}

/// Words for a driver error, free of the DSN, user name and password.
fn describe(err: &tokio_postgres::Error) -> String {
    if let Some(db) = err.as_db_error() {
        let code = db.code().code();
        return match code {
            // The server's text names the role: only the code is shown.
            c if c.starts_with("28") => format!(
                "the database refused the module's own credentials (SQLSTATE {c}): check the \
                 user and password in dsn= and pg_hba.conf"
            ),
            "3D000" => format!("the database named in dsn= does not exist (SQLSTATE {code})"),
            "42P01" | "42703" => format!(
                "database error {code}: {}: does dsn= name the right database?",
                db.message()
            ),
            _ => format!("database error {code}: {}", db.message()),
        };
    }
    // TLS failures arrive as the error's source.
    let mut words = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        words.push_str(": ");
        words.push_str(&s.to_string());
        source = s.source();
    }
    if words.contains("certificate") || words.contains("tls") || words.contains("TLS") {
        format!(
            "TLS with the database failed: {words} (is the server's certificate issued by the \
             CA in cafile= or the system store, for the host name in dsn=?)"
        )
    } else if words.contains("server does not support TLS") {
        "dsn= asks for TLS (sslmode=require) but the database server does not offer it".into()
    } else {
        format!("cannot talk to the database: {words}")
    }
}

fn value_of(row: &tokio_postgres::Row, i: usize) -> Result<Value, String> {
    let ty = row.columns()[i].type_().clone();
    let odd = |_| value_error();
    Ok(match ty {
        Type::INT2 => row
            .try_get::<_, Option<i16>>(i)
            .map_err(odd)?
            .map(i64::from)
            .map(Value::Int),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(i)
            .map_err(odd)?
            .map(i64::from)
            .map(Value::Int),
        Type::INT8 => row
            .try_get::<_, Option<i64>>(i)
            .map_err(odd)?
            .map(Value::Int),
        Type::BOOL => row
            .try_get::<_, Option<bool>>(i)
            .map_err(odd)?
            .map(|b| Value::Int(i64::from(b))),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => row
            .try_get::<_, Option<&str>>(i)
            .map_err(odd)?
            .map(|s| Value::Text(Zeroizing::new(s.as_bytes().to_vec()))),
        Type::BYTEA => row
            .try_get::<_, Option<&[u8]>>(i)
            .map_err(odd)?
            .map(|b| Value::Text(Zeroizing::new(b.to_vec()))),
        _ => return Err(value_error()),
    }
    .unwrap_or(Value::Null))
}

async fn run_query(
    client: &Client,
    sql: &str,
    params: &[Param<'_>],
    max_rows: usize,
) -> Result<Vec<Row>, Failure> {
    let texts: Vec<Box<dyn tokio_postgres::types::ToSql + Sync>> = params
        .iter()
        .map(|p| -> Box<dyn tokio_postgres::types::ToSql + Sync> {
            match p {
                Param::Text(t) => Box::new(t.to_string()),
                Param::Int(n) => Box::new(*n),
            }
        })
        .collect();
    let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
        texts.iter().map(|b| b.as_ref()).collect();
    let classify = |e: tokio_postgres::Error| {
        if e.is_closed() || e.as_db_error().is_none() {
            Failure::Transport(describe(&e))
        } else {
            Failure::Final(describe(&e))
        }
    };
    let found = client.query(sql, &refs).await.map_err(classify)?;
    if found.len() > max_rows {
        return Err(Failure::Final(format!(
            "more than {max_rows} rows for one login: does dsn= name the right database?"
        )));
    }
    found
        .iter()
        .map(|row| {
            (0..row.len())
                .map(|i| value_of(row, i))
                .collect::<Result<Vec<_>, _>>()
                .map(Row)
                .map_err(Failure::Final)
        })
        .collect()
}

async fn connect(
    config: Config,
    tls: Option<postgres_native_tls::MakeTlsConnector>,
) -> Result<Client, Failure> {
    let fail = |e: tokio_postgres::Error| Failure::Final(describe(&e));
    match tls {
        Some(tls) => {
            let (client, connection) = config.connect(tls).await.map_err(fail)?;
            tokio::spawn(connection);
            Ok(client)
        }
        None => {
            let (client, connection) = config.connect(NoTls).await.map_err(fail)?;
            tokio::spawn(connection);
            Ok(client)
        }
    }
}

/// [`super::query`] for a PostgreSQL DSN (already parsed and checked).
pub(super) fn query(
    opts: &Options,
    dsn_text: &Secret,
    dsn: &Dsn,
    deadline: Deadline,
    query: Query<'_>,
    params: &[Param<'_>],
    max_rows: usize,
) -> Result<Vec<Row>, Verdict> {
    let Some(sql) = query.postgres else {
        return Err(Verdict::Misconfigured(
            "this backend's database is MySQL/MariaDB: dsn= must be mysql://".into(),
        ));
    };
    let mut config = Config::from_str(dsn_text.expose())
        .map_err(|_| Verdict::Misconfigured(unusable("the driver cannot read it")))?;
    config.connect_timeout(opts.connect_timeout.min(opts.timeout));
    config.application_name("pam_mailauth");
    let tls = match dsn.tls {
        Tls::Verified => {
            // Our connector decides TLS; the driver's "require" only makes it mandatory.
            config.ssl_mode(SslMode::Require);
            Some(connector(opts)?)
        }
        _ => {
            config.ssl_mode(SslMode::Disable);
            None
        }
    };
    let key = key_of(dsn_text, opts);
    let stopped = |s: Stopped| match s {
        Stopped::TimedOut => Verdict::Unavailable(deadline.passed()),
        Stopped::NoRuntime(why) => Verdict::Unavailable(why),
    };
    if let Some(client) = take(&key) {
        let outcome = runtime::run(
            deadline.remaining(),
            run_query(&client, sql, params, max_rows),
        )
        .map_err(stopped)?;
        match outcome {
            Ok(rows) => {
                give_back(key, client);
                return Ok(rows);
            }
            Err(Failure::Final(why)) => return Err(Verdict::Unavailable(why)),
            Err(Failure::Transport(_)) => drop(client),
        }
    }
    let fresh = async {
        let client = connect(config, tls).await?;
        let rows = run_query(&client, sql, params, max_rows).await?;
        Ok::<_, Failure>((client, rows))
    };
    match runtime::run(deadline.remaining(), fresh).map_err(stopped)? {
        Ok((client, rows)) => {
            give_back(key, client);
            Ok(rows)
        }
        Err(Failure::Final(why) | Failure::Transport(why)) => Err(Verdict::Unavailable(why)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{is_secret, Dsn};

    fn parsed(text: &str) -> Dsn {
        Dsn::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn postgresql_dsns_by_the_drivers_parser() {
        let d = parsed("postgresql://pfa:pw-xyz@db.example:5433/postfixadmin?sslmode=require");
        assert_eq!(d.redacted(), "postgresql db.example:5433/postfixadmin");
        assert!(d.has_password());
        assert!(d.check_transport(false).is_ok());
        let d = parsed("postgres://pfa@127.0.0.1/postfixadmin");
        assert!(!d.has_password());
        assert!(d.check_transport(false).is_ok());
        // The password as a query parameter is still the driver's password.
        assert!(is_secret(
            "postgresql://pfa@db/postfixadmin?password=s3cret"
        ));
        let d = parsed("postgresql://pfa@%2Fvar%2Frun%2Fpostgresql/postfixadmin");
        assert_eq!(d.redacted(), "postgresql /var/run/postgresql/postfixadmin");
        assert!(d.check_transport(false).is_ok());
        // Off-host needs sslmode=require; prefer (libpq's default) is plaintext here.
        for plain in [
            "postgresql://pfa@db.example/postfixadmin",
            "postgresql://pfa@db.example/postfixadmin?sslmode=prefer",
        ] {
            let e = parsed(plain).check_transport(false).unwrap_err();
            assert!(e.contains("sslmode=require"), "{e}");
        }
        for bad in [
            "postgresql://pfa:pw@db.example/",
            "postgresql://pfa:pw@h1,h2/postfixadmin",
            "postgresql://pfa:pw@db.example/postfixadmin?hostaddr=192.0.2.1",
            "postgresql://pfa:pw@db.example/postfixadmin?sslmode=verify-full",
            "postgresql://pfa:2024/Summer!@db.example/postfixadmin",
            "postgresql://pfa:pw@db.example/postfixadmin?colour=blue",
        ] {
            let e = match Dsn::parse(bad) {
                Err(e) => e,
                Ok(d) => panic!("{bad} accepted as {}", d.redacted()),
            };
            assert!(!e.contains("pw") && !e.contains("Summer"), "{bad}: {e}");
        }
    }
}
