//! backend=postfixadmin: PostfixAdmin's own `mailbox` and `domain` tables in MySQL/MariaDB or
//! PostgreSQL (`dsn=`), read through the shared SQL layer.
//!
//! - Password: the row's stored value decides its scheme ([`scheme`]); plaintext and unsalted
//!   digests only with `weak_schemes=allow`, and logged as weak whenever they are used.
//! - Account: the mailbox exists, `mailbox.active` and its `domain.active` are set, and the
//!   password has not expired by PostfixAdmin's own rule ([`store`]).
//! - `query=`: one SELECT of the admin's for schemas that share PostfixAdmin's hash formats
//!   but not its tables (iRedMail, ViMbAdmin); its only input is the login name.

pub mod scheme;
pub mod store;

use super::{Answer, Backend};
use crate::options::Options;
use crate::secret::Secret;
use crate::verdict::Verdict;
use scheme::{Outcome, WeakSchemes};
use std::cell::RefCell;

/// What the store knows about one mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    /// The stored password value, as PostfixAdmin wrote it.
    pub password: Secret,
    /// `mailbox.active`.
    pub active: bool,
    /// `domain.active` of the mailbox's domain (false when the domain row is missing).
    pub domain_active: bool,
    /// The password expired by PostfixAdmin's rule (only when the domain sets an expiry).
    pub expired: bool,
}

/// Where mailboxes come from: the database, or in unit tests a table in memory.
pub trait MailboxStore {
    /// The mailbox of this login, `None` if there is none. Errors are verdicts
    /// (`Unavailable`, `Misconfigured`) the caller passes on.
    fn mailbox(&self, login: &str) -> Result<Option<Mailbox>, Verdict>;
    /// Where the store is, for the log line (never a password).
    fn endpoint(&self) -> Option<String>;
}

pub struct Postfixadmin<'a> {
    store: Box<dyn MailboxStore + 'a>,
    weak: WeakSchemes,
    warnings: RefCell<Vec<String>>,
}

impl<'a> Postfixadmin<'a> {
    pub fn new(opts: &'a Options) -> Self {
        Self::with_store(Box::new(store::Database::new(opts)), opts.weak_schemes)
    }

    pub fn with_store(store: Box<dyn MailboxStore + 'a>, weak: WeakSchemes) -> Self {
        Postfixadmin {
            store,
            weak,
            warnings: RefCell::new(Vec::new()),
        }
    }

    fn answer(&self, verdict: Verdict) -> Answer {
        Answer {
            verdict,
            endpoint: self.store.endpoint(),
        }
    }
}

/// Why an existing mailbox may not be used, if it may not (the password aside).
fn refusal(mailbox: &Mailbox) -> Option<Verdict> {
    if !mailbox.active {
        return Some(Verdict::Disabled(
            "mailbox not active in PostfixAdmin".into(),
        ));
    }
    if !mailbox.domain_active {
        return Some(Verdict::Disabled(
            "the mailbox's domain is not active in PostfixAdmin".into(),
        ));
    }
    None
}

