//! The HTTP/1.1 client under `crate::http`: hyper's HTTP/1 connection, driven by the request
//! that uses it, on the calling thread's runtime (`crate::runtime`), with the kept-alive
//! connections of this thread in a small pool of its own.
//!
//! Why not reqwest (docs/perf.md, "The HTTP client"): reqwest puts a service stack between the
//! caller and hyper (URL parsed three times per request, a redirect layer, a retry layer, a
//! connection pool shared through locks, each connection a task of its own woken through the
//! scheduler). For one small request on a kept-alive local connection that machinery cost
//! about twice hyper's own work, on every SMTP login. What the module needs of an HTTP client
//! is small and fixed: HTTP/1.1, no redirects, no proxies, no cookies, verified TLS, one
//! deadline per exchange (`crate::runtime::run`), capped bodies. This is that, on hyper.
//!
//! A connection does no work of its own: its hyper `Connection` is polled only by the request
//! or body read that uses it ([`drive`]), so nothing runs between PAM calls and nothing is
//! spawned. Between checks it waits in this thread's pool; before it is used again, a
//! non-blocking peek at its socket tells whether the server closed it meanwhile (its
//! keep-alive timeout), so a request is never written to a connection already dead.

use super::ClientKey;
use crate::runtime;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as _, Incoming};
use hyper::client::conn::http1::{Connection, SendRequest};
use hyper_util::rt::TokioIo;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::{poll_fn, Future};
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use url::Url;

pub use ::http::{header, HeaderMap, HeaderValue, Method, StatusCode};

/// An idle connection older than this is closed rather than reused (servers close theirs
/// sooner: Apache after 5 s, nginx after 75 s).
const IDLE_FOR: Duration = Duration::from_secs(60);
/// Idle connections kept per server and configuration: one per concurrent check of a thread,
/// and a thread runs one check at a time.
const IDLE_PER_ORIGIN: usize = 4;

/// Why an exchange failed, as `crate::http::describe` words it.
#[derive(Debug)]
pub enum Error {
    /// The request could not be built (a header value with a newline, a URL that is not one).
    Request(String),
    /// The configuration cannot work (the CA bundle cannot be read): the same for every URL.
    Misconfigured(String),
    /// The connect timeout (`connect_timeout=`) passed.
    ConnectTimeout,
    /// The attempt's deadline passed while the body of an answer was still coming.
    BodyTimeout,
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

/// A body still to come, and the connection it comes through (none once it has ended).
type Coming = (Incoming, Option<(Origin, Box<Conn>)>);

/// A body: the bytes (`None`: more than the cap), or why they could not be read.
type Read = Result<Option<Vec<u8>>, Error>;

enum Body {
    /// Still to come, through this connection (none once the body has ended).
    Coming(Box<Coming>),
    /// Read with the head, taken once; a failure leaves the head standing (a status decides
    /// for some backends).
    Read(Option<Read>),
}

impl Response {
    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The announced body length, if the server announced one.
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

    /// The body, at most `cap` bytes (`None` if there is more), read now if it was not read
    /// with the head; the connection goes back to the pool once the body has ended.
    pub async fn read_capped(mut self, cap: u64) -> Read {
        if let Some(read) = self.take_read(cap) {
            return read;
        }
        let Body::Coming(coming) = self.body else {
            return Err(Error::Protocol("the body was already taken".into()));
        };
        let (mut incoming, conn) = *coming;
        let mut body = Vec::new();
        let Some((origin, mut conn)) = conn else {
            return Ok(Some(body));
        };
        loop {
            let frame = drive(&mut conn, incoming.frame()).await;
            match frame {
                None => break,
                Some(Err(e)) => return Err(Error::Protocol(chain(&e))),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        if (body.len() + data.len()) as u64 > cap {
                            return Ok(None);
                        }
                        body.extend_from_slice(&data);
                    }
                }
            }
        }
        conn.settle().await;
        checkin(origin, conn);
        Ok(Some(body))
    }
}

/// The byte stream under a connection.
enum Stream {
    /// Plain TCP, or kopano-server's unix socket (`socket=`).
    Plain(Socket),
    Tls(Box<tokio_native_tls::TlsStream<Socket>>),
}

