//! Offline marking (issue 11 item 9, `offline_interval=`): a URL that timed out or refused
//! the connection is skipped for the interval, so a hung backend costs each host process one
//! timeout, not one per login; it is asked again when the interval ends. Through the built
//! module, in-process through real libpam and inside a real saslauthd.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::http::{Reply, Server};
use support::mailstore::MailStore;
use support::saslauthd::{Answer, Saslauthd, Setup};
use support::syslog::Capture;
use support::*;

const USER: &str = "john.doe";
const PASSWORD: &str = "Passw0rd";

/// A MailStore that hangs while `down` is set and answers properly otherwise.
fn switchable() -> (Server, Arc<AtomicBool>) {
    let down = Arc::new(AtomicBool::new(true));
    let store = MailStore::new(&[(USER, PASSWORD)]);
    let d = down.clone();
    let server = Server::start(move |req| {
        if d.load(Ordering::SeqCst) {
            Reply::Hang
        } else {
            store.answer(req)
        }
    });
    (server, down)
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let started = Instant::now();
    let out = f();
    (out, started.elapsed())
}

#[test]
fn a_url_that_timed_out_is_skipped_then_probed_again_when_the_interval_ends() {
    let (server, down) = switchable();
    let svc = Service::module_line(&format!(
        "backend=mailstore url={} timeout=1 offline_interval=3",
        server.url("/")
    ));
    let capture = Capture::start();

    let (rc, took) = timed(|| svc.auth(USER, PASSWORD));
    let marked = Instant::now();
    assert_eq!(rc, PAM_AUTHINFO_UNAVAIL);
    assert!(took >= Duration::from_millis(900), "{took:?}");
    assert_eq!(server.count(), 1);

    // Marked offline: answered at once, the server not asked, even once it is back.
    down.store(false, Ordering::SeqCst);
    let (rc, took) = timed(|| svc.auth(USER, PASSWORD));
    assert_eq!(rc, PAM_AUTHINFO_UNAVAIL);
    assert!(took < Duration::from_millis(500), "{took:?}");
    assert_eq!(server.count(), 1, "an offline URL is not asked");

    let lines = capture.module_lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("marked offline until") && l.contains("UTC")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("skipped as offline until")
            && l.contains("UTC")
            && l.contains("no answer within")),
        "{lines:#?}"
    );

    // The interval ends: the next check asks the URL again, and it answers.
    let wait = Duration::from_millis(3100).saturating_sub(marked.elapsed());
    std::thread::sleep(wait);
    assert_eq!(svc.auth(USER, PASSWORD), PAM_SUCCESS);
    assert_eq!(server.count(), 2, "probed again after the interval");
    assert_eq!(svc.auth(USER, PASSWORD), PAM_SUCCESS);
    assert_eq!(server.count(), 3, "back in service");
}

#[test]
fn failover_goes_straight_to_the_next_url_while_the_first_is_offline() {
    let (hung, _down) = switchable();
    let good = MailStore::new(&[(USER, PASSWORD)]).serve();
    let svc = Service::module_line(&format!(
        "backend=mailstore url={} url={} timeout=1",
        hung.url("/"),
        good.url("/")
    ));
    let (rc, took) = timed(|| svc.auth(USER, PASSWORD));
    assert_eq!(rc, PAM_SUCCESS);
    assert!(took >= Duration::from_millis(900), "{took:?}");
    for _ in 0..5 {
        let (rc, took) = timed(|| svc.auth(USER, PASSWORD));
        assert_eq!(rc, PAM_SUCCESS);
        assert!(took < Duration::from_millis(500), "{took:?}");
    }
    assert_eq!(
        hung.count(),
        1,
        "skipped while offline (default interval 30 s)"
    );
    assert_eq!(good.count(), 6);
}

#[test]
fn a_refused_connection_marks_the_url_offline_too() {
    let url = support::http::refused_url();
    let svc = Service::module_line(&format!("backend=mailstore url={url} timeout=1"));
    let capture = Capture::start();
    assert_eq!(svc.auth(USER, PASSWORD), PAM_AUTHINFO_UNAVAIL);
    assert_eq!(svc.auth(USER, PASSWORD), PAM_AUTHINFO_UNAVAIL);
    let lines = capture.module_lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("skipped as offline until") && l.contains("cannot connect")),
        "{lines:#?}"
    );
}

#[test]
fn offline_interval_zero_asks_every_time() {
    let (server, _down) = switchable();
    let svc = Service::module_line(&format!(
        "backend=mailstore url={} timeout=0.5 offline_interval=0",
        server.url("/")
    ));
    for _ in 0..3 {
        assert_eq!(svc.auth(USER, PASSWORD), PAM_AUTHINFO_UNAVAIL);
    }
    assert_eq!(server.count(), 3);
}

