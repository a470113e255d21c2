//! `dsn=mysql://user:pass@host:port/db` (or `?socket=/path`): the Kopano DB user plugin's
//! tables in MySQL/MariaDB.
//!
//! - `object(id, externid, objectclass)`: 65537 (ACTIVE_USER) is an active user; other user
//!   classes (0x1xxxx: non-active user, room, equipment, contact) exist but may not log in.
//! - `objectproperty(objectid, propname, value)`: `loginname`, `password`.
//! - `objectmvproperty(objectid, propname, orderid, value)`: `0x67B3101E` explicitly enabled
//!   features, `0x67B4101E` explicitly disabled features.
//!
//! The login name is attacker-controlled: it only ever travels as a bound parameter of a
//! prepared statement. Kopano matches it with the column's case-insensitive collation and
//! then re-checks the row with `stricmp`; we do the same (ASCII case folding), which also
//! drops rows that the collation's trailing-space padding would match.
//!
//! Connections, TLS, the plaintext rule, the time bound and pooling are the shared database
//! layer's (`crate::sql`): the whole lookup (connect, handshakes, both queries) ends within
//! `timeout=`.

use super::{Record, ACTIVE_USER};
use crate::options::Options;
use crate::secret::Secret;
use crate::sql::{self, Deadline, Param, Query, Row};
use crate::verdict::Verdict;

/// At most this many rows can match one login (case variants); more is not a Kopano store.
const MAX_ROWS: usize = 16;

/// The user objects whose `loginname` equals the name under the column's collation.
const USER_QUERY: Query = Query {
    mysql: "SELECT o.id, o.objectclass, login.value, pass.value \
     FROM object AS o \
     JOIN objectproperty AS login \
       ON login.objectid = o.id AND login.propname = 'loginname' \
     LEFT JOIN objectproperty AS pass \
       ON pass.objectid = o.id AND pass.propname = 'password' \
     WHERE login.value = ? AND (o.objectclass & 0xFFFF0000) = 0x10000 \
     ORDER BY (o.objectclass = 65537) DESC, o.id \
     LIMIT 16",
    postgres: None,
};

/// PR_EC_ENABLED_FEATURES / PR_EC_DISABLED_FEATURES of one object.
const FEATURE_QUERY: Query = Query {
    mysql: "SELECT propname, value FROM objectmvproperty \
     WHERE objectid = ? AND propname IN ('0x67B3101E', '0x67B4101E', '0x67b3101e', '0x67b4101e')",
    postgres: None,
};

/// Where the database is, for log lines: the DSN's one redacted form.
pub fn endpoint(dsn: &Secret) -> Option<String> {
    sql::Dsn::parse(dsn.expose()).ok().map(|d| d.redacted())
}

/// Never the row itself: it may hold a password hash.
fn odd_row() -> Verdict {
    Verdict::Unavailable(
        "a row of unexpected shape (NULL or out-of-range id or object class): does dsn= name \
         a Kopano database?"
            .into(),
    )
}

/// One row of USER_QUERY: id, object class, login, password value.
type UserRow<'a> = (i64, u32, Option<&'a [u8]>, Option<&'a [u8]>);

fn user_row(row: &Row) -> Result<UserRow<'_>, Verdict> {
    let id = row.int(0).ok_or_else(odd_row)?;
    let class = row
        .int(1)
        .and_then(|c| u32::try_from(c).ok())
        .ok_or_else(odd_row)?;
    let login = row.text(2).ok_or_else(odd_row)?;
    let password = row.text(3).ok_or_else(odd_row)?;
    Ok((id, class, login, password))
}

/// The record for `user`, `None` if there is no user object with that login name.
pub fn lookup(
    opts: &Options,
    dsn: &Secret,
    user: &str,
    want_features: bool,
) -> Result<Option<Record>, Verdict> {
    let deadline = Deadline::after(opts.timeout);
    let rows = sql::query(
        opts,
        dsn,
        deadline,
        USER_QUERY,
        &[Param::Text(user)],
        MAX_ROWS,
    )?;
    let mut found = None;
    for row in &rows {
        let (id, class, login, password) = user_row(row)?;
        if found.is_none() && login.is_some_and(|l| l.eq_ignore_ascii_case(user.as_bytes())) {
            found = Some((id, class, password));
        }
    }
    let Some((id, object_class, password)) = found else {
        return Ok(None);
    };
    let mut record = Record {
        object_class,
        hash: password.map(|p| Secret::new(String::from_utf8_lossy(p).into_owned())),
        enabled: Vec::new(),
        disabled: Vec::new(),
    };
    if want_features && object_class == ACTIVE_USER {
        let props = sql::query(opts, dsn, deadline, FEATURE_QUERY, &[Param::Int(id)], 64)?;
        for row in &props {
            let (Some(Some(propname)), Some(value)) = (row.text(0), row.text(1)) else {
                return Err(odd_row());
            };
            let Some(value) = value else { continue };
            let feature = String::from_utf8_lossy(value).trim().to_ascii_lowercase();
            if propname.eq_ignore_ascii_case(b"0x67B3101E") {
                record.enabled.push(feature);
            } else {
                record.disabled.push(feature);
            }
        }
    }
    Ok(Some(record))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_never_shows_the_password() {
        let dsn = Secret::new("mysql://kopano:pw-xyz@db.example:3307/kopano");
        assert_eq!(
            endpoint(&dsn).as_deref(),
            Some("mysql db.example:3307/kopano")
        );
        let dsn = Secret::new("mysql://kopano@localhost/kopano?socket=/run/mysqld/mysqld.sock");
        assert_eq!(
            endpoint(&dsn).as_deref(),
            Some("mysql /run/mysqld/mysqld.sock/kopano")
        );
    }
}
