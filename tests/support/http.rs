//! A small HTTP/1.1 server for tests: answers through a handler, records every request, and
//! can misbehave on purpose (hang, drip, huge bodies, garbage) to test failure paths.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// The form fields of an `application/x-www-form-urlencoded` body.
    pub fn form(&self) -> HashMap<String, String> {
        decode_form(&String::from_utf8_lossy(&self.body))
    }

    pub fn query(&self) -> HashMap<String, String> {
        self.target
            .split_once('?')
            .map(|(_, q)| decode_form(q))
            .unwrap_or_default()
    }

    /// `(user, password)` of a Basic Authorization header.
    pub fn basic_auth(&self) -> Option<(String, String)> {
        use base64::Engine;
        let v = self.header("authorization")?.strip_prefix("Basic ")?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(v.trim())
            .ok()?;
        let s = String::from_utf8(raw).ok()?;
        let (u, p) = s.split_once(':')?;
        Some((u.to_string(), p.to_string()))
    }
}

pub fn decode_form(s: &str) -> HashMap<String, String> {
    s.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (unescape(k), unescape(v))
        })
        .collect()
}

fn unescape(s: &str) -> String {
    let s = s.replace('+', " ");
    percent_encoding::percent_decode_str(&s)
        .decode_utf8_lossy()
        .into_owned()
}

pub enum Reply {
    Http {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Accept, read the request, never answer.
    Hang,
    /// Headers at once, then the body one byte per `interval`.
    Drip { body: Vec<u8>, interval: Duration },
    /// A 200 whose body is this many bytes.
    Huge(usize),
    /// A 200 whose body is this answer padded with blanks to this many bytes: a reader that
    /// ignored the size cap would find a perfectly good answer in it.
    Padded(Vec<u8>, usize),
    /// These raw bytes instead of an HTTP answer, then close.
    Raw(Vec<u8>),
    /// This whole answer, status line and headers included, one byte per `interval`: a
    /// server (or a path to it) that stays alive but hardly moves.
    Trickle(Box<Reply>, Duration),
    /// This answer after a pause.
    Late(Duration, Box<Reply>),
}

impl Reply {
    pub fn status(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Reply {
        Reply::Http {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
        }
    }

    /// This answer, one byte per `interval` from its first byte on.
    pub fn trickle(self, interval: Duration) -> Reply {
        Reply::Trickle(Box::new(self), interval)
    }

    /// This answer, after `pause`.
    pub fn late(self, pause: Duration) -> Reply {
        Reply::Late(pause, Box::new(self))
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        if let Reply::Http { headers, .. } = &mut self {
            headers.push((name.into(), value.into()));
        }
        self
    }
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

pub struct Server {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    connections: Arc<AtomicUsize>,
}

impl Server {
    pub fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Server {
        Server::closing_idle_after(Duration::from_secs(30), handler)
    }

    /// A server that closes a kept-alive connection idle for `idle` (as every real server
    /// does, after its own keep-alive timeout).
    pub fn closing_idle_after(
        idle: Duration,
        handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicUsize::new(0));
        let handler: Arc<Handler> = Arc::new(handler);
        let (r, s, c) = (requests.clone(), stop.clone(), connections.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                c.fetch_add(1, Ordering::SeqCst);
                let (r, s, h) = (r.clone(), s.clone(), handler.clone());
                let _ = conn.set_read_timeout(Some(idle));
                // Head and body go out in two writes: without this, Nagle holds the body back
                // until the client's delayed ACK (40 ms per request on a kept-alive connection).
                let _ = conn.set_nodelay(true);
                let writer = conn.try_clone().unwrap();
                std::thread::spawn(move || serve(conn, writer, &r, &s, &*h));
            }
        });
        Server {
            addr,
            requests,
            stop,
            connections,
        }
    }

    /// How many connections the server has accepted.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

/// A URL on which nothing listens: connection refused.
pub fn refused_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}/")
}

/// One HTTP/1.1 request (Content-Length bodies), or `None` at end of stream. Shared by every
/// fake server, plain, TLS or unix socket.
pub fn read_request(reader: &mut impl BufRead) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let len = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        target,
        headers,
        body,
    })
}

