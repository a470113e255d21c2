//! PostfixAdmin's tables, read through the shared SQL layer ([`crate::sql`]).
//!
//! The schema is the one PostfixAdmin's `upgrade.php` creates (3.2 and later: the
//! `password_expiry` columns), in MySQL/MariaDB (`active` is `tinyint(1)`, names compare
//! under `latin1_general_ci`) and PostgreSQL (`active` is `BOOLEAN`, names compare exactly):
//!
//! - `mailbox(username, password, domain, active, password_expiry, ...)`
//! - `domain(domain, active, password_expiry, ...)`: days; 0 = expiry off
//!
//! Login names compare as PostfixAdmin's own login compares them (`WHERE username = ?` in
//! the database, exactly one row), and then once more here, ASCII case-insensitively: a row
//! the collation alone makes equal (trailing spaces under PAD SPACE, accents folded) is not
//! the mailbox the user named.
//!
//! Password expiry is PostfixAdmin's rule, as its documented Dovecot query states it
//! (`m.password_expiry > now() OR d.password_expiry = 0`): the mailbox's date counts only when
//! its domain sets an expiry above 0 days. With expiry off, rows carry the column default
//! 2000-01-01 or "now + 0 days" from the last change, and lock nobody out. The comparison runs
//! in the database, against the database's clock, as Dovecot's does.

use super::{Mailbox, MailboxStore};
use crate::options::Options;
use crate::secret::Secret;
use crate::sql::{self, Deadline, Param, Query, Row};
use crate::verdict::Verdict;

/// More rows than this for one login is not a PostfixAdmin database (username is its key).
const MAX_ROWS: usize = 4;

/// The default lookup. `?` is MySQL's placeholder, `$1` PostgreSQL's; the login name is the
/// only input and always a bound parameter.
const MAILBOX_MYSQL: &str = "SELECT m.username, m.password, \
       CASE WHEN m.active THEN 1 ELSE 0 END, \
       CASE WHEN d.active THEN 1 ELSE 0 END, \
       CASE WHEN COALESCE(d.password_expiry, 0) > 0 \
             AND (m.password_expiry IS NULL OR m.password_expiry <= NOW()) THEN 1 ELSE 0 END \
     FROM mailbox m LEFT JOIN domain d ON d.domain = m.domain \
     WHERE m.username = ?";

const MAILBOX_POSTGRES: &str = "SELECT m.username::text, m.password::text, \
       CASE WHEN m.active THEN 1 ELSE 0 END, \
       CASE WHEN d.active THEN 1 ELSE 0 END, \
       CASE WHEN COALESCE(d.password_expiry, 0) > 0 \
             AND (m.password_expiry IS NULL OR m.password_expiry <= NOW()) THEN 1 ELSE 0 END \
     FROM mailbox m LEFT JOIN domain d ON d.domain = m.domain \
     WHERE m.username = $1";

/// The mailboxes of a PostfixAdmin database, or of the admin's own `query=`.
pub struct Database<'a> {
    opts: &'a Options,
}

impl<'a> Database<'a> {
    pub fn new(opts: &'a Options) -> Self {
        Database { opts }
    }

    fn dsn(&self) -> Result<&'a Secret, Verdict> {
        self.opts.dsn.as_ref().ok_or_else(|| {
            Verdict::Misconfigured("backend=postfixadmin needs dsn= (in the config file)".into())
        })
    }
}

