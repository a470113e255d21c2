//! backend=postfixadmin through real libpam against PostfixAdmin's own schema (created by its
//! upgrade.php) in a private MariaDB and a private PostgreSQL, with password values from the
//! real generators (PostfixAdmin's pacrypt under php-cli, doveadm pw), one mailbox per scheme.

mod support;

use std::time::{Duration, Instant};
use support::pfa_generators::*;
use support::postfixadmin::{db, Engine, PfaDb, READER, READER_PASSWORD};
use support::syslog::Capture;
use support::tls::Pki;
use support::*;

const PAM_NEW_AUTHTOK_REQD: i32 = 12;
const PASSWORD: &str = "Pä$$ wörd {x}: 0123456789abcdef!";
const WRONG: &str = "not-the-password";

/// A module line whose DSN (it holds a password) sits in a 0600 root-owned config file.
struct Line {
    _dir: TempDir,
    svc: Service,
}

fn line_with(config: &str, extra: &str) -> Line {
    let dir = TempDir::new("pfa");
    let cfg = config_file(dir.path(), config, 0o600);
    let svc = Service::module_line(&format!(
        "backend=postfixadmin config={} {extra}",
        cfg.display()
    ));
    Line { _dir: dir, svc }
}

fn line(d: &PfaDb, extra: &str) -> Line {
    line_with(&format!("dsn = {}\n", d.dsn()), extra)
}

fn account(l: &Line, user: &str) -> i32 {
    l.svc.start(user, None).acct_mgmt()
}

fn tag(engine: Engine) -> &'static str {
    match engine {
        Engine::Mysql => "my",
        Engine::Postgres => "pg",
    }
}

#[test]
fn the_schema_is_postfixadmins_own_in_both_engines() {
    for engine in [Engine::Mysql, Engine::Postgres] {
        let d = db(engine);
        let cols = match engine {
            Engine::Mysql => d.sql(
                "SELECT table_name, column_name, column_type, column_default FROM \
                 information_schema.columns WHERE table_schema = 'postfixadmin' AND \
                 table_name IN ('mailbox','domain') AND column_name IN \
                 ('active','password_expiry') ORDER BY table_name, column_name;",
            ),
            Engine::Postgres => d.sql(
                "SELECT table_name, column_name, data_type, column_default FROM \
                 information_schema.columns WHERE table_name IN ('mailbox','domain') AND \
                 column_name IN ('active','password_expiry') ORDER BY table_name, column_name;",
            ),
        };
        // What the backend relies on: booleans as tinyint(1)/BOOLEAN, expiry as days on the
        // domain and a timestamp defaulting to 2000-01-01 on the mailbox.
        let expected = match engine {
            Engine::Mysql => ["tinyint(1)", "int(11)", "datetime", "2000-01-01 00:00:00"],
            Engine::Postgres => [
                "boolean",
                "integer",
                "timestamp with time zone",
                "2000-01-01",
            ],
        };
        for e in expected {
            assert!(cols.contains(e), "{engine:?}: {e} missing:\n{cols}");
        }
    }
}

/// Every stored form the generators produce, one mailbox each, logged in through libpam.
fn every_scheme_logs_in(engine: Engine) {
    let d = db(engine);
    let domain = format!("schemes-{}.example", tag(engine));
    d.add_domain(&domain, true, 0);
    let mut users: Vec<(String, String, bool)> = Vec::new();
    for (i, (encrypt, flavor, weak)) in PACRYPT_SETTINGS.iter().enumerate() {
        let stored = pacrypt(encrypt, *flavor, PASSWORD, None);
        users.push((format!("pacrypt{i}@{domain}"), stored, *weak));
    }
    if engine == Engine::Mysql {
        // mysql_encrypt: PostfixAdmin runs ENCRYPT() in its own database.
        let stored = pacrypt("mysql_encrypt", None, PASSWORD, Some(&d.php_db()));
        assert!(stored.starts_with("$6$$"), "mysql_encrypt wrote {stored}");
        users.push((format!("mysql-encrypt@{domain}"), stored, false));
    }
    for (i, (scheme, weak)) in DOVEADM_SCHEMES.iter().enumerate() {
        users.push((
            format!("doveadm{i}@{domain}"),
            doveadm(scheme, PASSWORD),
            *weak,
        ));
    }
    for (user, stored, _) in &users {
        d.add_mailbox(user, stored, true, None);
    }
    let strict = line(d, "");
    let lenient = line(d, "weak_schemes=allow");
    for (user, stored, weak) in &users {
        // authlib's {crypt} and DES-CRYPT read 8 characters: WRONG differs in the first.
        assert_eq!(
            lenient.svc.login(user, PASSWORD),
            (PAM_SUCCESS, Some(PAM_SUCCESS)),
            "{engine:?} {user} {stored}"
        );
        assert_eq!(
            lenient.svc.auth(user, WRONG),
            PAM_AUTH_ERR,
            "{user} {stored}"
        );
        let expected = if *weak {
            PAM_AUTHINFO_UNAVAIL
        } else {
            PAM_SUCCESS
        };
        assert_eq!(
            strict.svc.auth(user, PASSWORD),
            expected,
            "{engine:?} weak_schemes=refuse {user} {stored}"
        );
    }
}

