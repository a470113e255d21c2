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
//! layer's (`crate::sql`): the whole lookup (connect, handshakes, the one query) ends within
//! `timeout=`.

use super::Record;
use crate::options::Options;
use crate::secret::Secret;
use crate::sql::{self, Deadline, Param, Query, Row};
use crate::verdict::Verdict;

/// At most this many user objects can match one login (case variants); more is not a
/// Kopano store.
const MAX_USERS: usize = 16;

/// At most this many feature values for the user; more is not a Kopano store.
const MAX_FEATURES: usize = 64;

/// One check is ONE round trip: the user objects whose `loginname` equals the name under the
/// column's collation (active users first, at most [`MAX_USERS`]), each with its password
/// and, when the second parameter is 1 and the object is an active user, one row per value
/// of PR_EC_ENABLED_FEATURES / PR_EC_DISABLED_FEATURES (a user without any gets one row with
/// NULL there). Rows, not a GROUP_CONCAT: that would be cut silently at
/// `group_concat_max_len` and lose a disabled feature. One statement whatever the
/// options, so each connection prepares it once (the driver's statement cache keeps it).
const LOOKUP: Query = Query {
    mysql: "SELECT u.id, u.objectclass, u.login, u.password, f.propname, f.value \
     FROM (SELECT o.id, o.objectclass, login.value AS login, pass.value AS password \
       FROM object AS o \
       JOIN objectproperty AS login \
         ON login.objectid = o.id AND login.propname = 'loginname' \
       LEFT JOIN objectproperty AS pass \
         ON pass.objectid = o.id AND pass.propname = 'password' \
       WHERE login.value = ? AND (o.objectclass & 0xFFFF0000) = 0x10000 \
       ORDER BY (o.objectclass = 65537) DESC, o.id \
       LIMIT 16) AS u \
     LEFT JOIN objectmvproperty AS f \
       ON ? = 1 AND u.objectclass = 65537 AND f.objectid = u.id \
       AND f.propname IN ('0x67B3101E', '0x67B4101E', '0x67b3101e', '0x67b4101e') \
     ORDER BY (u.objectclass = 65537) DESC, u.id",
    postgres: None,
};

/// Rows one answer may have: every user object with its full feature list.
const MAX_ROWS: usize = MAX_USERS * MAX_FEATURES;

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

/// The user columns of a LOOKUP row: id, object class, login, password value.
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

/// The feature columns of a LOOKUP row: `None` when the row carries no feature value.
fn feature_of(row: &Row) -> Result<Option<(&[u8], &[u8])>, Verdict> {
    match (row.text(4), row.text(5)) {
        // No feature row joined (none asked for, none stored), or a value that is NULL.
        (Some(None), Some(None)) | (Some(Some(_)), Some(None)) => Ok(None),
        (Some(Some(propname)), Some(Some(value))) => Ok(Some((propname, value))),
        _ => Err(odd_row()),
    }
}

/// The record for `user`, `None` if there is no user object with that login name.
pub fn lookup(
    opts: &Options,
    dsn: &Secret,
    user: &str,
    want_features: bool,
) -> Result<Option<Record>, Verdict> {
    let rows = sql::query(
        opts,
        dsn,
        Deadline::after(opts.timeout),
        LOOKUP,
        &[Param::Text(user), Param::Int(i64::from(want_features))],
        MAX_ROWS,
    )?;
    // Kopano's own re-check of the collation's match (stricmp): the first row, active users
    // first, whose login equals the name under ASCII case folding.
    let mut record: Option<(i64, Record)> = None;
    let mut features = 0;
    for row in &rows {
        let (id, class, login, password) = user_row(row)?;
        let feature = feature_of(row)?;
        if record.is_none() && login.is_some_and(|l| l.eq_ignore_ascii_case(user.as_bytes())) {
            let found = Record {
                object_class: class,
                hash: password.map(|p| Secret::new(String::from_utf8_lossy(p).into_owned())),
                enabled: Vec::new(),
                disabled: Vec::new(),
            };
            record = Some((id, found));
        }
        let Some((found_id, found)) = &mut record else {
            continue;
        };
        let Some((propname, value)) = feature.filter(|_| *found_id == id) else {
            continue;
        };
        features += 1;
        if features > MAX_FEATURES {
            return Err(Verdict::Unavailable(format!(
                "more than {MAX_FEATURES} feature values for one login: does dsn= name the \
                 right database?"
            )));
        }
        let feature = String::from_utf8_lossy(value).trim().to_ascii_lowercase();
        if propname.eq_ignore_ascii_case(b"0x67B3101E") {
            found.enabled.push(feature);
        } else {
            found.disabled.push(feature);
        }
    }
    Ok(record.map(|(_, found)| found))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lookup_spells_the_constants_it_is_checked_against() {
        assert!(LOOKUP.mysql.contains(&format!("LIMIT {MAX_USERS})")));
        let active = format!("u.objectclass = {}", super::super::ACTIVE_USER);
        assert_eq!(LOOKUP.mysql.matches(&active).count(), 2);
    }

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
