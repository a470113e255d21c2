//! PostgreSQL through `tokio-postgres` with native-tls (`postgres-native-tls`): what `super`
//! needs of this engine.
//!
//! TLS: `sslmode=require` is the only mode that counts as TLS. tokio-postgres' default,
//! `prefer`, falls back to plaintext when the server (or a machine on the path) declines, so
//! it counts as plaintext. The connector always verifies the chain (system store, or only
//! `cafile=`) and the host name.

use super::{unusable, Dsn, Engine, Failure, Param, Query, Row, Tls, Value, ODD_VALUE};
use crate::options::Options;
use crate::trusted_file;
use crate::verdict::Verdict;
use std::str::FromStr;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::types::{ToSql, Type};
use zeroize::Zeroizing;

/// How a PostgreSQL DSN is written, for error messages.
pub const FORM: &str = "postgresql://user:password@host:port/database?sslmode=require \
     (or postgresql://user@/database?host=/run/postgresql)";

/// Parses a DSN that passed `super::check_shape`, with the driver's own parser.
pub(super) fn parse(text: &str) -> Result<Dsn, String> {
    // The driver's errors name the parameter, and sometimes echo text: fixed words instead.
    let config = tokio_postgres::Config::from_str(text).map_err(|_| {
        unusable(
            "it is not a PostgreSQL URL the driver accepts (unknown parameter or bad value; \
             are '@', '/', '?', '#' in the password percent-encoded?)",
            FORM,
        )
    })?;
    if !config.get_hostaddrs().is_empty() {
        return Err(unusable(
            "hostaddr= is not supported: name the host itself (its address is what TLS and \
             the plaintext rule judge)",
            FORM,
        ));
    }
    let (host, socket) = match config.get_hosts() {
        [Host::Tcp(h)] => (Some(h.clone()), None),
        [Host::Unix(p)] => (None, Some(p.display().to_string())),
        [] => return Err(unusable("it names no host", FORM)),
        _ => return Err(unusable("it names more than one host", FORM)),
    };
    let database = config
        .get_dbname()
        .filter(|d| !d.is_empty())
        .ok_or_else(|| {
            unusable(
                "it names no database (postgresql://user@host/DATABASE)",
                FORM,
            )
        })?
        .to_string();
    let tls = match config.get_ssl_mode() {
        SslMode::Require => Tls::Verified,
        _ => Tls::Off,
    };
    Ok(Dsn {
        engine: Engine::Postgres,
        host,
        port: config.get_ports().first().copied().unwrap_or(5432),
        socket,
        database,
        has_password: config.get_password().is_some_and(|p| !p.is_empty()),
        tls,
    })
}

/// What a connection needs: the driver's settings and a verifying TLS connector.
pub(super) struct Settings {
    config: tokio_postgres::Config,
    tls: postgres_native_tls::MakeTlsConnector,
}

pub(super) fn settings(dsn_text: &str, dsn: &Dsn, opts: &Options) -> Result<Settings, Verdict> {
    let mut config = tokio_postgres::Config::from_str(dsn_text)
        .map_err(|_| Verdict::Misconfigured(unusable("it cannot be parsed", FORM)))?;
    config.application_name("pam_mailauth");
    if dsn.tls == Tls::Off {
        // Not `prefer`: a TLS attempt that fails verification would end the check, and one
        // that a machine on the path declines would fall back anyway. Plaintext is what the
        // DSN gets, and check_transport allows it only to loopback or on request.
        config.ssl_mode(SslMode::Disable);
    }
    let mut builder = native_tls::TlsConnector::builder();
    if dsn.host.is_some() && dsn.tls != Tls::Off {
        // cafile= or the system's bundle, never the built-in lookup (which the environment
        // can extend), as for HTTPS and MySQL.
        let pem =
            trusted_file::trust_roots(opts.cafile.as_deref()).map_err(Verdict::Misconfigured)?;
        let certs = native_tls::Certificate::stack_from_pem(pem.text.as_bytes())
            .map_err(|e| Verdict::Misconfigured(format!("CA file: not a PEM bundle: {e}")))?;
        for cert in certs {
            builder.add_root_certificate(cert);
        }
        builder.disable_built_in_roots(true);
    }
    let connector = builder
        .build()
        .map_err(|e| Verdict::Misconfigured(format!("cannot set up TLS for the database: {e}")))?;
    Ok(Settings {
        config,
        tls: postgres_native_tls::MakeTlsConnector::new(connector),
    })
}

/// Words for a driver error, free of the DSN, its user name and its password.
pub(super) fn describe(err: &tokio_postgres::Error) -> String {
    if let Some(db) = err.as_db_error() {
        return server_error(db.code().code());
    }
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    let mut tls = false;
    while let Some(s) = source {
        let more = s.to_string();
        tls |= s.downcast_ref::<native_tls::Error>().is_some();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        source = s.source();
    }
    if tls || text.contains("TLS") {
        format!(
            "TLS with the database failed: {text} (is the server's certificate issued by the CA \
             in cafile= or the system store, for the host name in dsn=?)"
        )
    } else {
        format!("cannot talk to the database: {text}")
    }
}

