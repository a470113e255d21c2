//! The PAM flows: authenticate, account, setcred. PAM semantics live here; protocols live in
//! the backends; return codes come only from `Verdict::pam_code`.

use crate::backend::{self, Answer};
use crate::cache;
use crate::options::{Options, PasswordSource};
use crate::pam::{Host, Level};
use crate::secret::Secret;
use crate::throttle;
use crate::verdict::{Phase, Verdict};
use pamsm::PamError;
use std::sync::Arc;
use std::time::Instant;

/// `pam_sm_authenticate`.
pub fn authenticate(host: &dyn Host, args: &[&str]) -> PamError {
    // The one place that decides what this handle remembers: an earlier success is withdrawn
    // before anything can fail (a configuration error, a panic), and only a success records
    // one again. No failing path can leave an earlier success standing for account/setcred.
    host.forget_authenticated();
    match check_password(host, args) {
        Ok(authenticated) => {
            host.remember_authenticated(&authenticated);
            PamError::SUCCESS
        }
        Err(code) => code,
    }
}

/// The authentication itself: the PAM_USER now authenticated, or the failure's PAM code.
fn check_password(host: &dyn Host, args: &[&str]) -> Result<String, PamError> {
    let opts = configure(host, args)?;
    if opts.fail_delay_ms > 0 {
        // Like pam_unix: libpam applies the delay only if the whole stack fails.
        host.fail_delay(opts.fail_delay_ms.saturating_mul(1000).min(u32::MAX as u64) as u32);
    }
    let backend = backend::for_options(&opts);
    if let Some(why) = backend.cannot_verify() {
        host.log(Level::Error, &format!("configuration error: {why}"));
        return Err(PamError::SERVICE_ERR);
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
        Ok(_) | Err(_) => return Err(nameless(host, &opts, Phase::Auth, NO_USABLE_NAME)),
    };
    let password = match obtain_password(host, &opts) {
        Ok(p) => p,
        Err(code) => {
            host.log(
                Level::Notice,
                &format!(
                    "auth: no password obtainable for user {} ({code:?})",
                    who(&opts, false, &user, &user)
                ),
            );
            return Err(code);
        }
    };
    if password.is_empty() {
        // An LDAP-style "unauthenticated bind" trap: some backends treat an empty password as
        // anonymous success. It never leaves the module.
        host.log(
            Level::Notice,
            &format!(
                "auth: refused empty password for user {} without asking the backend",
                who(&opts, false, &user, &user)
            ),
        );
        return Err(PamError::AUTH_ERR);
    }
    let mapped = opts.mapping.apply(&user);
    if mapped.is_empty() {
        return Err(nameless(host, &opts, Phase::Auth, EMPTY_AFTER_MAPPING));
    }
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
    let answer = cache::check(host, &opts, &mapped, &password, started, || {
        throttle::guard(host, &opts, &mapped, || backend.verify(&mapped, &password))
    });
    drop(password);
    log_warnings(
        host,
        &opts,
        Phase::Auth,
        &backend.warnings(),
        answer.verdict.confirms_user(),
        (&user, &mapped),
    );
    report(host, &opts, Phase::Auth, &user, &mapped, &answer, started);
    if answer.verdict != Verdict::Accepted {
        return Err(answer.verdict.pam_code(Phase::Auth, opts.leniency));
    }
    if opts.set_pam_user && mapped != user {
        // Postfix's sender-login maps and Apache's REMOTE_USER read PAM_USER: make it the
        // identity that was checked, not the one typed.
        host.set_user(&mapped).inspect_err(|code| {
            host.log(
                Level::Error,
                &format!("auth: could not set PAM_USER to the checked name ({code:?}); refused"),
            )
        })?;
        return Ok(mapped.into_owned());
    }
    Ok(user)
}

