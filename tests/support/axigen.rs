//! An Axigen server written from the documents (seed 003 "Performing Axigen WebMail Single
//! Sign-on"; protocols.md "Axigen WebMail"; Axigen's Mailbox API authentication page):
//!
//! - WebMail HSP at `/`: `action=login&username=U&password=P&custom=ajax`, by GET query or
//!   form POST ("by GET or POST"). Success: `303` with `Set-Cookie: _hmail=<cookie key>;
//!   Path=/;Version=1;`, `Location: /?_h=<url key>` and, with `custom=ajax`, the body
//!   `{ success: true, sessionKey: "<key>" }`. Failure (not documented): the 200 login page.
//! - `action=logout` with the session's `_h` (query) and `_hmail` cookie ends that session.
//!   The server counts live sessions, so a test can prove none is left behind.
//! - Mailbox API: `POST /api/v1/login` with Basic credentials: `200 {"sessid": "..."}` or
//!   `401 Unauthorized`. `POST /api/v1/logout` with the session id in `X-Axigen-Session` ends
//!   that session (`401` for an unknown one); the server records each logout's session id.

use super::http::{Reply, Request, Server};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// How the login success is written.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Body {
    /// The document's `{ success: true, sessionKey: "..." }` (unquoted keys).
    Document,
    /// The same in strict JSON.
    Strict,
    /// No body: the 303 and its headers only. Not what Axigen answers to `custom=ajax`
    /// (protocols.md, "What the real servers do"): for the test that keys alone are no yes.
    HeadersOnly,
    /// The 303 and its keys, with a body that gives `success` twice (`{ success: false,
    /// success: true, sessionKey: "..." }`). Not Axigen's answer: for the test that a body
    /// without an honest reading is neither a yes nor a no.
    Conflicting,
    /// The document's success body in a `200` without the cookie and Location (what a
    /// proxy that swallows the 303 would pass on). Not Axigen's answer: for the test that
    /// only the whole success shape is a yes. The session it opens cannot be closed.
    WithoutKeys,
}

#[derive(Default)]
pub struct State {
    /// url key (`_h`) → cookie key (`_hmail`) of every live WebMail session.
    pub sessions: HashMap<String, String>,
    pub logins: usize,
    pub logouts: usize,
    /// Logouts answered by `logout_misbehaves`.
    pub logout_attempts: usize,
    pub rest_sessions: usize,
    /// Session ids of live Mailbox API sessions.
    pub rest_live: Vec<String>,
    /// The `X-Axigen-Session` of every Mailbox API logout, valid or not.
    pub rest_logouts: Vec<String>,
}

pub struct Axigen {
    users: HashMap<String, String>,
    body: Body,
    /// Answer every logout with this (and keep the session) instead of ending it.
    logout_misbehaves: Option<fn() -> Reply>,
    state: Arc<Mutex<State>>,
}

pub struct AxigenServer {
    pub server: Server,
    state: Arc<Mutex<State>>,
}

fn key() -> String {
    static N: AtomicU64 = AtomicU64::new(1);
    let n = N.fetch_add(1, Ordering::SeqCst);
    // 32 lowercase hex characters, like the document's keys.
    format!("{:016x}{:016x}", std::process::id() as u64 ^ 0x2420_fa2f, n)
}

const LOGIN_PAGE: &str = "<!DOCTYPE html><html><head><title>Axigen WebMail</title></head>\
<body><form method=\"post\" action=\"/\"><input type=\"hidden\" name=\"action\" value=\"login\">\
<p class=\"error\">Invalid username or password</p>\
<input name=\"username\"><input type=\"password\" name=\"password\"></form></body></html>";

impl Axigen {
    pub fn new(users: &[(&str, &str)]) -> Axigen {
        Axigen {
            users: users
                .iter()
                .map(|(u, p)| (u.to_string(), p.to_string()))
                .collect(),
            body: Body::Document,
            logout_misbehaves: None,
            state: Arc::default(),
        }
    }

    pub fn body(mut self, body: Body) -> Self {
        self.body = body;
        self
    }

    /// Logouts get this answer (an error, a hang) and the session stays open.
    pub fn logout_misbehaves(mut self, reply: fn() -> Reply) -> Self {
        self.logout_misbehaves = Some(reply);
        self
    }

    fn login_page() -> Reply {
        Reply::status(200, "text/html; charset=utf-8", LOGIN_PAGE)
    }

    pub fn answer(&self, req: &Request) -> Reply {
        if req.path() == "/api/v1/login" {
            return self.rest(req);
        }
        if req.path() == "/api/v1/logout" {
            return self.rest_logout(req);
        }
        if req.path() != "/" {
            return Reply::status(404, "text/html", "<h1>404 Not Found</h1>");
        }
        // An HSP action works "by GET or POST"; the session key travels in the query.
        let query = req.query();
        let fields = match req.method.as_str() {
            "GET" => query.clone(),
            "POST" if req.header("content-type") == Some("application/x-www-form-urlencoded") => {
                req.form()
            }
            _ => return Reply::status(400, "text/html", "bad request"),
        };
        match fields.get("action").map(String::as_str) {
            Some("login") => self.login(&fields),
            Some("logout") => self.logout(req, &query),
            _ => Self::login_page(),
        }
    }

