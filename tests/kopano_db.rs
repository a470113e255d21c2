//! backend=kopano dsn=: through real libpam against a REAL private MariaDB (testing.md §4)
//! holding the Kopano DB user plugin's tables, with users written the way Kopano writes them.

mod support;

use std::time::{Duration, Instant};
use support::mariadb::{self, KopanoUser, NONACTIVE_USER};
use support::*;

/// A module line whose DSN (it holds a password) sits in a 0600 root-owned config file.
struct Line {
    _dir: TempDir,
    svc: Service,
}

fn line_with(dsn: &str, extra: &str) -> Line {
    let dir = TempDir::new("kopano-db");
    let cfg = config_file(dir.path(), &format!("# kopano\ndsn = {dsn}\n"), 0o600);
    let svc = Service::module_line(&format!("backend=kopano config={} {extra}", cfg.display()));
    Line { _dir: dir, svc }
}

fn line(extra: &str) -> Line {
    line_with(&mariadb::server().dsn(), extra)
}

fn account(l: &Line, user: &str) -> i32 {
    l.svc.start(user, None).acct_mgmt()
}

#[test]
fn users_are_written_the_kopano_way() {
    let db = mariadb::server();
    db.add_users(&[KopanoUser::active("db-shape", "Passw0rd")]);
    let stored = db.stored_password("db-shape");
    assert_eq!(stored.len(), 40, "{stored}");
    assert!(
        stored
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{stored}"
    );
}

#[test]
fn right_password_succeeds_and_wrong_password_is_auth_err() {
    mariadb::server().add_users(&[KopanoUser::active("db-right", "Passw0rd")]);
    let l = line("");
    assert_eq!(
        l.svc.login("db-right", "Passw0rd"),
        (PAM_SUCCESS, Some(PAM_SUCCESS))
    );
    assert_eq!(l.svc.auth("db-right", "passw0rd"), PAM_AUTH_ERR);
    assert_eq!(l.svc.auth("db-right", "Passw0rd "), PAM_AUTH_ERR);
    assert_eq!(l.svc.auth("db-right", ""), PAM_AUTH_ERR);
    // The account phase needs no password.
    assert_eq!(account(&l, "db-right"), PAM_SUCCESS);
}

#[test]
fn unknown_user_is_user_unknown_in_both_phases() {
    let l = line("");
    assert_eq!(l.svc.auth("db-nobody", "Passw0rd"), PAM_USER_UNKNOWN);
    assert_eq!(account(&l, "db-nobody"), PAM_USER_UNKNOWN);
}

#[test]
fn login_names_match_case_insensitively() {
    mariadb::server().add_users(&[KopanoUser::active("Db.Case", "Passw0rd")]);
    let l = line("");
    for name in ["Db.Case", "db.case", "DB.CASE", "dB.cAsE"] {
        assert_eq!(l.svc.auth(name, "Passw0rd"), PAM_SUCCESS, "{name}");
        assert_eq!(account(&l, name), PAM_SUCCESS, "{name}");
    }
    // Case-insensitive names, but never case-insensitive passwords.
    assert_eq!(l.svc.auth("db.case", "PASSW0RD"), PAM_AUTH_ERR);
    // Collation padding does not make a trailing blank the same name.
    assert_eq!(l.svc.auth("db.case ", "Passw0rd"), PAM_USER_UNKNOWN);
}

#[test]
fn utf8_login_and_password() {
    let login = "jürgen.ærøskøbing-例え";
    let password = "pässwörd 🔑 ©";
    mariadb::server().add_users(&[KopanoUser::active(login, password)]);
    let l = line("");
    assert_eq!(
        l.svc.login(login, password),
        (PAM_SUCCESS, Some(PAM_SUCCESS))
    );
    // ASCII letters fold as in Kopano's own check (stricmp); other letters must match.
    assert_eq!(l.svc.auth("JüRGEN.ærøskøbing-例え", password), PAM_SUCCESS);
    assert_eq!(
        l.svc.auth("JÜRGEN.ærøskøbing-例え", password),
        PAM_USER_UNKNOWN
    );
    assert_eq!(l.svc.auth(login, "passwörd 🔑 ©"), PAM_AUTH_ERR);
    assert_eq!(l.svc.auth(login, "pässwörd"), PAM_AUTH_ERR);
}

#[test]
fn email_style_login() {
    mariadb::server().add_users(&[KopanoUser::active("john.doe+db@example.com", "Passw0rd")]);
    let l = line("");
    assert_eq!(
        l.svc.login("john.doe+db@example.com", "Passw0rd"),
        (PAM_SUCCESS, Some(PAM_SUCCESS))
    );
    assert_eq!(l.svc.auth("john.doe+db", "Passw0rd"), PAM_USER_UNKNOWN);
    // ...and the user mapping reaches the database.
    let mapped = line("domain=example.com");
    assert_eq!(mapped.svc.auth("john.doe+db", "Passw0rd"), PAM_SUCCESS);
}

