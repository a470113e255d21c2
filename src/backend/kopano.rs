//! backend=kopano: the pam_mapi replacement (protocols.md, "Kopano / Zarafa"; seed 004).
//!
//! Exactly one source per module line, each in its own file:
//! - `dsn=` ([`db`]): the DB user plugin's tables in MySQL/MariaDB, read with parameterized
//!   queries; the salted MD5 ([`hash`]) checked here.
//! - `file=` ([`file`]): an exported copy of the same hashes, `login:stored-hash` per line.
//! - `url=` / `socket=` ([`soap`]): kopano-server's own SOAP `logon`, for deployments whose
//!   users live in LDAP or elsewhere.
//!
//! The store-backed sources (db, file) can tell an unknown user from a wrong password and can
//! answer the account phase without a password; the SOAP logon can do neither.
//!
//! The stores only mirror the DB plugin's password column, which is what kopano-server checks
//! only with `auth_method = plugin` (its default). With `auth_method = pam` or `kerberos` the
//! column may be stale or empty, and a hosted server (`loginname_format` with a company)
//! splits the login before its lookup. So a user row without any password is made visible
//! (a warning in both phases, naming `auth_method`), and a password stored encrypted with
//! the server's key (`{1}:...`, `{2}:...`) is "unavailable", never a silent refusal.

pub mod db;
pub mod file;
pub mod hash;
pub mod soap;

use super::{Answer, Backend};
use crate::options::Options;
use crate::secret::Secret;
use crate::verdict::Verdict;
use std::cell::RefCell;

/// `objectclass` of an active user (ACTIVE_USER, 0x10001). Active-ness IS the object class.
pub const ACTIVE_USER: u32 = 0x0001_0001;

/// What a store (database or hash file) knows about one login.
#[derive(Debug, Clone)]
pub struct Record {
    /// The object class; only [`ACTIVE_USER`] may log in.
    pub object_class: u32,
    /// The stored salted hash, if the user has one.
    pub hash: Option<Secret>,
    /// The user's explicitly enabled features (PR_EC_ENABLED_FEATURES, lower-cased).
    pub enabled: Vec<String>,
    /// The user's explicitly disabled features (PR_EC_DISABLED_FEATURES, lower-cased).
    pub disabled: Vec<String>,
}

/// Whether any of the `required` features is on for a user: Kopano's default set (every
/// feature except `default_disabled`), then the user's enabled list adds, the disabled list
/// removes. No `required` feature means no feature check.
pub fn feature_allowed(
    required: &[String],
    default_disabled: &[String],
    enabled: &[String],
    disabled: &[String],
) -> bool {
    required.is_empty()
        || required.iter().any(|f| {
            let mut on = !default_disabled.contains(f);
            if enabled.contains(f) {
                on = true;
            }
            if disabled.contains(f) {
                on = false;
            }
            on
        })
}

/// The warning for a user row that has no password at all.
pub const NO_PASSWORD_STORED: &str = "no password stored for this user: does kopano-server use \
     auth_method=plugin? (with auth_method=pam or kerberos, or users outside the DB plugin, \
     check passwords with url= or socket=, kopano-server's own logon)";

/// Whether a stored password is in kopano-server's encrypted form (`{1}:...`, `{2}:...`),
/// which only the server's key can turn back into the salted hash.
pub fn is_encrypted(stored: &str) -> bool {
    stored.starts_with("{1}:") || stored.starts_with("{2}:")
}

pub struct Kopano<'a> {
    opts: &'a Options,
    /// Reported by `warnings()` after the verdict.
    warnings: RefCell<Vec<String>>,
}

impl<'a> Kopano<'a> {
    pub fn new(opts: &'a Options) -> Self {
        Kopano {
            opts,
            warnings: RefCell::new(Vec::new()),
        }
    }

    fn warn(&self, text: &str) {
        self.warnings.borrow_mut().push(text.to_string());
    }

    /// The verdict on a password for a user who may log in.
    fn check_password(&self, record: &Record, password: &Secret) -> Verdict {
        let Some(stored) = &record.hash else {
            // kopano-server with auth_method=plugin would refuse too; say why.
            self.warn(NO_PASSWORD_STORED);
            return Verdict::WrongPassword;
        };
        if is_encrypted(stored.expose()) {
            return Verdict::Unavailable(
                "the stored password is encrypted with kopano-server's key ({1}: or {2}: \
                 form) and cannot be checked without it: use url= or socket= \
                 (kopano-server's own logon) for these users"
                    .into(),
            );
        }
        // The store holds this user's row: a mismatch is a wrong password for a known user.
        if hash::check(stored.expose().as_bytes(), password.expose().as_bytes()) {
            Verdict::Accepted
        } else {
            Verdict::WrongPassword
        }
    }

