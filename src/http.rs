//! The HTTP layer every HTTP backend shares: one kept-alive client per configuration and
//! process, one deadline per URL tried, verified TLS, no redirects, capped bodies, ordered
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
use crate::offline;
use crate::options::Options;
use crate::verdict::Verdict;
use once_cell::sync::Lazy;
use reqwest::blocking::{Client, RequestBuilder, Response};
use std::cell::Cell;
use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

struct Pooled {
    pid: u32,
    client: Client,
}

/// Clients live for the life of the host process (the module is linked nodelete), so TLS
/// set-up and connection pools are paid once, not per authentication.
static CLIENTS: Lazy<Mutex<HashMap<ClientKey, Pooled>>> = Lazy::new(|| Mutex::new(HashMap::new()));

/// The client for this configuration in this process, built on first use. A client is never
/// dropped while its process lives (hyper itself drops connections that failed): dropping
/// one joins its runtime thread, which waits for any name lookup still running there, for
/// as long as the resolver's own timeouts, past any deadline of ours.
pub fn client(key: &ClientKey) -> Result<Client, Verdict> {
    let pid = std::process::id();
    // A pool lock still held after fork() by a thread that no longer exists must not hang
    // the login: build an unpooled client instead.
    let Some(mut pool) = crate::lock::lock_briefly(&CLIENTS) else {
        return build(key);
    };
    if let Some(p) = pool.get(key) {
        if p.pid == pid {
            return Ok(p.client.clone());
        }
    }
    let client = build(key)?;
    let stale = pool.insert(
        key.clone(),
        Pooled {
            pid,
            client: client.clone(),
        },
    );
    if let Some(stale) = stale {
        if stale.pid != pid {
            // Inherited across fork(): its runtime thread does not exist here, and dropping
            // it would wait for that thread forever. Leak it instead.
            std::mem::forget(stale);
        }
    }
    Ok(client)
}

fn build(key: &ClientKey) -> Result<Client, Verdict> {
    let mut builder = Client::builder()
        .timeout(key.timeout)
        .connect_timeout(key.connect_timeout)
        // Following a redirect would replay the credentials to wherever it points.
        .redirect(reqwest::redirect::Policy::none())
        // Authentication traffic goes straight to the configured endpoint, whatever proxy
        // variables the host process happens to carry.
        .no_proxy()
        .pool_idle_timeout(Duration::from_secs(60))
        .user_agent(concat!("pam_mailauth/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = &key.unix_socket {
        builder = builder.unix_socket(path.as_path());
    }
    if let Some(path) = &key.cafile {
        // The checked reader, as for the SQL backends: the bytes trusted_file checked are
        // the bytes used, so a CA file swapped after the options were checked cannot slip in.
        let pem = crate::trusted_file::read_cafile(path).map_err(Verdict::Misconfigured)?;
        let certs = reqwest::Certificate::from_pem_bundle(pem.text.as_bytes()).map_err(|e| {
            Verdict::Misconfigured(format!(
                "cafile {}: not a PEM bundle: {}",
                path.display(),
                e.without_url()
            ))
        })?;
        if certs.is_empty() {
            return Err(Verdict::Misconfigured(format!(
                "cafile {}: no certificate in it",
                path.display()
            )));
        }
        builder = builder.tls_certs_only(certs);
    }
    builder.build().map_err(|e| {
        Verdict::Misconfigured(format!(
            "cannot set up the HTTP client: {}",
            e.without_url()
        ))
    })
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

    fn note(&self, err: &reqwest::Error) {
        if err.is_timeout() || refused_or_unreachable(err) {
            self.offline.set(true);
        }
    }
}

/// A connection the network refused outright (nothing listens, no route): the server is
/// down, as opposed to a TLS or protocol failure, which would repeat on every try alike.
fn refused_or_unreachable(err: &reqwest::Error) -> bool {
    use std::io::ErrorKind::{ConnectionRefused, HostUnreachable, NetworkUnreachable};
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                ConnectionRefused | HostUnreachable | NetworkUnreachable
            ) {
                return true;
            }
        }
        source = s.source();
    }
    false
}