#[test]
fn non_active_user_is_refused_even_with_the_right_password() {
    mariadb::server().add_users(&[KopanoUser {
        class: NONACTIVE_USER,
        ..KopanoUser::active("db-shared-store", "Passw0rd")
    }]);
    let l = line("");
    assert_eq!(l.svc.auth("db-shared-store", "Passw0rd"), PAM_AUTH_ERR);
    assert_eq!(account(&l, "db-shared-store"), PAM_PERM_DENIED);
}

#[test]
fn legacy_plaintext_and_uppercase_values_never_match() {
    let db = mariadb::server();
    db.add_users(&[
        // MD5("Passw0rd") without salt.
        KopanoUser {
            raw_password_value: Some("d41e98d1eafa6d6011d3a70f1a5b92f0"),
            ..KopanoUser::active("db-legacy", "")
        },
        KopanoUser {
            raw_password_value: Some("Passw0rd"),
            ..KopanoUser::active("db-plain", "")
        },
        KopanoUser::active("db-upper-src", "Passw0rd"),
    ]);
    let good = db.stored_password("db-upper-src");
    let upper = good.to_ascii_uppercase();
    db.add_users(&[KopanoUser {
        raw_password_value: Some(&upper),
        ..KopanoUser::active("db-upper", "")
    }]);
    let l = line("");
    assert_eq!(l.svc.auth("db-upper-src", "Passw0rd"), PAM_SUCCESS);
    for user in ["db-legacy", "db-plain", "db-upper"] {
        assert_eq!(l.svc.auth(user, "Passw0rd"), PAM_AUTH_ERR, "{user}");
    }
    // The plaintext value itself, offered as a password, is no key either.
    assert_eq!(
        l.svc.auth("db-legacy", "d41e98d1eafa6d6011d3a70f1a5b92f0"),
        PAM_AUTH_ERR
    );
}

/// dsn= mirrors the DB plugin's password column, which kopano-server checks only with
/// auth_method=plugin. A row without any password says so in the log, in both phases.
#[test]
fn a_user_without_a_stored_password_is_refused_and_the_log_says_why() {
    mariadb::server().add_users(&[KopanoUser {
        password: None,
        ..KopanoUser::active("db-no-password", "")
    }]);
    let l = line("");
    let capture = support::syslog::Capture::start();
    assert_eq!(l.svc.auth("db-no-password", "Passw0rd"), PAM_AUTH_ERR);
    // The account exists and is active: the account phase lets it through, and says why a
    // password check against this store cannot succeed.
    assert_eq!(account(&l, "db-no-password"), PAM_SUCCESS);
    let lines = capture.module_lines();
    for phase in ["auth:", "account:"] {
        assert!(
            lines.iter().any(|l| l.contains(phase)
                && l.contains("no password stored for this user")
                && l.contains("auth_method=plugin")),
            "{phase} {lines:?}"
        );
    }
}

/// Passwords kopano-server stores encrypted with its own key cannot be checked here: that is
/// "unavailable" with a line saying so, never a silent refusal.
#[test]
fn an_encrypted_stored_password_is_authinfo_unavail() {
    mariadb::server().add_users(&[
        KopanoUser {
            raw_password_value: Some("{1}:U2FsdGVkX1+q2Zr1mR0J9w=="),
            ..KopanoUser::active("db-encrypted-1", "")
        },
        KopanoUser {
            raw_password_value: Some("{2}:bm90IHJlYWxseSBlbmNyeXB0ZWQ="),
            ..KopanoUser::active("db-encrypted-2", "")
        },
    ]);
    let l = line("");
    let capture = support::syslog::Capture::start();
    for user in ["db-encrypted-1", "db-encrypted-2"] {
        assert_eq!(l.svc.auth(user, "Passw0rd"), PAM_AUTHINFO_UNAVAIL, "{user}");
        assert_eq!(account(&l, user), PAM_SUCCESS, "{user}");
    }
    let lines = capture.module_lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("encrypted with kopano-server's key") && l.contains("url=")),
        "{lines:?}"
    );
    assert!(lines.iter().all(|l| !l.contains("U2FsdGVk")), "{lines:?}");
}

#[test]
fn sql_metacharacters_in_the_user_name_are_harmless() {
    let db = mariadb::server();
    let odd = "o'brien\\\"%_;--x";
    db.add_users(&[
        KopanoUser::active(odd, "Passw0rd"),
        KopanoUser::active("db-meta-victim", "Passw0rd"),
    ]);
    let l = line("");
    assert_eq!(l.svc.auth(odd, "Passw0rd"), PAM_SUCCESS);
    for name in [
        "' OR '1'='1",
        "db-meta-victim' -- ",
        "db-meta-victim' OR 'a'='a",
        "x' UNION SELECT 1, 65537, 'x', 'y' -- ",
        "db-meta%",
        "db_meta_victim",
        "%",
        "\\",
        "'; DROP TABLE object; --",
    ] {
        assert_eq!(l.svc.auth(name, "Passw0rd"), PAM_USER_UNKNOWN, "{name}");
    }
    assert_eq!(
        db.root_sql("SELECT COUNT(*) > 0 FROM kopano.object;")
            .trim(),
        "1"
    );
    assert_eq!(l.svc.auth("db-meta-victim", "Passw0rd"), PAM_SUCCESS);
}

