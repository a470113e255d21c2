//! The HTTP/1.1 client under `crate::http`: the protocol from `ureq-proto` (a sans-I/O
//! HTTP/1.1 state machine: request writing, response parsing with `httparse`, body framing by
//! length, chunks or close), the I/O done here, on the calling thread, with the kept-alive
//! connections of this thread in a small pool of its own.
//!
//! Why not reqwest or hyper (docs/perf.md, "The HTTP client"): both run a request as futures
//! on an async runtime, through a reactor, channels between a connection task and its
//! caller, and wake-ups. For one small request on a kept-alive local connection that machinery
//! cost several times the protocol work itself, on every SMTP login. What the module needs of
//! an HTTP client is small and fixed: HTTP/1.1, one request at a time per connection, no
//! redirects, no proxies, no cookies, verified TLS, one deadline per exchange, capped bodies.
//! This is that: a request is written with one `send`, its answer waited for with `ppoll`
//! until the deadline and read with `recv`, all on the thread that called PAM.
//!
//! Only opening a connection uses the thread's async runtime (`crate::runtime`): name
//! resolution runs on its blocking pool, so that a resolver that hangs is still cut off at
//! the deadline, and connects are bounded by `connect_timeout=`. Between checks a connection
//! waits in this thread's pool; before it is used again, a non-blocking peek at its socket
//! tells whether the server closed it meanwhile (its keep-alive timeout), so a request is
//! never written to a connection already dead.

use super::ClientKey;
use crate::fork::Owned;
use crate::runtime::{self, Stopped};
use bytes::Bytes;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::io::{Read as _, Write as _};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpStream, UnixStream};
use ureq_proto::client::state::{RecvBody, RecvResponse};
use ureq_proto::client::{Call, RecvBodyResult, RecvResponseResult, SendRequestResult};
use ureq_proto::BodyMode;
use url::Url;
use zeroize::Zeroizing;

pub use ::http::{header, HeaderMap, HeaderValue, Method, StatusCode};

/// An idle connection older than this is closed rather than reused (servers close theirs
/// sooner: Apache after 5 s, nginx after 75 s).
const IDLE_FOR: Duration = Duration::from_secs(60);
/// Idle connections kept per server and configuration: one per concurrent check of a thread,
/// and a thread runs one check at a time.
const IDLE_PER_ORIGIN: usize = 4;
/// An answer's head must fit in this: with the body caps the backends set, what a server can
/// make the module hold.
const HEAD_CAP: usize = 64 * 1024;
/// How much is asked of the socket per read.
const READ_SIZE: usize = 16 * 1024;

/// Why an exchange failed, as `crate::http::describe` words it.
#[derive(Debug)]
pub enum Error {
    /// The request could not be built (a header value with a newline, a URL that is not one).
    Request(String),
    /// The configuration cannot work (the CA bundle cannot be read): the same for every URL.
    Misconfigured(String),
    /// A time limit passed: the attempt's deadline (while connecting or while the answer, its
    /// head or its body, was still coming) or `connect_timeout=` (connect, TLS handshake).
    TimedOut,
    /// Nothing listens there, or there is no route: the server is down.
    Unreachable(String),
    /// Any other failure to connect: name resolution, TLS (certificate verification).
    Connect(String),
    /// The server broke HTTP or the connection.
    Protocol(String),
}

/// The text of an error and its causes, innermost last, each said once.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        source = s.source();
    }
    text
}

/// A client for one configuration: what the connections it opens are like. Cheap to make and
/// to clone; the connections live in this thread's pool, not in the client.
#[derive(Clone)]
pub struct Client {
    key: Arc<ClientKey>,
}

impl Client {
    pub fn new(key: ClientKey) -> Client {
        Client { key: Arc::new(key) }
    }

    /// The configuration its connections are opened under.
    pub fn key(&self) -> &ClientKey {
        &self.key
    }

    pub fn get(&self, url: impl Target) -> RequestBuilder {
        self.request(Method::GET, url)
    }

    pub fn post(&self, url: impl Target) -> RequestBuilder {
        self.request(Method::POST, url)
    }

    pub fn head(&self, url: impl Target) -> RequestBuilder {
        self.request(Method::HEAD, url)
    }

