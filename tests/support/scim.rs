//! The PostfixAdmin SCIM API (audriga/postfixadmin-scim-api on scim-server-php, Slim 4) as it
//! really answers (protocols.md, "What the real servers do"):
//!
//! - Routes sit under a base path (default: the root): `{base}/Users`, `{base}/Users/{id}`
//!   (`{id}` the address, percent-decoded once), `{base}/Groups`, `{base}/ResourceTypes`,
//!   `{base}/Schemas`, `{base}/ServiceProviderConfig`.
//! - Routing runs before authentication: a path outside the routes answers `404` with a JSON
//!   error body `{"statusCode":404,"error":{"type":"RESOURCE_NOT_FOUND",...}}`, credentials
//!   or not.
//! - Then authentication: Basic for the super admin, or a Bearer HS256 JWT whose claim is
//!   `user` (a token with only `sub` is refused). Refused: `401` with an EMPTY body. The
//!   database being down also ends as `401`.
//! - An unknown mailbox, a mailbox whose alias does not deliver to itself (forward-only), and a
//!   failed database query all end as `404` with an EMPTY body (Content-Type `text/html`).
//! - `ResourceTypes` and `Schemas` answer `200`; `ServiceProviderConfig` answers `500` (PHP 8.2).
//! - A `200` user carries `meta.location`, which echoes the caller's Basic credentials.

use super::http::{Reply, Request, Server};
use base64::Engine;
use std::collections::HashMap;

/// HS256 JWT with the claim `{"user":"superadmin"}`.
pub const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ1c2VyIjoic3VwZXJhZG1pbiJ9.c2ln";
/// A JWT with only `{"sub":"superadmin"}`: the API answers it 401.
pub const SUB_ONLY_JWT: &str =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJzdXBlcmFkbWluIn0.c2ln";
pub const ADMIN: &str = "admin@example.test";
pub const ADMIN_PASSWORD: &str = "s3cret";

/// What the API's database does.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Db {
    #[default]
    Up,
    /// Every query fails: a user lookup ends as 404 with an empty body.
    QueryFails,
    /// The database is down: authentication ends as 401.
    Down,
}

#[derive(Clone, Default)]
pub struct ScimApi {
    base: String,
    /// address → (active, alias delivers to itself)
    mailboxes: HashMap<String, (bool, bool)>,
    db: Db,
    /// Addresses whose 200 body gives `active` twice (`"active":false,"active":true`).
    duplicate_active: Vec<String>,
}

impl ScimApi {
    /// The API with its routes under `base` (`""` for the root, or e.g. `"/scim"`).
    pub fn at(base: &str) -> ScimApi {
        ScimApi {
            base: base.trim_end_matches('/').to_string(),
            ..ScimApi::default()
        }
    }

    pub fn mailbox(mut self, address: &str, active: bool) -> Self {
        self.mailboxes.insert(address.into(), (active, true));
        self
    }

    /// A mailbox whose alias row forwards elsewhere and does not deliver to itself.
    pub fn forward_only(mut self, address: &str) -> Self {
        self.mailboxes.insert(address.into(), (true, false));
        self
    }

    /// An active mailbox whose 200 body gives `active` twice, `false` then `true`. Not what
    /// the API writes (PHP's json_encode cannot repeat a key): what a proxy or another SCIM
    /// server might, for the test that such a body is no answer.
    pub fn duplicate_active(mut self, address: &str) -> Self {
        self.mailboxes.insert(address.into(), (true, true));
        self.duplicate_active.push(address.into());
        self
    }

    pub fn db(mut self, db: Db) -> Self {
        self.db = db;
        self
    }

    pub fn serve(self) -> Server {
        Server::start(move |req| self.answer(req))
    }

    fn route_not_found() -> Reply {
        Reply::status(
            404,
            "application/json",
            r#"{"statusCode":404,"error":{"type":"RESOURCE_NOT_FOUND","description":"Not found."}}"#,
        )
    }

    fn authenticated(&self, req: &Request) -> bool {
        if self.db == Db::Down {
            return false;
        }
        if let Some(token) = req
            .header("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
        {
            return token == JWT && jwt_claim(token, "user").is_some_and(|u| !u.is_empty());
        }
        req.basic_auth() == Some((ADMIN.into(), ADMIN_PASSWORD.into()))
    }

    fn answer(&self, req: &Request) -> Reply {
        let Some(route) = req.path().strip_prefix(self.base.as_str()) else {
            return Self::route_not_found();
        };
        let user_id = route.strip_prefix("/Users/").filter(|id| !id.contains('/'));
        let known = user_id.is_some()
            || matches!(
                route,
                "/Users" | "/Groups" | "/ResourceTypes" | "/Schemas" | "/ServiceProviderConfig"
            );
        if !known || req.method != "GET" {
            return Self::route_not_found();
        }
        if !self.authenticated(req) {
            return Reply::status(401, "text/html; charset=UTF-8", "");
        }
        match route {
            "/ResourceTypes" => Reply::status(
                200,
                "application/scim+json",
                r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"totalResults":1,"Resources":[{"schemas":["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],"id":"User","name":"User","endpoint":"/Users","schema":"urn:ietf:params:scim:schemas:core:2.0:User"}]}"#,
            ),
            "/Schemas" => Reply::status(
                200,
                "application/scim+json",
                r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"totalResults":0,"Resources":[]}"#,
            ),
            "/ServiceProviderConfig" => Reply::status(
                500,
                "text/html; charset=UTF-8",
                "<br />\n<b>Fatal error</b>: Uncaught TypeError",
            ),
            "/Users" | "/Groups" => Reply::status(
                200,
                "application/scim+json",
                r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"totalResults":0,"Resources":[]}"#,
            ),
            _ => self.user(req, user_id.unwrap_or_default()),
        }
    }

    fn user(&self, req: &Request, raw: &str) -> Reply {
        let not_found = || Reply::status(404, "text/html; charset=UTF-8", "");
        if self.db == Db::QueryFails {
            return not_found();
        }
        let id = percent_encoding::percent_decode_str(raw)
            .decode_utf8_lossy()
            .into_owned();
        match self.mailboxes.get(&id) {
            Some((active, true)) => {
                // The real API builds meta.location from the request URL, credentials and all.
                let userinfo = match req.basic_auth() {
                    Some((u, p)) => format!("{u}:{p}@"),
                    None => String::new(),
                };
                let host = req.header("host").unwrap_or("localhost");
                let mut body = serde_json::json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "id": id, "userName": id, "active": active,
                    "meta": {
                        "resourceType": "User",
                        "location": format!("http://{userinfo}{host}{}/Users/{raw}", self.base),
                    }
                })
                .to_string();
                if self.duplicate_active.contains(&id) {
                    body = body.replacen("\"active\":true", "\"active\":false,\"active\":true", 1);
                }
                Reply::status(200, "application/scim+json", body)
            }
            _ => not_found(),
        }
    }
}

/// A string claim of a JWT's payload.
fn jwt_claim(token: &str, claim: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let value: serde_json::Value = serde_json::from_slice(&raw).ok()?;
    value.get(claim)?.as_str().map(str::to_string)
}

/// The API under `/scim` with these mailboxes (address, active).
pub fn serve(mailboxes: &[(&str, bool)]) -> Server {
    mailboxes
        .iter()
        .fold(ScimApi::at("/scim"), |api, (u, a)| api.mailbox(u, *a))
        .serve()
}