#[test]
fn features_follow_kopano_defaults() {
    mariadb::server().add_users(&[
        KopanoUser::active("db-feat-plain", "Passw0rd"),
        KopanoUser {
            enabled: &["imap"],
            ..KopanoUser::active("db-feat-imap", "Passw0rd")
        },
        KopanoUser {
            enabled: &["pop3"],
            ..KopanoUser::active("db-feat-pop3", "Passw0rd")
        },
        KopanoUser {
            enabled: &["imap"],
            disabled: &["imap", "mobile"],
            ..KopanoUser::active("db-feat-off", "Passw0rd")
        },
    ]);
    let imap = line("feature=imap");
    // Explicitly enabled.
    assert_eq!(
        imap.svc.login("db-feat-imap", "Passw0rd"),
        (PAM_SUCCESS, Some(PAM_SUCCESS))
    );
    // Off by default (Kopano's disabled_features = imap pop3).
    assert_eq!(imap.svc.auth("db-feat-plain", "Passw0rd"), PAM_AUTH_ERR);
    assert_eq!(account(&imap, "db-feat-plain"), PAM_PERM_DENIED);
    // Explicitly disabled wins.
    assert_eq!(imap.svc.auth("db-feat-off", "Passw0rd"), PAM_AUTH_ERR);
    assert_eq!(account(&imap, "db-feat-off"), PAM_PERM_DENIED);
    // The wrong password stays wrong.
    assert_eq!(imap.svc.auth("db-feat-imap", "nope"), PAM_AUTH_ERR);
    // Any of a list.
    let any = line("feature=imap|pop3");
    assert_eq!(any.svc.auth("db-feat-pop3", "Passw0rd"), PAM_SUCCESS);
    assert_eq!(any.svc.auth("db-feat-imap", "Passw0rd"), PAM_SUCCESS);
    assert_eq!(any.svc.auth("db-feat-plain", "Passw0rd"), PAM_AUTH_ERR);
    // On by default (not in the default-disabled list), unless disabled for the user.
    let mobile = line("feature=mobile");
    assert_eq!(mobile.svc.auth("db-feat-plain", "Passw0rd"), PAM_SUCCESS);
    assert_eq!(mobile.svc.auth("db-feat-off", "Passw0rd"), PAM_AUTH_ERR);
    // The default list is configurable (the server's own disabled_features).
    let pop3_only = line("feature=imap disabled_features=pop3");
    assert_eq!(pop3_only.svc.auth("db-feat-plain", "Passw0rd"), PAM_SUCCESS);
    assert_eq!(pop3_only.svc.auth("db-feat-off", "Passw0rd"), PAM_AUTH_ERR);
    // Unknown users stay unknown, whatever the feature.
    assert_eq!(
        imap.svc.auth("db-feat-nobody", "Passw0rd"),
        PAM_USER_UNKNOWN
    );
}

#[test]
fn ignore_unknown_user_passes_control_down_the_stack() {
    mariadb::server().add_users(&[KopanoUser::active("db-stack", "Passw0rd")]);
    let dir = TempDir::new("kopano-db");
    let cfg = config_file(
        dir.path(),
        &format!("dsn = {}\n", mariadb::server().dsn()),
        0o600,
    );
    let stack = |extra: &str| {
        Service::new(&format!(
            "auth [success=done ignore=ignore default=die] MODULE backend=kopano config={} {extra}\n\
             auth required pam_permit.so\n",
            cfg.display()
        ))
    };
    let lenient = stack("ignore_unknown_user");
    // Unknown here: the module steps aside and the next module decides.
    assert_eq!(lenient.auth("db-stack-local-user", "whatever"), PAM_SUCCESS);
    // Known here: the module's answer stands.
    assert_eq!(lenient.auth("db-stack", "Passw0rd"), PAM_SUCCESS);
    assert_eq!(lenient.auth("db-stack", "wrong"), PAM_AUTH_ERR);
    // Without the switch the unknown user ends the stack.
    let strict = stack("");
    assert_eq!(
        strict.auth("db-stack-local-user", "whatever"),
        PAM_USER_UNKNOWN
    );
}

fn refused_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    port
}

#[test]
fn database_down_is_authinfo_unavail_within_the_timeout() {
    let dsn = format!(
        "mysql://{}:{}@127.0.0.1:{}/kopano",
        mariadb::DB_USER,
        mariadb::DB_PASSWORD,
        refused_port()
    );
    let l = line_with(&dsn, "timeout=2 connect_timeout=1");
    let started = Instant::now();
    assert_eq!(l.svc.auth("db-right", "Passw0rd"), PAM_AUTHINFO_UNAVAIL);
    assert_eq!(account(&l, "db-right"), PAM_AUTHINFO_UNAVAIL);
    assert!(started.elapsed() < Duration::from_secs(2 * 2 + 2));
    // ignore_authinfo_unavail steps aside and the next module decides.
    let dir = TempDir::new("kopano-db");
    let cfg = config_file(dir.path(), &format!("dsn = {dsn}\n"), 0o600);
    let stack = Service::new(&format!(
        "auth [success=done ignore=ignore default=die] MODULE backend=kopano config={} \
         timeout=2 connect_timeout=1 ignore_authinfo_unavail\n\
         auth required pam_permit.so\n",
        cfg.display()
    ));
    assert_eq!(stack.auth("db-right", "Passw0rd"), PAM_SUCCESS);
}