#[test]
fn every_scheme_logs_in_mysql() {
    every_scheme_logs_in(Engine::Mysql);
}

#[test]
fn every_scheme_logs_in_postgres() {
    every_scheme_logs_in(Engine::Postgres);
}

/// Active flags, expiry by PostfixAdmin's rule, unknown users.
fn account_rules(engine: Engine) {
    let d = db(engine);
    let t = tag(engine);
    let hash = pacrypt("php_crypt:SHA512", None, PASSWORD, None);
    let (on, off) = (format!("on-{t}.example"), format!("off-{t}.example"));
    let (exp, noexp) = (format!("exp-{t}.example"), format!("noexp-{t}.example"));
    d.add_domain(&on, true, 0);
    d.add_domain(&off, false, 0);
    d.add_domain(&exp, true, 90);
    d.add_domain(&noexp, true, 0);
    let user = |name: &str, domain: &str| format!("{name}@{domain}");
    d.add_mailbox(&user("fine", &on), &hash, true, None);
    d.add_mailbox(&user("inactive", &on), &hash, false, None);
    d.add_mailbox(&user("fine", &off), &hash, true, None);
    d.add_mailbox(
        &user("expired", &exp),
        &hash,
        true,
        Some(&d.days_from_now(-1)),
    );
    d.add_mailbox(
        &user("valid", &exp),
        &hash,
        true,
        Some(&d.days_from_now(30)),
    );
    // Expiry off in the domain: the column default (2000-01-01) and a date in the past
    // ("now + 0 days" from a change long ago) lock nobody out.
    d.add_mailbox(&user("default", &noexp), &hash, true, None);
    d.add_mailbox(
        &user("past", &noexp),
        &hash,
        true,
        Some(&d.days_from_now(-400)),
    );
    let l = line(d, "");
    let ok = (PAM_SUCCESS, Some(PAM_SUCCESS));
    assert_eq!(l.svc.login(&user("fine", &on), PASSWORD), ok);
    assert_eq!(l.svc.login(&user("valid", &exp), PASSWORD), ok);
    assert_eq!(l.svc.login(&user("default", &noexp), PASSWORD), ok);
    assert_eq!(l.svc.login(&user("past", &noexp), PASSWORD), ok);
    // Inactive mailbox or domain: refused in auth, PERM_DENIED in account.
    for u in [user("inactive", &on), user("fine", &off)] {
        assert_eq!(l.svc.auth(&u, PASSWORD), PAM_AUTH_ERR, "{u}");
        assert_eq!(account(&l, &u), PAM_PERM_DENIED, "{u}");
    }
    // Expired: the password authenticates; the account phase asks for a new one.
    assert_eq!(
        l.svc.login(&user("expired", &exp), PASSWORD),
        (PAM_SUCCESS, Some(PAM_NEW_AUTHTOK_REQD))
    );
    assert_eq!(account(&l, &user("expired", &exp)), PAM_NEW_AUTHTOK_REQD);
    // Unknown mailbox.
    let nobody = user("nobody", &on);
    assert_eq!(l.svc.auth(&nobody, PASSWORD), PAM_USER_UNKNOWN);
    assert_eq!(account(&l, &nobody), PAM_USER_UNKNOWN);
    // Wrong password.
    assert_eq!(l.svc.auth(&user("fine", &on), WRONG), PAM_AUTH_ERR);
}

