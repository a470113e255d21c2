//! A fake kopano-server written from the gSOAP definitions (protocols.md; kopano-core's
//! `ns__logon`): answers `ns:logon` over HTTP (TCP) and, like the real server, over a unix
//! socket, where it reproduces the real server's uid trust: a peer on the socket whose logon
//! lacks KOPANO_LOGON_NO_UID_AUTH is logged in WITHOUT its password being checked (the test
//! process runs as root, like saslauthd). Records every logon it saw.

use super::http::{read_request, write_answer, Reply, Request, Server};
use std::collections::HashMap;
use std::io::BufReader;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub const KOPANO_CAP_UNICODE: u32 = 0x200;
pub const KOPANO_LOGON_NO_UID_AUTH: u32 = 0x1;
pub const KOPANO_LOGON_NO_REGISTER_SESSION: u32 = 0x2;
pub const KCERR_LOGON_FAILED: u32 = 0x8000_0009;
pub const KCERR_BAD_CHARWIDTH: u32 = 0x8000_0034;

/// One `ns:logon` as the server decoded it.
#[derive(Debug, Clone)]
pub struct Logon {
    pub user: String,
    pub password: String,
    pub impersonate: String,
    pub capabilities: u32,
    pub flags: u32,
    pub over_socket: bool,
    pub soap_action: Option<String>,
    pub content_type: Option<String>,
}

#[derive(Clone)]
pub struct KopanoServer {
    users: Arc<HashMap<String, String>>,
    pub logons: Arc<Mutex<Vec<Logon>>>,
    /// Answer every logon with this `er` instead (for unexpected-error tests).
    pub force_er: Option<u32>,
}

/// The unescaped text of the first `<name>...</name>` in `body`.
fn element(body: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find(&format!("</{name}>"))? + start;
    let raw = &body[start..end];
    assert!(
        !raw.contains('<'),
        "unescaped markup inside <{name}>: {raw:?}"
    );
    Some(unescape(raw))
}

fn unescape(raw: &str) -> String {
    // XML end-of-line normalization comes first: a raw CR never survives parsing, a CR
    // written as a character reference does.
    let raw = raw.replace("\r\n", "\n").replace('\r', "\n");
    let mut out = String::new();
    let mut rest = raw.as_str();
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let semi = rest[amp..].find(';').expect("unterminated entity") + amp;
        let entity = &rest[amp + 1..semi];
        let c = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            e if e.starts_with("#x") => {
                char::from_u32(u32::from_str_radix(&e[2..], 16).unwrap()).unwrap()
            }
            e if e.starts_with('#') => char::from_u32(e[1..].parse().unwrap()).unwrap(),
            e => panic!("unknown entity &{e};"),
        };
        out.push(c);
        rest = &rest[semi + 1..];
    }
    out.push_str(rest);
    out
}

fn envelope(inner: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<SOAP-ENV:Envelope \
         xmlns:SOAP-ENV=\"http://schemas.xmlsoap.org/soap/envelope/\" \
         xmlns:SOAP-ENC=\"http://schemas.xmlsoap.org/soap/encoding/\" \
         xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
         xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" xmlns:ns=\"urn:zarafa\">\
         <SOAP-ENV:Body SOAP-ENV:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\">\
         {inner}</SOAP-ENV:Body></SOAP-ENV:Envelope>\n"
    )
}

/// gSOAP's answer to a logon: HTTP 200 whatever `er` is.
pub fn logon_response(er: u32) -> Vec<u8> {
    let session = if er == 0 { 0x1234_5678_9abc_u64 } else { 0 };
    envelope(&format!(
        "<ns:logonResponse><er>{er}</er><ulSessionId>{session}</ulSessionId>\
         <lpszVersion>0,8,7,80,0</lpszVersion><ulCapabilities>848</ulCapabilities>\
         <sLicenseResponse></sLicenseResponse>\
         <sServerGuid>AAECAwQFBgcICQoLDA0ODw==</sServerGuid></ns:logonResponse>"
    ))
    .into_bytes()
}

fn fault(text: &str) -> Reply {
    Reply::status(
        500,
        "text/xml; charset=utf-8",
        envelope(&format!(
            "<SOAP-ENV:Fault><faultcode>SOAP-ENV:Client</faultcode>\
             <faultstring>{text}</faultstring></SOAP-ENV:Fault>"
        )),
    )
}

impl KopanoServer {
    pub fn new(users: &[(&str, &str)]) -> KopanoServer {
        KopanoServer {
            users: Arc::new(
                users
                    .iter()
                    .map(|(u, p)| (u.to_string(), p.to_string()))
                    .collect(),
            ),
            logons: Arc::new(Mutex::new(Vec::new())),
            force_er: None,
        }
    }

    pub fn logons(&self) -> Vec<Logon> {
        self.logons.lock().unwrap().clone()
    }

    pub fn answer(&self, req: &Request, over_socket: bool) -> Reply {
        if req.method != "POST" {
            return fault("POST expected");
        }
        let body = String::from_utf8_lossy(&req.body).into_owned();
        if !body.contains("<ns:logon>") || !body.contains("xmlns:ns=\"urn:zarafa\"") {
            return fault("no ns:logon in urn:zarafa");
        }
        let number = |name: &str| -> u32 {
            element(&body, name)
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        let logon = Logon {
            user: element(&body, "szUsername").unwrap_or_default(),
            password: element(&body, "szPassword").unwrap_or_default(),
            impersonate: element(&body, "szImpersonateUser").unwrap_or_default(),
            capabilities: number("ulCapabilities"),
            flags: number("ulFlags"),
            over_socket,
            soap_action: req.header("soapaction").map(str::to_string),
            content_type: req.header("content-type").map(str::to_string),
        };
        self.logons.lock().unwrap().push(logon.clone());
        let er = if let Some(er) = self.force_er {
            er
        } else if logon.capabilities & KOPANO_CAP_UNICODE == 0 {
            KCERR_BAD_CHARWIDTH
        } else if !self.users.contains_key(&logon.user) {
            KCERR_LOGON_FAILED
        } else if over_socket && logon.flags & KOPANO_LOGON_NO_UID_AUTH == 0 {
            // The real server's trap: a root peer on the socket needs no password.
            0
        } else if self.users.get(&logon.user) == Some(&logon.password) {
            0
        } else {
            KCERR_LOGON_FAILED
        };
        Reply::status(200, "text/xml; charset=utf-8", logon_response(er))
    }

    /// Serves over HTTP on a free loopback port.
    pub fn serve(&self) -> Server {
        let me = self.clone();
        Server::start(move |req| me.answer(req, false))
    }

    /// Serves over a unix socket at `path` (until the test process ends).
    pub fn serve_socket(&self, path: PathBuf) {
        let listener = UnixListener::bind(&path).unwrap();
        let me = self.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let me = me.clone();
                std::thread::spawn(move || {
                    let mut writer = conn.try_clone().unwrap();
                    let mut reader = BufReader::new(conn);
                    while let Some(req) = read_request(&mut reader) {
                        let close = req
                            .header("connection")
                            .is_some_and(|c| c.eq_ignore_ascii_case("close"));
                        let Reply::Http {
                            status,
                            headers,
                            body,
                        } = me.answer(&req, true)
                        else {
                            return;
                        };
                        if write_answer(&mut writer, status, &headers, &body).is_err() || close {
                            return;
                        }
                    }
                });
            }
        });
    }
}
