//! The HTTP layer every HTTP backend shares: requests on the calling thread, kept-alive
//! clients per configuration and thread (the TLS context per process), one deadline per URL
//! tried, verified TLS, no redirects, capped bodies, ordered
//! failover, and skipping URLs marked offline (`crate::offline`).
//!
//! The time bound: `failover` gives each URL one [`Deadline`] of `timeout=`, and every
//! request of that check against that URL (a login and its logout, a refusal and the
//! directory read after it, a 401 and the token check after it) draws on what is left of it,
//! from name resolution, connect and TLS to the last byte of the answer. A check therefore
//! ends within `timeout=` plus a small slack per URL tried: the CPU work after the last byte
//! (parsing an answer that is capped in size). Setting up the client on first use counts
//! against the deadline.

use crate::backend::Answer;
use crate::fork::Owned;
use crate::offline;
use crate::options::Options;
use crate::verdict::Verdict;

mod client;
pub use client::{header, Client, HeaderMap, RequestBuilder, Response, StatusCode, Target};
use once_cell::sync::Lazy;
use std::cell::Cell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
pub use url::Url;

/// Every auth answer and a WebMail login page fit in this; more is a broken or hostile server.
pub const AUTH_BODY_CAP: u64 = 64 * 1024;

/// What decides how a client is built: configurations that agree here share one client.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientKey {
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub cafile: Option<PathBuf>,
    /// kopano's `socket=`: every request goes over this unix socket instead of TCP.
    pub unix_socket: Option<PathBuf>,
}

impl ClientKey {
    pub fn of(opts: &Options) -> Self {
        ClientKey {
            timeout: opts.timeout,
            connect_timeout: opts.connect_timeout,
            cafile: opts.cafile.clone(),
            unix_socket: opts.socket.clone(),
        }
    }
}

// Where the I/O happens, and what is kept (docs/perf.md): requests run synchronously on the
// calling thread, with no thread hop (only opening a connection uses its runtime,
// `crate::runtime`); kept-alive connections wait in the calling thread's pool (`client`).
// What is expensive to build, the TLS context with the trust roots (about a megabyte and a
// noticeable fraction of a second for the system's roots), is built once per process and
// shared by the threads.

/// The TLS context for one `cafile=` (or the system's roots), built once per process. One
/// inherited across fork() may be locked by a parent's thread that does not exist in the
/// child: never waited on or dropped there (`fork::Owned`).
type Tls = Owned<Arc<Mutex<Option<native_tls::TlsConnector>>>>;

static TLS: Lazy<Mutex<HashMap<Option<PathBuf>, Tls>>> = Lazy::new(|| Mutex::new(HashMap::new()));

/// The process's TLS context for `cafile`, built on first use and then shared. A thread that
/// finds another one building it builds its own rather than wait: the build reads `cafile=`,
/// which may sit on a stalled mount, and no login may wait on another thread for an unbounded
/// time. A failure is not kept (a fixed `cafile=` works at the next login).
fn tls_connector(cafile: &Option<PathBuf>) -> Result<native_tls::TlsConnector, String> {
    // A lock still held after fork() by a thread that no longer exists must not hang the
    // login: build an unshared context instead.
    let Some(slot) = crate::lock::lock_briefly(&TLS).map(|mut shared| {
        let fresh = || Owned::new(Arc::new(Mutex::new(None)));
        let entry = shared.entry(cafile.clone()).or_insert_with(fresh);
        if !entry.ours() {
            // Inherited across fork(): replaced, and the old one leaked by its Drop.
            *entry = fresh();
        }
        Arc::clone(entry)
    }) else {
        return build_tls(cafile);
    };
    let Some(mut held) = crate::lock::lock_briefly(&slot) else {
        return build_tls(cafile);
    };
    if let Some(connector) = held.as_ref() {
        return Ok(connector.clone());
    }
    let built = build_tls(cafile)?;
    *held = Some(built.clone());
    Ok(built)
}

/// Errors are configuration errors: the trust roots cannot be used as configured.
fn build_tls(cafile: &Option<PathBuf>) -> Result<native_tls::TlsConnector, String> {
    let mut tls = native_tls::TlsConnector::builder();
    // HTTP/1.1 is all the module speaks.
    tls.request_alpns(&["http/1.1"]);
    // The checked reader, as for the SQL backends: the bytes trusted_file checked are the
    // bytes used, so a CA file swapped after the options were checked cannot slip in.
    let shown = match cafile {
        Some(path) => format!("cafile {}", path.display()),
        None => format!(
            "the system's CA bundle {}",
            crate::trusted_file::system_ca_bundle().display()
        ),
    };
    let pem = crate::trusted_file::trust_roots(cafile.as_deref())?;
    let certs = openssl::x509::X509::stack_from_pem(pem.text.as_bytes())
        .map_err(|e| format!("{shown}: not a PEM bundle: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{shown}: no certificate in it"));
    }
    // Only these: never OpenSSL's built-in lookup, which the environment can extend.
    tls.disable_built_in_roots(true);
    for cert in certs {
        let der = cert.to_der().map_err(|e| format!("{shown}: {e}"))?;
        let cert = native_tls::Certificate::from_der(&der).map_err(|e| format!("{shown}: {e}"))?;
        tls.add_root_certificate(cert);
    }
    tls.build()
        .map_err(|e| format!("cannot set up TLS for the HTTP client: {e}"))
}