    /// The store's record for this login, and which store answered (for the log line).
    fn lookup(&self, user: &str) -> Lookup {
        let want_features = !self.opts.features.is_empty();
        if let Some(dsn) = &self.opts.dsn {
            let endpoint = db::endpoint(dsn);
            return Lookup {
                result: db::lookup(self.opts, dsn, user, want_features),
                endpoint,
            };
        }
        if let Some(path) = &self.opts.file {
            return Lookup {
                result: file::lookup(path, user),
                endpoint: Some(path.display().to_string()),
            };
        }
        Lookup {
            result: Err(Verdict::Misconfigured(
                "backend=kopano needs exactly one of dsn=, file=, url= or socket=".into(),
            )),
            endpoint: None,
        }
    }

    /// Why an existing user may not log in, if they may not.
    fn refusal(&self, record: &Record) -> Option<Verdict> {
        if record.object_class != ACTIVE_USER {
            return Some(Verdict::Disabled(format!(
                "not an active user (object class 0x{:x})",
                record.object_class
            )));
        }
        if !feature_allowed(
            &self.opts.features,
            &self.opts.disabled_features,
            &record.enabled,
            &record.disabled,
        ) {
            return Some(Verdict::Disabled(format!(
                "Kopano feature {} not enabled for this user",
                self.opts.features.join("|")
            )));
        }
        None
    }

    fn uses_soap(&self) -> bool {
        !self.opts.urls.is_empty() || self.opts.socket.is_some()
    }
}

/// A store lookup and the store that answered.
struct Lookup {
    result: Result<Option<Record>, Verdict>,
    endpoint: Option<String>,
}

impl Lookup {
    fn answer(&self, verdict: Verdict) -> Answer {
        Answer {
            verdict,
            endpoint: self.endpoint.clone(),
        }
    }
}

impl Backend for Kopano<'_> {
    fn verify(&self, user: &str, password: &Secret) -> Answer {
        if self.uses_soap() {
            return soap::logon(self.opts, user, password);
        }
        let found = self.lookup(user);
        let record = match &found.result {
            Ok(Some(record)) => record,
            Ok(None) => return found.answer(Verdict::UnknownUser),
            Err(verdict) => return found.answer(verdict.clone()),
        };
        if let Some(verdict) = self.refusal(record) {
            return found.answer(verdict);
        }
        found.answer(self.check_password(record, password))
    }

    fn account(&self, user: &str) -> Option<Answer> {
        if self.uses_soap() {
            // The SOAP logon needs the password; nothing to ask without it.
            return None;
        }
        let found = self.lookup(user);
        let verdict = match &found.result {
            Ok(Some(record)) => {
                let refusal = self.refusal(record);
                if refusal.is_none() && record.hash.is_none() {
                    // The account is fine as Kopano keeps it, but a password check against
                    // this store can never succeed: make that visible before anyone wonders.
                    self.warn(NO_PASSWORD_STORED);
                }
                refusal.unwrap_or(Verdict::Accepted)
            }
            Ok(None) => Verdict::UnknownUser,
            Err(verdict) => verdict.clone(),
        };
        Some(found.answer(verdict))
    }

    fn warnings(&self) -> Vec<String> {
        self.warnings.borrow().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn kopano_feature_defaults() {
        let defaults = v(&["imap", "pop3"]);
        // Off by default, on when enabled, off when explicitly disabled.
        assert!(!feature_allowed(&v(&["imap"]), &defaults, &[], &[]));
        assert!(feature_allowed(
            &v(&["imap"]),
            &defaults,
            &v(&["imap"]),
            &[]
        ));
        assert!(!feature_allowed(
            &v(&["imap"]),
            &defaults,
            &v(&["imap"]),
            &v(&["imap"])
        ));
        // On by default (not in the default-disabled list), unless disabled.
        assert!(feature_allowed(&v(&["mobile"]), &defaults, &[], &[]));
        assert!(!feature_allowed(
            &v(&["mobile"]),
            &defaults,
            &[],
            &v(&["mobile"])
        ));
        // Any of the list.
        assert!(feature_allowed(
            &v(&["imap", "pop3"]),
            &defaults,
            &v(&["pop3"]),
            &[]
        ));
        // No requirement: always allowed.
        assert!(feature_allowed(&[], &defaults, &[], &v(&["imap"])));
    }
}