#[test]
fn silent_database_is_authinfo_unavail_within_the_timeout() {
    // Accepts connections and never sends the greeting.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in listener.incoming().flatten() {
            held.push(c);
        }
    });
    let dsn = format!("mysql://kopano:x@127.0.0.1:{port}/kopano");
    let l = line_with(&dsn, "timeout=2 connect_timeout=1");
    let started = Instant::now();
    assert_eq!(l.svc.auth("db-right", "Passw0rd"), PAM_AUTHINFO_UNAVAIL);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1500),
        "did it wait at all? {took:?}"
    );
    assert!(took < Duration::from_secs(2 + 3), "{took:?}");
}

#[test]
fn wrong_database_credentials_are_authinfo_unavail() {
    let db = mariadb::server();
    db.add_users(&[KopanoUser::active("db-creds", "Passw0rd")]);
    let l = line_with(
        &db.dsn_as(mariadb::DB_USER, "not-the-password"),
        "timeout=3",
    );
    let started = Instant::now();
    assert_eq!(l.svc.auth("db-creds", "Passw0rd"), PAM_AUTHINFO_UNAVAIL);
    assert_eq!(account(&l, "db-creds"), PAM_AUTHINFO_UNAVAIL);
    assert!(started.elapsed() < Duration::from_secs(2 * 3 + 2));
    let l = line_with(&db.dsn_as("no-such-account", "x"), "timeout=3");
    assert_eq!(l.svc.auth("db-creds", "Passw0rd"), PAM_AUTHINFO_UNAVAIL);
    // A database without the Kopano tables is no answer either.
    let l = line_with(
        &format!(
            "mysql://{}:{}@127.0.0.1:{}/mysql",
            mariadb::DB_USER,
            mariadb::DB_PASSWORD,
            db.port
        ),
        "timeout=3",
    );
    assert_eq!(l.svc.auth("db-creds", "Passw0rd"), PAM_AUTHINFO_UNAVAIL);
}

#[test]
fn unix_socket_dsn() {
    let db = mariadb::server();
    db.add_users(&[KopanoUser::active("db-socket", "Passw0rd")]);
    let l = line_with(&db.socket_dsn(), "");
    assert_eq!(
        l.svc.login("db-socket", "Passw0rd"),
        (PAM_SUCCESS, Some(PAM_SUCCESS))
    );
    assert_eq!(l.svc.auth("db-socket", "wrong"), PAM_AUTH_ERR);
}

#[test]
fn connections_are_reused_and_reestablished_after_a_failure() {
    let db = mariadb::server();
    db.add_db_account("kopano_reconnect", "r3connect");
    db.add_users(&[KopanoUser::active("db-reconnect", "Passw0rd")]);
    let l = line_with(&db.dsn_as("kopano_reconnect", "r3connect"), "timeout=3");
    assert_eq!(l.svc.auth("db-reconnect", "Passw0rd"), PAM_SUCCESS);
    assert_eq!(l.svc.auth("db-reconnect", "Passw0rd"), PAM_SUCCESS);
    // The connection outlived the PAM transactions (it is kept for reuse)...
    assert_eq!(db.kill_connections_of("kopano_reconnect"), 1);
    // ...and after the server dropped it, the next check connects afresh.
    assert_eq!(l.svc.auth("db-reconnect", "Passw0rd"), PAM_SUCCESS);
    assert_eq!(l.svc.auth("db-reconnect", "wrong"), PAM_AUTH_ERR);
    assert_eq!(db.kill_connections_of("kopano_reconnect"), 1);
}

#[test]
fn a_dsn_with_a_password_is_refused_as_a_module_argument() {
    let svc = Service::module_line(&format!("backend=kopano dsn={}", mariadb::server().dsn()));
    assert_eq!(svc.auth("db-right", "Passw0rd"), PAM_SERVICE_ERR);
}

/// docs/kopano.md's export query, verbatim: the file it writes works with file=.
const EXPORT_QUERY: &str = "SELECT CONCAT_WS(':', l.value, p.value,
  IFNULL((SELECT GROUP_CONCAT(f.value SEPARATOR ',') FROM objectmvproperty f
          WHERE f.objectid = o.id AND f.propname = '0x67B3101E'), ''),
  IFNULL((SELECT GROUP_CONCAT(f.value SEPARATOR ',') FROM objectmvproperty f
          WHERE f.objectid = o.id AND f.propname = '0x67B4101E'), ''))
FROM object o
JOIN objectproperty l ON l.objectid = o.id AND l.propname = 'loginname'
JOIN objectproperty p ON p.objectid = o.id AND p.propname = 'password'
WHERE o.objectclass = 65537;";