/// `pam_sm_acct_mgmt`.
pub fn account(host: &dyn Host, args: &[&str]) -> PamError {
    let opts = match configure(host, args) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let user = match host.user() {
        Ok(u) if !u.is_empty() => u,
        Ok(_) | Err(_) => return nameless(host, &opts, Phase::Account, NO_USABLE_NAME),
    };
    let mapped = opts.mapping.apply(&user);
    if mapped.is_empty() {
        return nameless(host, &opts, Phase::Account, EMPTY_AFTER_MAPPING);
    }
    let started = Instant::now();
    let backend = backend::for_options(&opts);
    let checked = backend.account(&mapped);
    // The name typed at the prompt only when the backend confirmed it, as in auth.
    let confirmed = checked
        .as_ref()
        .is_some_and(|answer| answer.verdict.confirms_user());
    log_warnings(
        host,
        &opts,
        Phase::Account,
        &backend.warnings(),
        confirmed,
        (&user, &mapped),
    );
    match checked {
        Some(answer) => {
            report(
                host,
                &opts,
                Phase::Account,
                &user,
                &mapped,
                &answer,
                started,
            );
            answer.verdict.pam_code(Phase::Account, opts.leniency)
        }
        None => authenticated_here(host, &user),
    }
}

const NO_USABLE_NAME: &str = "no user name, or one that is not UTF-8";
const EMPTY_AFTER_MAPPING: &str = "user name is empty after mapping (strip_domain?)";

/// No name any backend could be asked about: none given, one that is not UTF-8 (a Latin-1
/// client), or nothing left after `strip_domain`. An unknown user like any other, with the
/// same leniency (`ignore_unknown_user`), so a local user below still gets their turn.
fn nameless(host: &dyn Host, opts: &Options, phase: Phase, why: &str) -> PamError {
    host.log(Level::Notice, &format!("{why}: unknown user"));
    Verdict::UnknownUser.pam_code(phase, opts.leniency)
}

/// `pam_sm_setcred`: there are no credentials to set; say whether we took part.
pub fn setcred(host: &dyn Host) -> PamError {
    match host.user() {
        Ok(user) => authenticated_here(host, &user),
        Err(_) => PamError::IGNORE,
    }
}

/// PAM_SUCCESS if this module authenticated this user in this handle, else PAM_IGNORE.
/// (A withdrawn success is stored as the empty name, which is nobody.)
fn authenticated_here(host: &dyn Host, user: &str) -> PamError {
    match host.authenticated_user() {
        Some(u) if !u.is_empty() && u == user => PamError::SUCCESS,
        _ => PamError::IGNORE,
    }
}

fn configure(host: &dyn Host, args: &[&str]) -> Result<Arc<Options>, PamError> {
    Options::shared(args).map_err(|e| {
        host.log(Level::Error, &format!("configuration error: {e}"));
        PamError::SERVICE_ERR
    })
}

fn obtain_password(host: &dyn Host, opts: &Options) -> Result<Secret, PamError> {
    match opts.password_source {
        PasswordSource::UseFirstPass => host.stacked_password()?.ok_or(PamError::AUTH_ERR),
        PasswordSource::TryFirstPass => match host.stacked_password()? {
            Some(p) => Ok(p),
            None => host.prompt_password(),
        },
        PasswordSource::Prompt => host.prompt_password(),
    }
}

/// The backend's warnings, one line each, naming the user as [`who`] does (`confirmed`: by
/// the backend; the name typed and the name mapped).
fn log_warnings(
    host: &dyn Host,
    opts: &Options,
    phase: Phase,
    warnings: &[String],
    confirmed: bool,
    (user, mapped): (&str, &str),
) {
    if warnings.is_empty() {
        return;
    }
    let who = who(opts, confirmed, user, mapped);
    let phase = match phase {
        Phase::Auth => "auth",
        Phase::Account => "account",
    };
    for warning in warnings {
        host.log(
            Level::Warning,
            &format!(
                "{phase}: user {who} backend={}: {warning}",
                opts.backend.name()
            ),
        );
    }
}

/// The user as a log line may name them: the one place for the rule of spec.md. People type
/// passwords into the user prompt, so without `debug` a name is logged only once the backend
/// confirmed that user exists (`Verdict::confirms_user`); every other line says why it is
/// left out.
fn who(opts: &Options, confirmed: bool, user: &str, mapped: &str) -> String {
    if !confirmed && !opts.debug {
        "(name not logged: no backend confirmed it; debug logs it)".to_string()
    } else if mapped != user {
        format!("'{user}' (as '{mapped}')")
    } else {
        format!("'{user}'")
    }
}