    fn request(&self, method: Method, url: impl Target) -> RequestBuilder {
        RequestBuilder {
            client: self.clone(),
            method,
            url: url.into_url(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
            error: None,
        }
    }
}

/// What a request may be sent to: a URL, as text or parsed.
pub trait Target {
    fn into_url(self) -> Result<Url, String>;
}

impl Target for Url {
    fn into_url(self) -> Result<Url, String> {
        Ok(self)
    }
}

impl Target for &Url {
    fn into_url(self) -> Result<Url, String> {
        Ok(self.clone())
    }
}

impl Target for &str {
    fn into_url(self) -> Result<Url, String> {
        // The error names no part of the URL: a GET login carries the password in it.
        Url::parse(self).map_err(|e| format!("not a URL ({e})"))
    }
}

impl Target for &String {
    fn into_url(self) -> Result<Url, String> {
        self.as_str().into_url()
    }
}

impl Target for String {
    fn into_url(self) -> Result<Url, String> {
        self.as_str().into_url()
    }
}

/// One request being put together (the subset of reqwest's builder the backends use).
pub struct RequestBuilder {
    client: Client,
    method: Method,
    url: Result<Url, String>,
    headers: HeaderMap,
    body: Bytes,
    error: Option<String>,
}

impl RequestBuilder {
    pub fn header<K, V>(mut self, name: K, value: V) -> RequestBuilder
    where
        K: TryInto<header::HeaderName>,
        V: TryInto<HeaderValue>,
    {
        match (name.try_into(), value.try_into()) {
            (Ok(name), Ok(value)) => {
                self.headers.insert(name, value);
            }
            // Never the value: it may be a session key or a credential.
            _ => self.error = Some("a request header is not valid HTTP".into()),
        }
        self
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> RequestBuilder {
        self.body = body.into();
        self
    }

    /// `Authorization: Basic`, marked sensitive (never indexed by an HTTP/2 proxy, not shown
    /// by Debug).
    pub fn basic_auth(self, user: &str, password: Option<&str>) -> RequestBuilder {
        use base64::Engine;
        let credentials = zeroize::Zeroizing::new(format!("{user}:{}", password.unwrap_or("")));
        let encoded = zeroize::Zeroizing::new(
            base64::engine::general_purpose::STANDARD.encode(credentials.as_bytes()),
        );
        self.authorization(&format!("Basic {}", encoded.as_str()))
    }

    /// `Authorization: Bearer`, marked sensitive.
    pub fn bearer_auth(self, token: &str) -> RequestBuilder {
        self.authorization(&format!("Bearer {token}"))
    }

    fn authorization(mut self, value: &str) -> RequestBuilder {
        let value = zeroize::Zeroizing::new(value.to_string());
        match HeaderValue::from_str(&value) {
            Ok(mut value) => {
                value.set_sensitive(true);
                self.headers.insert(header::AUTHORIZATION, value);
            }
            Err(_) => self.error = Some("credentials that cannot travel in a header".into()),
        }
        self
    }
}

/// A response whose head has arrived; the body is read by `crate::http::read_capped`, or was
/// read with the head (`crate::http::fetch`).
pub struct Response {
    status: StatusCode,
    headers: HeaderMap,
    content_length: Option<u64>,
    body: Body,
}

/// A body: the bytes (`None`: more than the cap), or why they could not be read.
type Read = Result<Option<Vec<u8>>, Error>;

enum Body {
    /// Still to come, through this connection.
    Coming(Box<Coming>),
    /// Read with the head (or there was none), taken once; a failure leaves the head standing
    /// (a status decides for some backends).
    Read(Option<Read>),
}

/// A body still to come: where the protocol stands, and the connection it comes through.
struct Coming {
    call: Call<RecvBody>,
    conn: Box<Conn>,
    origin: Origin,
}

impl Response {
    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The announced body length, if the server announced one (0 for an answer that has no
    /// body: HEAD, 204, 304).
    pub fn content_length(&self) -> Option<u64> {
        self.content_length
    }

    /// The body, if it was read with the head: `Ok(None)` if it held more than `cap` bytes,
    /// `Err` if reading it failed.
    pub fn take_read(&mut self, cap: u64) -> Option<Read> {
        match &mut self.body {
            Body::Read(read) => Some(
                read.take()
                    .unwrap_or_else(|| Err(Error::Protocol("the body was already taken".into())))
                    .map(|body| body.filter(|b| b.len() as u64 <= cap)),
            ),
            Body::Coming(_) => None,
        }
    }

    /// The body, at most `cap` bytes (`None` if there is more), read now until `until` if it
    /// was not read with the head; the connection goes back to the pool once the body has
    /// ended.
    pub fn read_capped(mut self, cap: u64, until: Instant) -> Read {
        if let Some(read) = self.take_read(cap) {
            return read;
        }
        let Body::Coming(coming) = self.body else {
            return Err(Error::Protocol("the body was already taken".into()));
        };
        let Coming { call, conn, origin } = *coming;
        read_body(call, conn, origin, cap, until)
    }
}

/// A connected, non-blocking socket, read and written on the calling thread: a read or write
/// that would block waits with `ppoll` for the socket, until the exchange's deadline. Writes
/// never raise SIGPIPE (`MSG_NOSIGNAL`), so an HTTP check leaves the host's signal mask alone.
struct Socket {
    fd: OwnedFd,
    /// The deadline of the exchange using it; past it, a wait ends with `TimedOut`.
    until: Cell<Instant>,
}

impl Socket {
    fn new(fd: OwnedFd, until: Instant) -> Socket {
        Socket {
            fd,
            until: Cell::new(until),
        }
    }

    /// Waits until the socket is ready for `events` (or failed, or closed), or the deadline
    /// passed (`TimedOut`).
    fn wait(&self, events: libc::c_short) -> std::io::Result<()> {
        let mut pollfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events,
            revents: 0,
        };
        loop {
            let left = self
                .until
                .get()
                .checked_duration_since(Instant::now())
                .filter(|left| !left.is_zero())
                .ok_or(std::io::ErrorKind::TimedOut)?;
            let timeout = libc::timespec {
                tv_sec: left.as_secs() as libc::time_t,
                tv_nsec: left.subsec_nanos() as libc::c_long,
            };
            // SAFETY: one pollfd on the stack, a timeout, no signal mask change.
            let n = unsafe { libc::ppoll(&mut pollfd, 1, &timeout, std::ptr::null()) };
            if n > 0 {
                return Ok(());
            }
            if n < 0 {
                let err = std::io::Error::last_os_error();
                if err.kind() != std::io::ErrorKind::Interrupted {
                    return Err(err);
                }
            }
        }
    }