#[test]
fn the_documented_export_feeds_file() {
    let db = mariadb::server();
    db.add_users(&[
        KopanoUser::active("db-export", "Passw0rd"),
        KopanoUser {
            enabled: &["imap"],
            ..KopanoUser::active("db-export-imap", "Passw0rd")
        },
    ]);
    let exported = db.root_sql(&format!("USE kopano;\n{EXPORT_QUERY}"));
    let dir = TempDir::new("kopano-export");
    let path = dir.path().join("kopano-hashes");
    std::fs::write(&path, exported).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let svc = Service::module_line(&format!("backend=kopano file={}", path.display()));
    assert_eq!(svc.auth("db-export", "Passw0rd"), PAM_SUCCESS);
    assert_eq!(svc.auth("db-export", "wrong"), PAM_AUTH_ERR);
    let imap = Service::module_line(&format!(
        "backend=kopano file={} feature=imap",
        path.display()
    ));
    assert_eq!(imap.auth("db-export-imap", "Passw0rd"), PAM_SUCCESS);
    assert_eq!(imap.auth("db-export", "Passw0rd"), PAM_AUTH_ERR);
}

/// What the log line would say: why, and never the DSN's password (the backend's answer is
/// what core logs as the detail and server).
#[test]
fn failure_reasons_name_the_cause_but_never_the_dsn_password() {
    use pam_mailauth::backend::for_options;
    use pam_mailauth::options::Options;
    use pam_mailauth::secret::Secret;
    use pam_mailauth::verdict::Verdict;
    let db = mariadb::server();
    db.add_users(&[KopanoUser::active("db-reason", "Passw0rd")]);
    let secret_pw = "Sekr1t-DSN-pw";
    for (dsn, expect) in [
        (db.dsn_as(mariadb::DB_USER, secret_pw), "credentials"),
        (
            format!(
                "mysql://{}:{secret_pw}@127.0.0.1:{}/kopano",
                mariadb::DB_USER,
                refused_port()
            ),
            "database",
        ),
    ] {
        let dir = TempDir::new("kopano-reason");
        let cfg = config_file(dir.path(), &format!("dsn = {dsn}\n"), 0o600);
        let opts = Options::parse(&[
            "backend=kopano".to_string(),
            format!("config={}", cfg.display()),
            "timeout=3".to_string(),
        ])
        .unwrap();
        let answer = for_options(&opts).verify("db-reason", &Secret::new("Passw0rd"));
        let Verdict::Unavailable(why) = &answer.verdict else {
            panic!("{answer:?}");
        };
        let shown = format!("{why} {:?}", answer.endpoint);
        assert!(shown.contains(expect), "{shown}");
        assert!(!shown.contains(secret_pw), "{shown}");
        assert!(shown.contains("127.0.0.1"), "{shown}");
    }
}

#[test]
fn a_percent_encoded_dsn_password_works() {
    let db = mariadb::server();
    db.add_db_account("kopano_pct", "p@ss:w/rd?#");
    db.add_users(&[KopanoUser::active("db-pct", "Passw0rd")]);
    let l = line_with(&db.dsn_as("kopano_pct", "p%40ss%3Aw%2Frd%3F%23"), "");
    assert_eq!(l.svc.auth("db-pct", "Passw0rd"), PAM_SUCCESS);
}

#[test]
fn a_database_of_another_shape_is_authinfo_unavail_not_a_crash() {
    // Same table names, other column types: an object class beyond 32 bits (it still looks
    // like a user to the query's mask) cannot be Kopano's. The module must say so
    // (unavailable), not panic on the conversion.
    let db = mariadb::server();
    db.root_sql(
        "CREATE DATABASE IF NOT EXISTS notkopano;
         CREATE TABLE IF NOT EXISTS notkopano.object (id bigint NOT NULL, externid varbinary(255), objectclass bigint);
         CREATE TABLE IF NOT EXISTS notkopano.objectproperty (objectid bigint, propname varchar(255), value text);
         CREATE TABLE IF NOT EXISTS notkopano.objectmvproperty (objectid bigint, propname varchar(255), orderid int, value text);
         DELETE FROM notkopano.object; DELETE FROM notkopano.objectproperty;
         INSERT INTO notkopano.object VALUES (7, NULL, 4295032833);
         INSERT INTO notkopano.objectproperty VALUES (7, 'loginname', 'odd-shape'), (7, 'password', 'x');
         CREATE USER IF NOT EXISTS 'oddshape'@'127.0.0.1' IDENTIFIED BY 'odd-pw';
         GRANT SELECT ON notkopano.* TO 'oddshape'@'127.0.0.1';",
    );
    let port = db
        .dsn()
        .rsplit(':')
        .next()
        .and_then(|p| p.split('/').next())
        .map(str::to_string)
        .unwrap();
    let l = line_with(
        &format!("mysql://oddshape:odd-pw@127.0.0.1:{port}/notkopano"),
        "",
    );
    assert_eq!(l.svc.auth("odd-shape", "x"), PAM_AUTHINFO_UNAVAIL);
    assert_eq!(account(&l, "odd-shape"), PAM_AUTHINFO_UNAVAIL);
}