#[test]
fn account_rules_mysql() {
    account_rules(Engine::Mysql);
}

#[test]
fn account_rules_postgres() {
    account_rules(Engine::Postgres);
}

/// Names full of SQL: they are bound parameters, never SQL, and match only themselves.
fn sql_metacharacters(engine: Engine) {
    let d = db(engine);
    let domain = format!("meta-{}.example", tag(engine));
    d.add_domain(&domain, true, 0);
    let hash = doveadm("SHA512-CRYPT", PASSWORD);
    let odd = format!("o'brien\"x\\%_;--@{domain}");
    d.add_mailbox(&odd, &hash, true, None);
    d.add_mailbox(&format!("plain@{domain}"), &hash, true, None);
    let l = line(d, "");
    assert_eq!(
        l.svc.login(&odd, PASSWORD),
        (PAM_SUCCESS, Some(PAM_SUCCESS))
    );
    for hostile in [
        format!("' OR '1'='1' -- @{domain}"),
        format!("x' OR username LIKE '%{domain}"),
        format!("%@{domain}"),
        format!("_lain@{domain}"),
        format!("plain@{domain}'; DROP TABLE mailbox; --"),
        format!("plain@{domain}\\"),
    ] {
        assert_eq!(
            l.svc.auth(&hostile, PASSWORD),
            PAM_USER_UNKNOWN,
            "{hostile}"
        );
        assert_eq!(account(&l, &hostile), PAM_USER_UNKNOWN, "{hostile}");
    }
    // Still there.
    assert_eq!(
        l.svc.auth(&format!("plain@{domain}"), PASSWORD),
        PAM_SUCCESS
    );
}

#[test]
fn sql_metacharacters_in_the_name_mysql() {
    sql_metacharacters(Engine::Mysql);
}

#[test]
fn sql_metacharacters_in_the_name_postgres() {
    sql_metacharacters(Engine::Postgres);
}

/// Names compare as PostfixAdmin's login compares them: MySQL's column is case-insensitive,
/// PostgreSQL's is not. Collation padding does not make a trailing blank the same name.
#[test]
fn names_compare_as_postfixadmin_compares_them() {
    let hash = doveadm("BLF-CRYPT", PASSWORD);
    for engine in [Engine::Mysql, Engine::Postgres] {
        let d = db(engine);
        let domain = format!("case-{}.example", tag(engine));
        d.add_domain(&domain, true, 0);
        d.add_mailbox(&format!("mixed@{domain}"), &hash, true, None);
        let l = line(d, "");
        let upper = format!("MIXED@{}", domain.to_uppercase());
        let expected = match engine {
            Engine::Mysql => PAM_SUCCESS,
            Engine::Postgres => PAM_USER_UNKNOWN,
        };
        assert_eq!(l.svc.auth(&upper, PASSWORD), expected, "{engine:?}");
        assert_eq!(
            l.svc.auth(&format!("mixed@{domain} "), PASSWORD),
            PAM_USER_UNKNOWN,
            "{engine:?}"
        );
    }
}

/// Nothing listens: PAM_AUTHINFO_UNAVAIL in both phases, within the timeout.
#[test]
fn database_down_is_authinfo_unavail() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for scheme in ["mysql", "postgresql"] {
        let dsn = format!("{scheme}://{READER}:{READER_PASSWORD}@127.0.0.1:{port}/postfixadmin");
        let l = line_with(&format!("dsn = {dsn}\n"), "timeout=2 connect_timeout=1");
        let started = Instant::now();
        assert_eq!(
            l.svc.auth("a@b.example", PASSWORD),
            PAM_AUTHINFO_UNAVAIL,
            "{scheme}"
        );
        assert_eq!(account(&l, "a@b.example"), PAM_AUTHINFO_UNAVAIL, "{scheme}");
        assert!(started.elapsed() < Duration::from_secs(6), "{scheme}");
    }
}

