//! The shared SQL layer (`pam_mailauth::sql`) against a REAL private PostgreSQL with TLS from a
//! private CA (support::postgres), called directly: the layer's own rules (verified TLS, the
//! reasons it gives, secrets), apart from any backend. tests/postfixadmin.rs drives it through
//! PAM.

#[allow(unused_imports)]
mod support;

use pam_mailauth::options::Options;
use pam_mailauth::secret::Secret;
use pam_mailauth::sql::{self, Deadline, Param, Query, Value};
use pam_mailauth::verdict::Verdict;
use std::time::Duration;
use support::postgres;
use support::tls::{CertFiles, Pki};

/// This file's own role and database on the shared private server.
const DB_USER: &str = "sqltest";
const DB_PASSWORD: &str = "pg-Pw-0417";
const DB_NAME: &str = "sqltest";

/// A CA that issued nothing the server holds.
fn other_ca() -> &'static CertFiles {
    static CA: std::sync::OnceLock<(Pki, CertFiles)> = std::sync::OnceLock::new();
    &CA.get_or_init(|| {
        let pki = Pki::new();
        let ca = pki.ca("another CA");
        (pki, ca)
    })
    .1
}

fn dsn_of(pg: &postgres::Postgres, password: &str, query: &str) -> String {
    format!(
        "postgresql://{DB_USER}:{password}@127.0.0.1:{}/{DB_NAME}{query}",
        pg.port
    )
}

const LOOKUP: Query = Query {
    mysql: "SELECT username, password, active, quota FROM mailbox WHERE username = ?",
    postgres: Some(
        "SELECT username, password, active, quota FROM mailbox WHERE username = $1::text",
    ),
};

fn setup() -> &'static postgres::Postgres {
    static TABLE: std::sync::Once = std::sync::Once::new();
    let pg = postgres::server();
    TABLE.call_once(|| {
        create_table(pg);
    });
    pg
}

fn create_table(pg: &postgres::Postgres) {
    pg.sql(
        "postgres",
        &format!(
            "CREATE ROLE {DB_USER} LOGIN PASSWORD '{DB_PASSWORD}'; \
             CREATE DATABASE {DB_NAME} OWNER {DB_USER};"
        ),
    );
    pg.sql(
        DB_NAME,
        "CREATE TABLE IF NOT EXISTS mailbox (username varchar(255) PRIMARY KEY, \
         password varchar(255), active boolean NOT NULL, quota bigint);
         INSERT INTO mailbox VALUES ('jane@example.test', '{CRYPT}$2y$10$abc', true, 1024), \
         ('nopw@example.test', NULL, false, NULL) ON CONFLICT DO NOTHING;
         GRANT SELECT ON mailbox TO sqltest;",
    );
}

fn opts(cafile: Option<&std::path::Path>) -> Options {
    let mut args = vec![
        "backend=kopano".to_string(),
        "file=/nonexistent".to_string(),
    ];
    if let Some(ca) = cafile {
        args.push(format!("cafile={}", ca.display()));
    }
    let mut o = Options::parse(&args).unwrap();
    o.timeout = Duration::from_secs(5);
    o
}

fn lookup(opts: &Options, dsn: &str, user: &str) -> Result<Vec<sql::Row>, Verdict> {
    sql::query(
        opts,
        &Secret::new(dsn),
        Deadline::after(opts.timeout),
        LOOKUP,
        &[Param::Text(user)],
        4,
    )
}

#[test]
fn verified_tls_reads_text_boolean_integer_and_null_columns() {
    let pg = setup();
    let o = opts(Some(&pg.ca.cert));
    let dsn = dsn_of(pg, DB_PASSWORD, "?sslmode=require");
    let rows = lookup(&o, &dsn, "jane@example.test").unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].text(0), Some(Some(&b"jane@example.test"[..])));
    assert_eq!(rows[0].text(1), Some(Some(&b"{CRYPT}$2y$10$abc"[..])));
    assert_eq!(rows[0].int(2), Some(1));
    assert_eq!(rows[0].int(3), Some(1024));
    let rows = lookup(&o, &dsn, "nopw@example.test").unwrap();
    assert_eq!(rows[0].0[1], Value::Null);
    assert_eq!(rows[0].int(2), Some(0));
    assert!(lookup(&o, &dsn, "nobody@example.test").unwrap().is_empty());
    // Again on the pooled connection.
    assert_eq!(lookup(&o, &dsn, "jane@example.test").unwrap().len(), 1);
}

#[test]
fn another_ca_or_no_tls_is_unavailable_with_the_reason_and_no_secret() {
    let pg = setup();
    let dsn = dsn_of(pg, DB_PASSWORD, "?sslmode=require");
    let Err(Verdict::Unavailable(why)) =
        lookup(&opts(Some(&other_ca().cert)), &dsn, "jane@example.test")
    else {
        panic!("another CA accepted");
    };
    assert!(why.contains("TLS with the database failed"), "{why}");
    assert!(why.contains("certificate verify failed"), "{why}");
    // A wrong password: the server's text (naming the account) is not repeated.
    let wrong = dsn_of(pg, "not-the-password", "?sslmode=require");
    let Err(Verdict::Unavailable(why)) =
        lookup(&opts(Some(&pg.ca.cert)), &wrong, "jane@example.test")
    else {
        panic!("wrong password accepted");
    };
    assert!(why.contains("credentials"), "{why}");
    for secret in [DB_PASSWORD, "not-the-password", DB_USER] {
        assert!(!why.contains(secret), "{why}");
    }
}

#[test]
fn a_postgresql_password_parameter_is_a_secret() {
    let pg = setup();
    let dsn = format!(
        "postgresql://{}@127.0.0.1:{}/{}?sslmode=require&password={DB_PASSWORD}",
        DB_USER, pg.port, DB_NAME
    );
    assert!(sql::is_secret(&dsn));
    // ...and the driver does use it.
    let rows = lookup(&opts(Some(&pg.ca.cert)), &dsn, "jane@example.test").unwrap();
    assert_eq!(rows.len(), 1);
}