#[test]
fn every_form_of_a_dsn_password_is_a_secret() {
    let db = mariadb::server();
    db.add_users(&[KopanoUser::active("db-pwparam", "Passw0rd")]);
    let capture = support::syslog::Capture::start();
    // A password as a query parameter (the old driver took ?password=): never as a module
    // argument, never in a world-readable file.
    let param = format!(
        "mysql://{}@127.0.0.1:{}/kopano?password={}",
        mariadb::DB_USER,
        db.port,
        mariadb::DB_PASSWORD
    );
    let arg = Service::module_line(&format!("backend=kopano dsn={param}"));
    assert_eq!(arg.auth("db-pwparam", "Passw0rd"), PAM_SERVICE_ERR);
    let dir = TempDir::new("kopano-db");
    for (dsn, mode) in [(param.clone(), 0o644), (db.dsn(), 0o644), (param, 0o600)] {
        let cfg = config_file(dir.path(), &format!("dsn = {dsn}\n"), mode);
        let svc = Service::module_line(&format!("backend=kopano config={}", cfg.display()));
        assert_eq!(
            svc.auth("db-pwparam", "Passw0rd"),
            PAM_SERVICE_ERR,
            "{mode:o}"
        );
    }
    // The userinfo form in a file only root and the host's group can read: works.
    let cfg = config_file(dir.path(), &format!("dsn = {}\n", db.dsn()), 0o640);
    let svc = Service::module_line(&format!("backend=kopano config={}", cfg.display()));
    assert_eq!(svc.auth("db-pwparam", "Passw0rd"), PAM_SUCCESS);
    let lines = capture.module_lines().join("\n");
    assert!(!lines.contains(mariadb::DB_PASSWORD), "{lines}");
}

#[test]
fn no_part_of_a_dsn_password_or_user_reaches_the_log() {
    let db = mariadb::server();
    db.add_users(&[KopanoUser::active("db-frag", "Passw0rd")]);
    let user = "kopano_frag";
    db.add_db_account(user, "Fr4g/Zz9?Qq8#Ww7@Xy6");
    let fragments = ["Fr4g", "Zz9", "Qq8", "Ww7", "Xy6", "Aa1", "Bb2", user];
    let capture = support::syslog::Capture::start();
    let dir = TempDir::new("kopano-db");
    let port = db.port;
    // Unencoded delimiters: the driver would read parts of the password as host, port,
    // database or parameter. Refused, and never echoed, with or without debug.
    for password in [
        "Fr4g/Zz9?Qq8#Ww7@Xy6",
        "Aa1/Bb2",
        "Aa1?Bb2",
        "Aa1#Bb2",
        "Aa1@Bb2",
        "Aa1:Bb2/Zz9",
    ] {
        let dsn = format!("mysql://{user}:{password}@127.0.0.1:{port}/kopano");
        let l = line_with(&dsn, "debug");
        assert_eq!(
            l.svc.auth("db-frag", "Passw0rd"),
            PAM_SERVICE_ERR,
            "{password}"
        );
    }
    // Percent-encoded, it works; a failure of the server's own login names neither the user
    // nor the password.
    let good = format!("mysql://{user}:Fr4g%2FZz9%3FQq8%23Ww7%40Xy6@127.0.0.1:{port}/kopano");
    assert_eq!(
        line_with(&good, "debug").svc.auth("db-frag", "Passw0rd"),
        PAM_SUCCESS
    );
    let wrong = format!("mysql://{user}:Fr4g%2FZz9%3FQq8%23Ww7%40Xy5@127.0.0.1:{port}/kopano");
    assert_eq!(
        line_with(&wrong, "debug").svc.auth("db-frag", "Passw0rd"),
        PAM_AUTHINFO_UNAVAIL
    );
    let lines = capture.module_lines().join("\n");
    assert!(lines.contains("credentials"), "{lines}");
    assert!(
        lines.contains(&format!("mysql 127.0.0.1:{port}/kopano")),
        "{lines}"
    );
    for f in fragments {
        assert!(!lines.contains(f), "'{f}' logged:\n{lines}");
    }
    drop(dir);
}

/// The start of a MariaDB greeting (protocol 10), as a real server sends it.
fn greeting() -> Vec<u8> {
    let mut payload = vec![10u8];
    payload.extend(b"5.5.5-10.11.19-MariaDB\0");
    payload.extend(7u32.to_le_bytes());
    payload.extend(b"abcdefgh\0");
    payload.extend([0xfe, 0xf7, 0x2d, 0x02, 0x00, 0xff, 0x81, 0x15]);
    payload.extend([0u8; 10]);
    payload.extend(b"ijklmnopqrst\0mysql_native_password\0");
    let mut packet = (payload.len() as u32).to_le_bytes()[..3].to_vec();
    packet.push(0);
    packet.extend(payload);
    packet
}

