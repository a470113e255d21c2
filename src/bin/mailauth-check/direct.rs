//! `mailauth-check [key=value ...] USER`: the module's own code (`core`) run on one module
//! line, with the terminal standing in for the PAM handle. Its log lines are printed exactly
//! as the module would send them to syslog.

use crate::outcome::{self, Phase};
use crate::terminal::{self, Echo};
use pam_mailauth::pam::{printable, Host, Level};
use pam_mailauth::secret::Secret;
use pamsm::PamError;
use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::time::Instant;

/// The PAM handle of a one-line stack run from the terminal.
pub struct TerminalHost {
    service: String,
    user: String,
    rhost: Option<String>,
    phase: Cell<Phase>,
    /// Read once, at the module's first request, and wiped on drop.
    password: RefCell<Option<Secret>>,
    authenticated: RefCell<Option<String>>,
}

impl TerminalHost {
    pub fn new(service: &str, user: &str, rhost: Option<String>) -> TerminalHost {
        TerminalHost {
            service: service.into(),
            user: user.into(),
            rhost,
            phase: Cell::new(Phase::Auth),
            password: RefCell::new(None),
            authenticated: RefCell::new(None),
        }
    }

    /// The password, asked for once whichever way the module wants it.
    fn password(&self) -> Result<Secret, PamError> {
        if let Some(p) = self.password.borrow().as_ref() {
            return Ok(p.clone());
        }
        let bytes = terminal::ask("Password: ", Echo::Off).map_err(|e| {
            eprintln!("mailauth-check: cannot read the password: {e}");
            PamError::CONV_ERR
        })?;
        // The module itself refuses passwords that are not UTF-8 (every backend speaks it).
        let text = std::str::from_utf8(&bytes).map_err(|_| {
            self.log(
                Level::Notice,
                "auth: the password typed is not UTF-8; refused",
            );
            PamError::AUTH_ERR
        })?;
        let secret = Secret::new(text);
        *self.password.borrow_mut() = Some(secret.clone());
        Ok(secret)
    }
}

impl Host for TerminalHost {
    fn service(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.service)
    }

    fn user(&self) -> Result<String, PamError> {
        Ok(self.user.clone())
    }

    fn rhost(&self) -> Option<String> {
        self.rhost.clone()
    }

    /// There is no earlier module here: the password typed stands for the one it would have
    /// obtained, so `use_first_pass` and `try_first_pass` lines can be checked as written.
    fn stacked_password(&self) -> Result<Option<Secret>, PamError> {
        self.password().map(Some)
    }

    fn prompt_password(&self) -> Result<Secret, PamError> {
        self.password()
    }

    fn remember_authenticated(&self, user: &str) {
        *self.authenticated.borrow_mut() = Some(user.into());
    }

    fn authenticated_user(&self) -> Option<String> {
        self.authenticated.borrow().clone()
    }

    /// The line the module would send to syslog, with pam_syslog's prefix.
    fn log(&self, _level: Level, message: &str) {
        eprintln!(
            "pam_mailauth({}:{}): {}",
            self.service,
            self.phase.get().word(),
            printable(message)
        );
    }

    /// The delay is libpam's to apply to a failing stack; a check from the terminal need not
    /// wait for it.
    fn fail_delay(&self, _micros: u32) {}
}

/// Runs auth then, after a success, account (as saslauthd and Apache do), or account alone.
/// Returns the exit status.
pub fn run(args: &[String], user: &str, rhost: Option<String>, account_only: bool) -> u8 {
    let host = TerminalHost::new("mailauth-check", user, rhost);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let args = args.as_slice();
    let mut codes = Vec::new();
    if !account_only {
        host.phase.set(Phase::Auth);
        let started = Instant::now();
        let code = pam_mailauth::core::authenticate(&host, args) as i32;
        outcome::print(Phase::Auth, code, started.elapsed());
        codes.push(code);
        if code != 0 {
            return outcome::overall(&codes);
        }
    }
    host.phase.set(Phase::Account);
    let started = Instant::now();
    let code = pam_mailauth::core::account(&host, args) as i32;
    outcome::print(Phase::Account, code, started.elapsed());
    codes.push(code);
    outcome::overall(&codes)
}
