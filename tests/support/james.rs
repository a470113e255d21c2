//! A James/TMail webadmin written from seed 001 and protocols.md: `POST /users/{u}/verify`
//! (204 right, 401 wrong or unknown), `HEAD /users/{u}` (200 / 404), admin JWT as Bearer.

use super::http::{Reply, Request, Server};
use std::collections::HashMap;

pub const ADMIN_JWT: &str =
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbkBvcGVuLXBhYXMub3JnIiwiYWRtaW4iOnRydWV9.c2lnbmF0dXJl";

pub fn serve(users: &[(&str, &str)]) -> Server {
    let users: HashMap<String, String> = users
        .iter()
        .map(|(u, p)| (u.to_string(), p.to_string()))
        .collect();
    Server::start(move |req: &Request| {
        if req.header("authorization") != Some(&format!("Bearer {ADMIN_JWT}")) {
            return Reply::status(
                401,
                "application/json",
                r#"{"statusCode":401,"type":"InvalidArgument","message":"No valid JWT"}"#,
            );
        }
        let path = req.path();
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
        match (req.method.as_str(), verify) {
            ("POST", true) => {
                let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
                let given = body.get("password").and_then(|p| p.as_str());
                if given.is_some() && users.get(&user).map(String::as_str) == given {
                    Reply::status(204, "text/plain", "")
                } else {
                    Reply::status(401, "text/plain", "")
                }
            }
            ("HEAD", false) if users.contains_key(&user) => Reply::status(200, "text/plain", ""),
            ("HEAD", false) => Reply::status(404, "text/plain", ""),
            _ => Reply::status(405, "text/plain", ""),
        }
    })
}
