//! A James/TMail webadmin as it really answers (protocols.md, "What the real servers do";
//! apache/james-project UserRoutes, UserService, JwtFilter, Username):
//!
//! - `POST /users/{u}/verify` `{"password": "..."}`: `204` right, `401` wrong password or
//!   unknown user, `400` for a name James rejects (blank, over 255 characters, two `@`, empty
//!   local part, bad domain) or a bad payload. `HEAD /users/{u}`: `200` / `404` / `400`. The
//!   path segment is percent-decoded once.
//! - `GET /domains` (DomainsRoutes): `200` with the JSON list of the server's domains; the
//!   module asks it once to confirm a base is webadmin before it trusts a 404 for a user.
//! - Authentication runs before the routes: in JWT mode `Authorization: Bearer <jwt>` with a
//!   non-empty `sub` and `admin: true`; with a static password (recent James) a `Password:`
//!   header or `Authorization: Bearer <password>`, and a read-only password gets `403` on
//!   POST; or no authentication at all. Missing or invalid credentials: `401` with a
//!   plain-text body.

use super::http::{Reply, Request, Server};
use std::collections::HashMap;

pub const ADMIN_JWT: &str =
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbkBvcGVuLXBhYXMub3JnIiwiYWRtaW4iOnRydWV9.c2lnbmF0dXJl";
/// The static webadmin passwords of [`Auth::Password`].
pub const PASSWORD: &str = "webadmin-rw-pass";
pub const READ_ONLY_PASSWORD: &str = "webadmin-ro-pass";

/// How webadmin authenticates its callers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Auth {
    /// `jwt.enabled=true`: Bearer [`ADMIN_JWT`].
    Jwt,
    /// A static password ([`PASSWORD`], or [`READ_ONLY_PASSWORD`] for GET/HEAD only), as a
    /// `Password:` header or as `Authorization: Bearer <password>`.
    Password,
    /// No authentication.
    None,
}

/// Whether James accepts `name` as a user name (Username.of, Domain.of).
pub fn valid_username(name: &str) -> bool {
    if name.trim().is_empty() || name.chars().count() > 255 {
        return false;
    }
    let mut parts = name.split('@');
    let local = parts.next().unwrap_or("");
    let domain = parts.next();
    if parts.next().is_some() || local.is_empty() {
        return false;
    }
    match domain {
        None => true,
        Some(d) => {
            !d.is_empty()
                && !d.starts_with(['.', '-'])
                && !d.ends_with(['.', '-'])
                && !d.contains("..")
                && d.chars()
                    .all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_'))
        }
    }
}

fn unauthorized() -> Reply {
    Reply::status(
        401,
        "text/plain;charset=utf-8",
        "Valid request authentication is required",
    )
}

/// `Ok(read_only)` for accepted credentials.
fn authenticate(auth: Auth, req: &Request) -> Result<bool, Reply> {
    let bearer = req
        .header("authorization")
        .and_then(|a| a.strip_prefix("Bearer "));
    match auth {
        Auth::None => Ok(false),
        Auth::Jwt if bearer == Some(ADMIN_JWT) => Ok(false),
        Auth::Jwt => Err(unauthorized()),
        Auth::Password => match req.header("password").or(bearer) {
            Some(PASSWORD) => Ok(false),
            Some(READ_ONLY_PASSWORD) => Ok(true),
            _ => Err(unauthorized()),
        },
    }
}

pub fn serve_with(auth: Auth, users: &[(&str, &str)]) -> Server {
    let users: HashMap<String, String> = users
        .iter()
        .map(|(u, p)| (u.to_string(), p.to_string()))
        .collect();
    Server::start(move |req: &Request| {
        let read_only = match authenticate(auth, req) {
            Ok(ro) => ro,
            Err(reply) => return reply,
        };
        if read_only && req.method == "POST" {
            return Reply::status(403, "text/plain;charset=utf-8", "Forbidden");
        }
        let path = req.path();
        if path == "/domains" {
            return match req.method.as_str() {
                "GET" => Reply::status(200, "application/json", domains_json(&users)),
                _ => Reply::status(405, "text/plain", ""),
            };
        }
        let Some(rest) = path.strip_prefix("/users/") else {
            return Reply::status(404, "text/plain", "");
        };
        let (raw_user, verify) = match rest.strip_suffix("/verify") {
            Some(u) => (u, true),
            None => (rest, false),
        };
        if raw_user.contains('/') {
            return Reply::status(404, "text/plain", "");
        }
        let user = percent_encoding::percent_decode_str(raw_user)
            .decode_utf8_lossy()
            .into_owned();
        let bad_name = || {
            Reply::status(
                400,
                "application/json",
                r#"{"statusCode":400,"type":"InvalidArgument","message":"Invalid arguments supplied in the user request"}"#,
            )
        };
        match (req.method.as_str(), verify) {
            ("POST", true) => {
                let body: Option<serde_json::Value> = serde_json::from_slice(&req.body).ok();
                let Some(given) = body
                    .as_ref()
                    .and_then(|b| b.get("password"))
                    .and_then(|p| p.as_str())
                else {
                    return bad_name();
                };
                if !valid_username(&user) {
                    return bad_name();
                }
                if users.get(&user).map(String::as_str) == Some(given) {
                    Reply::status(204, "text/plain", "")
                } else {
                    Reply::status(401, "text/plain", "")
                }
            }
            ("HEAD", false) if !valid_username(&user) => bad_name(),
            ("HEAD", false) if users.contains_key(&user) => Reply::status(200, "text/plain", ""),
            ("HEAD", false) => Reply::status(404, "text/plain", ""),
            _ => Reply::status(405, "text/plain", ""),
        }
    })
}

/// `GET /domains`: the domains of the users (James lists its configured domains, which
/// include every user's domain), as a JSON array of strings.
fn domains_json(users: &HashMap<String, String>) -> String {
    let mut domains: Vec<&str> = users
        .keys()
        .filter_map(|u| u.split_once('@'))
        .map(|(_, d)| d)
        .collect();
    domains.push("localhost");
    domains.sort();
    domains.dedup();
    serde_json::to_string(&domains).unwrap()
}

/// JWT mode, as the seed's TMail deployment runs it.
pub fn serve(users: &[(&str, &str)]) -> Server {
    serve_with(Auth::Jwt, users)
}
