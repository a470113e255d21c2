//! A PostfixAdmin SCIM API written from seed 002: `GET /Users/{address}` answers a SCIM user
//! with `active`, 404 when unknown; Basic (super admin) or Bearer JWT.

use super::http::{Reply, Request, Server};
use std::collections::HashMap;

pub const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzdXBlcmFkbWluIn0.c2ln";

pub fn serve(mailboxes: &[(&str, bool)]) -> Server {
    let boxes: HashMap<String, bool> = mailboxes.iter().map(|(u, a)| (u.to_string(), *a)).collect();
    Server::start(move |req: &Request| {
        let bearer_ok = req.header("authorization") == Some(&format!("Bearer {JWT}"));
        let basic_ok = req.basic_auth() == Some(("admin@example.test".into(), "s3cret".into()));
        if !bearer_ok && !basic_ok {
            return Reply::status(
                401,
                "application/scim+json",
                r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"401"}"#,
            );
        }
        let Some(raw) = req.path().strip_prefix("/scim/Users/") else {
            return Reply::status(404, "text/plain", "");
        };
        let id = percent_encoding::percent_decode_str(raw)
            .decode_utf8_lossy()
            .into_owned();
        match boxes.get(&id) {
            Some(active) => Reply::status(
                200,
                "application/scim+json",
                serde_json::json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "id": id, "userName": id, "active": active,
                    "meta": {"resourceType": "User"}
                })
                .to_string(),
            ),
            None => Reply::status(
                404,
                "application/scim+json",
                r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"404"}"#,
            ),
        }
    })
}
