//! PostfixAdmin databases for the tests, in the private MariaDB (mariadb.rs) and the private
//! PostgreSQL (postgres.rs). The schema is created by PostfixAdmin's OWN `upgrade.php`
//! (Debian's postfixadmin package) run under php-cli against each database, so the tables,
//! column types, defaults and collations are exactly what a PostfixAdmin installation has.
//! Domains and mailboxes are then written as PostfixAdmin writes them; their password values
//! come from the real generators (pfa_generators.rs).

use super::mariadb;
use super::pam::TempDir;
use super::postgres;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

pub const DB_NAME: &str = "postfixadmin";
/// Owns the database: upgrade.php and PostfixAdmin itself (mysql_encrypt) connect as it.
pub const OWNER: &str = "pfa_owner";
pub const OWNER_PASSWORD: &str = "pfa-owner-pw";
/// What the module connects as: SELECT only.
pub const READER: &str = "pfa_reader";
pub const READER_PASSWORD: &str = "pfa-reader-pw";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Mysql,
    Postgres,
}

pub struct PfaDb {
    pub engine: Engine,
    pub port: u16,
    /// The MariaDB holding it (MySQL only): the plain server or the TLS-only one.
    mysql: Option<&'static mariadb::MariaDb>,
}

static MYSQL: OnceLock<PfaDb> = OnceLock::new();
static POSTGRES: OnceLock<PfaDb> = OnceLock::new();
static MYSQL_TLS: OnceLock<PfaDb> = OnceLock::new();

/// A PostfixAdmin database in the TLS-only MariaDB (mariadb::tls_server). Its tables are
/// copied (SHOW CREATE TABLE) from the ones upgrade.php made in the plain server: PHP would
/// need the TLS settings too, and the schema is the same.
pub fn tls_mysql() -> &'static PfaDb {
    MYSQL_TLS.get_or_init(|| {
        let plain = db(Engine::Mysql);
        let m = mariadb::tls_server();
        m.root_sql(&format!(
            "CREATE DATABASE {DB_NAME};
             CREATE USER '{READER}'@'127.0.0.1' IDENTIFIED BY '{READER_PASSWORD}';
             CREATE USER '{READER}'@'localhost' IDENTIFIED BY '{READER_PASSWORD}';
             GRANT SELECT ON {DB_NAME}.* TO '{READER}'@'127.0.0.1';
             GRANT SELECT ON {DB_NAME}.* TO '{READER}'@'localhost';"
        ));
        for table in ["domain", "mailbox"] {
            let shown = plain.sql(&format!("SHOW CREATE TABLE {table};"));
            let create = shown
                .split_once('\t')
                .map(|(_, c)| c.trim_end().replace("\\n", "\n"))
                .unwrap_or_default();
            assert!(create.starts_with("CREATE TABLE"), "{shown}");
            m.root_sql(&format!("USE {DB_NAME};\n{create};"));
        }
        PfaDb {
            engine: Engine::Mysql,
            port: m.port,
            mysql: Some(m),
        }
    })
}

/// The PostfixAdmin database in the given engine, created on first use.
pub fn db(engine: Engine) -> &'static PfaDb {
    match engine {
        Engine::Mysql => MYSQL.get_or_init(|| create(Engine::Mysql)),
        Engine::Postgres => POSTGRES.get_or_init(|| create(Engine::Postgres)),
    }
}