impl MailboxStore for Database<'_> {
    fn mailbox(&self, login: &str) -> Result<Option<Mailbox>, Verdict> {
        let dsn = self.dsn()?;
        let deadline = Deadline::after(self.opts.timeout);
        let params = [Param::Text(login)];
        match &self.opts.query {
            None => {
                let query = Query {
                    mysql: MAILBOX_MYSQL,
                    postgres: Some(MAILBOX_POSTGRES),
                };
                let rows = sql::query(self.opts, dsn, deadline, query, &params, MAX_ROWS)?;
                default_row(login, &rows)
            }
            Some(own) => {
                let query = Query {
                    mysql: own,
                    postgres: Some(own),
                };
                let rows = sql::query(self.opts, dsn, deadline, query, &params, MAX_ROWS)?;
                own_row(login, &rows)
            }
        }
    }

    fn endpoint(&self) -> Option<String> {
        let dsn = self.opts.dsn.as_ref()?;
        sql::Dsn::parse(dsn.expose()).ok().map(|d| d.redacted())
    }
}

fn shape_error(what: &str) -> Verdict {
    Verdict::Unavailable(format!(
        "{what}: does dsn= name a PostfixAdmin database (3.2 or later)?"
    ))
}

fn flag(row: &Row, i: usize, what: &str) -> Result<bool, Verdict> {
    match row.int(i) {
        Some(0) => Ok(false),
        Some(1) => Ok(true),
        _ => Err(shape_error(&format!("{what} is not 0 or 1"))),
    }
}

/// The rows whose first column (the username) is the login, ASCII case aside: what the
/// collation alone made equal (trailing spaces under PAD SPACE, accents folded) is another
/// name, not this mailbox.
fn named<'r>(login: &str, rows: &'r [Row]) -> Vec<&'r Row> {
    rows.iter()
        .filter(|row| {
            matches!(row.text(0), Some(Some(name)) if name.eq_ignore_ascii_case(login.as_bytes()))
        })
        .collect()
}

/// The default lookup's rows: the one mailbox whose username is the login, or none.
fn default_row(login: &str, rows: &[Row]) -> Result<Option<Mailbox>, Verdict> {
    let same = named(login, rows);
    let row = match same.as_slice() {
        [] => return Ok(None),
        [row] => *row,
        // username is PostfixAdmin's primary key; two rows are not its schema.
        _ => return Err(shape_error("more than one mailbox row for this login")),
    };
    let password = match row.text(1) {
        Some(Some(p)) => Secret::new(String::from_utf8_lossy(p).into_owned()),
        _ => return Err(shape_error("mailbox.password is NULL or not text")),
    };
    Ok(Some(Mailbox {
        password,
        active: flag(row, 2, "mailbox.active")?,
        // A mailbox without its domain row: PostfixAdmin never writes one; nobody vouches
        // for it.
        domain_active: flag(row, 3, "domain.active").unwrap_or(false),
        expired: flag(row, 4, "the expiry computation")?,
    }))
}

/// The rows of the admin's `query=`: columns (username, password, active[, password
/// expired]). The username is compared with the login as in [`default_row`].
fn own_row(login: &str, rows: &[Row]) -> Result<Option<Mailbox>, Verdict> {
    let own = |what: &str| {
        Verdict::Unavailable(format!(
            "query= {what}; it must return one row of (username, password, active[, expired]) \
             per login"
        ))
    };
    if rows.iter().any(|row| !matches!(row.text(0), Some(Some(_)))) {
        return Err(own("returned a NULL or non-text username in column 1"));
    }
    let same = named(login, rows);
    let row = match same.as_slice() {
        [] => return Ok(None),
        [row] => *row,
        _ => return Err(own("returned more than one row for this login")),
    };
    let password = match row.text(1) {
        Some(Some(p)) => Secret::new(String::from_utf8_lossy(p).into_owned()),
        _ => return Err(own("returned a NULL or non-text password")),
    };
    let truth = |i: usize| match row.int(i) {
        Some(n) => Ok(n != 0),
        None => Err(own(&format!("column {} is not an integer", i + 1))),
    };
    let active = truth(2)?;
    let expired = if row.0.len() > 3 { truth(3)? } else { false };
    if row.0.len() > 4 {
        return Err(own("returned more than four columns"));
    }
    Ok(Some(Mailbox {
        password,
        active,
        domain_active: true,
        expired,
    }))
}
