//! What one PAM phase answered, in the words of the module's log lines, and the exit status a
//! script can test: 0 success, 1 refused or unknown user, 2 backend unavailable,
//! 3 configuration error.

use std::time::Duration;

pub const SUCCESS: u8 = 0;
pub const REFUSED: u8 = 1;
pub const UNAVAILABLE: u8 = 2;
pub const CONFIGURATION: u8 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Auth,
    Account,
}

impl Phase {
    /// As libpam names the phase in `pam_syslog` prefixes.
    pub fn word(self) -> &'static str {
        match self {
            Phase::Auth => "auth",
            Phase::Account => "account",
        }
    }
}

/// Linux-PAM's return codes (security/_pam_types.h) by name.
const NAMES: &[(i32, &str)] = &[
    (0, "PAM_SUCCESS"),
    (1, "PAM_OPEN_ERR"),
    (2, "PAM_SYMBOL_ERR"),
    (3, "PAM_SERVICE_ERR"),
    (4, "PAM_SYSTEM_ERR"),
    (5, "PAM_BUF_ERR"),
    (6, "PAM_PERM_DENIED"),
    (7, "PAM_AUTH_ERR"),
    (8, "PAM_CRED_INSUFFICIENT"),
    (9, "PAM_AUTHINFO_UNAVAIL"),
    (10, "PAM_USER_UNKNOWN"),
    (11, "PAM_MAXTRIES"),
    (12, "PAM_NEW_AUTHTOK_REQD"),
    (13, "PAM_ACCT_EXPIRED"),
    (14, "PAM_SESSION_ERR"),
    (15, "PAM_CRED_UNAVAIL"),
    (16, "PAM_CRED_EXPIRED"),
    (17, "PAM_CRED_ERR"),
    (18, "PAM_NO_MODULE_DATA"),
    (19, "PAM_CONV_ERR"),
    (20, "PAM_AUTHTOK_ERR"),
    (21, "PAM_AUTHTOK_RECOVERY_ERR"),
    (22, "PAM_AUTHTOK_LOCK_BUSY"),
    (23, "PAM_AUTHTOK_DISABLE_AGING"),
    (24, "PAM_TRY_AGAIN"),
    (25, "PAM_IGNORE"),
    (26, "PAM_ABORT"),
    (27, "PAM_AUTHTOK_EXPIRED"),
    (28, "PAM_MODULE_UNKNOWN"),
    (29, "PAM_BAD_ITEM"),
    (30, "PAM_CONV_AGAIN"),
    (31, "PAM_INCOMPLETE"),
];

pub fn name(code: i32) -> String {
    NAMES
        .iter()
        .find(|(c, _)| *c == code)
        .map_or_else(|| format!("PAM code {code}"), |(_, n)| n.to_string())
}

/// The verdict in the words the module's syslog lines use (verdict.rs' `Verdict::word`).
pub fn words(code: i32, phase: Phase) -> &'static str {
    match (code, phase) {
        (0, _) => "accepted",
        (7, _) => "refused",
        (10, _) => "unknown user",
        (6, _) => "account disabled",
        (9, _) => "backend unavailable",
        (3, _) => "configuration error",
        (19, _) => "no password obtainable",
        (12, _) => "password expired: a new one is required",
        (13, _) => "account expired",
        (11, _) => "too many attempts",
        (25, Phase::Account) => {
            "ignored: this module did not check the account (see the log line \
                                   above, if any) and left the decision to the rest of the stack"
        }
        (25, _) => {
            "ignored: the module stepped aside and left the decision to the rest of the stack"
        }
        (1 | 2 | 28, _) => "configuration error: a module of the stack could not be loaded",
        (4, _) => "system error in a module of the stack",
        _ => "failed",
    }
}

/// The exit status for one phase's code.
pub fn exit_status(code: i32) -> u8 {
    match code {
        0 => SUCCESS,
        9 => UNAVAILABLE,
        // Service error, module not loadable, symbol missing, system error, buffer, abort:
        // all say the stack or its configuration cannot work as written.
        3 | 1 | 2 | 4 | 5 | 26 | 28 => CONFIGURATION,
        _ => REFUSED,
    }
}

/// One summary line on standard output.
pub fn print(phase: Phase, code: i32, took: Duration) {
    println!(
        "{}: {} ({}), latency {} ms",
        phase.word(),
        words(code, phase),
        name(code),
        took.as_millis()
    );
}

/// The results of the phases that ran, in order, decide the exit status: the first phase that
/// did not succeed.
pub fn overall(codes: &[i32]) -> u8 {
    codes
        .iter()
        .map(|&c| exit_status(c))
        .find(|&s| s != SUCCESS)
        .unwrap_or(SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_statuses_follow_the_documented_table() {
        assert_eq!(exit_status(0), 0);
        assert_eq!(exit_status(7), 1);
        assert_eq!(exit_status(10), 1);
        assert_eq!(exit_status(6), 1);
        assert_eq!(exit_status(25), 1);
        assert_eq!(exit_status(9), 2);
        assert_eq!(exit_status(3), 3);
        assert_eq!(exit_status(28), 3);
        assert_eq!(overall(&[0, 9]), 2);
        assert_eq!(overall(&[7]), 1);
        assert_eq!(overall(&[0, 0]), 0);
    }

    #[test]
    fn names_and_words() {
        assert_eq!(name(9), "PAM_AUTHINFO_UNAVAIL");
        assert_eq!(name(99), "PAM code 99");
        assert_eq!(words(9, Phase::Auth), "backend unavailable");
        assert_eq!(words(0, Phase::Account), "accepted");
    }
}