#[test]
fn a_dripping_database_is_cut_off_at_the_timeout() {
    // One byte of the greeting every 1.5 s: each read alone is quick, the whole never ends.
    // The dripper gives up after 15 s, so a module without a total bound fails this test
    // rather than hanging it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in listener.incoming().flatten() {
            std::thread::spawn(move || {
                use std::io::Write;
                let mut c = c;
                let started = Instant::now();
                for b in greeting() {
                    if started.elapsed() > Duration::from_secs(15) || c.write_all(&[b]).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(1500));
                }
            });
        }
    });
    let dsn = format!("mysql://kopano:x@127.0.0.1:{port}/kopano");
    let l = line_with(&dsn, "timeout=2");
    for phase in ["auth", "account"] {
        let started = Instant::now();
        let code = match phase {
            "auth" => l.svc.auth("db-right", "Passw0rd"),
            _ => account(&l, "db-right"),
        };
        let took = started.elapsed();
        assert_eq!(code, PAM_AUTHINFO_UNAVAIL, "{phase}");
        assert!(took >= Duration::from_millis(1900), "{phase}: {took:?}");
        // timeout= plus the documented slack (README, "Time bounds").
        assert!(took < Duration::from_millis(2500), "{phase}: {took:?}");
    }
}

#[test]
fn a_forked_child_never_uses_its_parents_connection_or_runtime() {
    // saslauthd and Apache prefork fork after the module has run: the child inherits the
    // thread's I/O runtime and its pooled connection. It must make its own, and leave the
    // parent's session intact.
    mariadb::server().add_users(&[KopanoUser::active("db-fork", "Passw0rd")]);
    let l = line("");
    assert_eq!(l.svc.auth("db-fork", "Passw0rd"), PAM_SUCCESS);
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let ok = l.svc.auth("db-fork", "Passw0rd") == PAM_SUCCESS
            && l.svc.auth("db-fork", "wrong") == PAM_AUTH_ERR;
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut status = 0;
    loop {
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            break;
        }
        if Instant::now() > deadline {
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("the forked child hung");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child: {status}"
    );
    // The parent's pooled connection and runtime still serve it.
    assert_eq!(l.svc.auth("db-fork", "Passw0rd"), PAM_SUCCESS);
    assert_eq!(l.svc.auth("db-fork", "wrong"), PAM_AUTH_ERR);
}

/// MariaDB's text for a missing grant names the DSN's account ("SELECT command denied to user
/// 'kopano_nogrant'@'127.0.0.1' for table ..."): the log has the code and fixed words only.
#[test]
fn a_missing_select_grant_is_logged_by_code_without_the_account_name() {
    let db = mariadb::server();
    db.add_users(&[KopanoUser::active("grant-check", "Passw0rd")]);
    // A grant on one table only: the database opens, the query's other table is denied.
    db.root_sql(&format!(
        "CREATE USER 'kopano_nogrant'@'127.0.0.1' IDENTIFIED BY 'n0grant';
         GRANT SELECT ON {}.object TO 'kopano_nogrant'@'127.0.0.1';",
        mariadb::DB_NAME
    ));
    let l = line_with(&db.dsn_as("kopano_nogrant", "n0grant"), "timeout=3");
    let capture = support::syslog::Capture::start();
    assert_eq!(l.svc.auth("grant-check", "Passw0rd"), PAM_AUTHINFO_UNAVAIL);
    let lines = capture.module_lines().join("\n");
    assert!(lines.contains("error 1142"), "{lines}");
    assert!(lines.contains("GRANT SELECT"), "{lines}");
    assert!(
        !lines.contains("nogrant"),
        "the log names the account:\n{lines}"
    );
}

/// issue 16: a check costs one query round trip on a kept connection, whose prepared
/// statement is made once: N logins (auth + account, each reading the user, its password and
/// its feature lists) are one connection, one prepare and 2N executes, counted by the
/// server's own general log for an account only this test uses.
#[test]
fn one_round_trip_per_check_on_one_kept_connection() {
    let db = mariadb::server();
    db.add_db_account("kopano_rtt", "rtt-pw");
    db.add_users(&[KopanoUser {
        enabled: &["imap"],
        disabled: &["mobile"],
        ..KopanoUser::active("db-rtt", "Passw0rd")
    }]);
    assert!(db.commands_of("kopano_rtt").is_empty());
    const N: usize = 5;
    for extra in ["feature=imap", ""] {
        let l = line_with(&db.dsn_as("kopano_rtt", "rtt-pw"), extra);
        for _ in 0..N {
            assert_eq!(
                l.svc.login("db-rtt", "Passw0rd"),
                (PAM_SUCCESS, Some(PAM_SUCCESS)),
                "{extra}"
            );
        }
    }
    let seen = db.commands_of("kopano_rtt");
    let count = |c: &str| seen.get(c).copied().unwrap_or(0);
    assert_eq!(count("Connect"), 1, "{seen:?}");
    assert_eq!(count("Prepare"), 1, "{seen:?}");
    assert_eq!(count("Execute"), 2 * 2 * N, "{seen:?}");
    // And the server answers it without an internal temporary table (an ORDER BY or a
    // derived table over these TEXT columns writes one to disk for every check).
    let statements = db.temp_tables_of_statements("kopano_rtt", &["1", "db-rtt"]);
    assert_eq!(statements.len(), 1, "{statements:?}");
    for (statement, made) in statements {
        assert_eq!(made, 0, "{statement}");
    }
}