/// PostgreSQL with sslmode=require: the server's certificate is verified against cafile=;
/// a certificate from another CA is PAM_AUTHINFO_UNAVAIL with a line that says TLS failed.
#[test]
fn postgres_tls_is_verified() {
    let d = db(Engine::Postgres);
    let pg = support::postgres::server();
    d.add_domain("tls-pg.example", true, 0);
    d.add_mailbox(
        "user@tls-pg.example",
        &doveadm("SHA512-CRYPT", PASSWORD),
        true,
        None,
    );
    for host in ["127.0.0.1", "localhost"] {
        let dsn = format!(
            "postgresql://{READER}:{READER_PASSWORD}@{host}:{}/postfixadmin?sslmode=require",
            pg.port
        );
        let l = line_with(
            &format!("dsn = {dsn}\ncafile = {}\n", pg.ca.cert.display()),
            "",
        );
        assert_eq!(
            l.svc.login("user@tls-pg.example", PASSWORD),
            (PAM_SUCCESS, Some(PAM_SUCCESS)),
            "{host}"
        );
        // The session really is TLS.
        let ssl = pg.sql(
            "postgres",
            &format!(
                "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a ON a.pid = s.pid \
                 WHERE a.usename = '{READER}' AND s.ssl;"
            ),
        );
        assert_ne!(ssl.trim(), "0", "no TLS session of {READER}");
    }
    let pki = Pki::new();
    let other = pki.ca("other-ca");
    let dsn = format!(
        "postgresql://{READER}:{READER_PASSWORD}@127.0.0.1:{}/postfixadmin?sslmode=require",
        pg.port
    );
    let l = line_with(
        &format!("dsn = {dsn}\ncafile = {}\n", other.cert.display()),
        "",
    );
    let capture = Capture::start();
    assert_eq!(
        l.svc.auth("user@tls-pg.example", PASSWORD),
        PAM_AUTHINFO_UNAVAIL
    );
    let lines = capture.module_lines().join("\n");
    assert!(lines.contains("TLS"), "{lines}");
    assert!(!lines.contains(READER_PASSWORD), "{lines}");
}

/// MySQL with require_ssl=true against a MariaDB that speaks only TLS: verified against
/// cafile=; another CA is PAM_AUTHINFO_UNAVAIL with a line that says TLS failed.
#[test]
fn mysql_tls_is_verified() {
    let d = support::postfixadmin::tls_mysql();
    let m = support::mariadb::tls_server();
    let tls = m.tls.as_ref().unwrap();
    d.add_domain("tls-my.example", true, 0);
    d.add_mailbox(
        "user@tls-my.example",
        &doveadm("SHA256-CRYPT", PASSWORD),
        true,
        None,
    );
    let dsn = |host: &str| {
        format!(
            "mysql://{READER}:{READER_PASSWORD}@{host}:{}/postfixadmin?require_ssl=true",
            m.port
        )
    };
    for host in ["127.0.0.1", "localhost"] {
        let l = line_with(
            &format!("dsn = {}\ncafile = {}\n", dsn(host), tls.ca.cert.display()),
            "",
        );
        assert_eq!(
            l.svc.login("user@tls-my.example", PASSWORD),
            (PAM_SUCCESS, Some(PAM_SUCCESS)),
            "{host}"
        );
    }
    // The server refuses plaintext itself.
    let plain = format!(
        "mysql://{READER}:{READER_PASSWORD}@127.0.0.1:{}/postfixadmin",
        m.port
    );
    let l = line_with(&format!("dsn = {plain}\n"), "");
    assert_eq!(
        l.svc.auth("user@tls-my.example", PASSWORD),
        PAM_AUTHINFO_UNAVAIL
    );
    let capture = Capture::start();
    let l = line_with(
        &format!(
            "dsn = {}\ncafile = {}\n",
            dsn("127.0.0.1"),
            tls.other_ca.cert.display()
        ),
        "",
    );
    assert_eq!(
        l.svc.auth("user@tls-my.example", PASSWORD),
        PAM_AUTHINFO_UNAVAIL
    );
    let lines = capture.module_lines().join("\n");
    assert!(lines.contains("TLS with the database failed"), "{lines}");
    assert!(!lines.contains(READER_PASSWORD), "{lines}");
}