    /// `n` from a send or recv: the count, or the error (`WouldBlock` included).
    fn outcome(n: isize) -> std::io::Result<usize> {
        if n >= 0 {
            Ok(n as usize)
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    /// `TimedOut` once the deadline has passed, even if the socket has more: a server that
    /// keeps sending (records TLS reads past, interim answers) is cut off too.
    fn in_time(&self) -> std::io::Result<()> {
        if Instant::now() >= self.until.get() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        Ok(())
    }
}

impl std::io::Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.in_time()?;
        loop {
            // SAFETY: recv writes at most `buf.len()` bytes into `buf`.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            match Socket::outcome(n) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => self.wait(libc::POLLIN)?,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                done => return done,
            }
        }
    }
}

impl std::io::Write for Socket {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.in_time()?;
        loop {
            // SAFETY: send reads at most `buf.len()` bytes from `buf`.
            let n = unsafe {
                libc::send(
                    self.fd.as_raw_fd(),
                    buf.as_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                )
            };
            match Socket::outcome(n) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => self.wait(libc::POLLOUT)?,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                done => return done,
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The byte stream of a connection.
enum Stream {
    /// Plain TCP, or kopano-server's unix socket (`socket=`).
    Plain(Socket),
    Tls(Box<native_tls::TlsStream<Socket>>),
}

impl Stream {
    fn socket(&self) -> &Socket {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref(),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }

    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
}

/// Where a connection goes, and under which configuration it was opened: connections are
/// reused only for the same server under the same TLS trust and socket.
#[derive(Clone, PartialEq, Eq)]
struct Origin {
    key: Arc<ClientKey>,
    tls: bool,
    host: String,
    port: u16,
}

/// By the server only: configurations rarely differ for one server, and equality still
/// compares them.
impl std::hash::Hash for Origin {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.host.hash(state);
        self.port.hash(state);
        self.tls.hash(state);
    }
}

impl Origin {
    fn of(key: &Arc<ClientKey>, url: &Url) -> Result<Origin, Error> {
        let tls = match url.scheme() {
            "http" => false,
            "https" => true,
            _ => return Err(Error::Request("the URL is not http:// or https://".into())),
        };
        let host = match url.host() {
            Some(url::Host::Domain(name)) => name.to_string(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(Error::Request("the URL names no host".into())),
        };
        let port = url
            .port_or_known_default()
            .ok_or_else(|| Error::Request("the URL names no port".into()))?;
        Ok(Origin {
            key: key.clone(),
            tls,
            host,
            port,
        })
    }
}

/// Bytes read from a connection's socket and not yet used by the protocol: `buf[start..end]`.
/// The buffer is zeroed once, when it grows, not on every read.
#[derive(Default)]
struct Input {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Input {
    fn bytes(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn len(&self) -> usize {
        self.end - self.start
    }

    fn is_empty(&self) -> bool {
        self.start == self.end
    }

    fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Where the next read goes: the free end of the buffer, made by moving what is unused to
    /// the front or, if it fills the buffer, by growing it.
    fn room(&mut self) -> &mut [u8] {
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                self.buf.resize(self.buf.len() + READ_SIZE, 0);
            }
        }
        &mut self.buf[self.end..]
    }
}

/// One HTTP/1.1 connection, between exchanges or in one.
struct Conn {
    stream: Stream,
    input: Input,
    idle_since: Instant,
    /// How long it may wait idle: [`IDLE_FOR`], or less if the server said it closes idle
    /// connections sooner (`Keep-Alive: timeout=`).
    keep_for: Duration,
}

impl Conn {
    /// Writes the whole request. On failure, also whether not one byte of it was handed to
    /// the kernel (only then may it go out again on another connection).
    fn send(&mut self, bytes: &[u8]) -> Result<(), (bool, std::io::Error)> {
        let mut sent = 0;
        while sent < bytes.len() {
            match self.stream.write(&bytes[sent..]) {
                Ok(0) => return Err((sent == 0, std::io::ErrorKind::WriteZero.into())),
                Ok(n) => sent += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err((sent == 0, e)),
            }
        }
        Ok(())
    }

    /// Reads more from the socket into `input`: the count, 0 at the end of the stream. Past
    /// the exchange's deadline, `TimedOut` even if the server keeps sending (`Socket::in_time`):
    /// a server that streams without end (interim answers, an endless body) is cut off at the
    /// deadline too.
    fn fill(&mut self) -> std::io::Result<usize> {
        self.stream.socket().in_time()?;
        let room = self.input.room();
        let read = self.stream.read(room)?;
        self.input.end += read;
        Ok(read)
    }