#[test]
fn every_url_offline_is_answered_from_cache_fallback_at_once() {
    let (server, down) = switchable();
    down.store(false, Ordering::SeqCst);
    let svc = Service::module_line(&format!(
        "backend=mailstore url={} timeout=1 cache_fallback=600",
        server.url("/")
    ));
    assert_eq!(svc.auth(USER, PASSWORD), PAM_SUCCESS);
    down.store(true, Ordering::SeqCst);
    // The timeout marks it offline; the fallback answers.
    assert_eq!(svc.auth(USER, PASSWORD), PAM_SUCCESS);
    let (rc, took) = timed(|| svc.auth(USER, PASSWORD));
    assert_eq!(rc, PAM_SUCCESS);
    assert!(took < Duration::from_millis(500), "{took:?}");
    assert_eq!(svc.auth(USER, "wrong"), PAM_AUTHINFO_UNAVAIL);
    assert_eq!(server.count(), 2);
}

/// The saslauthd case: two workers serve every service. A hung backend for `smtp`
/// (`timeout=3`), six AUTHs for it at once, and then one for the healthy `imap` service.
/// Without offline marking the workers answer the hung AUTHs after 3, 6 and 9 s and the
/// healthy login waits behind them; with it each worker pays one timeout, the other hung
/// AUTHs are answered at once, and the healthy login goes through right after. Bound:
/// `timeout=` plus 2 s for a loaded machine (the daemon's first module load included).
#[test]
fn saslauthd_a_hung_backend_costs_each_worker_one_timeout_and_healthy_logins_go_on() {
    let hung = Server::start(|_| Reply::Hang);
    let healthy = MailStore::new(&[(USER, PASSWORD)]).serve();
    let module = module();
    let smtp = format!(
        "auth required {} backend=mailstore url={} timeout=3 offline_interval=30\n\
         account required {} backend=mailstore url={} timeout=3 offline_interval=30\n",
        module.display(),
        hung.url("/"),
        module.display(),
        hung.url("/")
    );
    let imap = format!(
        "auth required {} backend=mailstore url={} timeout=2\n\
         account required {} backend=mailstore url={} timeout=2\n",
        module.display(),
        healthy.url("/"),
        module.display(),
        healthy.url("/")
    );
    let mut daemon = Saslauthd::start_with(Setup {
        services: &[("smtp", &smtp), ("imap", &imap)],
        workers: 2,
        realm: false,
    });
    let started = Instant::now();
    let (hung_answers, healthy_answer) = std::thread::scope(|s| {
        let hung: Vec<_> = (0..6)
            .map(|_| {
                let d = &daemon;
                s.spawn(move || {
                    let a = d.ask("smtp", USER, PASSWORD, None);
                    (a, started.elapsed())
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        let d = &daemon;
        let healthy = s.spawn(move || {
            let a = d.ask("imap", USER, PASSWORD, None);
            (a, started.elapsed())
        });
        let hung: Vec<_> = hung.into_iter().map(|h| h.join().unwrap()).collect();
        (hung, healthy.join().unwrap())
    });
    for (answer, _) in &hung_answers {
        assert_eq!(*answer, Answer::No, "{}", daemon.log());
    }
    let last_hung = hung_answers.iter().map(|(_, t)| *t).max().unwrap();
    let bound = Duration::from_secs(3 + 2);
    // One timeout per worker, at once: not 3, 6 and 9 s.
    assert!(
        last_hung < bound,
        "hung AUTHs answered after {:?}",
        hung_answers.iter().map(|(_, t)| *t).collect::<Vec<_>>()
    );
    assert_eq!(healthy_answer.0, Answer::Ok, "{}", daemon.log());
    assert!(
        healthy_answer.1 < bound,
        "the healthy login waited {:?}",
        healthy_answer.1
    );
    println!(
        "hung AUTHs answered after {hung_answers:?}, the healthy one after {healthy_answer:?}"
    );
    // Each worker asked the hung server once.
    assert_eq!(hung.count(), 2);
    daemon.assert_alive();
}

/// A server whose answer's head arrives but whose body never finishes within `timeout=` is
/// as good as silent: marked offline like one that never answered (the body is read with the
/// head, `http::fetch`, and its timeout counts as the attempt's).
#[test]
fn a_url_whose_answer_body_drips_past_the_timeout_is_marked_offline() {
    let server = Server::start(|_| Reply::Drip {
        body: b"{\"succeeded\": true}".to_vec(),
        interval: Duration::from_millis(700),
    });
    let svc = Service::module_line(&format!(
        "backend=mailstore url={} timeout=1 offline_interval=30",
        server.url("/")
    ));
    let (rc, took) = timed(|| svc.auth(USER, PASSWORD));
    assert_eq!(rc, PAM_AUTHINFO_UNAVAIL);
    assert!(took >= Duration::from_millis(900), "{took:?}");
    let (rc, took) = timed(|| svc.auth(USER, PASSWORD));
    assert_eq!(rc, PAM_AUTHINFO_UNAVAIL);
    assert!(
        took < Duration::from_millis(500),
        "not skipped as offline: {took:?}"
    );
    assert_eq!(server.count(), 1);
}