/// Weak schemes are logged as weak when used; an unknown scheme is named, the hash never.
#[test]
fn logs_name_the_scheme_never_the_hash_or_password() {
    let d = db(Engine::Mysql);
    d.add_domain("logs.example", true, 0);
    let plain = doveadm("PLAIN-MD5", PASSWORD);
    let cram = doveadm("CRAM-MD5", PASSWORD);
    d.add_mailbox("weak@logs.example", &plain, true, None);
    d.add_mailbox("cram@logs.example", &cram, true, None);
    let capture = Capture::start();
    let lenient = line(d, "weak_schemes=allow");
    assert_eq!(lenient.svc.auth("weak@logs.example", PASSWORD), PAM_SUCCESS);
    assert_eq!(
        lenient.svc.auth("cram@logs.example", PASSWORD),
        PAM_AUTHINFO_UNAVAIL
    );
    let strict = line(d, "");
    assert_eq!(
        strict.svc.auth("weak@logs.example", PASSWORD),
        PAM_AUTHINFO_UNAVAIL
    );
    let lines = capture.module_lines();
    let all = lines.join("\n");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("weak scheme {PLAIN-MD5}") && l.contains("weak_schemes=allow")),
        "{all}"
    );
    assert!(all.contains("{CRAM-MD5}"), "{all}");
    assert!(all.contains("weak_schemes=refuse"), "{all}");
    for secret in [
        PASSWORD,
        &plain["{PLAIN-MD5}".len()..],
        &cram["{CRAM-MD5}".len()..],
        READER_PASSWORD,
    ] {
        assert!(!all.contains(secret), "{secret} in {all}");
    }
}

/// query= for a schema of another shape: iRedMail's `vmail` database (mailbox and domain
/// tables with their own columns), with the example the README documents.
#[test]
fn query_override_reads_an_iredmail_schema() {
    let m = support::mariadb::server();
    let d = db(Engine::Mysql);
    m.root_sql(&format!(
        "CREATE DATABASE vmail;
         USE vmail;
         CREATE TABLE domain (domain VARCHAR(255) NOT NULL PRIMARY KEY,
           active TINYINT(1) NOT NULL DEFAULT 1);
         CREATE TABLE mailbox (username VARCHAR(255) NOT NULL PRIMARY KEY,
           password VARCHAR(255) NOT NULL DEFAULT '', domain VARCHAR(255) NOT NULL DEFAULT '',
           active TINYINT(1) NOT NULL DEFAULT 1,
           expired DATETIME NOT NULL DEFAULT '9999-12-31 00:00:00');
         INSERT INTO domain VALUES ('ired.example', 1), ('offired.example', 0);
         INSERT INTO mailbox (username, password, domain) VALUES
           ('ok@ired.example', {}, 'ired.example'),
           ('off@offired.example', {}, 'offired.example');
         INSERT INTO mailbox (username, password, domain, active) VALUES
           ('disabled@ired.example', {}, 'ired.example', 0);
         GRANT SELECT ON vmail.* TO '{READER}'@'127.0.0.1';",
        d.text(&doveadm("SSHA512", PASSWORD)),
        d.text(&doveadm("SSHA512", PASSWORD)),
        d.text(&doveadm("SSHA512", PASSWORD)),
    ));
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let query = readme
        .lines()
        .find(|l| l.starts_with("query = SELECT") && l.contains("expired"))
        .expect("README's iRedMail query= example");
    let dsn = format!(
        "mysql://{READER}:{READER_PASSWORD}@127.0.0.1:{}/vmail",
        m.port
    );
    let l = line_with(&format!("dsn = {dsn}\n{query}\n"), "");
    assert_eq!(
        l.svc.login("ok@ired.example", PASSWORD),
        (PAM_SUCCESS, Some(PAM_SUCCESS))
    );
    assert_eq!(l.svc.auth("ok@ired.example", WRONG), PAM_AUTH_ERR);
    assert_eq!(
        l.svc.auth("nobody@ired.example", PASSWORD),
        PAM_USER_UNKNOWN
    );
    for u in ["disabled@ired.example", "off@offired.example"] {
        assert_eq!(l.svc.auth(u, PASSWORD), PAM_AUTH_ERR, "{u}");
        assert_eq!(account(&l, u), PAM_PERM_DENIED, "{u}");
    }
    assert_eq!(l.svc.auth("' OR 1=1 -- ", PASSWORD), PAM_USER_UNKNOWN);
    // The collation says these equal ok@ired.example (PAD SPACE, accents folded); the name the
    // query returns says they are not, as for PostfixAdmin's own tables. ASCII case is the
    // same name.
    for variant in ["ok@ired.example ", "ok@iréd.example", "ök@ired.example"] {
        assert_eq!(
            l.svc.auth(variant, PASSWORD),
            PAM_USER_UNKNOWN,
            "{variant:?}"
        );
        assert_eq!(account(&l, variant), PAM_USER_UNKNOWN, "{variant:?}");
    }
    assert_eq!(l.svc.auth("OK@ired.example", PASSWORD), PAM_SUCCESS);
}

