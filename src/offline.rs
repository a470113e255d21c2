//! Offline marking, after SSSD's offline mode (`offline_interval=`).
//!
//! A host serves every login through a few workers (saslauthd's `-n`, Apache's children): if
//! each check waited `timeout=` on a hung backend, one outage would stall every login on the
//! host, healthy services included. So a URL that timed out or refused the connection is
//! marked offline in this process for `offline_interval` seconds: failover skips it without
//! asking, and when every URL is skipped the check answers "unavailable" at once (or from
//! `cache_fallback=`). When the interval ends, the next check probes the URL again; while
//! that probe runs (at most `timeout=`), other threads of the process still skip it, so a
//! threaded host sends one probe, not one per thread. Any answer at all (even an HTTP 500)
//! clears the mark: the server is reachable.
//!
//! Marks are per process and per URL and client configuration (`http::ClientKey`). A forked
//! child ignores its parent's marks, like the client pool; the lock is taken briefly, and a
//! lock that stays taken means "not offline" (the URL is tried), never a hang.
//!
//! Time is a parameter (`now`), so expiry is tested without sleeping.

use crate::http::ClientKey;
use crate::lock::lock_briefly;
use once_cell::sync::Lazy;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// More than any host has URLs times configurations; a map this full starts over.
const MAX_MARKS: usize = 256;

#[derive(Debug, Clone)]
struct Mark {
    pid: u32,
    until: Instant,
    /// `until` on the wall clock, for the log line.
    wall_until: SystemTime,
    /// What the URL did (no answer in time, connection refused), for the log line.
    why: String,
    /// The interval ended and one check is asking the URL again.
    probing: bool,
}

/// The marks of one process, by URL and client configuration.
#[derive(Default)]
pub struct Marks {
    marks: HashMap<(ClientKey, String), Mark>,
}

impl Marks {
    /// Why to skip this URL now, or `None` to ask it (the caller may be the one probing it
    /// again after its interval: until `probe_time` has passed, others keep skipping it).
    pub fn skip(
        &mut self,
        key: &ClientKey,
        url: &str,
        pid: u32,
        probe_time: Duration,
        now: Instant,
    ) -> Option<String> {
        let entry = (key.clone(), url.to_string());
        let mark = self.marks.get_mut(&entry)?;
        if mark.pid != pid {
            // Inherited across fork(): the parent's experience, not ours.
            self.marks.remove(&entry);
            return None;
        }
        if now < mark.until {
            return Some(if mark.probing {
                format!(
                    "skipped as offline (being probed again by another check; {})",
                    mark.why
                )
            } else {
                format!(
                    "skipped as offline until {} ({})",
                    utc_clock(mark.wall_until),
                    mark.why
                )
            });
        }
        mark.probing = true;
        mark.until = now + probe_time;
        None
    }

    /// What a check found: `Some(why)` if the URL timed out or refused the connection (and
    /// gave no answer), `None` if it answered. Returns the note for the log line when the URL
    /// is now marked offline.
    pub fn record(
        &mut self,
        key: &ClientKey,
        url: &str,
        down: Option<&str>,
        pid: u32,
        interval: Duration,
        now: Instant,
    ) -> Option<String> {
        let entry = (key.clone(), url.to_string());
        let Some(why) = down.filter(|_| !interval.is_zero()) else {
            self.marks.remove(&entry);
            return None;
        };
        if self.marks.len() >= MAX_MARKS && !self.marks.contains_key(&entry) {
            self.marks.clear();
        }
        let wall_until = SystemTime::now() + interval;
        self.marks.insert(
            entry,
            Mark {
                pid,
                until: now + interval,
                wall_until,
                why: why.to_string(),
                probing: false,
            },
        );
        Some(format!(
            "marked offline until {} (offline_interval={}s)",
            utc_clock(wall_until),
            interval.as_secs()
        ))
    }

    pub fn len(&self) -> usize {
        self.marks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.marks.is_empty()
    }
}

static MARKS: Lazy<Mutex<Marks>> = Lazy::new(|| Mutex::new(Marks::default()));

/// `Marks::skip` for this process; never skips with `offline_interval=0`.
pub fn skip(key: &ClientKey, url: &str, interval: Duration, timeout: Duration) -> Option<String> {
    if interval.is_zero() {
        return None;
    }
    // The probe gets the attempt's whole deadline and a second of slack.
    let probe_time = timeout + Duration::from_secs(1);
    let mut marks = lock_briefly(&MARKS)?;
    if marks.is_empty() {
        // The usual case, kept free of allocations.
        return None;
    }
    marks.skip(key, url, crate::fork::pid(), probe_time, Instant::now())
}

