//! The PAM flows: authenticate, account, setcred. PAM semantics live here; protocols live in
//! the backends; return codes come only from `Verdict::pam_code`.

use crate::backend::{self, Answer};
use crate::options::{Options, PasswordSource};
use crate::pam::{Host, Level};
use crate::secret::Secret;
use crate::verdict::{Phase, Verdict};
use pamsm::PamError;
use std::time::{Duration, Instant};

/// `pam_sm_authenticate`.
pub fn authenticate(host: &dyn Host, args: &[String]) -> PamError {
    let opts = match configure(host, args) {
        Ok(o) => o,
        Err(code) => return code,
    };
    if opts.fail_delay_ms > 0 {
        // Like pam_unix: libpam applies the delay only if the whole stack fails.
        host.fail_delay(opts.fail_delay_ms.saturating_mul(1000).min(u32::MAX as u64) as u32);
    }
    #[cfg(feature = "fault-injection")]
    if opts.inject_panic {
        #[allow(clippy::panic)]
        {
            panic!("fault injection: inject_panic");
        }
    }
    let user = match host.user() {
        Ok(u) if !u.is_empty() => u,
        Ok(_) | Err(_) => {
            host.log(Level::Notice, "auth: no user name obtainable");
            return PamError::USER_UNKNOWN;
        }
    };
    let password = match obtain_password(host, &opts) {
        Ok(p) => p,
        Err(code) => {
            host.log(
                Level::Notice,
                &format!("auth: no password obtainable for user '{user}' ({code:?})"),
            );
            return code;
        }
    };
    if password.is_empty() {
        // An LDAP-style "unauthenticated bind" trap: some backends treat an empty password as
        // anonymous success. It never leaves the module.
        host.log(
            Level::Notice,
            &format!("auth: refused empty password for user '{user}' without asking the backend"),
        );
        return PamError::AUTH_ERR;
    }
    let mapped = opts.mapping.apply(&user);
    if opts.debug {
        host.log(
            Level::Debug,
            &format!(
                "auth: asking backend={} for user '{mapped}' (password: {:?}, {} url(s), timeout {:?})",
                opts.backend.name(),
                opts.password_source,
                opts.urls.len(),
                opts.timeout
            ),
        );
    }
    let started = Instant::now();
    let backend = backend::for_options(&opts);
    let answer = backend.verify(&mapped, &password);
    drop(password);
    for warning in backend.warnings() {
        host.log(
            Level::Warning,
            &format!(
                "auth: user '{user}' backend={}: {warning}",
                opts.backend.name()
            ),
        );
    }
    report(
        host,
        &opts,
        Phase::Auth,
        &user,
        &mapped,
        &answer,
        started.elapsed(),
    );
    if answer.verdict == Verdict::Accepted {
        host.remember_authenticated(&user);
    }
    answer.verdict.pam_code(Phase::Auth, opts.leniency)
}

/// `pam_sm_acct_mgmt`.
pub fn account(host: &dyn Host, args: &[String]) -> PamError {
    let opts = match configure(host, args) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let user = match host.user() {
        Ok(u) if !u.is_empty() => u,
        _ => return PamError::USER_UNKNOWN,
    };
    let mapped = opts.mapping.apply(&user);
    let started = Instant::now();
    let checked = backend::for_options(&opts).account(&mapped);
    match checked {
        Some(answer) => {
            report(
                host,
                &opts,
                Phase::Account,
                &user,
                &mapped,
                &answer,
                started.elapsed(),
            );
            answer.verdict.pam_code(Phase::Account, opts.leniency)
        }
        None => authenticated_here(host, &user),
    }
}

/// `pam_sm_setcred`: there are no credentials to set; say whether we took part.
pub fn setcred(host: &dyn Host) -> PamError {
    match host.user() {
        Ok(user) => authenticated_here(host, &user),
        Err(_) => PamError::IGNORE,
    }
}

/// PAM_SUCCESS if this module authenticated this user in this handle, else PAM_IGNORE.
fn authenticated_here(host: &dyn Host, user: &str) -> PamError {
    match host.authenticated_user() {
        Some(u) if u == user => PamError::SUCCESS,
        _ => PamError::IGNORE,
    }
}

fn configure(host: &dyn Host, args: &[String]) -> Result<Options, PamError> {
    Options::parse(args).map_err(|e| {
        host.log(Level::Error, &format!("configuration error: {e}"));
        PamError::SERVICE_ERR
    })
}

fn obtain_password(host: &dyn Host, opts: &Options) -> Result<Secret, PamError> {
    match opts.password_source {
        PasswordSource::UseFirstPass => host.stacked_password().ok_or(PamError::AUTH_ERR),
        PasswordSource::TryFirstPass => match host.stacked_password() {
            Some(p) => Ok(p),
            None => host.prompt_password(),
        },
        PasswordSource::Prompt => host.prompt_password(),
    }
}

/// One syslog line per decision: what, who, from where, which backend and server, how long.
fn report(
    host: &dyn Host,
    opts: &Options,
    phase: Phase,
    user: &str,
    mapped: &str,
    answer: &Answer,
    took: Duration,
) {
    let verdict = &answer.verdict;
    let phase_word = match phase {
        Phase::Auth => "auth",
        Phase::Account => "account",
    };
    // People type passwords into the user prompt: names of unknown users only with debug.
    let who = if *verdict == Verdict::UnknownUser && !opts.debug {
        "(unknown; name logged with debug)".to_string()
    } else if mapped != user {
        format!("'{user}' (as '{mapped}')")
    } else {
        format!("'{user}'")
    };
    let mut line = format!("{phase_word}: {} for user {who}", verdict.word());
    if let Some(rhost) = host.rhost() {
        line.push_str(&format!(" rhost={rhost}"));
    }
    line.push_str(&format!(" backend={}", opts.backend.name()));
    if let Some(endpoint) = &answer.endpoint {
        line.push_str(&format!(" server={endpoint}"));
    }
    line.push_str(&format!(" latency={}ms", took.as_millis()));
    if let Some(detail) = verdict.detail() {
        line.push_str(&format!(": {detail}"));
    }
    let level = match verdict {
        Verdict::Accepted if opts.quiet => return,
        Verdict::Accepted => Level::Info,
        Verdict::Refused | Verdict::UnknownUser | Verdict::Disabled(_) => Level::Notice,
        Verdict::Unavailable(_) | Verdict::Misconfigured(_) => Level::Error,
    };
    host.log(level, &line);
}