impl Backend for Postfixadmin<'_> {
    fn verify(&self, user: &str, password: &Secret) -> Answer {
        let mailbox = match self.store.mailbox(user) {
            Ok(Some(m)) => m,
            Ok(None) => return self.answer(Verdict::UnknownUser),
            Err(v) => return self.answer(v),
        };
        if let Some(v) = refusal(&mailbox) {
            return self.answer(v);
        }
        let checked = scheme::check(
            mailbox.password.expose(),
            password.expose().as_bytes(),
            self.weak,
        );
        if checked.weak && checked.outcome != Outcome::WeakRefused {
            self.warnings.borrow_mut().push(format!(
                "the password is stored with the weak scheme {} (plaintext or unsalted digest), \
                 checked because weak_schemes=allow: have PostfixAdmin store a salted scheme \
                 (encrypt = 'php_crypt:SHA512' or 'dovecot:ARGON2ID') and reset the password",
                checked.scheme
            ));
        }
        // An expired password still authenticates; the account phase answers
        // PAM_NEW_AUTHTOK_REQD, as pam_unix does.
        self.answer(match checked.outcome {
            Outcome::Match => Verdict::Accepted,
            Outcome::Mismatch => Verdict::Refused,
            Outcome::WeakRefused => Verdict::Unavailable(format!(
                "the password is stored with the weak scheme {} (plaintext or unsalted digest), \
                 which weak_schemes=refuse (the default) does not check: set weak_schemes=allow \
                 to accept it, or have PostfixAdmin store a salted scheme",
                checked.scheme
            )),
            Outcome::Unreadable(why) => Verdict::Unavailable(why),
        })
    }

    fn account(&self, user: &str) -> Option<Answer> {
        let verdict = match self.store.mailbox(user) {
            Ok(Some(m)) => refusal(&m).unwrap_or(if m.expired {
                Verdict::PasswordExpired
            } else {
                Verdict::Accepted
            }),
            Ok(None) => Verdict::UnknownUser,
            Err(v) => v,
        };
        Some(self.answer(verdict))
    }

    fn warnings(&self) -> Vec<String> {
        self.warnings.borrow().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Table(HashMap<&'static str, Mailbox>);

    impl MailboxStore for Table {
        fn mailbox(&self, login: &str) -> Result<Option<Mailbox>, Verdict> {
            if login == "down@example.com" {
                return Err(Verdict::Unavailable("database down".into()));
            }
            Ok(self.0.get(login).cloned())
        }
        fn endpoint(&self) -> Option<String> {
            Some("memory".into())
        }
    }

    // PHP crypt('secret', '$6$saltsalt').
    const HASH: &str = "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1";

    fn mailbox(active: bool, domain_active: bool, expired: bool, password: &str) -> Mailbox {
        Mailbox {
            password: Secret::new(password),
            active,
            domain_active,
            expired,
        }
    }

    fn backend(weak: WeakSchemes) -> Postfixadmin<'static> {
        let mut t = HashMap::new();
        t.insert("ok@example.com", mailbox(true, true, false, HASH));
        t.insert("off@example.com", mailbox(false, true, false, HASH));
        t.insert("dom@example.com", mailbox(true, false, false, HASH));
        t.insert("exp@example.com", mailbox(true, true, true, HASH));
        t.insert(
            "plain@example.com",
            mailbox(true, true, false, "{PLAIN}secret"),
        );
        t.insert(
            "odd@example.com",
            mailbox(true, true, false, "{SCRAM-SHA-256}xyz"),
        );
        Postfixadmin::with_store(Box::new(Table(t)), weak)
    }

    fn verdict_of(b: &Postfixadmin, user: &str, pw: &str) -> Verdict {
        b.verify(user, &Secret::new(pw)).verdict
    }

    #[test]
    fn auth_rules() {
        let b = backend(WeakSchemes::Refuse);
        assert_eq!(
            verdict_of(&b, "ok@example.com", "secret"),
            Verdict::Accepted
        );
        assert_eq!(verdict_of(&b, "ok@example.com", "wrong"), Verdict::Refused);
        assert_eq!(
            verdict_of(&b, "nobody@example.com", "secret"),
            Verdict::UnknownUser
        );
        assert!(matches!(
            verdict_of(&b, "off@example.com", "secret"),
            Verdict::Disabled(_)
        ));
        assert!(matches!(
            verdict_of(&b, "dom@example.com", "secret"),
            Verdict::Disabled(_)
        ));
        // Expired: the password is still right; the account phase says so.
        assert_eq!(
            verdict_of(&b, "exp@example.com", "secret"),
            Verdict::Accepted
        );
        assert!(matches!(
            verdict_of(&b, "down@example.com", "secret"),
            Verdict::Unavailable(_)
        ));
        match verdict_of(&b, "odd@example.com", "secret") {
            Verdict::Unavailable(why) => {
                assert!(why.contains("SCRAM-SHA-256") && !why.contains("xyz"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn weak_schemes_are_gated_and_logged() {
        let strict = backend(WeakSchemes::Refuse);
        match verdict_of(&strict, "plain@example.com", "secret") {
            Verdict::Unavailable(why) => assert!(why.contains("weak_schemes=allow"), "{why}"),
            other => panic!("{other:?}"),
        }
        let lenient = backend(WeakSchemes::Allow);
        assert_eq!(
            verdict_of(&lenient, "plain@example.com", "secret"),
            Verdict::Accepted
        );
        let warnings = lenient.warnings();
        assert!(
            warnings.iter().any(|w| w.contains("weak scheme {PLAIN}")),
            "{warnings:?}"
        );
        assert!(
            !warnings.iter().any(|w| w.contains("secret")),
            "{warnings:?}"
        );
    }

    #[test]
    fn account_rules() {
        let b = backend(WeakSchemes::Refuse);
        let account = |u: &str| b.account(u).map(|a| a.verdict);
        assert_eq!(account("ok@example.com"), Some(Verdict::Accepted));
        assert_eq!(account("exp@example.com"), Some(Verdict::PasswordExpired));
        assert_eq!(account("nobody@example.com"), Some(Verdict::UnknownUser));
        assert!(matches!(
            account("off@example.com"),
            Some(Verdict::Disabled(_))
        ));
        assert!(matches!(
            account("dom@example.com"),
            Some(Verdict::Disabled(_))
        ));
        assert!(matches!(
            account("down@example.com"),
            Some(Verdict::Unavailable(_))
        ));
    }
}
