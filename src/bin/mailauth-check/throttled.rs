//! `--throttled` and `--reset USER`: the failure throttle's tallies (`deny=`, `tally_dir=`),
//! as `faillock` shows and resets pam_faillock's. The module arguments, when given, are those
//! of the module line whose throttle is meant: they name `tally_dir=`, say what `deny=` and
//! `unlock_time=` make a lock, and map USER as the module does (`lowercase`, `domain=`, ...).

use crate::outcome;
use pam_mailauth::options::Options;
use pam_mailauth::throttle::{self, Policy, Tally};

/// The throttle settings and user-name mapping of a module line (the defaults without one).
fn settings(module_args: &[String]) -> Result<Options, u8> {
    if module_args.is_empty() {
        return Ok(Options::default());
    }
    Options::parse(module_args).map_err(|e| {
        eprintln!("mailauth-check: configuration error: {e}");
        outcome::CONFIGURATION
    })
}

/// One line per tally: the user (control characters escaped), the failures, the lock.
fn describe(tally: &Tally, policy: &Policy, now: u64) -> String {
    let user: String = tally.user.escape_debug().collect();
    let last = tally
        .failures
        .last()
        .map(|t| now.saturating_sub(*t).div_ceil(1000));
    let mut line = format!("{user}\t{} failure(s)", tally.failures.len());
    if let Some(ago) = last {
        line.push_str(&format!(", the last {ago}s ago"));
    }
    match tally.locked_until(policy) {
        Some(until) if until > now => line.push_str(&format!(
            ", throttled for another {}s",
            (until - now).div_ceil(1000)
        )),
        _ if policy.deny == 0 => {}
        _ => line.push_str(", not throttled"),
    }
    if !tally.slots.is_empty() {
        line.push_str(&format!(", {} check(s) in progress", tally.slots.len()));
    }
    line
}

/// `--throttled`: every tally that still matters, one line each on standard output.
pub fn list(module_args: &[String]) -> u8 {
    let opts = match settings(module_args) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let policy = &opts.throttle;
    match throttle::list(policy) {
        Ok(tallies) => {
            let now = throttle::now_ms();
            for tally in &tallies {
                println!("{}", describe(tally, policy, now));
            }
            if tallies.is_empty() {
                eprintln!(
                    "mailauth-check: no failures counted in {}",
                    policy.dir.display()
                );
            }
            outcome::SUCCESS
        }
        Err(why) => {
            eprintln!("mailauth-check: {why}");
            outcome::CONFIGURATION
        }
    }
}

/// `--reset USER`: forgets the user's failures (0), or says there were none (1).
pub fn reset(module_args: &[String], user: &str) -> u8 {
    let opts = match settings(module_args) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let mapped = opts.mapping.apply(user);
    let shown: String = mapped.escape_debug().collect();
    match throttle::reset(&opts.throttle, &mapped) {
        Ok(true) => {
            println!("{shown}: failures reset");
            outcome::SUCCESS
        }
        Ok(false) => {
            println!("{shown}: no failures counted");
            outcome::REFUSED
        }
        Err(why) => {
            eprintln!("mailauth-check: {why}");
            outcome::CONFIGURATION
        }
    }
}