/// One syslog line per decision: what, who, from where, which backend and server, how long
/// (since `started`; the clock is read only for a line that is written).
fn report(
    host: &dyn Host,
    opts: &Options,
    phase: Phase,
    user: &str,
    mapped: &str,
    answer: &Answer,
    started: Instant,
) {
    let verdict = &answer.verdict;
    // Decided before the line is written: a quiet success writes nothing.
    let level = match verdict {
        Verdict::Accepted if opts.quiet => return,
        Verdict::Accepted => Level::Info,
        Verdict::Refused
        | Verdict::WrongPassword
        | Verdict::UnknownUser
        | Verdict::Disabled(_)
        | Verdict::Throttled(_)
        | Verdict::PasswordExpired => Level::Notice,
        Verdict::Unavailable(_) | Verdict::Misconfigured(_) => Level::Error,
    };
    let phase_word = match phase {
        Phase::Auth => "auth",
        Phase::Account => "account",
    };
    let who = who(opts, verdict.confirms_user(), user, mapped);
    let mut line = format!("{phase_word}: {} for user {who}", verdict.word());
    if let Some(rhost) = host.rhost() {
        line.push_str(&format!(" rhost={rhost}"));
    }
    line.push_str(&format!(" backend={}", opts.backend.name()));
    if let Some(endpoint) = &answer.endpoint {
        line.push_str(&format!(" server={endpoint}"));
    }
    line.push_str(&format!(" latency={}ms", started.elapsed().as_millis()));
    if let Some(detail) = verdict.detail() {
        line.push_str(&format!(": {detail}"));
    }
    host.log(level, &line);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::{Cell, RefCell};

    /// A scripted PAM handle: what the application would provide, and what the module did.
    #[derive(Default)]
    struct FakeHost {
        user: String,
        stacked: Option<&'static str>,
        answer: Option<&'static str>,
        prompts: Cell<usize>,
        logs: RefCell<Vec<(Level, String)>>,
        remembered: RefCell<Option<String>>,
        delay: Cell<u32>,
    }

    impl Host for FakeHost {
        fn service(&self) -> std::borrow::Cow<'_, str> {
            "test".into()
        }
        fn user(&self) -> Result<String, PamError> {
            Ok(self.user.clone())
        }
        fn rhost(&self) -> Option<String> {
            Some("192.0.2.7".into())
        }
        fn stacked_password(&self) -> Result<Option<Secret>, PamError> {
            Ok(self.stacked.map(Secret::new))
        }
        fn prompt_password(&self) -> Result<Secret, PamError> {
            self.prompts.set(self.prompts.get() + 1);
            self.answer.map(Secret::new).ok_or(PamError::CONV_ERR)
        }
        fn remember_authenticated(&self, user: &str) {
            *self.remembered.borrow_mut() = Some(user.into());
        }
        fn authenticated_user(&self) -> Option<String> {
            self.remembered.borrow().clone()
        }
        fn log(&self, level: Level, message: &str) {
            self.logs.borrow_mut().push((level, message.into()));
        }
        fn fail_delay(&self, micros: u32) {
            self.delay.set(micros);
        }
    }

    fn args(s: &str) -> Vec<&str> {
        s.split_whitespace().collect()
    }

    // Port 9 (discard) on loopback: nothing listens, so any backend call is "unavailable".
    const LINE: &str = "backend=mailstore url=http://127.0.0.1:9/ timeout=1";

    #[test]
    fn backend_warnings_name_the_user_only_when_confirmed_in_either_phase() {
        let host = FakeHost::default();
        let Ok(opts) = Options::parse(&args(LINE)) else {
            panic!("LINE parses")
        };
        let typed = "Tr0ub4dor&3";
        for phase in [Phase::Auth, Phase::Account] {
            for confirmed in [false, true] {
                host.logs.borrow_mut().clear();
                let warnings = ["a session was left open".to_string()];
                log_warnings(&host, &opts, phase, &warnings, confirmed, (typed, typed));
                let logs = host.logs.borrow();
                assert_eq!(logs.len(), 1);
                assert_eq!(logs[0].1.contains(typed), confirmed, "{:?}", logs[0]);
            }
        }
    }

    #[test]
    fn empty_password_never_reaches_the_backend() {
        let host = FakeHost {
            user: "alice".into(),
            answer: Some(""),
            ..Default::default()
        };
        assert_eq!(authenticate(&host, &args(LINE)), PamError::AUTH_ERR);
        assert!(host
            .logs
            .borrow()
            .iter()
            .any(|(_, m)| m.contains("empty password")));
        assert!(!host
            .logs
            .borrow()
            .iter()
            .any(|(_, m)| m.contains("backend unavailable")));
    }

    #[test]
    fn password_sources() {
        let host = FakeHost {
            user: "a".into(),
            answer: Some("x"),
            ..Default::default()
        };
        assert_eq!(
            authenticate(&host, &args(&format!("{LINE} use_first_pass"))),
            PamError::AUTH_ERR
        );
        assert_eq!(host.prompts.get(), 0);
        let host = FakeHost {
            user: "a".into(),
            stacked: Some("x"),
            answer: Some("y"),
            ..Default::default()
        };
        authenticate(&host, &args(&format!("{LINE} try_first_pass")));
        assert_eq!(host.prompts.get(), 0);
        authenticate(&host, &args(LINE));
        assert_eq!(
            host.prompts.get(),
            1,
            "without a *_first_pass option the module asks itself"
        );
    }

    #[test]
    fn configuration_error_is_logged_by_key() {
        let host = FakeHost {
            user: "a".into(),
            answer: Some("x"),
            ..Default::default()
        };
        assert_eq!(
            authenticate(&host, &args(&format!("{LINE} colour=blue"))),
            PamError::SERVICE_ERR
        );
        assert_eq!(
            account(&host, &args(&format!("{LINE} colour=blue"))),
            PamError::SERVICE_ERR
        );
        let logs = host.logs.borrow();
        assert!(
            logs.iter()
                .all(|(l, m)| *l == Level::Error && m.contains("'colour'")),
            "{logs:?}"
        );
        assert_eq!(host.prompts.get(), 0);
    }

    #[test]
    fn unavailable_is_logged_with_the_reason_and_fail_delay_is_requested() {
        let host = FakeHost {
            user: "a".into(),
            answer: Some("x"),
            ..Default::default()
        };
        let code = authenticate(
            &host,
            &args(&format!("{LINE} fail_delay=250 ignore_authinfo_unavail")),
        );
        assert_eq!(code, PamError::IGNORE);
        assert_eq!(host.delay.get(), 250_000);
        let logs = host.logs.borrow();
        let Some((_, line)) = logs.iter().find(|(l, _)| *l == Level::Error) else {
            panic!("no error line in {logs:?}")
        };
        assert!(
            line.contains("backend unavailable")
                && line.contains("127.0.0.1:9")
                && line.contains("rhost=192.0.2.7"),
            "{line}"
        );
        assert_eq!(host.authenticated_user().as_deref().unwrap_or(""), "");
    }

    #[test]
    fn account_and_setcred_follow_what_auth_remembered() {
        let host = FakeHost {
            user: "a".into(),
            ..Default::default()
        };
        assert_eq!(account(&host, &args(LINE)), PamError::IGNORE);
        assert_eq!(setcred(&host), PamError::IGNORE);
        host.remember_authenticated("a");
        assert_eq!(account(&host, &args(LINE)), PamError::SUCCESS);
        assert_eq!(setcred(&host), PamError::SUCCESS);
        host.remember_authenticated("someone else");
        assert_eq!(setcred(&host), PamError::IGNORE);
        // A later failure in the same handle withdraws an earlier success.
        host.remember_authenticated("a");
        let failing = FakeHost {
            user: "a".into(),
            answer: Some("x"),
            remembered: RefCell::new(Some("a".into())),
            ..Default::default()
        };
        authenticate(&failing, &args(LINE));
        assert_eq!(setcred(&failing), PamError::IGNORE);
        assert_eq!(account(&failing, &args(LINE)), PamError::IGNORE);
    }

    #[test]
    fn every_early_failure_withdraws_an_earlier_success() {
        // (user, conversation answer, extra arguments): each fails before any backend.
        let cases: [(&str, Option<&'static str>, &str); 5] = [
            ("a", Some(""), ""),
            ("a", None, ""),
            ("a", Some("x"), "colour=blue"),
            ("", Some("x"), ""),
            ("@example.com", Some("x"), "strip_domain"),
        ];
        for (user, answer, extra) in cases {
            let host = FakeHost {
                user: user.into(),
                answer,
                remembered: RefCell::new(Some(user.into())),
                ..Default::default()
            };
            let code = authenticate(&host, &args(&format!("{LINE} {extra}")));
            assert_ne!(code, PamError::SUCCESS, "{user:?} {answer:?} {extra}");
            assert_eq!(
                setcred(&host),
                PamError::IGNORE,
                "{user:?} {answer:?} {extra}"
            );
        }
    }
}
