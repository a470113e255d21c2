//! The backends: one file each, holding that mail system's whole protocol.

use crate::options::{BackendKind, Options};
use crate::secret::Secret;
use crate::verdict::Verdict;

pub mod axigen;
mod confirmed;
pub mod james;
pub mod kopano;
pub mod mailstore;
pub mod postfixadmin;
pub mod scim;

/// What every backend answers. Implementations never choose PAM codes; they say what the
/// mail system said (see `Verdict`).
pub trait Backend {
    /// Checks a (non-empty) password for an already-mapped user name.
    fn verify(&self, user: &str, password: &Secret) -> Answer;

    /// Why this backend cannot check passwords at all (an account-only API), if so. An `auth`
    /// line for it is a configuration error, reported before anyone is asked for a password.
    fn cannot_verify(&self) -> Option<&'static str> {
        None
    }

    /// Checks the account without a password; `None` when this backend cannot.
    fn account(&self, _user: &str) -> Option<Answer> {
        None
    }

    /// Things that went wrong without changing the verdict (say, a WebMail session the mail
    /// server was asked to close and did not), for the core to log as warnings after
    /// `verify` or `account`. Never holds a secret.
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

/// A verdict and, for the log line, which endpoint gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub verdict: Verdict,
    pub endpoint: Option<String>,
}

impl From<Verdict> for Answer {
    fn from(verdict: Verdict) -> Self {
        Answer {
            verdict,
            endpoint: None,
        }
    }
}

/// The backend a module line asked for.
pub fn for_options(opts: &Options) -> Box<dyn Backend + '_> {
    match opts.backend {
        BackendKind::Mailstore => Box::new(mailstore::Mailstore::new(opts)),
        BackendKind::Axigen => Box::new(axigen::Axigen::new(opts)),
        BackendKind::Kopano => Box::new(kopano::Kopano::new(opts)),
        BackendKind::James => Box::new(james::James::new(opts)),
        BackendKind::Scim => Box::new(scim::Scim::new(opts)),
        BackendKind::Postfixadmin => Box::new(postfixadmin::Postfixadmin::new(opts)),
    }
}