/// `Marks::record` for this process.
pub fn record(
    key: &ClientKey,
    url: &str,
    down: Option<&str>,
    interval: Duration,
) -> Option<String> {
    let mut marks = lock_briefly(&MARKS)?;
    if down.is_none() && marks.is_empty() {
        return None;
    }
    marks.record(key, url, down, crate::fork::pid(), interval, Instant::now())
}

/// `HH:MM:SS UTC`: syslog stamps lines in local time, so the zone is said.
fn utc_clock(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) % 86_400;
    format!(
        "{:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn key() -> ClientKey {
        ClientKey {
            timeout: 2 * S,
            connect_timeout: S,
            cafile: None,
            unix_socket: None,
        }
    }

    #[test]
    fn a_marked_url_is_skipped_until_the_interval_ends_then_probed_once() {
        let (k, t0) = (key(), Instant::now());
        let mut m = Marks::default();
        assert_eq!(m.skip(&k, "http://a/", 7, 3 * S, t0), None);
        let note = m.record(&k, "http://a/", Some("no answer"), 7, 30 * S, t0);
        assert!(note.is_some_and(|n| n.contains("marked offline until")));
        let why = m.skip(&k, "http://a/", 7, 3 * S, t0 + 29 * S);
        assert!(
            why.is_some_and(|w| w.contains("skipped as offline until") && w.contains("no answer"))
        );
        // Another URL, or the same URL under another client configuration, is not affected.
        assert_eq!(m.skip(&k, "http://b/", 7, 3 * S, t0 + S), None);
        let other = ClientKey {
            timeout: 5 * S,
            ..key()
        };
        assert_eq!(m.skip(&other, "http://a/", 7, 3 * S, t0 + S), None);
        // The interval is over: this check probes it; others keep skipping while it does.
        assert_eq!(m.skip(&k, "http://a/", 7, 3 * S, t0 + 30 * S), None);
        let meanwhile = m.skip(&k, "http://a/", 7, 3 * S, t0 + 31 * S);
        assert!(meanwhile.is_some_and(|w| w.contains("probed again")));
        // A probe that never reported back does not keep the URL offline for ever.
        assert_eq!(m.skip(&k, "http://a/", 7, 3 * S, t0 + 33 * S), None);
    }

    #[test]
    fn an_answer_clears_the_mark_and_a_failed_probe_renews_it() {
        let (k, t0) = (key(), Instant::now());
        let mut m = Marks::default();
        m.record(&k, "http://a/", Some("refused"), 7, 30 * S, t0);
        assert_eq!(m.skip(&k, "http://a/", 7, 3 * S, t0 + 30 * S), None);
        m.record(&k, "http://a/", Some("refused"), 7, 30 * S, t0 + 31 * S);
        assert!(m.skip(&k, "http://a/", 7, 3 * S, t0 + 60 * S).is_some());
        assert_eq!(m.skip(&k, "http://a/", 7, 3 * S, t0 + 61 * S), None);
        assert_eq!(
            m.record(&k, "http://a/", None, 7, 30 * S, t0 + 61 * S),
            None
        );
        assert!(m.is_empty());
        assert_eq!(m.skip(&k, "http://a/", 7, 3 * S, t0 + 62 * S), None);
    }

    #[test]
    fn interval_zero_marks_nothing() {
        let (k, t0) = (key(), Instant::now());
        let mut m = Marks::default();
        assert_eq!(
            m.record(&k, "http://a/", Some("x"), 7, Duration::ZERO, t0),
            None
        );
        assert!(m.is_empty());
    }

    #[test]
    fn a_forked_child_ignores_its_parents_marks() {
        let (k, t0) = (key(), Instant::now());
        let mut m = Marks::default();
        m.record(&k, "http://a/", Some("x"), 7, 30 * S, t0);
        assert_eq!(m.skip(&k, "http://a/", 8, 3 * S, t0 + S), None);
        assert!(m.is_empty());
    }

    #[test]
    fn bounded() {
        let (k, t0) = (key(), Instant::now());
        let mut m = Marks::default();
        for i in 0..3 * MAX_MARKS {
            m.record(&k, &format!("http://h{i}/"), Some("x"), 7, 30 * S, t0);
        }
        assert!(m.len() <= MAX_MARKS);
    }

    #[test]
    fn clock() {
        assert_eq!(
            utc_clock(UNIX_EPOCH + Duration::from_secs(86_400 * 3 + 3600 * 13 + 60 * 2 + 5)),
            "13:02:05 UTC"
        );
    }
}