fn create(engine: Engine) -> PfaDb {
    let port = match engine {
        Engine::Mysql => {
            let m = mariadb::server();
            m.root_sql(&format!(
                "CREATE DATABASE {DB_NAME};
                 CREATE USER '{OWNER}'@'127.0.0.1' IDENTIFIED BY '{OWNER_PASSWORD}';
                 GRANT ALL ON {DB_NAME}.* TO '{OWNER}'@'127.0.0.1';
                 CREATE USER '{READER}'@'127.0.0.1' IDENTIFIED BY '{READER_PASSWORD}';
                 CREATE USER '{READER}'@'localhost' IDENTIFIED BY '{READER_PASSWORD}';
                 GRANT SELECT ON {DB_NAME}.* TO '{READER}'@'127.0.0.1';
                 GRANT SELECT ON {DB_NAME}.* TO '{READER}'@'localhost';"
            ));
            m.port
        }
        Engine::Postgres => {
            let p = postgres::server();
            p.sql(
                "postgres",
                &format!(
                    "CREATE ROLE {OWNER} LOGIN PASSWORD '{OWNER_PASSWORD}';
                     CREATE ROLE {READER} LOGIN PASSWORD '{READER_PASSWORD}';"
                ),
            );
            p.sql(
                "postgres",
                &format!("CREATE DATABASE {DB_NAME} OWNER {OWNER} ENCODING 'UTF8';"),
            );
            p.port
        }
    };
    let db = PfaDb {
        engine,
        port,
        mysql: (engine == Engine::Mysql).then(mariadb::server),
    };
    db.run_upgrade_php();
    match engine {
        Engine::Mysql => {}
        Engine::Postgres => {
            db.sql(&format!(
                "GRANT SELECT ON ALL TABLES IN SCHEMA public TO {READER};"
            ));
        }
    }
    db
}

impl PfaDb {
    /// Creates PostfixAdmin's tables with PostfixAdmin's own upgrade.php: a copy of the
    /// package tree whose config.local.php names this database (common.php reads the config
    /// next to itself; everything else is the package's own files, linked).
    fn run_upgrade_php(&self) {
        let src = Path::new("/usr/share/postfixadmin");
        assert!(
            src.join("public/upgrade.php").exists(),
            "PostfixAdmin is not installed (apt-get install postfixadmin)"
        );
        let tree = TempDir::new("pfa-tree");
        let root = tree.path();
        for entry in [
            "functions.inc.php",
            "model",
            "languages",
            "lib",
            "configs",
            "templates",
        ] {
            std::os::unix::fs::symlink(src.join(entry), root.join(entry)).unwrap();
        }
        std::fs::copy(src.join("common.php"), root.join("common.php")).unwrap();
        std::fs::copy(
            "/etc/postfixadmin/config.inc.php",
            root.join("config.inc.php"),
        )
        .unwrap();
        std::fs::write(root.join("dbconfig.inc.php"), "<?php\n").unwrap();
        let db_type = match self.engine {
            Engine::Mysql => "mysqli",
            Engine::Postgres => "pgsql",
        };
        std::fs::write(
            root.join("config.local.php"),
            format!(
                "<?php\n$CONF['configured'] = true;\n$CONF['database_type'] = '{db_type}';\n\
                 $CONF['database_host'] = '127.0.0.1';\n$CONF['database_port'] = '{}';\n\
                 $CONF['database_user'] = '{OWNER}';\n$CONF['database_password'] = '{OWNER_PASSWORD}';\n\
                 $CONF['database_name'] = '{DB_NAME}';\n",
                self.port
            ),
        )
        .unwrap();
        std::fs::create_dir_all(root.join("public")).unwrap();
        std::fs::copy(
            src.join("public/upgrade.php"),
            root.join("public/upgrade.php"),
        )
        .unwrap();
        let out = Command::new("php")
            .args(["-d", "display_errors=stderr", "public/upgrade.php"])
            .current_dir(root)
            .output()
            .expect("php-cli");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && !stdout.contains("Invalid query"),
            "upgrade.php failed: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Proof that the schema is PostfixAdmin's current one: upgrade.php records its version.
        let version = self.sql("SELECT value FROM config WHERE name = 'version';");
        assert!(
            version.trim().parse::<u32>().is_ok_and(|v| v > 1800),
            "upgrade.php left no schema version: {version:?}"
        );
    }