/// Tries each URL in order until one gives a definite answer. A refusal is definite: asking
/// the next server after a "no" would turn failover into a second guess at the password.
/// Each URL gets its own [`Deadline`]; URLs marked offline are skipped without being asked,
/// and a URL that times out or refuses the connection is marked so (`offline_interval=`).
pub fn failover(
    opts: &Options,
    mut attempt: impl FnMut(&Client, &str, &Deadline) -> Attempt,
) -> Answer {
    let key = ClientKey::of(opts);
    let mut failures = Vec::new();
    for url in &opts.urls {
        if let Some(skip) = offline::skip(&key, url, opts.offline_interval, opts.timeout) {
            failures.push(format!("{}: {skip}", host_of(url)));
            continue;
        }
        // Started before the client is fetched: building one on first use (a runtime thread,
        // the TLS context) counts against the same bound.
        let deadline = Deadline::start(opts.timeout);
        let client = match client(&key) {
            Ok(c) => c,
            Err(v) => return v.into(),
        };
        let outcome = attempt(&client, url, &deadline);
        // Only a URL that gave no answer is marked: a logout or a directory read that timed
        // out after a definite answer leaves the server in service.
        let down = match &outcome {
            Attempt::NextUrl(why) if deadline.found_offline() => Some(why.as_str()),
            _ => None,
        };
        let marked = offline::record(&key, url, down, opts.offline_interval);
        match outcome {
            Attempt::Answer(verdict) => {
                if !failures.is_empty() {
                    // A definite answer after failover: keep the skipped servers' reasons.
                    let endpoint = format!("{} (after {})", host_of(url), failures.join("; "));
                    return Answer {
                        verdict,
                        endpoint: Some(endpoint),
                    };
                }
                return Answer {
                    verdict,
                    endpoint: Some(host_of(url)),
                };
            }
            Attempt::NextUrl(why) => failures.push(match marked {
                Some(note) => format!("{}: {why}; {note}", host_of(url)),
                None => format!("{}: {why}", host_of(url)),
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
pub fn describe(err: &reqwest::Error, deadline: &Deadline) -> String {
    if err.is_timeout() {
        deadline.passed()
    } else if err.is_connect() {
        // The innermost cause, unless an outer one says the same and more: the TLS layer
        // adds why a certificate failed verification ("(Hostname mismatch)").
        let mut cause = String::new();
        let mut source = std::error::Error::source(err);
        while let Some(s) = source {
            let text = s.to_string();
            if !cause.starts_with(text.trim_end()) {
                cause = text;
            }
            source = s.source();
        }
        format!("cannot connect: {cause}")
    } else {
        let mut text = String::from("transport error");
        let mut source = std::error::Error::source(err);
        while let Some(s) = source {
            text = format!("{text}: {s}");
            source = s.source();
        }
        text
    }
}

/// Sends one request with what is left of the attempt's deadline. Set per request, the
/// timeout reaches reqwest's async core, which bounds everything from name resolution to the
/// last byte of the body (`read_capped` reads within it); the client's own timeout would
/// bound each read separately, so a server dripping one byte at a time could hold a login
/// for ever. A spent deadline sends nothing.
pub fn send(request: RequestBuilder, deadline: &Deadline) -> Result<Response, Attempt> {
    let Some(left) = deadline.left() else {
        return Err(Attempt::NextUrl(deadline.passed()));
    };
    request.timeout(left).send().map_err(|err| {
        deadline.note(&err);
        Attempt::NextUrl(describe(&err, deadline))
    })
}

/// Reads at most `cap` bytes of body; more than that is an error, not a truncation. The
/// request's deadline (set by `send`) bounds the reading.
pub fn read_capped(response: Response, cap: u64, deadline: &Deadline) -> Result<Vec<u8>, String> {
    if let Some(len) = response.content_length() {
        if len > cap {
            return Err(format!(
                "answer of {len} bytes is larger than the {cap}-byte limit"
            ));
        }
    }
    let mut body = Vec::new();
    let mut limited = response.take(cap + 1);
    match limited.read_to_end(&mut body) {
        Ok(_) if body.len() as u64 > cap => Err(format!("answer larger than the {cap}-byte limit")),
        Ok(_) => Ok(body),
        Err(e) => {
            let inner = e.get_ref().and_then(|r| r.downcast_ref::<reqwest::Error>());
            match inner {
                Some(re) => {
                    deadline.note(re);
                    Err(describe(re, deadline))
                }
                None if e.kind() == std::io::ErrorKind::TimedOut => {
                    deadline.offline.set(true);
                    Err(deadline.passed())
                }
                None => Err(format!("reading the answer: {e}")),
            }
        }
    }
}

/// The host part of a URL, for log lines (never the path or query).
pub fn host_of(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => match (u.host_str(), u.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => "?".into(),
        },
        Err(_) => "?".into(),
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
        let built = build(&key(&ca));
        assert!(built.is_ok(), "a root-owned 0644 CA file is fine");
        std::fs::set_permissions(&ca, std::fs::Permissions::from_mode(0o666)).unwrap();
        let refused = build(&key(&ca));
        std::fs::remove_dir_all(&dir).unwrap();
        match refused {
            Err(Verdict::Misconfigured(why)) => assert!(why.contains("chmod go-w"), "{why}"),
            Err(other) => panic!("not a configuration error: {other:?}"),
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
