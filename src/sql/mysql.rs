//! MySQL/MariaDB through `mysql_async`: what `super` needs of this engine (parse a DSN,
//! prepare settings, connect, run a query, describe an error in words free of the DSN).

use super::{unusable, Dsn, Engine, Failure, Param, Query, Row, Tls, Value, ODD_VALUE};
use crate::options::Options;
use crate::secret::Secret;
use crate::trusted_file;
use crate::verdict::Verdict;
use mysql_async::prelude::Queryable;
use zeroize::Zeroizing;

/// How a MySQL DSN is written, for error messages.
pub const FORM: &str = "mysql://user:password@host:port/database?require_ssl=true \
     (or mysql://user:password@localhost/database?socket=/path)";

/// Parses a DSN that passed `super::check_shape`, with the driver's own parser.
pub(super) fn parse(text: &str) -> Result<Dsn, String> {
    let opts =
        mysql_async::Opts::from_url(text).map_err(|e| unusable(url_error_words(&e), FORM))?;
    let database = opts
        .db_name()
        .filter(|d| !d.is_empty())
        .ok_or_else(|| {
            unusable(
                "it names no database (mysql://user@host:port/DATABASE)",
                FORM,
            )
        })?
        .to_string();
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
        has_password: opts.pass().is_some_and(|p| !p.is_empty()),
        tls,
    })
}

pub(super) fn url_error_words(e: &mysql_async::UrlError) -> &'static str {
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

/// The fewest statements a connection keeps prepared, whatever `stmt_cache_size=` the DSN
/// gives: more than the module ever runs on one connection, so each is prepared once per
/// connection and every check is one round trip. With the driver's cache off
/// (`stmt_cache_size=0`) every check would prepare its statement anew and never close it,
/// until the server's `max_prepared_stmt_count` refuses every client.
const MIN_STMT_CACHE: usize = 8;

/// The driver's settings: the DSN plus TLS roots and our own choices.
pub(super) fn settings(
    dsn_text: &Secret,
    dsn: &Dsn,
    opts: &Options,
) -> Result<mysql_async::Opts, Verdict> {
    let parsed = mysql_async::Opts::from_url(dsn_text.expose())
        .map_err(|e| Verdict::Misconfigured(unusable(url_error_words(&e), FORM)))?;
    let ssl = parsed.ssl_opts().cloned();
    let stmt_cache_size = parsed.stmt_cache_size().max(MIN_STMT_CACHE);
    let mut builder = mysql_async::OptsBuilder::from_opts(parsed)
        // Never move from the configured TCP endpoint to the server's own socket.
        .prefer_socket(false)
        .stmt_cache_size(stmt_cache_size);
    if let (Some(ssl), Some(_)) = (ssl, &dsn.host) {
        // cafile= or the system's bundle, never the driver's built-in lookup (which the
        // environment can extend), as for HTTPS. The bytes checked by trusted_file are the
        // bytes used: the driver never opens the path itself.
        let pem =
            trusted_file::trust_roots(opts.cafile.as_deref()).map_err(Verdict::Misconfigured)?;
        let bytes = pem.text.as_bytes().to_vec();
        builder = builder.ssl_opts(
            ssl.with_root_certs(vec![bytes.into()])
                .with_disable_built_in_roots(true),
        );
    }
    Ok(builder.into())
}

/// Words for a driver error, free of the DSN, its user name and its password.
pub(super) fn describe(err: &mysql_async::Error) -> String {
    use mysql_async::{DriverError as D, Error as E, IoError};
    match err {
        E::Server(e) => server_error(e.code, &e.state, &e.message),
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
        E::Url(e) => unusable(url_error_words(e), FORM),
        E::Other(_) => "database driver error".into(),
    }
}

/// Words for an error the server sent: its code and fixed wording, never the server's own
/// text. That text names the DSN's account ("SELECT command denied to user 'pfa'@'host'",
/// "Access denied for user ...") or quotes values, the bound login among them, that a
/// custom query= turned into an error: the name-logging rule covers both. `message` is only
/// searched, never shown.
fn server_error(code: u16, state: &str, message: &str) -> String {
    if code == 3159 || message.contains("insecure transport") {
        // MySQL's number; MariaDB answers with a number of its own but the same words.
        return format!("the database requires TLS (error {code}): add ?require_ssl=true to dsn=");
    }
    match code {
        1044 | 1045 => format!(
            "the database refused the module's own credentials (error {code}): check the user \
             and password in dsn= and the account's grants"
        ),
        1698 => format!(
            "the database refused the module's own account (error {code}): it may be set to \
             log in by unix socket only; give the dsn= account a password"
        ),
        1142 | 1143 => format!(
            "the dsn= account lacks a privilege the query needs (error {code}): GRANT SELECT \
             on the tables query= reads to it"
        ),
        1049 => format!(
            "the database does not exist (error {code}): does dsn= name the right database?"
        ),
        1146 => format!(
            "a table the query reads does not exist (error {code}): does dsn= name the right \
             database?"
        ),
        1054 => format!("a column the query names does not exist (error {code}): check query="),
        1064 => format!("the server cannot parse the query (error {code}): check query="),
        _ => format!(
            "database error {code} (SQLSTATE {state}): see the server's error reference for \
             the code"
        ),
    }
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

pub(super) async fn run_query(
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
        // unwrap_raw, not Row::unwrap (which panics for a column taken before): a column the
        // row no longer holds is an unreadable answer, never a panic in the host.
        let row = row
            .unwrap_raw()
            .into_iter()
            .map(|v| v.ok_or_else(|| ODD_VALUE.to_string()).and_then(value_of))
            .collect::<Result<Vec<_>, _>>()
            .map_err(Failure::Final)?;
        rows.push(Row(row));
    }
    Ok(rows)
}

/// A fresh connection; every failure here is final for this attempt.
pub(super) async fn connect(settings: mysql_async::Opts) -> Result<mysql_async::Conn, Failure> {
    mysql_async::Conn::new(settings)
        .await
        .map_err(|e| Failure::Final(describe(&e)))
}

#[cfg(test)]
mod tests {
    use super::server_error;

    #[test]
    fn server_errors_show_the_code_and_never_the_servers_text() {
        for (code, state, message, says) in [
            (1045, "28000", "Access denied for user 'pfa'@'localhost' (using password: YES)", "credentials"),
            (1044, "42000", "Access denied for user 'pfa'@'%' to database 'postfix'", "credentials"),
            (1142, "42000", "SELECT command denied to user 'pfa'@'localhost' for table `postfix`.`mailbox`", "GRANT SELECT"),
            (1143, "42000", "SELECT command denied to user 'pfa'@'localhost' for column 'password' in table 'mailbox'", "GRANT SELECT"),
            (1698, "28000", "Access denied for user 'pfa'@'localhost'", "unix socket"),
            (3159, "HY000", "Connections using insecure transport are prohibited while --require_secure_transport=ON.", "require_ssl=true"),
            (1292, "22007", "Truncated incorrect DOUBLE value: 'pfa'", "SQLSTATE 22007"),
        ] {
            let words = server_error(code, state, message);
            assert!(words.contains(&code.to_string()), "{code}: {words}");
            assert!(words.contains(says), "{code}: {words}");
            assert!(!words.contains("pfa"), "{code} names the account: {words}");
        }
    }
}
