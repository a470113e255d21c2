//! backend=postfixadmin through real libpam against PostfixAdmin's own schema (created by its
//! upgrade.php) in a private MariaDB and a private PostgreSQL, with password values from the
//! real generators (PostfixAdmin's pacrypt under php-cli, doveadm pw).

mod support;

use support::postfixadmin::{db, Engine};

#[test]
fn the_schema_is_postfixadmins_own_in_both_engines() {
    for engine in [Engine::Mysql, Engine::Postgres] {
        let d = db(engine);
        let cols = match engine {
            Engine::Mysql => d.sql("SELECT column_name, column_type, column_default, collation_name FROM information_schema.columns WHERE table_schema = 'postfixadmin' AND table_name IN ('mailbox','domain') AND column_name IN ('username','password','active','password_expiry','domain') ORDER BY table_name, column_name;"),
            Engine::Postgres => d.sql("SELECT table_name, column_name, data_type, column_default FROM information_schema.columns WHERE table_name IN ('mailbox','domain') AND column_name IN ('username','password','active','password_expiry','domain') ORDER BY table_name, column_name;"),
        };
        println!("{engine:?}:\n{cols}");
        assert!(cols.contains("password_expiry"), "{cols}");
    }
}