/// One URL's outcome: a definite answer ends the search, anything else moves on.
pub enum Attempt {
    Answer(Verdict),
    NextUrl(String),
}

/// The time one URL has for everything one check asks of it (`timeout=` from the moment
/// `failover` turns to that URL), and whether the transport found it offline: silent past
/// the deadline, or refusing connections.
#[derive(Debug)]
pub struct Deadline {
    at: Instant,
    timeout: Duration,
    offline: Cell<bool>,
}

impl Deadline {
    /// `timeout` from now.
    pub fn start(timeout: Duration) -> Deadline {
        Deadline {
            at: Instant::now() + timeout,
            timeout,
            offline: Cell::new(false),
        }
    }

    /// What is left; `None` once it is spent.
    pub fn left(&self) -> Option<Duration> {
        self.at
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
    }

    /// The words for a deadline that passed.
    fn passed(&self) -> String {
        format!("no answer within {:?} (timeout=)", self.timeout)
    }

    /// Whether the server timed out or refused the connection during this attempt.
    pub fn found_offline(&self) -> bool {
        self.offline.get()
    }

    fn note(&self, err: &client::Error) {
        if matches!(err, client::Error::TimedOut | client::Error::Unreachable(_)) {
            self.offline.set(true);
        }
    }
}

/// A configured URL (`url=`), parsed once per parsed module line (`options::Derived`), with
/// the host part that log lines name. Reads as the URL text it was configured as.
pub struct Endpoint {
    text: String,
    url: Url,
    host: String,
}

impl Endpoint {
    pub fn url(&self) -> &Url {
        &self.url
    }
}

