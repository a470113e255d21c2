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

use super::{Record, ACTIVE_USER};
use crate::options::Options;
use crate::secret::Secret;
use crate::sql::{self, Deadline, Param, Query, Row};
use crate::verdict::Verdict;

/// At most this many user objects can match one login (case variants); more is not a
/// Kopano store (kopano-server keeps login names unique under the same collation).
const MAX_USERS: usize = 16;

/// At most this many feature values for the user; more is not a Kopano store.
const MAX_FEATURES: usize = 64;

/// Rows one answer may have: every user object with a full feature list.
const MAX_ROWS: usize = MAX_USERS * MAX_FEATURES;

/// One check is ONE round trip: every user object whose `loginname` equals the name under
/// the column's collation, with its password and, when the first parameter is 1 and the
/// object is an active user, one row per value of PR_EC_ENABLED_FEATURES /
/// PR_EC_DISABLED_FEATURES (an object without any comes as one row with NULL there).
///
/// Rows, not a GROUP_CONCAT: that is cut silently at `group_concat_max_len` and would lose a
/// disabled feature. No ORDER BY, LIMIT or derived table: on these TEXT columns each makes
/// MariaDB write an internal temporary table to disk for every check (the order is
/// [`lookup`]'s). One statement whatever the options, so a connection prepares it once and
/// the driver's statement cache keeps it.
const LOOKUP: Query = Query {
    mysql: "SELECT o.id, o.objectclass, login.value, pass.value, f.propname, f.value \
     FROM object AS o \
     JOIN objectproperty AS login \
       ON login.objectid = o.id AND login.propname = 'loginname' \
     LEFT JOIN objectproperty AS pass \
       ON pass.objectid = o.id AND pass.propname = 'password' \
     LEFT JOIN objectmvproperty AS f \
       ON ? = 1 AND o.objectclass = 65537 AND f.objectid = o.id \
       AND f.propname IN ('0x67B3101E', '0x67B4101E', '0x67b3101e', '0x67b4101e') \
     WHERE login.value = ? AND (o.objectclass & 0xFFFF0000) = 0x10000",
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

/// The user columns of a LOOKUP row: id, object class, login, password value.
type UserRow<'a> = (i64, u32, Option<&'a [u8]>, Option<&'a [u8]>);

/// The feature columns of a LOOKUP row: property name and value, if the row carries one.
type Feature<'a> = Option<(&'a [u8], &'a [u8])>;

/// One LOOKUP row, or the reason it cannot be read (never the row itself).
fn read_row(row: &Row) -> Result<(UserRow<'_>, Feature<'_>), Verdict> {
    let id = row.int(0).ok_or_else(odd_row)?;
    let class = row
        .int(1)
        .and_then(|c| u32::try_from(c).ok())
        .ok_or_else(odd_row)?;
    let login = row.text(2).ok_or_else(odd_row)?;
    let password = row.text(3).ok_or_else(odd_row)?;
    let feature = match (row.text(4), row.text(5)) {
        (Some(Some(propname)), Some(Some(value))) => Some((propname, value)),
        // No feature row joined (none asked for, none stored), or a NULL value.
        (Some(_), Some(None)) => None,
        _ => return Err(odd_row()),
    };
    Ok(((id, class, login, password), feature))
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
        &[Param::Int(i64::from(want_features)), Param::Text(user)],
        MAX_ROWS,
    )?;
    let rows = rows.iter().map(read_row).collect::<Result<Vec<_>, _>>()?;
    // The user objects, active users first, then by id (a user's feature rows repeat its
    // columns, and sit together once sorted).
    let mut users: Vec<UserRow> = rows.iter().map(|(u, _)| *u).collect();
    users.sort_by_key(|&(id, class, _, _)| (class != ACTIVE_USER, id));
    users.dedup();
    if users.len() > MAX_USERS {
        return Err(Verdict::Unavailable(format!(
            "more than {MAX_USERS} user objects for one login: does dsn= name the right \
             database?"
        )));
    }
    // Kopano's own re-check of the collation's match (stricmp): the first object whose
    // login equals the name under ASCII case folding.
    let Some(&(id, object_class, _, password)) = users
        .iter()
        .find(|(_, _, login, _)| login.is_some_and(|l| l.eq_ignore_ascii_case(user.as_bytes())))
    else {
        return Ok(None);
    };
    let mut record = Record {
        object_class,
        hash: password.map(|p| Secret::new(String::from_utf8_lossy(p).into_owned())),
        enabled: Vec::new(),
        disabled: Vec::new(),
    };
    let features = rows
        .iter()
        .filter(|((row_id, ..), _)| *row_id == id)
        .filter_map(|(_, feature)| *feature);
    for (n, (propname, value)) in features.enumerate() {
        if n == MAX_FEATURES {
            return Err(Verdict::Unavailable(format!(
                "more than {MAX_FEATURES} feature values for one login: does dsn= name the \
                 right database?"
            )));
        }
        let feature = String::from_utf8_lossy(value).trim().to_ascii_lowercase();
        if propname.eq_ignore_ascii_case(b"0x67B3101E") {
            record.enabled.push(feature);
        } else {
            record.disabled.push(feature);
        }
    }
    Ok(Some(record))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lookup_spells_the_active_user_class_as_the_code_does() {
        let active = format!("o.objectclass = {ACTIVE_USER}");
        assert!(LOOKUP.mysql.contains(&active));
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