/// Serves the same handler over a unix socket at `path` (kopano's `socket=`), until the test
/// process ends.
pub fn serve_unix(
    path: &std::path::Path,
    handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
) -> Arc<Mutex<Vec<Request>>> {
    let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let handler: Arc<Handler> = Arc::new(handler);
    let r = requests.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let (r, h) = (r.clone(), handler.clone());
            let writer = conn.try_clone().unwrap();
            std::thread::spawn(move || serve(conn, writer, &r, &AtomicBool::new(false), &*h));
        }
    });
    requests
}

fn serve(
    conn: impl Read,
    mut writer: impl Write,
    requests: &Mutex<Vec<Request>>,
    stop: &AtomicBool,
    handler: &Handler,
) {
    let mut reader = BufReader::new(conn);
    while let Some(req) = read_request(&mut reader) {
        requests.lock().unwrap().push(req.clone());
        if stop.load(Ordering::SeqCst) {
            return;
        }
        match handler(&req) {
            // A HEAD answer has no body on the wire, whatever its Content-Length says: bytes
            // written after it would be read as the start of the next answer on a kept-alive
            // connection.
            Reply::Http {
                status,
                headers,
                body,
            } if req.method == "HEAD" => {
                let mut head = Vec::new();
                let _ = write_answer(&mut head, status, &headers, &body);
                head.truncate(head.len() - body.len());
                if writer
                    .write_all(&head)
                    .and_then(|_| writer.flush())
                    .is_err()
                {
                    return;
                }
            }
            reply => {
                if !answer(&mut writer, reply, stop) {
                    return;
                }
            }
        }
    }
}

/// Writes one reply; false when the connection is to be closed.
fn answer(writer: &mut impl Write, reply: Reply, stop: &AtomicBool) -> bool {
    match reply {
        Reply::Http {
            status,
            headers,
            body,
        } => write_answer(writer, status, &headers, &body).is_ok(),
        Reply::Hang => {
            let until = Instant::now() + Duration::from_secs(60);
            while !stop.load(Ordering::SeqCst) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(50));
            }
            false
        }
        Reply::Trickle(reply, interval) => {
            let mut bytes = Vec::new();
            answer(&mut bytes, *reply, stop);
            for b in bytes {
                if stop.load(Ordering::SeqCst) || writer.write_all(&[b]).is_err() {
                    return false;
                }
                std::thread::sleep(interval);
            }
            false
        }
        Reply::Late(pause, reply) => {
            std::thread::sleep(pause);
            answer(writer, *reply, stop)
        }
        Reply::Drip { body, interval } => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            let _ = writer.write_all(head.as_bytes());
            for b in body {
                if stop.load(Ordering::SeqCst) || writer.write_all(&[b]).is_err() {
                    return false;
                }
                std::thread::sleep(interval);
            }
            false
        }
        Reply::Huge(size) => {
            send_padded(writer, b"", size);
            false
        }
        Reply::Padded(answer, size) => {
            send_padded(writer, &answer, size);
            false
        }
        Reply::Raw(bytes) => {
            let _ = writer.write_all(&bytes);
            false
        }
    }
}

/// A 200 with `answer` followed by blanks, `size` bytes in all, written in chunks.
fn send_padded(writer: &mut impl Write, answer: &[u8], size: usize) {
    let head =
        format!("HTTP/1.1 200 OK\r\nContent-Type: text/json\r\nContent-Length: {size}\r\n\r\n");
    if writer
        .write_all(head.as_bytes())
        .and_then(|_| writer.write_all(answer))
        .is_err()
    {
        return;
    }
    let chunk = vec![b' '; 64 * 1024];
    let mut sent = answer.len();
    while sent < size {
        let n = chunk.len().min(size - sent);
        if writer.write_all(&chunk[..n]).is_err() {
            return;
        }
        sent += n;
    }
}

/// One HTTP/1.1 answer with a Content-Length body: shared by every fake server.
pub fn write_answer(
    writer: &mut impl Write,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    writer.write_all(head.as_bytes())?;
    writer.write_all(body)?;
    writer.flush()
}