    fn login(&self, fields: &HashMap<String, String>) -> Reply {
        let ok = match (fields.get("username"), fields.get("password")) {
            (Some(u), Some(p)) => self.users.get(u) == Some(p),
            _ => false,
        };
        if !ok {
            return Self::login_page();
        }
        let (cookie_key, url_key, session_key) = (key(), key(), key());
        {
            let mut st = self.state.lock().unwrap();
            st.logins += 1;
            st.sessions.insert(url_key.clone(), cookie_key.clone());
        }
        let ajax = fields.get("custom").map(String::as_str) == Some("ajax");
        let body = match (self.body, ajax) {
            (Body::Document, true) => format!("{{ success: true, sessionKey: \"{session_key}\" }}"),
            (Body::Strict, true) => {
                format!("{{\"success\": true, \"sessionKey\": \"{session_key}\"}}")
            }
            (Body::Conflicting, true) => {
                format!("{{ success: false, success: true, sessionKey: \"{session_key}\" }}")
            }
            (Body::WithoutKeys, true) => {
                return Reply::status(
                    200,
                    "text/html; charset=utf-8",
                    format!("{{ success: true, sessionKey: \"{session_key}\" }}"),
                );
            }
            _ => String::new(),
        };
        Reply::Http {
            status: 303,
            headers: vec![
                (
                    "Cache-Control".into(),
                    "no-cache, no-store, must-revalidate, proxy-revalidate".into(),
                ),
                ("Pragma".into(), "no-cache".into()),
                ("Server".into(), "Axigen-Webmail".into()),
                ("Content-Type".into(), "text/html; charset=utf-8".into()),
                (
                    "Set-Cookie".into(),
                    format!("_hmail={cookie_key};Path=/;Version=1;"),
                ),
                ("Location".into(), format!("/?_h={url_key}")),
            ],
            body: body.into_bytes(),
        }
    }

    fn logout(&self, req: &Request, query: &HashMap<String, String>) -> Reply {
        if let Some(reply) = self.logout_misbehaves {
            self.state.lock().unwrap().logout_attempts += 1;
            return reply();
        }
        let cookie = req
            .header("cookie")
            .into_iter()
            .flat_map(|c| c.split(';'))
            .filter_map(|c| c.trim().strip_prefix("_hmail="))
            .next()
            .map(str::to_string);
        let mut st = self.state.lock().unwrap();
        let valid = match (query.get("_h"), &cookie) {
            (Some(h), Some(c)) => st.sessions.get(h) == Some(c),
            _ => false,
        };
        if valid {
            st.sessions.remove(&query["_h"]);
            st.logouts += 1;
        }
        // Either way the browser lands on the login page.
        Reply::Http {
            status: 303,
            headers: vec![("Location".into(), "/".into())],
            body: Vec::new(),
        }
    }

    fn rest(&self, req: &Request) -> Reply {
        if req.method != "POST" {
            return Reply::status(405, "application/json", "{\"error\": \"method\"}");
        }
        match req.basic_auth() {
            Some((u, p)) if self.users.get(&u) == Some(&p) => {
                let sessid = key();
                let mut st = self.state.lock().unwrap();
                st.rest_sessions += 1;
                st.rest_live.push(sessid.clone());
                Reply::status(
                    200,
                    "application/json",
                    format!("{{\"sessid\": \"{sessid}\"}}"),
                )
            }
            _ => Reply::status(401, "application/json", "{\"error\": \"Unauthorized\"}")
                .with_header("WWW-Authenticate", "Basic realm=\"Axigen\""),
        }
    }

    fn rest_logout(&self, req: &Request) -> Reply {
        if req.method != "POST" {
            return Reply::status(405, "application/json", "{\"error\": \"method\"}");
        }
        if let Some(reply) = self.logout_misbehaves {
            self.state.lock().unwrap().logout_attempts += 1;
            return reply();
        }
        let sessid = req.header("x-axigen-session").unwrap_or("").to_string();
        let mut st = self.state.lock().unwrap();
        st.rest_logouts.push(sessid.clone());
        match st.rest_live.iter().position(|s| *s == sessid) {
            Some(i) => {
                st.rest_live.remove(i);
                Reply::status(200, "application/json", "{}")
            }
            None => Reply::status(401, "application/json", "{\"error\": \"Unauthorized\"}"),
        }
    }

    pub fn serve(self) -> AxigenServer {
        let state = self.state.clone();
        AxigenServer {
            server: Server::start(move |req| self.answer(req)),
            state,
        }
    }
}

impl AxigenServer {
    pub fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.server.requests()
    }

    pub fn live_sessions(&self) -> usize {
        self.state.lock().unwrap().sessions.len()
    }

    pub fn logins(&self) -> usize {
        self.state.lock().unwrap().logins
    }

    pub fn logouts(&self) -> usize {
        self.state.lock().unwrap().logouts
    }

    pub fn logout_attempts(&self) -> usize {
        self.state.lock().unwrap().logout_attempts
    }

    pub fn rest_sessions(&self) -> usize {
        self.state.lock().unwrap().rest_sessions
    }

    /// Mailbox API sessions not logged out.
    pub fn rest_live_sessions(&self) -> usize {
        self.state.lock().unwrap().rest_live.len()
    }

    /// The `X-Axigen-Session` of every Mailbox API logout.
    pub fn rest_logouts(&self) -> Vec<String> {
        self.state.lock().unwrap().rest_logouts.clone()
    }
}