macro_rules! each_stream {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Stream::Plain($s) => $e,
            Stream::Tls($s) => $e,
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        each_stream!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        each_stream!(self, s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        each_stream!(self, s => Pin::new(s).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        each_stream!(self, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        each_stream!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}

/// What a connection's socket was last refused for (the read or write would have blocked):
/// what [`pump`] waits for.
#[derive(Default)]
struct Waits {
    read: Cell<bool>,
    write: Cell<bool>,
    /// The last read found nothing, and no wait has reported the socket readable since: a
    /// read now would find nothing either, or so little later that the wait it leads to
    /// returns at once. hyper reads again after every message to learn of a close; this
    /// spares those reads their system call (whether a kept connection was closed is asked
    /// before it is reused: `Conn::reusable`).
    drained: Cell<bool>,
}

/// A connected, non-blocking socket that is not registered with the runtime's reactor: a
/// read or write that would block says so in its [`Waits`] and returns `Pending`, and
/// [`pump`] waits for the socket itself. One request on a kept connection then costs a write,
/// a `ppoll` and a read, instead of a trip through the reactor's epoll instance, its
/// registration and its wake-ups (about twice the CPU for the same exchange: docs/perf.md).
struct Socket {
    fd: OwnedFd,
    waits: Rc<Waits>,
}

impl Socket {
    fn new(fd: OwnedFd) -> Socket {
        Socket {
            fd,
            waits: Rc::default(),
        }
    }

    /// The outcome of a send or recv returning `n`: `Pending` (noted in `waits`) if it would
    /// have blocked.
    fn outcome(n: isize, waiting: &Cell<bool>) -> Poll<std::io::Result<usize>> {
        if n >= 0 {
            return Poll::Ready(Ok(n as usize));
        }
        let err = std::io::Error::last_os_error();
        if err.kind() == std::io::ErrorKind::WouldBlock {
            waiting.set(true);
            Poll::Pending
        } else {
            Poll::Ready(Err(err))
        }
    }
}

/// Never blocks, never raises SIGPIPE (`MSG_NOSIGNAL`); EINTR is tried again.
impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.waits.drained.get() {
            self.waits.read.set(true);
            return Poll::Pending;
        }
        // SAFETY: recv writes at most `unfilled.len()` bytes into the buffer and says how
        // many; only those are then marked initialised.
        let unfilled = unsafe { buf.unfilled_mut() };
        loop {
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    unfilled.as_mut_ptr().cast(),
                    unfilled.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            let polled = Socket::outcome(n, &self.waits.read);
            self.waits.drained.set(polled.is_pending());
            match polled {
                Poll::Ready(Ok(n)) => {
                    // SAFETY: the kernel wrote these n bytes.
                    unsafe { buf.assume_init(n) };
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Poll::Ready(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.poll_write_vectored(cx, &[std::io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        loop {
            // SAFETY: IoSlice is ABI-compatible with iovec on unix; the message only points
            // at the caller's buffers for the duration of the call.
            let n = unsafe {
                let mut message: libc::msghdr = std::mem::zeroed();
                message.msg_iov = bufs.as_ptr() as *mut libc::iovec;
                message.msg_iovlen = bufs.len().min(libc::UIO_MAXIOV as usize) as _;
                libc::sendmsg(
                    self.fd.as_raw_fd(),
                    &message,
                    libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                )
            };
            match Socket::outcome(n, &self.waits.write) {
                Poll::Ready(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                polled => return polled,
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        // SAFETY: shutdown on this socket's own fd.
        unsafe { libc::shutdown(self.fd.as_raw_fd(), libc::SHUT_WR) };
        Poll::Ready(Ok(()))
    }
}

/// Set when something polled under [`pump`] asks to be polled again.
#[derive(Default)]
struct Woken(AtomicBool);

impl Wake for Woken {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Polls `step` until it is ready, waiting on the socket in between for what its last read or
/// write was refused for (`waits`), on this thread, until the nearest time limit around it
/// (`runtime::deadline`). Then it returns `Pending`, and the timer of that limit
/// (`runtime::until`) ends the wait. Nothing else can make the futures here progress: hyper's
/// connection and request halves wake only each other, and both are polled here.
async fn pump<T>(socket: (RawFd, &Waits), mut step: impl FnMut(&mut Context<'_>) -> Poll<T>) -> T {
    let (fd, waits) = socket;
    let woken = Arc::new(Woken::default());
    let waker = Waker::from(woken.clone());
    let mut cx = Context::from_waker(&waker);
    poll_fn(move |outer| {
        for _ in 0..1024 {
            waits.read.set(false);
            waits.write.set(false);
            if let Poll::Ready(out) = step(&mut cx) {
                return Poll::Ready(out);
            }
            if woken.0.swap(false, Ordering::Relaxed) {
                continue;
            }
            let mut events = 0;
            if waits.write.get() {
                events |= libc::POLLOUT;
            }
            if waits.read.get() || events == 0 {
                // Short of anything else, an HTTP client waits for its server.
                events |= libc::POLLIN;
            }
            if !ready(fd, events, crate::runtime::deadline()) {
                return Poll::Pending;
            }
            waits.drained.set(false);
        }
        // Woken over and over without an end: let the runtime look at its timers.
        outer.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}

/// Whether `fd` became ready for `events` (or failed, or closed) before `deadline`; waits on
/// this thread. No deadline: no wait.
fn ready(fd: RawFd, events: libc::c_short, deadline: Option<Instant>) -> bool {
    let Some(deadline) = deadline else {
        return false;
    };
    let mut pollfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let timeout = libc::timespec {
            tv_sec: left.as_secs() as libc::time_t,
            tv_nsec: left.subsec_nanos() as libc::c_long,
        };
        // SAFETY: one pollfd on the stack, a timeout, no signal mask change.
        let n = unsafe { libc::ppoll(&mut pollfd, 1, &timeout, std::ptr::null()) };
        if n > 0 {
            return true;
        }
        if n == 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return false;
        }
    }
}

/// Where a connection goes, and under which configuration it was opened: connections are
/// reused only for the same server under the same TLS trust and socket.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Origin {
    key: ClientKey,
    tls: bool,
    host: String,
    port: u16,
}

impl Origin {
    fn of(key: &ClientKey, url: &Url) -> Result<Origin, Error> {
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

/// One HTTP/1.1 connection: hyper's request half and the connection itself, which makes
/// progress only while [`drive`] polls it.
struct Conn {
    sender: SendRequest<Full<Bytes>>,
    connection: Connection<TokioIo<Stream>, Full<Bytes>>,
    /// The connection has ended (closed, or failed); nothing more can be sent on it.
    ended: bool,
    fd: RawFd,
    waits: Rc<Waits>,
    /// Which process and runtime it belongs to: its socket is registered with that runtime.
    pid: u32,
    generation: u64,
    idle_since: Instant,
}

impl Conn {
    /// Gives the connection one turn after a message ended, so it notices and is ready again.
    async fn settle(&mut self) {
        poll_fn(|cx| {
            if !self.ended && Pin::new(&mut self.connection).poll(cx).is_ready() {
                self.ended = true;
            }
            Poll::Ready(())
        })
        .await
    }

    /// Whether it can take another request: hyper is ready for one, and the server has neither
    /// closed it nor sent anything unasked (both show as something to read while idle).
    fn reusable(&self) -> bool {
        if self.ended || !self.sender.is_ready() || self.idle_since.elapsed() >= IDLE_FOR {
            return false;
        }
        let mut byte = 0u8;
        // SAFETY: a one-byte peek into a local; the fd is this connection's open socket.
        let n = unsafe {
            libc::recv(
                self.fd,
                &mut byte as *mut u8 as *mut libc::c_void,
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock
    }
}

/// Runs `fut` while polling the connection it needs: hyper's connection only reads and writes
/// when polled, and here nothing else polls it.
async fn drive<F: Future>(conn: &mut Conn, fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let Conn {
        connection,
        ended,
        fd,
        waits,
        ..
    } = conn;
    pump((*fd, waits), |cx| {
        if let Poll::Ready(out) = fut.as_mut().poll(cx) {
            return Poll::Ready(out);
        }
        if !*ended && Pin::new(&mut *connection).poll(cx).is_ready() {
            // Ended: the request's half has its outcome now (or an error saying why).
            *ended = true;
            return fut.as_mut().poll(cx);
        }
        Poll::Pending
    })
    .await
}

/// A connection kept by this thread, never touched in a process it does not belong to.
struct Kept(ManuallyDrop<Box<Conn>>);

impl Drop for Kept {
    fn drop(&mut self) {
        // The kernel's answer: a destructor may run outside any hook (at thread exit).
        if self.0.pid == std::process::id() {
            // SAFETY: dropped once, here, and never used again.
            unsafe { ManuallyDrop::drop(&mut self.0) };
        }
        // Otherwise inherited across fork(): the socket is the parent's session, registered
        // with the parent's epoll instance. Never closed or deregistered from here.
    }
}

thread_local! {
    /// This thread's idle connections, by origin, most recently used last.
    static IDLE: RefCell<HashMap<Origin, Vec<Kept>>> = RefCell::new(HashMap::new());
}

/// A reusable idle connection to `origin` made by this process and runtime, if there is one.
fn checkout(origin: &Origin) -> Option<Box<Conn>> {
    let generation = runtime::generation();
    IDLE.try_with(|idle| {
        let mut idle = idle.try_borrow_mut().ok()?;
        let kept = idle.get_mut(origin)?;
        while let Some(mut conn) = kept.pop() {
            if conn.0.pid == crate::fork::pid()
                && conn.0.generation == generation
                && generation != 0
                && conn.0.reusable()
            {
                // SAFETY: taken out once; the emptied Kept is forgotten, not dropped.
                let taken = unsafe { ManuallyDrop::take(&mut conn.0) };
                std::mem::forget(conn);
                return Some(taken);
            }
        }
        None
    })
    .ok()
    .flatten()
}

/// Puts a connection whose exchange ended cleanly back for the next check on this thread.
fn checkin(origin: Origin, mut conn: Box<Conn>) {
    // Generation 0: made on a runtime of one call (`runtime::generation`), gone after it.
    if conn.ended
        || !conn.sender.is_ready()
        || conn.generation == 0
        || conn.generation != runtime::generation()
    {
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
            kept.push(Kept(ManuallyDrop::new(conn)));
        }
    });
}

/// Sends one request and waits for the head of its answer, and with `read` the body too, at
/// most that many bytes, until that instant (`crate::http::send` and `fetch` bound the whole).
/// A body that cannot be read leaves the head standing: some backends decide on the status.
pub async fn execute(
    request: RequestBuilder,
    read: Option<(u64, Instant)>,
) -> Result<Response, Error> {
    let response = head(request).await?;
    let Some((cap, until)) = read else {
        return Ok(response);
    };
    if response.content_length.is_some_and(|len| len > cap) {
        // Not read at all: `read_capped` names the announced length.
        return Ok(Response {
            body: Body::Read(Some(Ok(None))),
            ..response
        });
    }
    let (status, headers, content_length) = (
        response.status,
        response.headers.clone(),
        response.content_length,
    );
    // Ends no later than the attempt's deadline, which bounds this call as a whole: polled
    // first when both have passed, it keeps the head.
    let read = runtime::until(until, response.read_capped(cap))
        .await
        .unwrap_or(Err(Error::BodyTimeout));
    Ok(Response {
        status,
        headers,
        content_length,
        body: Body::Read(Some(read)),
    })
}

async fn head(request: RequestBuilder) -> Result<Response, Error> {
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
    let mut message = ::http::Request::new(Full::new(body));
    *message.method_mut() = method;
    *message.uri_mut() = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_string(),
    }
    .parse()
    .map_err(|_| Error::Request("the URL's path is not valid in a request".into()))?;
    let fields = message.headers_mut();
    let authority = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_string(),
    };
    fields.insert(
        header::HOST,
        HeaderValue::from_str(&authority)
            .map_err(|_| Error::Request("the URL's host is not valid in a request".into()))?,
    );
    fields.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
    fields.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
    fields.extend(headers);

    // A kept connection first; if it turns out closed before the request left (the server
    // closed it after the peek), the request goes out once more on a new connection. A
    // request that left is never sent twice: that could count a wrong password twice.
    let mut message = Some(message);
    if let Some(mut conn) = checkout(&origin) {
        let Some(request) = message.take() else {
            return Err(Error::Request("no request".into()));
        };
        let sending = conn.sender.try_send_request(request);
        match drive(&mut conn, sending).await {
            Ok(head) => return answered(origin, conn, head).await,
            Err(mut failed) => match failed.take_message() {
                Some(unsent) => message = Some(unsent),
                None => return Err(Error::Protocol(chain(failed.error()))),
            },
        }
    }
    let Some(request) = message else {
        return Err(Error::Request("no request".into()));
    };
    let mut conn = connect(&client, &origin).await?;
    let sending = conn.sender.send_request(request);
    match drive(&mut conn, sending).await {
        Ok(head) => answered(origin, conn, head).await,
        Err(e) => Err(Error::Protocol(chain(&e))),
    }
}

const USER_AGENT: &str = concat!("pam_mailauth/", env!("CARGO_PKG_VERSION"));

/// The response for a head that arrived; a body that has already ended (HEAD, 204, an empty
/// body) frees the connection for the next request right away.
async fn answered(
    origin: Origin,
    mut conn: Box<Conn>,
    head: ::http::Response<Incoming>,
) -> Result<Response, Error> {
    let (parts, body) = head.into_parts();
    let conn = if body.is_end_stream() {
        conn.settle().await;
        checkin(origin, conn);
        None
    } else {
        Some((origin, conn))
    };
    Ok(Response {
        status: parts.status,
        headers: parts.headers,
        content_length: body.size_hint().exact(),
        body: Body::Coming(Box::new((body, conn))),
    })
}

/// Opens a new connection: the unix socket (`socket=`), or TCP to each address of the host in
/// turn within `connect_timeout=` each, then TLS for https, verifying the certificate and the
/// host name with the configuration's trust roots.
/// Boxed: a connection is large (hyper's buffers and state) and moves between the pool, the
/// request and the response; a box moves as a pointer.
async fn connect(client: &Client, origin: &Origin) -> Result<Box<Conn>, Error> {
    let key = &client.key;
    let socket = match &key.unix_socket {
        Some(_) if origin.tls => {
            return Err(Error::Request(
                "https:// cannot go over a unix socket (socket=)".into(),
            ))
        }
        Some(path) => {
            let unix = within(key.connect_timeout, UnixStream::connect(path)).await?;
            Socket::new(unix.into_std().map_err(io_error)?.into())
        }
        None => {
            // The trust roots first, and only for TLS (a plain `http://` line never reads a CA
            // bundle): a bundle that cannot be used means no contact at all.
            let connector = if origin.tls {
                let native = super::tls_connector(&key.cafile).map_err(Error::Misconfigured)?;
                Some(tokio_native_tls::TlsConnector::from(native))
            } else {
                None
            };
            let tcp = tcp(key.connect_timeout, &origin.host, origin.port).await?;
            // Off the reactor from here on: `Socket`.
            let socket = Socket::new(tcp.into_std().map_err(io_error)?.into());
            if let Some(connector) = connector {
                let (fd, waits) = (socket.fd.as_raw_fd(), socket.waits.clone());
                let mut handshake = pin!(connector.connect(&origin.host, socket));
                let tls = within(
                    key.connect_timeout,
                    pump((fd, &waits), |cx| handshake.as_mut().poll(cx)),
                )
                .await
                .map_err(|e| match e {
                    Within::TimedOut => Error::ConnectTimeout,
                    Within::Failed(e) => Error::Connect(chain(&e)),
                })?;
                let waits = tls.get_ref().get_ref().get_ref().waits.clone();
                return handshake_http(Stream::Tls(Box::new(tls)), fd, waits).await;
            }
            socket
        }
    };
    let (fd, waits) = (socket.fd.as_raw_fd(), socket.waits.clone());
    handshake_http(Stream::Plain(socket), fd, waits).await
}

/// hyper's connection over `stream`, whose socket is `fd`.
async fn handshake_http(stream: Stream, fd: RawFd, waits: Rc<Waits>) -> Result<Box<Conn>, Error> {
    let (sender, connection) = hyper::client::conn::http1::Builder::new()
        // An answer's head must fit in this, and no read takes more: the body caps the
        // backends set are then what a server can make the module hold.
        .max_buf_size(64 * 1024)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| Error::Protocol(chain(&e)))?;
    Ok(Box::new(Conn {
        sender,
        connection,
        ended: false,
        fd,
        waits,
        pid: crate::fork::pid(),
        generation: runtime::generation(),
        idle_since: Instant::now(),
    }))
}

enum Within<E> {
    TimedOut,
    Failed(E),
}

/// `fut` within `limit`; an I/O error that says the server is down is told apart.
async fn within<T, E, F>(limit: Duration, fut: F) -> Result<T, Within<E>>
where
    F: Future<Output = Result<T, E>>,
{
    match runtime::until(Instant::now() + limit, fut).await {
        Some(Ok(value)) => Ok(value),
        Some(Err(e)) => Err(Within::Failed(e)),
        None => Err(Within::TimedOut),
    }
}

impl From<Within<std::io::Error>> for Error {
    fn from(w: Within<std::io::Error>) -> Error {
        match w {
            Within::TimedOut => Error::ConnectTimeout,
            Within::Failed(e) => io_error(e),
        }
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
            Err(e) => last = e.into(),
        }
    }
    Err(last)
}
