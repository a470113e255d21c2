//! What a backend concluded, and the ONE place that turns it into a PAM return code
//! (the table in spec.md, "Return codes").

use pamsm::PamError;

/// The answer to "is this password / account good?". Every backend and every shared layer
/// speaks only this; nothing else in the module chooses PAM codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Right password, or account fine.
    Accepted,
    /// No, from a backend that cannot tell a wrong password from an unknown user.
    Refused,
    /// Wrong password for a user the backend confirmed exists (it can tell unknown users).
    WrongPassword,
    /// The backend says the user does not exist.
    UnknownUser,
    /// The account exists but may not log in: disabled, not active, feature not enabled.
    Disabled(String),
    /// The account may log in once the password is changed: it expired (account phase only;
    /// the password itself still authenticates, as with pam_unix).
    PasswordExpired,
    /// No definite answer: unreachable, timeout, 5xx, garbage, our own credentials rejected.
    Unavailable(String),
    /// The configuration cannot work; the text tells the admin what to fix.
    Misconfigured(String),
    /// Not asked: too many failed checks of this user lately (`deny=`); the text says for how
    /// long (src/throttle.rs).
    Throttled(String),
}

/// Which PAM phase is asking: the same verdict maps differently in each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Auth,
    Account,
}

/// Stacking switches that turn some failures into PAM_IGNORE.
#[derive(Debug, Clone, Copy, Default)]
pub struct Leniency {
    pub ignore_unknown_user: bool,
    pub ignore_authinfo_unavail: bool,
}

impl Verdict {
    pub fn pam_code(&self, phase: Phase, leniency: Leniency) -> PamError {
        match (self, phase) {
            (Verdict::Accepted, _) => PamError::SUCCESS,
            (Verdict::Refused | Verdict::WrongPassword, _) => PamError::AUTH_ERR,
            (Verdict::UnknownUser, Phase::Auth) if leniency.ignore_unknown_user => PamError::IGNORE,
            (Verdict::UnknownUser, _) => PamError::USER_UNKNOWN,
            (Verdict::Disabled(_), Phase::Auth) => PamError::AUTH_ERR,
            (Verdict::Disabled(_), Phase::Account) => PamError::PERM_DENIED,
            // Never produced by a password check; if one did, it is no success.
            (Verdict::PasswordExpired, Phase::Auth) => PamError::AUTH_ERR,
            (Verdict::PasswordExpired, Phase::Account) => PamError::NEW_AUTHTOK_REQD,
            (Verdict::Unavailable(_), _) if leniency.ignore_authinfo_unavail => PamError::IGNORE,
            (Verdict::Unavailable(_), _) => PamError::AUTHINFO_UNAVAIL,
            (Verdict::Misconfigured(_), _) => PamError::SERVICE_ERR,
            (Verdict::Throttled(_), _) => PamError::AUTH_ERR,
        }
    }

    /// A short word for the log line.
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Accepted => "accepted",
            Verdict::Refused | Verdict::WrongPassword => "refused",
            Verdict::UnknownUser => "unknown user",
            Verdict::Disabled(_) => "account disabled",
            Verdict::PasswordExpired => "password expired",
            Verdict::Unavailable(_) => "backend unavailable",
            Verdict::Misconfigured(_) => "configuration error",
            Verdict::Throttled(_) => "throttled",
        }
    }

    /// Whether the backend confirmed that the user exists. Only then may a log line name the
    /// user without `debug`: people type passwords into the user prompt (spec.md).
    pub fn confirms_user(&self) -> bool {
        match self {
            Verdict::Accepted
            | Verdict::WrongPassword
            | Verdict::Disabled(_)
            | Verdict::PasswordExpired => true,
            // Throttled: the backend was not asked, so it confirmed nothing.
            Verdict::Refused
            | Verdict::UnknownUser
            | Verdict::Throttled(_)
            | Verdict::Unavailable(_)
            | Verdict::Misconfigured(_) => false,
        }
    }

    pub fn detail(&self) -> Option<&str> {
        match self {
            Verdict::Disabled(d)
            | Verdict::Unavailable(d)
            | Verdict::Misconfigured(d)
            | Verdict::Throttled(d) => Some(d),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_the_spec() {
        let strict = Leniency::default();
        let lenient = Leniency {
            ignore_unknown_user: true,
            ignore_authinfo_unavail: true,
        };
        use Phase::*;
        assert_eq!(Verdict::Accepted.pam_code(Auth, strict), PamError::SUCCESS);
        assert_eq!(Verdict::Refused.pam_code(Auth, lenient), PamError::AUTH_ERR);
        assert_eq!(
            Verdict::WrongPassword.pam_code(Auth, lenient),
            PamError::AUTH_ERR
        );
        assert_eq!(
            Verdict::UnknownUser.pam_code(Auth, strict),
            PamError::USER_UNKNOWN
        );
        assert_eq!(
            Verdict::UnknownUser.pam_code(Auth, lenient),
            PamError::IGNORE
        );
        assert_eq!(
            Verdict::UnknownUser.pam_code(Account, lenient),
            PamError::USER_UNKNOWN
        );
        assert_eq!(
            Verdict::Disabled("x".into()).pam_code(Auth, strict),
            PamError::AUTH_ERR
        );
        assert_eq!(
            Verdict::Disabled("x".into()).pam_code(Account, strict),
            PamError::PERM_DENIED
        );
        assert_eq!(
            Verdict::PasswordExpired.pam_code(Account, lenient),
            PamError::NEW_AUTHTOK_REQD
        );
        assert_eq!(
            Verdict::PasswordExpired.pam_code(Auth, lenient),
            PamError::AUTH_ERR
        );
        assert_eq!(
            Verdict::Unavailable("x".into()).pam_code(Auth, strict),
            PamError::AUTHINFO_UNAVAIL
        );
        assert_eq!(
            Verdict::Unavailable("x".into()).pam_code(Account, lenient),
            PamError::IGNORE
        );
        assert_eq!(
            Verdict::Misconfigured("x".into()).pam_code(Auth, lenient),
            PamError::SERVICE_ERR
        );
        assert_eq!(
            Verdict::Throttled("x".into()).pam_code(Auth, lenient),
            PamError::AUTH_ERR
        );
    }
}