    /// Whether it can take another request: the server has neither closed it nor sent
    /// anything unasked (both show as something to read while idle).
    fn reusable(&self) -> bool {
        if self.idle_since.elapsed() >= self.keep_for {
            return false;
        }
        let mut byte = 0u8;
        // SAFETY: a one-byte peek into a local; the fd is this connection's open socket.
        let n = unsafe {
            libc::recv(
                self.stream.socket().fd.as_raw_fd(),
                &mut byte as *mut u8 as *mut libc::c_void,
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock
    }

    /// An I/O failure in an exchange that must end by `until`, in the words of [`Error`].
    fn failed(&self, e: std::io::Error, until: Instant) -> Error {
        if e.kind() == std::io::ErrorKind::TimedOut || Instant::now() >= until {
            Error::TimedOut
        } else {
            Error::Protocol(chain(&e))
        }
    }
}

thread_local! {
    /// This thread's idle connections, by origin, most recently used last.
    /// Never touched in a process that did not make them (`fork::Owned`).
    static IDLE: RefCell<HashMap<Origin, Vec<Owned<Box<Conn>>>>> = RefCell::new(HashMap::new());
}

/// A reusable idle connection to `origin` made by this process, if there is one.
fn checkout(origin: &Origin) -> Option<Box<Conn>> {
    IDLE.try_with(|idle| {
        let mut idle = idle.try_borrow_mut().ok()?;
        let kept = idle.get_mut(origin)?;
        while let Some(conn) = kept.pop() {
            if let Some(conn) = conn.take().filter(|conn| conn.reusable()) {
                return Some(conn);
            }
        }
        None
    })
    .ok()
    .flatten()
}

/// Puts a connection whose exchange ended cleanly back for the next check on this thread.
fn checkin(origin: Origin, mut conn: Box<Conn>) {
    let unread_in_tls = match &conn.stream {
        Stream::Plain(_) => false,
        Stream::Tls(tls) => tls.buffered_read_size().map_or(true, |n| n > 0),
    };
    if !conn.input.is_empty() || unread_in_tls {
        // The server sent more than the answer: nothing unasked is ever read as an answer.
        return;
    }
    conn.idle_since = Instant::now();
    let _ = IDLE.try_with(|idle| {
        if let Ok(mut idle) = idle.try_borrow_mut() {
            if idle.len() >= 16 && !idle.contains_key(&origin) {
                // Many configurations in one thread: keep the map small rather than clever.
                idle.clear();
            }
            let kept = idle.entry(origin).or_default();
            if kept.len() >= IDLE_PER_ORIGIN {
                kept.remove(0);
            }
            kept.push(Owned::new(conn));
        }
    });
}

/// A request ready to be written: the request line and headers as `ureq-proto` takes them,
/// and the body.
struct Prepared {
    head: ::http::Request<()>,
    body: Bytes,
}

impl Prepared {
    /// The request's bytes, head and body, to be written in one go (wiped when dropped: they
    /// hold the password), and the protocol state that reads the answer.
    fn encode(self) -> Result<(Zeroizing<Vec<u8>>, Call<RecvResponse>), Error> {
        let invalid =
            |e: ureq_proto::Error| Error::Request(format!("cannot write the request: {e}"));
        // Room for the request line and every header line at once, and the body.
        let room = 256
            + self
                .head
                .uri()
                .path_and_query()
                .map_or(0, |p| p.as_str().len())
            + self
                .head
                .headers()
                .iter()
                .map(|(name, value)| name.as_str().len() + value.len() + 4)
                .sum::<usize>();
        let mut out = Zeroizing::new(vec![0; room + self.body.len()]);
        let mut call = Call::new(self.head)
            .map_err(|e| Error::Request(e.to_string()))?
            .proceed();
        let mut used = call.write(&mut out).map_err(invalid)?;
        if !call.can_proceed() {
            return Err(Error::Request("the request head does not fit".into()));
        }
        let call = match call.proceed().map_err(invalid)? {
            Some(SendRequestResult::RecvResponse(call)) => call,
            Some(SendRequestResult::SendBody(mut call)) => {
                let mut body = &self.body[..];
                loop {
                    let (taken, wrote) = call.write(body, &mut out[used..]).map_err(invalid)?;
                    used += wrote;
                    body = &body[taken..];
                    if body.is_empty() && call.can_proceed() {
                        break;
                    }
                    if taken == 0 && wrote == 0 {
                        return Err(Error::Request("the request body does not fit".into()));
                    }
                }
                call.proceed()
                    .ok_or_else(|| Error::Request("the request body was not all written".into()))?
            }
            _ => return Err(Error::Request("the request cannot be sent".into())),
        };
        out.truncate(used);
        Ok((out, call))
    }
}

/// Sends one request and waits for the head of its answer until `until`, and with `read` the
/// body too, at most that many bytes. A body that cannot be read leaves the head standing:
/// some backends decide on the status.
pub fn execute(
    request: RequestBuilder,
    read: Option<u64>,
    until: Instant,
) -> Result<Response, Error> {
    let (origin, prepared) = prepare(request)?;
    let (bytes, call) = prepared.encode()?;
    // A kept connection first; if the server closed it before a byte of the request left
    // (after the peek), the same request goes out once more on a new connection (the protocol
    // state has seen nothing of the old one). A request that may have reached the server is
    // never sent twice: that could count a wrong password twice.
    if let Some(mut conn) = checkout(&origin) {
        conn.stream.socket().until.set(until);
        match conn.send(&bytes) {
            Ok(()) => return receive(origin, conn, call, read, until),
            Err((true, e)) if closed(&e) => {}
            Err((_, e)) => return Err(conn.failed(e, until)),
        }
    }
    let mut conn = connect(&origin, until)?;
    if let Err((_, e)) = conn.send(&bytes) {
        return Err(conn.failed(e, until));
    }
    receive(origin, conn, call, read, until)
}

/// Whether a write failed because the connection was found closed.
fn closed(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EPIPE) | Some(libc::ECONNRESET) | Some(libc::ENOTCONN)
    )
}

/// The request's origin and its parts, with the headers every request carries.
fn prepare(request: RequestBuilder) -> Result<(Origin, Prepared), Error> {
    let RequestBuilder {
        client,
        method,
        url,
        headers,
        body,
        error,
    } = request;
    if let Some(why) = error {
        return Err(Error::Request(why));
    }
    let url = url.map_err(Error::Request)?;
    let origin = Origin::of(&client.key, &url)?;
    let method_is_post = method == Method::POST;
    let mut message = ::http::Request::new(());
    *message.method_mut() = method;
    use url::Position;
    *message.uri_mut() = ::http::Uri::try_from(&url[Position::BeforePath..Position::AfterQuery])
        .map_err(|_| Error::Request("the URL's path is not valid in a request".into()))?;
    let fields = message.headers_mut();
    fields.insert(
        header::HOST,
        HeaderValue::from_str(&url[Position::BeforeHost..Position::AfterPort])
            .map_err(|_| Error::Request("the URL's host is not valid in a request".into()))?,
    );
    fields.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
    fields.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
    fields.extend(headers);
    // The framing is the client's alone: it sends exactly the body it has.
    fields.remove(header::TRANSFER_ENCODING);
    fields.remove(header::CONTENT_LENGTH);
    if !body.is_empty() || method_is_post {
        fields.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    Ok((
        origin,
        Prepared {
            head: message,
            body,
        },
    ))
}

const USER_AGENT: &str = concat!("pam_mailauth/", env!("CARGO_PKG_VERSION"));

/// Reads the head of the answer (past any 1xx), then, with `read`, its body.
fn receive(
    origin: Origin,
    mut conn: Box<Conn>,
    mut call: Call<RecvResponse>,
    read: Option<u64>,
    until: Instant,
) -> Result<Response, Error> {
    let protocol = |e: ureq_proto::Error| Error::Protocol(e.to_string());
    let head = loop {
        let (used, head) = call
            .try_response(conn.input.bytes(), false)
            .map_err(protocol)?;
        conn.input.consume(used);
        if let Some(head) = head {
            break head;
        }
        if used > 0 {
            continue; // an interim (1xx) answer, passed over
        }
        if conn.input.len() >= HEAD_CAP {
            return Err(Error::Protocol(format!(
                "the answer's head is larger than {} KiB",
                HEAD_CAP / 1024
            )));
        }
        match conn.fill() {
            Ok(0) => {
                return Err(Error::Protocol(
                    "the connection was closed before an answer came".into(),
                ))
            }
            Ok(_) => {}
            Err(e) => return Err(conn.failed(e, until)),
        }
    };
    let (parts, ()) = head.into_parts();
    if parts.headers.contains_key(header::TRANSFER_ENCODING) {
        if parts.headers.contains_key(header::CONTENT_LENGTH) {
            // Two framings, and which one the server meant is a guess (RFC 9112, 6.1: "ought
            // to be handled as an error").
            return Err(Error::Protocol(
                "the answer has both Transfer-Encoding and Content-Length".into(),
            ));
        }
        // Anything but plain chunks would reach a backend still encoded (or, from an HTTP/1.0
        // server, with the chunk framing in it).
        let mut codings = parts.headers.get_all(header::TRANSFER_ENCODING).iter();
        let chunked = codings
            .next()
            .is_some_and(|te| te.as_bytes().trim_ascii().eq_ignore_ascii_case(b"chunked"))
            && codings.next().is_none()
            && parts.version == ::http::Version::HTTP_11;
        if !chunked {
            return Err(Error::Protocol(
                "the answer's Transfer-Encoding is not just chunked".into(),
            ));
        }
    }
    if let Some(secs) = keep_alive_timeout(&parts.headers) {
        // Reused only with a second to spare before the server's own close.
        conn.keep_for = IDLE_FOR.min(Duration::from_secs(secs.saturating_sub(1)));
    }
    let answer = |content_length, body| Response {
        status: parts.status,
        headers: parts.headers,
        content_length,
        body,
    };
    let keep = match call.proceed() {
        Some(RecvResponseResult::RecvBody(call)) => {
            let content_length = match call.body_mode() {
                BodyMode::LengthDelimited(len) => Some(len),
                BodyMode::NoBody => Some(0),
                BodyMode::Chunked | BodyMode::CloseDelimited => None,
            };
            let body = match read {
                // Not read at all: `read_capped` names the announced length.
                Some(cap) if content_length.is_some_and(|len| len > cap) => {
                    Body::Read(Some(Ok(None)))
                }
                Some(cap) => Body::Read(Some(read_body(call, conn, origin, cap, until))),
                None => Body::Coming(Box::new(Coming { call, conn, origin })),
            };
            return Ok(answer(content_length, body));
        }
        Some(RecvResponseResult::Cleanup(done)) => !done.must_close_connection(),
        // Never followed: the answer is the redirect itself.
        Some(RecvResponseResult::Redirect(done)) => !done.must_close_connection(),
        None => return Err(Error::Protocol("the answer's head was not complete".into())),
    };
    // No body (HEAD, 204, 304, an empty one): the exchange has ended.
    if keep {
        checkin(origin, conn);
    }
    Ok(answer(Some(0), Body::Read(Some(Ok(Some(Vec::new()))))))
}

/// The `timeout=` of a `Keep-Alive` header (Apache: `Keep-Alive: timeout=5, max=100`).
fn keep_alive_timeout(headers: &HeaderMap) -> Option<u64> {
    let value = headers.get("keep-alive")?.to_str().ok()?;
    value.split(',').find_map(|part| {
        let (name, secs) = part.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("timeout")
            .then(|| secs.trim().parse().ok())?
    })
}

/// Reads a body to its end, at most `cap` bytes (`None` if there is more), until `until`; the
/// connection goes back to the pool if the answer leaves it fit for another.
fn read_body(
    mut call: Call<RecvBody>,
    mut conn: Box<Conn>,
    origin: Origin,
    cap: u64,
    until: Instant,
) -> Read {
    conn.stream.socket().until.set(until);
    let to_close = matches!(call.body_mode(), BodyMode::CloseDelimited);
    let mut body = Vec::new();
    loop {
        if !to_close && call.can_proceed() {
            break;
        }
        let mut progress = false;
        if !conn.input.is_empty() {
            let had = body.len();
            // Decoding never makes more bytes than it takes.
            body.resize(had + conn.input.len(), 0);
            let (used, wrote) = call
                .read(conn.input.bytes(), &mut body[had..])
                .map_err(|e| Error::Protocol(e.to_string()))?;
            body.truncate(had + wrote);
            conn.input.consume(used);
            progress = used > 0 || wrote > 0;
            if body.len() as u64 > cap {
                return Ok(None);
            }
        }
        if progress {
            continue;
        }
        if conn.input.len() >= HEAD_CAP {
            // A chunk-size or trailer line without end.
            return Err(Error::Protocol(format!(
                "a line of the answer's chunked body is longer than {} KiB",
                HEAD_CAP / 1024
            )));
        }
        match conn.fill() {
            Ok(0) if to_close => return Ok(Some(body)),
            Ok(0) => {
                return Err(Error::Protocol(
                    "the connection was closed before the answer's body ended".into(),
                ))
            }
            Ok(_) => {}
            Err(e) => return Err(conn.failed(e, until)),
        }
    }
    let keep = match call.proceed() {
        Some(RecvBodyResult::Cleanup(done)) => !done.must_close_connection(),
        Some(RecvBodyResult::Redirect(done)) => !done.must_close_connection(),
        None => false,
    };
    if keep {
        checkin(origin, conn);
    }
    Ok(Some(body))
}

/// Opens a new connection by `until`: the unix socket (`socket=`), or TCP to each address of
/// the host in turn within `connect_timeout=` each, then TLS for https, verifying the
/// certificate and the host name with the configuration's trust roots, also within
/// `connect_timeout=`.
fn connect(origin: &Origin, until: Instant) -> Result<Box<Conn>, Error> {
    let key = &origin.key;
    // The trust roots first, and only for TLS (a plain `http://` line never reads a CA
    // bundle): a bundle that cannot be used means no contact at all.
    let connector = match (&key.unix_socket, origin.tls) {
        (Some(_), true) => {
            return Err(Error::Request(
                "https:// cannot go over a unix socket (socket=)".into(),
            ))
        }
        (None, true) => Some(super::tls_connector(&key.cafile).map_err(Error::Misconfigured)?),
        _ => None,
    };
    let left = until
        .checked_duration_since(Instant::now())
        .ok_or(Error::TimedOut)?;
    // Name resolution and connect on the runtime, which bounds both; the socket leaves it
    // connected.
    let opened = runtime::run_without_sigpipe_guard(left, async {
        let fd: OwnedFd = match &key.unix_socket {
            Some(path) => within(key.connect_timeout, UnixStream::connect(path))
                .await?
                .into_std()
                .map_err(io_error)?
                .into(),
            None => tcp(key.connect_timeout, &origin.host, origin.port)
                .await?
                .into_std()
                .map_err(io_error)?
                .into(),
        };
        Ok::<OwnedFd, Error>(fd)
    });
    let fd = match opened {
        Ok(fd) => fd?,
        Err(Stopped::TimedOut) => return Err(Error::TimedOut),
        Err(Stopped::NoRuntime(why)) => return Err(Error::Connect(why)),
    };
    let stream = match connector {
        None => Stream::Plain(Socket::new(fd, until)),
        Some(connector) => {
            let handshake_until = until.min(Instant::now() + key.connect_timeout);
            let socket = Socket::new(fd, handshake_until);
            match connector.connect(&origin.host, socket) {
                Ok(tls) => {
                    tls.get_ref().until.set(until);
                    Stream::Tls(Box::new(tls))
                }
                Err(_) if Instant::now() >= handshake_until => return Err(Error::TimedOut),
                Err(native_tls::HandshakeError::Failure(e)) => {
                    return Err(Error::Connect(chain(&e)))
                }
                Err(native_tls::HandshakeError::WouldBlock(_)) => {
                    return Err(Error::Connect("the TLS handshake did not finish".into()))
                }
            }
        }
    };
    Ok(Box::new(Conn {
        stream,
        input: Input::default(),
        idle_since: Instant::now(),
        keep_for: IDLE_FOR,
    }))
}

/// `fut` within `limit`, or [`Error::TimedOut`]; an I/O error that says the server is
/// down is told apart.
async fn within<T, F>(limit: Duration, fut: F) -> Result<T, Error>
where
    F: Future<Output = std::io::Result<T>>,
{
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(io_error(e)),
        Err(_) => Err(Error::TimedOut),
    }
}

fn io_error(e: std::io::Error) -> Error {
    use std::io::ErrorKind::{ConnectionRefused, HostUnreachable, NetworkUnreachable};
    match e.kind() {
        ConnectionRefused | HostUnreachable | NetworkUnreachable => {
            Error::Unreachable(e.to_string())
        }
        _ => Error::Connect(e.to_string()),
    }
}

/// TCP to `host:port`: an address literal as it is, a name through the system's resolver (on
/// the runtime's blocking pool, bounded like everything else by the exchange's deadline), each
/// address in turn.
async fn tcp(limit: Duration, host: &str, port: u16) -> Result<TcpStream, Error> {
    let addresses: Vec<std::net::SocketAddr> = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => vec![(ip, port).into()],
        Err(_) => {
            // The lookup runs on a thread of the runtime's pool, which inherits this thread's
            // signal mask when it starts, and the resolver's TCP writes do not avoid SIGPIPE.
            crate::sigpipe::before_io();
            tokio::net::lookup_host((host, port))
                .await
                .map_err(|e| Error::Connect(format!("cannot resolve {host}: {e}")))?
                .collect()
        }
    };
    let mut last = Error::Connect(format!("{host} has no address"));
    for address in addresses {
        match within(limit, TcpStream::connect(address)).await {
            Ok(stream) => {
                // Small requests and answers: no Nagle delay between a head and its body.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A server that answers every request on every connection with what `answer` writes,
    /// counting connections.
    fn serve(answer: fn(&mut std::net::TcpStream)) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                counted.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(conn.try_clone().unwrap());
                    loop {
                        let mut line = String::new();
                        // The request head, up to its empty line (GET: no body).
                        loop {
                            line.clear();
                            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            if line == "\r\n" {
                                break;
                            }
                        }
                        answer(&mut conn);
                    }
                });
            }
        });
        (url, connections)
    }

    fn client() -> Client {
        Client::new(ClientKey {
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            cafile: None,
            unix_socket: None,
        })
    }

    fn get(url: &str, limit: Duration) -> Result<Response, Error> {
        execute(client().get(url), Some(1024), Instant::now() + limit)
    }

    /// Why the answer at `url` was refused as a protocol error; anything else fails the test.
    fn refusal(url: &str) -> String {
        match get(url, Duration::from_secs(2)) {
            Err(Error::Protocol(why)) => why,
            other => panic!("{:?}", other.map(|response| response.status())),
        }
    }

    fn body(response: Result<Response, Error>) -> Result<Vec<u8>, String> {
        let mut response = response.map_err(|e| format!("{e:?}"))?;
        match response.take_read(1024) {
            Some(Ok(Some(body))) => Ok(body),
            other => Err(format!(
                "{:?}",
                other.map(|r| r.map(|b| b.map(|b| b.len())))
            )),
        }
    }

    #[test]
    fn a_chunked_body_is_decoded_and_the_connection_kept() {
        let (url, connections) = serve(|c| {
            let _ = c.write_all(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n3;x=y\r\n!!!\r\n0\r\n\r\n",
            );
        });
        for _ in 0..3 {
            assert_eq!(body(get(&url, Duration::from_secs(2))).unwrap(), b"ok!!!");
        }
        assert_eq!(connections.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn an_answer_with_two_framings_is_refused() {
        let (url, _) = serve(|c| {
            let _ = c.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
            );
        });
        let why = refusal(&url);
        assert!(why.contains("both"), "{why}");
    }

    #[test]
    fn a_transfer_encoding_other_than_chunked_is_refused() {
        let (url, _) = serve(|c| {
            let _ = c.write_all(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
            );
        });
        let why = refusal(&url);
        assert!(why.contains("chunked"), "{why}");
        let (url, _) = serve(|c| {
            let _ = c.write_all(
                b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
            );
        });
        let why = refusal(&url);
        assert!(why.contains("chunked"), "{why}");
    }

    #[test]
    fn a_server_that_closes_idle_connections_soon_gets_a_new_one() {
        let (url, connections) = serve(|c| {
            let _ = c.write_all(
                b"HTTP/1.1 200 OK\r\nKeep-Alive: timeout=1, max=100\r\nContent-Length: 2\r\n\r\nok",
            );
        });
        assert_eq!(body(get(&url, Duration::from_secs(2))).unwrap(), b"ok");
        assert_eq!(body(get(&url, Duration::from_secs(2))).unwrap(), b"ok");
        assert_eq!(connections.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_framing_header_set_by_a_caller_is_not_sent() {
        let (url, _) = serve(|c| {
            let _ = c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        });
        let request = client().get(url.as_str()).header("content-length", "5");
        let response = execute(request, Some(1024), Instant::now() + Duration::from_secs(2));
        assert_eq!(body(response).unwrap(), b"ok");
    }

    #[test]
    fn interim_answers_are_passed_over() {
        let (url, _) = serve(|c| {
            let _ = c.write_all(
                b"HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            );
        });
        let response = get(&url, Duration::from_secs(2));
        assert_eq!(response.as_ref().unwrap().status(), StatusCode::OK);
        assert_eq!(body(response).unwrap(), b"ok");
    }

    #[test]
    fn endless_interim_answers_end_at_the_deadline() {
        let (url, _) = serve(|c| while c.write_all(b"HTTP/1.1 102 Processing\r\n\r\n").is_ok() {});
        let started = Instant::now();
        let err = get(&url, Duration::from_millis(300)).err().unwrap();
        assert!(matches!(err, Error::TimedOut), "{err:?}");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn an_endless_body_ends_at_the_deadline_or_the_cap() {
        let (url, _) = serve(|c| {
            let _ = c.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
            while c.write_all(b"1\r\nx\r\n").is_ok() {}
        });
        let started = Instant::now();
        assert!(body(get(&url, Duration::from_millis(300))).is_err());
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_chunk_size_line_without_end_is_refused() {
        let (url, _) = serve(|c| {
            let _ = c.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1");
            let spaces = vec![b' '; 4096];
            while c.write_all(&spaces).is_ok() {}
        });
        let started = Instant::now();
        let err = body(get(&url, Duration::from_secs(3))).unwrap_err();
        assert!(err.contains("longer than"), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn bytes_after_the_answer_unfit_the_connection() {
        let (url, connections) = serve(|c| {
            let _ =
                c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n");
        });
        assert_eq!(body(get(&url, Duration::from_secs(2))).unwrap(), b"ok");
        assert_eq!(body(get(&url, Duration::from_secs(2))).unwrap(), b"ok");
        assert_eq!(connections.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_connection_the_server_closes_is_not_asked_again() {
        let (url, connections) = serve(|c| {
            let _ = c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            let _ = c.shutdown(std::net::Shutdown::Both);
        });
        for _ in 0..3 {
            assert_eq!(body(get(&url, Duration::from_secs(2))).unwrap(), b"ok");
            // Time for the close to arrive (one that comes between the peek and the write
            // fails that check: a request that may have been seen is not sent twice).
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(connections.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn a_request_the_server_may_have_seen_is_never_sent_twice() {
        static REQUESTS: AtomicUsize = AtomicUsize::new(0);
        let (url, connections) = serve(|c| {
            if REQUESTS.fetch_add(1, Ordering::SeqCst) == 0 {
                let _ = c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            } else {
                // The second request was read, then the connection closed without an answer:
                // sending it again could count a wrong password twice.
                let _ = c.shutdown(std::net::Shutdown::Both);
            }
        });
        assert_eq!(body(get(&url, Duration::from_secs(2))).unwrap(), b"ok");
        assert!(get(&url, Duration::from_secs(2)).is_err());
        assert_eq!(REQUESTS.load(Ordering::SeqCst), 2);
        assert_eq!(connections.load(Ordering::SeqCst), 1);
    }

    fn sigpipe_blocked_here() -> bool {
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut set) };
        unsafe { libc::sigismember(&set, libc::SIGPIPE) == 1 }
    }

    /// ureq-proto traces the bytes it writes at trace level, and a request carries a password:
    /// every `log` call must be compiled out (Cargo.toml: `max_level_off`), whatever logger a
    /// host process installs.
    #[test]
    fn no_log_record_can_carry_a_request() {
        assert_eq!(log::STATIC_MAX_LEVEL, log::LevelFilter::Off);
    }

    /// Writes never raise SIGPIPE (MSG_NOSIGNAL), so a check by address leaves the host's
    /// mask alone; a name lookup may start a pool thread, which inherits the mask, so a check
    /// by name blocks SIGPIPE first (until the hook returns).
    #[test]
    fn only_a_name_lookup_blocks_sigpipe() {
        let (url, _) = serve(|c| {
            let _ = c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        });
        let by_name = url.replace("127.0.0.1", "localhost");
        std::thread::spawn(move || {
            let _hook = crate::sigpipe::Hook::arm();
            assert_eq!(body(get(&url, Duration::from_secs(2))).unwrap(), b"ok");
            assert!(!sigpipe_blocked_here(), "by address");
            assert_eq!(body(get(&by_name, Duration::from_secs(2))).unwrap(), b"ok");
            assert!(sigpipe_blocked_here(), "by name");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_head_larger_than_the_cap_is_refused() {
        let (url, _) = serve(|c| {
            let _ = c.write_all(b"HTTP/1.1 200 OK\r\n");
            let header = format!("X-Filler: {}\r\n", "y".repeat(1000));
            for _ in 0..100 {
                let _ = c.write_all(header.as_bytes());
            }
        });
        refusal(&url);
    }
}