    /// Runs SQL as the administrator in the PostfixAdmin database.
    pub fn sql(&self, sql: &str) -> String {
        match self.engine {
            Engine::Mysql => self
                .mysql
                .unwrap_or_else(mariadb::server)
                .root_sql(&format!("USE {DB_NAME};\n{sql}")),
            Engine::Postgres => postgres::server().sql(DB_NAME, sql),
        }
    }

    /// A text literal of any content (the tests write hostile names too).
    pub fn text(&self, value: &str) -> String {
        let hex: String = value.bytes().map(|b| format!("{b:02x}")).collect();
        match self.engine {
            Engine::Mysql => format!("CONVERT(X'{hex}' USING utf8mb4)"),
            Engine::Postgres => format!("convert_from('\\x{hex}'::bytea, 'UTF8')"),
        }
    }

    fn boolean(&self, value: bool) -> &'static str {
        match (self.engine, value) {
            (Engine::Mysql, true) => "1",
            (Engine::Mysql, false) => "0",
            (Engine::Postgres, true) => "true",
            (Engine::Postgres, false) => "false",
        }
    }

    /// A domain as PostfixAdmin's DomainHandler writes it; `expiry_days` 0 = expiry off.
    pub fn add_domain(&self, domain: &str, active: bool, expiry_days: u32) {
        self.sql(&format!(
            "INSERT INTO domain (domain, description, aliases, mailboxes, maxquota, quota, \
             transport, backupmx, created, modified, active, password_expiry) VALUES \
             ({}, 'test', 10, 10, 10, 2048, 'virtual', {}, NOW(), NOW(), {}, {expiry_days});",
            self.text(domain),
            self.boolean(false),
            self.boolean(active)
        ));
    }

    /// A mailbox as PostfixAdmin's MailboxHandler writes it, with the stored password value
    /// given as is. `expiry` is an SQL expression for `password_expiry` (None: the column
    /// default, 2000-01-01, as rows created before expiry was enabled carry).
    pub fn add_mailbox(&self, username: &str, stored: &str, active: bool, expiry: Option<&str>) {
        let (local, domain) = username.rsplit_once('@').unwrap_or((username, ""));
        let (cols, vals) = match expiry {
            Some(e) => (", password_expiry", format!(", {e}")),
            None => ("", String::new()),
        };
        self.sql(&format!(
            "INSERT INTO mailbox (username, password, name, maildir, quota, local_part, domain, \
             created, modified, active{cols}) VALUES ({}, {}, 'Test', {}, 0, {}, {}, NOW(), \
             NOW(), {}{vals});",
            self.text(username),
            self.text(stored),
            self.text(&format!("{domain}/{local}/")),
            self.text(local),
            self.text(domain),
            self.boolean(active),
        ));
    }

    /// An SQL timestamp `days` from now (negative: in the past).
    pub fn days_from_now(&self, days: i32) -> String {
        match self.engine {
            Engine::Mysql => format!("NOW() + INTERVAL {days} DAY"),
            Engine::Postgres => format!("NOW() + INTERVAL '{days} days'"),
        }
    }

    /// The module's DSN (the reader account) over TCP to 127.0.0.1.
    pub fn dsn(&self) -> String {
        match self.engine {
            Engine::Mysql => format!(
                "mysql://{READER}:{READER_PASSWORD}@127.0.0.1:{}/{DB_NAME}",
                self.port
            ),
            Engine::Postgres => format!(
                "postgresql://{READER}:{READER_PASSWORD}@127.0.0.1:{}/{DB_NAME}",
                self.port
            ),
        }
    }

    /// Where PostfixAdmin's mysql_encrypt runs ENCRYPT() (MySQL only).
    pub fn php_db(&self) -> super::pfa_generators::PhpDb {
        super::pfa_generators::PhpDb {
            host: "127.0.0.1".into(),
            port: self.port,
            user: OWNER.into(),
            password: OWNER_PASSWORD.into(),
            name: DB_NAME.into(),
        }
    }
}
