//! mailauth-check: test a pam_mailauth configuration from the shell, before (or without)
//! touching /etc/pam.d. See `mailauth-check --help` and mailauth-check(8).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod direct;
mod outcome;
mod stack;
mod terminal;
mod throttled;

use std::path::PathBuf;
use std::process::ExitCode;

const HELP: &str = "\
NAME
    mailauth-check - test a pam_mailauth configuration without touching /etc/pam.d

SYNOPSIS
    mailauth-check [--account] [--rhost HOST] [OPTION=VALUE | SWITCH ...] USER
    mailauth-check --service NAME [--confdir DIR] [--account] [--rhost HOST] USER
    mailauth-check --throttled [OPTION=VALUE | SWITCH ...]
    mailauth-check --reset USER [OPTION=VALUE | SWITCH ...]
    mailauth-check --help | --version

DESCRIPTION
    The first form runs pam_mailauth's own code on one module line: the words before USER
    are the module arguments, exactly as they would follow pam_mailauth.so in /etc/pam.d
    (config=/etc/security/pam_mailauth.conf reads the configuration file, with all its
    ownership and mode checks). It runs the auth phase and, when that succeeds, the account
    phase, as saslauthd and Apache do. The password the module asks for also stands for the
    one an earlier module would have obtained, so use_first_pass and try_first_pass lines
    can be checked as written. Nothing is installed or changed, and nothing is sent to
    syslog: the lines the module would log are printed on standard error instead.

    The second form runs the real stack of /etc/pam.d/NAME through libpam, as pamtester
    does, with every module it lists; the modules' syslog lines are printed on standard
    error as well as sent to syslog.

    The password is read from the terminal with echo off, or, when standard input is not a
    terminal, as one line from standard input (printf '%s\\n' \"$PW\" | mailauth-check ...).
    It is never taken from the command line and never printed.

OPTIONS
    --service NAME
        Run the stack of /etc/pam.d/NAME through libpam instead of one module line.
    --confdir DIR
        With --service: read the service file NAME from DIR instead of /etc/pam.d
        (libpam's pam_start_confdir), to try a stack before installing it. Module paths in
        it are looked up as in /etc/pam.d: a bare name in the system's security directory.
    --account
        Run the account phase only; no password is asked for.
    --rhost HOST
        Set PAM_RHOST, the remote host the module logs (as saslauthd and Apache do).
    --throttled
        List the failure tallies of the module's throttle (deny=): one line per user
        with failures counted in tally_dir, how many, how long ago the last, and whether
        and for how long the user is throttled. No password is asked for.
    --reset USER
        Forget USER's counted failures, lifting a lock at once (as faillock --user USER
        --reset). USER is mapped as the module line maps it (lowercase, strip_domain,
        domain=). Exit status 0 if there were failures, 1 if there were none.
        With --throttled and --reset, the words given are the module line whose throttle
        is meant (config=FILE with its backend=, or the whole line from /etc/pam.d); its
        tally_dir=, deny= and unlock_time= apply. Without any, the default tally_dir.
    --help, -h
        Show this text.
    --version, -V
        Show the version.

OUTPUT
    Standard error carries the log lines, exactly as pam_mailauth writes them to syslog:
    the decision, the user, the backend, which server answered and which were skipped and
    why (TLS, DNS, timeout, HTTP status), the latency, and every configuration problem
    (an unknown key, a config file with the wrong owner or mode, a secret given as a
    module argument) with its fix. Standard output carries one line per phase:
        auth: refused (PAM_AUTH_ERR), latency 41 ms
    the verdict in the words of the log lines, the PAM return code, and how long the phase
    took.

EXIT STATUS
    0   accepted (every phase run answered PAM_SUCCESS)
    1   refused, unknown user, account disabled, no password given, or PAM_IGNORE;
        with --reset, no failures were counted for the user
    2   backend unavailable (PAM_AUTHINFO_UNAVAIL): unreachable, timeout, 5xx, garbage
    3   configuration error (PAM_SERVICE_ERR, a module that cannot be loaded, a service
        file that does not exist), or a command line mailauth-check cannot use

EXAMPLES
    mailauth-check backend=mailstore url=https://archive.example.com/integration alice
    mailauth-check config=/etc/security/pam_mailauth.conf debug alice@example.com
    mailauth-check --account backend=scim config=/etc/security/pam_mailauth.conf bob
    mailauth-check --service smtp --rhost 192.0.2.7 alice
    mailauth-check --service smtp --confdir /root/pam.d-new alice < password-file
    mailauth-check --throttled config=/etc/security/pam_mailauth.conf deny=5
    mailauth-check --reset alice@example.com config=/etc/security/pam_mailauth.conf

SEE ALSO
    pam_mailauth(8), pam_mailauth.conf(5), pamtester(1), pam_start_confdir(3)
";

/// What the command line asked for.
#[derive(Debug, PartialEq, Eq)]
enum Request {
    Help,
    Version,
    Check(Check),
    /// `--throttled` with a module line's arguments (maybe none).
    Throttled(Vec<String>),
    /// `--reset USER` with a module line's arguments (maybe none).
    Reset {
        user: String,
        args: Vec<String>,
    },
}

#[derive(Debug, PartialEq, Eq)]
struct Check {
    mode: Mode,
    user: String,
    rhost: Option<String>,
    account_only: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum Mode {
    /// One module line, run by the module's own code.
    ModuleLine(Vec<String>),
    /// A service's stack, run by libpam.
    Service {
        name: String,
        confdir: Option<PathBuf>,
    },
}

fn parse(args: &[String]) -> Result<Request, String> {
    let mut service = None;
    let mut confdir = None;
    let mut rhost = None;
    let mut account_only = false;
    let mut throttled = false;
    let mut reset = None;
    let mut words = Vec::new();
    let mut it = args.iter();
    let mut flags_done = false;
    while let Some(arg) = it.next() {
        if flags_done || !arg.starts_with('-') {
            words.push(arg.clone());
            continue;
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f, Some(v.to_string())),
            None => (arg.as_str(), None),
        };
        let mut value = |what: &str| -> Result<String, String> {
            match inline.clone().or_else(|| it.next().cloned()) {
                Some(v) if !v.is_empty() => Ok(v),
                _ => Err(format!("{flag} needs {what}")),
            }
        };
        match flag {
            "--help" | "-h" => return Ok(Request::Help),
            "--version" | "-V" => return Ok(Request::Version),
            "--service" => service = Some(value("a service name")?),
            "--confdir" => confdir = Some(PathBuf::from(value("a directory")?)),
            "--rhost" => rhost = Some(value("a host name or address")?),
            "--account" => account_only = true,
            "--throttled" => throttled = true,
            "--reset" => reset = Some(value("a user name")?),
            "--" => flags_done = true,
            _ => return Err(format!("unknown option {arg}")),
        }
    }
    if throttled || reset.is_some() {
        if throttled && reset.is_some() {
            return Err("--throttled and --reset go one at a time".into());
        }
        if service.is_some() || confdir.is_some() || account_only || rhost.is_some() {
            return Err(
                "--throttled and --reset take a module line's arguments, no other option".into(),
            );
        }
        return Ok(match reset {
            Some(user) => Request::Reset { user, args: words },
            None => Request::Throttled(words),
        });
    }
    let Some(user) = words.pop() else {
        return Err("no USER given".into());
    };
    if user.is_empty() {
        return Err("the USER is empty".into());
    }
    let mode = match service {
        Some(name) => {
            if let Some(extra) = words.first() {
                return Err(format!(
                    "'{extra}': with --service the module arguments come from the service file"
                ));
            }
            if name.contains('/') {
                return Err("--service takes a name, not a path (use --confdir DIR)".into());
            }
            Mode::Service { name, confdir }
        }
        None => {
            if confdir.is_some() {
                return Err("--confdir only goes with --service".into());
            }
            if words.is_empty() {
                return Err("no module arguments given (at least backend=...)".into());
            }
            Mode::ModuleLine(words)
        }
    };
    Ok(Request::Check(Check {
        mode,
        user,
        rhost,
        account_only,
    }))
}

fn main() -> ExitCode {
    let args: Vec<String> = match std::env::args_os()
        .skip(1)
        .map(|a| a.into_string())
        .collect()
    {
        Ok(a) => a,
        Err(_) => {
            eprintln!("mailauth-check: an argument is not valid UTF-8");
            return ExitCode::from(outcome::CONFIGURATION);
        }
    };
    let status = match parse(&args) {
        Ok(Request::Help) => {
            print!("{HELP}");
            outcome::SUCCESS
        }
        Ok(Request::Version) => {
            println!(
                "mailauth-check (pam_mailauth) {}",
                env!("CARGO_PKG_VERSION")
            );
            outcome::SUCCESS
        }
        Ok(Request::Throttled(args)) => throttled::list(&args),
        Ok(Request::Reset { user, args }) => throttled::reset(&args, &user),
        Ok(Request::Check(check)) => match check.mode {
            Mode::ModuleLine(module_args) => {
                direct::run(&module_args, &check.user, check.rhost, check.account_only)
            }
            Mode::Service { name, confdir } => stack::run(
                &name,
                confdir.as_deref(),
                &check.user,
                check.rhost.as_deref(),
                check.account_only,
            ),
        },
        Err(why) => {
            eprintln!("mailauth-check: {why}\nTry 'mailauth-check --help'.");
            outcome::CONFIGURATION
        }
    };
    ExitCode::from(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn module_line_then_user() {
        assert_eq!(
            parse(&args(
                "--rhost 192.0.2.7 backend=mailstore url=http://x/ debug alice"
            )),
            Ok(Request::Check(Check {
                mode: Mode::ModuleLine(args("backend=mailstore url=http://x/ debug")),
                user: "alice".into(),
                rhost: Some("192.0.2.7".into()),
                account_only: false,
            }))
        );
    }

    #[test]
    fn service_mode() {
        assert_eq!(
            parse(&args("--service=smtp --confdir /tmp/p --account bob")),
            Ok(Request::Check(Check {
                mode: Mode::Service {
                    name: "smtp".into(),
                    confdir: Some("/tmp/p".into())
                },
                user: "bob".into(),
                rhost: None,
                account_only: true,
            }))
        );
    }

    #[test]
    fn unusable_command_lines_are_refused() {
        for bad in [
            "",
            "backend=mailstore",
            "--service smtp backend=mailstore bob",
            "--confdir /tmp backend=mailstore bob",
            "--service ../etc/x bob",
            "--password x backend=mailstore bob",
            "--service",
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(parse(&args("x -h")), Ok(Request::Help));
    }

    #[test]
    fn throttle_requests() {
        assert_eq!(
            parse(&args("--throttled")),
            Ok(Request::Throttled(Vec::new()))
        );
        assert_eq!(
            parse(&args("--reset bob config=/etc/x deny=3")),
            Ok(Request::Reset {
                user: "bob".into(),
                args: args("config=/etc/x deny=3")
            })
        );
        for bad in [
            "--reset",
            "--throttled --reset bob",
            "--throttled --service smtp",
            "--reset bob --account",
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad:?} was accepted");
        }
    }
}