/// Words for an error the server sent: its SQLSTATE and fixed wording, never the server's
/// message. That message names the DSN's account (class 28) or quotes values, the bound
/// login among them, that a custom query= turned into an error ("invalid input syntax for
/// type integer: \"alice\""): the name-logging rule covers both.
fn server_error(code: &str) -> String {
    let class = code.get(..2).unwrap_or("");
    match (class, code) {
        ("28", _) => format!(
            "the database refused the module's own credentials (SQLSTATE {code}): check the \
             user and password in dsn=, the account's grants and pg_hba.conf"
        ),
        (_, "42501") => format!(
            "the dsn= account lacks a privilege the query needs (SQLSTATE {code}): GRANT \
             SELECT on the tables query= reads to it"
        ),
        (_, "3D000") => format!(
            "the database does not exist (SQLSTATE {code}): does dsn= name the right database?"
        ),
        (_, "42P01") => format!(
            "a table the query reads does not exist (SQLSTATE {code}): does dsn= name the \
             right database?"
        ),
        (_, "42703") => {
            format!("a column the query names does not exist (SQLSTATE {code}): check query=")
        }
        ("42", _) => format!(
            "the server refused the query (SQLSTATE {code}: syntax or access rule): check \
             query="
        ),
        ("22", _) => format!(
            "the server cannot use a value in the query (SQLSTATE {code}: data exception): \
             check query= and the types of its columns and parameter"
        ),
        _ => format!("database error (SQLSTATE {code}): see PostgreSQL's list of error codes"),
    }
}

/// A fresh connection; its I/O task runs on this thread's runtime, during later `block_on`s.
pub(super) async fn connect(settings: Settings) -> Result<tokio_postgres::Client, Failure> {
    let (client, connection) = settings
        .config
        .connect(settings.tls)
        .await
        .map_err(|e| Failure::Final(describe(&e)))?;
    tokio::spawn(async move {
        // Ends when the client is dropped or the server goes away; the error is seen by the
        // next query on the client.
        let _ = connection.await;
    });
    Ok(client)
}

fn value_of(row: &tokio_postgres::Row, i: usize) -> Result<Value, String> {
    let odd = |_| ODD_VALUE.to_string();
    let ty = row.columns()[i].type_();
    if *ty == Type::INT2 {
        let v: Option<i16> = row.try_get(i).map_err(odd)?;
        Ok(v.map_or(Value::Null, |n| Value::Int(n.into())))
    } else if *ty == Type::INT4 {
        let v: Option<i32> = row.try_get(i).map_err(odd)?;
        Ok(v.map_or(Value::Null, |n| Value::Int(n.into())))
    } else if *ty == Type::INT8 {
        let v: Option<i64> = row.try_get(i).map_err(odd)?;
        Ok(v.map_or(Value::Null, Value::Int))
    } else if *ty == Type::BOOL {
        // PostfixAdmin's `active` columns are boolean in PostgreSQL: 1 and 0, as in MySQL.
        let v: Option<bool> = row.try_get(i).map_err(odd)?;
        Ok(v.map_or(Value::Null, |b| Value::Int(b.into())))
    } else if [Type::TEXT, Type::VARCHAR, Type::BPCHAR, Type::NAME].contains(ty) {
        let v: Option<String> = row.try_get(i).map_err(odd)?;
        Ok(v.map_or(Value::Null, |t| Value::Text(Zeroizing::new(t.into_bytes()))))
    } else {
        Err(ODD_VALUE.into())
    }
}

pub(super) async fn run_query(
    client: &mut tokio_postgres::Client,
    query: Query<'_>,
    params: &[Param<'_>],
    max_rows: usize,
) -> Result<Vec<Row>, Failure> {
    let Some(sql) = query.postgres else {
        return Err(Failure::Final(
            "this backend reads MySQL/MariaDB only: use a mysql:// dsn=".into(),
        ));
    };
    let ints: Vec<i64> = params
        .iter()
        .map(|p| match p {
            Param::Int(n) => *n,
            Param::Text(_) => 0,
        })
        .collect();
    let refs: Vec<&(dyn ToSql + Sync)> = params
        .iter()
        .zip(&ints)
        .map(|(p, n)| match p {
            Param::Text(t) => t as &(dyn ToSql + Sync),
            Param::Int(_) => n as &(dyn ToSql + Sync),
        })
        .collect();
    let classify = |e: tokio_postgres::Error| {
        if e.as_db_error().is_some() {
            Failure::Final(describe(&e))
        } else {
            Failure::Transport(describe(&e))
        }
    };
    let rows = client.query(sql, &refs).await.map_err(classify)?;
    if rows.len() > max_rows {
        return Err(Failure::Final(format!(
            "more than {max_rows} rows for one login: does dsn= name the right database?"
        )));
    }
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let values = (0..row.len())
            .map(|i| value_of(row, i))
            .collect::<Result<Vec<_>, _>>()
            .map_err(Failure::Final)?;
        out.push(Row(values));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::server_error;

    #[test]
    fn server_errors_are_told_by_sqlstate_in_fixed_words() {
        for (code, says) in [
            ("28P01", "credentials"),
            ("42501", "GRANT SELECT"),
            ("3D000", "right database"),
            ("42P01", "right database"),
            ("42703", "check query="),
            ("42601", "check query="),
            ("22P02", "data exception"),
            ("57P01", "SQLSTATE 57P01"),
        ] {
            let words = server_error(code);
            assert!(words.contains(code), "{code}: {words}");
            assert!(words.contains(says), "{code}: {words}");
        }
    }
}