impl std::ops::Deref for Endpoint {
    type Target = str;
    fn deref(&self) -> &str {
        &self.text
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl client::Target for &Endpoint {
    fn into_url(self) -> Result<Url, String> {
        Ok(self.url.clone())
    }
}

/// The line's URLs as endpoints (each was checked to be a URL when the options were parsed).
fn endpoints(opts: &Options) -> &[Endpoint] {
    opts.derived.endpoints.get_or_init(|| {
        opts.urls
            .iter()
            .filter_map(|text| {
                let url = Url::parse(text).ok()?;
                Some(Endpoint {
                    host: host_part(&url),
                    text: text.clone(),
                    url,
                })
            })
            .collect()
    })
}

/// Tries each URL in order until one gives a definite answer. A refusal is definite: asking
/// the next server after a "no" would turn failover into a second guess at the password.
/// Each URL gets its own [`Deadline`]; URLs marked offline are skipped without being asked,
/// and a URL that times out or refuses the connection is marked so (`offline_interval=`).
pub fn failover(
    opts: &Options,
    mut attempt: impl FnMut(&Client, &Endpoint, &Deadline) -> Attempt,
) -> Answer {
    // Cheap: the TLS context is the process's, fetched when a TLS connection is opened, and
    // the kept-alive connections are the thread's, reused by the next check on this thread.
    let client = Client::new(ClientKey::of(opts));
    let key = client.key();
    let mut failures = Vec::new();
    for endpoint in endpoints(opts) {
        let url = endpoint.text.as_str();
        if let Some(skip) = offline::skip(key, url, opts.offline_interval, opts.timeout) {
            failures.push(format!("{}: {skip}", endpoint.host));
            continue;
        }
        // Everything the attempt sets up on first use (the runtime, the TLS context) counts
        // against its bound.
        let deadline = Deadline::start(opts.timeout);
        let outcome = attempt(&client, endpoint, &deadline);
        // Only a URL that gave no answer is marked: a logout or a directory read that timed
        // out after a definite answer leaves the server in service.
        let down = match &outcome {
            Attempt::NextUrl(why) if deadline.found_offline() => Some(why.as_str()),
            _ => None,
        };
        let marked = offline::record(key, url, down, opts.offline_interval);
        match outcome {
            Attempt::Answer(verdict) => {
                if !failures.is_empty() {
                    // A definite answer after failover: keep the skipped servers' reasons.
                    let endpoint = format!("{} (after {})", endpoint.host, failures.join("; "));
                    return Answer {
                        verdict,
                        endpoint: Some(endpoint),
                    };
                }
                return Answer {
                    verdict,
                    endpoint: Some(endpoint.host.clone()),
                };
            }
            Attempt::NextUrl(why) => failures.push(match marked {
                Some(note) => format!("{}: {why}; {note}", endpoint.host),
                None => format!("{}: {why}", endpoint.host),
            }),
        }
    }
    let summary = if failures.is_empty() {
        "no url configured".to_string()
    } else {
        failures.join("; ")
    };
    Verdict::Unavailable(summary).into()
}

/// Words for a transport error, free of the URL (a GET login would carry the password in it).
fn describe(err: &client::Error, deadline: &Deadline) -> String {
    use client::Error::*;
    match err {
        TimedOut => deadline.passed(),
        Unreachable(cause) | Connect(cause) => format!("cannot connect: {cause}"),
        Protocol(cause) => format!("transport error: {cause}"),
        Request(why) => format!("cannot send the request: {why}"),
        Misconfigured(why) => format!("configuration error: {why}"),
    }
}

/// Sends one request with what is left of the attempt's deadline, on this thread (the deadline
/// bounds everything from name resolution to the answer's head). A spent deadline sends
/// nothing.
pub fn send(request: RequestBuilder, deadline: &Deadline) -> Result<Response, Attempt> {
    exchange(request, None, deadline)
}

/// [`send`], reading the body in the same go (at most `cap` bytes): for answers whose body
/// is always read, [`read_capped`] then hands it over without waiting again.
pub fn fetch(request: RequestBuilder, cap: u64, deadline: &Deadline) -> Result<Response, Attempt> {
    exchange(request, Some(cap), deadline)
}

fn exchange(
    request: RequestBuilder,
    read: Option<u64>,
    deadline: &Deadline,
) -> Result<Response, Attempt> {
    if deadline.left().is_none() {
        return Err(Attempt::NextUrl(deadline.passed()));
    }
    match client::execute(request, read, deadline.at) {
        Ok(response) => Ok(response),
        // The same for every URL: a definite answer, not a reason to try the next one.
        Err(client::Error::Misconfigured(why)) => Err(Attempt::Answer(Verdict::Misconfigured(why))),
        Err(err) => {
            deadline.note(&err);
            Err(Attempt::NextUrl(describe(&err, deadline)))
        }
    }
}

/// Reads at most `cap` bytes of body; more than that is an error, not a truncation. Bounded
/// by what is left of the deadline as a whole, so a server dripping one byte at a time cannot
/// hold a login past it.
pub fn read_capped(response: Response, cap: u64, deadline: &Deadline) -> Result<Vec<u8>, String> {
    if let Some(len) = response.content_length() {
        if len > cap {
            return Err(format!(
                "answer of {len} bytes is larger than the {cap}-byte limit"
            ));
        }
    }
    let mut response = response;
    let read = match response.take_read(cap) {
        Some(read) => read,
        None => {
            if deadline.left().is_none() {
                deadline.offline.set(true);
                return Err(deadline.passed());
            }
            response.read_capped(cap, deadline.at)
        }
    };
    match read {
        Ok(Some(body)) => Ok(body),
        Ok(None) => Err(format!("answer larger than the {cap}-byte limit")),
        Err(err) => {
            deadline.note(&err);
            Err(describe(&err, deadline))
        }
    }
}

/// The host part of a URL, for log lines (never the path or query).
pub fn host_of(url: &str) -> String {
    Url::parse(url).map_or_else(|_| "?".into(), |u| host_part(&u))
}

fn host_part(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => "?".into(),
    }
}

/// `application/x-www-form-urlencoded` encoding of one value (also right for query strings).
pub fn form_encode(value: &str) -> String {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    const FORM: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'*')
        .remove(b'-')
        .remove(b'.')
        .remove(b'_');
    utf8_percent_encode(value, FORM).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client build reads cafile= through trusted_file's checks itself, not only the
    /// option parser before it: a CA file anyone can rewrite is refused here too.
    #[test]
    fn the_client_build_refuses_a_cafile_others_can_change() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("pam_mailauth-http-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::copy("/etc/ssl/certs/ca-certificates.crt", &ca).unwrap();
        let key = |cafile: &std::path::Path| ClientKey {
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
            cafile: Some(cafile.to_path_buf()),
            unix_socket: None,
        };
        std::fs::set_permissions(&ca, std::fs::Permissions::from_mode(0o644)).unwrap();
        let built = build_tls(&key(&ca).cafile);
        assert!(built.is_ok(), "a root-owned 0644 CA file is fine");
        std::fs::set_permissions(&ca, std::fs::Permissions::from_mode(0o666)).unwrap();
        let refused = build_tls(&key(&ca).cafile);
        std::fs::remove_dir_all(&dir).unwrap();
        match refused {
            // Every build_tls error is a configuration error (PAM_SERVICE_ERR).
            Err(why) => assert!(why.contains("chmod go-w"), "{why}"),
            Ok(_) => panic!("a world-writable CA file was used"),
        }
    }

    #[test]
    fn form_encoding_escapes_every_delimiter() {
        assert_eq!(
            form_encode("a&b=c+d%e f'g\"h"),
            "a%26b%3Dc%2Bd%25e%20f%27g%22h"
        );
        assert_eq!(form_encode("jürgen"), "j%C3%BCrgen");
    }

    #[test]
    fn host_of_hides_path_and_query() {
        assert_eq!(
            host_of("https://mail.example.com:8443/x?pass=1"),
            "mail.example.com:8443"
        );
    }
}
