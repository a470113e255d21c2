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
    if let (Some(ca), Some(_)) = (&opts.cafile, &dsn.host) {
        let pem = trusted_file::read_cafile(ca).map_err(Verdict::Misconfigured)?;
        let certs = native_tls::Certificate::stack_from_pem(pem.text.as_bytes()).map_err(|e| {
            Verdict::Misconfigured(format!("cafile {}: not a PEM bundle: {e}", ca.display()))
        })?;
        for cert in certs {
            builder.add_root_certificate(cert);
        }
        // cafile= replaces the system store, as for HTTPS and MySQL.
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
        let code = db.code().code();
        // Class 28 (invalid authorization): the server's text names the account.
        if code.starts_with("28") {
            return format!(
                "the database refused the module's own credentials (SQLSTATE {code}): check the \
                 user and password in dsn=, the account's grants and pg_hba.conf"
            );
        }
        if code == "3D000" || code == "42P01" {
            return format!(
                "database error {code}: {}: does dsn= name the right database?",
                db.message()
            );
        }
        return format!("database error {code}: {}", db.message());
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