/// pam.d-examples/smtp-postfixadmin as written: auth and account through this backend.
#[test]
fn smtp_postfixadmin_example_runs_as_written() {
    let d = db(Engine::Mysql);
    d.add_domain("example-stack.example", true, 0);
    d.add_mailbox(
        "alice@example-stack.example",
        &pacrypt("dovecot:ARGON2ID", None, PASSWORD, None),
        true,
        None,
    );
    d.add_mailbox(
        "bob@example-stack.example",
        &pacrypt("php_crypt:SHA512", None, PASSWORD, None),
        false,
        None,
    );
    let dir = TempDir::new("pfa-example");
    let cfg = config_file(dir.path(), &format!("dsn = {}\n", d.dsn()), 0o600);
    let example = support::examples::Example::load("smtp-postfixadmin").with(
        "/etc/security/pam_mailauth-postfixadmin.conf",
        cfg.to_str().unwrap(),
    );
    let svc_dir = example.install("smtp");
    let login = |user: &str, pw: &str| {
        let mut t = Transaction::start(svc_dir.path(), "smtp", user, Some(pw));
        let auth = t.authenticate();
        let acct = (auth == PAM_SUCCESS).then(|| t.acct_mgmt());
        (auth, acct)
    };
    assert_eq!(
        login("alice@example-stack.example", PASSWORD),
        (PAM_SUCCESS, Some(PAM_SUCCESS))
    );
    assert_eq!(login("alice@example-stack.example", WRONG).0, PAM_AUTH_ERR);
    assert_eq!(login("bob@example-stack.example", PASSWORD).0, PAM_AUTH_ERR);
    assert_eq!(
        login("nobody@example-stack.example", PASSWORD).0,
        PAM_USER_UNKNOWN
    );
}

/// A custom query= whose cast the login fails: PostgreSQL's message quotes the bound value
/// ("invalid input syntax for type integer: \"…\""), so the log has the SQLSTATE and fixed
/// words, never the message and with it the login.
#[test]
fn a_query_error_is_logged_by_sqlstate_without_the_login() {
    let d = db(Engine::Postgres);
    let config = format!(
        "dsn = {}\nquery = SELECT password, active FROM mailbox WHERE $1::text::integer > 0\n",
        d.dsn()
    );
    let l = line_with(&config, "");
    let capture = Capture::start();
    assert_eq!(
        l.svc.auth("casts-badly@nowhere.example", PASSWORD),
        PAM_AUTHINFO_UNAVAIL
    );
    let all = capture.module_lines().join("\n");
    assert!(all.contains("SQLSTATE 22P02"), "{all}");
    assert!(
        !all.contains("casts-badly"),
        "the log names the login:\n{all}"
    );
}

/// PostfixAdmin's dsn= has the TIME BOUND of every endpoint: a server that accepts the
/// connection and never answers ends the check within timeout=, in both engines.
#[test]
fn silent_database_is_authinfo_unavail_within_the_timeout() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in listener.incoming().flatten() {
            held.push(c);
        }
    });
    for scheme in ["mysql", "postgresql"] {
        let dsn = format!("{scheme}://{READER}:{READER_PASSWORD}@127.0.0.1:{port}/postfixadmin");
        let l = line_with(&format!("dsn = {dsn}\n"), "timeout=2 connect_timeout=1");
        let started = Instant::now();
        assert_eq!(
            l.svc.auth("a@b.example", PASSWORD),
            PAM_AUTHINFO_UNAVAIL,
            "{scheme}"
        );
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(1500),
            "{scheme}: did it wait? {took:?}"
        );
        assert!(took < Duration::from_secs(2 + 3), "{scheme}: {took:?}");
    }
}