/// The one query reads the feature lists of every user object the collation matches; only
/// the chosen one's count (Kopano's stricmp re-check: ASCII case folding, active users
/// first, lowest id first). Another object's "imap" never lets this one in.
#[test]
fn features_are_the_chosen_users_own() {
    let db = mariadb::server();
    db.add_users(&[
        KopanoUser::active("db-twin", "Passw0rd"),
        KopanoUser {
            enabled: &["imap"],
            ..KopanoUser::active("DB-TWIN", "0therPw")
        },
        KopanoUser::active("db-twin-ü", "Passw0rd"),
        KopanoUser {
            enabled: &["imap"],
            ..KopanoUser::active("db-twin-Ü", "0therPw")
        },
        KopanoUser {
            class: NONACTIVE_USER,
            enabled: &["imap"],
            ..KopanoUser::active("db-twin-shared", "Passw0rd")
        },
    ]);
    let imap = line("feature=imap");
    // Both ASCII variants match; the first object (lower id) is the user, imap off.
    assert_eq!(imap.svc.auth("db-twin", "Passw0rd"), PAM_AUTH_ERR);
    assert_eq!(account(&imap, "db-twin"), PAM_PERM_DENIED);
    assert_eq!(account(&imap, "DB-TWIN"), PAM_PERM_DENIED);
    // Without feature=, the same object: its own password.
    let plain = line("");
    assert_eq!(plain.svc.auth("DB-TWIN", "Passw0rd"), PAM_SUCCESS);
    assert_eq!(plain.svc.auth("DB-TWIN", "0therPw"), PAM_AUTH_ERR);
    // ü and Ü are one name to the collation, two to Kopano's stricmp: each its own features.
    assert_eq!(imap.svc.auth("db-twin-ü", "Passw0rd"), PAM_AUTH_ERR);
    assert_eq!(account(&imap, "db-twin-ü"), PAM_PERM_DENIED);
    assert_eq!(
        imap.svc.login("db-twin-Ü", "0therPw"),
        (PAM_SUCCESS, Some(PAM_SUCCESS))
    );
    // A non-active object's features do not make it a user.
    assert_eq!(imap.svc.auth("db-twin-shared", "Passw0rd"), PAM_AUTH_ERR);
    assert_eq!(account(&imap, "db-twin-shared"), PAM_PERM_DENIED);
}

/// More feature values than a Kopano user has is no answer to rely on (as before the lookup
/// became one query); they are not read at all when no feature= is asked for.
#[test]
fn too_many_feature_values_are_authinfo_unavail() {
    let many: Vec<String> = (0..65).map(|i| format!("feature{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    mariadb::server().add_users(&[KopanoUser {
        enabled: &many,
        ..KopanoUser::active("db-many-features", "Passw0rd")
    }]);
    let l = line("feature=imap");
    assert_eq!(
        l.svc.auth("db-many-features", "Passw0rd"),
        PAM_AUTHINFO_UNAVAIL
    );
    assert_eq!(account(&l, "db-many-features"), PAM_AUTHINFO_UNAVAIL);
    assert_eq!(
        line("").svc.login("db-many-features", "Passw0rd"),
        (PAM_SUCCESS, Some(PAM_SUCCESS))
    );
}

/// A DSN that turns the driver's statement cache off (`stmt_cache_size=0`) would make every
/// check prepare its statement anew and leave it open on the kept connection, until the
/// server's max_prepared_stmt_count refuses everyone: the module keeps its own statements.
#[test]
fn the_statement_cache_stays_on_whatever_the_dsn_says() {
    let db = mariadb::server();
    db.add_db_account("kopano_nocache", "nocache-pw");
    db.add_users(&[KopanoUser::active("db-nocache", "Passw0rd")]);
    assert!(db.commands_of("kopano_nocache").is_empty());
    let dsn = format!(
        "{}?stmt_cache_size=0",
        db.dsn_as("kopano_nocache", "nocache-pw")
    );
    let l = line_with(&dsn, "");
    for _ in 0..4 {
        assert_eq!(
            l.svc.login("db-nocache", "Passw0rd"),
            (PAM_SUCCESS, Some(PAM_SUCCESS))
        );
    }
    let seen = db.commands_of("kopano_nocache");
    assert_eq!(seen.get("Prepare"), Some(&1), "{seen:?}");
    assert_eq!(seen.get("Execute"), Some(&8), "{seen:?}");
}

/// kopano-server keeps login names unique under the column's collation; more than 16 user
/// objects answering to one name is not a Kopano store, and no answer to rely on (the
/// lookup used to cut the list at 16 silently and pick among those).
#[test]
fn more_than_sixteen_objects_for_one_login_are_authinfo_unavail() {
    let variants: Vec<String> = (0u32..17)
        .map(|mask| {
            "db-crowd"
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    if mask & (1 << i) != 0 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect()
        })
        .collect();
    let users: Vec<KopanoUser> = variants
        .iter()
        .map(|v| KopanoUser::active(v, "Passw0rd"))
        .collect();
    mariadb::server().add_users(&users);
    let l = line("");
    assert_eq!(l.svc.auth("db-crowd", "Passw0rd"), PAM_AUTHINFO_UNAVAIL);
    assert_eq!(account(&l, "db-crowd"), PAM_AUTHINFO_UNAVAIL);
}
